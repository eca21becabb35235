"""Synthetic Russian multi-channel customer records with ground truth, for identity matching.

People are generated first (Faker ru_RU plus popularity-weighted name lists), then each person
produces records in several sources - tills (pos), a web shop, a mobile app, a call centre and
paper/web forms - the way those channels really distort data:

* nicknames (Маша for Мария), Latin spellings in several transliteration systems on the web,
  typos, upper/lower case, ``ё`` written as ``е``, swapped first/last name fields;
* phones as ``8 916 ...``, ``+7 (916) ...``, ``89161234567``; e-mail case and one-letter typos;
  day/month swaps and one-digit typos in birth dates; missing fields by channel;
* the same e-mail login at two providers (ivan.petrov85@mail.ru and ivan.petrov85@gmail.com),
  used side by side or after a move to another provider;
* changes over time: a new phone or e-mail, a move, a woman's surname after marriage;
* hard negatives: households (surname forms, address, landline, family e-mail or card shared,
  different first names and birth dates), namesakes (same full name and city, different
  birth date and contacts), and till placeholder phones (+7 000 000-00-00) shared by strangers.

``generate(n_persons, seed)`` is deterministic for a seed. The knowledge used here (nicknames,
transliteration tables) is written independently of the matcher's data files.

    python -m benchmarks.identity.generator --persons 1000 --seed 7 --out records.jsonl
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faker import Faker
from faker.providers.person.ru_RU import Provider as RuPerson

SOURCES = ("pos", "webshop", "app", "call_centre", "form")
SOURCE_WEIGHTS = (0.32, 0.22, 0.2, 0.12, 0.14)
WINDOW_START = dt.datetime(2019, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=3)))
WINDOW_DAYS = 6 * 365
RECORD_COUNTS = (1, 2, 3, 4, 5, 6, 7)
RECORD_COUNT_WEIGHTS = (0.14, 0.24, 0.25, 0.17, 0.11, 0.06, 0.03)

MALE_NAMES = (
    ("Александр", 10), ("Дмитрий", 8), ("Сергей", 8), ("Андрей", 7), ("Алексей", 7),
    ("Максим", 6), ("Иван", 6), ("Евгений", 5), ("Михаил", 5), ("Артём", 5), ("Владимир", 5),
    ("Николай", 4), ("Никита", 4), ("Павел", 4), ("Роман", 4), ("Игорь", 4), ("Олег", 3),
    ("Денис", 3), ("Антон", 3), ("Илья", 3), ("Кирилл", 3), ("Виктор", 3), ("Юрий", 3),
    ("Константин", 3), ("Вячеслав", 2), ("Владислав", 2), ("Егор", 2), ("Василий", 2),
    ("Анатолий", 2), ("Виталий", 2), ("Георгий", 2), ("Руслан", 2), ("Вадим", 2),
    ("Даниил", 2), ("Григорий", 1), ("Пётр", 1), ("Станислав", 1), ("Фёдор", 1),
    ("Тимофей", 1), ("Матвей", 1), ("Леонид", 1), ("Валерий", 1), ("Борис", 1), ("Семён", 1),
    ("Ярослав", 1), ("Глеб", 1), ("Геннадий", 1),
)  # fmt: skip
FEMALE_NAMES = (
    ("Елена", 8), ("Татьяна", 7), ("Ольга", 7), ("Наталья", 7), ("Екатерина", 6), ("Анна", 6),
    ("Мария", 6), ("Ирина", 6), ("Светлана", 5), ("Анастасия", 5), ("Юлия", 5), ("Марина", 4),
    ("Дарья", 4), ("Ксения", 3), ("Александра", 3), ("Людмила", 3), ("Надежда", 3),
    ("Виктория", 3), ("Евгения", 2), ("Галина", 2), ("Валентина", 2), ("Любовь", 2),
    ("Алина", 2), ("Полина", 2), ("Софья", 2), ("Вера", 2), ("Кристина", 2), ("Елизавета", 2),
    ("Алёна", 2), ("Оксана", 2), ("Валерия", 1), ("Лариса", 1), ("Тамара", 1), ("Нина", 1),
    ("Маргарита", 1), ("Вероника", 1), ("Лидия", 1), ("Зоя", 1), ("Олеся", 1), ("Яна", 1),
    ("Диана", 1), ("Ульяна", 1),
)  # fmt: skip
RARE_NAME_SHARE = 0.06

# How people shorten their names at a till or in an app (independent of the matcher's tables).
NICKNAMES = {
    "Александр": ("Саша", "Саня", "Шура"), "Александра": ("Саша", "Шура"),
    "Дмитрий": ("Дима", "Митя"), "Сергей": ("Серёжа", "Серёга"), "Андрей": ("Андрюша",),
    "Алексей": ("Лёша", "Алёша"), "Максим": ("Макс",), "Иван": ("Ваня",),
    "Евгений": ("Женя",), "Евгения": ("Женя",), "Михаил": ("Миша",), "Артём": ("Тёма",),
    "Владимир": ("Вова", "Володя"), "Николай": ("Коля",), "Павел": ("Паша",),
    "Роман": ("Рома",), "Константин": ("Костя",), "Вячеслав": ("Слава",),
    "Владислав": ("Влад",), "Василий": ("Вася",), "Анатолий": ("Толя",),
    "Виталий": ("Виталик",), "Георгий": ("Жора", "Гоша"), "Григорий": ("Гриша",),
    "Пётр": ("Петя",), "Станислав": ("Стас",), "Фёдор": ("Федя",), "Юрий": ("Юра",),
    "Виктор": ("Витя",), "Илья": ("Илюша",), "Кирилл": ("Кирюша",), "Тимофей": ("Тима",),
    "Леонид": ("Лёня",), "Валерий": ("Валера",), "Борис": ("Боря",), "Семён": ("Сёма",),
    "Геннадий": ("Гена",), "Даниил": ("Даня", "Данила"), "Антон": ("Антоша",),
    "Елена": ("Лена",), "Татьяна": ("Таня",), "Ольга": ("Оля",), "Наталья": ("Наташа",),
    "Екатерина": ("Катя",), "Анна": ("Аня", "Анюта"), "Мария": ("Маша", "Маня", "Муся"),
    "Ирина": ("Ира",), "Светлана": ("Света",), "Анастасия": ("Настя",), "Юлия": ("Юля",),
    "Дарья": ("Даша",), "Ксения": ("Ксюша",), "Людмила": ("Люда", "Люся"),
    "Галина": ("Галя",), "Надежда": ("Надя",), "Виктория": ("Вика",), "Валентина": ("Валя",),
    "Любовь": ("Люба",), "Софья": ("Соня",), "Елизавета": ("Лиза",), "Валерия": ("Лера",),
    "Маргарита": ("Рита",), "Лидия": ("Лида",), "Полина": ("Поля",), "Тамара": ("Тома",),
}  # fmt: skip
# English-style spellings people choose on Western-looking web forms.
ENGLISH_FORMS = {
    "Александр": "Alexander", "Александра": "Alexandra", "Юлия": "Julia", "Ксения": "Xenia",
    "Евгений": "Eugene", "Наталья": "Natalia", "Мария": "Maria", "Софья": "Sofia",
    "Алексей": "Alexey", "Максим": "Maxim", "Дмитрий": "Dmitry", "Сергей": "Sergei",
    "Татьяна": "Tatiana", "Анастасия": "Anastasia", "Виктория": "Victoria",
    "Николай": "Nikolai", "Михаил": "Mikhail", "Алёна": "Alena", "Екатерина": "Ekaterina",
}  # fmt: skip

_ICAO = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ъ": "ie", "ы": "y", "ь": "", "э": "e", "ю": "iu", "я": "ia",
}  # fmt: skip
# 1997-2010 Russian passports (МВД): й, ы → y; ю, я → yu, ya.
_MVD = {**_ICAO, "й": "y", "ъ": "", "ю": "yu", "я": "ya"}
# BGN/PCGN: iotated е/ё written "ye"/"yo" at word start and after vowels and signs.
_BGN = {**_MVD, "ё": "yo", "ь": "'", "ъ": '"'}
# What people type themselves.
_INFORMAL = {**_MVD, "х": "h", "щ": "sch", "ё": "yo", "ю": "ju", "я": "ja", "й": "j"}
_VOWELS = "аеёиоуыэюяьъ"

_CYRILLIC_ROWS = ("йцукенгшщзхъ", "фывапролджэ", "ячсмитьбю")
_LATIN_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")

MOBILE_PREFIXES = (
    "903", "905", "906", "909", "910", "911", "912", "913", "914", "915", "916", "917", "918",
    "919", "920", "921", "922", "925", "926", "927", "928", "929", "950", "951", "952", "953",
    "960", "961", "962", "963", "964", "965", "967", "977", "978", "980", "981", "982", "983",
    "985", "987", "988", "989", "991", "993", "995", "996", "999",
)  # fmt: skip
CITIES = (
    ("Москва", "495", 25), ("Санкт-Петербург", "812", 12), ("Новосибирск", "383", 3),
    ("Екатеринбург", "343", 3), ("Казань", "843", 3), ("Нижний Новгород", "831", 3),
    ("Челябинск", "351", 2), ("Самара", "846", 2), ("Омск", "381", 2),
    ("Ростов-на-Дону", "863", 2), ("Уфа", "347", 2), ("Красноярск", "391", 2),
    ("Воронеж", "473", 2), ("Пермь", "342", 2), ("Волгоград", "844", 2),
    ("Краснодар", "861", 2),
)  # fmt: skip
CITY_LATIN = {"Москва": "Moscow", "Санкт-Петербург": "Saint Petersburg"}
RARE_CITY_SHARE = 0.25
# What cashiers type when the customer will not give a number.
PLACEHOLDER_PHONES = (
    "+7 000 000-00-00", "80000000000", "+7 (999) 999-99-99", "8 900 000 00 00",
    "+7 111 111 11 11", "+7 (123) 456-78-90", "89000000000",
)  # fmt: skip
# People with a second mailbox under the same login at another provider.
MIRROR_SHARE = 0.12
EMAIL_DOMAINS = (
    ("mail.ru", 30), ("yandex.ru", 25), ("gmail.com", 20), ("bk.ru", 5), ("list.ru", 5),
    ("inbox.ru", 5), ("rambler.ru", 5), ("ya.ru", 3), ("outlook.com", 2),
)  # fmt: skip


@dataclass(frozen=True)
class Profile:
    """How often a channel captures each field, and how it distorts names."""

    first: float
    last: float
    middle: float
    birth: float
    gender: float
    city: float
    address: float
    phone: float
    email: float
    card: float
    latin: float
    nickname: float
    swap: float
    typo: float
    placeholder: float


# Field capture rates per channel. Tills know customers through the loyalty scheme (card, or
# phone as its id); the web shop needs an e-mail and a phone for delivery and asks for the card
# at checkout; the app logs in by phone and carries the card; operators type what they hear.
PROFILES = {
    "pos": Profile(
        first=0.95, last=0.85, middle=0.15, birth=0.35, gender=0.15, city=0.5, address=0.05,
        phone=0.9, email=0.1, card=0.95, latin=0.0, nickname=0.25, swap=0.01, typo=0.04,
        placeholder=0.08,
    ),
    "webshop": Profile(
        first=0.97, last=0.95, middle=0.05, birth=0.35, gender=0.2, city=0.95, address=0.9,
        phone=0.85, email=1.0, card=0.35, latin=0.35, nickname=0.12, swap=0.03, typo=0.03,
        placeholder=0.0,
    ),
    "app": Profile(
        first=0.95, last=0.7, middle=0.1, birth=0.7, gender=0.6, city=0.4, address=0.1,
        phone=0.97, email=0.6, card=0.8, latin=0.15, nickname=0.3, swap=0.01, typo=0.03,
        placeholder=0.0,
    ),
    "call_centre": Profile(
        first=0.98, last=0.95, middle=0.7, birth=0.5, gender=0.3, city=0.7, address=0.3,
        phone=1.0, email=0.2, card=0.4, latin=0.0, nickname=0.08, swap=0.02, typo=0.08,
        placeholder=0.02,
    ),
    "form": Profile(
        first=1.0, last=1.0, middle=0.75, birth=0.9, gender=0.85, city=0.85, address=0.55,
        phone=0.8, email=0.85, card=0.4, latin=0.05, nickname=0.03, swap=0.06, typo=0.03,
        placeholder=0.0,
    ),
}  # fmt: skip


@dataclass
class Household:
    city: str
    address: str
    landline: str | None
    family_email: str | None
    family_card: str | None


@dataclass
class Person:
    pid: str
    gender: str
    first: str
    middle: str | None
    last: str
    birth: dt.date
    city: str
    address: str
    mobile: str
    email: str
    card: str | None
    household: Household | None = None
    latin_system: str = "icao"
    # A mailbox -> the same login at another provider the person also uses (Russians keep one
    # login across mail.ru, Yandex, Gmail and bk.ru).
    mirrors: dict[str, str] = field(default_factory=dict)
    # (time, field, value): the person's attributes from that moment on.
    changes: list[tuple[dt.datetime, str, str]] = field(default_factory=list)

    def state(self, when: dt.datetime) -> dict[str, str]:
        current = {
            "last": self.last,
            "city": self.city,
            "address": self.address,
            "mobile": self.mobile,
            "email": self.email,
        }
        for at, name, value in sorted(self.changes):
            if at <= when:
                current[name] = value
        return current


class _World:
    """All random choices for one seed; nothing else may touch global randomness."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker("ru_RU")
        self.fake.seed_instance(seed)
        self.used_phones: set[str] = set()
        self.used_emails: set[str] = set()
        self.used_cards: set[str] = set()
        weights = [1.0 / (i + 8) ** 0.9 for i in range(len(RuPerson.last_names_male))]
        self.surname_weights = weights

    # --- basic values ---
    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def first_name(self, gender: str) -> str:
        if self.chance(RARE_NAME_SHARE):
            pool = RuPerson.first_names_female if gender == "female" else RuPerson.first_names_male
            return self.rng.choice(pool)
        names = FEMALE_NAMES if gender == "female" else MALE_NAMES
        return self.rng.choices([n for n, _ in names], [w for _, w in names])[0]

    def surname_index(self) -> int:
        indices = range(len(RuPerson.last_names_male))
        return self.rng.choices(indices, self.surname_weights)[0]

    def surname(self, index: int, gender: str) -> str:
        table = RuPerson.last_names_female if gender == "female" else RuPerson.last_names_male
        return table[index]

    def random_middle(self, gender: str) -> str:
        table = RuPerson.middle_names_female if gender == "female" else RuPerson.middle_names_male
        return self.rng.choice(table)

    def birth_date(self, earliest: int = 1950, latest: int = 2006) -> dt.date:
        start = dt.date(earliest, 1, 1).toordinal()
        end = dt.date(latest, 12, 31).toordinal()
        return dt.date.fromordinal(self.rng.randint(start, end))

    def city(self) -> tuple[str, str]:
        if self.chance(RARE_CITY_SHARE):
            name = self.fake.city_name()
            return name, self.rng.choice(CITIES)[1]
        name, code, _ = self.rng.choices(CITIES, [w for *_, w in CITIES])[0]
        return name, code

    def address(self) -> str:
        return f"{self.fake.street_address()}, кв. {self.rng.randint(1, 300)}"

    def _digits(self, n: int) -> str:
        while True:
            value = "".join(str(self.rng.randint(0, 9)) for _ in range(n))
            if len(set(value)) >= 4:
                return value

    def _subscriber(self) -> str:
        """Seven subscriber digits as operators hand them out: anything but one digit seven
        times, so 212-22-12 and 234-56-78 occur as often as among real subscribers."""
        while True:
            value = "".join(str(self.rng.randint(0, 9)) for _ in range(7))
            if len(set(value)) > 1:
                return value

    def mobile(self) -> str:
        while True:
            number = self.rng.choice(MOBILE_PREFIXES) + self._subscriber()
            if number not in self.used_phones:
                self.used_phones.add(number)
                return number

    def landline(self, code: str) -> str:
        while True:
            number = code + self._subscriber()
            if number not in self.used_phones:
                self.used_phones.add(number)
                return number

    def card(self) -> str:
        while True:
            number = "2" + self._digits(12)
            if number not in self.used_cards:
                self.used_cards.add(number)
                return number

    def email(self, first: str, last: str, birth: dt.date) -> str:
        f, lst = translit(first, _ICAO).lower(), translit(last, _ICAO).lower()
        patterns = (
            f"{f}.{lst}",
            f"{f}{lst}{birth:%y}",
            f"{lst}.{f[:1]}",
            f"{f[:1]}{lst}{self.rng.randint(1, 99)}",
            f"{lst}{birth.year}",
            f"{f}_{lst[:3]}{self.rng.randint(100, 999)}",
            self.fake.user_name(),
        )
        local = self.rng.choice(patterns)
        domains = [d for d, _ in EMAIL_DOMAINS]
        domain = self.rng.choices(domains, [w for _, w in EMAIL_DOMAINS])[0]
        address = f"{local}@{domain}"
        # ya.ru and yandex.ru are one mailbox: uniqueness must hold across the alias.
        while _mailbox(address) in self.used_emails:
            address = f"{local}{self.rng.randint(1, 9999)}@{domain}"
        self.used_emails.add(_mailbox(address))
        return address

    def same_login(self, address: str) -> str | None:
        """The same login at another provider, if nobody has that mailbox yet."""
        local = address.partition("@")[0]
        home = _mailbox(address).partition("@")[2]
        others = [(d, w) for d, w in EMAIL_DOMAINS if _mailbox(f"x@{d}")[2:] != home]
        for _ in range(5):
            other = self.rng.choices([d for d, _ in others], [w for _, w in others])[0]
            candidate = f"{local}@{other}"
            if _mailbox(candidate) not in self.used_emails:
                self.used_emails.add(_mailbox(candidate))
                return candidate
        return None

    def moment(self) -> dt.datetime:
        seconds = self.rng.randint(0, WINDOW_DAYS * 86400)
        return WINDOW_START + dt.timedelta(seconds=seconds)


