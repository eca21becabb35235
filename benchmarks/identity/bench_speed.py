"""Identity speed: single Resolve latency and ResolveBatch throughput over a large graph.

Loads ``--customers`` customers (one record each, with phones, e-mails, names, birth dates and
blocking keys) into a fresh database with bulk SQL (benchmarks/identity/loader.py), starts the
five services as separate processes on free ports, then measures:

* ``Resolve`` one call at a time over gRPC: half returning customers (a known phone: an exact
  link), half new people (unknown phone: blocking-key candidates are fetched and scored, then a
  customer is created) - p50/p99 for each and overall;
* ``ResolveBatch``: streams of ``--batch-size`` records of the same mix, records/s.
* the same with ``--streams`` importers at once (default 4), each sending its share.
* CPU per record of the single-stream ``ResolveBatch``: the identity process's and the
  database backends' (Linux ``/proc``, local database), beside the raw statements' backend CPU
  and the budget 5,000 records/s leaves on this machine's CPUs.

Beside each, a raw Postgres baseline measured in the same run: the minimum statements the same
work needs, issued directly with psycopg (identifier owner look-up; blocking-key candidate
look-up with the candidates' rows for records whose phone has no owner; inserts of customer,
record, identifiers, record identifiers and blocking keys; one transaction per record, or
set-based per chunk of the batch size the service uses). The baseline makes no decisions and
takes no locks: it is the floor the database sets, not an equivalent implementation.
Results: benchmarks/results/identity_speed.json.

    .venv/bin/python -m benchmarks.identity.bench_speed --customers 1000000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import grpc
import psycopg

from benchmarks.harness import running_suite, scratch_database
from benchmarks.identity.loader import (
    BIRTH_DAYS,
    BIRTH_START,
    CITIES,
    _first_names,
    _surnames,
    check_keys,
    load_identity,
    person_numbers,
)
from benchmarks.stats import latency_summary
from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod_cli.suite import TOP
from svod_identity.domain.engine import person_from
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.blocking import MAX_BLOCK_SIZE, blocking_keys
from svod_runtime.db import libpq_url
from svod_runtime.retries import retry_options

RESULTS = TOP / "benchmarks" / "results" / "identity_speed.json"
# Records per transaction in the service's ResolveBatch (use_cases.BATCH_CHUNK).
RAW_CHUNK = 500


class Workload:
    """Resolve requests: returning customers of the loaded graph, and new people."""

    def __init__(self, customers: int, seed: int = 7) -> None:
        self.customers = customers
        self.rng = random.Random(seed)
        self.firsts = _first_names()
        self.lasts = _surnames()
        self.counter = 0

    def _phone_of(self, n: int) -> str:
        return f"+7{('916', '926', '903', '985')[n % 4]}{1000000 + (n * 7919) % 9000000}"

    def returning(self) -> identity_pb2.ResolveRequest:
        """Another record of a loaded customer: same phone, names, birth date, city."""
        n = self.rng.randint(1, self.customers)
        gender = "male" if n % 2 == 0 else "female"
        firsts = [f for f in self.firsts if f[1] == gender]
        lasts = [s for s in self.lasts if s[1] == gender]
        first, last, days, city = person_numbers(n, len(firsts), len(lasts))
        return self._request(
            firsts[first][0],
            lasts[last][0],
            gender,
            BIRTH_START.toordinal() + days,
            CITIES[city],
            self._phone_of(n),
        )

    def new(self) -> identity_pb2.ResolveRequest:
        """Someone not in the graph: a fresh phone, names and birth date from the same lists."""
        gender = self.rng.choice(("male", "female"))
        first = self.rng.choice([f for f in self.firsts if f[1] == gender])[0]
        last = self.rng.choice([s for s in self.lasts if s[1] == gender])[0]
        birth = BIRTH_START.toordinal() + self.rng.randrange(BIRTH_DAYS)
        phone = f"+7999{self.rng.randrange(1_000_000, 9_999_999)}"
        return self._request(first, last, gender, birth, self.rng.choice(CITIES), phone)

    def mixed(self, count: int) -> list[tuple[str, identity_pb2.ResolveRequest]]:
        return [
            ("returning", self.returning()) if i % 2 == 0 else ("new", self.new())
            for i in range(count)
        ]

    def _request(
        self, first: str, last: str, gender: str, birth: int, city: str, phone: str
    ) -> identity_pb2.ResolveRequest:
        self.counter += 1
        date = BIRTH_START.fromordinal(birth)
        request = identity_pb2.ResolveRequest(
            record_ref=common_pb2.RecordRef(
                source="speed", message_id=f"s-{self.counter}-{uuid.uuid4().hex[:8]}"
            ),
            channel=common_pb2.SOURCE_CHANNEL_POS,
            identifiers=[common_pb2.Identifier(type=common_pb2.IDENTIFIER_TYPE_PHONE, value=phone)],
            name=common_pb2.PersonName(first_name=first, last_name=last),
            gender=common_pb2.GENDER_MALE if gender == "male" else common_pb2.GENDER_FEMALE,
        )
        request.birth_date.year, request.birth_date.month = date.year, date.month
        request.birth_date.day = date.day
        request.addresses.add(country_code="RU", city=city)
        return request


# -- over gRPC ---------------------------------------------------------------------------------


def bench_resolve(
    stub: identity_pb2_grpc.IdentityServiceStub, work: list[tuple[str, identity_pb2.ResolveRequest]]
) -> dict[str, dict[str, float]]:
    samples: dict[str, list[float]] = {"returning": [], "new": []}
    for kind, request in work:
        started = time.perf_counter()
        stub.Resolve(request, timeout=10)
        samples[kind].append((time.perf_counter() - started) * 1000)
    return {
        "all": latency_summary(samples["returning"] + samples["new"]),
        "returning_exact": latency_summary(samples["returning"]),
        "new_fuzzy_path": latency_summary(samples["new"]),
    }


def bench_batch(
    stub: identity_pb2_grpc.IdentityServiceStub,
    work: list[tuple[str, identity_pb2.ResolveRequest]],
    batch_size: int,
    streams: int = 1,
) -> dict[str, float]:
    """Records/s of ``work`` sent as ResolveBatch streams of ``batch_size``; with ``streams``
    above one, that many importers at once, each with its share (one thread each)."""
    requests = [r for _, r in work]

    def send(share: list[identity_pb2.ResolveRequest]) -> None:
        for start in range(0, len(share), batch_size):
            stub.ResolveBatch(iter(share[start : start + batch_size]), timeout=600)

    return _timed_shares(requests, streams, send)


def _timed_shares(items: list, streams: int, run: Callable[[list], None]) -> dict[str, float]:
    """Runs ``run`` over ``streams`` equal shares of ``items`` in parallel threads; records/s."""
    shares = [items[i::streams] for i in range(streams)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=streams) as pool:
        for done in [pool.submit(run, share) for share in shares]:
            done.result()
    elapsed = time.perf_counter() - started
    return {
        "records": len(items),
        "streams": streams,
        "seconds": round(elapsed, 2),
        "per_second": round(len(items) / elapsed),
    }


def cpu_seconds(pids: Sequence[int]) -> float | None:
    """User and system CPU the processes have used (Linux /proc), or None where unreadable."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def database_backends(db_url: str) -> list[int]:
    """The process ids of the client connections to the benchmark's database."""
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()
    return [pid for (pid,) in rows]


