"""Metrics, alerts, dashboard and local traces against a running suite of its own.

- every metric docs/operations.md lists appears on the endpoints of the services it names,
  after a small workload, with values that add up (outbox depth back to 0, resolve outcomes
  summing to the records resolved, calls counted by status, merges, splits, events, segment
  entries, quality findings, pools);
- a real Prometheus (Debian's `prometheus` package) scrapes all five services; `promtool`
  checks the chart's alerts and proves each fires on a synthetic series; every dashboard
  query runs and names a metric the services export;
- `svod trace record` prints one Identify's tree across all five services; an idle suite
  starts no traces; `svod status` shows health, rates, backlogs and dead letters;
- server reflection answers as `grpcurl` would need it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from prometheus_client.parser import text_string_to_metric_families

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod.quality.v1 import quality_pb2, quality_pb2_grpc
from svod.segmentation.v1 import segmentation_pb2, segmentation_pb2_grpc
from svod_cli.__main__ import main as svod_main
from svod_cli.suite import (
    TOP,
    InProcessSuite,
    create_database,
    drop_database,
    free_ports,
    prepare_database,
)
from svod_runtime.config import SERVICES
from tests import waiting
from tests.builders import identify, random_phone, track, unique

pytestmark = pytest.mark.slow

T = 10.0
DOCS = TOP / "docs" / "operations.md"
ALERTS = TOP / "deploy" / "helm" / "svod" / "files" / "alerts.yaml"
ALERT_TESTS = TOP / "deploy" / "monitoring" / "alerts_test.yaml"
DASHBOARD = TOP / "deploy" / "helm" / "svod" / "files" / "dashboard.json"
SOURCE = "obs-web"
# The services with an outbox (and a relay).
RELAYS = ("ingestion", "identity", "profile", "segmentation")


@dataclass
class Observed:
    suite: InProcessSuite
    traces_file: Path

    def channel(self, service: str) -> grpc.Channel:
        return grpc.insecure_channel(self.suite.target(service))


@pytest.fixture(scope="module")
def observed(postgres_admin_url, tmp_path_factory) -> Iterator[Observed]:
    name = f"svod_test_obs_{time.monotonic_ns()}"
    url = create_database(postgres_admin_url, name)
    traces = tmp_path_factory.mktemp("traces") / "traces.jsonl"
    suite = None
    try:
        prepare_database(url)
        suite = InProcessSuite(
            url,
            metrics=True,
            extra_env={
                "SVOD_TRACES_FILE": str(traces),
                "SVOD_METRICS_POLL_S": "0.3",
                "SVOD_METRICS_SLOW_POLL_S": "0.3",
                "SVOD_SEGMENTATION_RECOMPUTE_S": "0",
            },
        ).start()
        yield Observed(suite, traces)
    finally:
        if suite is not None:
            suite.stop()
        drop_database(postgres_admin_url, name)


# -- reading the endpoints -----------------------------------------------------------------


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(observed: Observed, service: str) -> tuple[Samples, set[str]]:
    """(every sample, the metric family names) of one service's endpoint."""
    address = observed.suite.metrics_target(service)
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    samples: Samples = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            families.add(sample.name)
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        v
        for (metric, series), v in samples.items()
        if metric == name and all(dict(series).get(k) == want for k, want in labels.items())
    )


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (metric, labels) in samples if metric == name]


# Each look scrapes endpoints: every 0.2 s is often enough.
wait_until = functools.partial(waiting.wait_until, interval_s=0.2)


def documented_metrics() -> dict[str, set[str]]:
    """{Prometheus name: services that must export it}, from docs/operations.md's table."""
    found: dict[str, set[str]] = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"`[a-z_]+`", cells[0]) and cells[0] != "`topic`":
            services = set(SERVICES) if cells[3] == "all" else set(re.split(r",\s*", cells[3]))
            assert services <= set(SERVICES), line
            found[cells[0].strip("`")] = services
    return found


