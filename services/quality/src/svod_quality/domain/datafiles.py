"""Reads the word lists shipped in ``svod_quality/domain/data`` (one entry a line, ``#`` comments).

Lists live in files rather than code so they can be reviewed and extended without touching logic.
"""

from __future__ import annotations

from importlib import resources


def read_rows(name: str) -> list[list[str]]:
    """Whitespace-separated fields of each non-blank, non-comment line of a data file."""
    package = resources.files(__package__ or "svod_quality.domain")
    text = package.joinpath("data").joinpath(name).read_text(encoding="utf-8")
    rows: list[list[str]] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            rows.append(line.split())
    return rows


def read_words(name: str) -> frozenset[str]:
    """The first field of each line, lower-cased."""
    return frozenset(row[0].lower() for row in read_rows(name))
