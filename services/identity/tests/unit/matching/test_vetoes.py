"""The safety vetoes one by one, on comparison levels: each predicate fires on the over-merge
it exists to stop, and stays quiet on the look-alike case that is one person."""

from __future__ import annotations

import json

from services.identity.tests.unit.records import FITTED_PAIRS, GARBLED_SOURCES, reweighted
from svod_identity.domain.matching.model import MatchModel, default_model
from svod_identity.domain.matching.scoring import (
    NOISY_DISAGREEMENT,
    Veto,
    birth_date_conflict,
    family_member,
    first_name_conflict,
    half_garbled_name_at_telling_address,
    identifying_field_agrees,
    lacks_personal_evidence,
    middle_name_conflict,
    name_at_telling_place,
    safety_vetoes,
    same_login_same_name,
    score_comparison,
    slipped_birth_date_at_home,
    surname_change_uncorroborated,
)

SAME_NAME = {"first_name": "exact", "last_name": "exact"}
AT_HOME = {**SAME_NAME, "location": "address"}


def _telling_model() -> MatchModel:
    """As EM fits data whose sources garble names and replace birth dates, and where unrelated
    people practically never share a street address (FEBRL-like)."""
    return reweighted(
        default_model(),
        {**GARBLED_SOURCES, ("location", "postcode"): (0.3, 0.002)},
        trained_pairs=FITTED_PAIRS,
    )


# -- family_member -------------------------------------------------------------------------


def test_another_first_name_and_birth_date_is_a_relative_whatever_the_household_shares() -> None:
    household = {"phone": "agree", "card": "agree", "email": "exact", "location": "address"}
    levels = {**household, "first_name": "disagree", "birth_date": "disagree"}
    assert family_member(levels)
    assert safety_vetoes(levels) == ("new", (Veto.FIRST_NAME_AND_BIRTH_DATE_DISAGREE,))


def test_one_disagreement_alone_is_no_relative() -> None:
    assert not family_member({"first_name": "disagree", "birth_date": "exact"})
    assert not family_member({"first_name": "exact", "birth_date": "disagree"})


def test_no_relative_where_the_data_often_replace_birth_dates() -> None:
    levels = {"first_name": "disagree", "birth_date": "disagree"}
    assert not family_member(levels, _telling_model())


# -- first_name_conflict -------------------------------------------------------------------


def test_two_different_known_first_names_conflict_even_in_noisy_data() -> None:
    assert first_name_conflict({"first_name": "disagree"})
    assert first_name_conflict({"first_name": "disagree"}, _telling_model())


def test_two_known_first_names_of_one_birth_date_conflict_where_the_data_swap_names() -> None:
    """Where matches often show two known names (a noisy base), a mobile or a card in common
    reads them as one person's; a birth date does not - twins share it (households 5353 at
    20,000 persons: a Сергей joined a Михаил of his birth date and city)."""
    # Unlike given names in 2% of matching pairs, as EM gave on households at 20,000 persons.
    noisy = reweighted(
        default_model(), {("first_name", "disagree"): (0.0195, 0.3223)}, trained_pairs=FITTED_PAIRS
    )
    assert noisy.m["first_name"]["disagree"] >= NOISY_DISAGREEMENT
    assert first_name_conflict({"first_name": "disagree", "birth_date": "exact"}, noisy)
    assert not first_name_conflict({"first_name": "disagree", "phone": "agree"}, noisy)
    assert not first_name_conflict({"first_name": "disagree", "card": "agree"}, noisy)


def test_an_unknown_first_name_conflicts_unless_birth_date_and_surname_confirm() -> None:
    assert first_name_conflict({"first_name": "other", "last_name": "exact"})
    confirmed = {"first_name": "other", "last_name": "fuzzy", "birth_date": "exact"}
    assert not first_name_conflict(confirmed)


def test_an_unknown_first_name_is_no_conflict_where_the_data_garble_names() -> None:
    assert not first_name_conflict({"first_name": "other"}, _telling_model())


