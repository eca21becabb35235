"""The (canonical given name, birth date) pair frequencies: counted alike offline (from the
records' attributes) and at refit (from the store's value counts), and what a thin link that
rests on a given name and a birth date is worth when many records hold that pair
(``Resolver._thin_link_on_a_common_name_and_date``)."""

from __future__ import annotations

from dataclasses import replace

from services.identity.tests.unit.records import incoming as _record
from services.identity.tests.unit.records import phone
from services.identity.tests.unit.records import place as _place
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.frequencies import (
    attribute_term_frequencies,
    first_name_birth_date_keys,
    fold_counts,
    term_frequencies,
)
from svod_identity.domain.matching.model import MatchModel, TermFrequencies, default_model
from svod_identity.domain.matching.record import build_person_record
from svod_identity.domain.matching.scoring import common_name_and_birth_date_loss, score_pair

COMMON_DAY = "2008-08-12"  # a day the households generator clamps many children to
RARE_DAY = "1961-03-04"


def test_a_given_name_counts_under_each_passport_name_it_stands_for() -> None:
    assert first_name_birth_date_keys("Лена", COMMON_DAY) == first_name_birth_date_keys(
        "Елена", COMMON_DAY
    )
    assert len(first_name_birth_date_keys("Саша", COMMON_DAY)) == 2  # Александр, Александра
    # A placeholder date is never compared, so never counted; nor a record without a name.
    assert first_name_birth_date_keys("Елена", "1970-01-01") == ()
    assert first_name_birth_date_keys("", COMMON_DAY) == ()


def test_offline_and_refit_count_the_same_pairs() -> None:
    """Offline (``attribute_term_frequencies`` over the stored attributes) and at refit
    (``term_frequencies`` over ``value_counts``, whose rows are the JSON arrays Postgres'
    ``jsonb_build_array`` writes, one per written given name and birth date) agree."""
    stored = [
        {"first_name": "Елена", "birth_date": COMMON_DAY},
        {"first_name": "Елена", "birth_date": COMMON_DAY},
        {"first_name": "Лена", "birth_date": COMMON_DAY},
        {"first_name": "Елена", "birth_date": "1970-01-01"},
        {"first_name": "Елена"},
        {"birth_date": COMMON_DAY},
    ]
    offline = attribute_term_frequencies(stored)["first_name_birth_date"]
    store = term_frequencies(
        {
            "first_name_birth_date": [
                (f'["Елена", "{COMMON_DAY}"]', 2),
                (f'["Лена", "{COMMON_DAY}"]', 1),
                ('["Елена", "1970-01-01"]', 1),
                ("not a pair", 3),
            ]
        }
    )["first_name_birth_date"]
    assert offline == store
    (elena,) = first_name_birth_date_keys("Елена", COMMON_DAY)
    assert offline.counts == {elena: 3}


def _base(common: int) -> TermFrequencies:
    """A base of 1,000 records with a given name and a birth date: Елена on ``COMMON_DAY``
    held by ``common`` of them, the rest pairs of one person's two records."""
    (elena,) = first_name_birth_date_keys("Елена", COMMON_DAY)
    written = [(f'["Елена", "{COMMON_DAY}"]', common)] + [
        (f'["Елена", "19{10 + i // 12:02d}-{1 + i % 12:02d}-15"]', 2)
        for i in range((1000 - common) // 2)
    ]
    table = fold_counts("first_name_birth_date", written)
    assert table.counts[elena] == common
    return table


def _thin_pair(day: str) -> tuple[object, object]:
    return (
        build_person_record("1", first_name="Елена", birth_date=day),
        build_person_record("2", first_name="Лена", birth_date=day, middle_name="Ивановна"),
    )


def test_a_pair_many_records_hold_loses_and_one_persons_own_does_not() -> None:
    model = replace(default_model(), term_frequencies={"first_name_birth_date": _base(40)})
    common, rare = _thin_pair(COMMON_DAY), _thin_pair(RARE_DAY)
    levels = score_pair(*common, model).levels  # type: ignore[arg-type]
    loss = common_name_and_birth_date_loss(*common, levels, model)  # type: ignore[arg-type]
    table = model.term_frequencies["first_name_birth_date"]
    # log2(u_average / u_pair): 40 records against the 3.5 (1600 + 480 * 4) / 1000 that a
    # typical record's pair has.
    assert loss < -3
    assert loss == min(0.0, table.adjustment(first_name_birth_date_keys("Елена", COMMON_DAY)[0]))
    levels = score_pair(*rare, model).levels  # type: ignore[arg-type]
    assert common_name_and_birth_date_loss(*rare, levels, model) == 0.0  # type: ignore[arg-type]
    # Without the table (a model stored before it existed) nothing is lost.
    assert common_name_and_birth_date_loss(*common, levels, default_model()) == 0.0  # type: ignore[arg-type]


def _telling_birth_dates(pairs: TermFrequencies) -> MatchModel:
    """A model fitted where the same birth date says much (as EM finds it in a base whose
    records mostly carry one): a given name and a birth date alone score "link"."""
    base = default_model()
    m = {f: dict(levels) for f, levels in base.m.items()}
    u = {f: dict(levels) for f, levels in base.u.items()}
    m["birth_date"]["exact"], u["birth_date"]["exact"] = 0.9, 0.01
    return replace(
        base,
        m=m,
        u=u,
        trained_pairs=10_000,
        term_frequencies={"first_name_birth_date": pairs},
    )


def _elenas(day: str, *second_ids: IdentifierKey) -> list[str]:
    """A customer of Елена (a mobile, a given name, a birth date), then a record of «Лена»
    born the same day with ``second_ids``: given name and birth date alone."""
    model = _telling_birth_dates(_base(40))
    placed, _ = _place(
        model,
        _record(1, phone(1), first_name="Елена", birth_date=day),
        _record(2, *second_ids, first_name="Лена", birth_date=day),
    )
    return placed


def test_a_thin_link_on_a_common_given_name_and_birth_date_is_refused() -> None:
    """Another mobile than the customer's, and only a given name and a birth date that 40
    records hold in common: left for review."""
    first, second = _elenas(COMMON_DAY, phone(2))
    assert first != second


def test_a_thin_link_on_a_rare_given_name_and_birth_date_still_links() -> None:
    first, second = _elenas(RARE_DAY, phone(2))
    assert first == second


def test_a_common_pair_with_nothing_against_it_still_links() -> None:
    """A till record with the given name and the birth date and nothing else: no field of it
    disagrees with the customer's, so the pair's frequency alone does not refuse it."""
    first, second = _elenas(COMMON_DAY)
    assert first == second


def test_a_surname_in_common_is_more_than_the_given_name_and_date() -> None:
    """The rule weighs links that rest on the given name and the date: with the surname in
    common as well, the pair's frequency is not what the link rests on."""
    model = _telling_birth_dates(_base(40))
    (first, second), _ = _place(
        model,
        _record(1, phone(1), first_name="Елена", last_name="Соловьёва", birth_date=COMMON_DAY),
        _record(2, phone(2), first_name="Лена", last_name="Соловьёва", birth_date=COMMON_DAY),
    )
    assert first == second


def test_the_pair_table_survives_the_stored_json() -> None:
    model = _telling_birth_dates(_base(40))
    loaded = MatchModel.from_json(model.to_json())
    assert loaded.term_frequencies == model.term_frequencies
