from __future__ import annotations

import gc
import random

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from svod_runtime.config import ServiceConfig, service_database_url
from svod_runtime.errors import FieldViolation, InvalidArgument, NotFound
from svod_runtime.interceptors import status_for
from svod_runtime.outbox import MAX_DELAY_S, MAX_OUTAGE_DELAY_S, DeliveryError, retry_delay
from svod_runtime.runtime import tune_garbage_collector


def test_invalid_argument_carries_bad_request_field_violations() -> None:
    code, message, trailers = status_for(
        InvalidArgument([FieldViolation("record_ref.source", "required")])
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "record_ref.source" in message
    status = status_pb2.Status.FromString(dict(trailers)["grpc-status-details-bin"])
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "record_ref.source"


def test_domain_errors_map_to_their_codes() -> None:
    assert status_for(NotFound("x"))[0] == grpc.StatusCode.NOT_FOUND


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(7)
    delays = [retry_delay(n, rng) for n in range(1, 20)]
    assert delays[0] <= 0.5
    assert delays[5] > delays[0]
    assert max(delays) <= MAX_DELAY_S


def test_an_outage_backs_off_to_seconds_not_minutes() -> None:
    """A peer back after a long outage gets its backlog within seconds."""
    rng = random.Random(7)
    delays = [retry_delay(n, rng, cap_s=MAX_OUTAGE_DELAY_S) for n in range(1, 40)]
    assert max(delays) <= MAX_OUTAGE_DELAY_S <= 5.0
    assert delays[-1] >= MAX_OUTAGE_DELAY_S / 2


def test_permanent_and_transient_peer_answers() -> None:
    assert DeliveryError("INVALID_ARGUMENT", "").permanent
    assert not DeliveryError("UNAVAILABLE", "").permanent
    assert not DeliveryError("DEADLINE_EXCEEDED", "").permanent


def test_service_url_uses_its_own_role_unless_given() -> None:
    env = {"SVOD_DATABASE_URL": "postgresql://postgres@db:5432/svod"}
    assert service_database_url("identity", env) == (
        "postgresql+psycopg://svod_identity@db:5432/svod"
    )
    env["SVOD_PROFILE_DATABASE_URL"] = "postgresql://p:secret@profile-db/prof"
    assert service_database_url("profile", env) == "postgresql+psycopg://p:secret@profile-db/prof"


def test_config_reads_ports_and_peers() -> None:
    config = ServiceConfig.from_env(
        "ingestion",
        {
            "SVOD_DATABASE_URL": "postgresql://x@h/d",
            "SVOD_INGESTION_PORT": "6000",
            "SVOD_IDENTITY_TARGET": "identity:7000",
        },
    )
    assert config.port == 6000
    assert config.peers["identity"] == "identity:7000"
    assert config.peers["profile"] == "127.0.0.1:50053"


def test_trace_carriers_read_and_write_like_the_w3c_propagator() -> None:
    from opentelemetry import baggage, propagate, trace
    from opentelemetry import context as otel_context

    from svod_runtime.telemetry import (
        Telemetry,
        context_from_carrier,
        current_trace_carrier,
        trace_carrier_of,
    )

    tracer = Telemetry("carrier-test").tracer
    span = tracer.start_span("work")
    expected: dict[str, str] = {}
    propagate.inject(expected, context=trace.set_span_in_context(span))
    assert trace_carrier_of(span) == expected
    read = trace.get_current_span(context_from_carrier(expected)).get_span_context()
    generic = trace.get_current_span(propagate.extract(expected)).get_span_context()
    assert read == generic and read.is_remote and read.trace_id == span.get_span_context().trace_id
    # Baggage, tracestate or a malformed header take the generic path, losing nothing.
    with_baggage = baggage.set_baggage("tenant", "shop-1", trace.set_span_in_context(span))
    token = otel_context.attach(with_baggage)
    try:
        carried = current_trace_carrier()
    finally:
        otel_context.detach(token)
    assert "baggage" in carried and carried["traceparent"] == expected["traceparent"]
    assert baggage.get_baggage("tenant", context_from_carrier(carried)) == "shop-1"
    for bad in ("00-" + "0" * 32 + "-" + "1" * 16 + "-01", "zz-garbage", "00-xyz-abc-01"):
        assert (
            not trace.get_current_span(context_from_carrier({"traceparent": bad}))
            .get_span_context()
            .is_valid
        )
    span.end()


def test_timestamps_convert_exactly_as_the_protobuf_library_does() -> None:
    import datetime as dt
    import random

    from google.protobuf.timestamp_pb2 import Timestamp

    from svod_runtime.protoconv import datetime_to_timestamp

    rng = random.Random(3)
    moscow = dt.timezone(dt.timedelta(hours=3))
    start = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
    for _ in range(500):
        moment = start + dt.timedelta(microseconds=rng.randrange(250 * 365 * 86_400 * 10**6))
        for value in (moment, moment.astimezone(moscow), moment.replace(tzinfo=None)):
            expected = Timestamp()
            expected.FromDatetime(value)
            assert datetime_to_timestamp(value) == expected, value
    assert datetime_to_timestamp(None) == Timestamp()


def test_timestamps_and_enum_names_read_back_exactly() -> None:
    import datetime as dt
    import random

    from google.protobuf.timestamp_pb2 import Timestamp

    from svod.common.v1 import common_pb2
    from svod.profile.v1 import profile_pb2
    from svod_runtime.bounds import EARLIEST_SECONDS, LATEST_SECONDS
    from svod_runtime.protoconv import (
        enum_number,
        enum_short_name,
        enum_value,
        timestamp_to_datetime,
    )

    rng = random.Random(5)
    for _ in range(500):
        ts = Timestamp(
            seconds=rng.randrange(EARLIEST_SECONDS, LATEST_SECONDS), nanos=rng.randrange(10**9)
        )
        assert timestamp_to_datetime(ts) == ts.ToDatetime(tzinfo=dt.UTC)
    assert timestamp_to_datetime(Timestamp()) is None
    types = common_pb2.IdentifierType.DESCRIPTOR
    for value in types.values:
        short = value.name.removeprefix("IDENTIFIER_TYPE_").lower()
        assert enum_short_name(types, value.number, "IDENTIFIER_TYPE_") == short
        assert enum_number(types, short, "IDENTIFIER_TYPE_") == value.number
        wrapped = enum_value(common_pb2.IdentifierType, short, "IDENTIFIER_TYPE_")
        assert wrapped == value.number
    for value in profile_pb2.ConsentStatus.DESCRIPTOR.values:
        short = value.name.removeprefix("CONSENT_STATUS_").lower()
        assert enum_value(profile_pb2.ConsentStatus, short, "CONSENT_STATUS_") == value.number
    assert enum_value(common_pb2.Gender, "no-such-gender", "GENDER_") == 0
    assert enum_number(types, "EMAIL", "IDENTIFIER_TYPE_") == common_pb2.IDENTIFIER_TYPE_EMAIL
    assert enum_short_name(types, 999, "IDENTIFIER_TYPE_") == ""
    assert enum_number(types, "no-such-type", "IDENTIFIER_TYPE_") == 0


@pytest.mark.parametrize(
    "text",
    [
        '{"first_name": "Мария", "phones": ["+79161234567"], "score": 0.8125, "n": -3}',
        '[1, 2.5, 1e-7, true, null, "a\\"b", {"nested": [[]]}]',
        "123456789012345678901234567890",  # beyond 64 bits: orjson would give a float
        '{"card": "1234567890123456789"}',  # a 19-digit run inside a string
        "1e400",  # jsonb holds it; orjson refuses it, json reads infinity
        '"\\u0451 plain"',
    ],
)
def test_json_columns_load_exactly_as_the_json_module_reads_them(text: str) -> None:
    import json

    from svod_runtime.db import load_json

    expected = json.loads(text)
    for data in (text, text.encode(), memoryview(text.encode())):
        loaded = load_json(data)
        assert loaded == expected
        assert type(loaded) is type(expected)


def _json_default(value: object) -> object:
    import datetime as dt
    from decimal import Decimal

    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON: {value!r}")


@pytest.mark.parametrize(
    "value",
    [
        [{"c": "8f1c2a3e-1111-2222-3333-444455556666", "props": {"город": "Москва"}, "n": 3}],
        [["key", "cGF5bG9hZA==", {"traceparent": "00-ab-cd-01"}]],
        {"big": 123456789012345678901234567890},  # beyond 64 bits: orjson refuses it
        {1: "a non-string key"},  # orjson refuses it, json.dumps writes "1"
        "\ud800 a lone surrogate",  # not UTF-8: orjson refuses it
        [None, True, 0, -5, "", []],
    ],
)
def test_json_parameters_are_the_values_json_dumps_writes(value: object) -> None:
    import json

    from svod_runtime.db import dump_json

    assert json.loads(dump_json(value)) == json.loads(json.dumps(value))


def test_json_parameters_write_dates_and_decimals_as_the_default_does() -> None:
    import datetime as dt
    import json
    import zoneinfo
    from decimal import Decimal

    from svod_runtime.db import dump_json

    row = {
        "at": dt.datetime(2026, 12, 5, 1, 2, 3, 456, tzinfo=dt.UTC),
        "whole_second": dt.datetime(2026, 12, 5, 1, 2, 3, tzinfo=dt.UTC),
        "moscow": dt.datetime(2026, 12, 5, 1, 2, 3, tzinfo=zoneinfo.ZoneInfo("Europe/Moscow")),
        "naive": dt.datetime(2026, 12, 5, 1, 2, 3),
        "day": dt.date(2026, 12, 5),
        "amount": Decimal("1234.50"),
    }
    assert json.loads(dump_json([row], _json_default)) == json.loads(
        json.dumps([row], default=_json_default)
    )


def test_gc_tuning_freezes_start_up_objects_and_collects_the_young_less_often() -> None:
    before = gc.get_threshold()
    try:
        assert (
            ServiceConfig.from_env(
                "identity", {"SVOD_DATABASE_URL": "postgresql://h/d"}
            ).gc_young_threshold
            == 50_000
        )
        config = ServiceConfig.from_env(
            "identity",
            {"SVOD_DATABASE_URL": "postgresql://h/d", "SVOD_GC_YOUNG_THRESHOLD": "12345"},
        )
        tune_garbage_collector(config.gc_young_threshold)
        assert gc.get_threshold() == (12_345, 20, 100)
        assert gc.get_freeze_count() > 0
        gc.unfreeze()
        tune_garbage_collector(0)  # Python's defaults kept: nothing changes
        assert gc.get_threshold() == (12_345, 20, 100)
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