def _mailbox(address: str) -> str:
    local, _, domain = address.lower().partition("@")
    return f"{local}@{'yandex.ru' if domain == 'ya.ru' else domain}"


def translit(text: str, table: dict[str, str]) -> str:
    """Cyrillic → Latin with one system's table, keeping capitalisation of word starts."""
    out: list[str] = []
    previous = ""
    for ch in text:
        low = ch.lower()
        if low in table:
            latin = table[low]
            if table is _BGN and low in "её" and (not previous or previous in _VOWELS):
                latin = "ye" if low == "е" else "yo"
            if low == "й" and table is _MVD and previous == "и":
                latin = "y"
            out.append(latin.capitalize() if ch.isupper() else latin)
        else:
            out.append(ch)
        previous = low
    return "".join(out)


_SYSTEMS = {"icao": _ICAO, "mvd": _MVD, "bgn": _BGN, "informal": _INFORMAL}


def latin_name(world: _World, name: str, system: str, first_name: bool) -> str:
    if first_name and name in ENGLISH_FORMS and world.chance(0.35):
        return ENGLISH_FORMS[name]
    value = translit(name, _SYSTEMS[system])
    if system == "informal" and value.endswith("ij") and world.chance(0.6):
        value = value[:-2] + "y"  # "Dmitry", "Yury"
    return value


