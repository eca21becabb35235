"""Jitter and ids come from generators of their own: a service's spans, metrics and retries
leave the random module's global state alone (a property test drawing on another thread reads
it), and a forked child never repeats its parent's draws."""

from __future__ import annotations

import os
import random

import grpc

from svod_runtime.outbox import retry_delay
from svod_runtime.own_random import own_random
from svod_runtime.telemetry import Telemetry


def test_spans_and_metrics_leave_the_global_random_state_alone() -> None:
    telemetry = Telemetry("own-random-test")
    announced = telemetry.metrics.meter.create_counter("svod.test.announced")
    before = random.getstate()
    with telemetry.tracer.start_as_current_span("outer"):
        for _ in range(50):
            with telemetry.tracer.start_as_current_span("inner"):
                telemetry.metrics.rpc.finished("/svod.test.v1.T/Call", grpc.StatusCode.OK, 0.01)
                announced.add(3)
    assert random.getstate() == before


def test_a_forked_child_draws_other_numbers_than_its_parent() -> None:
    generator = own_random()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next draw and leave at once
        os.write(writer, generator.getrandbits(64).to_bytes(8, "big"))
        os._exit(0)
    os.close(writer)
    child_draw = int.from_bytes(os.read(reader, 8), "big")
    os.waitpid(pid, 0)
    os.close(reader)
    assert generator.getrandbits(64) != child_draw


def test_retry_pauses_leave_the_global_random_state_alone() -> None:
    before = random.getstate()
    delays = [retry_delay(attempt) for attempt in range(1, 10)]
    assert random.getstate() == before
    assert len(set(delays)) > 1  # still jittered
