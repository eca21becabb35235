"""Birth dates: age on a given day and whether it is plausible for a customer."""

from __future__ import annotations

import datetime as dt
from typing import Final

DEFAULT_MIN_AGE: Final = 14
DEFAULT_MAX_AGE: Final = 110


def age_on(birth_date: dt.date, today: dt.date) -> int:
    """Full years on ``today`` (a 29 February birthday counts on 1 March in common years)."""
    had_birthday = (today.month, today.day) >= (birth_date.month, birth_date.day)
    return today.year - birth_date.year - (0 if had_birthday else 1)


def birth_date_problem(
    birth_date: dt.date,
    today: dt.date,
    min_age: int = DEFAULT_MIN_AGE,
    max_age: int = DEFAULT_MAX_AGE,
) -> str:
    """Why the birth date is implausible, or "" when it is fine."""
    if birth_date > today:
        return "birth date is in the future"
    age = age_on(birth_date, today)
    if age < min_age:
        return f"birth date implies age {age}, below the minimum of {min_age}"
    if age > max_age:
        return f"birth date implies age {age}, above the maximum of {max_age}"
    return ""
