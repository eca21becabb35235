"""Scores are remembered by (model, comparison vector, adjustments): a remembered score is the
one working it out again gives, and never another model's."""

from __future__ import annotations

import itertools
from dataclasses import replace

from svod_identity.domain.matching import FEATURES, LEVELS, default_model
from svod_identity.domain.matching.blocking import blocking_keys
from svod_identity.domain.matching.compare import compare_records, comparison, view
from svod_identity.domain.matching.record import PersonRecord, build_person_record
from svod_identity.domain.matching.scoring import _score_comparison, score_comparison, score_pair


def _vectors() -> list[dict[str, str]]:
    """Every level of each feature against a base vector, and pairs of features varied."""
    base = {f: LEVELS[f][0] for f in FEATURES}
    out = [dict(base)]
    for feature in FEATURES:
        out += [{**base, feature: level} for level in LEVELS[feature]]
    for a, b in itertools.combinations(FEATURES, 2):
        out.append({**base, a: LEVELS[a][-1], b: LEVELS[b][-1]})
    return out


def test_a_remembered_score_is_the_score() -> None:
    model = default_model()
    for levels in _vectors():
        for adjustments in (None, {"last_name": 1.5}):
            fresh = _score_comparison(levels, model, adjustments)
            assert score_comparison(levels, model, adjustments) == fresh
            assert score_comparison(dict(levels), model, adjustments) == fresh


def test_another_model_gets_its_own_scores() -> None:
    strict = default_model()
    lenient = replace(strict, link_threshold=0.01, review_threshold=0.005)
    levels = {f: LEVELS[f][0] for f in FEATURES} | {"phone": LEVELS["phone"][-1]}
    levels |= {"email": LEVELS["email"][-1], "birth_date": LEVELS["birth_date"][-1]}
    first = score_comparison(levels, strict)
    second = score_comparison(levels, lenient)
    assert first == _score_comparison(levels, strict, None)
    assert second == _score_comparison(levels, lenient, None)
    assert score_comparison(levels, strict) == first
    assert (first.decision, second.decision) == ("new", "review")


def _people() -> list[PersonRecord]:
    return [
        build_person_record("1", first_name="Мария", last_name="Иванова", birth_date="1985-03-02"),
        build_person_record(
            "2", first_name="Маша", last_name="Иванова", phones=["+79161234567"], city="Москва"
        ),
        build_person_record(
            "3", first_name="Maria", last_name="Ivanova", birth_date="1985-02-03", city="Moskva"
        ),
        build_person_record("4", first_name="Иван", last_name="Петров", emails=["ivan@mail.ru"]),
        build_person_record("5", first_name="Ivan", last_name="Petrov", emails=["ivan@bk.ru"]),
    ]


def test_a_pair_scores_as_its_comparison_does() -> None:
    """``score_pair`` keys scores by the comparison's tuple of levels, ``score_comparison`` by
    its items: the same pair gets the same score either way, under each model."""
    strict = default_model()
    lenient = replace(strict, link_threshold=0.01, review_threshold=0.005)
    for model in (strict, lenient, strict):
        for a, b in itertools.product(_people(), repeat=2):
            levels = compare_records(a, b)
            fresh = _score_comparison(levels, model, None)
            assert score_pair(a, b, model) == fresh
            assert score_comparison(levels, model) == fresh


def test_what_a_record_keeps_changes_nothing_of_it() -> None:
    """A record keeps its content, view and keys on itself: equal records stay equal and hash
    alike, and an equal record derived afresh gets equal ones."""
    first, again = _people()[0], _people()[0]
    keys, levels = blocking_keys(first), comparison(first, _people()[2])
    assert first == again and hash(first) == hash(again)
    assert blocking_keys(again) == keys and view(again) == view(first)
    assert comparison(again, _people()[2]) == levels == compare_records(first, _people()[2])
    assert replace(first, city="Тверь") != first
    assert view(replace(first, city="Тверь")).city != view(first).city
