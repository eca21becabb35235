"""Loyalty card numbers: one spelling whatever separators a till or a form printed."""

from __future__ import annotations

import re
from typing import Final

# Spaces and dashes group the digits on a printed card; they are not part of the number.
_SEPARATORS: Final = re.compile(r"[\s\-]+")


def normalize_card(raw: str) -> str | None:
    """The number without spaces or dashes, upper-cased; None when nothing else is left."""
    return _SEPARATORS.sub("", raw).upper() or None
