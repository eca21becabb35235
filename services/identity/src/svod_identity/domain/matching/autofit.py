"""When identity fits its match model by itself.

Until somebody calls ``RefitMatchModel`` the service matches with the starting model, whose
weights EM estimated on generated sets, not on this service's data (``model.STARTING_M``), and
the rules that need weights this base's data gave (rare names, rare logins, married names, the
full-name holders' fetch, a place read as telling) stay off. An operator who never refits keeps
that model for good. So identity fits the model itself - the same EM over its own candidate
pairs, and the same term frequencies, as ``RefitMatchModel`` - once the graph holds
``first_at_records`` records, and again each time the graph has grown ``growth`` times since
the last automatic fit. A model an operator fitted or loaded is never replaced.

On by default at ``SUGGESTED_FIRST_FIT_RECORDS`` (``SVOD_IDENTITY_MODEL_AUTOFIT_RECORDS``; 0
turns it off). Records streamed are placed by the model in force when they arrive; an import
fits at the same sizes of the graph between its windows (``service_layer/import_fits.py``), so
the same records streamed and imported are placed with models fitted at the same points. The
service looks as soon as the records it resolved may have made a fit due, not only every 10 s
(``service_layer/autofit.py``). What a fit costs on a large graph is bounded: a sample of
``use_cases.AUTOFIT_PAIRS`` pairs drawn from a hashed share of the blocks
(``adapters/export.key_sampling``), the written values counted in SQL.

Measured (offline, ``households`` 20,000 persons / 46,456 records, seed 5353, records in order;
before the starting model was estimated, ``model.py``): the hand-set model throughout F1 0.9315
(P 0.9844, R 0.8840, up to 3 persons in a customer); fitting at 2,000 records and at every
doubling after 0.9387 (P 0.9907, R 0.8919); from 1,000 records 0.9388; one fit over the whole
set before the first record 0.9424 (P 0.9930, R 0.8967, at most 2), which no online service can
do. EM took 0.2 s of CPU at 2,000 records, 4.1 s at 16,000 and 10.3 s at 32,000 (210,000
candidate pairs). Through the API (``bench_accuracy --household-seeds 5353 --seeds --persons
20000 --skip-febrl --no-em``, the same set in ResolveBatch calls of 2,000, load 9-11, one run
each): off P 0.9844 R 0.8834 F1 0.9312; at 2,000 records (fits at 4,000, ~10,000, ... as the 10
s looks found the graph) P 0.9892 R 0.8889 F1 0.9364; customers of 3 persons on both.
On by default with the starting model (session 45, ``bench_accuracy --no-em`` against
``--no-autofit``): FEBRL3 0.8835 -> 0.96-0.98, generator 0.965-0.967 -> 0.972, households 303
0.9402 -> 0.946-0.950, households 8282 / 4343 at 5,000 persons 0.9405 / 0.9365 -> 0.9457 /
0.9435 (benchmarks/results/identity_accuracy_issue21.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from svod_identity.domain.matching.model import MatchModel

# The ``created_by`` of a model identity fitted by itself, and of the starting model.
AUTOMATIC_FIT_ACTOR = "svod-identity:auto-fit"
STARTING_MODEL_ACTOR = "default"
# 2,000 records where it is turned on: the offline figures above gain the same from 1,000;
# fewer than that make EM's sample small (5,195 candidate pairs at 2,000 records).
SUGGESTED_FIRST_FIT_RECORDS = 2_000
GROWTH = 2.0
# An automatic fit stands only where EM found at least this many matches among its pairs (the
# match share times the pairs): against EM's 50 pseudo-counts a level, fewer leave m about the
# anchor's guesses while u and the rules that need a fit turn to this graph. A graph of
# distinct people has nothing to estimate m from: FEBRL4's first 2,000 and 4,000 records (its
# set A, no duplicates) gave 14 and 15 expected matches in 695 and 2,729 pairs, and placing B's
# records with that fit lost 0.002 F1 (0.9242 -> 0.9219 through the API); the sets with people
# in them gave 758 (households 303) and 1,011 (FEBRL3) at 2,000 records.
MIN_FIT_MATCHES = 200
# ...and only where what it calls matches look like one person's records: agreeing on the given
# name and on the surname (a nickname, a typo, a married name count as agreeing) in most pairs.
# On a graph of distinct people EM's match class is some other likeness: on the bulk-loaded
# benchmark graph of a million (benchmarks/identity/loader.py: one record a person, ~5 holders a
# full name) it was the pairs sharing a birth date and a city - 6,355 "matches" of 50,000 pairs,
# 98.1% of them disagreeing on the given name, 74% on the surname. Fits at 2,000 to 8,000
# records of sets with people in them disagreed on the given name in at most 0.8% and on the
# surname in at most 11% (FEBRL3's surnames with typos; the Russian sets under 0.5%).
MAX_NAME_DISAGREEMENT = 0.5
# The setting (the service's, passed on to its batch worker).
AUTOFIT_ENV = "SVOD_IDENTITY_MODEL_AUTOFIT_RECORDS"
# Records placed before a fit stay where the model in force then put them: on a fresh install
# the first thousands with the starting model, estimated on other data. So after a fit that
# changed the model, while the graph is small, identity re-resolves it (a ReresolveAll job of
# its own, ``reresolution_job_id``), and the graph is what the fitted model places. Measured
# (offline, fits from 2,000 records, every record placed again with the last fit against
# records placed as they came): FEBRL3 F1 0.9777 -> 0.9932, FEBRL4 0.9518 -> 0.9907 (its
# first 5,000 records have no duplicates: the fit at 8,000 is the first that stands),
# generator 101 0.9721 -> 0.9726, households 303 0.9492 -> 0.9497, households at 20,000
# persons 5353 / 6464 0.9413 / 0.9412 -> 0.9419 / 0.9418; through the API
# (``bench_accuracy --no-em``) FEBRL3 / FEBRL4 0.9526 / 0.9242 -> 0.9932 / 0.9907. The job
# places the whole graph again, and a second time while it holds the graph's writers out when
# records came meanwhile (as records stream): households 5353's 46,456 records streamed
# (``bench_accuracy``) were re-resolved at 10,000, 16,000, 22,811 and 45,734 records in 4.0,
# 6.7, 10.2 and 23.0 s, and streaming them took 98-110 s against 65 s without. Up to 20,000
# records: at 50,000 the pipeline's 10-minute soak (20,000 customers loaded, then 100
# identify calls/s; ``benchmarks/pipeline``) re-resolved at its fit at 40,000 records, and
# identity with its batch worker took 764 MiB at most (475 without), the lag 8.9 s (1.7),
# an identify call's p99 from accept to the profile 7.8 s (1.2). Beyond the first fits most
# records have been placed with fitted models already.
SUGGESTED_RERESOLVE_UP_TO_RECORDS = 20_000
RERESOLVE_ENV = "SVOD_IDENTITY_MODEL_AUTOFIT_RERESOLVE_RECORDS"


@dataclass(frozen=True)
class AutoFitPolicy:
    """``first_at_records`` 0 turns automatic fits off; ``reresolve_up_to_records``: the
    largest graph re-resolved after a fit that changed the model (0: none)."""

    first_at_records: int
    growth: float = GROWTH
    min_matches: float = MIN_FIT_MATCHES
    reresolve_up_to_records: int = 0

    @property
    def enabled(self) -> bool:
        return self.first_at_records > 0

    def may_replace(self, created_by: str) -> bool:
        """Whether the model in force is one identity may replace: the starting model or one
        it fitted itself (an operator's fit or loaded model stays until the operator acts)."""
        return self.enabled and created_by in (STARTING_MODEL_ACTOR, AUTOMATIC_FIT_ACTOR)

    def next_fit_at(self, model: MatchModel) -> int:
        """The graph's size (records) at which the next automatic fit is due."""
        grown = math.ceil(model.fitted_records * self.growth)
        return max(self.first_at_records, grown)

    def due(self, records: int, model: MatchModel, created_by: str) -> bool:
        return self.may_replace(created_by) and records >= self.next_fit_at(model)

    def stands(self, fitted: MatchModel) -> bool:
        """Whether a fit found matches enough to estimate from (``MIN_FIT_MATCHES``), and
        matches of people (``MAX_NAME_DISAGREEMENT``)."""
        names_agree = all(
            fitted.m.get(name, {}).get("disagree", 0.0) <= MAX_NAME_DISAGREEMENT
            for name in ("first_name", "last_name")
        )
        return names_agree and fitted.prior * fitted.trained_pairs >= self.min_matches

    def reresolves(self, fitted: MatchModel, kept: MatchModel) -> bool:
        """Whether storing ``fitted`` over ``kept`` (the model the graph's records were placed
        with) calls for the graph to be re-resolved: the fit changed the model, and the graph
        is small enough (``SUGGESTED_RERESOLVE_UP_TO_RECORDS``)."""
        return 0 < fitted.fitted_records <= self.reresolve_up_to_records and refitted(fitted, kept)


def refitted(fitted: MatchModel, kept: MatchModel) -> bool:
    """Whether ``fitted`` is another model than ``kept``, not ``kept`` marked with the size
    of the graph it was looked at (``looked_at``)."""
    return replace(fitted, fitted_records=kept.fitted_records) != kept


def reresolution_job_id(version: int) -> str:
    """The re-resolution job queued with an automatic fit stored as model ``version``."""
    return f"auto-fit-v{version}"


def looked_at(kept: MatchModel, records: int) -> MatchModel:
    """The model in force kept after a fit that did not stand, with the graph's size it was
    fitted at: stored so, the next look (of any replica, after a restart too) waits for the
    next doubling instead of fitting again at every look."""
    return replace(kept, fitted_records=records)