def patronymic(father: str, gender: str) -> str:
    """Patronymic from the father's first name, by the standard rules and their exceptions."""
    special = {
        "Илья": ("Ильич", "Ильинична"),
        "Никита": ("Никитич", "Никитична"),
        "Лев": ("Львович", "Львовна"),
        "Павел": ("Павлович", "Павловна"),
        "Пётр": ("Петрович", "Петровна"),
        "Яков": ("Яковлевич", "Яковлевна"),
        "Михаил": ("Михайлович", "Михайловна"),
        "Дмитрий": ("Дмитриевич", "Дмитриевна"),
        "Георгий": ("Георгиевич", "Георгиевна"),
        "Даниил": ("Даниилович", "Данииловна"),
    }
    female = gender == "female"
    if father in special:
        return special[father][female]
    if father.endswith("ий"):
        return father[:-2] + ("ьевна" if female else "ьевич")
    if father.endswith(("ей", "ай")):
        return father[:-1] + ("евна" if female else "евич")
    if father.endswith(("а", "я")):
        return father[:-1] + ("ична" if female else "ич")
    if father.endswith("ь"):
        return father[:-1] + ("евна" if female else "евич")
    return father + ("овна" if female else "ович")


# --- people ---


def _new_person(
    world: _World, pid: str, gender: str, home: Household | None = None, **fixed: Any
) -> Person:
    first = fixed.get("first") or world.first_name(gender)
    last = fixed.get("last") or world.surname(world.surname_index(), gender)
    birth = fixed.get("birth") or world.birth_date()
    city = fixed.get("city") or (home.city if home else world.city()[0])
    person = Person(
        pid=pid,
        gender=gender,
        first=first,
        middle=fixed.get("middle") or world.random_middle(gender),
        last=last,
        birth=birth,
        city=city,
        address=home.address if home else world.address(),
        mobile=world.mobile(),
        email="",
        card=world.card() if world.chance(0.75) else None,
        household=home,
        latin_system=world.rng.choice(tuple(_SYSTEMS)),
    )
    person.email = world.email(person.first, person.last, person.birth)
    if world.chance(MIRROR_SHARE):
        mirror = world.same_login(person.email)
        if mirror:
            person.mirrors[person.email] = mirror
    _add_life_events(world, person)
    return person


