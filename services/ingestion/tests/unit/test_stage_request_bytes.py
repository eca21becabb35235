"""The StageEventImportRequest ingestion builds from stored TrackRequest bytes without parsing
them (adapters/import_peers.stage_request_bytes) is exactly the request built the parsing way:
profile reads the same events, whatever they hold; a payload with a top-level field the
renumbering does not know goes the parsing way."""

from __future__ import annotations

import random

from google.protobuf.internal import encoder

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2
from svod.profile.v1 import profile_pb2
from svod_ingestion.adapters.import_peers import apply_event_bytes, stage_request_bytes

CUSTOMER = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


def track(n: int, rng: random.Random) -> ingestion_pb2.TrackRequest:
    request = ingestion_pb2.TrackRequest(
        record_ref=common_pb2.RecordRef(
            source="shop", message_id=f"o-{n}" + "x" * rng.choice([0, 0, 300])
        ),
        channel=rng.choice([0, 1, 2]),  # 0: left out of the bytes
    )
    event = request.event
    event.type = common_pb2.EVENT_TYPE_ORDER_PLACED
    event.order_id = f"o-{n}"
    event.occurred_time.seconds = 1_790_000_000 + n
    event.identifiers.add(type=common_pb2.IDENTIFIER_TYPE_PHONE, value=f"+7999{n:07d}")
    for k in range(rng.choice([0, 0, 0, 5, 600])):  # events over 127 and 16,383 bytes too
        line = event.lines.add(sku=f"sku-{k}" * rng.randrange(1, 6), quantity=k + 1)
        line.unit_price.currency_code = "RUB"
        line.unit_price.units = 100 + k
    if rng.random() < 0.3:
        event.properties["page"] = "каталог/обувь"
    return request


def parsed_way(import_id: str, items: list[tuple[bytes, str]]) -> bytes:
    events = []
    for payload, customer_id in items:
        message = ingestion_pb2.TrackRequest.FromString(payload)
        events.append(
            profile_pb2.ApplyEventRequest(
                customer_id=customer_id,
                record_ref=message.record_ref,
                channel=message.channel,
                event=message.event,
            )
        )
    return profile_pb2.StageEventImportRequest(
        import_id=import_id, events=events
    ).SerializeToString(deterministic=True)


def test_the_bytes_are_the_request_built_by_parsing() -> None:
    rng = random.Random(22)
    items = [(track(n, rng).SerializeToString(deterministic=True), CUSTOMER) for n in range(300)]
    sizes = [len(p) for p, _ in items]
    assert min(sizes) < 128 < 16_384 < max(sizes)  # one-, two- and three-byte lengths
    built = stage_request_bytes("imp-1", items)
    assert built == parsed_way("imp-1", items)
    read = profile_pb2.StageEventImportRequest.FromString(built)
    assert [e.record_ref.message_id for e in read.events] == [
        ingestion_pb2.TrackRequest.FromString(p).record_ref.message_id for p, _ in items
    ]
    assert {e.customer_id for e in read.events} == {CUSTOMER}


def test_an_unknown_top_level_field_goes_the_parsing_way() -> None:
    payload = track(1, random.Random(1)).SerializeToString(deterministic=True)
    # Field 9 (a string) as a newer client might send it.
    with_unknown = payload + encoder.TagBytes(9, 2) + bytes([3]) + b"new"
    assert ingestion_pb2.TrackRequest.FromString(with_unknown).record_ref.source == "shop"
    assert apply_event_bytes(with_unknown, CUSTOMER) == apply_event_bytes(payload, CUSTOMER)
    message = profile_pb2.ApplyEventRequest.FromString(apply_event_bytes(with_unknown, CUSTOMER))
    assert (message.customer_id, message.event.order_id) == (CUSTOMER, "o-1")
