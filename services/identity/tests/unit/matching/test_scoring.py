"""Decisions: who links, who goes to review, and the household/namesake safety rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest

from services.identity.tests.unit.records import FITTED_PAIRS, GARBLED_SOURCES, reweighted
from svod_identity.domain.engine import conflicting
from svod_identity.domain.matching import (
    FEATURES,
    LEVELS,
    MatchModel,
    PersonRecord,
    default_model,
    score_candidates,
    score_pair,
)
from svod_identity.domain.matching.model import starting_model
from svod_identity.domain.matching.scoring import (
    STRONG_PLACE_WEIGHT,
    conflicts,
    noisy,
    strong_place,
)

RecordFactory = Callable[..., PersonRecord]


def _identifier_happy_model() -> MatchModel:
    """A model that trusts shared identifiers and addresses enormously (as EM can, when a
    customer base has few households): the safety rules must hold even then."""
    base = default_model()
    m = {f: dict(levels) for f, levels in base.m.items()}
    u = {f: dict(levels) for f, levels in base.u.items()}
    for feature in ("phone", "email", "card"):
        top = LEVELS[feature][0]
        m[feature][top], u[feature][top] = 0.9, 1e-4
    m["phone"]["agree_landline"], u["phone"]["agree_landline"] = 0.5, 1e-4
    m["location"]["address"], u["location"]["address"] = 0.9, 1e-4
    return replace(base, m=m, u=u)


MODELS = pytest.mark.parametrize(
    "model", [default_model(), _identifier_happy_model()], ids=["default", "identifier_happy"]
)


@pytest.fixture
def household(make_record: RecordFactory) -> list[PersonRecord]:
    """A family: one surname (in its gender forms), one flat, one landline, one family e-mail,
    one family loyalty card; different first names and birth dates."""
    shared = {
        "city": "Москва",
        "address_line": "ул. Профсоюзная, д. 12, кв. 45",
        "phones": ["+7 495 731-22-08"],
        "emails": ["ivanovy.family@mail.ru"],
        "cards": ["2000123456789"],
    }
    return [
        make_record(first_name="Иван", last_name="Иванов", birth_date="1970-05-01", **shared),
        make_record(first_name="Мария", last_name="Иванова", birth_date="1972-09-17", **shared),
        make_record(first_name="Ольга", last_name="Иванова", birth_date="1998-02-11", **shared),
    ]


@MODELS
def test_household_members_are_never_auto_linked(
    household: list[PersonRecord], model: MatchModel
) -> None:
    for i, a in enumerate(household):
        for b in household[i + 1 :]:
            score = score_pair(a, b, model)
            assert score.decision == "new", (a.first_name, b.first_name, score.explain())


@MODELS
def test_household_members_without_birth_dates_are_not_auto_linked(
    make_record: RecordFactory, model: MatchModel
) -> None:
    shared = {"address_line": "ул. Профсоюзная, д. 12", "phones": ["+7 916 482-19-37"]}
    husband = make_record(first_name="Иван", last_name="Иванов", **shared)
    wife = make_record(first_name="Маша", last_name="Иванова", **shared)
    assert score_pair(husband, wife, model).decision != "link"


@MODELS
def test_twins_sharing_everything_but_first_names_are_not_linked(
    make_record: RecordFactory, model: MatchModel
) -> None:
    shared = {"birth_date": "2001-06-30", "phones": ["+7 916 482-19-37"], "city": "Казань"}
    a = make_record(first_name="Саша", last_name="Петрова", **shared)
    b = make_record(first_name="Саша", last_name="Петров", **shared)  # brother Александр
    assert score_pair(a, b, model).decision != "link"


@MODELS
def test_namesakes_in_one_city_are_not_linked(
    make_record: RecordFactory, model: MatchModel
) -> None:
    first = make_record(
        first_name="Иван",
        last_name="Иванов",
        middle_name="Иванович",
        birth_date="1980-01-15",
        city="Москва",
        phones=["+7 916 482-19-37"],
    )
    second = make_record(
        first_name="Иван",
        last_name="Иванов",
        middle_name="Иванович",
        birth_date="1975-11-02",
        city="Москва",
        phones=["+7 926 305-71-44"],
    )
    no_birth_date = make_record(
        first_name="Ваня", last_name="Иванов", city="Москва", emails=["vanya1990@mail.ru"]
    )
    assert score_pair(first, second, model).decision == "new"
    assert score_pair(first, no_birth_date, model).decision != "link"
    assert score_pair(second, no_birth_date, model).decision != "link"


def test_masha_and_maria_with_one_phone_link(make_record: RecordFactory) -> None:
    masha = make_record(first_name="Маша", last_name="Смирнова", phones=["8 916 482-19-37"])
    maria = make_record(
        first_name="Maria", last_name="Smirnova", phones=["+7 (916) 482-19-37"], city="Москва"
    )
    assert score_pair(masha, maria, default_model()).decision == "link"


def test_typod_email_with_same_name_and_birth_date_links(make_record: RecordFactory) -> None:
    a = make_record(
        first_name="Ольга",
        last_name="Соколова",
        birth_date="1988-04-23",
        emails=["olga.sokolova88@yandex.ru"],
    )
    b = make_record(
        first_name="Оля",
        last_name="Соколова",
        birth_date="1988-04-23",
        emails=["olga.sokolvoa88@yandex.ru"],
    )
    score = score_pair(a, b, default_model())
    assert score.levels["email"] == "fuzzy"
    assert score.decision == "link"


def test_one_login_at_two_providers_with_one_given_name_is_personal_evidence(
    make_record: RecordFactory,
) -> None:
    """Russians keep one login across mail.ru, Yandex, Gmail and bk.ru: with the same given
    name (nickname allowed) it is no longer "names only"; the score still weighs it."""
    a = make_record(first_name="Мария", last_name="Смирнова", emails=["maria.smirnova85@mail.ru"])
    b = make_record(first_name="Маша", last_name="Смирнова", emails=["maria.smirnova85@gmail.com"])
    score = score_pair(a, b, default_model())
    assert score.levels["email"] == "local_part"
    assert "no_personal_evidence" not in score.vetoes
    # Without a given name on one side the login is weighed but personal evidence it is not.
    nameless = make_record(last_name="Смирнова", emails=["maria.smirnova85@bk.ru"])
    assert "no_personal_evidence" in score_pair(a, nameless, default_model()).vetoes


def test_one_login_with_birth_dates_apart_is_not_linked(make_record: RecordFactory) -> None:
    mother = make_record(
        first_name="Мария", last_name="Смирнова", birth_date="1962-04-01",
        emails=["smirnova.m@mail.ru"],
    )  # fmt: skip
    daughter = make_record(
        first_name="Мария", last_name="Смирнова", birth_date="1989-11-23",
        emails=["smirnova.m@gmail.com"],
    )  # fmt: skip
    assert score_pair(mother, daughter, default_model()).decision != "link"


def test_married_name_change_links_through_a_shared_phone(make_record: RecordFactory) -> None:
    maiden = make_record(
        first_name="Анна", last_name="Кузнецова", birth_date="1990-03-08", phones=["89164821937"]
    )
    married = make_record(
        first_name="Аня", last_name="Волкова", birth_date="1990-03-08", phones=["+79164821937"]
    )
    assert score_pair(maiden, married, default_model()).decision == "link"


def test_surname_change_without_a_shared_contact_waits_for_review(
    make_record: RecordFactory,
) -> None:
    a = make_record(first_name="Анна", last_name="Кузнецова", birth_date="1990-03-08")
    b = make_record(first_name="Анна", last_name="Волкова", birth_date="1990-03-08")
    score = score_pair(a, b, default_model())
    assert score.decision != "link"


def test_explain_adds_up(make_record: RecordFactory) -> None:
    a = make_record(first_name="Маша", last_name="Иванова", phones=["+79164821937"])
    b = make_record(first_name="Мария", last_name="Иванова", phones=["+79164821937"])
    explained = score_pair(a, b, default_model()).explain()
    assert [f["feature"] for f in explained["features"]] == list(FEATURES)
    total = explained["prior_weight"] + sum(f["weight"] for f in explained["features"])
    assert total == pytest.approx(explained["score"], abs=0.01)
    assert explained["decision"] == "link"
    json.dumps(explained)  # the API sends it as is


def test_score_candidates_ranks_and_skips_the_record_itself(make_record: RecordFactory) -> None:
    record = make_record(
        record_key="new",
        first_name="Дима",
        last_name="Орлов",
        birth_date="1991-12-01",
        phones=["+79164821937"],
    )
    same = make_record(
        record_key="same", first_name="Дмитрий", last_name="Орлов", phones=["89164821937"]
    )
    brother = make_record(
        record_key="brother", first_name="Олег", last_name="Орлов", birth_date="1994-02-02"
    )
    ranked = score_candidates(record, [brother, record, same], default_model())
    assert [c.candidate_id for c in ranked] == ["same", "brother"]
    assert ranked[0].decision == "link" and ranked[1].decision == "new"
    assert set(ranked[0].weights) == set(FEATURES)
    assert ranked[0].explain()["candidate_id"] == "same"


def test_match_model_round_trips_through_json() -> None:
    model = replace(default_model(), prior=0.42, trained_pairs=10, em_iterations=3)
    restored = MatchModel.from_json(model.to_json())
    assert restored == model
    assert restored.weight("phone", "agree") == pytest.approx(model.weight("phone", "agree"))


def test_match_model_rejects_nonsense_thresholds() -> None:
    with pytest.raises(ValueError, match="threshold"):
        default_model().with_thresholds(link=0.5, review=0.9)


# -- typos and garbled entries vs. a different family member (issue 3 follow-up) -------------


def _garbled_model() -> MatchModel:
    """A model as EM fits it on data full of garbled entries: unlike unknown names cost little."""
    base = default_model()
    m = {f: dict(levels) for f, levels in base.m.items()}
    u = {f: dict(levels) for f, levels in base.u.items()}
    m["first_name"]["other"], u["first_name"]["other"] = 0.2, 0.3
    return replace(base, m=m, u=u)


@MODELS
def test_twins_with_two_known_names_are_never_linked(
    make_record: RecordFactory, model: MatchModel
) -> None:
    shared = {
        "last_name": "Петрова",
        "birth_date": "2001-06-30",
        "city": "Казань",
        "address_line": "ул. Баумана, д. 7, кв. 3",
    }
    a = make_record(first_name="Анна", **shared)
    b = make_record(first_name="Мария", **shared)
    score = score_pair(a, b, model)
    assert score.levels["first_name"] == "disagree"
    assert score.decision != "link"
    assert "first_name_disagrees" in score.vetoes


def test_a_garbled_first_name_is_no_veto_when_birth_date_and_surname_agree(
    make_record: RecordFactory,
) -> None:
    shared = {"last_name": "sach", "birth_date": "1979-11-09", "city": "gawler west"}
    a = make_record(first_name="jasmine", address_line="1 goble street renown", **shared)
    b = make_record(first_name="pwige", address_line="1 renown", **shared)
    score = score_pair(a, b, _garbled_model())
    assert score.levels["first_name"] == "other"
    assert "first_name_disagrees" not in score.vetoes
    assert score.decision == "link"


def test_a_garbled_first_name_with_another_birth_date_is_a_conflict(
    make_record: RecordFactory,
) -> None:
    a = make_record(first_name="jasmine", last_name="sach", birth_date="1979-11-09")
    b = make_record(first_name="pwige", last_name="sach", birth_date="1982-03-01")
    score = score_pair(a, b, _garbled_model())
    assert score.decision == "new"


def test_surname_change_at_the_same_address_links_without_a_contact(
    make_record: RecordFactory,
) -> None:
    shared = {
        "first_name": "Анна",
        "birth_date": "1990-03-08",
        "city": "Москва",
        "address_line": "ул. Ленина, д. 5, кв. 12",
    }
    a = make_record(last_name="Кузнецова", **shared)
    b = make_record(last_name="Волкова", **shared)
    score = score_pair(a, b, default_model())
    assert "surname_change_uncorroborated" not in score.vetoes


def test_a_slipped_birth_date_counts_only_with_name_and_address(
    make_record: RecordFactory,
) -> None:
    home = {"city": "Москва", "address_line": "ул. Ленина, д. 5, кв. 12"}
    a = make_record(first_name="Иван", last_name="Орлов", birth_date="1980-12-13", **home)
    b = make_record(first_name="Иван", last_name="Орлов", birth_date="1980-12-31", **home)
    assert "no_personal_evidence" not in score_pair(a, b, default_model()).vetoes
    c = make_record(first_name="Иван", last_name="Орлов", birth_date="1980-12-31")
    assert "no_personal_evidence" in score_pair(a, c, default_model()).vetoes


# -- disagreements judged by the data: slips where matches often show them (issue 3) --------


def _noisy_model() -> MatchModel:
    """A model as EM fits it on data whose sources garble or replace birth dates, first names
    and surnames (FEBRL-like): matching pairs disagree on each in several per cent of cases."""
    return reweighted(default_model(), GARBLED_SOURCES, trained_pairs=FITTED_PAIRS)


@pytest.mark.parametrize("model", [default_model(), starting_model()], ids=["hand-set", "start"])
def test_default_model_treats_every_disagreement_as_a_conflict(model: MatchModel) -> None:
    """The hand-set values and the starting model estimated from them (``STARTING_M``): until
    this base's data say a source garbles a field, a disagreement on it is a conflict."""
    for feature, level in (
        ("first_name", "disagree"),
        ("first_name", "other"),
        ("birth_date", "disagree"),
        ("middle_name", "disagree"),
        ("last_name", "disagree"),
    ):
        assert not noisy(model, feature, level), (feature, level)
    levels = {"first_name": "exact", "last_name": "exact", "birth_date": "disagree"}
    assert conflicts(levels, model) and conflicts(levels)


