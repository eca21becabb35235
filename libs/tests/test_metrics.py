"""The metrics layer on its own: the RPC histogram and polled gauges as Prometheus reads them."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from opentelemetry.sdk.resources import Resource
from prometheus_client import generate_latest

from svod_runtime.metrics import LoopLag, ServiceMetrics, labels


def exposition(metrics: ServiceMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_calls_are_counted_by_method_and_status_and_health_checks_are_not() -> None:
    metrics = ServiceMetrics("unit", Resource.create({"service.name": "svod-unit"}))
    metrics.rpc.finished("/svod.profile.v1.ProfileService/GetProfile", grpc.StatusCode.OK, 0.002)
    metrics.rpc.finished("/svod.profile.v1.ProfileService/GetProfile", grpc.StatusCode.OK, 0.004)
    metrics.rpc.finished(
        "/svod.profile.v1.ProfileService/GetProfile", grpc.StatusCode.NOT_FOUND, 0.001
    )
    metrics.rpc.finished("/grpc.health.v1.Health/Check", grpc.StatusCode.OK, 0.0001)
    text = exposition(metrics)
    ok = (
        'rpc_server_call_duration_seconds_count{rpc_method="svod.profile.v1.ProfileService/'
        'GetProfile",rpc_response_status_code="OK",rpc_system_name="grpc"} 2.0'
    )
    assert ok in text
    assert 'rpc_response_status_code="NOT_FOUND",rpc_system_name="grpc"} 1.0' in text
    assert "Health" not in text
    assert 'le="0.0025"' in text  # seconds, not the SDK's default millisecond buckets


def test_polled_gauges_keep_a_series_at_zero_once_seen() -> None:
    metrics = ServiceMetrics("unit", Resource.create({}), poll_s=0.01)
    depth = metrics.polled_gauge("svod.outbox.depth", "{message}", "waiting")
    rounds = iter([{labels(topic="a"): 3.0, labels(topic="b"): 1.0}, {labels(topic="b"): 2.0}])

    async def poll() -> None:
        depth.set(next(rounds))

    metrics.add_poller("test", poll)
    asyncio.run(metrics.poll_once())
    assert 'svod_outbox_depth{topic="a"} 3.0' in exposition(metrics)
    asyncio.run(metrics.poll_once())
    text = exposition(metrics)
    assert 'svod_outbox_depth{topic="a"} 0.0' in text
    assert 'svod_outbox_depth{topic="b"} 2.0' in text


def test_a_failing_poller_keeps_the_last_values() -> None:
    metrics = ServiceMetrics("unit", Resource.create({}))
    gauge = metrics.polled_gauge("svod.identity.review_queue.depth", "{item}", "open")
    gauge.set({(): 7.0})

    async def broken() -> None:
        raise ConnectionError("database away")

    metrics.add_poller("broken", broken)
    asyncio.run(metrics.poll_once())
    assert "svod_identity_review_queue_depth 7.0" in exposition(metrics)


def test_metrics_stay_on_when_opentelemetry_tracing_is_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")  # what the chart sets with otel off
    metrics = ServiceMetrics("unit", Resource.create({}))
    metrics.rpc.finished("/svod.quality.v1.QualityService/GetProfileScore", grpc.StatusCode.OK, 1)
    assert "rpc_server_call_duration_seconds_count" in exposition(metrics)


def test_the_loop_lag_shows_a_stretch_that_held_the_event_loop() -> None:
    metrics = ServiceMetrics("unit", Resource.create({}))
    lag = LoopLag(metrics.meter, interval_s=0.01)

    async def scenario() -> None:
        sampler = asyncio.create_task(lag.run())
        await asyncio.sleep(0.05)  # a few samples of an idle loop
        time.sleep(0.3)  # a stretch of work that never gives the loop back
        await asyncio.sleep(0.05)
        sampler.cancel()

    asyncio.run(scenario())
    text = exposition(metrics)
    count = _sample(text, "svod_runtime_event_loop_lag_seconds_count")
    under_a_quarter = _sample(text, 'svod_runtime_event_loop_lag_seconds_bucket{le="0.25"}')
    # Several samples; the one asleep across the stretch waited for it (over 0.25 s), and the
    # lag's sum holds the stretch.
    assert count >= 4
    assert count - under_a_quarter >= 1
    assert _sample(text, "svod_runtime_event_loop_lag_seconds_sum") >= 0.28


def _sample(text: str, series: str) -> float:
    return next(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series + " ")
    )
