"""Scoring candidate pairs: Fellegi–Sunter weights, thresholds and the safety vetoes.

The score of a pair is its log2 posterior odds of being one person: the prior log-odds plus
the match weight log2(m/u) of every feature's agreement level. Thresholds on the posterior
probability give three outcomes: link automatically, send to review, or treat as someone new.

Weights alone cannot protect households and namesakes, because their evidence is correlated:
a family shares surname, address, landline and sometimes an e-mail or a card, and all of that
adds up. So two rules cap the decision whatever the score says:

* A disagreement on first name (after nickname canonicalisation), birth date or patronymic
  blocks automatic linking: the pair goes to review at best; with both first name and birth
  date disagreeing it is a different person outright (a family member).
* Names and places are not enough: without agreement on something personal - birth date, a
  mobile phone, an e-mail or a card - a pair is at best a review case. Two Ivan Ivanovs in one
  city are two people until something personal says otherwise. (The resolver lets a full
  name that only one customer holds stand in, with a fitted model: ``engine._rare_name_link``.)
* A different surname (a marriage, or someone else) needs a contact in common - phone,
  e-mail or card - the same patronymic, or the same street address: first name and birth date
  alone are shared by strangers often enough across a customer base, but not at one address.
* A birth date with a slip counts as personal evidence only together with the same given
  name, surname and street address.
* The same e-mail login at another provider (maria.smirnova85@mail.ru / @gmail.com) counts as
  personal evidence together with the same given name (nickname allowed): people keep one
  login across providers. It is weighed by the score like any level (EM estimates how often
  it happens between different people), so it links only with more in agreement.
* Unlike first names where one is not a known name (``other``) conflict only when birth date
  or surname do not agree exactly: that is a garbled entry as often as a relative.
* Same given name and surname at the same street address or postcode is personal evidence
  too where the data show that unrelated people practically never share that place (no
  families at one address): see ``strong_place``.

What counts as a disagreement is learnt from the data, like the weights: a disagreement that
matching records of this customer base show often (the model's m, which EM estimates) is a
data-quality slip there - sources that garble or replace birth dates or first names - and is
weighed by the score instead of vetoing. Where matching records almost never disagree on a
field (Russian retail data: birth dates slip by a digit, never wholesale) a disagreement is
what it looks like, another person, and the rules above hold. Patronymics always conflict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from svod_identity.domain.matching.compare import (
    Comparison,
    comparison_vector,
    given_name_login,
    view,
)
from svod_identity.domain.matching.contacts import EmailAddress
from svod_identity.domain.matching.frequencies import first_name_birth_date_key
from svod_identity.domain.matching.model import (
    FEATURES,
    MISSING,
    RARE_LOGIN_MAILBOXES,
    TF_MIN_RECORDS,
    MatchModel,
)
from svod_identity.domain.matching.record import PersonRecord

Decision = Literal["link", "review", "new"]
_DECISION_RANK: dict[str, int] = {"new": 0, "review": 1, "link": 2}

# Levels that tie a record to one individual rather than to a name, place or household.
# Near misses are left out on purpose: a birth date one digit off and the same mailbox name at
# another provider ("ivanov.a@...") are common among namesakes too.
PERSONAL_EVIDENCE: dict[str, frozenset[str]] = {
    "birth_date": frozenset({"exact"}),
    "phone": frozenset({"agree"}),
    "email": frozenset({"exact", "fuzzy"}),
    "card": frozenset({"agree"}),
}

# What ties a record to one member of a household, whoever else shares its surname, patronymic,
# flat, landline, mailbox and birth date (twins): see ``first_name_conflict``.
PERSON_UNSHARED: dict[str, frozenset[str]] = {
    "phone": frozenset({"agree"}),
    "card": frozenset({"agree"}),
}

# Contacts: what carries over a surname change and ties the new name to the old one.
CONTACT_EVIDENCE: dict[str, frozenset[str]] = {
    f: PERSONAL_EVIDENCE[f] for f in ("phone", "email", "card")
}


class Veto(StrEnum):
    """A safety rule that caps a pair's decision (reported in ``PairScore.vetoes``)."""

    FIRST_NAME_AND_BIRTH_DATE_DISAGREE = "first_name_and_birth_date_disagree"
    FIRST_NAME_DISAGREES = "first_name_disagrees"
    BIRTH_DATE_DISAGREES = "birth_date_disagrees"
    MIDDLE_NAME_DISAGREES = "middle_name_disagrees"
    NO_PERSONAL_EVIDENCE = "no_personal_evidence"
    SURNAME_CHANGE_UNCORROBORATED = "surname_change_uncorroborated"