def test_a_replaced_birth_date_links_where_the_data_show_such_slips(
    make_record: RecordFactory,
) -> None:
    shared = {
        "first_name": "harry",
        "last_name": "blake",
        "city": "kahibah",
        "address_line": "36 cowlishaw street sommerset park",
        "postcode": "3073",
    }
    a = make_record(birth_date="1952-10-04", **shared)
    b = make_record(birth_date="1940-04-01", **shared)
    noisy_score = score_pair(a, b, _noisy_model())
    assert noisy_score.levels["birth_date"] == "disagree"
    assert noisy_score.vetoes == ()
    assert noisy_score.decision == "link"
    # Where matching records never disagree on birth dates it is another person (a father and
    # a son of one name at one address), whatever the address weighs.
    strict = score_pair(a, b, _identifier_happy_model())
    assert "birth_date_disagrees" in strict.vetoes
    assert strict.decision != "link"


def test_known_different_first_names_conflict_even_in_noisy_data(
    make_record: RecordFactory,
) -> None:
    shared = {"last_name": "Петрова", "birth_date": "2001-06-30", "postcode": "420111"}
    a = make_record(first_name="Анна", **shared)
    b = make_record(first_name="Мария", **shared)
    score = score_pair(a, b, _noisy_model())
    assert "first_name_disagrees" in score.vetoes
    assert score.decision != "link"


