"""Phone facts built straight from E.164 agree with phonenumbers' own parse."""

from __future__ import annotations

import random

import phonenumbers

from svod_identity.domain.matching.contacts import _phone_facts


def _facts_by_parse(e164: str) -> tuple[bool, bool, str] | None:
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    kind = phonenumbers.number_type(number)
    return (
        kind != phonenumbers.PhoneNumberType.UNKNOWN,
        kind == phonenumbers.PhoneNumberType.FIXED_LINE,
        str(number.national_number),
    )


def _samples() -> list[str]:
    rng = random.Random(20261122)
    numbers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE,
            phonenumbers.PhoneNumberType.TOLL_FREE,
        ):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                numbers.append(
                    phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
                )
    # Russian and Kazakh numbers of every prefix, and lengths around the right one.
    for _ in range(5000):
        numbers.append("+7" + "".join(rng.choice("0123456789") for _ in range(10)))
    # Every three-digit prefix, each typed from the RU metadata or declined to phonenumbers.
    for prefix in range(1000):
        numbers += [f"+7{prefix:03d}{rng.randrange(10**7):07d}" for _ in range(3)]
    for length in (1, 2, 8, 9, 11, 12, 17, 18):
        numbers.append("+7" + "".join(rng.choice("123456789") for _ in range(length)))
    # Other codes of one, two and three digits; Italian numbers with their leading zero.
    for code in ("1", "44", "49", "39", "380", "375", "998", "374", "86"):
        for _ in range(300):
            length = rng.randint(6, 12)
            numbers.append(f"+{code}" + "".join(rng.choice("0123456789") for _ in range(length)))
    # Every country code, numbers of random lengths.
    for code in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        for _ in range(20):
            length = rng.randint(3, 15)
            numbers.append(f"+{code}" + "".join(rng.choice("0123456789") for _ in range(length)))
    # Not E.164 at all, or codes nobody has.
    numbers += ["+0123456789", "+999123456789", "+", "79161234567", "+7 916 123-45-67", "+7916a"]
    return numbers


def test_facts_from_e164_equal_the_ones_parse_gives() -> None:
    compute = _phone_facts.__wrapped__  # past the cache
    wrong = [n for n in _samples() if compute(n) != _facts_by_parse(n)]
    assert wrong == []
