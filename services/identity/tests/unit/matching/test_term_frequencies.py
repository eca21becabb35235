"""Term frequencies: a shared rare name or small town says more than a shared common one."""

from __future__ import annotations

from dataclasses import replace

from svod_identity.domain.matching import MatchModel, default_model, score_pair
from svod_identity.domain.matching.frequencies import (
    attribute_term_frequencies,
    fold_counts,
    term_frequencies,
)
from svod_identity.domain.matching.model import TF_BOUNDS, TF_MIN_RECORDS, TermFrequencies
from svod_identity.domain.matching.record import build_person_record
from svod_identity.domain.matching.scoring import rare_shared_login

_LETTERS = "бвгдклмнпр"


def _made_up(stem: str, ending: str = "", n: int = 100) -> list[str]:
    """``n`` distinct made-up values (letters, not digits: comparisons keep letters only)."""
    return [f"{stem}{_LETTERS[i // 10]}{_LETTERS[i % 10]}{ending}" for i in range(n)]


# A base of 1,000 records: a fifth are Ивановы, a handful Зябликовы; a third live in Москва.
WRITTEN = {
    "last_name": [("Иванова", 150), ("ИВАНОВА", 30), ("Ivanova", 20), ("Зябликова", 2)]
    + [(value, 8) for value in _made_up("Фам", "ова")],
    "first_name": [("Ольга", 300), ("Аглая", 2)] + [(value, 7) for value in _made_up("Им")],
    "city": [("Москва", 300), ("г. Москва", 33), ("Кимры", 5)]
    + [(value, 6) for value in _made_up("Город")],
}


def _fitted() -> MatchModel:
    return replace(default_model(), trained_pairs=1000, term_frequencies=term_frequencies(WRITTEN))


def test_spellings_of_one_value_count_together() -> None:
    surnames = fold_counts("last_name", WRITTEN["last_name"])
    cities = fold_counts("city", WRITTEN["city"])
    assert surnames.counts["ivanova"] == 200
    assert cities.counts["moskva"] == 333
    assert surnames.total == 1002


def test_rare_values_gain_and_common_ones_lose() -> None:
    surnames = fold_counts("last_name", WRITTEN["last_name"])
    assert surnames.adjustment("ivanova") < 0 < surnames.adjustment("ziablikova")
    # Never seen at all: rarer still.
    assert surnames.adjustment("nevidannaia") > surnames.adjustment("ziablikova")