# -- the workload ----------------------------------------------------------------------------


@dataclass
class Workload:
    identify_calls: int
    refused_calls: int
    resolved: int
    customers: list[str]
    segment_id: str
    rule_id: str
    events: int


def wait_processed(
    stub: ingestion_pb2_grpc.IngestionServiceStub, ref
) -> ingestion_pb2.RecordStatus:
    def done():
        status = stub.GetRecordStatus(
            ingestion_pb2.GetRecordStatusRequest(record_ref=ref), timeout=T
        )
        return status if status.state != ingestion_pb2.RecordStatus.STATE_PENDING else None

    return wait_until(done, what=f"{ref.message_id} delivered")


@pytest.fixture(scope="module")
def workload(observed: Observed) -> Workload:
    ingestion = ingestion_pb2_grpc.IngestionServiceStub(observed.channel("ingestion"))
    identity = identity_pb2_grpc.IdentityServiceStub(observed.channel("identity"))
    quality = quality_pb2_grpc.QualityServiceStub(observed.channel("quality"))
    segmentation = segmentation_pb2_grpc.SegmentationServiceStub(observed.channel("segmentation"))
    rule_id = f"obs-role-{unique()}"
    quality.CreateValidationRule(
        quality_pb2.CreateValidationRuleRequest(
            rule=quality_pb2.ValidationRule(
                rule_id=rule_id, field="email", action="flag", check="email_not_role"
            )
        ),
        timeout=T,
    )
    # A value the rules block: a record carrying it is "blocked" (it does not link by it).
    blocked_email = f"shared-{unique()}@example.ru"
    rules = identity.GetRules(identity_pb2.GetRulesRequest(), timeout=T)
    email_rule = next(
        r for r in rules.identifier_rules if r.type == common_pb2.IDENTIFIER_TYPE_EMAIL
    )
    email_rule.blocked_values.append(blocked_email)
    identity.UpdateRules(
        identity_pb2.UpdateRulesRequest(rules=rules, expected_version=rules.version, actor="obs"),
        timeout=T,
    )
    shared = random_phone()
    requests = [
        identify(SOURCE, phones=(shared,), emails=(f"{unique()}@example.ru",), first_name="Анна"),
        identify(SOURCE, phones=(shared,), first_name="Анна"),  # the same person: exact link
        identify(SOURCE, phones=(random_phone(),), emails=(blocked_email,)),
        identify(SOURCE, phones=(random_phone(),), emails=(f"info@{unique()}.example.ru",)),
        identify(SOURCE, phones=(random_phone(),), first_name="Олег"),
    ]
    for request in requests:
        ingestion.Identify(request, timeout=T)
    customers = [wait_processed(ingestion, r.record_ref).customer_id for r in requests]
    assert customers[0] == customers[1]
    with pytest.raises(grpc.RpcError) as refused:
        ingestion.Identify(identify(SOURCE), timeout=T)  # no identifier at all
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    event = track(
        SOURCE,
        common_pb2.EVENT_TYPE_ORDER_PLACED,
        common_pb2.Identifier(type=common_pb2.IDENTIFIER_TYPE_PHONE, value=shared),
        total="1500",
        order_id=unique("o"),
    )
    ingestion.Track(event, timeout=T)
    wait_processed(ingestion, event.record_ref)

    segment_id = f"obs-{unique()}"
    segmentation.CreateSegment(
        segmentation_pb2.CreateSegmentRequest(
            segment=segmentation_pb2.Segment(
                segment_id=segment_id,
                rule=segmentation_pb2.RuleNode(
                    field=segmentation_pb2.FieldCondition(
                        field="sources", operator="contains", values=[SOURCE]
                    )
                ),
            )
        ),
        timeout=60,
    )
    merged = identity.MergeCustomers(
        identity_pb2.MergeCustomersRequest(
            customer_ids=[customers[3], customers[4]], reason="test", actor="obs"
        ),
        timeout=T,
    )
    identity.SplitCustomer(
        identity_pb2.SplitCustomerRequest(
            customer_id=merged.surviving_customer_id,
            record_refs=[requests[4].record_ref],
            reason="test",
            actor="obs",
        ),
        timeout=T,
    )
    return Workload(
        identify_calls=len(requests) + 1,
        refused_calls=1,
        resolved=len(requests),
        customers=customers,
        segment_id=segment_id,
        rule_id=rule_id,
        events=1,
    )


