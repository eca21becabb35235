"""The pure parts of activation: published hashing vectors, webhook signatures and what an
HTTP answer means, who may be delivered, enum parity with the proto, and attribution on a
hand-built timeline with known answers for each model."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from svod.profile.v1 import profile_pb2
from svod.segmentation.v1 import segmentation_pb2 as pb
from svod_segmentation.domain import attribution, audiences, webhooks
from svod_segmentation.domain.activation import (
    AdPlatform,
    Contact,
    Delivery,
    DeliveryKind,
    DeliveryState,
    Destination,
    DestinationKind,
    Eligibility,
    eligibility,
    pages,
)
from svod_segmentation.domain.fields import ConsentState
from svod_segmentation.domain.model import MembershipKind
from svod_segmentation.domain.responsiveness import ChannelStats, preferred_channel
from svod_segmentation.entrypoints import activation_convert, convert


# -- ad audiences: the normalisation the platforms publish ------------------------------------
def test_meta_published_vectors() -> None:
    # Meta's customer information parameters: e-mail and US phone examples with their hashes.
    assert audiences.normalize_email(" John_Smith@gmail.com ") == "john_smith@gmail.com"
    assert (
        audiences.hashed_email("John_Smith@gmail.com")
        == "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
    )
    assert audiences.normalize_phone("+1 (650)555-1212") == "16505551212"
    assert (
        audiences.hashed_phone("+1 (650)555-1212")
        == "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
    )


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("+7 (916) 123-45-67", "79161234567"),  # Yandex Audiences' own example form
        ("8 916 123 45 67", "79161234567"),  # a Russian national number
        ("9161234567", "79161234567"),
        ("+79161234567", "79161234567"),
        ("not a phone", ""),
        ("", ""),
    ],
)
def test_phones_become_e164_digits(raw: str, normal: str) -> None:
    assert audiences.normalize_phone(raw) == normal


def test_emails_take_the_spelling_every_service_uses() -> None:
    # svod_contacts' normal form: a "mailto:" link is the address; a value that is no address
    # gives nothing to hash rather than a hash nobody can match.
    assert audiences.normalize_email("mailto:Ivan.Petrov@Mail.RU") == "ivan.petrov@mail.ru"
    assert audiences.normalize_email("not an address") == ""
    assert audiences.hashed_email("not an address") == ""


def test_audience_files_per_platform() -> None:
    people = [
        Contact("a", email=" Mail@Yandex.RU", phone="+7 999 555-11-11"),
        Contact("b", phone="+7 987 654-32-10"),
    ]
    mail, phone = audiences.sha256_hex("mail@yandex.ru"), audiences.sha256_hex("79995551111")
    other = audiences.sha256_hex("79876543210")
    assert audiences.audience_files(AdPlatform.YANDEX_AUDIENCES, people) == {
        "csv": (["phone", "email"], [[phone, mail], [other, ""]])
    }
    assert audiences.audience_files(AdPlatform.META, people) == {
        "csv": (["email", "phone"], [[mail, phone], ["", other]])
    }
    assert audiences.audience_files(AdPlatform.VK_ADS, people) == {
        "email.txt": (None, [[mail]]),
        "phone.txt": (None, [[phone], [other]]),
    }


# -- webhooks ---------------------------------------------------------------------------------
def test_signature_is_hmac_sha256_of_timestamp_and_body() -> None:
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(b"key-key-key-key-1", b"1700000000." + body, hashlib.sha256).hexdigest()
    header = webhooks.signature("key-key-key-key-1", 1700000000, body)
    assert header == f"v1={expected}"
    assert webhooks.verify("key-key-key-key-1", 1700000000, body, header)
    assert not webhooks.verify("key-key-key-key-1", 1700000001, body, header)
    assert not webhooks.verify("another-key-000000", 1700000000, body, header)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, webhooks.Outcome.DELIVERED),
        (204, webhooks.Outcome.DELIVERED),
        (0, webhooks.Outcome.RETRY),
        (503, webhooks.Outcome.RETRY),
        (429, webhooks.Outcome.RETRY),
        (408, webhooks.Outcome.RETRY),
        (500, webhooks.Outcome.RETRY_COUNTED),
        (400, webhooks.Outcome.DEAD),
        (404, webhooks.Outcome.DEAD),
        (422, webhooks.Outcome.DEAD),
    ],
)
def test_what_an_answer_means(status: int, outcome: webhooks.Outcome) -> None:
    assert webhooks.outcome_of(status) is outcome


def _delivery(kind: DeliveryKind, items: tuple[tuple[str, ...], ...]) -> Delivery:
    return Delivery(
        delivery_id="d1",
        binding_id="b1",
        destination_id="hook",
        segment_id="vip",
        sequence=3,
        kind=kind,
        state=DeliveryState.PENDING,
        items=items,
    )


def test_an_entry_without_consent_is_held_back_but_an_exit_is_always_sent() -> None:
    delivery = _delivery(
        DeliveryKind.CHANGES,
        (("a", "entered", "", "t"), ("b", "entered", "", "t"), ("c", "exited", "", "t")),
    )
    contacts = {"a": Contact("a", phone="+79990000000"), "c": Contact("c", phone="+79990000001")}
    body = webhooks.body(delivery, contacts, allowed={"a"})
    payload = json.loads(body.payload)
    assert [(c["kind"], c["customer_id"]) for c in payload["changes"]] == [
        ("entered", "a"),
        ("exited", "c"),
    ]
    assert (body.sent, body.suppressed) == (2, 1)
    assert payload["changes"][1]["contact"]["phone"] == "+79990000001"


def test_eligibility_needs_an_opt_in_and_the_channel_s_contact() -> None:
    sms = Destination("s", DestinationKind.WEBHOOK, "sms", url="http://x")
    ads = Destination("a", DestinationKind.AD_AUDIENCE, "personal_data_processing")
    opted = {"sms": "opted_in", "personal_data_processing": "opted_in"}
    assert eligibility(Contact("1", phone="+7999", consents=opted), sms) is Eligibility.OK
    assert eligibility(Contact("1", email="a@b.c", consents=opted), sms) is Eligibility.NO_CONTACT
    assert eligibility(Contact("1", phone="+7", consents={}), sms) is Eligibility.NO_CONSENT
    out = {"sms": "opted_out"}
    assert eligibility(Contact("1", phone="+7", consents=out), sms) is Eligibility.NO_CONSENT
    assert eligibility(None, sms) is Eligibility.NO_CONSENT
    assert eligibility(Contact("1", email="a@b.c", consents=opted), ads) is Eligibility.OK
    assert eligibility(Contact("1", consents=opted), ads) is Eligibility.NO_CONTACT


def test_pages_always_say_something() -> None:
    assert pages([]) == [[]]
    assert [len(p) for p in pages([("x",)] * 1001)] == [500, 500, 1]


def test_enums_follow_the_proto() -> None:
    names = {v.name for v in pb.Delivery.State.DESCRIPTOR.values if v.number}
    assert {f"STATE_{s.name}" for s in DeliveryState} == names
    assert set(activation_convert._PLATFORM.values()) == set(AdPlatform)
    assert set(activation_convert._KIND.values()) == set(DestinationKind)
    kinds = {v.name for v in pb.Delivery.Kind.DESCRIPTOR.values if v.number}
    assert {f"KIND_{k.name}" for k in DeliveryKind} == kinds
    membership = {v.name for v in pb.MembershipEvent.Kind.DESCRIPTOR.values if v.number}
    assert {f"KIND_{k.name}" for k in MembershipKind} == membership
    assert set(convert._KINDS) == set(MembershipKind)
    consents = {v.name for v in profile_pb2.ConsentStatus.DESCRIPTOR.values if v.number}
    assert {f"CONSENT_STATUS_{s.name}" for s in ConsentState} == consents


# -- attribution: a hand-built timeline ---------------------------------------------------------
T0 = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)


def _touch(customer: str, days: float, campaign: str, channel: str, kind: str):
    return attribution.Touch(customer, T0 - dt.timedelta(days=days), campaign, channel, kind)


def test_attribution_known_answers_for_each_model() -> None:
    touches = [
        _touch("A", 10, "X", "email", "delivered"),  # outside the 7-day window
        _touch("A", 5, "X", "email", "opened"),
        _touch("A", 3, "Y", "sms", "delivered"),
        _touch("A", 1, "Y", "sms", "clicked"),
        _touch("A", -0.5, "Z", "push", "delivered"),  # after the order: never credited
        _touch("B", 22, "X", "email", "delivered"),  # 2 days before B's order
    ]
    orders = [
        attribution.Order("A", T0, Decimal("300")),
        attribution.Order("B", T0 - dt.timedelta(days=20), Decimal("90")),
        attribution.Order("B", T0 + dt.timedelta(days=30), Decimal("50")),  # no touch
    ]
    report = attribution.attribute(orders, touches, dt.timedelta(days=7))
    assert (report.order_count, report.attributed_orders) == (3, 2)
    assert (report.revenue, report.attributed_revenue) == (Decimal(440), Decimal(390))
    x, y = report.credits[("X", "email")], report.credits[("Y", "sms")]
    assert ("Z", "push") not in report.credits
    # First touch: A's order to X (its open 5 days before), B's to X.
    assert (x.first_orders, x.first_revenue) == (2, Decimal(390))
    assert (y.first_orders, y.first_revenue) == (0, 0)
    # Last touch: A's order to Y (the click a day before), B's to X.
    assert (x.last_orders, x.last_revenue) == (1, Decimal(90))
    assert (y.last_orders, y.last_revenue) == (1, Decimal(300))
    # Linear: A's three touches share its order (X 1/3, Y 2/3); B's goes to X whole.
    assert round(x.linear_orders, 9) == round(Decimal(4) / 3, 9)
    assert x.linear_revenue.quantize(Decimal("0.01")) == Decimal("190.00")
    assert round(y.linear_orders, 9) == round(Decimal(2) / 3, 9)
    assert y.linear_revenue.quantize(Decimal("0.01")) == Decimal("200.00")
    assert (x.touches, x.touched_orders, y.touches, y.touched_orders) == (2, 2, 2, 1)
    assert [c.campaign_id for c in report.rows()] == ["Y", "X"]


def test_a_wider_window_reaches_older_touches() -> None:
    touches = [_touch("A", 10, "X", "email", "delivered"), _touch("A", 1, "Y", "sms", "clicked")]
    orders = [attribution.Order("A", T0, Decimal("100"))]
    report = attribution.attribute(orders, touches, dt.timedelta(days=14))
    assert report.credits[("X", "email")].first_orders == 1
    assert report.credits[("Y", "sms")].last_orders == 1


def test_preferred_channel_is_the_best_responding_one() -> None:
    late = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    early = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    stats = [
        ChannelStats("email", delivered=10, opened=2, last_response_at=late),
        ChannelStats("sms", delivered=2, clicked=1, last_response_at=early),
        ChannelStats("push", delivered=5),
    ]
    assert preferred_channel(stats) == "sms"
    assert preferred_channel([ChannelStats("push", delivered=5)]) == ""
    tie = [
        ChannelStats("email", delivered=2, opened=1, last_response_at=early),
        ChannelStats("sms", delivered=2, clicked=1, last_response_at=late),
    ]
    assert preferred_channel(tie) == "sms"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x",
        "http://",
        "http://a b/c",
        "https://host/\u043f\u0443\u0442\u044c",
        "http://x/\x00",
        "http://" + "a" * 2000,
    ],
)
def test_webhook_urls_a_request_line_cannot_carry_are_refused(url: str) -> None:
    from svod_runtime.errors import InvalidArgument
    from svod_segmentation.domain.activation import validate_destination

    with pytest.raises(InvalidArgument) as refused:
        validate_destination(Destination("hook", DestinationKind.WEBHOOK, "sms", url=url))
    assert [v.field for v in refused.value.violations] == ["destination.webhook.url"]
    validate_destination(
        Destination("hook", DestinationKind.WEBHOOK, "sms", url="https://h.example:8443/a?b=c")
    )
