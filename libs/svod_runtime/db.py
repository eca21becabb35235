"""Database plumbing: engines, readiness checks, and creating a service's schema and role."""

from __future__ import annotations

import contextlib
import json
import re
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson
import psycopg
from opentelemetry import trace
from psycopg import sql
from psycopg.rows import namedtuple_row
from psycopg.types.json import set_json_loads
from pydantic import Field
from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from svod_runtime.config import role_name, sqlalchemy_url
from svod_runtime.errors import FieldViolation, InvalidArgument, Unavailable
from svod_runtime.pool_metrics import TimedQueuePool
from svod_runtime.settings import SettingsModel

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


class PoolSettings(SettingsModel):
    pool_size: int = Field(
        10,
        ge=1,
        validation_alias="SVOD_DB_POOL_SIZE",
        description="Database connections per service process (as many again on bursts).",
    )
    ping_idle_s: float = Field(
        1.0,
        ge=0.0,
        validation_alias="SVOD_DB_PING_IDLE_S",
        description="A pooled connection idle this long is pinged before use.",
    )


def create_engine(
    url: str, *, pool_size: int | None = None, autocommit: bool = False
) -> AsyncEngine:
    """An async engine; pool size from SVOD_DB_POOL_SIZE (default 10, as many again on bursts).

    Pre-ping of idle connections only (``ping_idle_connections``): a connection idle for
    SVOD_DB_PING_IDLE_S (default 1 s) is pinged before use and replaced if the server dropped
    it (a database restart), so a request after an outage does not fail on a dead connection.
    SQLAlchemy's own ``pool_pre_ping`` pings on every checkout: 0.23 ms of wall and 0.15 ms of
    CPU per checkout + ``SELECT 1`` on loopback (0.62 -> 0.86 ms wall, 0.47 -> 0.64 ms CPU,
    /tmp bench of 3,000 checkouts), a third of a GetProfile's CPU. A connection in steady use
    is not pinged: if the server goes away under it, the error is UNAVAILABLE
    (``database_unavailable``), SQLAlchemy discards the whole pool's connections of before the
    error, and the caller's retry policy tries again. ``autocommit`` engines serve
    single-statement reads without BEGIN/COMMIT round trips.

    JIT is off on every connection: services run short statements whose plans can still look
    expensive to the planner (segmentation's evaluation of 200 customers: 8 ms to run, 700+ ms
    to JIT-compile, seen in auto_explain), so compiling only ever added latency.
    """
    settings = PoolSettings.load()
    if pool_size is None:
        pool_size = settings.pool_size
    set_json_loads(load_json)
    engine = create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        # Tells the metrics how long checkouts wait (svod_runtime.pool_metrics).
        poolclass=TimedQueuePool,
        connect_args={"options": "-c jit=off"},
        # An autocommit connection holds no transaction to roll back when it is returned.
        **({"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None} if autocommit else {}),
    )
    ping_idle_connections(engine, settings.ping_idle_s)
    return engine


_IDLE_SINCE = "svod_idle_since"


def ping_idle_connections(engine: AsyncEngine, idle_s: float) -> None:
    """Pings a pooled connection before use when it sat idle for ``idle_s`` or more; one the
    server dropped is replaced by a fresh one (the pool retries the checkout)."""
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if not _between_statements(dbapi_connection):
            record.info.pop(_IDLE_SINCE, None)
            raise sa_exc.DisconnectionError("pooled connection was left inside a statement")
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < idle_s:
            return
        try:
            sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # any failure: the connection is dead
            raise sa_exc.DisconnectionError("pooled connection did not answer a ping") from error


def _between_statements(dbapi_connection: Any) -> bool:
    """Whether the connection's protocol is where a new caller can start: no statement in
    progress and not in pipeline mode. A call cancelled inside psycopg (a client gone while
    a direct statement or pipeline of ``fetch_direct*`` ran; gRPC cancels the handler) can
    leave libpq in pipeline mode or with a result unread, while SQLAlchemy's rollback on
    return still succeeds: the next caller then read another statement's result
    (ResourceClosedError, INTERNAL, on a resumed import in tests/e2e/test_import_cli; 1 in
    ~600 cancelled stages in a probe). Reading two libpq fields costs nothing; such a
    connection is replaced (the pool retries the checkout with a fresh one)."""
    pgconn = getattr(getattr(dbapi_connection, "driver_connection", None), "pgconn", None)
    if pgconn is None:
        return True
    return bool(
        pgconn.pipeline_status == psycopg.pq.PipelineStatus.OFF
        and pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    )


# Integers of 19 digits or more may not fit in 64 bits: orjson would turn them into floats.
# Looked for as a run of 19 zeros in the value with every ASCII digit made "0" and every other
# byte "." (bytes.translate, then a substring search, both in C): a regular expression
# (\d{19}) took 5.4 us on a profile's 518-byte metrics document, five times orjson's parse of
# it (1.0 us), and 6.5% of the profile service's samples under an event stream (py-spy).
_DIGIT_RUNS = bytes(
    ord("0") if chr(b).isascii() and chr(b).isdigit() else ord(".") for b in range(256)
)
_LONG_RUN = b"0" * 19


def has_long_digit_run(data: bytes | bytearray | memoryview | str) -> bool:
    """Whether ``data`` holds 19 ASCII digits in a row (a JSON integer that may not fit in
    64 bits, or a long number inside a string). A text is looked at as UTF-8, where no other
    character makes an ASCII digit's byte."""
    raw: bytes | bytearray
    if isinstance(data, str):
        raw = data.encode("utf-8", "surrogatepass")
    elif isinstance(data, memoryview):
        raw = data.tobytes()
    else:
        raw = data
    return _LONG_RUN in raw.translate(_DIGIT_RUNS)


def load_json(data: bytes | str) -> Any:
    """JSON and JSONB values as psycopg hands them over, parsed with orjson: json and jsonb
    columns are most of what identity reads per candidate record, and ``json.loads`` was a
    seventh of ResolveBatch's time. orjson reads integers beyond 64 bits as floats; a value
    with a run of 19 digits (such a number, or a long card number in a string), or one orjson
    refuses, goes to ``json.loads`` instead: the result is always what ``json.loads`` returns."""
    if not has_long_digit_run(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:  # e.g. 1e400, which json reads as infinity
            pass
    return json.loads(bytes(data) if isinstance(data, memoryview) else data)


# Dataclasses go to ``default``, as with json.dumps. Dates and times orjson writes itself, as
# isoformat() does (checked for UTC, naive, fixed and zoneinfo offsets, with and without
# microseconds): segmentation's rows carry a few per change.
_DUMP_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS


def dump_json(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """JSON text of ``value`` for a statement parameter (rows sent as one jsonb document),
    written with orjson: json.dumps of a 500-row batch of events took 2.0 ms, orjson 0.34 ms,
    and the event path dumps a few such documents per batch in profile and segmentation
    (py-spy: 7-10% of their samples, issue #20). Postgres reads the same value from both
    (orjson writes text unescaped, as json.dumps with ``ensure_ascii=False``; dates and times
    as isoformat()). What orjson refuses and json.dumps takes - integers beyond 64 bits, keys
    that are not strings - goes to json.dumps. Only for values without floats: orjson writes
    NaN and infinities as null where json.dumps writes tokens Postgres refuses."""
    try:
        return orjson.dumps(value, default=default, option=_DUMP_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(value, ensure_ascii=False, default=default)


async def ping(engine: AsyncEngine, timeout_s: float = 2.0) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}"))
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False


def array_literal(values: Iterable[str]) -> str:
    """A Postgres array literal of strings, to send as one text parameter and CAST to an array
    type: psycopg dumps a list parameter element by element in Python, which on bulk
    statements (hundreds of ids) costs more than the statement."""
    quoted = ('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values)
    return "{" + ",".join(quoted) + "}"


def bytea_array_literal(values: Iterable[bytes]) -> str:
    """``array_literal`` for a bytea[] (hex elements), to CAST from one text parameter."""
    return "{" + ",".join('"\\\\x' + v.hex() + '"' for v in values) + "}"


# Tracers of the engines whose direct statements get database spans (see fetch_direct).
_DIRECT_TRACERS: weakref.WeakKeyDictionary[Any, trace.Tracer] = weakref.WeakKeyDictionary()
_NAMED_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def trace_direct_statements(engine: AsyncEngine, tracer: trace.Tracer) -> None:
    """Gives ``fetch_direct`` statements (and ``fetch_direct_pipelined`` pipelines) on
    ``engine`` a database span each, when they run inside a trace (a request's); statements
    of background work outside one get none."""
    _DIRECT_TRACERS[engine.sync_engine] = tracer


def direct_statement(statement: str) -> str:
    """A statement written with SQLAlchemy's ``:name`` parameters in psycopg's ``%(name)s``
    style, for ``fetch_direct`` (``::type`` casts are left alone; ``%`` is escaped)."""
    return _NAMED_PARAMETER.sub(r"%(\1)s", statement.replace("%", "%%"))


async def fetch_direct(
    conn: AsyncConnection,
    statement: str,
    params: Mapping[str, Any] | None = None,
    *,
    prepare: bool | None = None,
) -> list[Any]:
    """Rows (named tuples; none for a statement that returns none) of one statement run on
    the psycopg connection under ``conn``, in its transaction, past SQLAlchemy's execution
    layer. For hot paths only: there the greenlet hand-offs, the parsing of ``text()`` and
    result metadata cost more CPU than the statement itself (GetProfile measured 1.2 ms of CPU
    through SQLAlchemy, 0.5 ms direct; bulk writes, a tenth of the profile's event batches).
    Parameters are psycopg's ``%(name)s`` (see ``direct_statement``). Inside a trace, on an
    engine given to ``trace_direct_statements``, the statement gets a database span.
    ``prepare``: psycopg's (None: prepared once run often; False: planned afresh every time).
    """
    raw = await conn.get_raw_connection()
    try:
        cursor = raw.driver_connection.cursor(row_factory=namedtuple_row)  # type: ignore[union-attr]
        with _statement_span(conn, [statement]):
            await cursor.execute(statement, params, prepare=prepare)
        return await cursor.fetchall() if cursor.description is not None else []
    except psycopg.OperationalError:
        await _invalidate_if_closed(conn, raw.driver_connection)
        raise


async def _invalidate_if_closed(conn: AsyncConnection, driver: Any) -> None:
    """A psycopg error raised past SQLAlchemy does not tell the pool that the server closed
    the connection: without this the dead connection went back to the pool and every pass of
    profile's relay failed on it after a Postgres restart (tests/faults/test_postgres_restart).
    Called from the error path only: the hot path keeps no extra context manager."""
    if getattr(driver, "closed", False):
        await conn.invalidate()


async def fetch_direct_pipelined(
    conn: AsyncConnection, statements: Sequence[tuple[str, Mapping[str, Any] | None]]
) -> list[list[Any]]:
    """The rows of each statement, as ``fetch_direct``, all sent in one round trip (psycopg's
    pipeline mode). The server still runs them one after the other, each with a snapshot of
    its own, so a statement that waits for a lock holds it before the next one reads: a lock
    and the reads it guards cost one round trip instead of two. An error in one skips the
    rest and is raised, the transaction aborted as it would be with separate calls.
    """
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    try:
        with _statement_span(conn, [statement for statement, _ in statements]):
            async with driver.pipeline() as pipeline:  # type: ignore[union-attr]
                cursors = []
                for statement, params in statements:
                    cursor = driver.cursor(row_factory=namedtuple_row)  # type: ignore[union-attr]
                    await cursor.execute(statement, params)
                    cursors.append(cursor)
                await pipeline.sync()
                return [
                    await cursor.fetchall() if cursor.description is not None else []
                    for cursor in cursors
                ]
    except psycopg.OperationalError:
        await _invalidate_if_closed(conn, driver)
        raise


def _statement_span(
    conn: AsyncConnection, statements: Sequence[str]
) -> contextlib.AbstractContextManager[Any]:
    """One database span for statements run direct on ``conn``: only on an engine given to
    ``trace_direct_statements`` and inside a trace (a request's); otherwise nothing."""
    tracer = _DIRECT_TRACERS.get(conn.sync_engine)
    if tracer is None or not trace.get_current_span().get_span_context().is_valid:
        return contextlib.nullcontext()
    return tracer.start_as_current_span(
        " + ".join(_operation(statement) for statement in statements),
        kind=trace.SpanKind.CLIENT,
        attributes={"db.system": "postgresql", "db.statement": ";\n".join(statements)},
    )


def _operation(statement: str) -> str:
    """The span name: the statement's first keyword (SELECT, INSERT, WITH ...)."""
    head = statement.lstrip().split(None, 1)
    return head[0].upper() if head else "SQL"


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL as a plain libpq connection string for psycopg."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def bootstrap_service_schema(
    admin_url: str, service: str, *, password: str | None = None, extensions: tuple[str, ...] = ()
) -> None:
    """Creates the service's role and schema (owned by that role, closed to everyone else).

    Idempotent; needs an administrative connection. ``extensions`` are created inside the
    service's schema (e.g. ``pg_trgm`` for identity's fuzzy candidate search).
    """
    role = role_name(service)
    schema = service
    for name in (role, schema):
        if not _IDENT.match(name):
            raise ValueError(f"bad identifier {name!r}")
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        database = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        if password:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                sql.Identifier(schema), sql.Identifier(role)
            )
        )
        conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(database), sql.Identifier(role)
            )
        )
        conn.execute(
            sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path = {}").format(
                sql.Identifier(role), sql.Identifier(database), sql.Identifier(schema)
            )
        )
        for extension in extensions:
            conn.execute(
                sql.SQL("CREATE EXTENSION IF NOT EXISTS {} SCHEMA {}").format(
                    sql.Identifier(extension), sql.Identifier(schema)
                )
            )


