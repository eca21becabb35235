"""Request builders shared by the cross-service tests."""

from __future__ import annotations

import secrets

from google.protobuf.timestamp_pb2 import Timestamp
from google.type import money_pb2

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2

PHONE = common_pb2.IDENTIFIER_TYPE_PHONE
EMAIL = common_pb2.IDENTIFIER_TYPE_EMAIL
CARD = common_pb2.IDENTIFIER_TYPE_LOYALTY_CARD


def unique(prefix: str = "m") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def random_phone() -> str:
    """A Moscow mobile number nobody else in the run uses (never one identity reads as a
    placeholder: at most two distinct digits among the last seven, like 282-82-82)."""
    while True:
        digits = f"{secrets.randbelow(10**7):07d}"
        if len(set(digits)) > 2:
            return f"+7 916 {digits}"


def identify(  # noqa: PLR0913
    source: str,
    *,
    message_id: str | None = None,
    channel: int = common_pb2.SOURCE_CHANNEL_WEB,
    phones: tuple[str, ...] = (),
    emails: tuple[str, ...] = (),
    cards: tuple[str, ...] = (),
    first_name: str = "",
    last_name: str = "",
    observed: Timestamp | None = None,
) -> ingestion_pb2.IdentifyRequest:
    identifiers = [common_pb2.Identifier(type=PHONE, value=v) for v in phones]
    identifiers += [common_pb2.Identifier(type=EMAIL, value=v) for v in emails]
    identifiers += [common_pb2.Identifier(type=CARD, value=v) for v in cards]
    request = ingestion_pb2.IdentifyRequest(
        record_ref=common_pb2.RecordRef(source=source, message_id=message_id or unique()),
        channel=channel,  # type: ignore[arg-type]
        record=common_pb2.CustomerRecord(
            identifiers=identifiers,
            name=common_pb2.PersonName(first_name=first_name, last_name=last_name),
        ),
    )
    if observed is not None:
        request.observed_time.CopyFrom(observed)
    return request


def money(amount: str, currency: str = "RUB") -> money_pb2.Money:
    units, _, frac = amount.partition(".")
    nanos = int((frac + "000000000")[:9]) if frac else 0
    sign = -1 if units.startswith("-") else 1
    return money_pb2.Money(currency_code=currency, units=int(units), nanos=sign * nanos)


def at(iso: str) -> Timestamp:
    ts = Timestamp()
    ts.FromJsonString(iso)
    return ts


def track(  # noqa: PLR0913
    source: str,
    event_type: int,
    identifier: common_pb2.Identifier,
    *,
    occurred: str = "2026-10-01T12:00:00Z",
    total: str | None = None,
    lines: tuple[tuple[str, int, str, str], ...] = (),
    message_id: str | None = None,
    contact_channel: str = "",
    order_id: str = "",
    channel: int = common_pb2.SOURCE_CHANNEL_WEB,
) -> ingestion_pb2.TrackRequest:
    """``lines`` are (category, quantity, unit price, discount)."""
    event = common_pb2.Event(
        type=event_type,  # type: ignore[arg-type]
        occurred_time=at(occurred),
        identifiers=[identifier],
        contact_channel=contact_channel,
        order_id=order_id,
        lines=[
            common_pb2.LineItem(
                category=category, quantity=qty, unit_price=money(price), discount=money(disc)
            )
            for category, qty, price, disc in lines
        ],
    )
    if total is not None:
        event.total.CopyFrom(money(total))
    return ingestion_pb2.TrackRequest(
        record_ref=common_pb2.RecordRef(source=source, message_id=message_id or unique("ev")),
        channel=channel,  # type: ignore[arg-type]
        event=event,
    )