def _any(levels: Mapping[str, str], evidence: Mapping[str, frozenset[str]]) -> bool:
    return any(levels.get(f, MISSING) in ok for f, ok in evidence.items())


@dataclass(frozen=True)
class PairScore:
    """A scored comparison with everything needed to explain it."""

    levels: Mapping[str, str]
    weights: Mapping[str, float]
    prior_weight: float
    score: float  # log2 posterior odds
    probability: float
    decision: Decision
    vetoes: tuple[Veto, ...]  # safety rules that cap this pair (see ``safety_vetoes``)

    def explain(self) -> dict[str, Any]:
        """A JSON-ready breakdown: per-feature level and weight, prior, vetoes, outcome."""
        return {
            "decision": self.decision,
            "score": round(self.score, 3),
            "probability": round(self.probability, 6),
            "prior_weight": round(self.prior_weight, 3),
            "features": [
                {"feature": f, "level": self.levels[f], "weight": round(self.weights[f], 3)}
                for f in FEATURES
            ],
            "vetoes": [veto.value for veto in self.vetoes],
        }


@dataclass(frozen=True)
class CandidateScore:
    """One candidate for a record, as ``score_candidates`` ranks them."""

    candidate_id: str
    score: float
    decision: Decision
    weights: Mapping[str, float]
    probability: float
    pair: PairScore

    def explain(self) -> dict[str, Any]:
        return {"candidate_id": self.candidate_id, **self.pair.explain()}


_NAME_AGREES = frozenset({"exact", "equivalent", "fuzzy"})
_SURNAME_AGREES = frozenset({"exact", "fuzzy"})

# A disagreement seen in at least this share of matching pairs (the model's m for the level) is
# a slip of the data, not proof of two people: it costs its weight in the score but vetoes
# nothing. Below it, matching records (practically) never disagree that way. EM puts Russian
# retail data at 0.01-0.2% on first names, birth dates and surnames, and data whose sources
# replace whole values (FEBRL) at 3-15%: the bound sits between the two, far from both.
NOISY_DISAGREEMENT = 0.01


def noisy(model: MatchModel | None, feature: str, level: str) -> bool:
    """Whether matching records often show ``level`` on ``feature``, by the model's estimate.

    Without a model nothing is noisy: every disagreement is a conflict.
    """
    return model is not None and model.m[feature].get(level, 0.0) >= NOISY_DISAGREEMENT


def first_name_conflict(levels: Mapping[str, str], model: MatchModel | None = None) -> bool:
    """Veto ``FIRST_NAME_DISAGREES``: two different known names; or unlike names where the
    birth dates do not confirm.

    Prevents merging siblings and twins, spouses and parent and child of one surname: relatives
    share everything a household has but their first names.

    Two known names are noise only beside something no other member of a family holds
    (``PERSON_UNSHARED``: a mobile, a card; not the birth date, which twins share - and the
    generator's children of one household too: with automatic fits a Сергей with no surname
    joined a Михаил of his birth date and city, households 5353 at 20,000 persons, offline with
    the fit schedule P 0.9933 -> 0.9936, R 0.8934 -> 0.8939, at most 3 -> 2 persons; 6464 P
    0.9909 -> 0.9914; EM first unchanged on households 303 / 8282, generator 101, FEBRL3 / 4,
    households 5353 0.9425 -> 0.9424). EM's share of them among matches
    grows with the base as its match class takes in relatives who share a surname, a
    patronymic, a mailbox and a city (households seed 2026 at 20,000 persons: 0.0128, over
    ``NOISY_DISAGREEMENT``; 0.003-0.006 at 3000), and brothers «Романов Александр /
    Константин / Святослав Святославович» on their mother's mailbox linked into one customer.

    A name the tables do not know ("pwige", a garbled or replaced entry) next to another is no
    proof of a different person when birth date and surname agree exactly as written; two known
    names (Анна/Мария, twins included) always are. Either level is no conflict where the model
    finds it common among matching records (see ``noisy``).
    """
    first = levels.get("first_name")
    if first not in ("disagree", "other"):
        return False
    if noisy(model, "first_name", first) and (first == "other" or _any(levels, PERSON_UNSHARED)):
        return False
    if first == "other":
        return not (
            levels.get("birth_date") == "exact" and levels.get("last_name") in _SURNAME_AGREES
        )
    return True


