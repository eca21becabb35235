"""``python -m svod_quality serve|migrate``."""

from pathlib import Path

from svod_quality.entrypoints.app import SERVICE, create_app
from svod_runtime.entrypoint import run_service_cli

VERSIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"


def main() -> int:
    return run_service_cli(SERVICE, VERSIONS, create_app)


if __name__ == "__main__":
    raise SystemExit(main())