def test_too_few_records_move_nothing() -> None:
    small = TermFrequencies.from_counts({"ivanova": TF_MIN_RECORDS // 2, "petrova": 1})
    assert small.adjustment("ivanova") == 0.0
    assert small.adjustment("petrova") == 0.0


def test_model_weight_is_bounded_per_feature() -> None:
    model = _fitted()
    loss, gain = TF_BOUNDS["last_name"]
    assert model.tf_weight("last_name", "nevidannaia") == gain
    assert -loss <= model.tf_weight("last_name", "ivanova") < 0
    assert default_model().tf_weight("last_name", "ivanova") == 0.0


def test_frequencies_survive_the_stored_json() -> None:
    model = _fitted()
    loaded = MatchModel.from_json(model.to_json())
    assert loaded.term_frequencies == model.term_frequencies
    # A model stored before term frequencies existed loads without them.
    old = model.to_dict()
    del old["term_frequencies"]
    assert MatchModel.from_dict(old).term_frequencies == {}


def test_counts_from_stored_attributes_match_the_stores_counts() -> None:
    stored = [
        {"last_name": "Иванова", "first_name": "Ольга", "addresses": [{"city": "Москва"}]},
        {"last_name": "ИВАНОВА", "first_name": "Оля", "addresses": [{"city": "г. Москва"}]},
        {"last_name": "Зябликова"},
    ]
    tables = attribute_term_frequencies(stored)
    assert tables["last_name"].counts == {"ivanova": 2, "ziablikova": 1}
    assert tables["city"].counts == {"moskva": 2}
    assert tables["first_name"].total == 2


def _namesakes(first: str, last: str, city: str) -> tuple[object, object]:
    return (
        build_person_record("1", first_name=first, last_name=last, city=city),
        build_person_record("2", first_name=first, last_name=last, city=city),
    )


def test_same_rare_full_name_in_a_small_town_outscores_a_common_one_in_moscow() -> None:
    model = _fitted()
    rare = score_pair(*_namesakes("Аглая", "Зябликова", "Кимры"), model)  # type: ignore[arg-type]
    common = score_pair(*_namesakes("Ольга", "Иванова", "Москва"), model)  # type: ignore[arg-type]
    plain = score_pair(*_namesakes("Ольга", "Иванова", "Москва"), default_model())  # type: ignore[arg-type]
    assert common.score < plain.score < rare.score
    # The adjustment is part of each feature's reported weight, and of the score.
    assert rare.weights["last_name"] == plain.weights["last_name"] + TF_BOUNDS["last_name"][1]
    assert rare.score == rare.prior_weight + sum(rare.weights.values())


def test_names_that_agree_only_loosely_are_not_adjusted() -> None:
    model = _fitted()
    a = build_person_record("1", first_name="Аглая", last_name="Зябликова", city="Кимры")
    b = build_person_record("2", first_name="Аглая", last_name="Зябликва", city="Кимры")
    assert score_pair(a, b, model).levels["last_name"] == "fuzzy"
    assert score_pair(a, b, model).weights["last_name"] == model.weight("last_name", "fuzzy")


# -- e-mail logins -------------------------------------------------------------------------


def test_logins_count_distinct_mailboxes_not_records() -> None:
    written = [
        ("maria.smirnova1987@mail.ru", 7),  # one person's seven records: one mailbox
        ("maria_smirnova1987@gmail.com", 1),  # separators aside, the same login
        ("popov.e@mail.ru", 1),
        ("popov.e@bk.ru", 1),
        ("popove@gmail.com", 1),
        ("popov.e@ya.ru", 1),  # Yandex aliases fold into one mailbox
        ("popov.e@yandex.ru", 1),
        ("unique.login.42@mail.ru", 3),
        ("info@shop.ru", 9),  # generic, and short logins, say nothing across providers
        ("olga@mail.ru", 2),
        ("not an address", 1),
    ]
    logins = fold_counts("login", written)
    assert logins.counts == {"mariasmirnova1987": 2, "popove": 4}
    assert logins.total == 6  # mailboxes of logins held by two or more
    assert logins.count("nevidannyi") == 2  # unlisted: at least the two of the pair


def test_a_login_table_keeps_its_tail_in_the_agreement_share() -> None:
    counts = {f"login{i}": 2 for i in range(300)} | {"popove": 6, "single": 1}
    table = TermFrequencies.with_tail(counts, top=10)
    assert len(table.counts) == 10 and "single" not in table.counts
    assert table.total == 606
    assert table.agreement_share == (300 * 4 + 36) / 606**2
    # Left out of the top: counts as the commonest left out, not as seen once.
    assert table.count("login299") == 2
    loaded = MatchModel.from_json(
        replace(default_model(), term_frequencies={"login": table}).to_json()
    )
    assert loaded.term_frequencies["login"] == table
    assert loaded.term_frequencies["login"].agreement_share == table.agreement_share


def test_login_counts_from_stored_records_match_the_stores_counts() -> None:
    """Offline (``attribute_term_frequencies``) and at refit (``term_frequencies`` over the
    store's value counts, one row per address with its records) count the same."""
    emails = [
        ["maria.smirnova1987@mail.ru"],
        ["maria.smirnova1987@mail.ru", "maria.smirnova1987@gmail.com"],
        ["maria.smirnova1987@mail.ru"],
        [],
    ]
    offline = attribute_term_frequencies([{}] * len(emails), emails=emails)["login"]
    store = term_frequencies(
        {"login": [("maria.smirnova1987@mail.ru", 3), ("maria.smirnova1987@gmail.com", 1)]}
    )["login"]
    assert offline == store
    assert offline.counts == {"mariasmirnova1987": 2}


def test_rare_shared_login_reads_the_base_wide_counts() -> None:
    logins = {f"login{i:03d}": 2 for i in range(148)} | {
        "mariasmirnova1987": 2,
        "popove": 5,
        "bogdanova": 2,
    }
    model = replace(default_model(), term_frequencies={"login": TermFrequencies.with_tail(logins)})

    def pair(login: str) -> tuple[object, object]:
        return (
            build_person_record("1", first_name="Мария", emails=[f"{login}@mail.ru"]),
            build_person_record("2", first_name="Мария", emails=[f"{login}@gmail.com"]),
        )

    assert rare_shared_login(*pair("maria.smirnova1987"), model)  # type: ignore[arg-type]
    assert not rare_shared_login(*pair("popov.e"), model)  # type: ignore[arg-type]
    # Two mailboxes, but the name alone: namesakes pick it too.
    assert not rare_shared_login(*pair("bogdanov.a"), model)  # type: ignore[arg-type]
    assert not rare_shared_login(*pair("maria.smirnova1987"), default_model())  # type: ignore[arg-type]
    same_mailbox = build_person_record(
        "3", first_name="Мария", emails=["mariasmirnova1987@mail.ru"]
    )
    assert not rare_shared_login(same_mailbox, same_mailbox, model)


# -- birth dates ---------------------------------------------------------------------------

# A base of 1,000 records with a birth date: 500 persons' own dates, two records each, and one
# date that 60 records of strangers hold (a year's clamped children, a date a source invents).
_OWN_DATES = [(f"19{50 + i // 12:02d}-{1 + i % 12:02d}-15", 2) for i in range(470)]
BIRTH_DATES = [("2008-01-01", 60), *_OWN_DATES]


def _given_name_and_birth_date(born: str) -> tuple[object, object]:
    """Two records without a surname or a contact: a given name and a birth date in common,
    all that joined strangers born the same day (households generator, 20,000 persons)."""
    return (
        build_person_record("1", first_name="Александр", birth_date=born),
        build_person_record("2", first_name="Александр", birth_date=born),
    )


def test_birth_dates_count_as_comparisons_read_them() -> None:
    dates = fold_counts(
        "birth_date",
        [
            ("1985-03-04", 2),
            ("1985-03-04T00:00:00", 1),
            ("1970-01-01", 40),  # a placeholder: never compared, so never counted
            ("1900-01-01", 9),
            ("04.03.1985", 1),  # not a date the service stores
        ],
    )
    assert dates.counts == {"1985-03-04": 3}
    assert dates.total == 3


def test_a_birth_date_many_records_hold_says_less_than_ones_own() -> None:
    dates = fold_counts("birth_date", BIRTH_DATES)
    # The tail of one person's dates is most of the chance two records share one: counted whole.
    assert dates.agreement_share == (60**2 + 470 * 4) / 1000**2
    assert dates.adjustment("2008-01-01") < -1 < 0 < dates.adjustment("1950-01-15")


def test_a_birth_date_only_its_own_records_hold_weighs_more() -> None:
    model = replace(default_model(), term_frequencies=term_frequencies({"birth_date": BIRTH_DATES}))
    rare = score_pair(*_given_name_and_birth_date("1950-01-15"), model)  # type: ignore[arg-type]
    common = score_pair(*_given_name_and_birth_date("2008-01-01"), model)  # type: ignore[arg-type]
    plain = score_pair(*_given_name_and_birth_date("1950-01-15"), default_model())  # type: ignore[arg-type]
    loss, gain = TF_BOUNDS["birth_date"]
    exact = default_model().weight("birth_date", "exact")
    assert 0 < model.tf_weight("birth_date", "1950-01-15") <= gain
    assert rare.weights["birth_date"] == exact + model.tf_weight("birth_date", "1950-01-15")
    assert plain.score < rare.score
    # A date strangers share loses no more than its bound (none: measured, see TF_BOUNDS).
    assert common.weights["birth_date"] == exact - loss
    assert common.score < rare.score
    # Only an exact agreement: a typo of the date keeps its weight.
    slip = score_pair(
        build_person_record("1", first_name="Александр", birth_date="1950-01-15"),
        build_person_record("2", first_name="Александр", birth_date="1950-01-16"),
        model,
    )
    assert slip.weights["birth_date"] == default_model().weight("birth_date", "typo")


def test_a_model_stored_without_birth_dates_scores_as_before() -> None:
    fitted = replace(
        _fitted(), term_frequencies=term_frequencies(WRITTEN | {"birth_date": BIRTH_DATES})
    )
    stored = fitted.to_dict()
    del stored["term_frequencies"]["birth_date"]
    old = MatchModel.from_dict(stored)
    assert "birth_date" not in old.term_frequencies
    pair = _given_name_and_birth_date("1950-01-15")
    assert score_pair(*pair, old).score == score_pair(*pair, _fitted()).score  # type: ignore[arg-type]
    assert score_pair(*pair, fitted).score > score_pair(*pair, old).score  # type: ignore[arg-type]
    assert score_pair(*pair, old).weights["birth_date"] == old.weight("birth_date", "exact")  # type: ignore[arg-type]
    # And the table itself survives the stored JSON.
    loaded = MatchModel.from_json(fitted.to_json())
    assert loaded.term_frequencies["birth_date"] == fitted.term_frequencies["birth_date"]


def test_birth_date_counts_from_stored_attributes_match_the_stores_counts() -> None:
    stored = [
        {"first_name": "Ольга", "birth_date": "1985-03-04"},
        {"first_name": "Оля", "birth_date": "1985-03-04"},
        {"first_name": "Ольга", "birth_date": "1970-01-01"},
        {"first_name": "Аглая"},
    ]
    offline = attribute_term_frequencies(stored)["birth_date"]
    store = term_frequencies({"birth_date": [("1985-03-04", 2), ("1970-01-01", 1)]})["birth_date"]
    assert offline == store
    assert offline.counts == {"1985-03-04": 2}
