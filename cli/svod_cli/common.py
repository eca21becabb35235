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

import argparse
import functools
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from svod.common.v1 import common_pb2
from svod_runtime.config import target_of
from svod_runtime.retries import retry_options
from svod_runtime.tls import TlsFiles, blocking_channel

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

TIMEOUT_S = 10.0

_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

MessageT = TypeVar("MessageT", bound=Message)


def target(service: str) -> str:
    """``SVOD_<SERVICE>_TARGET``, else loopback at ``SVOD_<SERVICE>_PORT`` (or the default)."""
    return target_of(service)


def metadata() -> tuple[tuple[str, str], ...]:
    """The caller's API key (``SVOD_API_KEY``) when the deployment uses keys."""
    key = os.environ.get("SVOD_API_KEY", "")
    return (("authorization", f"Bearer {key}"),) if key else ()


def tls_files() -> TlsFiles:
    """``SVOD_TLS_CA_FILE`` (verify the services against it), ``SVOD_TLS_CERT_FILE`` and
    ``SVOD_TLS_KEY_FILE`` (the client certificate mutual TLS asks for), ``SVOD_TLS=1`` (TLS
    against the system's roots), ``SVOD_TLS_SERVER_NAME`` (the name the certificates carry)."""
    return TlsFiles.from_env(os.environ)


def channel(service: str, *, retries: bool = True) -> grpc.Channel:
    """A blocking channel to ``service`` (use as a context manager): TLS when configured;
    UNAVAILABLE (a service or its database restarting) retried with backoff, unless
    ``retries`` is False (a health check reports what it sees at once)."""
    options = retry_options() if retries else [("grpc.enable_retries", 0)]
    return blocking_channel(target(service), tls_files(), options)


def report_rpc_error(error: grpc.RpcError) -> int:
    """Prints one precise line for a refused call (never a traceback), then one line per field
    violation it carries; returns the exit code."""
    code: grpc.StatusCode = error.code()
    details: str = error.details() or ""
    hint = _HINTS.get(code, "")
    print(f"{code.name}: {details}{hint}", file=sys.stderr)
    for violation in field_violations(error):
        line = f"{violation.field}: {violation.description}"
        if line != details:  # a lone violation is often the message itself
            print(f"  {line}", file=sys.stderr)
    return EXIT_UNREACHABLE if code in _UNREACHABLE else EXIT_REFUSED


_HINTS = {
    grpc.StatusCode.UNAUTHENTICATED: " (set SVOD_API_KEY to a key the deployment accepts)",
    grpc.StatusCode.UNAVAILABLE: " (is the suite running? `svod status`; SVOD_<SERVICE>_TARGET)",
}


def field_violations(error: grpc.RpcError) -> list[error_details_pb2.BadRequest.FieldViolation]:
    """The google.rpc.BadRequest field violations an INVALID_ARGUMENT carries, if any."""
    try:
        status = rpc_status.from_call(error)
    except ValueError:  # details that do not match the status: show the plain message only
        return []
    violations: list[error_details_pb2.BadRequest.FieldViolation] = []
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(bad_request.field_violations)
    return violations


def refusals_reported(command: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Wraps a command so that a refused or failed call ends it with ``report_rpc_error``'s
    line and exit code instead of a traceback."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except grpc.RpcError as error:
            return report_rpc_error(error)
        except UsageError as error:
            print(f"svod: {error}", file=sys.stderr)
            return EXIT_USAGE

    return run


def call(service: str, stub_type: type, method: str, request: Message, **kwargs: Any) -> Any:
    """One unary call to ``service`` with the caller's credentials and a deadline
    (``timeout=`` to change it); a refusal raises ``grpc.RpcError``."""
    kwargs.setdefault("timeout", TIMEOUT_S)
    with channel(service) as open_channel:
        return getattr(stub_type(open_channel), method)(request, metadata=metadata(), **kwargs)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print JSON for scripts instead of a table"
    )


class Progress:
    """``done/total (rate/s, ETA h:mm:ss)`` on one rewritten line of standard error, at most a
    few times a second; silent when standard error is not a terminal unless forced."""

    def __init__(
        self, what: str, total: int, *, stream: TextIO | None = None, force: bool = False
    ) -> None:
        self.what = what
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = force or self.stream.isatty()
        self.started = time.monotonic()
        self._shown = 0.0
        self.done = 0

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and (now - self._shown >= 0.25 or self.done >= self.total):
            self._shown = now
            self.stream.write("\r" + self.line(now) + " ")
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        elapsed = max(1e-6, (now or time.monotonic()) - self.started)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        return (
            f"{self.what}: {self.done:,}/{self.total:,} ({rate:,.0f}/s, "
            f"ETA {format_duration(left)})"
        )

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


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


