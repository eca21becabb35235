"""The kinds of identifier a record can carry (``svod.common.v1.IdentifierType``).

Services pass identifier types around as their short names ("phone", "loyalty_card"), the
names the gRPC entrypoints derive from the proto enum; the members are those strings, so a
member compares equal to the name a message carried.
"""

from __future__ import annotations

import enum


class IdentifierType(enum.StrEnum):
    """An identifier type by its short name; ``proto_number`` is its proto enum value."""

    EMAIL = "email"
    PHONE = "phone"
    LOYALTY_CARD = "loyalty_card"
    EXTERNAL_ID = "external_id"
    DEVICE_ID = "device_id"
    ANALYTICS_CLIENT_ID = "analytics_client_id"
    CUSTOM = "custom"

    @property
    def proto_number(self) -> int:
        return _PROTO_NUMBERS[self]

    @property
    def namespaced(self) -> bool:
        """Whether a value only means something within a namespace (the issuing system of an
        external id, the name of a custom type)."""
        return self in NAMESPACED


# The values of svod.common.v1.IdentifierType (0 is IDENTIFIER_TYPE_UNSPECIFIED: no type).
_PROTO_NUMBERS = {
    IdentifierType.EMAIL: 1,
    IdentifierType.PHONE: 2,
    IdentifierType.LOYALTY_CARD: 3,
    IdentifierType.EXTERNAL_ID: 4,
    IdentifierType.DEVICE_ID: 5,
    IdentifierType.ANALYTICS_CLIENT_ID: 6,
    IdentifierType.CUSTOM: 7,
}

# Every type's short name, in proto order.
TYPE_NAMES: tuple[str, ...] = tuple(t.value for t in IdentifierType)
NAMESPACED: frozenset[IdentifierType] = frozenset(
    {IdentifierType.EXTERNAL_ID, IdentifierType.CUSTOM}
)
# The short names of the namespaced types.
NAMESPACED_NAMES: tuple[str, ...] = tuple(t.value for t in IdentifierType if t in NAMESPACED)