def birth_date_conflict(levels: Mapping[str, str], model: MatchModel | None = None) -> bool:
    """Veto ``BIRTH_DATE_DISAGREES``: unlike birth dates, unless the model finds them common
    among matching records (``noisy``).

    Prevents merging a father and a son of one name at one address, and namesakes who share a
    contact (a family phone, a card passed on): where the data never replace birth dates
    wholesale, another date is another person.
    """
    return levels.get("birth_date") == "disagree" and not noisy(model, "birth_date", "disagree")


def middle_name_conflict(levels: Mapping[str, str], model: MatchModel | None = None) -> bool:
    """Veto ``MIDDLE_NAME_DISAGREES``: unlike patronymics, always a conflict.

    Prevents merging relatives and namesakes told apart by the father's name (Иван Петрович
    and Иван Сергеевич Иванов of one family). Sources that keep a patronymic at all keep it
    well (Russian retail data puts matching pairs' disagreement near 1%, too close to call).
    """
    return levels.get("middle_name") == "disagree"


def conflicts(levels: Mapping[str, str], model: MatchModel | None = None) -> bool:
    """A first-name, birth-date or patronymic conflict: never one person without a human.

    ``model``: judge disagreements by how often matching records show them (see ``noisy``);
    without one every disagreement conflicts.
    """
    return (
        first_name_conflict(levels, model)
        or birth_date_conflict(levels, model)
        or middle_name_conflict(levels, model)
    )


# A place agreement at least this strong (log2 m/u, as estimated from the data) means unrelated
# people in this customer base practically never share it: 5 bits is 32 times likelier between
# one person's records. Street addresses in data without households (FEBRL) reach 7-9 bits, in
# Russian retail data with families at one flat 2-3, where they must not count.
STRONG_PLACE_WEIGHT = 5.0


def strong_place(model: MatchModel | None, location: str) -> bool:
    """Whether the model finds a street address or postcode agreement near-unique to a person.

    Only a model fitted on this customer base (``trained_pairs``) says so: whether families
    share flats is the market's, not something the starting model (``model.STARTING_M``,
    estimated on generated sets) can know - its street address reaches 5.1 bits, and with it a
    mother and a daughter of one name in one flat would link unseen."""
    return (
        model is not None
        and model.trained_pairs > 0
        and location in ("address", "postcode")
        and model.weight("location", location) >= STRONG_PLACE_WEIGHT
    )


def _given_name_agrees(levels: Mapping[str, str]) -> bool:
    return levels.get("first_name") in _NAME_AGREES


def _surname_agrees(levels: Mapping[str, str]) -> bool:
    return levels.get("last_name") in _SURNAME_AGREES


def _missing(levels: Mapping[str, str], feature: str) -> bool:
    return levels.get(feature, MISSING) == MISSING


def _same_home(levels: Mapping[str, str]) -> bool:
    """Same street address and the same given name: a person, not a household or namesake."""
    return levels.get("location") == "address" and _given_name_agrees(levels)


def family_member(levels: Mapping[str, str], model: MatchModel | None = None) -> bool:
    """Veto ``FIRST_NAME_AND_BIRTH_DATE_DISAGREE`` (the pair is someone new outright).

    Prevents merging relatives who share a surname, a flat, a landline, a family e-mail or a
    card: another first name *and* another birth date is another member of the family, however
    much of the household's evidence adds up in the score.
    """
    return first_name_conflict(levels, model) and birth_date_conflict(levels, model)


def identifying_field_agrees(levels: Mapping[str, str]) -> bool:
    """The same birth date, mobile phone, e-mail or card (``PERSONAL_EVIDENCE``)."""
    return _any(levels, PERSONAL_EVIDENCE)


