"""The background loop that lets identity fit its match model by itself
(``domain/matching/autofit.py`` says when)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from svod_identity.domain.matching.autofit import AutoFitPolicy
from svod_identity.service_layer.use_cases import AutoFitLook

log = logging.getLogger(__name__)

# A look at the graph every 10 s at most (one count of its records; none once an operator's
# model is in force), and sooner once this service has resolved as many records as the graph
# lacked for the next fit at the last look: watching only the clock, a graph filling at ~1,000
# records a second crossed 2,000 and 4,000 records between two looks, and a set of 5,000
# records (FEBRL3) was placed whole before its first fit.
CHECK_EVERY_S = 10.0
# How often the records this service resolved are compared with what the graph lacked (an
# integer comparison).
NUDGE_EVERY_S = 0.25


class FitsModels(Protocol):
    records_resolved: int

    async def look_for_autofit(self, policy: AutoFitPolicy) -> AutoFitLook: ...


class ModelAutoFit:
    def __init__(
        self, service: FitsModels, policy: AutoFitPolicy, every_s: float | None = None
    ) -> None:
        self.service = service
        self.policy = policy
        self.every_s = CHECK_EVERY_S if every_s is None else every_s

    async def run(self) -> None:
        """Looks until cancelled: every ``every_s`` seconds, or as soon as a fit may be due;
        a failed fit is logged and tried again at the next look."""
        if not self.policy.enabled:
            return
        while True:
            resolved = self.service.records_resolved
            look = await self.once()
            await self._until_worth_a_look(resolved, look.records_to_go)

    async def _until_worth_a_look(self, resolved: int, records_to_go: int | None) -> None:
        """Waits ``every_s`` seconds, or less once the records resolved since ``resolved``
        may have brought the graph to its next fit (other replicas' records are seen at the
        regular look)."""
        started = time.monotonic()
        while time.monotonic() - started < self.every_s:
            await asyncio.sleep(min(NUDGE_EVERY_S, self.every_s))
            if records_to_go is not None and (
                self.service.records_resolved - resolved >= records_to_go
            ):
                return

    async def once(self) -> AutoFitLook:
        try:
            look = await self.service.look_for_autofit(self.policy)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the loop outlives any failure
            # The error's kind only: its text or traceback may quote records (personal data).
            log.error(
                "fitting the match model automatically failed (%s); tried again at the next look",
                type(error).__name__,
            )
            return AutoFitLook(None, None)
        if (info := look.fitted) is not None and not info.trained_pairs:
            # ``AutoFitPolicy.stands``: the model in force kept until the next doubling.
            log.info(
                "match model kept: the automatic fit found too few matches of people",
                extra={"version": info.version, "records": info.model.fitted_records},
            )
        elif info is not None:
            log.info(
                "match model fitted automatically",
                extra={
                    "version": info.version,
                    "records": info.model.fitted_records,
                    "pairs": info.trained_pairs,
                },
            )
        return look
