"""Throughput of ``standardize_and_validate`` on messy, seeded records, beside raw baselines.

Run: ``python -m benchmarks.quality.standardize_bench [--records 50000] [--repeat 3]``.
Writes ``benchmarks/results/quality_standardize.json``.

Each timed run starts with every domain cache cleared, so the figure includes the cost of
first sight of every value; repeats inside one run (the same customer sent by two sources,
common domains and names) do hit the caches, as they would in a real batch.

Baselines, timed the same way over the same records:

* ``copy_strip_lower``: a loop that only copies each field with ``strip()``/``lower()``;
  the floor of any per-record Python work.
* ``phonenumbers_only``: ``phonenumbers.parse`` + ``format_number(E164)`` of each phone, and
  nothing else; what naive phone normalisation alone costs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import phonenumbers

from svod_quality.domain import (
    Address,
    Identifier,
    RawRecord,
    RuleSet,
    ValidationRule,
    addresses,
    default_rules,
    emails,
    names,
    parse_rule,
    phones,
    standardize_and_validate,
)

RESULTS = Path(__file__).resolve().parents[1] / "results" / "quality_standardize.json"
TODAY = dt.date(2025, 6, 1)
SOURCES = ("pos-msk-12", "webshop", "app", "call-center", "crm-import")

MALE = (
    "Александр",
    "Дмитрий",
    "Максим",
    "Сергей",
    "Андрей",
    "Алексей",
    "Иван",
    "Михаил",
    "Никита",
    "Егор",
    "Павел",
    "Артём",
    "Фёдор",
    "Роман",
    "Олег",
    "Пётр",
    "Семён",
    "Илья",
)
FEMALE = (
    "Анна",
    "Мария",
    "Елена",
    "Ольга",
    "Наталья",
    "Екатерина",
    "Татьяна",
    "Ирина",
    "Светлана",
    "Юлия",
    "Алёна",
    "Дарья",
    "Ксения",
    "Полина",
    "Софья",
    "Вера",
)
SURNAMES = (
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
    "Зайцев",
)
PATRONYMIC_STEMS = (
    "Александров",
    "Дмитриев",
    "Сергеев",
    "Андреев",
    "Иванов",
    "Михайлов",
    "Павлов",
    "Петров",
    "Викторов",
    "Николаев",
    "Олегов",
    "Юрьев",
)
DOMAINS = (
    "gmail.com",
    "mail.ru",
    "yandex.ru",
    "ya.ru",
    "rambler.ru",
    "bk.ru",
    "list.ru",
    "inbox.ru",
    "icloud.com",
    "outlook.com",
    "company.ru",
    "firm-ltd.ru",
)
TYPO_DOMAINS = ("gmial.com", "yandex.ry", "mai.ru", "mail.ri", "gmail.co", "yandx.ru")
BAD_DOMAINS = ("mailinator.com", "yopmail.com", "10minutemail.com", "temp-mail.org")
CITIES = (
    "москва",
    "Санкт-Петербург",
    "г. Казань",
    "г Новосибирск",
    "ЕКАТЕРИНБУРГ",
    "Нижний Новгород",
    "ростов-на-дону",
)
STREETS = ("Ленина", "Мира", "Советская", "Тверская", "Садовая", "Лесная", "Гагарина")
STREET_TYPES = ("ул", "ул.", "улица", "пр-т", "проспект", "пер.", "ш.", "б-р", "наб")
LATIN_FIRST = ("ivan", "maria", "olga", "dmitry", "anna", "sergey", "elena", "alex", "yulia")
LATIN_LAST = ("ivanov", "petrova", "smirnov", "popova", "sokolov", "kuznetsova", "volkov")
PLACEHOLDER_PHONES = ("+7 000 000-00-00", "89999999999", "1234567890", "8 (900) 000-00-00")


def _messy_case(rng: random.Random, text: str) -> str:
    roll = rng.random()
    if roll < 0.15:
        return text.upper()
    if roll < 0.3:
        return text.lower()
    if roll < 0.35:
        return text[:1].lower() + text[1:].upper()
    return text


def _spaces(rng: random.Random, text: str) -> str:
    return ("  " if rng.random() < 0.2 else "") + text.replace(
        " ", "  " if rng.random() < 0.2 else " "
    )


def _phone(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.04:
        return rng.choice(PLACEHOLDER_PHONES)
    if roll < 0.07:
        return "".join(str(rng.randint(0, 9)) for _ in range(rng.randint(5, 9)))  # too short
    code = rng.choice(("916", "903", "925", "985", "495", "812", "999", "967"))
    n = "".join(str(rng.randint(0, 9)) for _ in range(7))
    return rng.choice(
        (
            f"8 ({code}) {n[:3]}-{n[3:5]}-{n[5:]}",
            f"+7 {code} {n[:3]} {n[3:5]} {n[5:]}",
            f"8{code}{n}",
            f"{code}{n}",
            f"+7{code}{n}",
            f"7-{code}-{n}",
        )
    )


def _email(rng: random.Random) -> str:
    local = f"{rng.choice(LATIN_FIRST)}.{rng.choice(LATIN_LAST)}{rng.randint(1, 9999)}"
    roll = rng.random()
    if roll < 0.04:
        domain = rng.choice(TYPO_DOMAINS)
    elif roll < 0.06:
        domain = rng.choice(BAD_DOMAINS)
    elif roll < 0.08:
        local = rng.choice(("info", "sales", "shop", "support"))
        domain = rng.choice(DOMAINS)
    elif roll < 0.10:
        return f"{local}@@{rng.choice(DOMAINS)}"  # malformed
    else:
        domain = rng.choice(DOMAINS)
    address = f"{local}@{domain}"
    return (
        address.upper() if rng.random() < 0.1 else f" {address} " if rng.random() < 0.1 else address
    )


def _address(rng: random.Random) -> Address:
    line = (
        f"{rng.choice(STREET_TYPES)} {_messy_case(rng, rng.choice(STREETS))} "
        f"{rng.choice(('д', 'д.', 'дом '))}{rng.randint(1, 120)}"
        f"{rng.choice(('', ' к2', ' корп. 3', ' стр 1'))}, кв.{rng.randint(1, 300)}"
    )
    postcode = str(rng.randint(101000, 692999))
    if rng.random() < 0.5:
        return Address("RU", "", "", rng.choice(CITIES), f"{postcode}, {line}")
    return Address(rng.choice(("RU", "rus", "")), postcode, "", rng.choice(CITIES), line)


def _birth_date(rng: random.Random) -> dt.date | None:
    roll = rng.random()
    if roll < 0.4:
        return None
    if roll < 0.43:
        return TODAY + dt.timedelta(days=rng.randint(1, 2000))  # future
    if roll < 0.46:
        return TODAY - dt.timedelta(days=rng.randint(1, 12 * 365))  # a child
    if roll < 0.48:
        return dt.date(rng.randint(1880, 1910), 1, 1)  # too old
    return TODAY - dt.timedelta(days=rng.randint(16 * 365, 85 * 365))


def make_record(rng: random.Random) -> RawRecord:
    female = rng.random() < 0.55
    first = rng.choice(FEMALE if female else MALE)
    last = rng.choice(SURNAMES) + ("а" if female else "")
    middle = rng.choice(PATRONYMIC_STEMS) + ("на" if female else "ич")
    identifiers: list[Identifier] = []
    if rng.random() < 0.85:
        identifiers.append(Identifier("phone", _phone(rng)))
        if rng.random() < 0.1:
            identifiers.append(Identifier("phone", _phone(rng)))
    if rng.random() < 0.7:
        identifiers.append(Identifier("email", _email(rng)))
    if rng.random() < 0.3:
        card = "".join(str(rng.randint(0, 9)) for _ in range(12))
        identifiers.append(Identifier("loyalty_card", f"{card[:4]} {card[4:8]}-{card[8:]}"))
    record = RawRecord(identifiers=identifiers, birth_date=_birth_date(rng))
    if rng.random() < 0.3:
        order = rng.random()
        full = f"{last} {first} {middle}" if order < 0.7 else f"{first} {last}"
        record.full_name = _spaces(rng, _messy_case(rng, full))
    else:
        record.first_name = _spaces(rng, _messy_case(rng, first))
        record.last_name = _messy_case(rng, last) if rng.random() < 0.95 else "тест"
        record.middle_name = _messy_case(rng, middle) if rng.random() < 0.6 else ""
    if rng.random() < 0.5:
        record.addresses.append(_address(rng))
    if rng.random() < 0.2:
        record.attributes["tier"] = rng.choice(("gold", "silver", "bronze"))
    return record


def make_records(count: int, seed: int) -> list[tuple[str, RawRecord]]:
    """(source, record) pairs; ~10% are re-sends of an earlier person by another source."""
    rng = random.Random(seed)
    out: list[tuple[str, RawRecord]] = []
    for _ in range(count):
        if out and rng.random() < 0.1:
            _, earlier = out[rng.randrange(len(out))]
            out.append((rng.choice(SOURCES), earlier))
        else:
            out.append((rng.choice(SOURCES), make_record(rng)))
    return out


def benchmark_rules() -> list[ValidationRule]:
    extra = (
        {"rule_id": "b.phone", "field": "phone", "action": "flag", "check": "phone_valid"},
        {
            "rule_id": "b.ph0",
            "field": "phone",
            "action": "reject",
            "check": "phone_not_placeholder",
        },
        {"rule_id": "b.email", "field": "email", "action": "flag", "check": "email_valid"},
        {
            "rule_id": "b.len",
            "field": "last_name",
            "action": "flag",
            "check": "max_length",
            "parameters": {"max": "60"},
        },
        {
            "rule_id": "b.pos",
            "field": "birth_date",
            "source": "pos-msk-12",
            "action": "reject",
            "check": "birth_date_plausible",
        },
    )
    return default_rules() + [parse_rule(d) for d in extra]


def clear_caches() -> None:
    for module in (addresses, emails, names, phones):
        for value in vars(module).values():
            if isinstance(value, functools._lru_cache_wrapper):
                value.cache_clear()


def _standardize(records: Sequence[tuple[str, RawRecord]], rules: list[ValidationRule]) -> int:
    rule_set = RuleSet(rules)  # what the servicer does once per batch
    rejected = 0
    for source, record in records:
        rejected += standardize_and_validate(record, rule_set, source, TODAY).rejected
    return rejected


def _copy_strip_lower(records: Sequence[tuple[str, RawRecord]]) -> int:
    n = 0
    for _, r in records:
        ids = [Identifier(i.type, i.value.strip().lower(), i.namespace) for i in r.identifiers]
        copy = RawRecord(
            ids,
            r.first_name.strip(),
            r.last_name.strip(),
            r.middle_name.strip(),
            r.full_name.strip(),
            r.birth_date,
            r.gender,
            [
                Address(
                    a.country_code.upper(),
                    a.postal_code.strip(),
                    a.region,
                    a.city.strip(),
                    a.address_line.strip(),
                )
                for a in r.addresses
            ],
            dict(r.attributes),
        )
        n += len(copy.identifiers)
    return n


def _phonenumbers_only(records: Sequence[tuple[str, RawRecord]]) -> int:
    n = 0
    for _, r in records:
        for ident in r.identifiers:
            if ident.type == "phone":
                try:
                    number = phonenumbers.parse(ident.value, "RU")
                except phonenumbers.NumberParseException:
                    continue
                phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                n += 1
    return n


def _time(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        clear_caches()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def run(count: int = 50_000, seed: int = 42, repeat: int = 3) -> dict[str, Any]:
    records = make_records(count, seed)
    rules = benchmark_rules()
    rejected = _standardize(records, rules)  # warm-up (imports, regex compilation)
    timings = {
        "standardize_and_validate": _time(lambda: _standardize(records, rules), repeat),
        "baseline_copy_strip_lower": _time(lambda: _copy_strip_lower(records), repeat),
        "baseline_phonenumbers_only": _time(lambda: _phonenumbers_only(records), repeat),
    }
    phones_total = [i.value for _, r in records for i in r.identifiers if i.type == "phone"]
    emails_total = [i.value for _, r in records for i in r.identifiers if i.type == "email"]
    return {
        "benchmark": "quality.standardize",
        "records": count,
        "seed": seed,
        "repeat": repeat,
        "rules": len(rules),
        "rejected_records": rejected,
        # How much the per-value caches can help: distinct values among all values.
        "phones": len(phones_total),
        "distinct_phones": len(set(phones_total)),
        "emails": len(emails_total),
        "distinct_emails": len(set(emails_total)),
        "caches": "cleared before every timed run",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "results": {
            name: {
                "best_s": round(min(t), 4),
                "median_s": round(statistics.median(t), 4),
                "records_per_s": round(count / min(t)),
                "records_per_s_median": round(count / statistics.median(t)),
            }
            for name, t in timings.items()
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    figures = run(args.records, args.seed, args.repeat)
    print(
        f"quality standardize: {figures['records']} records, {figures['rules']} rules, "
        f"{figures['rejected_records']} rejected, python {figures['python']}"
    )
    for name, row in figures["results"].items():
        print(
            f"  {name:<28} {row['records_per_s']:>10,} records/s (best of {args.repeat}; "
            f"median {row['records_per_s_median']:,})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"  written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