def _add_life_events(world: _World, person: Person) -> None:
    if world.chance(0.15):
        person.changes.append((world.moment(), "mobile", world.mobile()))
    if world.chance(0.15):
        # A new mailbox, often under the old login at another provider.
        moved = world.same_login(person.email) if world.chance(0.4) else None
        email = moved or world.email(person.first, person.last, person.birth)
        person.changes.append((world.moment(), "email", email))
    if world.chance(0.08) and person.household is None:
        city, _ = world.city()
        person.changes.append((world.moment(), "city", city))
        person.changes.append((world.moment(), "address", world.address()))
    age = 2022 - person.birth.year
    if person.gender == "female" and 20 <= age <= 45 and world.chance(0.15):
        # Marriage: a new surname from then on, often a new home and sometimes a new e-mail.
        at = world.moment()
        new_last = world.surname(world.surname_index(), "female")
        if new_last != person.last:
            person.changes.append((at, "last", new_last))
            if world.chance(0.5):
                person.changes.append((at, "address", world.address()))
            if world.chance(0.3):
                email = world.email(person.first, new_last, person.birth)
                person.changes.append((at, "email", email))


def _household(world: _World, first_pid: int, size: int) -> list[Person]:
    city, code = world.city()
    home = Household(
        city=city,
        address=world.address(),
        landline=world.landline(code) if world.chance(0.5) else None,
        family_email=None,
        family_card=world.card() if world.chance(0.1) else None,
    )
    index = world.surname_index()
    if world.chance(0.3):
        local = translit(world.surname(index, "male"), _ICAO).lower()
        family = f"{local}.family{world.rng.randint(1, 999)}@mail.ru"
        if _mailbox(family) not in world.used_emails:
            world.used_emails.add(_mailbox(family))
            home.family_email = family
    father_year = world.rng.randint(1950, 1985)
    father = _new_person(
        world,
        f"P{first_pid:06d}",
        "male",
        home,
        last=world.surname(index, "male"),
        birth=world.birth_date(father_year, father_year),
    )
    members = [father]
    if size >= 2 and world.chance(0.8):
        mother_year = father_year + world.rng.randint(-4, 6)
        mother = _new_person(
            world,
            f"P{first_pid + 1:06d}",
            "female",
            home,
            last=world.surname(index, "female"),
            birth=world.birth_date(mother_year, mother_year),
        )
        members.append(mother)
    while len(members) < size:
        gender = world.rng.choice(("female", "male"))
        child_year = min(father_year + world.rng.randint(20, 35), 2008)
        # Now and then a son is named after his father: same name, same home, same phone.
        first = father.first if gender == "male" and world.chance(0.1) else None
        child = _new_person(
            world,
            f"P{first_pid + len(members):06d}",
            gender,
            home,
            first=first,
            last=world.surname(index, gender),
            middle=patronymic(father.first, gender),
            birth=world.birth_date(child_year, child_year),
        )
        members.append(child)
    return members


