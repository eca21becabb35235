"""When identity fits its match model by itself (``domain/matching/autofit.py``), and the loop
that asks (``service_layer/autofit.py``)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

import pytest

from svod_identity.domain.matching.autofit import (
    AUTOMATIC_FIT_ACTOR,
    STARTING_MODEL_ACTOR,
    AutoFitPolicy,
    looked_at,
)
from svod_identity.domain.matching.model import MatchModel, default_model
from svod_identity.service_layer import autofit
from svod_identity.service_layer.autofit import ModelAutoFit
from svod_identity.service_layer.import_fits import ImportFits
from svod_identity.service_layer.use_cases import AutoFitLook, ModelInfo

POLICY = AutoFitPolicy(first_at_records=2_000)


def fitted_at(records: int) -> MatchModel:
    return replace(default_model(), trained_pairs=5_000, fitted_records=records)


def test_the_starting_model_is_fitted_once_the_graph_holds_enough_records() -> None:
    assert not POLICY.due(1_999, default_model(), STARTING_MODEL_ACTOR)
    assert POLICY.due(2_000, default_model(), STARTING_MODEL_ACTOR)


def test_an_automatic_fit_comes_again_when_the_graph_has_doubled() -> None:
    model = fitted_at(3_000)
    assert POLICY.next_fit_at(model) == 6_000
    assert not POLICY.due(5_999, model, AUTOMATIC_FIT_ACTOR)
    assert POLICY.due(6_000, model, AUTOMATIC_FIT_ACTOR)


def test_an_operators_model_is_never_replaced() -> None:
    """A fit by RefitMatchModel (its actor) or a model loaded as JSON stays however the graph
    grows, whatever provenance its JSON carries."""
    for model in (fitted_at(100), default_model()):
        assert not POLICY.may_replace("analyst@shop")
        assert not POLICY.due(10_000_000, model, "analyst@shop")


def test_a_fit_that_changed_the_model_of_a_small_graph_calls_for_a_reresolution() -> None:
    """Records placed before a fit were placed with the model it replaced: while the graph is
    small, the fitted model places them again. Not for a fit that kept the model (a graph of
    distinct people), nor for a graph over the bound, nor with the bound at 0."""
    policy = AutoFitPolicy(first_at_records=2_000, reresolve_up_to_records=50_000)
    starting = default_model()
    fitted = replace(fitted_at(4_000), m={**starting.m, "phone": {"agree": 0.5}})
    assert policy.reresolves(fitted, starting)
    assert not policy.reresolves(looked_at(starting, 4_000), starting)
    assert not policy.reresolves(replace(fitted, fitted_records=50_001), starting)
    assert not POLICY.reresolves(fitted, starting)  # the bound defaults to 0: none


def test_zero_records_turns_automatic_fits_off() -> None:
    off = AutoFitPolicy(first_at_records=0)
    assert not off.enabled
    assert not off.due(10_000_000, default_model(), STARTING_MODEL_ACTOR)


def test_the_records_count_survives_the_models_json() -> None:
    model = fitted_at(12_345)
    assert MatchModel.from_json(model.to_json()).fitted_records == 12_345
    assert MatchModel.from_dict({"prior": 0.1}).fitted_records == 0  # stored before it existed


class Failing:
    calls = 0
    records_resolved = 0

    async def look_for_autofit(self, policy: AutoFitPolicy) -> AutoFitLook:
        self.calls += 1
        raise KeyError(("Ольга", "Смирнова", "+79262477202"))  # as a cache's miss says it


def test_a_failed_fit_is_logged_without_its_text_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = Failing()
    loop = ModelAutoFit(service, POLICY, every_s=0.01)

    async def a_few_looks() -> None:
        task = asyncio.create_task(loop.run())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.ERROR):
        asyncio.run(a_few_looks())
    assert service.calls >= 2
    assert "fitting the match model automatically failed (KeyError)" in caplog.text
    assert "Смирнова" not in caplog.text and "+7926" not in caplog.text  # personal data


def test_the_loop_does_nothing_when_automatic_fits_are_off() -> None:
    service = Failing()
    asyncio.run(asyncio.wait_for(ModelAutoFit(service, AutoFitPolicy(0)).run(), timeout=1))
    assert service.calls == 0


class Growing:
    """A graph 100 records short of its next fit at the first look, with the time of each look."""

    def __init__(self) -> None:
        self.records_resolved = 0
        self.looks: list[float] = []

    async def look_for_autofit(self, policy: AutoFitPolicy) -> AutoFitLook:
        self.looks.append(time.monotonic())
        return AutoFitLook(None, 100 if len(self.looks) == 1 else None)


def test_the_loop_looks_as_soon_as_the_records_resolved_may_make_a_fit_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not at its next regular look (an hour here): a graph filling at 1,000 records a second
    would be placed past two doublings by then."""
    monkeypatch.setattr(autofit, "NUDGE_EVERY_S", 0.01)
    service = Growing()
    loop = ModelAutoFit(service, POLICY, every_s=3_600)

    async def resolving() -> float:
        task = asyncio.create_task(loop.run())
        await asyncio.sleep(0.1)
        service.records_resolved += 99  # one short: no look yet
        await asyncio.sleep(0.1)
        assert len(service.looks) == 1
        service.records_resolved += 1
        resolved_at = time.monotonic()
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return resolved_at

    resolved_at = asyncio.run(resolving())
    assert len(service.looks) == 2  # the second found no fit to come: back to the hour
    assert service.looks[1] - resolved_at < 0.1


def started_with(model: MatchModel, created_by: str) -> ModelInfo:
    return ModelInfo(1, model, model.trained_pairs, None, created_by)


def test_an_imports_windows_end_where_records_streamed_would_get_a_fit() -> None:
    """On a fresh graph the first window ends at 2,000 records; after a fit at 4,000 the next
    ends at 8,000; a window never goes past its largest size."""
    fits = ImportFits(POLICY, started_with(default_model(), STARTING_MODEL_ACTOR), (0.9, 0.5), 0)
    assert fits.window(100_000) == 2_000
    fits.fitted, fits.records = fitted_at(4_000), 4_000
    assert fits.window(100_000) == 4_000
    assert fits.window(1_000) == 1_000
    assert fits.model.link_threshold == 0.9  # the rules' thresholds, whichever model


def test_an_import_over_an_operators_model_places_in_full_windows_and_never_fits() -> None:
    fits = ImportFits(POLICY, started_with(fitted_at(100), "analyst@shop"), (0.9, 0.5), 0)
    assert fits.window(100_000) == 100_000

    assert not fits.count(50_000)
    assert fits.fitted is None and fits.records == 50_000


def test_a_fit_stands_only_on_matches_enough_to_estimate_from() -> None:
    """FEBRL4's set A alone (no person twice): 14 expected matches in 695 pairs."""
    few = replace(default_model(), prior=0.0201, trained_pairs=695)
    enough = replace(default_model(), prior=0.1244, trained_pairs=6_093)  # households, 2,000
    assert not POLICY.stands(few)
    assert POLICY.stands(enough)


def test_a_fit_whose_matches_are_not_people_does_not_stand() -> None:
    """EM on a graph of distinct people (the benchmark's loaded million) took pairs sharing a
    birth date and a city for matches: most of them of other names."""
    base = default_model()
    m = {**base.m, "first_name": {**base.m["first_name"], "exact": 0.017, "disagree": 0.981}}
    birthday_twins = replace(base, m=m, prior=0.127, trained_pairs=50_000)
    assert not POLICY.stands(birthday_twins)
    assert POLICY.stands(replace(base, prior=0.127, trained_pairs=50_000))
