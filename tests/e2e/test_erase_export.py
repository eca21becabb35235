"""Right of access and right to be forgotten, across every service that holds the person."""

from __future__ import annotations

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from svod.quality.v1 import quality_pb2
from svod.segmentation.v1 import segmentation_pb2
from svod_runtime.config import SERVICES
from tests.builders import EMAIL, PHONE, identify, random_phone, track, unique
from tests.waiting import wait_until

T = 10.0


def _person(suite):
    phone, email = random_phone(), f"{unique('erase')}@example.ru"
    surname = f"Стирова{unique('')[1:7]}"
    first = identify("pos-msk-01", phones=(phone,), first_name="Вера", last_name=surname)
    second = identify("webshop", phones=(phone,), emails=(email,), last_name=surname)
    for request in (first, second):
        suite.ingestion.Identify(request, timeout=T)
        suite.wait_processed(request.record_ref)
    who = common_pb2.Identifier(type=PHONE, value=phone)
    order = track(
        "webshop",
        common_pb2.EVENT_TYPE_ORDER_PLACED,
        who,
        total="990",
        order_id=f"order-of-{surname}",
    )
    suite.ingestion.Track(order, timeout=T)
    customer_id = suite.wait_processed(order.record_ref).customer_id
    return customer_id, phone, email, surname, [first, second, order]


def _places_holding(suite_database, needles: list[str]) -> list[str]:
    """Every (schema.table) whose rows mention any needle, as text or inside bytea."""
    found = []
    with suite_database.admin_connect() as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ANY(%s) AND table_type = 'BASE TABLE'",
            (list(SERVICES),),
        ).fetchall()
        for schema, table in tables:
            for needle in needles:
                hex_needle = needle.encode().hex()
                hit = conn.execute(
                    f'SELECT 1 FROM "{schema}"."{table}" t '
                    "WHERE strpos(lower(t::text), lower(%s)) > 0 OR strpos(t::text, %s) > 0 "
                    "LIMIT 1",
                    (needle, hex_needle),
                ).fetchone()
                if hit:
                    found.append(f"{schema}.{table} holds {needle!r}")
    return found


def test_export_returns_everything_held_about_the_person(suite) -> None:
    customer_id, _phone, email, surname, messages = _person(suite)
    export = suite.profile.ExportPersonalData(
        profile_pb2.ExportPersonalDataRequest(customer_id=customer_id), timeout=T
    )
    assert export.profile.last_name.value == surname
    assert {i.identifier.value for i in export.profile.identifiers} >= {email}
    assert [e.event_type for e in export.timeline] == ["order_placed"]
    assert {(r.source, r.message_id) for r in export.records} == {
        (m.record_ref.source, m.record_ref.message_id) for m in messages
    }


def test_erase_leaves_nothing_identifying_in_any_service(suite, suite_database) -> None:
    customer_id, phone, email, surname, _ = _person(suite)
    digits = phone.replace(" ", "")[-10:]
    needles = [digits, email, surname]
    assert _places_holding(suite_database, needles), "the person should be stored before"
    # A campaign system reported the e-mail bounced: quality keeps (a hash of) it.
    suite.quality.ReportContactFailures(
        quality_pb2.ReportContactFailuresRequest(
            failures=[
                quality_pb2.ContactFailure(
                    identifier=common_pb2.Identifier(type=EMAIL, value=email)
                )
            ]
        ),
        timeout=T,
    )

    receipt = suite.profile.ErasePersonalData(
        profile_pb2.ErasePersonalDataRequest(
            customer_id=customer_id, actor="dpo@shop", reason="data subject request"
        ),
        timeout=T,
    )
    assert receipt.receipt_id
    assert receipt.erased_counts["ingestion.payloads"] == 3
    assert receipt.erased_counts["identity.identifiers"] == 2
    assert receipt.erased_counts["quality.records"] >= 1
    assert _places_holding(suite_database, needles) == []

    with pytest.raises(grpc.RpcError) as gone:
        suite.profile.GetProfile(
            profile_pb2.GetProfileRequest(
                identifier=common_pb2.Identifier(type=EMAIL, value=email)
            ),
            timeout=T,
        )
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    # Erasing again is harmless (a retried request).
    again = suite.profile.ErasePersonalData(
        profile_pb2.ErasePersonalDataRequest(customer_id=customer_id, actor="dpo@shop"),
        timeout=T,
    )
    assert again.erased_counts["ingestion.payloads"] == 0


