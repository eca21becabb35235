"""Settings of the quality service beyond the shared ServiceConfig (from the environment)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import Field, field_validator

from svod_runtime.settings import SettingsModel


class QualitySettings(SettingsModel):
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        validation_alias="SVOD_QUALITY_WORKERS",
        description="Worker processes for large StandardizeBatch calls (0: one thread); "
        "default the CPU count.",
    )
    freshness_days: int = Field(
        365,
        validation_alias="SVOD_QUALITY_FRESHNESS_DAYS",
        description="Contact data older than this counts as stale.",
    )
    refresh_interval_s: float = Field(
        3600.0,
        validation_alias="SVOD_QUALITY_REFRESH_INTERVAL_S",
        description="How often to check that today's report snapshot exists (0: never).",
    )
    refresh_first_delay_s: float = Field(
        300.0,
        validation_alias="SVOD_QUALITY_REFRESH_FIRST_DELAY_S",
        description="The first daily check waits this long after start (a fresh suite settles).",
    )
    refresh_timeout_s: float = Field(
        900.0,
        validation_alias="SVOD_QUALITY_REFRESH_TIMEOUT_S",
        description="Deadline of the StreamProfiles read of a refresh.",
    )

    @field_validator("workers")
    @classmethod
    def _no_fewer_than_none(cls, workers: int) -> int:
        return max(0, workers)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> QualitySettings:
        return cls.load(env)
