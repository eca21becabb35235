"""E-mails: syntax, lower case, typo suggestions (never applied), disposable and role flags."""

from __future__ import annotations

import random

import pytest
from email_validator import EmailNotValidError, validate_email

from svod_quality.domain.emails import analyse_email


def test_lower_cased_and_trimmed() -> None:
    info = analyse_email("  Ivan.Petrov@Mail.RU ")
    assert (info.normalized, info.valid, info.suggestion) == ("ivan.petrov@mail.ru", True, "")


@pytest.mark.parametrize(
    ("raw", "suggestion"),
    [
        ("ivan@gmial.com", "ivan@gmail.com"),
        ("ivan@yandex.ry", "ivan@yandex.ru"),
        ("ivan@mai.ru", "ivan@mail.ru"),
        ("ivan@mail.ri", "ivan@mail.ru"),
        ("ivan@gmail.co", "ivan@gmail.com"),
        ("ivan@yandx.ru", "ivan@yandex.ru"),
        ("ivan@rambler.r", "ivan@rambler.ru"),
        ("ivan@outlok.com", "ivan@outlook.com"),
        ("ivan@yandexx.ru", "ivan@yandex.ru"),  # not listed: one edit from a big provider
    ],
)
def test_domain_typos_are_suggested_not_applied(raw: str, suggestion: str) -> None:
    info = analyse_email(raw)
    assert info.suggestion == suggestion
    assert info.normalized == raw  # the address itself is unchanged


@pytest.mark.parametrize("raw", ["a@mail.com", "a@yandex.by", "a@inbox.eu", "a@company.ru"])
def test_real_domains_get_no_suggestion(raw: str) -> None:
    assert analyse_email(raw).suggestion == ""


@pytest.mark.parametrize(
    "raw", ["a@mailinator.com", "b@10minutemail.com", "c@yopmail.com", "d@x.guerrillamail.com"]
)
def test_disposable(raw: str) -> None:
    assert analyse_email(raw).disposable


@pytest.mark.parametrize("raw", ["info@shop.ru", "Sales@firm.ru", "noreply@x.ru", "support+1@x.ru"])
def test_role(raw: str) -> None:
    assert analyse_email(raw).role


@pytest.mark.parametrize(
    "raw", ["ivan", "ivan@", "@mail.ru", "a b@mail.ru", "a@@mail.ru", "a@localhost"]
)
def test_invalid(raw: str) -> None:
    info = analyse_email(raw)
    assert not info.valid and info.reason


def test_fast_path_agrees_with_email_validator() -> None:
    rng = random.Random(3)
    alphabet = "abcxyz019.-_+'!#%&=?^{}|~@ "
    domains = ["mail.ru", "gmail.com", "x..ru", "-a.ru", "a-.ru", "b.c", "localhost", "почта.рф"]
    for _ in range(1500):
        local = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        raw = f"{local}@{rng.choice(domains)}"
        try:
            # analyse_email trims and lower-cases first, on purpose.
            expected = validate_email(raw.strip().lower(), check_deliverability=False).normalized
        except EmailNotValidError:
            expected = None
        info = analyse_email.__wrapped__(raw)
        assert (info.normalized if info.valid else None) == expected, raw
