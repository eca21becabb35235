"""Logging setup: one JSON object per line (or plain text for people), never personal data."""

from __future__ import annotations

import json
import logging
import sys

from pydantic import Field

from svod_runtime.settings import SettingsModel


class LogSettings(SettingsModel):
    level: str = Field(
        "INFO",
        validation_alias="SVOD_LOG_LEVEL",
        description="Least severe level logged (DEBUG, INFO, WARNING ...).",
    )
    format: str = Field(
        "text",
        validation_alias="SVOD_LOG_FORMAT",
        description="json: one JSON object per line; anything else: plain text.",
    )


_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the structured fields appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


def setup_logging(service: str) -> None:
    settings = LogSettings.load()
    level = settings.level.upper()
    handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(f"%(asctime)s {service} %(levelname)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