def test_agreeing_or_missing_first_names_never_conflict() -> None:
    for level in ("exact", "equivalent", "fuzzy", "missing"):
        assert not first_name_conflict({"first_name": level}), level
    assert not first_name_conflict({})


# -- birth_date_conflict -------------------------------------------------------------------


def test_another_birth_date_conflicts_where_the_data_never_replace_one() -> None:
    assert birth_date_conflict({"birth_date": "disagree"})
    assert birth_date_conflict({"birth_date": "disagree"}, default_model())
    assert not birth_date_conflict({"birth_date": "disagree"}, _telling_model())


def test_a_slipped_digit_in_a_birth_date_is_no_conflict() -> None:
    assert not birth_date_conflict({"birth_date": "typo"})


# -- middle_name_conflict ------------------------------------------------------------------


def test_another_patronymic_always_conflicts() -> None:
    assert middle_name_conflict({"middle_name": "disagree"})
    assert middle_name_conflict({"middle_name": "disagree"}, _telling_model())
    assert not middle_name_conflict({"middle_name": "fuzzy"})
    assert not middle_name_conflict({})


# -- lacks_personal_evidence and its kinds -------------------------------------------------


def test_a_name_and_a_city_are_no_personal_evidence() -> None:
    levels = {**SAME_NAME, "location": "city"}
    assert lacks_personal_evidence(levels)
    assert lacks_personal_evidence(levels, _telling_model())


def test_birth_date_mobile_email_or_card_are_personal_evidence() -> None:
    for feature, level in (
        ("birth_date", "exact"),
        ("phone", "agree"),
        ("email", "exact"),
        ("email", "fuzzy"),
        ("card", "agree"),
    ):
        levels = {**SAME_NAME, feature: level}
        assert identifying_field_agrees(levels), (feature, level)
        assert not lacks_personal_evidence(levels), (feature, level)


def test_a_household_landline_or_a_near_miss_is_no_personal_evidence() -> None:
    for feature, level in (
        ("phone", "agree_landline"),
        ("birth_date", "typo"),
        ("email", "local_part"),
    ):
        levels = {"first_name": "disagree", feature: level}
        assert not identifying_field_agrees(levels), (feature, level)
        assert lacks_personal_evidence(levels), (feature, level)


def test_one_login_at_two_providers_counts_under_the_same_given_name_only() -> None:
    assert same_login_same_name({"email": "local_part", "first_name": "equivalent"})
    assert not same_login_same_name({"email": "local_part", "first_name": "other"})
    assert not same_login_same_name({"email": "local_part"})


def test_a_slipped_birth_date_counts_at_one_home_under_one_name_only() -> None:
    assert slipped_birth_date_at_home({**AT_HOME, "birth_date": "typo"})
    assert not slipped_birth_date_at_home({**SAME_NAME, "location": "city", "birth_date": "typo"})
    other_surname = {**AT_HOME, "last_name": "disagree", "birth_date": "typo"}
    assert not slipped_birth_date_at_home(other_surname)


def test_a_name_at_a_place_counts_only_where_unrelated_people_rarely_share_it() -> None:
    assert name_at_telling_place(AT_HOME, _telling_model())
    assert name_at_telling_place({**SAME_NAME, "location": "postcode"}, _telling_model())
    # Families share flats where the default model describes the data.
    assert not name_at_telling_place(AT_HOME, default_model())
    assert not name_at_telling_place(AT_HOME)
    assert not name_at_telling_place({**SAME_NAME, "location": "city"}, _telling_model())


def test_at_a_telling_place_one_name_may_be_missing_but_not_both() -> None:
    model = _telling_model()
    assert name_at_telling_place({"last_name": "exact", "location": "address"}, model)
    assert not name_at_telling_place({"location": "address"}, model)
    assert not name_at_telling_place({**AT_HOME, "first_name": "other"}, model)


