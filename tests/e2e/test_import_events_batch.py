"""`svod import events FILE` through ingestion's event import and profile's set-based event fold
(issue 22), against the five services as processes on databases of their own:

- the same customers and the same events file imported through the batch path into one suite
  and through the stream path (TrackStream, each event attributed and applied on its own) into
  another give every customer the same metrics (GetProfile), and every attributed event is
  delivered (GetRecordStatus);
- importing the file again changes nothing (every line a duplicate, the metrics as they were);
- an event whose customer is unknown is not lost: it is handed to the streaming delivery and
  held unattributed (ListUnattributedEvents, GetRecordStatus);
- a segment on the order count has the customers the imported orders put in it;
- profile and ingestion killed (SIGKILL) while the import's job runs: it finishes after the
  restarts and every event is counted once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod.segmentation.v1 import segmentation_pb2 as seg
from svod.segmentation.v1 import segmentation_pb2_grpc
from svod_cli.suite import ProcessSuite
from svod_runtime.config import SERVICES
from tests.faults.harness import kill, process_suite, restart
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

# A short grace period: an event nobody's identifiers name is held within seconds.
ENV = {"SVOD_OUTBOX_LEASE_S": "2", "SVOD_UNKNOWN_CUSTOMER_GRACE_S": "1"}
FIRST = ["Анна", "Мария", "Ольга", "Иван", "Пётр", "Сергей"]
LAST = ["Смирнова", "Иванова", "Кузнецова", "Попова", "Соколова"]
UNKNOWN = 3


def people(count: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """(phone, IdentifyRequest as proto JSON) of ``count`` people, one record each."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        phone = f"+79{seed:02d}{n * 7919 + 1234567:07d}"
        out.append(
            (
                phone,
                {
                    "record_ref": {"source": "crm", "message_id": f"c-{n}"},
                    "record": {
                        "identifiers": [{"type": "IDENTIFIER_TYPE_PHONE", "value": phone}],
                        "name": {"first_name": rng.choice(FIRST), "last_name": rng.choice(LAST)},
                    },
                },
            )
        )
    return out


def orders(phones: list[str], seed: int) -> list[dict[str, Any]]:
    """TrackRequests (proto JSON): 0-6 orders per person (some with lines, a return now and
    then), then UNKNOWN orders of phones nobody has, shuffled."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for p, phone in enumerate(phones):
        for n in range(rng.randrange(7)):
            kind = "EVENT_TYPE_ORDER_RETURNED" if rng.random() < 0.1 else "EVENT_TYPE_ORDER_PLACED"
            event: dict[str, Any] = {
                "type": kind,
                "occurred_time": f"2026-{1 + rng.randrange(11):02d}-{1 + rng.randrange(28):02d}"
                f"T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z",
                "identifiers": [{"type": "IDENTIFIER_TYPE_PHONE", "value": phone}],
                "order_id": f"o-{p}-{n}",
                "total": {"currency_code": "RUB", "units": str(100 + rng.randrange(9000))},
            }
            if rng.random() < 0.5:
                event["lines"] = [
                    {
                        "sku": f"sku-{rng.randrange(50)}",
                        "category": rng.choice(["shoes", "bags", "coats"]),
                        "quantity": 1 + rng.randrange(3),
                        "unit_price": {"currency_code": "RUB", "units": "500"},
                    }
                ]
            events.append(
                {
                    "record_ref": {"source": "shop", "message_id": f"e-{p}-{n}"},
                    "channel": "SOURCE_CHANNEL_WEB",
                    "event": event,
                }
            )
    for n in range(UNKNOWN):
        events.append(
            {
                "record_ref": {"source": "shop", "message_id": f"unknown-{n}"},
                "channel": "SOURCE_CHANNEL_WEB",
                "event": {
                    "type": "EVENT_TYPE_ORDER_PLACED",
                    "occurred_time": "2026-06-01T10:00:00Z",
                    "identifiers": [
                        {"type": "IDENTIFIER_TYPE_PHONE", "value": f"+7999555{n * 37 + 4321:04d}"}
                    ],
                    "order_id": f"unknown-{n}",
                    "total": {"currency_code": "RUB", "units": "700"},
                },
            }
        )
    rng.shuffle(events)
    return events


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def svod_import(
    suite: ProcessSuite, kind: str, *args: str | Path, held_ok: bool = False
) -> dict[str, Any]:
    """The command's JSON; exit 0 (or 1 when ``held_ok``: --wait of the stream path counts
    the held unknown orders as not delivered)."""
    env = {**suite.env, **{f"SVOD_{s.upper()}_TARGET": suite.target(s) for s in SERVICES}}
    env.pop("SVOD_API_KEY", None)
    ran = subprocess.run(
        [sys.executable, "-m", "svod_cli", "import", kind, *map(str, args), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert ran.returncode in ((0, 1) if held_ok else (0,)), ran.stdout + ran.stderr
    return dict(json.loads(ran.stdout))


def metrics(suite: ProcessSuite, phones: list[str]) -> dict[str, dict[str, Any]]:
    """Each person's profile metrics, by phone (customer ids differ between suites)."""
    out: dict[str, dict[str, Any]] = {}
    with grpc.insecure_channel(suite.target("profile")) as channel:
        stub = profile_pb2_grpc.ProfileServiceStub(channel)
        for phone in phones:
            profile = stub.GetProfile(
                profile_pb2.GetProfileRequest(
                    identifier=common_pb2.Identifier(
                        type=common_pb2.IDENTIFIER_TYPE_PHONE, value=phone
                    )
                ),
                timeout=10,
            )
            out[phone] = json_format.MessageToDict(
                profile.metrics, preserving_proto_field_name=True
            )
            out[phone]["customer_id"] = profile.customer_id
    return out


