"""The fields a rule can test, their types, and which operators each type takes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum

from svod_runtime.custom_attributes import AttributeType


class FieldType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    INTEGER = "integer"
    TIMESTAMP = "timestamp"
    DATE = "date"
    TEXT_LIST = "list of text"
    BOOLEAN = "boolean"


CONSENT_CHANNELS = (
    "email",
    "sms",
    "push",
    "messenger",
    "phone_call",
    "personal_data_processing",
)


class ConsentState(StrEnum):
    """A customer's latest answer for a consent channel (profile's ConsentStatus)."""

    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"


CONSENT_STATES = tuple(s.value for s in ConsentState)

FIELDS: dict[str, FieldType] = {
    "first_name": FieldType.TEXT,
    "last_name": FieldType.TEXT,
    "middle_name": FieldType.TEXT,
    "gender": FieldType.TEXT,
    "city": FieldType.TEXT,
    "region": FieldType.TEXT,
    "country_code": FieldType.TEXT,
    "postal_code": FieldType.TEXT,
    "currency": FieldType.TEXT,
    "birth_date": FieldType.DATE,
    "age": FieldType.INTEGER,
    "create_time": FieldType.TIMESTAMP,
    "update_time": FieldType.TIMESTAMP,
    "sources": FieldType.TEXT_LIST,
    "identifier_types": FieldType.TEXT_LIST,
    "metrics.order_count": FieldType.INTEGER,
    "metrics.total_spent": FieldType.NUMBER,
    "metrics.average_order_value": FieldType.NUMBER,
    "metrics.return_count": FieldType.INTEGER,
    "metrics.total_returned": FieldType.NUMBER,
    "metrics.first_order_time": FieldType.TIMESTAMP,
    "metrics.last_order_time": FieldType.TIMESTAMP,
    "metrics.last_contact_time": FieldType.TIMESTAMP,
    "metrics.channels": FieldType.TEXT_LIST,
    "metrics.items_bought": FieldType.INTEGER,
    "metrics.abandoned_cart_count": FieldType.INTEGER,
    "metrics.campaign_delivered_count": FieldType.INTEGER,
    "metrics.campaign_opened_count": FieldType.INTEGER,
    "metrics.campaign_clicked_count": FieldType.INTEGER,
    "metrics.session_count": FieldType.INTEGER,
    "metrics.support_ticket_count": FieldType.INTEGER,
    "metrics.last_support_ticket_time": FieldType.TIMESTAMP,
    "metrics.loyalty_points_balance": FieldType.INTEGER,
}
for _channel in CONSENT_CHANNELS:
    FIELDS[f"consents.{_channel}"] = FieldType.TEXT

# Channel responsiveness (see domain/responsiveness.py): campaign events' contact channels.
RESPONSIVENESS_CHANNELS = ("email", "sms", "push", "messenger", "call")
RESPONSIVENESS_METRICS: dict[str, FieldType] = {
    "delivered": FieldType.INTEGER,
    "opened": FieldType.INTEGER,
    "clicked": FieldType.INTEGER,
    "ignored_in_a_row": FieldType.INTEGER,
    "response_rate": FieldType.NUMBER,
    "last_response_time": FieldType.TIMESTAMP,
}
RESPONSIVENESS_PREFIX = "responsiveness."
PREFERRED_CHANNEL = "responsiveness.preferred_channel"
for _channel in RESPONSIVENESS_CHANNELS:
    for _metric, _type in RESPONSIVENESS_METRICS.items():
        FIELDS[f"{RESPONSIVENESS_PREFIX}{_channel}.{_metric}"] = _type
FIELDS[PREFERRED_CHANNEL] = FieldType.TEXT

ATTRIBUTE_PREFIX = "attributes."
ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")

ORDERING = ("lt", "le", "gt", "ge")
OPERATORS: dict[FieldType, tuple[str, ...]] = {
    FieldType.NUMBER: ("eq", "ne", *ORDERING, "between", "in", "is_set"),
    FieldType.INTEGER: ("eq", "ne", *ORDERING, "between", "in", "is_set"),
    FieldType.TEXT: ("eq", "ne", "in", "contains", "starts_with", "is_set"),
    FieldType.TIMESTAMP: (*ORDERING, "between", "is_set", "within_last", "before_last"),
    FieldType.DATE: (*ORDERING, "between", "is_set", "within_last", "before_last"),
    FieldType.TEXT_LIST: ("contains", "is_set"),
    FieldType.BOOLEAN: ("eq", "ne", "is_set"),
}
ALL_OPERATORS = frozenset(op for ops in OPERATORS.values() for op in ops)
# Operators that make a condition depend on the clock.
RELATIVE_OPERATORS = ("within_last", "before_last")


# A declared custom attribute's type as rules see it (SVOD_CUSTOM_ATTRIBUTES).
ATTRIBUTE_FIELD_TYPES: dict[AttributeType, FieldType] = {
    AttributeType.STRING: FieldType.TEXT,
    AttributeType.NUMBER: FieldType.NUMBER,
    AttributeType.INTEGER: FieldType.INTEGER,
    AttributeType.BOOL: FieldType.BOOLEAN,
    AttributeType.DATE: FieldType.DATE,
    AttributeType.LIST: FieldType.TEXT_LIST,
}
NO_DECLARATIONS: Mapping[str, AttributeType] = {}


def declared_attribute(name: str, declared: Mapping[str, AttributeType]) -> AttributeType | None:
    """The declared type of ``attributes.<name>``; None for other fields and undeclared ones."""
    if not name.startswith(ATTRIBUTE_PREFIX):
        return None
    return declared.get(name[len(ATTRIBUTE_PREFIX) :])


def field_type(
    name: str, declared: Mapping[str, AttributeType] = NO_DECLARATIONS
) -> FieldType | None:
    """The field's type; a custom attribute has its declared type (undeclared ones are text).
    None for an unknown field."""
    if name.startswith(ATTRIBUTE_PREFIX):
        kind = declared_attribute(name, declared)
        if kind is not None:
            return ATTRIBUTE_FIELD_TYPES[kind]
        return FieldType.TEXT if ATTRIBUTE_NAME.match(name[len(ATTRIBUTE_PREFIX) :]) else None
    return FIELDS.get(name)
