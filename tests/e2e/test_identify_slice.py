"""The vertical slice through the public API: Identify -> outbox -> Resolve -> Apply -> Get."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2
from svod.ingestion.v1 import ingestion_pb2
from svod.profile.v1 import profile_pb2
from tests.builders import CARD, EMAIL, PHONE, identify, random_phone, unique

T = 10.0
DELIVERED = ingestion_pb2.RecordStatus.STATE_DELIVERED


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    """The google.rpc.BadRequest field violations carried in the status details."""
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                bad_request = error_details_pb2.BadRequest()
                if detail.Unpack(bad_request):
                    return {v.field: v.description for v in bad_request.field_violations}
    return {}


def by_phone(phone: str) -> profile_pb2.GetProfileRequest:
    return profile_pb2.GetProfileRequest(identifier=common_pb2.Identifier(type=PHONE, value=phone))


def test_two_sources_same_phone_in_different_formats_make_one_customer(suite) -> None:
    digits = random_phone()[-7:]
    national = f"8 (916) {digits[:3]}-{digits[3:5]}-{digits[5:]}"
    international = f"+7 916 {digits[:3]} {digits[3:5]} {digits[5:]}"
    pos = identify(
        "pos-msk-01",
        channel=common_pb2.SOURCE_CHANNEL_POS,
        phones=(national,),
        cards=(unique("card"),),
        first_name="Маша",
    )
    web = identify(
        "webshop",
        phones=(international,),
        emails=(f"{unique('m')}@example.ru",),
        first_name="Мария",
        last_name="Смирнова",
    )
    suite.ingestion.Identify(pos, timeout=T)
    first = suite.wait_processed(pos.record_ref)
    suite.ingestion.Identify(web, timeout=T)
    second = suite.wait_processed(web.record_ref)

    assert first.state == second.state == DELIVERED
    assert first.customer_id == second.customer_id

    profile = suite.profile.GetProfile(by_phone(national), timeout=T)
    assert profile.customer_id == first.customer_id
    assert {s.source for s in profile.sources} == {"pos-msk-01", "webshop"}
    assert {(i.identifier.type, i.identifier.value) for i in profile.identifiers} >= {
        (PHONE, f"+7916{digits}")
    }
    # The newer observation wins the shown first name; both stay attributed to their source.
    assert profile.first_name.value == "Мария"
    assert profile.first_name.provenance.source == "webshop"
    # Any identifier answers, in any spelling.
    by_email = suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(
            identifier=common_pb2.Identifier(
                type=EMAIL, value=web.record.identifiers[1].value.upper()
            )
        ),
        timeout=T,
    )
    assert by_email.customer_id == profile.customer_id
    by_id = suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(customer_id=profile.customer_id), timeout=T
    )
    assert by_id.version == profile.version


def test_retried_identify_creates_nothing_new(suite) -> None:
    request = identify("app", phones=(random_phone(),), first_name="Дмитрий")
    first = suite.ingestion.Identify(request, timeout=T)
    delivered = suite.wait_processed(request.record_ref)
    retry = suite.ingestion.Identify(request, timeout=T)

    assert not first.duplicate and retry.duplicate
    assert retry.record_id == first.record_id
    assert retry.received_time == first.received_time
    status = suite.wait_processed(request.record_ref)
    assert status.attempts == delivered.attempts  # not delivered a second time
    customer = suite.identity.LookupCustomer(
        identity_pb2.LookupCustomerRequest(customer_id=delivered.customer_id), timeout=T
    )
    assert customer.record_count == 1
    profile = suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(customer_id=delivered.customer_id), timeout=T
    )
    assert [s.record_count for s in profile.sources] == [1]


def test_reused_message_id_with_other_payload_is_refused(suite) -> None:
    request = identify("app", phones=(random_phone(),))
    suite.ingestion.Identify(request, timeout=T)
    changed = identify("app", message_id=request.record_ref.message_id, phones=(random_phone(),))
    with pytest.raises(grpc.RpcError) as refused:
        suite.ingestion.Identify(changed, timeout=T)
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS


def _stored_count(suite_database, source: str) -> int:
    with suite_database.admin_connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM ingestion.records WHERE source = %s", (source,)
        ).fetchone()
    return int(row[0])


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: setattr(r.record_ref, "source", ""), "record_ref.source"),
        (lambda r: setattr(r.record_ref, "message_id", ""), "record_ref.message_id"),
        (
            lambda r: setattr(r.record.identifiers[0], "value", "call me maybe"),
            "record.identifiers[0].value",
        ),
        (lambda r: setattr(r, "channel", common_pb2.SOURCE_CHANNEL_UNSPECIFIED), "channel"),
        (lambda r: r.record.ClearField("identifiers"), "record.identifiers"),
    ],
    ids=["empty-source", "missing-message-id", "unparseable-phone", "no-channel", "no-identifiers"],
)
def test_malformed_identify_is_invalid_argument_naming_the_field(
    suite, suite_database, mutate, field
) -> None:
    source = unique("bad").lower()
    request = identify(source, phones=(random_phone(),))
    mutate(request)
    before = _stored_count(suite_database, source)
    with pytest.raises(grpc.RpcError) as refused:
        suite.ingestion.Identify(request, timeout=T)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(refused.value)
    assert _stored_count(suite_database, source) == before == 0


def test_bulk_stream_accepts_good_and_reports_bad_lines(suite) -> None:
    good = [identify("import", phones=(random_phone(),)) for _ in range(3)]
    bad = identify("import", phones=("not a phone",))
    reply = suite.ingestion.IdentifyStream(iter([*good, bad, good[0]]), timeout=T)
    assert reply.accepted_count == 3
    assert reply.duplicate_count == 1
    assert [r.index for r in reply.rejected] == [3]
    assert reply.rejected[0].field_violations[0].field == "record.identifiers[0].value"
    for request in good:
        assert suite.wait_processed(request.record_ref).state == DELIVERED


def test_unknown_record_and_unknown_customer_are_not_found(suite) -> None:
    with pytest.raises(grpc.RpcError) as missing:
        suite.ingestion.GetRecordStatus(
            ingestion_pb2.GetRecordStatusRequest(
                record_ref=common_pb2.RecordRef(source="pos", message_id=unique())
            ),
            timeout=T,
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as nobody:
        suite.profile.GetProfile(by_phone(random_phone()), timeout=T)
    assert nobody.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as bad_id:
        suite.profile.GetProfile(profile_pb2.GetProfileRequest(customer_id="42"), timeout=T)
    assert bad_id.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "customer_id" in field_violations(bad_id.value)


def test_card_spelling_is_normalised_for_lookup(suite) -> None:
    card = f"2000 {unique('')[1:5]} 7788".upper()
    request = identify("pos-spb-07", channel=common_pb2.SOURCE_CHANNEL_POS, cards=(card,))
    suite.ingestion.Identify(request, timeout=T)
    status = suite.wait_processed(request.record_ref)
    profile = suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(
            identifier=common_pb2.Identifier(type=CARD, value=card.replace(" ", "-"))
        ),
        timeout=T,
    )
    assert profile.customer_id == status.customer_id


def test_a_bulk_identify_stream_is_resolved_in_batches_and_reaches_every_profile(suite) -> None:
    """A stream of many identify calls is delivered a relay pass at a time (ResolveBatch to
    identity, then each record's Apply to profile): every record lands, records sharing a
    phone become one customer, and that customer's profile knows both sources."""
    people = [(random_phone(), f"Пётр{n}") for n in range(30)]
    first = [identify("import-crm", phones=(phone,), first_name=name) for phone, name in people]
    second = [identify("import-pos", phones=(phone,), first_name=name) for phone, name in people]
    reply = suite.ingestion.IdentifyStream(iter([*first, *second]), timeout=30)
    assert reply.accepted_count == 60, reply
    statuses = [suite.wait_processed(r.record_ref, timeout_s=60) for r in [*first, *second]]
    assert all(s.state == ingestion_pb2.RecordStatus.STATE_DELIVERED for s in statuses)
    # Delivered on the first attempt: no record fell back to a retry.
    assert {s.attempts for s in statuses} == {1}
    customers = [s.customer_id for s in statuses]
    assert customers[:30] == customers[30:]  # the same phone: the same customer
    assert len(set(customers)) == 30
    for phone, name in people[:5]:
        shown = suite.profile.GetProfile(by_phone(phone), timeout=T)
        assert shown.first_name.value == name
        assert {s.source for s in shown.sources} == {"import-crm", "import-pos"}
