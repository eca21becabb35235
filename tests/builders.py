"""Request builders shared by the cross-service tests."""

from __future__ import annotations

import secrets

from google.protobuf.timestamp_pb2 import Timestamp

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2

PHONE = common_pb2.IDENTIFIER_TYPE_PHONE
EMAIL = common_pb2.IDENTIFIER_TYPE_EMAIL
CARD = common_pb2.IDENTIFIER_TYPE_LOYALTY_CARD


def unique(prefix: str = "m") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def random_phone() -> str:
    """A Moscow mobile number nobody else in the run uses."""
    return f"+7 916 {secrets.randbelow(10**7):07d}"


def identify(
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
