"""What the front door accepts, the receivers accept: nothing ingestion stores can be refused
downstream on a bound or a format, where it would fail for good after the client was told OK.

Pure properties over the domains' checks (no servers): ingestion's validation against
identity's identifier normalisation and record building, and against profile's reading of an
event. This file may import several services' domains because it tests the contract between
them; services themselves never do.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2
from svod.profile.v1 import profile_pb2
from svod_identity.domain.identifiers import normalize_identifiers
from svod_identity.domain.records import RawRecord, build_record
from svod_ingestion.domain.messages import validate_identify, validate_track
from svod_ingestion.entrypoints.grpc_servicer import identify_message, track_message
from svod_profile.entrypoints.grpc_servicer import application, event_fact
from svod_runtime.errors import InvalidArgument
from tests.properties.strategies import near, texts

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
TYPES = ("email", "phone", "loyalty_card", "external_id", "device_id", "analytics_client_id")


def _accepted(check) -> bool:
    try:
        check()
    except InvalidArgument:
        return False
    return True


_VALUES = st.one_of(
    texts(40),
    st.sampled_from(
        ("- -", " - ", "\t", "+7 916 123-45-67", "8 916 123 45 67", "a@b.ru", " A@B.RU ", "12 34")
    ),
)


@given(
    identifiers=st.lists(
        st.tuples(st.sampled_from((*TYPES, "custom")), _VALUES, st.sampled_from(("", "crm", " "))),
        min_size=1,
        max_size=3,
    )
)
def test_identifiers_ingestion_accepts_identity_can_normalise(identifiers) -> None:
    from svod_ingestion.domain.messages import validate_identifiers
    from svod_runtime.errors import ViolationCollector

    errors = ViolationCollector()
    validate_identifiers(identifiers, errors, "event.identifiers")
    if not errors.violations:
        normalize_identifiers(identifiers)  # raises InvalidArgument if identity refuses one


def _identify_template() -> ingestion_pb2.IdentifyRequest:
    request = ingestion_pb2.IdentifyRequest(
        record_ref=common_pb2.RecordRef(source="pos-1", message_id="m-1"),
        channel=common_pb2.SOURCE_CHANNEL_POS,
        record=common_pb2.CustomerRecord(
            identifiers=[
                common_pb2.Identifier(type=common_pb2.IDENTIFIER_TYPE_PHONE, value="+79161234567")
            ],
            name=common_pb2.PersonName(first_name="Мария", last_name="Смирнова"),
            addresses=[common_pb2.PostalAddress(city="Москва", postal_code="101000")],
            attributes={"tier": "gold"},
        ),
    )
    request.observed_time.FromJsonString("2026-05-01T10:00:00Z")
    return request


@given(request=near(_identify_template()))
def test_a_record_ingestion_accepts_identity_and_profile_accept(request) -> None:
    if not _accepted(lambda: validate_identify(identify_message(request), NOW)):
        return
    from svod_identity.entrypoints.grpc_servicer import raw_record
    from svod_ingestion.adapters.downstream import resolve_request

    build_record(raw_record(resolve_request(request)), NOW)
    record = request.record
    application(
        profile_pb2.ApplyRequest(
            customer_id="0190d5a0-0000-7000-8000-000000000000",
            record_ref=request.record_ref,
            channel=request.channel,
            observed_time=request.observed_time,
            identifiers=record.identifiers,
            name=record.name,
            birth_date=record.birth_date,
            gender=record.gender,
            addresses=record.addresses,
            attributes=record.attributes,
        ),
        NOW,
    )


def _track_template() -> ingestion_pb2.TrackRequest:
    rub = {"currency_code": "RUB"}
    event = common_pb2.Event(
        type=common_pb2.EVENT_TYPE_ORDER_PLACED,
        identifiers=[
            common_pb2.Identifier(type=common_pb2.IDENTIFIER_TYPE_LOYALTY_CARD, value="7700 1234")
        ],
        order_id="o-1",
        lines=[
            common_pb2.LineItem(
                sku="s-1",
                category="shoes",
                quantity=2,
                unit_price={**rub, "units": 700},  # type: ignore[arg-type]
                discount={**rub, "units": 50},  # type: ignore[arg-type]
            )
        ],
        total={**rub, "units": 1400},  # type: ignore[arg-type]
        properties={"page": "/cart"},
    )
    event.occurred_time.FromJsonString("2026-05-01T10:00:00Z")
    return ingestion_pb2.TrackRequest(
        record_ref=common_pb2.RecordRef(source="pos-1", message_id="e-1"),
        channel=common_pb2.SOURCE_CHANNEL_POS,
        event=event,
    )


@pytest.mark.parametrize("spoil", [1, 3])
def test_an_event_ingestion_accepts_profile_applies(spoil) -> None:
    @given(request=near(_track_template(), spoil=spoil))
    def check(request) -> None:
        if not _accepted(lambda: validate_track(track_message(request), NOW, "RUB")):
            return
        from svod_identity.entrypoints.grpc_servicer import identifier_triple

        normalize_identifiers([identifier_triple(i) for i in request.event.identifiers])
        event_fact(
            profile_pb2.ApplyEventRequest(
                customer_id="0190d5a0-0000-7000-8000-000000000000",
                record_ref=request.record_ref,
                channel=request.channel,
                event=request.event,
            ),
            "RUB",
        )

    check()


def test_raw_records_are_what_identity_builds_from() -> None:
    """The bridge the properties above use is identity's own conversion."""
    record = build_record(
        RawRecord("pos-1", "m-1", "pos", None, [("phone", "8 916 123-45-67", "")]), NOW
    )
    assert record.identifiers[0].value == "+79161234567"