def test_erase_needs_an_actor(suite) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        suite.profile.ErasePersonalData(
            profile_pb2.ErasePersonalDataRequest(
                customer_id="00000000-0000-4000-8000-00000000000a"
            ),
            timeout=T,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _delivered(suite, request) -> str:
    suite.ingestion.Identify(request, timeout=T)
    status = suite.wait_processed(request.record_ref)
    assert status.customer_id, status
    return status.customer_id


def test_export_holds_what_every_service_keeps(suite) -> None:
    """The personal-data export (#16 item 7): besides the profile, every value observed, the
    consent history, identity's identifiers and review items, segment memberships and the
    quality score."""
    surname = f"Выгрузова{unique('')[1:7]}"
    town = f"Экспортск{unique('')[1:5]}"
    phone, email = random_phone(), f"{unique('svet')}@example.ru"
    first = identify("webshop", phones=(phone,), first_name="Светлана", last_name=surname)
    first.record.addresses.add(country_code="RU", city=town, address_line="ул. Ленина, д. 5, кв. 7")
    second = identify("pos-9", emails=(email,), first_name="Света", last_name=surname)
    second.record.addresses.add(
        country_code="RU", city=town, address_line="улица Ленина, дом 5, кв. 7"
    )
    customer_id = _delivered(suite, first)
    other_id = _delivered(suite, second)
    suite.profile.UpdateConsent(
        profile_pb2.UpdateConsentRequest(
            customer_id=customer_id,
            consent=profile_pb2.Consent(
                channel=profile_pb2.CONSENT_CHANNEL_EMAIL,
                status=profile_pb2.CONSENT_STATUS_OPTED_IN,
                source="webshop",
            ),
        ),
        timeout=T,
    )
    suite.profile.UpdateConsent(
        profile_pb2.UpdateConsentRequest(
            customer_id=customer_id,
            consent=profile_pb2.Consent(
                channel=profile_pb2.CONSENT_CHANNEL_EMAIL,
                status=profile_pb2.CONSENT_STATUS_OPTED_OUT,
                source="call-centre",
            ),
        ),
        timeout=T,
    )
    segment_id = unique("export")
    suite.segmentation.CreateSegment(
        segmentation_pb2.CreateSegmentRequest(
            segment=segmentation_pb2.Segment(
                segment_id=segment_id,
                rule=segmentation_pb2.RuleNode(
                    field=segmentation_pb2.FieldCondition(
                        field="last_name", operator="eq", values=[surname]
                    )
                ),
            )
        ),
        timeout=T,
    )
    export = _export_with_segment(suite, customer_id, segment_id)

    assert export.profile.last_name.value == surname
    observed = {(v.field, v.value) for v in export.observed_values}
    assert ("first_name", "Светлана") in observed and ("last_name", surname) in observed
    assert all(v.record_ref.source == "webshop" for v in export.observed_values)
    assert [(c.status, c.source) for c in export.consent_history] == [
        (profile_pb2.CONSENT_STATUS_OPTED_IN, "webshop"),
        (profile_pb2.CONSENT_STATUS_OPTED_OUT, "call-centre"),
    ]
    # Identity's identifiers, in their canonical form, with the source that gave them.
    assert [(i.identifier.type, i.source) for i in export.identifiers] == [(PHONE, "webshop")]
    # Other tests' segments may hold her too (the suite's database is shared).
    memberships = {m.segment_id: m for m in export.segment_memberships}
    assert memberships[segment_id].enter_time.seconds > 0
    assert export.HasField("quality_score") and 0 <= export.quality_score.score <= 100
    # Светлана and Света of the same flat: a weak match, identity asked a reviewer (the two
    # records stay apart); the item is in the export, without the other side's data.
    assert other_id != customer_id
    assert len(export.review_items) == 1
    item = export.review_items[0]
    assert item.state == "open" and item.record_ref.source in ("webshop", "pos-9")


def _export_with_segment(suite, customer_id: str, segment_id: str):
    def with_membership() -> profile_pb2.ExportPersonalDataResponse | None:
        export = suite.profile.ExportPersonalData(
            profile_pb2.ExportPersonalDataRequest(customer_id=customer_id), timeout=T
        )
        return (
            export if any(m.segment_id == segment_id for m in export.segment_memberships) else None
        )

    return wait_until(with_membership, 15, what="the segment membership in the export")