def cpu_per_record(before: float | None, after: float | None, records: int) -> float | None:
    if before is None or after is None:
        return None
    return round((after - before) / records * 1000, 3)


def backends_cpu(db_url: str) -> dict[int, float | None]:
    """CPU used so far by each client connection to the benchmark's database."""
    return {pid: cpu_seconds([pid]) for pid in database_backends(db_url)}


def backends_cpu_used(
    before: dict[int, float | None], after: dict[int, float | None]
) -> float | None:
    """CPU the connections used between two readings; a connection opened in between (a pool
    growing) counts from zero, one closed in between is lost (None)."""
    if set(before) - set(after) or None in before.values() or None in after.values():
        return None
    return sum((after[pid] or 0.0) - (before.get(pid) or 0.0) for pid in after)


# -- raw Postgres baseline -----------------------------------------------------------------------


def _raw_parts(request: identity_pb2.ResolveRequest) -> tuple[str, str, dict, list[str]]:
    phone = request.identifiers[0].value
    date = request.birth_date
    attributes = {
        "first_name": request.name.first_name,
        "last_name": request.name.last_name,
        "birth_date": f"{date.year:04d}-{date.month:02d}-{date.day:02d}",
        "addresses": [{"city": request.addresses[0].city}],
    }
    person = person_from("0", attributes, [IdentifierKey("phone", phone)])
    return request.record_ref.message_id, phone, attributes, sorted(blocking_keys(person))


