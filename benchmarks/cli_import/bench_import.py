"""`svod import customers FILE.jsonl` beside raw IdentifyStream of the same messages.

The five services run as processes on a scratch database; identity is then stopped, so that
resolving the stored records does not compete with the front door for this machine's cores:
both sides measure the same thing, records stored by ingestion per second. Each round
writes ``--records`` IdentifyRequests (new people, a phone and an e-mail each, a source of the
round's own) to a JSON lines file and

- **raw**: sends the messages, built in memory beforehand, over IdentifyStream in streams of the
  CLI's size (1,000), the CLI's number in flight (2), from this process;
- **svod import**: runs ``svod import customers FILE --json`` as a subprocess (its start, file
  hash, JSON parsing, conversion, checkpoint writes included) and takes its wall time.

Rounds alternate raw and import (``--rounds``, default 2) and the figures are the median.
Results: benchmarks/results/cli_import.json.

    .venv/bin/python -m benchmarks.cli_import.bench_import --records 20000
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from google.protobuf import json_format

from benchmarks.harness import running_suite, scratch_database
from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod_cli.bulk_import import CHUNK, STREAMS
from svod_cli.suite import TOP

RESULTS = TOP / "benchmarks" / "results" / "cli_import.json"
FIRST = ["Анна", "Мария", "Ольга", "Иван", "Пётр", "Сергей", "Елена", "Дмитрий"]
LAST = ["Смирнова", "Иванова", "Кузнецов", "Попов", "Соколова", "Лебедев", "Новикова"]


def people(count: int, source: str) -> list[ingestion_pb2.IdentifyRequest]:
    rng = secrets.SystemRandom()
    requests = []
    for n in range(count):
        phone = f"+7 9{rng.randrange(10**9):09d}"
        requests.append(
            ingestion_pb2.IdentifyRequest(
                record_ref=common_pb2.RecordRef(source=source, message_id=f"c{n}"),
                channel=common_pb2.SOURCE_CHANNEL_BACK_OFFICE,
                record=common_pb2.CustomerRecord(
                    identifiers=[
                        common_pb2.Identifier(type=common_pb2.IDENTIFIER_TYPE_PHONE, value=phone),
                        common_pb2.Identifier(
                            type=common_pb2.IDENTIFIER_TYPE_EMAIL,
                            value=f"{source}.{n}@example.ru",
                        ),
                    ],
                    name=common_pb2.PersonName(
                        first_name=rng.choice(FIRST), last_name=rng.choice(LAST)
                    ),
                ),
            )
        )
    return requests


def raw_seconds(target: str, requests: list[ingestion_pb2.IdentifyRequest]) -> tuple[float, int]:
    with grpc.insecure_channel(target) as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
        chunks = [requests[i : i + CHUNK] for i in range(0, len(requests), CHUNK)]
        started = time.perf_counter()
        with ThreadPoolExecutor(STREAMS) as pool:
            replies = list(pool.map(lambda c: stub.IdentifyStream(iter(c), timeout=600), chunks))
        elapsed = time.perf_counter() - started
    return elapsed, sum(r.accepted_count for r in replies)


def import_seconds(suite_env: dict[str, str], path: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(TOP / ".venv" / "bin" / "svod"), "import", "customers", str(path), "--json"],
        env=suite_env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"svod import exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed, json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.cli_import.bench_import")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    raw_rates: list[float] = []
    import_rates: list[float] = []
    inner_rates: list[float] = []
    load_before = os.getloadavg()
    with (
        scratch_database("svod_bench_import") as db_url,
        running_suite(db_url) as suite,
        tempfile.TemporaryDirectory() as scratch,
    ):
        identity = suite.processes["identity"]
        identity.terminate()
        identity.wait(15)
        env = {
            **os.environ,
            **{f"SVOD_{s.upper()}_TARGET": suite.target(s) for s in suite.ports},
        }
        for round_ in range(args.rounds):
            raw_requests = people(args.records, f"bench-raw-{round_}-{secrets.token_hex(3)}")
            seconds, accepted = raw_seconds(suite.target("ingestion"), raw_requests)
            assert accepted == args.records, accepted
            raw_rates.append(args.records / seconds)
            print(f"round {round_ + 1} raw IdentifyStream: {raw_rates[-1]:,.0f} records/s")

            path = Path(scratch) / f"customers-{round_}.jsonl"
            source = f"bench-imp-{round_}-{secrets.token_hex(3)}"
            with path.open("w", encoding="utf-8") as handle:
                for request in people(args.records, source):
                    data = json_format.MessageToDict(request, preserving_proto_field_name=True)
                    handle.write(json.dumps(data, ensure_ascii=False) + "\n")
            seconds, result = import_seconds(env, path)
            assert result["accepted"] == args.records, result
            import_rates.append(args.records / seconds)
            inner_rates.append(float(result["rate_per_s"]))
            print(
                f"round {round_ + 1} svod import: {import_rates[-1]:,.0f} records/s wall "
                f"({inner_rates[-1]:,.0f}/s after start-up and hashing)"
            )
    figures = {
        "records": args.records,
        "rounds": args.rounds,
        "stream_size": CHUNK,
        "streams_in_flight": STREAMS,
        "raw_identify_stream_per_s": round(statistics.median(raw_rates)),
        "svod_import_wall_per_s": round(statistics.median(import_rates)),
        "svod_import_sending_per_s": round(statistics.median(inner_rates)),
        "import_vs_raw": round(statistics.median(import_rates) / statistics.median(raw_rates), 2),
        "raw_rounds_per_s": [round(r) for r in raw_rates],
        "import_rounds_per_s": [round(r) for r in import_rates],
        "cpu_count": os.cpu_count(),
        "load_average_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(
        f"\n{args.records:,} customer records, front door only (identity stopped):\n"
        f"  raw IdentifyStream      {figures['raw_identify_stream_per_s']:>8,} records/s\n"
        f"  svod import (wall)      {figures['svod_import_wall_per_s']:>8,} records/s "
        f"({figures['import_vs_raw']:.0%} of raw)\n"
        f"  svod import (sending)   {figures['svod_import_sending_per_s']:>8,} records/s\n"
        f"  load average before/after {figures['load_average_before_after']}"
    )
    RESULTS.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
