"""Quality's use cases over in-memory storage and profiles (no database, no peers): rules and
their audit, batches counted per day and source, rules in force when the database blinks,
identity's reports, contact failures and erasure, scores and the base report.

The SQL of each storage method is tested against PostgreSQL in ``tests/integration``; here the
use cases' own decisions are.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from services.quality.tests.unit.fakes import FakeProfiles, FakeQualityStore
from svod_quality.domain import (
    BatchTally,
    Identifier,
    ObservedIdentifier,
    ProfileSnapshot,
    RawRecord,
    standardize_and_validate,
    tally,
)
from svod_quality.service_layer.use_cases import (
    ActiveRules,
    IdentifierRef,
    PairReport,
    QualityService,
)
from svod_runtime.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable

T = TypeVar("T")
NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
TODAY = NOW.date()
BAD_PHONE_RULE = {"rule_id": "phone.valid", "field": "phone", "action": "reject"} | {
    "check": "phone_valid"
}


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


class Service:
    def __init__(self) -> None:
        self.clock = NOW
        self.store = FakeQualityStore()
        self.profiles = FakeProfiles()
        self.tallies: list[BatchTally] = []
        self.use_cases = QualityService(
            self.store, self.profiles, clock=lambda: self.clock, on_tally=self.tallies.append
        )

    def standardize(self, source: str, records: list[RawRecord]) -> list[bool]:
        """Runs a batch as the servicer does (in-process); returns which records were refused."""

        async def runner(rules: ActiveRules, today: dt.date) -> tuple[list[bool], BatchTally]:
            pairs = [
                (r, standardize_and_validate(r, rules.rule_set, source, today)) for r in records
            ]
            return [result.rejected for _, result in pairs], tally(pairs)

        return run(self.use_cases.standardize(source, len(records), runner))


def phone_record(phone: str) -> RawRecord:
    """A record with an e-mail too: a bad phone alone would leave it no identifier at all."""
    identifiers = [Identifier("email", "anna@example.ru"), Identifier("phone", phone)]
    return RawRecord(identifiers=identifiers, first_name="Анна")


def paths(error: InvalidArgument) -> set[str]:
    return {v.field for v in error.violations}


def cid() -> str:
    return str(uuid.uuid4())


# -- rules ----------------------------------------------------------------------------------


def test_rules_are_created_listed_per_source_and_deleted_with_their_audit() -> None:
    svc = Service()
    run(svc.use_cases.create_rule(BAD_PHONE_RULE, actor="ann"))
    pos_only = {**BAD_PHONE_RULE, "rule_id": "pos.phone", "source": "pos-msk"}
    run(svc.use_cases.create_rule(pos_only, actor="ann"))

    assert [s.rule.rule_id for s in run(svc.use_cases.list_rules(""))] == [
        "phone.valid",
        "pos.phone",
    ]
    assert [s.rule.rule_id for s in run(svc.use_cases.list_rules("web"))] == ["phone.valid"]
    assert len(run(svc.use_cases.list_rules("pos-msk"))) == 2

    run(svc.use_cases.delete_rule("pos.phone", actor="bob"))

    assert [s.rule.rule_id for s in run(svc.use_cases.list_rules("pos-msk"))] == ["phone.valid"]
    assert svc.store.rule_changes[-1] == ("pos.phone", "deleted", "bob")


def test_a_bad_rule_is_refused_naming_every_field_and_nothing_is_stored() -> None:
    svc = Service()
    bad = {**BAD_PHONE_RULE, "check": "phone_validd", "action": "drop"}
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.create_rule(bad))
    assert paths(caught.value) == {"rule.check", "rule.action"}
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.list_rules("POS MSK"))
    assert paths(caught.value) == {"source"}
    assert svc.store.rules == {}


def test_a_rule_id_is_taken_once_and_deleting_a_missing_rule_says_so() -> None:
    svc = Service()
    run(svc.use_cases.create_rule(BAD_PHONE_RULE))
    with pytest.raises(AlreadyExists):
        run(svc.use_cases.create_rule(BAD_PHONE_RULE))
    with pytest.raises(NotFound):
        run(svc.use_cases.delete_rule("no.such.rule"))
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.delete_rule(""))
    assert paths(caught.value) == {"rule_id"}


# -- batches and their counts ----------------------------------------------------------------


def test_a_new_rule_applies_to_the_very_next_batch() -> None:
    svc = Service()
    assert svc.standardize("web", [phone_record("not a phone")]) == [False]

    run(svc.use_cases.create_rule(BAD_PHONE_RULE))

    assert svc.standardize("web", [phone_record("not a phone")]) == [True]
    run(svc.use_cases.delete_rule("phone.valid"))
    assert svc.standardize("web", [phone_record("not a phone")]) == [False]


def test_findings_are_counted_per_day_and_source() -> None:
    svc = Service()
    run(svc.use_cases.create_rule(BAD_PHONE_RULE))
    svc.standardize("web", [phone_record("+7 916 123 45 67"), phone_record("123")])
    svc.standardize("web", [phone_record("456")])
    svc.standardize("pos-msk", [phone_record("789")])
    svc.clock = NOW + dt.timedelta(days=1)
    svc.standardize("web", [phone_record("+7 916 765 43 21")])

    violations, records = run(svc.use_cases.violation_stats(7, "web"))

    assert [(r.day, r.records, r.rejected) for r in records] == [
        (TODAY, 3, 2),
        (TODAY + dt.timedelta(days=1), 1, 0),
    ]
    assert [(v.day, v.rule, v.findings) for v in violations if v.rule == "phone.valid"] == [
        (TODAY, "phone.valid", 2)
    ]
    _, every = run(svc.use_cases.violation_stats(0, ""))
    assert sum(r.records for r in every) == 5
    assert [t.records for t in svc.tallies] == [2, 1, 1, 1]


def test_a_bad_batch_is_refused_before_any_work() -> None:
    svc = Service()
    with pytest.raises(InvalidArgument) as caught:
        svc.standardize("", [])
    assert paths(caught.value) == {"source", "records"}
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.violation_stats(400, ""))
    assert paths(caught.value) == {"days"}
    assert svc.store.record_counts == {} and svc.tallies == []


def test_counts_that_cannot_be_written_do_not_cost_the_caller_its_answer() -> None:
    svc = Service()

    async def broken(*_: object) -> None:
        raise ConnectionResetError("database went away")

    svc.store.add_tally = broken  # type: ignore[method-assign]
    assert svc.standardize("web", [phone_record("+7 916 123 45 67")]) == [False]


def test_the_rules_loaded_last_stay_in_force_while_the_database_is_down() -> None:
    svc = Service()
    run(svc.use_cases.create_rule(BAD_PHONE_RULE))
    assert svc.standardize("web", [phone_record("bad")]) == [True]
    svc.store.fail_reads = True
    run(svc.use_cases.delete_rule("phone.valid"))  # forces a reload, which fails

    assert svc.standardize("web", [phone_record("bad")]) == [True]

    fresh = Service()
    fresh.store.fail_reads = True
    with pytest.raises(Unavailable):
        fresh.standardize("web", [phone_record("bad")])


# -- what identity and the senders report ----------------------------------------------------


def test_duplicate_reports_are_checked_as_a_whole() -> None:
    svc = Service()
    a, b = cid(), cid()
    with pytest.raises(InvalidArgument) as caught:
        run(
            svc.use_cases.report_duplicates(
                [PairReport(a, a), PairReport(a, "x", 0.5), PairReport(a, b, 1.5)],
                [PairReport(b, a)],
                [IdentifierRef("phone", "+79161234567")],
                [IdentifierRef("phone", "+79161234567"), IdentifierRef("", "")],
                NOW + dt.timedelta(hours=1),
            )
        )
    assert paths(caught.value) == {
        "report_time",
        "pairs[0]",
        "pairs[1].second_customer_id",
        "pairs[2].score",
        "resolved_pairs[0]",
        "unblocked_identifiers[0]",
        "unblocked_identifiers[1].type",
        "unblocked_identifiers[1].value",
    }
    assert svc.store.pairs == {} and svc.store.blocked == {}


def test_a_late_duplicate_report_does_not_undo_a_newer_one() -> None:
    svc = Service()
    a, b = cid(), cid()
    run(svc.use_cases.report_duplicates([PairReport(b, a, 0.9)], [], [], [], NOW))
    run(svc.use_cases.report_duplicates([], [PairReport(a, b)], [], [], NOW - dt.timedelta(1)))
    assert run(svc.store.is_suspected_duplicate(a)) is True

    run(svc.use_cases.report_duplicates([], [PairReport(a, b)], [], [], NOW))

    assert run(svc.store.is_suspected_duplicate(b)) is False


def test_contact_failures_keep_the_latest_and_erasure_finds_them_however_written() -> None:
    svc = Service()
    customer = cid()
    earlier, later = NOW - dt.timedelta(days=3), NOW - dt.timedelta(days=1)
    run(
        svc.use_cases.report_contact_failures(
            [
                (IdentifierRef("phone", "+7 916 123-45-67"), later),
                (IdentifierRef("phone", "8 (916) 123 45 67"), earlier),
            ]
        )
    )
    assert list(svc.store.failures.values()) == [later]
    with pytest.raises(InvalidArgument) as caught:
        run(
            svc.use_cases.report_contact_failures(
                [(IdentifierRef("loyalty_card", "1"), None), (IdentifierRef("email", "x"), None)]
            )
        )
    assert paths(caught.value) == {"failures[0].identifier.type", "failures[1].identifier.value"}

    erased = run(svc.use_cases.erase_customer(customer, [IdentifierRef("phone", "89161234567")]))

    assert erased == 1 and svc.store.failures == {}
    with pytest.raises(InvalidArgument):
        run(svc.use_cases.erase_customer("not-a-uuid", []))


# -- scores and the base report ---------------------------------------------------------------


def profile(customer_id: str, *, phone: str = "+79161234567") -> ProfileSnapshot:
    return ProfileSnapshot(
        customer_id,
        identifiers=(ObservedIdentifier("phone", phone, observed_at=NOW),),
        first_name="Анна",
        last_name="Петрова",
        birth_date=dt.date(1990, 5, 17),
        sources=("web",),
    )


def test_a_suspected_duplicate_costs_a_profile_points_until_resolved() -> None:
    svc = Service()
    a, b = cid(), cid()
    svc.profiles.profiles[a] = profile(a)
    _, clean, at = run(svc.use_cases.profile_score(a))
    assert at == NOW

    run(svc.use_cases.report_duplicates([PairReport(a, b, 0.8)], [], [], [], NOW))
    _, suspected, _ = run(svc.use_cases.profile_score(a))
    run(svc.use_cases.report_duplicates([], [PairReport(a, b)], [], [], NOW))
    _, resolved, _ = run(svc.use_cases.profile_score(a))

    assert suspected.score < clean.score == resolved.score
    assert any(r.startswith("suspected duplicate") for r in suspected.reasons)
    with pytest.raises(InvalidArgument):
        run(svc.use_cases.profile_score("nope"))


def test_the_report_covers_the_profiles_there_are_now_and_keeps_a_daily_trend() -> None:
    svc = Service()
    a, b, c = cid(), cid(), cid()
    for customer in (a, b, c):
        svc.profiles.profiles[customer] = profile(customer)
    svc.profiles.profiles[c] = profile(c, phone="123")
    run(svc.use_cases.report_duplicates([PairReport(a, b, 0.9)], [], [], [], NOW))

    first = run(svc.use_cases.report())

    assert first.now.profiles == 3
    assert first.now.valid_phone_share == pytest.approx(2 / 3)
    assert first.suspected_duplicate_pairs == 1
    # b was merged away: the next day's refresh forgets it, and the pair with it.
    del svc.profiles.profiles[b]
    svc.clock = NOW + dt.timedelta(days=1)
    assert run(svc.use_cases.refresh_if_due()) is True
    assert run(svc.use_cases.refresh_if_due()) is False

    second = run(svc.use_cases.report())

    assert (second.now.profiles, second.suspected_duplicate_pairs) == (2, 0)
    assert [p.profiles for p in second.trend] == [3, 2]
    assert set(svc.store.facts) == {a, c}
