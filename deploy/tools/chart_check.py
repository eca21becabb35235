"""Offline checks of the Svod Helm chart: `helm lint --strict`, `helm template`, and strict
Kubernetes schema validation of every rendered object with the kubernetes-validate package.

    python deploy/tools/chart_check.py      # what `make deploy-check` runs

Every values file in deploy/helm/ci-values/ is linted and rendered; each rendering is validated
against the oldest Kubernetes version the chart supports (Chart.yaml kubeVersion) and the newest
one kubernetes-validate knows. tests/deploy/test_helm_chart.py uses the same functions.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fetch_helm

TOP = Path(__file__).resolve().parents[2]
CHART = TOP / "deploy" / "helm" / "svod"
CI_VALUES = TOP / "deploy" / "helm" / "ci-values"
RELEASE = "svod"
NAMESPACE = "svod"


def ci_values_files() -> list[Path]:
    return sorted(CI_VALUES.glob("*.yaml"))


def min_kube_version() -> str:
    """The lowest version allowed by Chart.yaml's kubeVersion (">=1.27.0-0" -> "1.27.0")."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    found = re.search(r">=\s*v?(\d+\.\d+\.\d+)", chart.get("kubeVersion", ""))
    if not found:
        raise ValueError("Chart.yaml kubeVersion must state a lower bound like >=1.27.0-0")
    return found.group(1)


def kube_versions() -> list[str]:
    """Versions to validate against: the chart's minimum and kubernetes-validate's newest."""
    from kubernetes_validate.utils import latest_version

    versions = {min_kube_version(), latest_version()}
    return sorted(versions, key=lambda v: tuple(int(part) for part in v.split(".")))


def helm(helm_bin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_bin), *args], capture_output=True, text=True, timeout=120)


def _values_args(values: Iterable[Path], sets: Sequence[str]) -> list[str]:
    args: list[str] = []
    for v in values:
        args += ["-f", str(v)]
    for s in sets:
        args += ["--set", s]
    return args


def lint(
    helm_bin: Path, values: Iterable[Path] = (), sets: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    return helm(helm_bin, "lint", "--strict", str(CHART), *_values_args(values, sets))


def template(
    helm_bin: Path, values: Iterable[Path] = (), sets: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart; the caller checks returncode and reads stdout/stderr."""
    return helm(
        helm_bin,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        min_kube_version(),
        *_values_args(values, sets),
    )


def parse(manifests: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(manifests) if doc]


# prometheus-operator's kinds the chart may render (monitoring.*): kubernetes-validate knows
# only built-in kinds, so these are checked against the fields the chart sets (the operator's
# CRDs accept them), strictly where the chart writes them.
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name", "labels"],
    "properties": {"name": {"type": "string"}, "labels": _LABELS, "annotations": _LABELS},
}
MONITORING_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["selector", "endpoints"],
                "properties": {
                    "selector": {"type": "object"},
                    "namespaceSelector": {"type": "object"},
                    "jobLabel": {"type": "string"},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["port"],
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "interval": {"type": "string"},
                                "scrapeTimeout": {"type": "string"},
                                "relabelings": {"type": "array", "items": {"type": "object"}},
                            },
                        },
                    },
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["groups"],
                "properties": {
                    "groups": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "rules"],
                            "properties": {
                                "name": {"type": "string"},
                                "rules": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "required": ["expr"],
                                        "properties": {
                                            "alert": {"type": "string"},
                                            "record": {"type": "string"},
                                            "expr": {"type": "string"},
                                            "for": {"type": "string"},
                                            "labels": _LABELS,
                                            "annotations": _LABELS,
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
        },
    },
}


def validate(docs: Iterable[dict[str, Any]], version: str) -> list[str]:
    """Strict schema validation; returns one message per invalid object (or unknown kind)."""
    import jsonschema
    from kubernetes_validate import utils as kv

    problems = []
    for doc in docs:
        what = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        monitoring = MONITORING_SCHEMAS.get(str(doc.get("kind")))
        if monitoring is not None and str(doc.get("apiVersion", "")).startswith("monitoring."):
            for error in jsonschema.Draft7Validator(monitoring).iter_errors(doc):
                path = ".".join(str(p) for p in error.path)
                problems.append(f"{what}: {path}: {error.message}")
            continue
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            problems.append(f"{what} (Kubernetes {version}): {path}: {e.message}")
        except (kv.SchemaNotFoundError, kv.InvalidSchemaError, kv.VersionNotSupportedError) as e:
            problems.append(f"{what} (Kubernetes {version}): {e.message}")
    return problems


def main() -> int:
    try:
        helm_bin = fetch_helm.ensure()
    except fetch_helm.FetchError as e:
        print(f"deploy-check: helm could not be obtained: {e}", file=sys.stderr)
        return 1
    failed = False
    versions = kube_versions()
    for values in ci_values_files():
        name = values.relative_to(TOP)
        done = lint(helm_bin, [values])
        if done.returncode != 0:
            print(f"FAIL lint {name}\n{done.stdout}{done.stderr}")
            failed = True
            continue
        done = template(helm_bin, [values])
        if done.returncode != 0:
            print(f"FAIL template {name}\n{done.stderr}")
            failed = True
            continue
        docs = parse(done.stdout)
        problems = [p for v in versions for p in validate(docs, v)]
        for p in problems:
            print(f"FAIL validate {name}: {p}")
        failed |= bool(problems)
        if not problems:
            print(
                f"ok   {name}: lint --strict, template, {len(docs)} objects valid against "
                f"Kubernetes {' and '.join(versions)} (strict)"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
