"""What the suite's logs and spans carry, and whether any of it is personal data.

Every log record of the test session (every logger, INFO and up) is kept; the spans come from
the session's in-memory exporter. ``findings`` looks for what must never be there: e-mail
addresses, Russian phone numbers, and Cyrillic words (every person in the tests has a Russian
name; Svod's own texts are English)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

from opentelemetry.sdk.trace import ReadableSpan

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}", re.IGNORECASE)
# +7 916 123-45-67, 79161234567, 8 (916) 123 45 67: a mobile or city number, not inside a hex
# id or a longer run of digits.
PHONE = re.compile(r"(?<![\w+])(?:\+7|7|8)[\s(-]*9\d\d[\s)-]*\d{3}[\s-]*\d{2}[\s-]*\d{2}(?![\w])")
CYRILLIC_WORD = re.compile(r"[А-Яа-яЁё]{2,}")


class LogCollector(logging.Handler):
    """Keeps the text of every record: message, structured fields and traceback."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.texts: list[str] = []
        self._level = logging.WARNING

    def emit(self, record: logging.LogRecord) -> None:
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        text = f"{record.name}: {record.getMessage()} {extras!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]!r}"
        self.texts.append(text)

    def install(self) -> LogCollector:
        root = logging.getLogger()
        self._level = root.level
        root.addHandler(self)
        root.setLevel(min(root.level or logging.WARNING, logging.INFO))
        return self

    def remove(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._level)


def span_texts(spans: Sequence[ReadableSpan]) -> list[str]:
    texts = []
    for span in spans:
        parts = [span.name, repr(dict(span.attributes or {}))]
        if span.status.description:
            parts.append(span.status.description)
        for event in span.events:
            parts += [event.name, repr(dict(event.attributes or {}))]
        texts.append(" ".join(parts))
    return texts


def findings(texts: Iterable[str]) -> list[str]:
    found = []
    for text in texts:
        for kind, pattern in (("e-mail", EMAIL), ("phone", PHONE), ("name", CYRILLIC_WORD)):
            match = pattern.search(text)
            if match:
                start = max(0, match.start() - 80)
                found.append(f"{kind} {match.group(0)!r} in: {text[start : match.end() + 80]}")
    return found