# -- metrics ---------------------------------------------------------------------------------


def test_every_documented_metric_is_exported_with_plausible_values(observed, workload) -> None:
    documented = documented_metrics()
    assert len(documented) >= 25
    # The outbox drains: every topic's depth back to 0 (polled gauges, refreshed every 0.3 s).
    drained = {}
    for service in RELAYS:

        def empty(service: str = service) -> Samples | None:
            samples, _ = scrape(observed, service)
            depths = [v for (m, _), v in samples.items() if m == "svod_outbox_depth"]
            return samples if depths and not any(depths) else None

        drained[service] = wait_until(empty, what=f"{service}'s outbox empty")
    scraped = {s: scrape(observed, s) for s in SERVICES}
    for name, services in documented.items():
        for service in services:
            assert name in scraped[service][1], f"{name} not exported by {service}"

    ingestion, identity = scraped["ingestion"][0], scraped["identity"][0]
    profile, segmentation = scraped["profile"][0], scraped["segmentation"][0]
    quality = scraped["quality"][0]
    calls = "rpc_server_call_duration_seconds_count"
    identify_method = "svod.ingestion.v1.IngestionService/Identify"
    assert value(ingestion, calls, rpc_method=identify_method, rpc_response_status_code="OK") == (
        workload.identify_calls - workload.refused_calls
    )
    assert (
        value(
            ingestion,
            calls,
            rpc_method=identify_method,
            rpc_response_status_code="INVALID_ARGUMENT",
        )
        == workload.refused_calls
    )
    # Health checks are not API calls.
    assert not [s for s in series(ingestion, calls) if "Health" in s["rpc_method"]]

    assert value(drained["ingestion"], "svod_outbox_depth") == 0
    assert value(ingestion, "svod_outbox_deliveries_total", topic="record.identify") >= 5
    assert value(ingestion, "svod_outbox_dead_letters") == 0
    assert value(ingestion, "svod_outbox_oldest_age_seconds") == 0

    # One outcome per record: they add up to the records resolved.
    outcomes = {s["outcome"] for s in series(identity, "svod_identity_resolutions_total")}
    assert outcomes == {"new", "linked_exact", "linked_fuzzy", "review", "blocked",
                        "already_resolved"}  # fmt: skip
    resolved = value(identity, "svod_identity_resolutions_total")
    retries = value(identity, "svod_identity_resolutions_total", outcome="already_resolved")
    counts = {k: v for k, v in identity.items() if "resolutions" in k[0] or "unlinked" in k[0]}
    assert resolved - retries == workload.resolved, counts
    assert value(identity, "svod_identity_resolutions_total", outcome="linked_exact") >= 1, counts
    assert value(identity, "svod_identity_resolutions_total", outcome="blocked") >= 1, counts
    assert value(identity, "svod_identity_resolutions_total", outcome="new") >= 3, counts
    unlinked = value(identity, "svod_identity_unlinked_identifiers_total", reason="configured")
    assert unlinked >= 1, counts
    assert value(identity, "svod_identity_merges_total", trigger="manual") == 1
    assert value(identity, "svod_identity_splits_total") == 1
    assert value(identity, "svod_identity_review_queue_depth") >= 0

    # Анна (phone, e-mail), the blocked e-mail's record (its phone only), the role address's
    # customer (phone, e-mail) and Олег, split off again (his phone): once a poll after the
    # split has run.
    def held() -> dict[str, float] | None:
        now, _ = scrape(observed, "identity")
        found = {
            dict(labels)["identifiers"]: v
            for (m, labels), v in now.items()
            if m == "svod_identity_customers" and v
        }
        most = value(now, "svod_identity_identifiers_per_customer_max")
        return found if found == {"1": 2, "2": 2} and most == 2 else None

    wait_until(held, what="identifiers per customer after the split")

    assert value(profile, "svod_profile_events_total", result="applied") == workload.events
    assert value(profile, "svod_profile_records_total", result="applied") >= workload.resolved - 1
    assert value(profile, "svod_profile_changes_announced_total") >= 1

    entered = value(
        segmentation,
        "svod_segmentation_membership_changes_total",
        segment=workload.segment_id,
        direction="enter",
    )
    assert entered >= 3  # every customer of the workload's source entered once
    assert value(segmentation, "svod_segmentation_change_lag_seconds_count") >= 1

    assert value(quality, "svod_quality_violations_total", rule=workload.rule_id) == 1
    assert value(quality, "svod_quality_records_checked_total") >= workload.resolved

    for service, (samples, _) in scraped.items():
        assert value(samples, "svod_service_serving") == 1, service
        assert value(samples, "db_client_connection_max") >= 2, service
        assert value(samples, "db_client_connection_checkouts_total") > 0, service
        assert value(samples, "db_client_connection_count") >= 1, service
        assert value(samples, "db_client_connection_timeouts_total") == 0, service