OWNERS = (
    "SELECT id_type, namespace, value, customer_id FROM identifiers "
    "WHERE id_type = 'phone' AND namespace = '' AND value = ANY(%(v)s)"
)
CANDIDATES = """
    SELECT r.record_pk, r.customer_id, r.identifiers, r.attributes
    FROM records r WHERE r.record_pk IN (
        SELECT b.record_pk FROM unnest(%(k)s::text[]) AS k(key) CROSS JOIN LATERAL (
            SELECT record_pk FROM blocking_keys WHERE key = k.key
            ORDER BY record_pk DESC LIMIT %(cap)s) b)
"""


def _raw_write(cur: psycopg.Cursor, parts: list[tuple[str, str, dict, list[str]]]) -> None:
    """Customer, record, identifier, record identifier and blocking-key rows, set-based."""
    ids = [str(uuid.uuid4()) for _ in parts]
    cur.execute(
        "INSERT INTO customers (customer_id) SELECT unnest(%s::uuid[])",
        (ids,),
    )
    pks = [
        r[0]
        for r in cur.execute(
            "SELECT nextval('records_record_pk_seq') FROM generate_series(1, %s)", (len(parts),)
        ).fetchall()
    ]
    cur.execute(
        """
        INSERT INTO records (record_pk, source, message_id, customer_id, channel, observed_at,
                             identifiers, attributes, outcome, rule)
        SELECT p, 'rawbench', m, c, 'pos', now(), i::jsonb, a::jsonb, 'created', 'new_customer'
        FROM unnest(%s::bigint[], %s::text[], %s::uuid[], %s::text[], %s::text[])
             AS x(p, m, c, i, a)
        """,
        (
            pks,
            [m for m, *_ in parts],
            ids,
            [json.dumps([["phone", "", phone]]) for _, phone, _, _ in parts],
            [json.dumps(a, ensure_ascii=False) for _, _, a, _ in parts],
        ),
    )
    cur.execute(
        """
        INSERT INTO identifiers (id_type, namespace, value, customer_id, first_source,
                                 first_seen, last_seen)
        SELECT 'phone', '', v, c, 'rawbench', now(), now() FROM unnest(%s::text[], %s::uuid[])
            AS x(v, c)
        ON CONFLICT DO NOTHING
        """,
        ([phone for _, phone, _, _ in parts], ids),
    )
    cur.execute(
        "INSERT INTO record_identifiers (id_type, namespace, value, record_pk) "
        "SELECT 'phone', '', v, p FROM unnest(%s::text[], %s::bigint[]) AS x(v, p) "
        "ON CONFLICT DO NOTHING",
        ([phone for _, phone, _, _ in parts], pks),
    )
    block_rows = [(key, pk) for (*_, keys), pk in zip(parts, pks, strict=True) for key in keys]
    cur.execute(
        "INSERT INTO blocking_keys (key, record_pk) SELECT * FROM unnest(%s::text[], "
        "%s::bigint[]) ON CONFLICT DO NOTHING",
        ([k for k, _ in block_rows], [p for _, p in block_rows]),
    )