def _namesake(world: _World, pid: str, original: Person) -> Person:
    """Same full name and city as someone else; different birth date and contacts."""
    birth = world.birth_date()
    if world.chance(0.15):
        birth = world.birth_date(original.birth.year, original.birth.year)
    while birth == original.birth:
        birth = world.birth_date()
    return _new_person(
        world,
        pid,
        original.gender,
        first=original.first,
        last=original.last,
        birth=birth,
        city=original.city,
        middle=original.middle if world.chance(0.5) else None,
    )


def _people(world: _World, n_persons: int) -> list[Person]:
    people: list[Person] = []
    while len(people) < n_persons:
        left = n_persons - len(people)
        roll = world.rng.random()
        if roll < 0.25 and left >= 2:
            size = min(left, world.rng.choice((2, 2, 2, 3, 3, 4)))
            people.extend(_household(world, len(people), size))
        elif roll < 0.31 and people:
            people.append(_namesake(world, f"P{len(people):06d}", world.rng.choice(people)))
        else:
            gender = world.rng.choice(("female", "male"))
            people.append(_new_person(world, f"P{len(people):06d}", gender))
    return people[:n_persons]


# --- distortions ---


def typo(world: _World, text: str) -> str:
    """One keyboard slip: neighbour key, dropped, doubled or transposed letter."""
    if len(text) < 3:
        return text
    i = world.rng.randint(1, len(text) - 1)
    kind = world.rng.randint(0, 3)
    if kind == 0:
        ch = text[i].lower()
        for row in _CYRILLIC_ROWS + _LATIN_ROWS:
            j = row.find(ch)
            if j >= 0:
                neighbours = [row[k] for k in (j - 1, j + 1) if 0 <= k < len(row)]
                return text[:i] + world.rng.choice(neighbours) + text[i + 1 :]
        return text
    if kind == 1:
        return text[:i] + text[i + 1 :]
    if kind == 2:
        return text[:i] + text[i] + text[i:]
    if i < len(text) - 1:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text


