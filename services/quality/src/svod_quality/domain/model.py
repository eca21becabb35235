"""The record the quality service standardises, and what it says about it.

Plain dataclasses: the servicer translates ``svod.common.v1.CustomerRecord`` to and from these,
so the domain never sees protobuf.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal, NamedTuple

IDENTIFIER_TYPES: Final = frozenset(
    {
        "email",
        "phone",
        "loyalty_card",
        "external_id",
        "device_id",
        "analytics_client_id",
        "custom",
    }
)

Gender = Literal["female", "male", "unknown"]
GENDERS: Final = frozenset({"female", "male", "unknown"})


class FindingAction(StrEnum):
    """As the proto's ``Finding.action`` spells it: the record was rejected for it, it was only
    flagged, or standardisation changed something a person may want to know about."""

    REJECTED = "rejected"
    FLAGGED = "flagged"
    CORRECTED = "corrected"


class Identifier(NamedTuple):
    """One identifier; a tuple so ``(type, value, namespace)`` literals work too."""

    type: str
    value: str
    namespace: str = ""


@dataclass(slots=True)
class Address:
    country_code: str = ""
    postal_code: str = ""
    region: str = ""
    city: str = ""
    address_line: str = ""


@dataclass(slots=True)
class RawRecord:
    """What a source knows about a person (``CustomerRecord``), before or after standardising."""

    identifiers: list[Identifier] = field(default_factory=list)
    first_name: str = ""
    last_name: str = ""
    middle_name: str = ""
    full_name: str = ""
    birth_date: dt.date | None = None
    gender: str = "unknown"
    addresses: list[Address] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)


class Finding(NamedTuple):
    """One thing standardisation or validation has to say about a record.

    ``field`` is a path into the record as the caller sent it, spelled like the proto
    (``identifiers[1].value``, ``name.first_name``, ``addresses[0].postal_code``), so a caller
    can point at the exact input. ``rule`` is the validation rule id, or ``std.<what>`` for
    findings of standardisation itself. ``suggestion`` is a proposed value that was NOT applied.
    (A NamedTuple: records produce many findings and tuples are the cheapest to build.)
    """

    field: str
    action: FindingAction
    rule: str
    message: str
    suggestion: str = ""


@dataclass(slots=True)
class Result:
    """The standardised record, whether a rejecting rule failed, and every finding."""

    record: RawRecord
    rejected: bool
    findings: list[Finding]
