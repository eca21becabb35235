"""The command line every service shares: ``python -m svod_<name> serve|migrate``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from svod_runtime.config import ServiceConfig
from svod_runtime.errors import ConfigurationError
from svod_runtime.logs import setup_logging
from svod_runtime.migrations import upgrade
from svod_runtime.runtime import exit_with_supervisor, tune_garbage_collector
from svod_runtime.server import PortInUse, ServiceApp, security_guard, serve_until_signalled
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
    try:
        config = ServiceConfig.from_env(service)
    except ConfigurationError as error:
        print(f"svod_{service}: {error.message}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        upgrade(versions_dir, config.database_url, service)
        logging.getLogger(__name__).info("%s schema migrated", service)
        return 0
    try:
        security_guard(config)  # refuses an insecure or unusable configuration before anything
    except ConfigurationError as error:
        print(f"svod_{service}: {error.message}", file=sys.stderr)
        return 2
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
    except ConfigurationError as error:
        print(f"svod_{service}: {error.message}", file=sys.stderr)
        return 2
    return 0
