"""Quality's check of identify calls accepted while it could not be asked (the relay's gate):
a reject rule fails the record for good, quality still unreachable retries it, a passed record
is delivered as quality standardised it, and a call that failed as a whole answers its records
with one shared error (so the relay splits it until one record's refusal is found)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2
from svod_ingestion.adapters.quality_client import Standardized, Unchecked
from svod_ingestion.entrypoints.grpc_servicer import IngestionServicer
from svod_runtime.errors import FieldViolation
from svod_runtime.outbox import DeliveryError


class FakeQuality:
    """Answers by the record's first name: 'Kid' rejected, 'Down' unreachable, 'Bad' the
    whole call refused, anything else upper-cased."""

    async def check(
        self, items: Sequence[tuple[str, common_pb2.CustomerRecord]]
    ) -> list[Standardized | Unchecked]:
        names = [record.name.first_name for _, record in items]
        if "Bad" in names:
            return [Unchecked("INVALID_ARGUMENT") for _ in items]
        results: list[Standardized | Unchecked] = []
        for _, record in items:
            if record.name.first_name == "Down":
                results.append(Unchecked("UNAVAILABLE"))
            elif record.name.first_name == "Kid":
                violation = FieldViolation("record.birth_date", "not plausible")
                results.append(Standardized(record, (violation,)))
            else:
                standardized = common_pb2.CustomerRecord()
                standardized.CopyFrom(record)
                standardized.name.first_name = record.name.first_name.upper()
                results.append(Standardized(standardized))
        return results


def stored(message_id: str, first_name: str) -> bytes:
    request = ingestion_pb2.IdentifyRequest(
        record_ref=common_pb2.RecordRef(source="kiosk", message_id=message_id),
        channel=common_pb2.SOURCE_CHANNEL_POS,
        record=common_pb2.CustomerRecord(
            identifiers=[
                common_pb2.Identifier(type=common_pb2.IDENTIFIER_TYPE_PHONE, value="+79161234567")
            ],
            name=common_pb2.PersonName(first_name=first_name),
        ),
    )
    request.observed_time.GetCurrentTime()
    return request.SerializeToString(deterministic=True)


def gate() -> IngestionServicer:
    return IngestionServicer(None, FakeQuality(), "RUB")  # type: ignore[arg-type]


def test_each_record_gets_quality_s_verdict() -> None:
    verdicts = asyncio.run(
        gate().check_stored([stored("a", "Анна"), stored("k", "Kid"), stored("d", "Down")])
    )
    passed, kid, down = verdicts
    assert isinstance(passed, bytes)
    assert ingestion_pb2.IdentifyRequest.FromString(passed).record.name.first_name == "АННА"
    assert isinstance(kid, DeliveryError) and kid.permanent
    assert "record.birth_date" in str(kid)
    assert isinstance(down, DeliveryError) and down.outage and not down.permanent


def test_a_call_refused_as_a_whole_shares_one_error_for_the_relay_to_split() -> None:
    first, second = asyncio.run(gate().check_stored([stored("a", "Анна"), stored("b", "Bad")]))
    assert isinstance(first, DeliveryError) and first is second