def test_status_shows_health_rates_backlogs_and_dead_letters(observed, workload, monkeypatch):
    for service in SERVICES:
        prefix = f"SVOD_{service.upper()}"
        monkeypatch.setenv(f"{prefix}_TARGET", observed.suite.target(service))
        monkeypatch.setenv(f"{prefix}_METRICS_PORT", str(observed.suite.metrics_ports[service]))

    def quiet() -> dict[str, dict] | None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = svod_main(["status", "--window", "0.5", "--json"])
        assert code == 0
        statuses = {s["service"]: s for s in json.loads(out.getvalue())}
        assert {s["health"] for s in statuses.values()} == {"SERVING"}
        assert all(s["calls_per_s"] is not None for s in statuses.values())
        # Each service sampled its event loop's lag in the window (four times a second).
        assert all(s["loop_held_max_s"] is not None for s in statuses.values())
        relays = [statuses[s] for s in RELAYS]
        return statuses if not any(s["outbox_depth"] for s in relays) else None

    statuses = wait_until(quiet, what="every relay's backlog at 0")
    for service in RELAYS:
        assert statuses[service]["dead_letters"] == 0
        assert statuses[service]["outbox_oldest_s"] == 0
    # The quality service has no outbox.
    assert statuses["quality"]["outbox_depth"] == 0


# -- Prometheus, alerts, dashboard -----------------------------------------------------------


def prometheus_binaries() -> tuple[str, str]:
    found = [shutil.which(b) or f"/usr/bin/{b}" for b in ("prometheus", "promtool")]
    missing = [b for b in found if not Path(b).exists()]
    if missing:
        pytest.fail(
            "this test runs a real Prometheus: install Debian's `prometheus` package "
            "(apt-get install -y --no-install-recommends prometheus; .ci/run does); "
            f"missing: {', '.join(missing)}"
        )
    return found[0], found[1]


def api(port: int, path: str, **params: str) -> dict:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}{query}", timeout=10) as reply:
        return json.loads(reply.read())


@pytest.fixture(scope="module")
def prometheus(observed, workload, tmp_path_factory) -> Iterator[int]:
    binary, _ = prometheus_binaries()
    home = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": f"svod-{service}",
                "static_configs": [{"targets": [observed.suite.metrics_target(service)]}],
            }
            for service in SERVICES
        ],
    }
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_ports(1)[0]
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(home / "prometheus.log").open("w"),
    )
    try:

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2):
                    return True
            except (urllib.error.URLError, OSError):
                return process.poll() is not None and pytest.fail(
                    "prometheus exited:\n" + (home / "prometheus.log").read_text()
                )

        wait_until(ready, timeout_s=60, what="prometheus ready")
        yield port
    finally:
        process.terminate()
        process.wait(20)


