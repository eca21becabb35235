"""Which consent stands: newer statements, opt-outs over opt-ins not in effect yet."""

from __future__ import annotations

import datetime as dt

from svod.profile.v1 import profile_pb2
from svod_profile.domain.consents import (
    Consent,
    ConsentStatus,
    merge_consents,
    supersedes,
    too_far_ahead,
)

NOW = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
IN, OUT = ConsentStatus.OPTED_IN, ConsentStatus.OPTED_OUT


def stated(status: ConsentStatus, at: dt.datetime, received: dt.datetime = NOW) -> Consent:
    return Consent("sms", status, "crm", at, received_at=received)


def test_the_newer_statement_stands_and_a_tie_goes_to_the_opt_out() -> None:
    opt_in = stated(IN, NOW - dt.timedelta(days=1))
    assert supersedes(stated(OUT, NOW), opt_in)
    assert not supersedes(stated(IN, NOW - dt.timedelta(days=2)), opt_in)  # a late one
    assert supersedes(stated(OUT, opt_in.at), opt_in)
    assert not supersedes(stated(IN, opt_in.at), stated(OUT, opt_in.at))


def test_an_opt_out_wins_over_an_opt_in_not_in_effect_yet() -> None:
    ahead = stated(IN, dt.datetime(2030, 1, 1, tzinfo=dt.UTC), received=NOW)
    opt_out = stated(OUT, NOW + dt.timedelta(hours=1), received=NOW + dt.timedelta(hours=1))
    assert supersedes(opt_out, ahead)
    # Even one dated before the opt-in was received: it is withdrawn before it took effect.
    backdated = stated(OUT, NOW - dt.timedelta(days=1), received=NOW + dt.timedelta(hours=1))
    assert supersedes(backdated, ahead)
    # Once in effect, an opt-in is withdrawn only by a newer opt-out.
    in_effect = stated(IN, NOW - dt.timedelta(hours=1))
    assert not supersedes(backdated, in_effect)


def test_merged_consents_are_taken_in_the_order_they_were_received() -> None:
    ahead = stated(IN, dt.datetime(2030, 1, 1, tzinfo=dt.UTC), received=NOW)
    later_out = stated(OUT, NOW + dt.timedelta(hours=1), received=NOW + dt.timedelta(hours=1))
    assert merge_consents([later_out, ahead]) == [later_out]
    assert merge_consents([ahead, later_out]) == [later_out]


def test_times_beyond_the_tolerance_are_too_far_ahead() -> None:
    assert not too_far_ahead(NOW + dt.timedelta(minutes=4), NOW)
    assert too_far_ahead(NOW + dt.timedelta(minutes=6), NOW)
    assert too_far_ahead(dt.datetime(2030, 1, 1, tzinfo=dt.UTC), NOW)


def test_statuses_follow_the_proto() -> None:
    names = {v.name for v in profile_pb2.ConsentStatus.DESCRIPTOR.values if v.number}
    assert {f"CONSENT_STATUS_{s.name}" for s in ConsentStatus} == names
