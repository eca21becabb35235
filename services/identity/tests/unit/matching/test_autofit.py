"""When identity fits its match model by itself (``domain/matching/autofit.py``), and the loop
that asks (``service_layer/autofit.py``)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from svod_identity.domain.matching.autofit import (
    AUTOMATIC_FIT_ACTOR,
    STARTING_MODEL_ACTOR,
    AutoFitPolicy,
)
from svod_identity.domain.matching.model import MatchModel, default_model
from svod_identity.service_layer.autofit import ModelAutoFit
from svod_identity.service_layer.use_cases import ModelInfo

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

    async def autofit_model(self, policy: AutoFitPolicy) -> ModelInfo | None:
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