def _case(world: _World, text: str, source: str) -> str:
    roll = world.rng.random()
    if roll < (0.12 if source in ("pos", "call_centre") else 0.03):
        return text.upper()
    if roll > (0.95 if source in ("app", "webshop") else 0.99):
        return text.lower()
    if world.chance(0.03):
        return f" {text}  "
    return text


def _yo(world: _World, text: str) -> str:
    if "ё" in text.lower() and world.chance(0.6):
        return text.replace("ё", "е").replace("Ё", "Е")
    return text


def format_phone(world: _World, national: str) -> str:
    a, b, c, d = national[:3], national[3:6], national[6:8], national[8:]
    return world.rng.choice(
        (
            f"+7 ({a}) {b}-{c}-{d}",
            f"8 {a} {b} {c} {d}",
            f"8{national}",
            f"+7{national}",
            f"8({a}){b}{c}{d}",
            f"+7 {a} {b}-{c}-{d}",
            f"7 {a} {b}{c}{d}",
            f"8-{a}-{b}-{c}-{d}",
        )
    )


def _birth_typo(world: _World, birth: dt.date) -> dt.date:
    if birth.day <= 12 and birth.day != birth.month and world.chance(0.5):
        return dt.date(birth.year, birth.day, birth.month)
    text = birth.strftime("%Y%m%d")
    for _ in range(20):
        i = world.rng.choice((2, 3, 6, 7))
        candidate = text[:i] + str(world.rng.randint(0, 9)) + text[i + 1 :]
        try:
            value = dt.datetime.strptime(candidate, "%Y%m%d").date()
        except ValueError:
            continue
        if value != birth:
            return value
    return birth