def same_login_same_name(levels: Mapping[str, str]) -> bool:
    """The same e-mail login at another provider under the same given name: people keep one
    login across providers."""
    return levels.get("email") == "local_part" and _given_name_agrees(levels)


def slipped_birth_date_at_home(levels: Mapping[str, str]) -> bool:
    """A birth date one slip apart, with the same given name, surname and street address: a
    typing slip of one person's date, not a relative's."""
    return levels.get("birth_date") == "typo" and _same_home(levels) and _surname_agrees(levels)


def name_at_telling_place(levels: Mapping[str, str], model: MatchModel | None = None) -> bool:
    """The same given name and surname (either may be missing, not both) at a place the data
    show unrelated people practically never share (``strong_place``)."""
    return (
        strong_place(model, levels.get("location", MISSING))
        and (_given_name_agrees(levels) or _surname_agrees(levels))
        and (_given_name_agrees(levels) or _missing(levels, "first_name"))
        and (_surname_agrees(levels) or _missing(levels, "last_name"))
    )


def half_garbled_name_at_telling_address(
    levels: Mapping[str, str], model: MatchModel | None = None
) -> bool:
    """One of given name and surname the same at a telling street address, the other missing
    or unlike where the data often garble that name (``noisy``)."""
    garbled_first = levels.get("first_name") == "other" and noisy(model, "first_name", "other")
    garbled_surname = levels.get("last_name") == "disagree" and noisy(
        model, "last_name", "disagree"
    )
    return (
        levels.get("location", MISSING) == "address"
        and strong_place(model, "address")
        and (_given_name_agrees(levels) or _surname_agrees(levels))
        and (_given_name_agrees(levels) or garbled_first or _missing(levels, "first_name"))
        and (_surname_agrees(levels) or garbled_surname or _missing(levels, "last_name"))
    )


def lacks_personal_evidence(levels: Mapping[str, str], model: MatchModel | None = None) -> bool:
    """Veto ``NO_PERSONAL_EVIDENCE`` (review at best).

    Prevents merging namesakes: two Ivan Ivanovs in one city, or a mother and a daughter of
    one name in one flat, agree on everything a name and a place can say. Something tied to
    one individual must agree as well - any of the named kinds of personal evidence above.
    """
    return not (
        identifying_field_agrees(levels)
        or same_login_same_name(levels)
        or slipped_birth_date_at_home(levels)
        or name_at_telling_place(levels, model)
        or half_garbled_name_at_telling_address(levels, model)
    )


def surname_changed(
    levels: Mapping[str, str], model: MatchModel | None = None, men: bool = False
) -> bool:
    """Another surname: a known change of form, or unlike surnames where matching records
    rarely show them (``noisy``). ``men``: both sides are men, whose unlike surnames are
    never noise (see ``surname_change_uncorroborated``)."""
    last = levels.get("last_name")
    return last == "changed" or (
        last == "disagree" and (men or not noisy(model, "last_name", "disagree"))
    )


def surname_change_uncorroborated(
    levels: Mapping[str, str], model: MatchModel | None = None, men: bool = False
) -> bool:
    """Veto ``SURNAME_CHANGE_UNCORROBORATED`` (review at best).

    Prevents merging strangers who share a first name and a birth date - common enough across a
    customer base - as one person who changed surname (a marriage). Another surname links only
    with a contact in common, the same patronymic, or the same birth date together with the
    same home (or the same given name at a telling place).

    ``men``: the records on both sides are men's (``engine.Resolver._another_mans_surname``).
    A man keeps his surname on marriage in Russian naming, so unlike surnames of two men's
    records are a slip of the data or two men, whatever the model finds among matching pairs
    as a whole: EM's share of "disagree" among matches grows with the base (households seed
    2026: 0.0147 at 20,000 persons, over ``NOISY_DISAGREEMENT``), while the pairs of one man
    that truly show it stay rare (0.05% of the true matching candidate pairs at 3000 persons
    on households seed 1313, 0.22% on generator 101; probe, truth used). A telling place
    (``strong_place``) then corroborates as a contact does, without the birth date.
    """
    if not surname_changed(levels, model, men) or levels.get("middle_name") == "exact":
        return False
    if _any(levels, CONTACT_EVIDENCE):
        return False
    if men and strong_place(model, levels.get("location", MISSING)):
        # Not a marriage but a slip or another man: a place unrelated people practically
        # never share says which (FEBRL3, whose sources replace surnames: 2 true pairs at one
        # street address held back without this, F1 0.9932 -> 0.9928).
        return False
    same_person_at_place = _same_home(levels) or (
        _given_name_agrees(levels) and strong_place(model, levels.get("location", MISSING))
    )
    return not (levels.get("birth_date") == "exact" and same_person_at_place)