def test_prometheus_scrapes_all_five_services(prometheus) -> None:
    def all_up() -> list | None:
        result = api(prometheus, "/api/v1/query", query='up{job=~"svod-.*"} == 1')["data"]
        return result["result"] if len(result["result"]) == len(SERVICES) else None

    up = wait_until(all_up, timeout_s=60, what="all five targets up")
    assert {r["metric"]["job"] for r in up} == {f"svod-{s}" for s in SERVICES}
    targets = api(prometheus, "/api/v1/targets")["data"]["activeTargets"]
    assert {t["health"] for t in targets} == {"up"}, targets
    # The rules load and evaluate against real series without errors.
    groups = api(prometheus, "/api/v1/rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
    wait_until(
        lambda: all(r.get("lastEvaluation", "").startswith("20") for r in rules_now(prometheus)),
        what="rules evaluated",
    )
    assert all(r["health"] == "ok" for r in rules_now(prometheus)), rules_now(prometheus)


def rules_now(port: int) -> list[dict]:
    return [r for g in api(port, "/api/v1/rules")["data"]["groups"] for r in g["rules"]]


def alert_rules() -> list[dict]:
    return [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]


def test_promtool_checks_the_alerts_and_each_fires_on_a_synthetic_series() -> None:
    _, promtool = prometheus_binaries()
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", ALERT_TESTS.name],
        cwd=ALERT_TESTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Each alert has a case where it is expected to fire (and promtool compared exactly).
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    firing = {
        case["alertname"]
        for test in cases
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    names = {r["alert"] for r in alert_rules()}
    assert names == {
        "SvodRelayFallingBehind",
        "SvodDeadLetters",
        "SvodHighErrorRatio",
        "SvodSlowCalls",
        "SvodEventLoopHeld",
        "SvodServiceUnhealthy",
    }
    assert firing == names


METRIC_NAME = re.compile(r"\b((?:svod|rpc|db|up)[a-z0-9_:]*)\s*(?:\{|\[|\))")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)")
MATCHERS = re.compile(r"\{[^}]*\}")


def metric_names(expr: str) -> set[str]:
    """The metrics a PromQL expression reads (not the label names it groups or matches by)."""
    return set(METRIC_NAME.findall(MATCHERS.sub("{}", GROUPING.sub("", expr))))


def test_every_dashboard_query_runs_and_names_an_exported_metric(observed, prometheus) -> None:
    exported = set().union(*(scrape(observed, s)[1] for s in SERVICES)) | {"up"}
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, f"{expr}: {names - exported} not exported"
        answer = api(prometheus, "/api/v1/query", query=expr.replace("$__rate_interval", "1m"))
        assert answer["status"] == "success", (expr, answer)


# -- traces ----------------------------------------------------------------------------------


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = svod_main(list(args))
    return code, out.getvalue(), err.getvalue()


# The Identify's way: quality standardises it, the relay has identity resolve it (alone or in
# a ResolveBatch) and profile apply it, and profile's announcement reaches segmentation.
ACROSS_SERVICES = (
    "quality: /svod.quality.v1.QualityService/StandardizeBatch",
    "identity: /svod.identity.v1.IdentityService/Resolve",
    "profile: /svod.profile.v1.ProfileService/Apply",
    "segmentation: /svod.segmentation.v1.SegmentationService/ApplyProfileChanges",
)


def _depth(lines: list[str], fragment: str) -> int | None:
    """Indentation of the first span line of ``svod trace record`` holding ``fragment``."""
    line = next((x for x in lines[1:] if fragment in x), None)
    if line is None:
        return None
    indent = re.match(r"\s*\+[\d,.]+ ms\s+[\d,.]+ ms  ( *)\S", line)
    assert indent is not None, line
    return len(indent.group(1))


def test_trace_record_prints_one_identify_across_all_five_services(observed, monkeypatch):
    monkeypatch.setenv("SVOD_TRACES_FILE", str(observed.traces_file))
    ingestion = ingestion_pb2_grpc.IngestionServiceStub(observed.channel("ingestion"))
    request = identify("obs-trace", phones=(random_phone(),), first_name="Вера")
    ingestion.Identify(request, timeout=T)
    wait_processed(ingestion, request.record_ref)
    ref = request.record_ref

    def whole_tree() -> str | None:
        code, out, _err = run_cli(
            "trace", "record", "--source", ref.source, "--message-id", ref.message_id
        )
        # Every service's span, each under its parent: a span whose parent is not written
        # yet (the relay's, which ends after the call it made) is shown at the top level
        # until it is (a clean-clone run read the file in that moment once).
        lines = out.splitlines()
        whole = code == 0 and all((_depth(lines, f) or 0) > 0 for f in ACROSS_SERVICES)
        return out if whole else None

    out = wait_until(whole_tree, what="the trace with all five services, each under its parent")
    lines = out.splitlines()
    assert re.match(r"trace [0-9a-f]{32}: \d+ spans, 5 services", lines[0]), lines[0]
    trace_id = lines[0].split()[1].rstrip(":")

    def depth(fragment: str) -> int:
        found = _depth(lines, fragment)
        assert found is not None, fragment
        return found

    root = next(
        x for x in lines[1:] if "ingestion: /svod.ingestion.v1.IngestionService/Identify" in x
    )
    assert root.split()[:2] == ["+0.0", "ms"] and depth("IngestionService/Identify") == 0
    for fragment in ACROSS_SERVICES:
        assert depth(fragment) > depth("IngestionService/Identify"), fragment
    # Each line: start offset and duration, in ms.
    assert all(re.match(r"\s*\+[\d,]+\.\d ms\s+[\d,]+\.\d ms  ", x) for x in lines[1:])
    code, shown, _ = run_cli("trace", "show", trace_id)
    assert code == 0 and shown == out
    code, as_json, _ = run_cli("trace", "show", trace_id, "--json")
    assert {s["service"] for s in json.loads(as_json)} == {f"svod-{s}" for s in SERVICES}
    assert run_cli("trace", "show", "f" * 32)[0] == 1
    assert run_cli("trace", "show", "not-an-id")[0] == 2


def test_an_idle_suite_starts_no_traces(observed, workload) -> None:
    def roots() -> int:
        lines = observed.traces_file.read_text(encoding="utf-8").splitlines()
        return sum(1 for line in lines if json.loads(line)["parent_span_id"] is None)

    time.sleep(2)  # what the workload started is written out
    before = roots()
    time.sleep(4)  # relay polls (every 0.5 s), sweeps, health checks, metric polls
    assert roots() == before


# -- reflection (what grpcurl uses) ----------------------------------------------------------


def test_reflection_describes_every_service(observed) -> None:
    for service, full_name in (
        ("ingestion", "svod.ingestion.v1.IngestionService"),
        ("identity", "svod.identity.v1.IdentityService"),
        ("profile", "svod.profile.v1.ProfileService"),
        ("segmentation", "svod.segmentation.v1.SegmentationService"),
        ("quality", "svod.quality.v1.QualityService"),
    ):
        with observed.channel(service) as channel:
            database = ProtoReflectionDescriptorDatabase(channel)
            assert full_name in database.get_services()
            described = DescriptorPool(database).FindServiceByName(full_name)
            assert len(described.methods) >= 5
    with observed.channel("profile") as channel:
        pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        get_profile = pool.FindServiceByName("svod.profile.v1.ProfileService").FindMethodByName(
            "GetProfile"
        )
        assert get_profile.input_type.full_name == "svod.profile.v1.GetProfileRequest"