def test_a_garbled_half_of_the_name_counts_at_a_telling_street_address_only() -> None:
    model = _telling_model()
    garbled_surname = {**AT_HOME, "last_name": "disagree"}
    assert half_garbled_name_at_telling_address(garbled_surname, model)
    assert half_garbled_name_at_telling_address({**AT_HOME, "first_name": "other"}, model)
    # Not under a postcode, not where surnames are rarely garbled, not with both halves off.
    assert not half_garbled_name_at_telling_address(
        {**garbled_surname, "location": "postcode"}, model
    )
    assert not half_garbled_name_at_telling_address(garbled_surname, default_model())
    both_off = {"first_name": "other", "last_name": "disagree", "location": "address"}
    assert not half_garbled_name_at_telling_address(both_off, model)
    assert lacks_personal_evidence(both_off, model)


# -- surname_change_uncorroborated ---------------------------------------------------------


def test_a_new_surname_on_first_name_and_birth_date_alone_is_uncorroborated() -> None:
    levels = {"first_name": "exact", "last_name": "changed", "birth_date": "exact"}
    assert surname_change_uncorroborated(levels)
    assert surname_change_uncorroborated({**levels, "last_name": "disagree"})


def test_a_new_surname_is_corroborated_by_a_contact_a_patronymic_or_the_home() -> None:
    levels = {"first_name": "exact", "last_name": "changed", "birth_date": "exact"}
    assert not surname_change_uncorroborated({**levels, "phone": "agree"})
    assert not surname_change_uncorroborated({**levels, "card": "agree"})
    assert not surname_change_uncorroborated({**levels, "email": "exact"})
    assert not surname_change_uncorroborated({**levels, "middle_name": "exact"})
    assert not surname_change_uncorroborated({**levels, "location": "address"})
    # A telling postcode stands in for the home only with a fitted model that says so.
    assert surname_change_uncorroborated({**levels, "location": "postcode"})
    assert not surname_change_uncorroborated({**levels, "location": "postcode"}, _telling_model())


def test_the_home_corroborates_a_new_surname_only_with_the_same_birth_date() -> None:
    levels = {"first_name": "exact", "last_name": "changed", "location": "address"}
    assert surname_change_uncorroborated({**levels, "birth_date": "typo"})


def test_a_garbled_surname_in_noisy_data_is_no_change() -> None:
    levels = {"first_name": "exact", "last_name": "disagree", "birth_date": "exact"}
    assert not surname_change_uncorroborated(levels, _telling_model())
    assert not surname_change_uncorroborated({**levels, "last_name": "gender_form"})


# -- safety_vetoes: the cap and the order reported -----------------------------------------


def test_nothing_vetoes_a_pair_with_personal_evidence_and_no_disagreement() -> None:
    assert safety_vetoes({**SAME_NAME, "phone": "agree"}) == ("link", ())


def test_conflicts_are_reported_in_order_with_missing_evidence_last() -> None:
    levels = {
        "first_name": "disagree",
        "last_name": "exact",
        "middle_name": "disagree",
        "location": "city",
    }
    assert safety_vetoes(levels) == (
        "review",
        (Veto.FIRST_NAME_DISAGREES, Veto.MIDDLE_NAME_DISAGREES, Veto.NO_PERSONAL_EVIDENCE),
    )


def test_without_personal_evidence_a_surname_change_is_not_reported_as_well() -> None:
    levels = {"first_name": "exact", "last_name": "changed", "location": "city"}
    assert surname_change_uncorroborated(levels)
    assert safety_vetoes(levels) == ("review", (Veto.NO_PERSONAL_EVIDENCE,))


def test_with_personal_evidence_an_uncorroborated_surname_change_caps_at_review() -> None:
    levels = {"first_name": "exact", "last_name": "changed", "birth_date": "exact"}
    assert safety_vetoes(levels) == ("review", (Veto.SURNAME_CHANGE_UNCORROBORATED,))


def test_explanations_carry_the_vetoes_as_plain_strings() -> None:
    levels = {"first_name": "disagree", "last_name": "exact", "location": "city"}
    explained = score_comparison(levels, default_model()).explain()
    assert explained["vetoes"] == ["first_name_disagrees", "no_personal_evidence"]
    assert all(type(v) is str for v in explained["vetoes"])
    assert json.loads(json.dumps(explained))["vetoes"] == explained["vetoes"]
