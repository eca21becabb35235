"""What every ``svod`` command shares: where the services are, the caller's credentials, one
way to open a channel, and one way to report a refused call.

Every command module (``svod_cli/<group>.py``) builds on these so that TLS, credentials or a
retry policy change in one place: ``SVOD_API_KEY`` is sent as the bearer key, the
``SVOD_TLS_*`` variables turn TLS on (see :func:`tls_files`). A command returns its exit code:

- ``EXIT_OK`` (0): done;
- ``EXIT_REFUSED`` (1): the service answered with a refusal (NOT_FOUND, INVALID_ARGUMENT, ...)
  or the command found what it reports as a problem (e.g. rejected lines);
- ``EXIT_UNREACHABLE`` (3): the service could not be reached (UNAVAILABLE, DEADLINE_EXCEEDED);
- ``EXIT_USAGE`` (2): bad command line (argparse's own code).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from svod_runtime.config import DEFAULT_PORTS
from svod_runtime.tls import TlsFiles, blocking_channel

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

TIMEOUT_S = 10.0

_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def target(service: str) -> str:
    """``SVOD_<SERVICE>_TARGET``, else the service's default port on loopback."""
    return os.environ.get(f"SVOD_{service.upper()}_TARGET", f"127.0.0.1:{DEFAULT_PORTS[service]}")


def metadata() -> tuple[tuple[str, str], ...]:
    """The caller's API key (``SVOD_API_KEY``) when the deployment uses keys."""
    key = os.environ.get("SVOD_API_KEY", "")
    return (("authorization", f"Bearer {key}"),) if key else ()


def tls_files() -> TlsFiles:
    """``SVOD_TLS_CA_FILE`` (verify the services against it), ``SVOD_TLS_CERT_FILE`` and
    ``SVOD_TLS_KEY_FILE`` (the client certificate mutual TLS asks for), ``SVOD_TLS=1`` (TLS
    against the system's roots), ``SVOD_TLS_SERVER_NAME`` (the name the certificates carry)."""
    return TlsFiles.from_env(os.environ)


def channel(service: str) -> grpc.Channel:
    """A blocking channel to ``service`` (use as a context manager): TLS when configured."""
    return blocking_channel(target(service), tls_files())


def report_rpc_error(error: grpc.RpcError) -> int:
    """Prints one precise line for a refused call (never a traceback); returns the exit code."""
    code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
    details: str = error.details() or ""  # type: ignore[attr-defined]
    print(f"{code.name}: {details}", file=sys.stderr)
    return EXIT_UNREACHABLE if code in _UNREACHABLE else EXIT_REFUSED


def message_json(message: Message) -> dict[str, Any]:
    """A message as a JSON-ready dict (field names as in the proto, defaults left out)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def print_json(value: Message | Any) -> None:
    if isinstance(value, Message):
        value = message_json(value)
    print(json.dumps(value, ensure_ascii=False, indent=2))


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A plain aligned table for people (use ``--json`` output for scripts)."""
    cells = [[str(h) for h in headers], *([("" if c is None else str(c)) for c in r] for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        padded = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(padded).rstrip())
