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
