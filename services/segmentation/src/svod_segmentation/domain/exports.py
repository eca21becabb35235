"""Rows of a file destination: the columns a campaign tool needs."""

from __future__ import annotations

from svod_segmentation.domain.activation import Contact
from svod_segmentation.domain.fields import CONSENT_CHANNELS

COLUMNS = (
    "customer_id",
    "label",
    "first_name",
    "last_name",
    "middle_name",
    "email",
    "phone",
    *(f"consent_{channel}" for channel in CONSENT_CHANNELS),
)


def export_row(contact: Contact, label: str) -> dict[str, str]:
    row = {
        "customer_id": contact.customer_id,
        "label": label,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "middle_name": contact.middle_name,
        "email": contact.email,
        "phone": contact.phone,
    }
    for channel in CONSENT_CHANNELS:
        row[f"consent_{channel}"] = contact.consents.get(channel, "")
    return row