def test_same_name_at_one_address_counts_only_where_people_rarely_share_one(
    make_record: RecordFactory,
) -> None:
    home = {"city": "Москва", "address_line": "ул. Ленина, д. 5, кв. 12"}
    a = make_record(first_name="Светлана", last_name="Орлова", phones=["+79164821937"], **home)
    b = make_record(first_name="Света", last_name="Орлова", cards=["2000123456789"], **home)
    # Families share flats (a mother and a daughter may share a name): by default, and
    # wherever EM finds addresses shared by different people, a human decides.
    assert "no_personal_evidence" in score_pair(a, b, default_model()).vetoes
    assert not strong_place(default_model(), "address")
    # Where the data show an address all but unique to a person, it is personal evidence.
    assert strong_place(_noisy_model(), "address")
    assert "no_personal_evidence" not in score_pair(a, b, _noisy_model()).vetoes
    # The same name in the same city only is a namesake until something personal agrees.
    c = make_record(first_name="Светлана", last_name="Орлова", city="Москва")
    assert "no_personal_evidence" in score_pair(a, c, _noisy_model()).vetoes


def test_same_name_under_one_postcode_counts_where_postcodes_are_telling(
    make_record: RecordFactory,
) -> None:
    base = default_model()
    m = {f: dict(levels) for f, levels in base.m.items()}
    u = {f: dict(levels) for f, levels in base.u.items()}
    m["location"]["postcode"], u["location"]["postcode"] = 0.3, 0.002
    telling = replace(base, m=m, u=u, trained_pairs=FITTED_PAIRS)
    a = make_record(first_name="laura", last_name="ryan", city="orange", postcode="2289")
    b = make_record(first_name="laura", last_name="ryna", city="orange", postcode="2289")
    c = make_record(first_name="laura", last_name="ryan", city="orange", postcode="2298")
    ab = score_pair(a, b, telling)
    assert ab.levels["location"] == "postcode"
    assert "no_personal_evidence" not in ab.vetoes
    assert "no_personal_evidence" in score_pair(a, b, default_model()).vetoes
    ac = score_pair(a, c, telling)
    assert ac.levels["location"] == "postcode"  # one slip apart in the same city
    d = make_record(first_name="laura", last_name="ryan", city="bathurst", postcode="2795")
    assert "no_personal_evidence" in score_pair(a, d, telling).vetoes


