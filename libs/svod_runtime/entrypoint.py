"""The command line every service shares: ``python -m svod_<name> serve|migrate``."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from svod_runtime.config import ServiceConfig
from svod_runtime.logs import setup_logging
from svod_runtime.migrations import upgrade
from svod_runtime.runtime import exit_with_supervisor, tune_garbage_collector
from svod_runtime.server import PortInUse, ServiceApp, serve_until_signalled
from svod_runtime.telemetry import Telemetry

# A service that cannot take its port exits with this code (its supervisor tells it apart).
EXIT_PORT_IN_USE = 98


def run_service_cli(
    service: str,
    versions_dir: Path,
    create_app: Callable[[ServiceConfig, Telemetry], Awaitable[ServiceApp]],
    argv: list[str] | None = None,
) -> int:
    parser = argparse.ArgumentParser(prog=f"svod_{service}")
    parser.add_argument("command", choices=("serve", "migrate"))
    args = parser.parse_args(argv)
    setup_logging(service)
    config = ServiceConfig.from_env(service)
    if args.command == "migrate":
        upgrade(versions_dir, config.database_url, service)
        logging.getLogger(__name__).info("%s schema migrated", service)
        return 0
    exit_with_supervisor()
    telemetry = Telemetry.for_config(config)

    async def main() -> None:
        app = await create_app(config, telemetry)
        tune_garbage_collector(config.gc_young_threshold)
        await serve_until_signalled(app)

    try:
        asyncio.run(main())
    except PortInUse as taken:
        logging.getLogger(__name__).error("%s", taken)
        return EXIT_PORT_IN_USE
    return 0