def _email_variant(world: _World, email: str, profile: Profile) -> str:
    local, domain = email.split("@")
    if world.chance(profile.typo * 0.8):
        local = typo(world, local)
    if domain == "yandex.ru" and world.chance(0.1):
        domain = "ya.ru"
    value = f"{local}@{domain}"
    return value.capitalize() if world.chance(0.05) else value


def _address_variant(world: _World, address: str) -> str:
    value = address
    if world.chance(0.2):
        value = value.replace("ул.", "улица").replace("пр.", "проспект").replace("пер.", "переулок")
    if world.chance(0.2):
        value = value.replace("д.", "дом").replace("кв.", "квартира")
    if world.chance(0.1):
        value = value.replace(",", "")
    if world.chance(0.1):
        value = value.split(", кв.")[0]
    return value


def _city_variant(world: _World, city: str, latin: bool) -> str:
    if latin and city in CITY_LATIN and world.chance(0.5):
        return CITY_LATIN[city]
    if latin and world.chance(0.3):
        return translit(city, _ICAO)
    roll = world.rng.random()
    if roll < 0.2:
        return f"г. {city}"
    if roll < 0.25:
        return city.upper()
    return city


def _record(world: _World, person: Person, source: str, number: int, seed: int) -> dict[str, Any]:  # noqa: C901, PLR0912
    profile = PROFILES[source]
    when = world.moment()
    state = person.state(when)
    home = person.household
    latin = world.chance(profile.latin)

    first = person.first
    if person.first in NICKNAMES and world.chance(profile.nickname):
        first = world.rng.choice(NICKNAMES[person.first])
    last, middle = state["last"], person.middle
    if latin:
        system = person.latin_system if world.chance(0.7) else world.rng.choice(tuple(_SYSTEMS))
        first = latin_name(world, first, system, first_name=True)
        last = latin_name(world, last, system, first_name=False)
        middle = (
            latin_name(world, middle, system, first_name=False)
            if middle and world.chance(0.2)
            else None
        )
    names: dict[str, str | None] = {}
    fields = (("first", first, profile.first), ("last", last, profile.last))
    for key, value, rate in (*fields, ("middle", middle, profile.middle)):
        if value and world.chance(rate):
            value = typo(world, value) if world.chance(profile.typo) else value
            names[key] = _case(world, _yo(world, value), source)
        else:
            names[key] = None
    if world.chance(profile.swap):
        names["first"], names["last"] = names["last"], names["first"]

    identifiers: list[dict[str, str | None]] = []
    card = person.card
    if home and home.family_card and world.chance(0.5):
        card = home.family_card
    with_card = bool(card and world.chance(profile.card))
    # A till knows the customer through the loyalty scheme: the card, or the phone as its id.
    phone_rate = profile.phone if source != "pos" or not with_card else 0.3
    if world.chance(phone_rate):
        if world.chance(profile.placeholder):
            phone = world.rng.choice(PLACEHOLDER_PHONES)
        elif home and home.landline and world.chance(0.4 if source == "call_centre" else 0.15):
            phone = format_phone(world, home.landline)
        else:
            phone = format_phone(world, state["mobile"])
        identifiers.append({"type": "phone", "value": phone, "namespace": None})
    if world.chance(profile.email):
        email = state["email"]
        mirror = person.mirrors.get(email)
        if mirror and world.chance(0.5):
            email = mirror
        if home and home.family_email and source in ("webshop", "form") and world.chance(0.35):
            email = home.family_email
        identifiers.append(
            {"type": "email", "value": _email_variant(world, email, profile), "namespace": None}
        )
    if card and with_card:
        identifiers.append({"type": "loyalty_card", "value": card, "namespace": "loyalty"})
    if not any(i["type"] in ("phone", "email", "loyalty_card") for i in identifiers):
        phone = format_phone(world, state["mobile"])
        identifiers.append({"type": "phone", "value": phone, "namespace": None})
    if source in ("webshop", "app"):
        account = f"{source[:2]}-{person.pid}-{1 if world.chance(0.9) else 2}"
        identifiers.append({"type": "external_id", "value": account, "namespace": source})

    birth: dt.date | None = None
    if world.chance(profile.birth):
        birth = person.birth
        if world.chance(profile.typo * 0.6):
            birth = _birth_typo(world, birth)
    return {
        "person_id": person.pid,
        "source": source,
        "message_id": f"{source}-{seed}-{number:07d}",
        "identifiers": identifiers,
        "first_name": names["first"],
        "last_name": names["last"],
        "middle_name": names["middle"],
        "birth_date": birth.isoformat() if birth else None,
        "gender": person.gender if world.chance(profile.gender) else None,
        "city": _city_variant(world, state["city"], latin) if world.chance(profile.city) else None,
        "address_line": (
            _address_variant(world, state["address"]) if world.chance(profile.address) else None
        ),
        "observed_at": when.isoformat(),
    }


def generate(n_persons: int, seed: int) -> list[dict[str, Any]]:
    """Records for ``n_persons`` people, in observation order, each with its ``person_id``."""
    world = _World(seed)
    people = _people(world, n_persons)
    records = []
    for person in people:
        count = world.rng.choices(RECORD_COUNTS, RECORD_COUNT_WEIGHTS)[0]
        for _ in range(count):
            source = world.rng.choices(SOURCES, SOURCE_WEIGHTS)[0]
            records.append(_record(world, person, source, len(records), seed))
    records.sort(key=lambda r: (r["observed_at"], r["message_id"]))
    return records


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="JSONL file to write (default: standard output)")
    args = parser.parse_args(argv)
    records = generate(args.persons, args.seed)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(lines)
    else:
        sys.stdout.write(lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