def statuses(suite: ProcessSuite, refs: list[tuple[str, str]]) -> list[ingestion_pb2.RecordStatus]:
    with grpc.insecure_channel(suite.target("ingestion")) as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
        return [
            stub.GetRecordStatus(
                ingestion_pb2.GetRecordStatusRequest(
                    record_ref=common_pb2.RecordRef(source=s, message_id=m)
                ),
                timeout=10,
            )
            for s, m in refs
        ]


@pytest.fixture(scope="module")
def batch_suite(postgres_admin_url: str) -> Iterator[ProcessSuite]:
    with process_suite(postgres_admin_url, ENV, prefix="svod_evib") as suite:
        yield suite


@pytest.fixture(scope="module")
def stream_suite(postgres_admin_url: str) -> Iterator[ProcessSuite]:
    with process_suite(postgres_admin_url, ENV, prefix="svod_evis") as suite:
        yield suite


def test_batch_and_stream_paths_give_the_same_metrics_hold_the_unknown_and_fill_segments(
    batch_suite: ProcessSuite, stream_suite: ProcessSuite, tmp_path: Path
) -> None:
    persons = people(80, seed=31)
    phones = [phone for phone, _ in persons]
    customers = write_jsonl(tmp_path / "customers.jsonl", [record for _, record in persons])
    for suite, name in ((batch_suite, "b"), (stream_suite, "s")):
        done = svod_import(
            suite, "customers", customers, "--wait", "--checkpoint", tmp_path / f"c{name}.json"
        )
        assert done["accepted"] == len(persons), done
    # A segment of regulars in the batch suite, before the history arrives.
    with grpc.insecure_channel(batch_suite.target("segmentation")) as channel:
        segmentation = segmentation_pb2_grpc.SegmentationServiceStub(channel)
        segment = segmentation.CreateSegment(
            seg.CreateSegmentRequest(
                segment=seg.Segment(
                    segment_id="imported-regulars",
                    display_name="Regulars (imported history)",
                    rule=seg.RuleNode(
                        field=seg.FieldCondition(
                            field="metrics.order_count", operator="ge", values=["3"]
                        )
                    ),
                )
            ),
            timeout=30,
        ).segment_id

    rows = orders(phones, seed=32)
    path = write_jsonl(tmp_path / "orders.jsonl", rows)
    known = [r for r in rows if not r["record_ref"]["message_id"].startswith("unknown-")]
    batch = svod_import(
        batch_suite,
        "events",
        path,
        "--path",
        "batch",
        "--wait",
        "--checkpoint",
        tmp_path / "b",
        held_ok=True,
    )
    job = batch["import"]
    assert batch["path"] == "batch" and batch["accepted"] == len(rows), batch
    assert batch["rejected_count"] == 0 and batch["handed_over"] == UNKNOWN, batch
    assert job["state"] == "succeeded" and job["events_handed_over"] == UNKNOWN, job
    assert job["events_staged"] == len(known) == job["delivered"], job
    assert job["events_applied"] == len(known) and job["failed"] == 0, job
    # --wait follows every event, as the stream path's does: the unknown orders are held.
    assert batch["delivered"] == len(known) and batch["pending"] == 0, batch
    assert {f["state"] for f in batch["failed"]} == {"STATE_UNATTRIBUTED"}, batch
    stream = svod_import(
        stream_suite,
        "events",
        path,
        "--path",
        "stream",
        "--wait",
        "--checkpoint",
        tmp_path / "s",
        held_ok=True,
    )
    assert stream["accepted"] == len(rows) and stream["delivered"] == len(known), stream
    assert {f["state"] for f in stream["failed"]} == {"STATE_UNATTRIBUTED"}, stream

    by_batch = metrics(batch_suite, phones)
    by_stream = metrics(stream_suite, phones)
    assert sum(int(m.get("order_count", 0)) for m in by_batch.values()) > len(phones)
    for phone in phones:
        mine, theirs = dict(by_batch[phone]), dict(by_stream[phone])
        mine.pop("customer_id")
        theirs.pop("customer_id")
        assert mine == theirs, (phone, mine, theirs)
    refs = [(r["record_ref"]["source"], r["record_ref"]["message_id"]) for r in known]
    delivered = statuses(batch_suite, refs)
    assert all(s.state == ingestion_pb2.RecordStatus.STATE_DELIVERED for s in delivered)
    assert {s.customer_id for s in delivered} <= {m["customer_id"] for m in by_batch.values()}

    # The unknown customers' orders: handed over, then held (not lost).
    unknown = [("shop", f"unknown-{n}") for n in range(UNKNOWN)]
    with grpc.insecure_channel(batch_suite.target("ingestion")) as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)

        def held() -> set[str]:
            reply = stub.ListUnattributedEvents(
                ingestion_pb2.ListUnattributedEventsRequest(page_size=1000), timeout=10
            )
            return {e.record_ref.message_id for e in reply.events}

        wait_until(lambda: {m for _, m in unknown} <= held(), 60, "the unknown orders held", 0.5)
    for status in statuses(batch_suite, unknown):
        assert status.state == ingestion_pb2.RecordStatus.STATE_UNATTRIBUTED, status
        assert status.attribution_issue == ingestion_pb2.ATTRIBUTION_ISSUE_UNKNOWN_CUSTOMER, status

    # Segments: the customers with 3 orders or more (returns not counted) are members.
    regulars = {m["customer_id"] for m in by_batch.values() if int(m.get("order_count", 0)) >= 3}
    assert regulars
    with grpc.insecure_channel(batch_suite.target("segmentation")) as channel:
        segmentation = segmentation_pb2_grpc.SegmentationServiceStub(channel)

        def members() -> set[str]:
            return {
                c
                for c in (m["customer_id"] for m in by_batch.values())
                if segment
                in segmentation.GetCustomerSegments(
                    seg.GetCustomerSegmentsRequest(customer_id=c), timeout=10
                ).segment_ids
            }

        wait_until(lambda: members() == regulars, 120, "the regulars in the segment", 1.0)

    # The same file again (a new import of it): every line a duplicate, nothing changes.
    again = svod_import(
        batch_suite,
        "events",
        path,
        "--restart",
        "--wait",
        "--checkpoint",
        tmp_path / "b",
        held_ok=True,
    )
    assert (again["accepted"], again["duplicates"]) == (0, len(rows)), again
    assert again["import"]["state"] == "succeeded", again
    assert again["import"]["events_applied"] == 0 and again["handed_over"] == 0, again
    assert metrics(batch_suite, phones) == by_batch


