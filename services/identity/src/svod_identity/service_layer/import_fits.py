"""An import's automatic fits: the same fits at the same sizes of the graph as records streamed
one by one would get (``domain/matching/autofit.py``).

Streamed, identity fits its model when the graph reaches ``first_at_records`` records and at
every doubling after, while no operator's model is in force, and places the records after a
fit with the new model. An import placed every record with the model in force when its job
started: on a fresh install, a million records with the starting model, where the same records
streamed were placed with models fitted on them. So while the model in force is one identity
may replace, an import's windows end where a fit is due; the fit reads the graph in the job's
transaction (the windows written so far included), the windows after it are placed with the
new model, and the last fit is stored as the model in force with the job's writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from svod_identity.domain.matching.autofit import AutoFitPolicy
from svod_identity.domain.matching.model import MatchModel
from svod_identity.service_layer.ports import IdentityUnit
from svod_identity.service_layer.use_cases import (
    ModelInfo,
    auto_fitted,
    fit_inputs,
    store_automatic_fit,
)


@dataclass
class ImportFits:
    policy: AutoFitPolicy
    # The model in force when the job started, as stored (its own thresholds)...
    started_with: ModelInfo
    # ...and the thresholds the rules in force place records with.
    thresholds: tuple[float, float]
    # Records in the graph the job's transaction sees.
    records: int
    # The model of the latest fit (None: none yet).
    fitted: MatchModel | None = None

    @property
    def fitting(self) -> bool:
        return self.policy.may_replace(self.started_with.created_by)

    @property
    def latest(self) -> MatchModel:
        return self.fitted or self.started_with.model

    @property
    def model(self) -> MatchModel:
        """What the next window is placed with."""
        return self.latest.with_thresholds(*self.thresholds)

    def window(self, largest: int) -> int:
        """Records of the next window: at most ``largest``, and no more than the graph lacks
        for the next fit."""
        if not self.fitting:
            return largest
        return max(1, min(largest, self.policy.next_fit_at(self.latest) - self.records))

    def count(self, records_written: int) -> bool:
        """Counts a window's new records; whether the graph has now reached a fit."""
        self.records += records_written
        return self.policy.due(self.records, self.latest, self.started_with.created_by)

    async def fit(self, unit: IdentityUnit) -> None:
        """The model fitted on the graph ``unit`` sees: the next windows are placed with it."""
        inputs = await fit_inputs(unit, self.records)
        self.fitted = await auto_fitted(inputs, self.records, self.latest, self.policy)

    async def store(self, unit: IdentityUnit) -> None:
        """The latest fit stored as the model in force, in the job's transaction - unless a
        model was stored since the job started (an operator's comes first) - with a
        re-resolution queued where a fit changed the model (``AutoFitPolicy.reresolves``):
        the first windows were placed with the model the job started with, as records streamed
        before a fit are."""
        if self.fitted is not None:
            reresolve = self.policy.reresolves(self.fitted, self.started_with.model)
            await store_automatic_fit(unit, self.fitted, self.started_with.version, reresolve)