# What PostgreSQL (or psycopg, before sending) refuses in a value, by SQLSTATE: a request that
# got past a service's own checks with such a value is still the client's error, not the
# service's. The texts never echo the value (it may be personal data).
_DATA_REFUSALS = {
    "22001": "a text value is too long",
    "22003": "a number is out of range",
    "22007": "a date or time is malformed",
    "22008": "a date or time is out of range",
    "22021": "a text value contains a NUL character (U+0000)",
    "22P02": "a value is malformed (e.g. not a UUID or not a number)",
    "22P05": "a text value contains a character that cannot be stored (U+0000)",
}


def data_refusal(error: BaseException) -> InvalidArgument | None:
    """INVALID_ARGUMENT for a value PostgreSQL cannot store or compare (SQLSTATE class 22, and
    psycopg's own NUL check), or None for any other error.

    A safety net behind the services' field checks, which name the field: what reaches here is
    refused as a whole ("request"), and nothing is written (the transaction rolls back).
    """
    cause = getattr(error, "orig", None) or error
    if not isinstance(cause, psycopg.DataError):
        return None
    state = cause.sqlstate or ""
    if not state and "NUL" in str(cause):
        state = "22021"
    why = _DATA_REFUSALS.get(state, "a value is out of range or malformed")
    return InvalidArgument([FieldViolation("request", why)])