def test_profile_and_ingestion_killed_during_the_job_count_every_event_once(
    batch_suite: ProcessSuite, tmp_path: Path
) -> None:
    """SIGKILL of profile and then ingestion while the event import's job runs (profile
    folding, ingestion polling it): after both restart the job is taken over and finishes, and
    every event is in the metrics exactly once - the fold's transaction either happened or not,
    and the job's second commit finds the first attempt's work (or does it)."""
    persons = people(400, seed=41)
    for _, record in persons:
        record["record_ref"]["source"] = "crm-kill"
    phones = [phone for phone, _ in persons]
    customers = write_jsonl(tmp_path / "customers.jsonl", [record for _, record in persons])
    staged = svod_import(batch_suite, "customers", customers, "--wait")
    assert staged["accepted"] == len(persons), staged
    rows = [r for r in orders(phones, seed=42) if not r["event"]["order_id"].startswith("unknown")]
    for row in rows:
        row["record_ref"]["source"] = "shop-kill"
    placed: dict[str, int] = {}
    for row in rows:
        if row["event"]["type"] == "EVENT_TYPE_ORDER_PLACED":
            phone = row["event"]["identifiers"][0]["value"]
            placed[phone] = placed.get(phone, 0) + 1
    path = write_jsonl(tmp_path / "orders-kill.jsonl", rows)
    checkpoint = tmp_path / "orders-kill.checkpoint"
    # Staged first (the limit stops the command before its commit), then committed by the
    # same import resumed while profile is stopped: the job is then surely running when
    # profile is killed (killed only after the command returned, a job of this size had
    # sometimes finished already under a heavy load).
    staged_only = svod_import(
        batch_suite,
        "events",
        path,
        "--path",
        "batch",
        "--checkpoint",
        checkpoint,
        "--limit",
        str(len(rows)),
    )
    assert staged_only["accepted"] == len(rows) and staged_only["handed_over"] == 0, staged_only
    # A limit of the file's length stops before the commit too: the job has not started.
    assert "import" not in staged_only and not staged_only["complete"], staged_only
    profile = batch_suite.processes["profile"]
    os.kill(profile.pid, signal.SIGSTOP)
    import_id = ""

    def job() -> ingestion_pb2.EventImport:
        with grpc.insecure_channel(batch_suite.target("ingestion")) as channel:
            return ingestion_pb2_grpc.IngestionServiceStub(channel).GetEventImport(
                ingestion_pb2.GetEventImportRequest(import_id=import_id), timeout=10
            )

    try:
        committed = svod_import(
            batch_suite, "events", path, "--path", "batch", "--checkpoint", checkpoint
        )
        import_id = committed["import_id"]
        assert job().state == ingestion_pb2.EventImport.STATE_RUNNING
    finally:
        os.kill(profile.pid, signal.SIGCONT)
    # Killed while the job runs: profile first (its fold cut off, or its answer lost: the
    # job asks again a second after the commit's answer), then ingestion (the job's lease
    # left behind, to be taken over after it expires).
    time.sleep(0.1)
    kill(batch_suite, "profile")
    time.sleep(0.3)
    kill(batch_suite, "ingestion")
    restart(batch_suite, "profile")
    restart(batch_suite, "ingestion")
    done = wait_until(
        lambda: (j := job()).state == ingestion_pb2.EventImport.STATE_SUCCEEDED and j,
        180,
        "the import finished after the restarts",
        0.5,
    )
    assert done.events_staged == len(rows) == done.records_delivered, done
    assert done.records_failed == 0, done
    counted = metrics(batch_suite, phones)
    for phone in phones:
        assert int(counted[phone].get("order_count", 0)) == placed.get(phone, 0), phone
    refs = [(r["record_ref"]["source"], r["record_ref"]["message_id"]) for r in rows]
    assert all(
        s.state == ingestion_pb2.RecordStatus.STATE_DELIVERED for s in statuses(batch_suite, refs)
    )
