"""Pairwise comparison: two person records → one agreement level per feature.

Levels are defined in ``model.LEVELS``. Each comparator is a small pure function over the
derived ``RecordView`` so that per-record work (transliteration, name look-ups, phone parsing)
happens once per record, not once per pair.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz, process
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler

from svod_identity.domain.matching.contacts import (
    EmailAddress,
    email_address,
    is_landline,
    is_placeholder_phone,
)
from svod_identity.domain.matching.model import MISSING
from svod_identity.domain.matching.names import (
    FirstName,
    gender_of_first_name,
    name_table,
    resolve_first_name,
)
from svod_identity.domain.matching.places import address_key, city_key, house_number
from svod_identity.domain.matching.record import (
    CACHED_RECORDS,
    BoundedCache,
    PersonRecord,
    person_content,
)
from svod_identity.domain.matching.surnames import (
    GenderForm,
    patronymic_form,
    patronymic_gender,
    russian_surname_gender,
    surname_form,
    surname_gender,
)
from svod_identity.domain.matching.text import latin_skeleton

Comparison = dict[str, str]

# Similarity thresholds (Jaro–Winkler on Latin skeletons). Names are short, so one wrong letter
# in a 5-letter name already costs ~0.1.
FIRST_NAME_FUZZY = 0.88
# An unknown spelling against the written forms of a known name (see first_name_level).
FIRST_NAME_TYPO = 0.85
FIRST_NAME_SLIP_MIN_LENGTH = 3
LAST_NAME_FUZZY = 0.92
MIDDLE_NAME_FUZZY = 0.92
ADDRESS_SIMILARITY = 92.0
# Same house number: the rest of the address (street, building name) may carry slips and words
# one source leaves out ("4 northam street" / "4 northam street aptm 206").
STREET_SIMILARITY = 85.0
CITY_TYPO_MIN_LENGTH = 5
CITY_TWO_TYPOS_MIN_LENGTH = 9
POSTCODE_TYPO_MIN_LENGTH = 4
SURNAME_TYPO_MIN_LENGTH = 4
EMAIL_TYPO_MIN_LENGTH = 5


@dataclass(frozen=True)
class RecordView:
    """What comparisons need from a record, derived once."""

    first: FirstName | None
    last: GenderForm | None
    middle: GenderForm | None
    gender: str | None
    birth_date: dt.date | None
    mobiles: frozenset[str]
    landlines: frozenset[str]
    emails: tuple[EmailAddress, ...]
    cards: frozenset[str]
    city: str
    address: str
    postcode: str
    # The crossed reading, for records whose first/last fields were swapped at the source.
    last_as_first: FirstName | None
    first_as_last: GenderForm | None


def _first_said(
    readings: Iterable[tuple[str | None, Callable[[str], str | None]]],
) -> str | None:
    """The gender the first (name field, reader) pair with a value and an answer says."""
    for value, reader in readings:
        if value:
            gender = reader(value)
            if gender:
                return gender
    return None


def effective_gender(record: PersonRecord) -> str | None:
    """Stated gender, else what the patronymic, surname or first name say."""
    if record.gender in ("female", "male"):
        return record.gender
    return _first_said(
        (
            (record.middle_name, patronymic_gender),
            (record.last_name, surname_gender),
            (record.first_name, gender_of_first_name),
        )
    )


def sex_of_names(record: PersonRecord) -> str | None:
    """The sex a record's names say, read more strictly than ``effective_gender``: its given
    name's when the name is of one sex only (Ольга, Михаил; not Саша), else its patronymic's
    (-овна, -ович), else its surname's Russian ending (``russian_surname_gender``); None when
    none says. The stated gender is not read (the two-sexes check in ``engine``)."""
    return _first_said(
        (
            (record.first_name, gender_of_first_name),
            (record.middle_name, patronymic_gender),
            (record.last_name, russian_surname_gender),
        )
    )


# Derived views and comparisons, by record content (``person_content``): a batch derives an
# incoming record's view and compares it with its candidates once to choose what to lock, then
# again to place it; and the same candidates come back for neighbouring records.
_VIEWS: BoundedCache[RecordView] = BoundedCache(CACHED_RECORDS)
# A comparison is kept with its levels as a tuple (in ``_compare_views``' fixed feature order),
# the key scores are cached by (``scoring.score_pair``).
_COMPARISONS: BoundedCache[tuple[Comparison, tuple[str, ...]]] = BoundedCache(CACHED_RECORDS)


def view(record: PersonRecord) -> RecordView:
    """The derived comparison view of a record (cached by content: records are immutable)."""
    return _VIEWS.kept(record, "_view", _derive_view)


def _derive_view(record: PersonRecord) -> RecordView:
    gender = effective_gender(record)
    phones = [p for p in record.phones if not is_placeholder_phone(p)]
    emails = tuple(e for e in (email_address(raw) for raw in record.emails) if e is not None)
    return RecordView(
        first=resolve_first_name(record.first_name, gender) if record.first_name else None,
        last=surname_form(record.last_name) if record.last_name else None,
        middle=patronymic_form(record.middle_name) if record.middle_name else None,
        gender=gender,
        birth_date=record.birth_date,
        mobiles=frozenset(p for p in phones if not is_landline(p)),
        landlines=frozenset(p for p in phones if is_landline(p)),
        emails=emails,
        cards=frozenset(record.cards),
        city=city_key(record.city) if record.city else "",
        address=address_key(record.address_line) if record.address_line else "",
        postcode=record.postcode or "",
        last_as_first=resolve_first_name(record.last_name, gender) if record.last_name else None,
        first_as_last=surname_form(record.first_name) if record.first_name else None,
    )


def _is_initial(name: FirstName) -> bool:
    return len(name.skeleton) <= 1


def first_name_level(x: FirstName | None, y: FirstName | None) -> str:  # noqa: PLR0911
    if x is None or y is None or not x.skeleton or not y.skeleton:
        return MISSING
    if _is_initial(x) or _is_initial(y):
        # "И." agrees with Иван only weakly and contradicts Мария.
        return "fuzzy" if x.skeleton[0] == y.skeleton[0] else "disagree"
    if not x.keys.isdisjoint(y.keys):
        if x.skeleton == y.skeleton:
            return "exact"
        return "fuzzy" if x.corrected or y.corrected else "equivalent"
    if x.known and y.known:
        # Two real, different names (Александр/Александра, Мария/Марина): never a typo.
        return "disagree"
    if x.known or y.known:
        # A spelling the tables do not know, next to a known name: most likely a slip in one of
        # that name's written forms ("Шуа" for Шура, "ТОМ" for Тома), so compare with all of them.
        unknown, known = (y, x) if x.known else (x, y)
        forms = {form for key in known.keys for form in name_table().spellings(key)}
        similarity = max(JaroWinkler.similarity(unknown.skeleton, form) for form in forms)
        if similarity >= FIRST_NAME_TYPO or _one_slip(unknown.skeleton, forms):
            return "fuzzy"
        return "other"
    similarity = max(
        JaroWinkler.similarity(a, b) for a in x.keys | {x.skeleton} for b in y.keys | {y.skeleton}
    )
    if similarity >= FIRST_NAME_FUZZY or _one_slip(x.skeleton, {y.skeleton}):
        return "fuzzy"
    return "other"


def _one_slip(name: str, others: set[str] | frozenset[str]) -> bool:
    """One letter wrong, missing, extra or two swapped ("pai" for "pia"), which Jaro-Winkler
    punishes hard in short names; only for a name the tables do not know."""
    if len(name) < FIRST_NAME_SLIP_MIN_LENGTH:
        return False
    return (
        process.extractOne(name, others, scorer=DamerauLevenshtein.distance, score_cutoff=1)
        is not None
    )


def last_name_level(
    x: GenderForm | None, y: GenderForm | None, gender_x: str | None, gender_y: str | None
) -> str:
    if x is None or y is None:
        return MISSING
    if x.skeleton == y.skeleton:
        return "exact"
    if x.stem == y.stem and x.gender and y.gender and x.gender != y.gender:
        return "gender_form"
    if x.stem == y.stem or JaroWinkler.similarity(x.skeleton, y.skeleton) >= LAST_NAME_FUZZY:
        return "fuzzy"
    if (
        min(len(x.skeleton), len(y.skeleton)) >= SURNAME_TYPO_MIN_LENGTH
        and DamerauLevenshtein.distance(x.skeleton, y.skeleton) <= 1
    ):
        # One slipped letter early in the name, which Jaro-Winkler punishes ("glgss").
        return "fuzzy"
    genders = {gender_x, gender_y}
    if "female" in genders and "male" not in genders:
        return "changed"
    return "disagree"


def middle_name_level(x: GenderForm | None, y: GenderForm | None) -> str:
    if x is None or y is None:
        return MISSING
    if x.skeleton == y.skeleton:
        return "exact"
    if x.gender and y.gender and x.gender != y.gender:
        # Иванович vs Ивановна: siblings, not one person.
        return "disagree"
    if x.stem == y.stem or JaroWinkler.similarity(x.skeleton, y.skeleton) >= MIDDLE_NAME_FUZZY:
        return "fuzzy"
    return "disagree"


@lru_cache(maxsize=65_536)
def _date_digits(date: dt.date) -> str:
    """``date.strftime("%Y%m%d")``, once per date: strftime took a third of a comparison of
    two records with unlike birth dates (cProfile, generator seed 101's candidate pairs)."""
    return date.strftime("%Y%m%d")


def birth_date_level(x: dt.date | None, y: dt.date | None) -> str:
    if x is None or y is None:
        return MISSING
    if x == y:
        return "exact"
    if x.year == y.year and x.day == y.month and x.month == y.day:
        return "typo"
    a, b = _date_digits(x), _date_digits(y)
    differ = [i for i, (ca, cb) in enumerate(zip(a, b, strict=True)) if ca != cb]
    if len(differ) == 1:
        return "typo"
    if (
        len(differ) == 2
        and differ[0] >= 4
        and differ[1] == differ[0] + 1
        and (a[differ[0]], a[differ[1]]) == (b[differ[1]], b[differ[0]])
    ):
        # Two neighbouring digits of month or day transposed (12-31 for 12-13). Not in the
        # year: 1985 and 1958 are a parent and a child as often as a slip.
        return "typo"
    return "disagree"


def _year_of_login(year: str, date: dt.date) -> bool:
    """Whether a login's year (``EmailAddress.login_year``) is ``date``'s year."""
    return year == (str(date.year) if len(year) == 4 else f"{date.year % 100:02d}")


# Shortest name form found in a login that says the login was made from that name.
LOGIN_NAME_MIN_LENGTH = 4


def _given_name_forms(x: RecordView) -> set[str]:
    """Every written form of the record's given name (Даша: dasha, daria, ...)."""
    forms: set[str] = set()
    if x.first is not None:
        forms.add(x.first.skeleton)
        for key in x.first.keys:
            forms |= name_table().spellings(key) | {key}
    return forms


def _name_forms(x: RecordView) -> set[str]:
    """The skeletons a login made from the record's names would hold: every written form of
    the given name (Даша: dasha, daria, ...) and the surname's stem (Иванова: ivanov)."""
    forms = _given_name_forms(x)
    if x.last is not None:
        forms.add(x.last.stem)
    return {form for form in forms if len(form) >= LOGIN_NAME_MIN_LENGTH}


def given_name_login(login: str, a: PersonRecord, b: PersonRecord) -> bool:
    """Whether ``login`` is nothing but the given name of either record, with digits or
    separators (``elena1968``, ``lena_68`` of an Елена): the login every namesake of that
    given name born that year makes, however few of them a base holds so far."""
    skeleton = latin_skeleton(login)
    return any(skeleton in _given_name_forms(view(record)) for record in (a, b))


def login_birth_year(a: PersonRecord, b: PersonRecord) -> bool | None:
    """Whether a login made from the records' names ends in one's birth year, where the login's
    record has no birth date of its own (otherwise the birth dates speak): True if such a
    login's year is the other's birth year, False if it is another year, None if the records
    say neither (no such login, no birth date, or both have birth dates).

    Only a login holding a name of either record (``_name_forms``: maksim.sergeev60, ivan1981,
    dpopov57): a login made from nothing of theirs is someone else's box (a spouse's
    ``arhip_1970``, generator seed 101) or a random string whose digits say no year."""
    x, y = view(a), view(b)
    forms = _name_forms(x) | _name_forms(y)
    found: bool | None = None
    for mine, theirs in ((x, y), (y, x)):
        if mine.birth_date is not None or theirs.birth_date is None:
            continue
        for address in mine.emails:
            year = address.login_year
            if not year:
                continue
            login = latin_skeleton(address.mailbox_name)
            if not any(form in login for form in forms):
                continue
            if _year_of_login(year, theirs.birth_date):
                return True
            found = False
    return found


def phone_level(x: RecordView, y: RecordView) -> str:
    if not (x.mobiles or x.landlines) or not (y.mobiles or y.landlines):
        return MISSING
    if x.mobiles & y.mobiles:
        return "agree"
    if x.landlines & y.landlines:
        return "agree_landline"
    return "disagree"


def _email_pair_level(x: EmailAddress, y: EmailAddress) -> str:
    if x == y:
        return "exact"
    if x.mailbox_name == y.mailbox_name and x.portable_login:
        return "local_part"
    if (
        x.domain == y.domain
        and min(len(x.local), len(y.local)) >= EMAIL_TYPO_MIN_LENGTH
        and DamerauLevenshtein.distance(x.local, y.local) <= 1
        and not _another_number(x.local, y.local)
    ):
        return "fuzzy"
    return "disagree"


def _another_number(a: str, b: str) -> bool:
    """Logins one digit apart in place (elena1952 / elena1972, ivanov1 / ivanov2), or with two
    neighbouring digits swapped (sergey.ivanov58 / sergey.ivanov85): the numbered logins a
    provider hands namesakes once the name is taken, or the birth years of two of them, not a
    slip of one person's (birth dates are read the same way: 1958 and 1985 are a parent and a
    child as often as a slip). Letters slipped and digits dropped stay typos.

    The swap (offline.py, EM): households seed 606 at 3000 persons, never used before, F1
    0.9396 -> 0.9405 (P 0.9886 -> 0.9897), and its one customer of three persons gone
    (sergey.ivanov58@yandex.ru of a Сергей Сергеевич Иванов born 1958 and .85 of a namesake
    in another city, joined as one mailbox with a slip); households 303/404, generator
    101/202, FEBRL3/4 unchanged.

    Measured through the API (bench_accuracy, EM, 2000 persons): households seed 303 F1
    0.9290 -> 0.9293 (P 0.9870 -> 0.9876, R 0.8774 -> 0.8776, max persons per customer
    3 -> 2), seed 909 0.9411 -> 0.9411; generator seeds 101/4242 unchanged (0.9719, 0.9716:
    its typos never put one digit for another, nor do its logins collide that way).
    """
    if len(a) != len(b):
        return False
    differ = [(p, q) for p, q in zip(a, b, strict=True) if p != q]
    return len(differ) in (1, 2) and all(p.isdigit() and q.isdigit() for p, q in differ)


_EMAIL_RANK = {"exact": 0, "local_part": 1, "fuzzy": 2, "disagree": 3}


def email_level(x: tuple[EmailAddress, ...], y: tuple[EmailAddress, ...]) -> str:
    if not x or not y:
        return MISSING
    levels = (_email_pair_level(a, b) for a in x for b in y)
    return min(levels, key=_EMAIL_RANK.__getitem__)


def card_level(x: frozenset[str], y: frozenset[str]) -> str:
    if not x or not y:
        return MISSING
    return "agree" if x & y else "disagree"


def _same_address(x: str, y: str) -> bool:
    return x == y or fuzz.token_sort_ratio(x, y) >= ADDRESS_SIMILARITY


def _postcode_slip(x: RecordView, y: RecordView) -> bool:
    """Postcodes one slip apart: a digit wrong or two swapped."""
    return (
        len(x.postcode) == len(y.postcode) >= POSTCODE_TYPO_MIN_LENGTH
        and DamerauLevenshtein.distance(x.postcode, y.postcode) <= 1
    )


def _same_city_name(x: RecordView, y: RecordView) -> bool:
    """The same city name, one slip allowed (two in long names)."""
    if not x.city or not y.city:
        return False
    if x.city == y.city:
        return True
    shorter = min(len(x.city), len(y.city))
    if shorter < CITY_TYPO_MIN_LENGTH:
        return False
    slips = 2 if shorter >= CITY_TWO_TYPOS_MIN_LENGTH else 1
    return DamerauLevenshtein.distance(x.city, y.city) <= slips


def _same_city(x: RecordView, y: RecordView) -> bool:
    """Same postcode, postcodes one slip apart, or the same city name."""
    if x.postcode and y.postcode and (x.postcode == y.postcode or _postcode_slip(x, y)):
        return True
    return _same_city_name(x, y)


def _same_postcode(x: RecordView, y: RecordView) -> bool:
    """Same postcode; or one slip apart in the same city, where the slip is the likelier story
    than a neighbouring district."""
    if not x.postcode or not y.postcode:
        return False
    return x.postcode == y.postcode or (_postcode_slip(x, y) and _same_city_name(x, y))


def _same_street_address(x: RecordView, y: RecordView) -> bool:
    """Whole address alike, or the same house number and street with slips and extra words."""
    if _same_address(x.address, y.address):
        return True
    x_number, y_number = house_number(x.address), house_number(y.address)
    if not x_number or x_number != y_number:
        return False
    return fuzz.token_set_ratio(x.address, y.address) >= STREET_SIMILARITY


def location_level(x: RecordView, y: RecordView) -> str:
    has_place = (x.city or x.postcode) and (y.city or y.postcode)
    same_city = _same_city(x, y)
    cities_compatible = not has_place or same_city
    if x.address and y.address and cities_compatible and _same_street_address(x, y):
        return "address"
    if has_place:
        if not same_city:
            return "disagree"
        return "postcode" if _same_postcode(x, y) else "city"
    return MISSING


_NAME_AGREES = ("exact", "equivalent")
_CROSSED_NAME_AGREES = ("exact", "equivalent", "fuzzy")
_SURNAME_AGREES = ("exact", "fuzzy")


def _name_levels(x: RecordView, y: RecordView) -> tuple[str, str]:
    first = first_name_level(x.first, y.first)
    last = last_name_level(x.last, y.last, x.gender, y.gender)
    if first in _NAME_AGREES and last not in ("changed", "disagree"):
        return first, last
    # One side may have the names in swapped fields (a form filled in surname-first), and the
    # swapped names may carry a slip too. When the surnames agree only crossed (exactly as
    # written), the crossed reading is the one to judge the given names by.
    surname_agrees = last in _SURNAME_AGREES
    fallback: tuple[str, str] | None = None
    for a, b in ((x, y), (y, x)):
        crossed_first = first_name_level(a.first, b.last_as_first)
        crossed_last = last_name_level(a.last, b.first_as_last, a.gender, b.gender)
        if crossed_first in _CROSSED_NAME_AGREES and crossed_last in _SURNAME_AGREES:
            return crossed_first, crossed_last
        if crossed_last == "exact" and not surname_agrees and fallback is None:
            fallback = crossed_first, crossed_last
    return fallback or (first, last)


def compare_records(a: PersonRecord, b: PersonRecord) -> Comparison:
    """Agreement level per feature (see ``model.LEVELS``); "missing" when a side lacks data."""
    return dict(comparison(a, b))


def comparison(a: PersonRecord, b: PersonRecord) -> Mapping[str, str]:
    """``compare_records`` without the copy, for callers that only read it: the cached
    comparison itself, which must not be changed."""
    return comparison_vector(a, b)[0]


def comparison_vector(
    a: PersonRecord, b: PersonRecord
) -> tuple[Mapping[str, str], tuple[str, ...]]:
    """``comparison`` and its levels as a tuple, one per feature in a fixed order: a cheaper
    key for scores than the comparison's items."""
    key = (person_content(a), person_content(b))
    found = _COMPARISONS.get(key)
    if found is None:
        levels = _compare_views(view(a), view(b))
        found = (levels, tuple(levels.values()))
        _COMPARISONS.put(key, found)
    return found


# Given-name levels under which the same login at another provider can be one owner's.
_LOGIN_OWNER_NAMES = frozenset({"exact", "equivalent", "fuzzy", MISSING})


def _compare_views(x: RecordView, y: RecordView) -> Comparison:
    first, last = _name_levels(x, y)
    email = email_level(x.emails, y.emails)
    if email == "local_part" and first not in _LOGIN_OWNER_NAMES:
        # popov.a@rambler.ru (Антон) and popov.a@bk.ru (Алексей): two mailboxes of two people
        # whose logins are made the same way from their names. Left as "local_part", such pairs
        # (a third of the login pairs in generated data) would teach EM that a shared login
        # means little for everyone, since EM weighs each feature on its own.
        email = "disagree"
    return {
        "first_name": first,
        "last_name": last,
        "middle_name": middle_name_level(x.middle, y.middle),
        "birth_date": birth_date_level(x.birth_date, y.birth_date),
        "phone": phone_level(x, y),
        "email": email,
        "card": card_level(x.cards, y.cards),
        "location": location_level(x, y),
    }