# SQLSTATE classes that mean "the server cannot serve now" (not "this request is wrong"):
# 08 connection exception, 53 insufficient resources, 57 operator intervention (admin
# shutdown, crash shutdown, cannot connect now, statement cancelled), 58 system error.
_UNAVAILABLE_CLASSES = ("08", "53", "57", "58")
# And a write sent to a server that is (now) a read-only standby: a failover in progress.
_UNAVAILABLE_STATES = frozenset({"25006"})


def database_unavailable(error: BaseException) -> Unavailable | None:
    """UNAVAILABLE for a database that cannot be reached or is going away (connection refused
    or reset, server restarting, admin shutdown, pool exhausted), or None for any other error.

    The caller may retry: the transaction did not commit (or, if the connection broke during
    COMMIT, a retry with the same message id is taken idempotently). The text names the kind
    of trouble only, never the statement or its values.
    """
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 5:
        if _connection_trouble(current):
            return Unavailable(
                f"the database cannot be reached now ({type(current).__name__}); retry"
            )
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def _connection_trouble(error: BaseException) -> bool:
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True  # the pool had no connection to give in time / could not make one
    cause = getattr(error, "orig", None) or error
    if isinstance(cause, psycopg.OperationalError | psycopg.InterfaceError):
        # psycopg files serialization failures and deadlocks (class 40) under
        # OperationalError too: those are retried the same way, and so are fine here.
        return True
    if isinstance(cause, psycopg.Error):
        state = cause.sqlstate or ""
        return state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_STATES
    return isinstance(cause, ConnectionError)


def database_refusal(error: BaseException) -> InvalidArgument | Unavailable | None:
    """What a database error means for the caller: their value (INVALID_ARGUMENT), the
    database's trouble (UNAVAILABLE), or None (a bug: INTERNAL)."""
    return data_refusal(error) or database_unavailable(error)
