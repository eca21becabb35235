"""`svod import customers|events FILE` against a running suite: JSON lines, CSV with a mapping
file and Parquet land as profiles with exact order counts; a bad line is rejected with its line
number while the others land; an interrupted import resumes from its checkpoint without
doubling anything; a stream that cannot reach ingestion is sent again with the same ids."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.protobuf import json_format

from svod.common.v1 import common_pb2
from svod_cli.bulk_import import EVENT_IMPORT_CHUNK
from svod_runtime.config import SERVICES
from tests.builders import identify, random_phone, track, unique
from tests.e2e.test_cli import Ran, Svod, point_at, run_cli
from tests.waiting import wait_until

PHONE = common_pb2.IDENTIFIER_TYPE_PHONE


@pytest.fixture
def svod(suite, monkeypatch) -> Svod:
    point_at(monkeypatch, suite.suite)
    monkeypatch.delenv("SVOD_API_KEY", raising=False)
    return run_cli


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def as_dict(message: Any, *, keep_id: bool = True) -> dict[str, Any]:
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    if not keep_id:
        del data["record_ref"]["message_id"]  # the import derives one from the file
    return dict(data)


def order(source: str, phone: str, *, keep_id: bool = True, total: str = "100") -> dict:
    event = track(
        source,
        common_pb2.EVENT_TYPE_ORDER_PLACED,
        common_pb2.Identifier(type=PHONE, value=phone),
        total=total,
        order_id=unique("o"),
    )
    return as_dict(event, keep_id=keep_id)


def profile(svod: Svod, phone: str) -> dict[str, Any]:
    shown = svod("profile", "get", "--phone", phone, "--json")
    assert shown.code == 0, shown.err
    return shown.json()  # type: ignore[return-value]


def order_count(svod: Svod, phone: str) -> int:
    return int(profile(svod, phone).get("metrics", {}).get("order_count", 0))


def imported(ran: Ran) -> dict[str, Any]:
    assert "Traceback" not in ran.err
    return ran.json()  # type: ignore[return-value]


def test_jsonl_customers_then_events_land_with_exact_order_counts(svod, tmp_path) -> None:
    source = unique("imp")
    phones = [random_phone() for _ in range(5)]
    customers = [
        as_dict(identify(source, phones=(p,), first_name="Анна"), keep_id=i % 2 == 0)
        for i, p in enumerate(phones)
    ]
    people = write_jsonl(tmp_path / "customers.jsonl", customers)
    sent = svod("import", "customers", people, "--wait", "--timeout", "60", "--progress")
    assert sent.code == 0, sent.out + sent.err
    assert "accepted 5, duplicates 0, rejected 0" in sent.out
    assert "delivered 5, failed 0, still pending 0" in sent.out
    assert re.search(r"sent: 5/5 \([\d,]+/s, ETA 0:00:00\)", sent.err), sent.err

    # Orders per customer 0..4; half of the lines carry no message id (derived from the file).
    orders = [
        order(source, phone, keep_id=n % 2 == 1)
        for count, phone in enumerate(phones)
        for n in range(count)
    ]
    events = write_jsonl(tmp_path / "orders.jsonl", orders)
    result = imported(svod("import", "events", events, "--wait", "--timeout", "60", "--json"))
    assert (result["accepted"], result["duplicates"], result["rejected_count"]) == (10, 0, 0)
    assert result["delivered"] == 10 and result["pending"] == 0 and not result["failed"]
    assert result["complete"] and result["last_line"] == 10
    assert [order_count(svod, p) for p in phones] == [0, 1, 2, 3, 4]

    # Again: the checkpoint says it is done; --restart sends every line again as a duplicate.
    again = svod("import", "events", events)
    assert again.code == 0 and "imported already" in again.out
    resent = imported(svod("import", "events", events, "--restart", "--json"))
    assert (resent["accepted"], resent["duplicates"]) == (0, 10)
    assert [order_count(svod, p) for p in phones] == [0, 1, 2, 3, 4]


def test_csv_with_a_yaml_mapping_and_events_with_a_json_mapping(svod, tmp_path) -> None:
    source = unique("till")
    phones = [random_phone() for _ in range(3)]
    surname = "Сомова" + unique("")[2:6]
    (tmp_path / "customers.yaml").write_text(
        "columns:\n"
        "  customer_no: record_ref.message_id\n"
        "  phone: record.identifiers[phone]\n"
        "  card: record.identifiers[loyalty_card]\n"
        "  first_name: record.name.first_name\n"
        "  last_name: record.name.last_name\n"
        "  birthday: record.birth_date\n"
        "  city: record.addresses[0].city\n"
        "  shoe_size: record.attributes.shoe_size\n"
        "values:\n"
        f"  record_ref.source: {source}\n"
        "  channel: pos\n"
        "delimiter: ';'\n",
        encoding="utf-8",
    )
    rows = ["customer_no;phone;card;first_name;last_name;birthday;city;shoe_size"]
    for n, phone in enumerate(phones):
        rows.append(f"c{n}-{source};{phone};;Вера;{surname};14.03.198{n};Тула;3{n}")
    (tmp_path / "customers.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    sent = svod(
        "import",
        "customers",
        tmp_path / "customers.csv",
        "--mapping",
        tmp_path / "customers.yaml",
        "--wait",
        "--timeout",
        "60",
    )
    assert sent.code == 0, sent.out + sent.err
    assert "accepted 3, duplicates 0, rejected 0" in sent.out
    first = profile(svod, phones[0])
    assert surname in json.dumps(first, ensure_ascii=False)
    shown = json.dumps(first, ensure_ascii=False)
    assert '"year": 1980' in shown and "Тула" in shown, shown  # DD.MM.YYYY, the address
    assert first["attributes"]["shoe_size"] == "30"

    (tmp_path / "orders.json").write_text(
        json.dumps(
            {
                "columns": {
                    "order_no": "event.order_id",
                    "phone": "event.identifiers[phone]",
                    "amount": "event.total",
                    "placed_at": "event.occurred_time",
                },
                "values": {"record_ref.source": source, "event.type": "order_placed"},
            }
        ),
        encoding="utf-8",
    )
    lines = ["order_no,phone,amount,placed_at"]
    for count, phone in enumerate(phones, 1):
        for n in range(count):
            lines.append(f'{unique("o")},{phone},"1 234,50",2026-05-0{n + 1} 10:00:00')
    (tmp_path / "orders.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = imported(
        svod(
            "import",
            "events",
            tmp_path / "orders.csv",
            "--mapping",
            tmp_path / "orders.json",
            "--wait",
            "--timeout",
            "60",
            "--json",
        )
    )
    assert (result["accepted"], result["rejected_count"], result["delivered"]) == (6, 0, 6)
    assert [order_count(svod, p) for p in phones] == [1, 2, 3]
    spent = profile(svod, phones[2])["metrics"]["total_spent"]
    assert (int(spent["units"]), spent.get("nanos", 0)) == (3703, 500_000_000)

    # A mapping that names a field the message does not have stops before anything is sent.
    (tmp_path / "typo.yaml").write_text("columns:\n  phone: record.phones\n", encoding="utf-8")
    typo = svod(
        "import",
        "customers",
        tmp_path / "customers.csv",
        "--mapping",
        tmp_path / "typo.yaml",
        "--restart",
    )
    assert typo.code == 2 and "has no field 'phones'" in typo.err


def test_parquet_nested_and_flat_with_a_mapping(svod, tmp_path) -> None:
    source = unique("app")
    phones = [random_phone() for _ in range(3)]
    # Customers: columns named and nested as the message (no mapping).
    people = pa.Table.from_pylist(
        [
            {
                "record_ref": {"source": source, "message_id": f"p{n}"},
                "channel": "SOURCE_CHANNEL_APP",
                "record": {
                    "identifiers": [{"type": "IDENTIFIER_TYPE_PHONE", "value": phone}],
                    "name": {"first_name": "Лев"},
                },
            }
            for n, phone in enumerate(phones)
        ]
    )
    pq.write_table(people, tmp_path / "customers.parquet")
    sent = svod("import", "customers", tmp_path / "customers.parquet", "--wait", "--timeout", "60")
    assert sent.code == 0, sent.out + sent.err
    assert "accepted 3, duplicates 0, rejected 0" in sent.out

    # Orders: flat typed columns with a mapping; no message id column (derived per row).
    import datetime as dt

    orders = pa.Table.from_pylist(
        [
            {
                "phone": phone,
                "order_no": unique("o"),
                "total": 250.0,
                "at": dt.datetime(2026, 4, 1, 9, 30, tzinfo=dt.UTC),
            }
            for count, phone in enumerate(phones, 2)
            for _ in range(count)
        ]
    )
    pq.write_table(orders, tmp_path / "orders.parquet")
    (tmp_path / "orders.yaml").write_text(
        "columns:\n"
        "  phone: event.identifiers[phone]\n"
        "  order_no: event.order_id\n"
        "  total: event.total\n"
        "  at: event.occurred_time\n"
        "values:\n"
        "  event.type: order_placed\n",
        encoding="utf-8",
    )
    result = imported(
        svod(
            "import",
            "events",
            tmp_path / "orders.parquet",
            "--mapping",
            tmp_path / "orders.yaml",
            "--source",
            source,
            "--wait",
            "--timeout",
            "60",
            "--json",
        )
    )
    assert (result["accepted"], result["rejected_count"], result["delivered"]) == (9, 0, 9)
    assert [order_count(svod, p) for p in phones] == [2, 3, 4]


def test_bad_lines_are_rejected_by_line_and_the_rest_land(svod, tmp_path) -> None:
    source = unique("web")
    phones = [random_phone() for _ in range(3)]
    good = [as_dict(identify(source, phones=(p,))) for p in phones]
    bad_email = as_dict(identify(source, emails=("not an e-mail",)))
    lines = [json.dumps(good[0]), "{not json", json.dumps(good[1]), json.dumps(bad_email)]
    lines += [json.dumps({"record_ref": {"source": source}, "recrd": {}}), json.dumps(good[2])]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sent = svod("import", "customers", path, "--wait", "--timeout", "60")
    assert sent.code == 1, sent.out + sent.err  # lines were rejected
    assert "accepted 3, duplicates 0, rejected 3" in sent.out
    assert "  line 2: not JSON" in sent.out
    assert re.search(r"  line 4: record\.identifiers\[0\]\.value: ", sent.out), sent.out
    assert "  line 5: " in sent.out and "recrd" in sent.out
    assert "delivered 3, failed 0, still pending 0" in sent.out
    assert all(profile(svod, p)["customer_id"] for p in phones)

    result = imported(svod("import", "customers", path, "--restart", "--json"))
    assert [r["line"] for r in result["rejected"]] == [2, 4, 5]
    assert result["rejected"][1]["field_violations"][0]["field"] == "record.identifiers[0].value"

    # A cell that does not convert rejects its line alone, naming the field and the column.
    (tmp_path / "m.yaml").write_text(
        "columns:\n  phone: record.identifiers[phone]\n  born: record.birth_date\n"
        f"values:\n  record_ref.source: {source}\n",
        encoding="utf-8",
    )
    other = random_phone()
    (tmp_path / "c.csv").write_text(f"phone,born\n{other},1990-01-02\n{other},someday\n")
    csv_sent = imported(
        svod("import", "customers", tmp_path / "c.csv", "--mapping", tmp_path / "m.yaml", "--json")
    )
    assert csv_sent["accepted"] == 1 and csv_sent["rejected_count"] == 1
    (rejected,) = csv_sent["rejected"]
    assert rejected["line"] == 3
    assert rejected["field_violations"][0]["field"] == "record.birth_date"
    assert "column born" in rejected["field_violations"][0]["description"]

    # Tab-separated with the same mapping (a .tsv file splits on tabs unless it says).
    (tmp_path / "c.tsv").write_text(f"phone\tborn\n{random_phone()}\t02.01.1990\n")
    tsv_sent = imported(
        svod("import", "customers", tmp_path / "c.tsv", "--mapping", tmp_path / "m.yaml", "--json")
    )
    assert (tsv_sent["accepted"], tsv_sent["rejected_count"]) == (1, 0), tsv_sent


def test_an_interrupted_import_resumes_without_duplicates(svod, tmp_path) -> None:
    source = unique("pos")
    phone = random_phone()
    people = write_jsonl(tmp_path / "p.jsonl", [as_dict(identify(source, phones=(phone,)))])
    assert svod("import", "customers", people, "--wait", "--timeout", "60").code == 0
    events = write_jsonl(
        tmp_path / "orders.jsonl", [order(source, phone, keep_id=False) for _ in range(7)]
    )
    checkpoint = tmp_path / "state.json"

    first = imported(
        svod("import", "events", events, "--limit", "3", "--checkpoint", checkpoint, "--json")
    )
    assert (first["accepted"], first["last_line"], first["complete"]) == (3, 3, False)
    saved = json.loads(checkpoint.read_text())
    assert saved["last_line"] == 3 and not saved["complete"]

    # A crash after ingestion answered but before the checkpoint moved: it says line 1.
    saved.update(last_line=1, records_done=1, accepted=1)
    checkpoint.write_text(json.dumps(saved))
    resumed = svod(
        "import", "events", events, "--checkpoint", checkpoint, "--wait", "--json", "--progress"
    )
    result = imported(resumed)
    assert resumed.code == 0, resumed.err
    assert re.search(r"sent: 6/6 \([\d,]+/s, ETA 0:00:00\)", resumed.err), resumed.err
    assert result["resumed_after_line"] == 1 and result["records_this_run"] == 6
    # Lines 2 and 3 went again with the ids derived from the file: duplicates, not new orders
    # (the checkpoint knew of 1 accepted; this run stored 4 and found 2 stored already).
    assert (result["accepted"], result["duplicates"], result["complete"]) == (5, 2, True)
    assert result["delivered"] == 6
    # Line 1 (sent by the first run) is not followed by this one: wait for all seven.
    wait_until(lambda: order_count(svod, phone) >= 7, timeout_s=60, what="7 orders")
    assert order_count(svod, phone) == 7

    # Another content under the same checkpoint is refused, not mixed in.
    events.write_text(events.read_text() + json.dumps(order(source, phone)) + "\n")
    changed = svod("import", "events", events, "--checkpoint", checkpoint)
    assert changed.code == 2 and "changed since" in changed.err


class LateProxy:
    """A TCP port that refuses connections until ``open()``, then forwards to ``target``:
    ingestion unreachable for a while, as in a restart."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.target = (host.strip("[]") or "127.0.0.1", int(port))
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def open(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        server.settimeout(0.2)
        self._server = server
        self._spawn(self._accept)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._spawn(self._pipe, client, upstream)
            self._spawn(self._pipe, upstream, client)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()


@pytest.fixture
def late_ingestion(svod, suite, monkeypatch) -> Iterator[LateProxy]:
    proxy = LateProxy(suite.suite.target("ingestion"))
    monkeypatch.setenv("SVOD_INGESTION_TARGET", f"127.0.0.1:{proxy.port}")
    yield proxy
    proxy.close()


def test_a_stream_that_cannot_reach_ingestion_is_sent_again(late_ingestion, svod, tmp_path):
    source = unique("crm")
    phone = random_phone()
    people = write_jsonl(tmp_path / "p.jsonl", [as_dict(identify(source, phones=(phone,)))])
    # Nothing listens yet: without retries of its own (gRPC's channel retries UNAVAILABLE for
    # up to ~7.6 s) the import gives up, exit 3, nothing acknowledged.
    gave_up = svod("import", "customers", people, "--retries", "0")
    assert gave_up.code == 3, gave_up.out + gave_up.err
    assert "UNAVAILABLE" in gave_up.err and "run the same command again" in gave_up.err

    # Reachable only after 9 s, past the channel's own retries: the import sends it again.
    timer = threading.Timer(9.0, late_ingestion.open)
    timer.start()
    try:
        sent = svod("import", "customers", people, "--json", "--progress")
    finally:
        timer.join()
    result = imported(sent)
    assert sent.code == 0, sent.err
    assert result["accepted"] + result["duplicates"] == 1 and result["retried_streams"] >= 1
    assert "sending again" in sent.err


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_an_import_killed_mid_way_resumes_and_counts_every_order_once(
    suite, svod, tmp_path, stop
) -> None:
    """SIGKILL (or Ctrl-C) while streams are in flight: the re-run resumes after the
    checkpoint's line, the lines stored but not yet in the checkpoint come back as duplicates,
    no order counts twice."""
    source = unique("shop")
    phones = [random_phone() for _ in range(10)]
    people = write_jsonl(
        tmp_path / "p.jsonl", [as_dict(identify(source, phones=(p,))) for p in phones]
    )
    assert svod("import", "customers", people, "--wait", "--timeout", "60").code == 0
    # Three messages of the batch path: two full ones and a half.
    count = EVENT_IMPORT_CHUNK * 5 // 2
    events = write_jsonl(
        tmp_path / "orders.jsonl",
        [order(source, phones[n % len(phones)], keep_id=False) for n in range(count)],
    )
    checkpoint = tmp_path / "orders.state.json"
    env = {
        **os.environ,
        **{f"SVOD_{s.upper()}_TARGET": suite.suite.target(s) for s in SERVICES},
    }
    env.pop("SVOD_API_KEY", None)
    command = [sys.executable, "-m", "svod_cli", "import", "events", str(events)]
    first = subprocess.Popen(
        [*command, "--checkpoint", str(checkpoint)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a test run started in the background (`.ci/run &` from a
        # script) ignores SIGINT, children inherit that, and Python then installs no
        # KeyboardInterrupt handler - the import ran to the end and exited 0.
        preexec_fn=_interruptible,
    )

    def progressed() -> dict[str, Any] | None:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            saved = json.loads(checkpoint.read_text())
            if saved["last_line"] > 0:
                return saved
        assert first.poll() is None, "the import ended before its first checkpoint"
        return None

    saved = wait_until(progressed, 120, "a checkpoint past line 0", 0.01)
    first.send_signal(stop)
    _, said = first.communicate(timeout=180)
    if stop == signal.SIGINT:  # stops at once (streams in flight finish), says where it stood
        assert first.returncode == 130, said
        assert "interrupted after line" in said and "Traceback" not in said, said
    # Where it stood when it stopped: a checkpoint may have been written after the one seen
    # above and before the signal landed (a clean-clone run resumed after the second
    # message, not the first).
    saved = json.loads(checkpoint.read_text())
    assert saved and 0 < saved["last_line"] < count and not saved["complete"], saved

    resumed = subprocess.run(
        [*command, "--checkpoint", str(checkpoint), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["resumed_after_line"] == saved["last_line"]
    assert result["complete"] and result["records"] == count
    # Every line once in the totals: accepted by a checkpointed stream, or in the re-run as
    # stored (new) or found stored already (sent by the killed run after its checkpoint).
    assert result["accepted"] + result["duplicates"] == count and result["rejected_count"] == 0

    wait_until(
        lambda: sum(order_count(svod, p) for p in phones) >= count,
        timeout_s=180,
        what=f"{count} orders delivered",
        interval_s=1.0,
    )
    assert [order_count(svod, p) for p in phones] == [count // len(phones)] * len(phones)


def test_mapping_paths_and_cells_convert_by_the_field_type() -> None:
    """No services: what a mapping makes of a row, and what it refuses."""
    from svod.ingestion.v1 import ingestion_pb2
    from svod_cli.common import UsageError
    from svod_cli.import_mapping import load_mapping

    raw = {
        "source_file": "m.yaml",
        "columns": {
            "phone": "event.identifiers[phone]",
            "crm": "event.identifiers[external_id:crm]",
            "amount": "event.total",
            "at": "event.occurred_time",
            "sku": "event.lines[0].sku",
            "qty": "event.lines[0].quantity",
            "page": "event.properties.page",
        },
        "values": {"event.type": "order_placed", "channel": "web"},
        "currency": "RUB",
    }
    mapping = load_mapping(raw, ingestion_pb2.TrackRequest.DESCRIPTOR, [])
    row = {
        "phone": "+7 916 000-11-22",
        "crm": "C-1",
        "amount": "-1 234,5",
        "at": "2026-05-01 10:00",
        "sku": "A1",
        "qty": "2",
        "page": "",
    }
    data, errors = mapping.message_dict(row)
    assert not errors
    message = json_format.ParseDict(data, ingestion_pb2.TrackRequest())
    event = message.event
    assert event.type == common_pb2.EVENT_TYPE_ORDER_PLACED
    assert message.channel == common_pb2.SOURCE_CHANNEL_WEB
    assert [(i.type, i.value, i.namespace) for i in event.identifiers] == [
        (PHONE, "+7 916 000-11-22", ""),
        (common_pb2.IDENTIFIER_TYPE_EXTERNAL_ID, "C-1", "crm"),
    ]
    assert (event.total.units, event.total.nanos) == (-1234, -500_000_000)
    assert event.occurred_time.ToJsonString() == "2026-05-01T10:00:00Z"
    assert (event.lines[0].sku, event.lines[0].quantity) == ("A1", 2)
    assert "page" not in event.properties  # an empty cell sets nothing

    _, errors = mapping.message_dict({**row, "qty": "two", "at": "soon"})
    assert sorted(field for field, _ in errors) == [
        "event.lines[0].quantity",
        "event.occurred_time",
    ]

    for bad_path, said in (
        ("event.identifier[phone]", "has no field 'identifier'"),
        ("event.identifiers[fax]", "no identifier type 'fax'"),
        ("event.lines.sku", "say which element"),
        ("event.total.units.x", "no field 'x'"),
    ):
        with pytest.raises(UsageError, match=re.escape(said)):
            load_mapping(
                {**raw, "columns": {"c": bad_path}}, ingestion_pb2.TrackRequest.DESCRIPTOR, []
            )
    with pytest.raises(UsageError, match="'sold' is not a EventType"):
        load_mapping(
            {**raw, "values": {"event.type": "sold"}}, ingestion_pb2.TrackRequest.DESCRIPTOR, []
        )


def test_a_batch_import_stopped_and_resumed_or_restarted_resolves_every_record(
    svod, tmp_path
) -> None:
    """The batch path commits only once every line is staged: a run stopped by --limit leaves
    the import open; resuming it, or restarting it before its commit, stages the rest under the
    same import and then resolves every record once."""
    source = unique("lim")
    phones = [random_phone() for _ in range(4)]
    people = write_jsonl(
        tmp_path / "p.jsonl", [as_dict(identify(source, phones=(p,))) for p in phones]
    )
    first = imported(svod("import", "customers", people, "--limit", "2", "--json"))
    assert first["accepted"] == 2 and "import" not in first and not first["complete"]
    resumed = imported(svod("import", "customers", people, "--wait", "--timeout", "60", "--json"))
    assert (resumed["accepted"], resumed["duplicates"], resumed["complete"]) == (4, 0, True)
    job = resumed["import"]
    assert (job["state"], job["records_staged"], job["delivered"]) == ("succeeded", 4, 4), job
    assert job["customers_created"] == 4
    assert all(profile(svod, p)["customer_id"] for p in phones)

    others = [random_phone() for _ in range(3)]
    more = write_jsonl(
        tmp_path / "q.jsonl", [as_dict(identify(source, phones=(p,))) for p in others]
    )
    stopped = imported(svod("import", "customers", more, "--limit", "1", "--json"))
    assert stopped["accepted"] == 1
    restarted = imported(
        svod("import", "customers", more, "--restart", "--wait", "--timeout", "60", "--json")
    )
    assert (restarted["accepted"], restarted["duplicates"]) == (2, 1), restarted
    assert restarted["import"]["delivered"] == 3 and restarted["import"]["state"] == "succeeded"
    assert all(profile(svod, p)["customer_id"] for p in others)