VetoPredicate = Callable[[Mapping[str, str], MatchModel | None], bool]
# Disagreements that cap a pair at review, each with its predicate, in the order reported.
_CONFLICT_VETOES: tuple[tuple[Veto, VetoPredicate], ...] = (
    (Veto.FIRST_NAME_DISAGREES, first_name_conflict),
    (Veto.BIRTH_DATE_DISAGREES, birth_date_conflict),
    (Veto.MIDDLE_NAME_DISAGREES, middle_name_conflict),
)


def safety_vetoes(
    levels: Mapping[str, str], model: MatchModel | None = None
) -> tuple[Decision, tuple[Veto, ...]]:
    """The best decision the household/namesake rules allow, and why (see module docstring).

    ``model``: disagreements common among matching records are no veto (see ``noisy``).
    """
    if family_member(levels, model):
        return "new", (Veto.FIRST_NAME_AND_BIRTH_DATE_DISAGREE,)
    reasons = [veto for veto, applies in _CONFLICT_VETOES if applies(levels, model)]
    # Without personal evidence a surname change is moot: the pair is reported for the former.
    if lacks_personal_evidence(levels, model):
        reasons.append(Veto.NO_PERSONAL_EVIDENCE)
    elif surname_change_uncorroborated(levels, model):
        reasons.append(Veto.SURNAME_CHANGE_UNCORROBORATED)
    return ("review" if reasons else "link"), tuple(reasons)


def _probability(score: float) -> float:
    return 1.0 / (1.0 + math.pow(2.0, -max(min(score, 200.0), -200.0)))


# Scores by (model, comparison vector, adjustments): a score depends on nothing else, and the
# vectors repeat - 20,000 generated records through the batch engine scored 56,866 pairs.
# The model is kept beside its score, so an id reused by another model is a miss.
_SCORES: dict[tuple[object, ...], tuple[MatchModel, PairScore]] = {}
_SCORES_LIMIT = 65_536


def score_comparison(
    levels: Comparison | Mapping[str, str],
    model: MatchModel,
    adjustments: Mapping[str, float] | None = None,
) -> PairScore:
    """Scores a comparison vector from ``compare_records``; ``adjustments`` are added to the
    features' weights (``tf_adjustments``). Worked out once per distinct input (``_SCORES``):
    a ``PairScore`` is immutable."""
    key = (id(model), tuple(levels.items()), tuple(adjustments.items()) if adjustments else ())
    return _cached_score(key, levels, model, adjustments)


def _cached_score(
    key: tuple[object, ...],
    levels: Comparison | Mapping[str, str],
    model: MatchModel,
    adjustments: Mapping[str, float] | None,
) -> PairScore:
    """The score of ``levels`` under ``key`` in ``_SCORES``, worked out on a miss."""
    found = _SCORES.get(key)
    if found is not None and found[0] is model:
        return found[1]
    scored = _score_comparison(levels, model, adjustments)
    if len(_SCORES) >= _SCORES_LIMIT:
        _SCORES.clear()
    _SCORES[key] = (model, scored)
    return scored


