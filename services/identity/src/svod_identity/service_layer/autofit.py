"""The background loop that lets identity fit its match model by itself
(``domain/matching/autofit.py`` says when)."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from svod_identity.domain.matching.autofit import AutoFitPolicy
from svod_identity.service_layer.use_cases import ModelInfo

log = logging.getLogger(__name__)

# A look every 10 s: a graph filling at ~1,000 records a second crosses a doubling between two
# looks only while it is under ~10,000 records; each look is one count of the records (and
# none once an operator's model is in force).
CHECK_EVERY_S = 10.0


class FitsModels(Protocol):
    async def autofit_model(self, policy: AutoFitPolicy) -> ModelInfo | None: ...


class ModelAutoFit:
    def __init__(
        self, service: FitsModels, policy: AutoFitPolicy, every_s: float | None = None
    ) -> None:
        self.service = service
        self.policy = policy
        self.every_s = CHECK_EVERY_S if every_s is None else every_s

    async def run(self) -> None:
        """Looks every ``every_s`` seconds until cancelled; a failed fit is logged and tried
        again at the next look."""
        if not self.policy.enabled:
            return
        while True:
            await self.once()
            await asyncio.sleep(self.every_s)

    async def once(self) -> ModelInfo | None:
        try:
            info = await self.service.autofit_model(self.policy)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the loop outlives any failure
            # The error's kind only: its text or traceback may quote records (personal data).
            log.error(
                "fitting the match model automatically failed (%s); tried again at the next look",
                type(error).__name__,
            )
            return None
        if info is not None:
            log.info(
                "match model fitted automatically",
                extra={
                    "version": info.version,
                    "records": info.model.fitted_records,
                    "pairs": info.trained_pairs,
                },
            )
        return info