def _raw_chunk(
    conn: psycopg.Connection, parts: list[tuple[str, str, dict, list[str]]], measure: bool = False
) -> float | None:
    """Owners of the phones; candidates for the records whose phone has none (as the service
    does); then the inserts. Every record is written as a new customer: the baseline measures
    statements, not decisions. With ``measure``, returns the database CPU the inserts took
    (None if unreadable)."""
    with conn.transaction(), conn.cursor() as cur:
        rows = cur.execute(OWNERS, {"v": [phone for _, phone, _, _ in parts]}).fetchall()
        owned = {value for _, _, value, _ in rows}
        keys = sorted({k for _, phone, _, keys in parts if phone not in owned for k in keys})
        if keys:
            cur.execute(CANDIDATES, {"k": keys, "cap": MAX_BLOCK_SIZE + 1}).fetchall()
        before = cpu_seconds([conn.info.backend_pid]) if measure else None
        _raw_write(cur, parts)
        after = cpu_seconds([conn.info.backend_pid]) if measure else None
    return None if before is None or after is None else after - before


def bench_raw_resolve(
    db_url: str, work: list[tuple[str, identity_pb2.ResolveRequest]]
) -> dict[str, dict[str, float]]:
    samples: dict[str, list[float]] = {"returning": [], "new": []}
    with psycopg.connect(libpq_url(db_url)) as conn:
        conn.execute("SET search_path TO identity")
        conn.commit()
        for kind, request in work:
            parts = [_raw_parts(request)]
            started = time.perf_counter()
            _raw_chunk(conn, parts)
            samples[kind].append((time.perf_counter() - started) * 1000)
    return {
        "all": latency_summary(samples["returning"] + samples["new"]),
        "returning_exact": latency_summary(samples["returning"]),
        "new_fuzzy_path": latency_summary(samples["new"]),
    }


def bench_raw_batch(
    db_url: str, work: list[tuple[str, identity_pb2.ResolveRequest]], streams: int = 1
) -> dict:
    """The set-based statements for ``work``, ``RAW_CHUNK`` records per transaction; with
    ``streams`` above one, that many connections at once, each with its share."""
    parts = [_raw_parts(r) for _, r in work]

    backend_cpu: list[float | None] = []
    insert_cpu: list[float | None] = []

    def write(share: list[tuple[str, str, dict, list[str]]]) -> None:
        with psycopg.connect(libpq_url(db_url)) as conn:
            conn.execute("SET search_path TO identity")
            conn.commit()
            before = cpu_seconds([conn.info.backend_pid])
            for start in range(0, len(share), RAW_CHUNK):
                insert_cpu.append(_raw_chunk(conn, share[start : start + RAW_CHUNK], measure=True))
            after = cpu_seconds([conn.info.backend_pid])
            backend_cpu.append(None if before is None or after is None else after - before)

    figures = _timed_shares(parts, streams, write)
    for name, measured in (("postgres", backend_cpu), ("postgres_inserts", insert_cpu)):
        used = None if None in measured else sum(m for m in measured if m is not None)
        figures[f"{name}_cpu_ms_per_record"] = cpu_per_record(0.0, used, len(parts))
    return figures