def _score_comparison(
    levels: Comparison | Mapping[str, str],
    model: MatchModel,
    adjustments: Mapping[str, float] | None,
) -> PairScore:
    weights = {f: model.weight(f, levels.get(f, MISSING)) for f in FEATURES}
    for feature, bits in (adjustments or {}).items():
        weights[feature] += bits
    score = model.prior_weight + sum(weights.values())
    probability = _probability(score)
    decision: Decision = "new"
    if probability >= model.link_threshold:
        decision = "link"
    elif probability >= model.review_threshold:
        decision = "review"
    # Vetoes are reported whether or not they changed the outcome: "why not linked" is the
    # question the review screen and the API have to answer.
    cap, vetoes = safety_vetoes(levels, model)
    if _DECISION_RANK[cap] < _DECISION_RANK[decision]:
        decision = cap
    return PairScore(
        levels={f: levels.get(f, MISSING) for f in FEATURES},
        weights=weights,
        prior_weight=model.prior_weight,
        score=score,
        probability=probability,
        decision=decision,
        vetoes=vetoes,
    )


def tf_adjustments(
    a: PersonRecord, b: PersonRecord, levels: Mapping[str, str], model: MatchModel
) -> dict[str, float]:
    """Term-frequency adjustments of the pair's exact name and birth-date agreements
    (``model.tf_weight``): the same rare surname says more than the same common one. Only for
    names written alike on both sides (not a crossed reading of swapped fields)."""
    if not model.term_frequencies:
        return {}
    x, y = view(a), view(b)
    out: dict[str, float] = {}
    for feature, mine, theirs in (
        ("last_name", x.last, y.last),
        ("first_name", x.first, y.first),
    ):
        if levels.get(feature) == "exact" and mine and theirs and mine.skeleton == theirs.skeleton:
            out[feature] = model.tf_weight(feature, mine.skeleton)
    if levels.get("location") == "city" and x.city and x.city == y.city:
        # Only the city in common: the same name in Москва says less than in Ачинск.
        out["location"] = model.tf_weight("city", x.city)
    if (
        levels.get("birth_date") == "exact"
        and x.birth_date
        and x.birth_date == y.birth_date
        and "birth_date" in model.term_frequencies
    ):
        # A date only a person's own few records hold says more than one many records hold
        # (a year's clamped children, a date a source invents); see ``TF_BOUNDS`` for why only
        # the gain. Not asked of a model stored before the table existed: it scores as it did.
        out["birth_date"] = model.tf_weight("birth_date", x.birth_date.isoformat())
    return out


def common_name_and_birth_date_loss(
    a: PersonRecord, b: PersonRecord, levels: Mapping[str, str], model: MatchModel
) -> float:
    """What the pair's given name and birth date in common are worth less, in bits (<= 0),
    because many records hold that given name on that day: log2(u_average / u_pair) of the
    (canonical given name, birth date) pair (``frequencies.fold_name_date_pairs``, counted at
    refit) when that is negative, the pair's share of the records above the chance that two
    random records share one. The name's and the date's own adjustments assume the two
    independent; a common name on a common date (a year's clamped children) is commoner
    still. 0 without the table, without an exact date, or for a pair not among the commonest
    kept (most are one person's records: no loss)."""
    table = model.term_frequencies.get("first_name_birth_date")
    if table is None or levels.get("birth_date") != "exact":
        return 0.0
    x, y = view(a), view(b)
    if x.first is None or y.first is None or x.birth_date is None:
        return 0.0
    date = x.birth_date.isoformat()
    pairs = (first_name_birth_date_key(key, date) for key in x.first.keys & y.first.keys)
    listed = [pair for pair in pairs if pair in table.counts]
    return min([0.0, *(table.adjustment(pair) for pair in listed)])