# -- arguments shared by several groups ------------------------------------------------------

_IDENTIFIER_OPTIONS = (
    ("email", "EMAIL", "an e-mail address"),
    ("phone", "PHONE", "a phone number, any common format"),
    ("card", "LOYALTY_CARD", "a loyalty card number"),
    ("external_id", "EXTERNAL_ID", "NAMESPACE:VALUE, the id a source system gives the person"),
    ("device_id", "DEVICE_ID", "a device or cookie id"),
)


def add_customer_key_args(parser: argparse.ArgumentParser) -> None:
    """``--id`` or one identifier option (``--email``, ``--phone``, ``--card``,
    ``--external-id NAMESPACE:VALUE``, ``--device-id``); exactly one is required."""
    key = parser.add_mutually_exclusive_group(required=True)
    key.add_argument("--id", metavar="CUSTOMER_ID", help="a customer id (merged-away ids too)")
    for dest, _kind, help_text in _IDENTIFIER_OPTIONS:
        key.add_argument("--" + dest.replace("_", "-"), dest=dest, help=help_text)


def identifier_from_args(args: argparse.Namespace) -> common_pb2.Identifier | None:
    """The identifier an ``add_customer_key_args`` command was given (None for ``--id``)."""
    for dest, kind, _help in _IDENTIFIER_OPTIONS:
        value = getattr(args, dest, None)
        if value is None:
            continue
        namespace = ""
        if kind == "EXTERNAL_ID":
            namespace, sep, value = value.partition(":")
            if not sep or not namespace or not value:
                raise UsageError("--external-id takes NAMESPACE:VALUE, e.g. crm:10042")
        return common_pb2.Identifier(
            type=common_pb2.IdentifierType.Value(f"IDENTIFIER_TYPE_{kind}"),
            value=value,
            namespace=namespace,
        )
    return None


def add_record_arg(parser: argparse.ArgumentParser, *, required: bool, many: bool) -> None:
    """``--record SOURCE MESSAGE_ID`` (repeatable when ``many``)."""
    parser.add_argument(
        "--record",
        nargs=2,
        metavar=("SOURCE", "MESSAGE_ID"),
        action="append" if many else "store",
        required=required,
        help="a record by its source and message id" + (" (repeat for more)" if many else ""),
    )


def record_ref(pair: Sequence[str]) -> common_pb2.RecordRef:
    return common_pb2.RecordRef(source=pair[0], message_id=pair[1])


def add_actor_args(parser: argparse.ArgumentParser, *, reason_required: bool = True) -> None:
    """``--reason`` and ``--actor`` (default ``SVOD_ACTOR``, else the login name): who asked
    and why, kept in the service's ledger."""
    parser.add_argument("--reason", required=reason_required, help="why (kept in the ledger)")
    parser.add_argument("--actor", default=None, help="who asks (default: SVOD_ACTOR or login)")


def actor(args: argparse.Namespace) -> str:
    if args.actor:
        return str(args.actor)
    if os.environ.get("SVOD_ACTOR"):
        return os.environ["SVOD_ACTOR"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "svod-cli"


class UsageError(Exception):
    """A command line that parses but cannot be used (reported with exit code 2)."""


def pages(fetch: Callable[[str], tuple[Sequence[Any], str]], limit: int = 0) -> Iterator[Any]:
    """Every item of a paginated listing: ``fetch(page_token)`` returns (items, next token).
    Stops after ``limit`` items when it is positive."""
    token, count = "", 0
    while True:
        items, token = fetch(token)
        for item in items:
            yield item
            count += 1
            if limit and count >= limit:
                return
        if not token:
            return


def timestamp_text(value: Any) -> str:
    """A google.protobuf.Timestamp for people (UTC, to the second); empty when unset."""
    if not value.seconds and not value.nanos:
        return ""
    return value.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")


def enum_text(value: int, enum: Any, prefix: str) -> str:
    """``IDENTIFIER_TYPE_PHONE`` -> ``phone``."""
    return str(enum.Name(value)).removeprefix(prefix).lower()


def read_json_message(path: str, message: MessageT) -> MessageT:
    """A protobuf message from a JSON file (``-`` reads standard input); a file that does not
    parse is a UsageError naming the file and the problem."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        return json_format.Parse(text, message)
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror}") from None
    except json_format.ParseError as error:
        raise UsageError(f"{path}: not a {message.DESCRIPTOR.name} in JSON: {error}") from None
