"""The shown name is the person's name: full form, Cyrillic, verified first; all spellings kept."""

from __future__ import annotations

import datetime as dt

from svod_profile.domain.model import Provenance, TraitObservation
from svod_profile.domain.names import NameIndex, best_name, name_variants, query_key

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def obs(field: str, value: str, source: str, days: int) -> TraitObservation:
    return TraitObservation(field, value, Provenance(source, "web", T0 + dt.timedelta(days=days)))


def shown(field: str, *values: TraitObservation, verified=(), gender=None) -> str:
    chosen = best_name(field, list(values), verified, gender)
    assert chosen is not None
    return chosen.value


def test_masha_maria_and_a_transliteration_show_as_maria() -> None:
    till, web, app = (
        obs("first_name", "Маша", "pos", 0),
        obs("first_name", "Мария", "web", 1),
        obs("first_name", "Masha", "app", 9),
    )
    assert shown("first_name", till, web, app) == "Мария"
    # Seen only as diminutives and transliterations: the passport name, from the latest.
    chosen = best_name("first_name", [till, app])
    assert chosen is not None and chosen.value == "Мария"
    assert chosen.provenance.source == "app"


def test_cyrillic_over_a_transliteration_of_the_same_name() -> None:
    assert (
        shown(
            "last_name",
            obs("last_name", "Смирнова", "pos", 0),
            obs("last_name", "Smirnova", "app", 5),
        )
        == "Смирнова"
    )
    assert (
        shown(
            "first_name",
            obs("first_name", "Дмитрий", "pos", 0),
            obs("first_name", "Dmitry", "app", 5),
        )
        == "Дмитрий"
    )
    # Only the Latin spelling is known: shown as written.
    assert shown("last_name", obs("last_name", "Smirnova", "app", 5)) == "Smirnova"


def test_a_new_name_is_followed_and_verified_sources_go_first() -> None:
    before, after = obs("last_name", "Смирнова", "pos", 0), obs("last_name", "Иванова", "web", 30)
    assert shown("last_name", before, after) == "Иванова"
    assert shown("last_name", before, after, verified=("pos",)) == "Смирнова"


def test_a_full_spelling_written_by_someone_stays_as_written() -> None:
    assert (
        shown(
            "first_name",
            obs("first_name", "Наталия", "pos", 0),
            obs("first_name", "Наташа", "app", 3),
        )
        == "Наталия"
    )


def test_a_shared_diminutive_is_read_with_the_gender_or_other_observations() -> None:
    sasha = obs("first_name", "Саша", "pos", 5)
    assert shown("first_name", sasha) == "Саша"  # nothing settles it
    assert shown("first_name", sasha, gender="female") == "Александра"
    assert shown("first_name", sasha, obs("first_name", "Alexandra", "app", 1)) == "Александра"


def test_unknown_names_are_shown_as_written() -> None:
    assert shown("first_name", obs("first_name", "Ариадна-Мэй", "pos", 0)) == "Ариадна-Мэй"


def test_every_spelling_is_kept_once_newest_first() -> None:
    variants = name_variants(
        [
            obs("first_name", "Маша", "pos", 0),
            obs("first_name", "Маша", "pos", 4),
            obs("first_name", "Masha", "app", 9),
            obs("last_name", "Смирнова", "pos", 0),
            obs("birth_date", "1990-01-01", "pos", 0),
        ]
    )
    assert [(v.field, v.value, v.count) for v in variants] == [
        ("first_name", "Masha", 1),
        ("first_name", "Маша", 2),
        ("last_name", "Смирнова", 1),
    ]
    masha = variants[1]
    assert masha.first_seen == T0 and masha.latest.provenance.observed_at == T0 + dt.timedelta(
        days=4
    )


def test_search_keys_cover_every_spelling_and_the_passport_name() -> None:
    index = NameIndex.of(
        ["first_name", "last_name"],
        [obs("first_name", "Маша", "pos", 0), obs("last_name", "Smirnova", "app", 1)],
    )
    for field, query in (
        ("first_name", "Маша"),
        ("first_name", "MASHA"),
        ("first_name", "Мария"),
        ("last_name", "Смирнова"),
        ("last_name", "smirnova"),
    ):
        assert query_key(field, query) in index.keys, query
    assert query_key("first_name", "Мариша") not in index.keys
    assert query_key("last_name", "") is None
