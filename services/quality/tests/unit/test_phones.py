"""Phones: accepted formats, E.164, kinds, placeholders, and the fast path's parity."""

from __future__ import annotations

import random

import pytest

from svod_quality.domain.phones import _full_path, analyse_phone, placeholder_reason


@pytest.mark.parametrize(
    "raw", ["8 (916) 123-45-67", "+7 916 123 45 67", "89161234567", "9161234567", "7-916-1234567"]
)
def test_common_russian_formats_give_one_e164(raw: str) -> None:
    info = analyse_phone(raw)
    assert (info.e164, info.valid, info.placeholder, info.kind) == (
        "+79161234567",
        True,
        False,
        "mobile",
    )


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("+7 495 123-45-67", "landline"),
        ("8 800 555 35 35", "other"),
        ("+44 20 7946 0958", "landline"),
    ],
)
def test_kinds(raw: str, kind: str) -> None:
    assert analyse_phone(raw).kind == kind


@pytest.mark.parametrize(
    "raw",
    [
        "+7 000 000-00-00",
        "0000000000",
        "8 (999) 999-99-99",
        "1234567890",
        "+7 987 654 32 10",
        "+7 912 345 67 89",
        "8 (900) 000-00-00",
    ],
)
def test_placeholders_are_detected(raw: str) -> None:
    info = analyse_phone(raw)
    assert info.placeholder, info
    assert info.reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("12345", "too short"), ("+7 916 555 44 332 1", "wrong length"), ("телефон", "not a phone")],
)
def test_impossible_numbers_are_invalid(raw: str, reason: str) -> None:
    info = analyse_phone(raw)
    assert not info.valid and info.e164 == ""
    assert reason in info.reason


def test_golden_numbers_are_not_placeholders() -> None:
    # Numbers with repeated blocks are sold as "golden" numbers; only obvious fakes are caught.
    assert not analyse_phone("+7 999 777-77-77").placeholder
    assert placeholder_reason("9161234567") == ""


def test_fast_path_agrees_with_phonenumbers() -> None:
    rng = random.Random(7)
    for _ in range(4000):
        # Half the numbers in the busy 9xx/4xx/8xx ranges, half anywhere.
        head = rng.choice(("9", "4", "8", "3")) if rng.random() < 0.5 else str(rng.randint(0, 9))
        national = head + "".join(str(rng.randint(0, 9)) for _ in range(9))
        a, b, c = national[:3], national[3:6], national[6:]
        raw = rng.choice(
            (f"+7{national}", f"8{national}", f"7{national}", national, f"+7 ({a}) {b}-{c}")
        )
        assert analyse_phone.__wrapped__(raw) == _full_path(raw), raw
