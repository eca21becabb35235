"""A second Russian retail generator, written apart from ``generator.py`` (issue #21).

The first generator taught the matcher its own world; this one is built from a different
picture of a customer base, so a rule that only fits one of them shows up as a drop on the
other. It does not share code, name tables or drift rates with the first. What differs:

* **Households first.** People are made in households (single, couple, couple with children,
  three generations): family members share a surname (or a wife keeps her maiden one), an
  address, often a landline and sometimes one e-mail box; a son often carries his father's
  first name, and a child's patronymic comes from the father.
* **Its own frequencies.** First names, surnames and cities are drawn from Zipf-like tables of
  its own (Москва and Иванов common, small towns and rare surnames in the long tail), with
  namesakes made on purpose: strangers with a popular full name in the same big city.
* **Its own drift mix**, per record: diminutives (Маша for Мария), Latin spelling, typos of a
  call-centre operator, a first and last name swapped, a new mobile number, the same e-mail
  login at another provider, a married surname, a move, a day/month swap in the birth date,
  a till placeholder phone, fields left empty.

Every message is a dict in the first generator's format (``datasets.generator_request``), with
the true ``person_id``. Deterministic for a seed.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

# (full name, diminutives) - weights fall with rank (Zipf), so the head is common.
MALE = [
    ("Александр", ["Саша", "Шура"]),
    ("Сергей", ["Серёжа", "Серега"]),
    ("Дмитрий", ["Дима"]),
    ("Андрей", ["Андрюша"]),
    ("Алексей", ["Лёша", "Леша"]),
    ("Максим", ["Макс"]),
    ("Евгений", ["Женя"]),
    ("Иван", ["Ваня"]),
    ("Михаил", ["Миша"]),
    ("Николай", ["Коля"]),
    ("Владимир", ["Вова", "Володя"]),
    ("Артём", ["Тёма", "Артем"]),
    ("Павел", ["Паша"]),
    ("Роман", ["Рома"]),
    ("Виктор", ["Витя"]),
    ("Игорь", ["Игорек"]),
    ("Олег", []),
    ("Юрий", ["Юра"]),
    ("Константин", ["Костя"]),
    ("Григорий", ["Гриша"]),
    ("Тимофей", ["Тима"]),
    ("Всеволод", ["Сева"]),
    ("Ярослав", ["Слава"]),
    ("Святослав", ["Свят"]),
    ("Елисей", []),
]
FEMALE = [
    ("Елена", ["Лена"]),
    ("Ольга", ["Оля"]),
    ("Наталья", ["Наташа", "Наталия"]),
    ("Татьяна", ["Таня"]),
    ("Ирина", ["Ира"]),
    ("Мария", ["Маша", "Маня"]),
    ("Анна", ["Аня"]),
    ("Светлана", ["Света"]),
    ("Екатерина", ["Катя"]),
    ("Юлия", ["Юля"]),
    ("Анастасия", ["Настя"]),
    ("Марина", []),
    ("Людмила", ["Люда"]),
    ("Галина", ["Галя"]),
    ("Дарья", ["Даша"]),
    ("Ксения", ["Ксюша"]),
    ("Валентина", ["Валя"]),
    ("Алёна", ["Алена"]),
    ("Полина", ["Поля"]),
    ("Виктория", ["Вика"]),
    ("Василиса", ["Вася"]),
    ("Ульяна", ["Уля"]),
    ("Злата", []),
    ("Агата", []),
]
# Male forms; the female form adds "а" (Иванов -> Иванова) unless it ends in -ий / -ой / -ых.
SURNAMES = [
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Петров",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
    "Орлов",
    "Андреев",
    "Макаров",
    "Никитин",
    "Захаров",
    "Зайцев",
    "Соловьёв",
    "Борисов",
    "Яковлев",
    "Григорьев",
    "Романов",
    "Воробьёв",
    "Сергеев",
    "Кузьмин",
    "Фролов",
    "Александров",
    "Дмитриев",
    "Королёв",
    "Гусев",
    "Киселёв",
    "Ильин",
    "Максимов",
    "Поляков",
    "Сорокин",
    "Виноградов",
    "Ковалёв",
    "Белов",
    "Медведев",
    "Антонов",
    "Тарасов",
    "Жуков",
    "Баранов",
    "Филиппов",
    "Комаров",
    "Давыдов",
    "Беляев",
    "Герасимов",
    "Богданов",
    "Осипов",
    "Сидоров",
    "Матвеев",
    "Титов",
    "Марков",
    "Миронов",
    "Крылов",
    "Куликов",
    "Карпов",
    "Власов",
    "Мельников",
    "Денисов",
    "Гаврилов",
    "Тихонов",
    "Казаков",
    "Афанасьев",
    "Данилов",
    "Савельев",
    "Тимофеев",
    "Фомин",
    "Чернов",
    "Абрамов",
    "Мартынов",
    "Ефимов",
    "Федотов",
    "Щербаков",
    "Назаров",
    "Калинин",
    "Исаев",
    "Чернышёв",
    "Быков",
    "Маслов",
    "Родионов",
    "Коновалов",
    "Лазарев",
    "Воронин",
    "Климов",
    "Филатов",
    "Пономарёв",
    "Голубев",
    "Кудрявцев",
    "Прохоров",
    "Наумов",
    "Потапов",
    "Журавлёв",
    "Овчинников",
    "Трофимов",
    "Леонов",
    "Соболев",
    "Ермаков",
    "Колесников",
    "Гончаров",
    "Емельянов",
    "Никифоров",
    "Грачёв",
    "Котов",
    "Гришин",
    "Ефремов",
    "Архипов",
    "Громов",
    "Кириллов",
    "Малышев",
    "Панов",
    "Моисеев",
    "Румянцев",
    "Акимов",
    "Кондратьев",
    "Бирюков",
    "Горбунов",
    "Анисимов",
    "Ерёмин",
    "Тихомиров",
    "Галкин",
    "Лукьянов",
    "Михеев",
    "Скворцов",
    "Юдин",
    "Белоусов",
    "Нестеров",
    "Симонов",
    "Прокофьев",
    "Харитонов",
    "Князев",
    "Цветков",
    "Левин",
    "Митрофанов",
    "Воронов",
    "Аксёнов",
    "Софронов",
    "Мальцев",
    "Логинов",
    "Горшков",
    "Савин",
    "Краснов",
    "Майоров",
    "Демидов",
    "Елисеев",
    "Рыбаков",
    "Сафонов",
    "Плотников",
    "Суворов",
    "Бондаренко",
    "Шевченко",
    "Коваленко",
    "Ткаченко",
    "Кравченко",
    "Островский",
    "Троицкий",
    "Вяземский",
    "Дубровских",
    "Черных",
    "Толстой",
    "Оболенский",
    "Зорин",
    "Шувалов",
    "Лихачёв",
    "Веретенников",
    "Засекин",
    "Пустовойтов",
    "Брусникин",
    "Ракитин",
]
# City, weight (roughly by population) - Москва alone is a fifth of the customers.
CITIES = [
    ("Москва", 200),
    ("Санкт-Петербург", 90),
    ("Новосибирск", 30),
    ("Екатеринбург", 30),
    ("Казань", 25),
    ("Нижний Новгород", 22),
    ("Челябинск", 20),
    ("Самара", 20),
    ("Омск", 18),
    ("Ростов-на-Дону", 18),
    ("Уфа", 17),
    ("Красноярск", 17),
    ("Воронеж", 16),
    ("Пермь", 16),
    ("Волгоград", 15),
    ("Краснодар", 15),
    ("Тюмень", 12),
    ("Ижевск", 10),
    ("Барнаул", 10),
    ("Иркутск", 9),
    ("Ярославль", 9),
    ("Томск", 8),
    ("Оренбург", 8),
    ("Кемерово", 8),
    ("Рязань", 7),
    ("Тверь", 6),
    ("Калуга", 5),
    ("Кострома", 4),
    ("Псков", 3),
    ("Великий Новгород", 3),
    ("Суздаль", 1),
    ("Мышкин", 1),
    ("Кириллов", 1),
    ("Плёс", 1),
]
STREETS = [
    "ул. Ленина",
    "ул. Мира",
    "ул. Советская",
    "пр-т Победы",
    "ул. Садовая",
    "ул. Гагарина",
    "ул. Пушкина",
    "ул. Молодёжная",
    "ул. Лесная",
    "ул. Школьная",
    "ул. Набережная",
    "ул. Строителей",
    "ул. Заречная",
    "пер. Почтовый",
    "ул. Кирова",
]
CHANNELS = ["pos", "webshop", "app", "call_centre", "form"]
CHANNEL_WEIGHTS = [35, 30, 15, 10, 10]
PROVIDERS = ["mail.ru", "yandex.ru", "gmail.com", "bk.ru", "list.ru", "inbox.ru", "rambler.ru"]
PLACEHOLDER_PHONES = ["+79999999999", "+70000000000", "89000000000", "+79111111111"]

_LATIN = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        [
            "a",
            "b",
            "v",
            "g",
            "d",
            "e",
            "e",
            "zh",
            "z",
            "i",
            "y",
            "k",
            "l",
            "m",
            "n",
            "o",
            "p",
            "r",
            "s",
            "t",
            "u",
            "f",
            "kh",
            "ts",
            "ch",
            "sh",
            "shch",
            "",
            "y",
            "",
            "e",
            "yu",
            "ya",
        ],
        strict=True,
    )
)


def latin(text: str) -> str:
    out = "".join(_LATIN.get(c.lower(), c) for c in text)
    return out[:1].upper() + out[1:]


def mailbox(login: str, provider: str) -> str:
    """The mailbox an address reaches: Gmail ignores dots in the login."""
    local = login.lower()
    if provider == "gmail.com":
        local = local.replace(".", "")
    return f"{local}@{provider}"


def zipf_pick(rng: random.Random, items: list[Any], exponent: float = 1.0) -> Any:
    weights = [1 / (rank + 1) ** exponent for rank in range(len(items))]
    return rng.choices(items, weights)[0]


def female_surname(male: str) -> str:
    if male.endswith(("ий", "ой")):
        return male[:-2] + "ая"
    if male.endswith(("ых", "их", "ко")):
        return male
    return male + "а"


def patronymic(father_first: str, female: bool) -> str:
    stem = {"Павел": "Павл", "Лев": "Льв"}.get(father_first, father_first)
    if stem.endswith("ий") and stem != "Дмитрий":
        base = stem[:-2] + ("ьевна" if female else "ьевич")
    elif stem.endswith(("й", "ь")):
        base = stem[:-1] + ("евна" if female else "евич")
    elif stem.endswith("а"):
        base = stem[:-1] + ("ична" if female else "ич")
    else:
        base = stem + ("овна" if female else "ович")
    return base


@dataclass
class Person:
    person_id: int
    first: str
    diminutives: list[str]
    middle: str
    last: str
    maiden: str | None
    female: bool
    birth: dt.date
    city: str
    address: str
    mobiles: list[str]  # the current one last
    email_login: str | None
    email_provider: str
    landline: str | None
    shared_email: str | None = None  # a family box this person also uses
    card: str = ""
    app_id: str = ""
    moved_to: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)


class HouseholdGenerator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.next_person = 0
        self.next_message = 0
        self.used_phones: set[str] = set()
        # Mailbox (``mailbox``) -> the person_id holding it: one holder per mailbox.
        self.mailboxes: dict[str, int] = {}

    # -- people ------------------------------------------------------------------------------
    def mobile(self) -> str:
        while True:
            code = self.rng.choice(["916", "926", "903", "905", "915", "985", "977", "999", "952"])
            number = f"+7{code}{self.rng.randrange(10**7):07d}"
            if number not in self.used_phones and len(set(number[-7:])) > 1:
                self.used_phones.add(number)
                return number

    def claim(self, login: str, provider: str, holder: int) -> bool:
        """Registers ``login@provider`` for ``holder``; False if someone else holds it."""
        return self.mailboxes.setdefault(mailbox(login, provider), holder) == holder

    def free_login(self, login: str, provider: str, holder: int) -> str:
        """``login`` at ``provider`` for ``holder``, or, taken, the login with a number the
        sign-up form offers (``elena.ivanova`` -> ``elena.ivanova271``)."""
        candidate = login
        while not self.claim(candidate, provider, holder):
            candidate = f"{login}{self.rng.randrange(1, 1000)}"
        return candidate

    def login(self, first: str, last: str, birth: dt.date) -> str:
        style = self.rng.random()
        f, s = latin(first).lower(), latin(last).lower()
        if style < 0.3:
            return f"{f}.{s}{birth.year % 100:02d}"
        if style < 0.5:
            return f"{f[0]}{s}{self.rng.randrange(1, 999)}"
        if style < 0.65:
            return f"{s}.{f}"
        if style < 0.8:
            return f"{f}{birth.year}"
        # A login that says nothing about the name.
        return "".join(self.rng.choice("abcdefghkmnprstuvwxyz") for _ in range(7)) + str(
            self.rng.randrange(10, 99)
        )

    def person(
        self,
        *,
        female: bool,
        surname: str,
        birth_year: int,
        home: tuple[str, str],
        father_first: str | None,
        first: tuple[str, list[str]] | None = None,
        maiden: str | None = None,
        landline: str | None = None,
    ) -> Person:
        name, small = first or zipf_pick(self.rng, FEMALE if female else MALE, 0.9)
        birth = dt.date(birth_year, self.rng.randint(1, 12), self.rng.randint(1, 28))
        last = female_surname(surname) if female else surname
        middle = (
            patronymic(father_first, female)
            if father_first
            else patronymic(zipf_pick(self.rng, MALE)[0], female)
        )
        mobiles = [self.mobile()]
        self.next_person += 1
        provider = zipf_pick(self.rng, PROVIDERS, 0.7)
        login = None
        if birth_year < 2010:
            wanted = self.login(name, maiden or last, birth)
            login = self.free_login(wanted, provider, self.next_person)
        return Person(
            person_id=self.next_person,
            first=name,
            diminutives=small,
            middle=middle,
            last=last,
            maiden=maiden,
            female=female,
            birth=birth,
            city=home[0],
            address=home[1],
            mobiles=mobiles,
            email_login=login,
            email_provider=provider,
            landline=landline,
            card=f"77{self.rng.randrange(10**10):010d}",
            app_id=f"app-{self.rng.randrange(16**10):010x}",
        )

    def home(self) -> tuple[str, str]:
        city = self.rng.choices([c for c, _ in CITIES], [w for _, w in CITIES])[0]
        street = self.rng.choice(STREETS)
        return city, f"{street}, д. {self.rng.randint(1, 120)}, кв. {self.rng.randint(1, 300)}"

    def household(self) -> list[Person]:
        """One household: who lives together and what they share."""
        home = self.home()
        surname = zipf_pick(self.rng, SURNAMES, 1.05)
        landline = None
        if self.rng.random() < 0.25:
            landline = f"+7495{self.rng.randrange(10**7):07d}"
        kind = self.rng.random()
        year = self.rng.randint(1950, 2000)
        if kind < 0.35:  # single
            return [
                self.person(
                    female=self.rng.random() < 0.55,
                    surname=surname,
                    birth_year=year,
                    home=home,
                    father_first=None,
                    landline=landline,
                )
            ]
        husband = self.person(
            female=False,
            surname=surname,
            birth_year=year,
            home=home,
            father_first=None,
            landline=landline,
        )
        maiden = zipf_pick(self.rng, SURNAMES, 1.05)
        keeps_maiden = self.rng.random() < 0.12
        wife = self.person(
            female=True,
            surname=maiden if keeps_maiden else surname,
            birth_year=year + self.rng.randint(-3, 6),
            home=home,
            father_first=None,
            maiden=None if keeps_maiden else female_surname(maiden),
            landline=landline,
        )
        family = [husband, wife]
        if kind < 0.55:
            return family
        for _ in range(self.rng.choice([1, 1, 2, 2, 3])):
            child_year = min(year + self.rng.randint(22, 38), 2008)
            female = self.rng.random() < 0.5
            # A son named after his father: same first name, surname and address.
            same_name = not female and self.rng.random() < 0.15
            family.append(
                self.person(
                    female=female,
                    surname=surname,
                    birth_year=child_year,
                    home=home,
                    father_first=husband.first,
                    first=(husband.first, husband.diminutives) if same_name else None,
                    landline=landline,
                )
            )
        # A family e-mail box: a parent's address used by a child too.
        if self.rng.random() < 0.3 and wife.email_login:
            box = f"{wife.email_login}@{wife.email_provider}"
            for child in family[2:]:
                if self.rng.random() < 0.6:
                    child.shared_email = box
        if kind > 0.9:  # a grandparent at the same address
            family.append(
                self.person(
                    female=self.rng.random() < 0.7,
                    surname=surname,
                    birth_year=year - self.rng.randint(22, 30),
                    home=home,
                    father_first=None,
                    landline=landline,
                )
            )
        return family

    def namesake(self, of: Person) -> Person:
        """A stranger with the same full name in the same city (a popular name)."""
        other = self.person(
            female=of.female,
            surname=of.last,
            birth_year=self.rng.randint(1950, 2004),
            home=(of.city, self.home()[1]),
            father_first=None,
            first=(of.first, of.diminutives),
        )
        other.last = of.last  # as written, whatever the gender form
        return other

    # -- records -----------------------------------------------------------------------------
    def typo(self, text: str) -> str:
        if len(text) < 4:
            return text
        i = self.rng.randrange(1, len(text) - 1)
        kind = self.rng.random()
        if kind < 0.35:
            return text[:i] + text[i + 1 :]
        if kind < 0.7:
            return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        return text[:i] + self.rng.choice("аеиоунрслт") + text[i + 1 :]

    def phone_text(self, e164: str) -> str:
        digits = e164[2:]
        style = self.rng.random()
        if style < 0.4:
            return e164
        if style < 0.6:
            return "8" + digits
        if style < 0.8:
            return f"+7 ({digits[:3]}) {digits[3:6]}-{digits[6:8]}-{digits[8:]}"
        return f"8 {digits[:3]} {digits[3:6]} {digits[6:]}"

    def names(self, p: Person, index: int, channel: str) -> tuple[str, str]:
        """First and last name as this record has them, drift included."""
        rng = self.rng
        first, last = p.first, p.last
        if p.maiden and index == 0 and rng.random() < 0.5:
            last = p.maiden  # an old record from before the wedding
        drift = rng.random()
        if drift < 0.15 and p.diminutives:
            return rng.choice(p.diminutives), last
        if drift < 0.22:
            return latin(first), latin(last)
        if drift < 0.32 and channel in ("call_centre", "pos"):
            return (self.typo(first), last) if rng.random() < 0.5 else (first, self.typo(last))
        if drift < 0.35:
            return last, first  # typed into the wrong fields
        return first, last

    def identifiers(self, p: Person, index: int, channel: str) -> list[dict[str, str]]:
        rng = self.rng
        phone = p.mobiles[-1] if index > 0 or len(p.mobiles) == 1 else p.mobiles[0]
        found: list[dict[str, str]] = []
        if channel == "pos":
            found.append({"type": "loyalty_card", "value": p.card, "namespace": "loyalty"})
            if rng.random() < 0.7:
                placeholder = rng.random() < 0.06
                value = rng.choice(PLACEHOLDER_PHONES) if placeholder else self.phone_text(phone)
                found.append({"type": "phone", "value": value})
        elif channel in ("webshop", "form"):
            box = self.email_for(p, index)
            if box:
                found.append({"type": "email", "value": box})
            if rng.random() < 0.6 or not box:
                found.append({"type": "phone", "value": self.phone_text(phone)})
        elif channel == "app":
            found.append({"type": "external_id", "value": p.app_id, "namespace": "app"})
            found.append({"type": "phone", "value": self.phone_text(phone)})
        else:  # call centre: the phone they call from
            line = p.landline if p.landline and rng.random() < 0.4 else phone
            found.append({"type": "phone", "value": self.phone_text(line)})
        return found

    def birth(self, p: Person) -> str | None:
        if self.rng.random() >= 0.55:
            return None
        if self.rng.random() < 0.05 and p.birth.day <= 12:
            return dt.date(p.birth.year, p.birth.day, p.birth.month).isoformat()  # swapped
        return p.birth.isoformat()

    def record(self, p: Person, index: int, when: dt.datetime) -> dict[str, Any]:
        rng = self.rng
        channel = rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0]
        first, last = self.names(p, index, channel)
        city, address = p.city, p.address
        if p.moved_to and index > 0 and rng.random() < 0.6:
            city, address = p.moved_to, self.home()[1]
        # Tills and web forms often skip the patronymic; the app never asks.
        keeps_middle = channel == "call_centre" or rng.random() < 0.4
        web = channel in ("webshop", "form")
        self.next_message += 1
        return {
            "source": channel,
            "message_id": f"h{self.next_message}",
            "person_id": p.person_id,
            "first_name": first,
            "last_name": last if rng.random() < 0.9 else "",
            "middle_name": p.middle if keeps_middle and channel != "app" else "",
            "gender": ("female" if p.female else "male") if rng.random() < 0.5 else "",
            "birth_date": self.birth(p),
            "city": city if rng.random() < 0.7 else "",
            "address_line": address if web and rng.random() < 0.6 else "",
            "identifiers": self.identifiers(p, index, channel),
            "observed_at": when.isoformat(),
        }

    def email_for(self, p: Person, index: int) -> str | None:
        if p.shared_email and self.rng.random() < 0.7:
            return p.shared_email
        if not p.email_login:
            return None
        provider = p.email_provider
        login = p.email_login
        if index > 0 and self.rng.random() < 0.2:
            # The same login at another provider: one where nobody else holds it (the person
            # registers it now, or did before).
            mine = p.person_id
            free = [
                x
                for x in PROVIDERS
                if x != provider and self.mailboxes.get(mailbox(login, x), mine) == mine
            ]
            if free:
                provider = self.rng.choice(free)
                self.claim(login, provider, p.person_id)
        if self.rng.random() < 0.05:
            # A slip in the login: kept unless it is someone else's mailbox (then the record
            # carries the right one), and no one else may take it later.
            slipped = self.typo(login)
            if self.claim(slipped, provider, p.person_id):
                login = slipped
        return f"{login}@{provider}"

    def records_of(self, p: Person) -> list[dict[str, Any]]:
        count = min(1 + int(self.rng.expovariate(0.55)), 8)
        if self.rng.random() < 0.15:
            p.mobiles.append(self.mobile())  # a new number: old records keep the old one
        if self.rng.random() < 0.08:
            p.moved_to = self.home()[0]
        start = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
        hours = sorted(self.rng.randrange(24 * 900) for _ in range(count))
        times = [start + dt.timedelta(hours=h) for h in hours]
        return [self.record(p, i, t) for i, t in enumerate(times)]


def generate(persons: int, seed: int) -> list[dict[str, Any]]:
    """About ``persons`` people in households, with their records in a shuffled order."""
    gen = HouseholdGenerator(seed)
    people: list[Person] = []
    while len(people) < persons:
        people += gen.household()
        if people and gen.rng.random() < 0.04:
            popular = [p for p in people if p.city in ("Москва", "Санкт-Петербург")]
            if popular:
                people.append(gen.namesake(gen.rng.choice(popular)))
    messages = [m for p in people[:persons] for m in gen.records_of(p)]
    gen.rng.shuffle(messages)
    return messages