def rare_shared_login(
    a: PersonRecord, b: PersonRecord, model: MatchModel, beside: Iterable[PersonRecord] = ()
) -> bool:
    """Whether the login two records hold at different providers is one person's: it has a
    digit and at most ``RARE_LOGIN_MAILBOXES`` mailboxes hold it in the whole base (the
    model's login frequencies, counted at refit), not a surname and an initial that namesakes
    pick everywhere, nor a given name and a number (``compare.given_name_login``). False
    without frequencies from enough mailboxes.

    The digit (a birth year, a number the provider offered once the name was taken): logins
    made of the name alone collide between namesakes at two mailboxes as well (generator seed
    8888 at 6000 persons: bogdanov.a@gmail.com and @mail.ru of two Андрей Богданов in Москва,
    aleksandra.kuznetsova of two Александра Кузнецова). With it (offline.py, EM): households
    303/909/6161 at 3000 F1 0.9423/0.9392/0.9395 -> 0.9434/0.9414/0.9422 (P 0.9938/0.9918/
    0.9887 -> 0.9938/0.9918/0.9886), 4444 at 6000 0.9389 -> 0.9402 (P 0.9869 -> 0.9867);
    generator 101 0.9704 -> 0.9706, 8888 at 6000 0.9703 -> 0.9704 (P 0.9973 unchanged).
    Without it the same sets gained as much or less and lost precision: households 303 P
    0.9938 -> 0.9935, 6161 0.9887 -> 0.9880, 4444 0.9869 -> 0.9858, generator 8888 0.9973 ->
    0.9971."""
    table = model.term_frequencies.get("login")
    if table is None or table.total < TF_MIN_RECORDS:
        return False
    login = shared_login(view(a).emails, view(b).emails)
    if not any(c.isdigit() for c in login) or table.count(login) > RARE_LOGIN_MAILBOXES:
        return False
    # A given name and a number (elena1968) is every namesake's of that year: with automatic
    # fits from 2,000 records (offline.py, households at 20,000 persons) this rule's links on
    # such logins joined two people in 26 of 55 (seed 5353) and 19 of 40 (6464), against 21 of
    # 81 / 19 of 69 on logins of a given name and a surname and none of 79 / 100 on the rest.
    # Without them: 5353 P 0.9936 -> 0.9941, F1 0.9411 -> 0.9413; 6464 P 0.9914 -> 0.9921, F1
    # 0.9410 -> 0.9412; households 303 at 3,000 (EM) F1 0.9515 -> 0.9512 (P 0.9952 -> 0.9955);
    # generator 101 unchanged. Such logins still count as a mailbox name in common in the
    # score (``compare.email_level``): taken out of it as well, recall fell (5353 R 0.8939 ->
    # 0.8919, households 303 0.9114 -> 0.9089), as the same login beside other evidence is
    # mostly one person's.
    if given_name_login(login, a, b):
        return False
    # The mailboxes holding it now count too (the record's, its candidates' among ``beside``):
    # a base counted at a fit part-way through the records did not hold the namesake who came
    # since. Automatic fits (households 5353 at 20,000 persons): the login of three Алексей
    # Смирнов born 2008 at mail.ru, gmail.com and bk.ru, held by two mailboxes at the fit,
    # joined all three in one customer.
    holders = {
        address.address
        for record in (a, b, *beside)
        for address in view(record).emails
        if address.mailbox_name == login
    }
    return len(holders) <= RARE_LOGIN_MAILBOXES


def shared_login(x: Iterable[EmailAddress], y: Iterable[EmailAddress]) -> str:
    """The login two records hold at different providers (the "local_part" level), "" if none;
    the first of several."""
    theirs = {address.mailbox_name: address for address in y}
    for mine in x:
        other = theirs.get(mine.mailbox_name)
        if other is not None and other != mine and mine.portable_login:
            return mine.mailbox_name
    return ""


def score_pair(a: PersonRecord, b: PersonRecord, model: MatchModel) -> PairScore:
    levels, vector = comparison_vector(a, b)
    adjustments = tf_adjustments(a, b, levels, model)
    # Keyed by the levels' tuple (``comparison_vector``) rather than their items, which
    # ``score_comparison`` has to build: a tuple of strings never equals a tuple of pairs, so
    # the two kinds of key cannot meet.
    key = (id(model), vector, tuple(adjustments.items()) if adjustments else ())
    return _cached_score(key, levels, model, adjustments)


def score_candidates(
    record: PersonRecord, candidates: Iterable[PersonRecord], model: MatchModel
) -> list[CandidateScore]:
    """Candidates scored against ``record``, best first (ties by candidate id).

    The record itself (same ``record_key``) is skipped if it appears among the candidates.
    """
    scored = []
    for candidate in candidates:
        if candidate.record_key == record.record_key:
            continue
        pair = score_pair(record, candidate, model)
        scored.append(
            CandidateScore(
                candidate_id=candidate.record_key,
                score=pair.score,
                decision=pair.decision,
                weights=pair.weights,
                probability=pair.probability,
                pair=pair,
            )
        )
    scored.sort(key=lambda c: (-c.score, c.candidate_id))
    return scored