def _load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--batch-records", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=5_000, help="records per stream")
    parser.add_argument(
        "--streams", type=int, default=4, help="importers at once, for the concurrent figure"
    )
    args = parser.parse_args(argv)

    with scratch_database("svod_bench_identity_speed") as db_url, contextlib.ExitStack() as stack:
        started = time.perf_counter()
        load_identity(db_url, args.customers)
        load_s = time.perf_counter() - started
        wrong = check_keys(db_url)
        print(
            f"loaded {args.customers:,} customers in {load_s:.1f}s "
            f"(blocking keys differing from the matcher's: {wrong} of 200 sampled)",
            flush=True,
        )
        suite = stack.enter_context(running_suite(db_url))
        workload = Workload(args.customers)
        load_before = _load_average()
        with grpc.insecure_channel(suite.target("identity"), options=retry_options()) as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            bench_resolve(stub, workload.mixed(200))  # warm-up: connections, caches
            resolve = bench_resolve(stub, workload.mixed(args.calls))
            raw_resolve = bench_raw_resolve(db_url, workload.mixed(args.calls))
            identity_pid = [suite.processes["identity"].pid]
            identity_before, backends_before = cpu_seconds(identity_pid), backends_cpu(db_url)
            batch = bench_batch(stub, workload.mixed(args.batch_records), args.batch_size)
            identity_after, backends_after = cpu_seconds(identity_pid), backends_cpu(db_url)
            batch["identity_cpu_ms_per_record"] = cpu_per_record(
                identity_before, identity_after, batch["records"]
            )
            batch["postgres_cpu_ms_per_record"] = cpu_per_record(
                0.0, backends_cpu_used(backends_before, backends_after), batch["records"]
            )
            raw_batch = bench_raw_batch(db_url, workload.mixed(args.batch_records))
            concurrent = bench_batch(
                stub, workload.mixed(args.batch_records), args.batch_size, args.streams
            )
            raw_concurrent = bench_raw_batch(
                db_url, workload.mixed(args.batch_records), args.streams
            )
        load_after = _load_average()
        pairs = (("Resolve over gRPC", resolve), ("raw SQL (same work)", raw_resolve))
        for label, figures in pairs:
            print(
                f"{label:<22} p50 {figures['all']['p50_ms']:.2f} ms  "
                f"p99 {figures['all']['p99_ms']:.2f} ms   "
                f"(returning p99 {figures['returning_exact']['p99_ms']:.2f} ms, "
                f"new p99 {figures['new_fuzzy_path']['p99_ms']:.2f} ms)"
            )
        print(
            f"ResolveBatch over gRPC {batch['per_second']:,} records/s  "
            f"({batch['records']:,} records in streams of {args.batch_size:,})"
        )
        print(
            f"raw SQL (same work)    {raw_batch['per_second']:,} records/s  "
            f"(set-based, {RAW_CHUNK} per transaction; ratio "
            f"{batch['per_second'] / raw_batch['per_second']:.2f})"
        )
        budget = (os.cpu_count() or 1) / 5.0
        print(
            f"CPU per record in ResolveBatch: identity {batch['identity_cpu_ms_per_record']} ms, "
            f"PostgreSQL {batch['postgres_cpu_ms_per_record']} ms "
            f"(raw SQL: PostgreSQL {raw_batch['postgres_cpu_ms_per_record']} ms, of which "
            f"{raw_batch['postgres_inserts_cpu_ms_per_record']} ms for the inserts alone); "
            f"5,000 records/s on {os.cpu_count()} CPUs allows {budget:.2f} ms in all"
        )
        print(
            f"ResolveBatch, {args.streams} streams at once {concurrent['per_second']:,} records/s  "
            f"(raw SQL on {args.streams} connections {raw_concurrent['per_second']:,} records/s; "
            f"ratio {concurrent['per_second'] / raw_concurrent['per_second']:.2f})"
        )
        print(f"load average before/after: {load_before} / {load_after} ({os.cpu_count()} CPUs)")
        results = {
            "machine": f"{platform.machine()} {platform.python_version()}, {os.cpu_count()} CPUs",
            "customers": args.customers,
            "load_seconds": round(load_s, 1),
            "load_average_before_after": [load_before, load_after],
            "resolve": resolve,
            "raw_resolve_statements": raw_resolve,
            "resolve_batch": {**batch, "stream_size": args.batch_size},
            "raw_batch_statements": {**raw_batch, "chunk": RAW_CHUNK},
            "resolve_batch_concurrent": {**concurrent, "stream_size": args.batch_size},
            "raw_batch_statements_concurrent": {**raw_concurrent, "chunk": RAW_CHUNK},
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"written to {RESULTS.relative_to(TOP)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