def test_the_engine_conflict_check_follows_the_model(make_record: RecordFactory) -> None:
    shared = {"first_name": "tahni", "last_name": "murton", "address_line": "11 macfarland"}
    a = make_record(birth_date="1923-11-10", **shared)
    b = make_record(birth_date="1950-09-09", **shared)
    assert conflicting(a, b)
    assert conflicting(a, b, default_model())
    assert not conflicting(a, b, _noisy_model())


def test_a_missing_given_name_at_a_telling_address_is_no_disagreement(
    make_record: RecordFactory,
) -> None:
    home = {"city": "hahndorf", "address_line": "3 sculptor street green farm", "postcode": "2581"}
    a = make_record(last_name="glass", birth_date="1967-03-17", **home)
    b = make_record(first_name="charlotte", last_name="glass", **home)
    # Where unrelated people practically never share an address, one name agreeing there with
    # the other missing is one person; where families share flats it waits for a human.
    assert "no_personal_evidence" not in score_pair(a, b, _noisy_model()).vetoes
    assert "no_personal_evidence" in score_pair(a, b, default_model()).vetoes
    # A known different given name is still a conflict.
    c = make_record(first_name="Анна", last_name="glass", **home)
    d = make_record(first_name="Мария", last_name="glass", **home)
    assert score_pair(c, d, _noisy_model()).decision != "link"


def test_the_starting_model_never_reads_a_place_as_telling(make_record: RecordFactory) -> None:
    """Its street address weighs over ``STRONG_PLACE_WEIGHT`` (EM on generated sets), but
    whether families share flats is this customer base's to say: until a fit on it, a mother
    and a daughter of one name in one flat wait for a human."""
    start = starting_model()
    assert start.weight("location", "address") >= STRONG_PLACE_WEIGHT
    assert not strong_place(start, "address")
    assert strong_place(replace(start, trained_pairs=FITTED_PAIRS), "address")
    home = {"city": "Пермь", "address_line": "ул. Ленина, д. 5, кв. 7", "last_name": "Орлова"}
    mother = make_record(first_name="Светлана", phones=("+79161234567",), **home)
    daughter = make_record(first_name="Света", emails=("sveta.o@mail.ru",), **home)
    assert "no_personal_evidence" in score_pair(mother, daughter, start).vetoes
