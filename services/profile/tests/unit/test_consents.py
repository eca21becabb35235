"""Which consent stands: newer statements, opt-outs over opt-ins not in effect yet."""

from __future__ import annotations

import datetime as dt

from svod_profile.domain.consents import (
    OPTED_IN,
    OPTED_OUT,
    Consent,
    merge_consents,
    supersedes,
    too_far_ahead,
)

NOW = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)


def stated(status: str, at: dt.datetime, received: dt.datetime = NOW) -> Consent:
    return Consent("sms", status, "crm", at, received_at=received)


def test_the_newer_statement_stands_and_a_tie_goes_to_the_opt_out() -> None:
    opt_in = stated(OPTED_IN, NOW - dt.timedelta(days=1))
    assert supersedes(stated(OPTED_OUT, NOW), opt_in)
    assert not supersedes(stated(OPTED_IN, NOW - dt.timedelta(days=2)), opt_in)  # a late one
    assert supersedes(stated(OPTED_OUT, opt_in.at), opt_in)
    assert not supersedes(stated(OPTED_IN, opt_in.at), stated(OPTED_OUT, opt_in.at))


def test_an_opt_out_wins_over_an_opt_in_not_in_effect_yet() -> None:
    ahead = stated(OPTED_IN, dt.datetime(2030, 1, 1, tzinfo=dt.UTC), received=NOW)
    opt_out = stated(OPTED_OUT, NOW + dt.timedelta(hours=1), received=NOW + dt.timedelta(hours=1))
    assert supersedes(opt_out, ahead)
    # Even one dated before the opt-in was received: it is withdrawn before it took effect.
    backdated = stated(OPTED_OUT, NOW - dt.timedelta(days=1), received=NOW + dt.timedelta(hours=1))
    assert supersedes(backdated, ahead)
    # Once in effect, an opt-in is withdrawn only by a newer opt-out.
    in_effect = stated(OPTED_IN, NOW - dt.timedelta(hours=1))
    assert not supersedes(backdated, in_effect)


def test_merged_consents_are_taken_in_the_order_they_were_received() -> None:
    ahead = stated(OPTED_IN, dt.datetime(2030, 1, 1, tzinfo=dt.UTC), received=NOW)
    later_out = stated(OPTED_OUT, NOW + dt.timedelta(hours=1), received=NOW + dt.timedelta(hours=1))
    assert merge_consents([later_out, ahead]) == [later_out]
    assert merge_consents([ahead, later_out]) == [later_out]


def test_times_beyond_the_tolerance_are_too_far_ahead() -> None:
    assert not too_far_ahead(NOW + dt.timedelta(minutes=4), NOW)
    assert too_far_ahead(NOW + dt.timedelta(minutes=6), NOW)
    assert too_far_ahead(dt.datetime(2030, 1, 1, tzinfo=dt.UTC), NOW)
