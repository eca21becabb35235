"""The identity store: one transaction over the ``identity`` schema, and its parts.

Each part is a small class over the transaction's connection, in a module of its own; the
adapters in this package are the only code touching the schema."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svod_identity.adapters.announcements import Announcements
from svod_identity.adapters.erasure import CustomerErasure
from svod_identity.adapters.export import Export
from svod_identity.adapters.graph_reads import GraphReads
from svod_identity.adapters.graph_writes import GraphWrites
from svod_identity.adapters.ledger import Ledger
from svod_identity.adapters.review_queue import ReviewQueue
from svod_identity.adapters.rules_store import RulesAndModels
from svod_identity.adapters.state_loader import StateLoader
from svod_runtime.transactions import run_in_transaction

T = TypeVar("T")


class IdentityTransaction:
    """One database transaction of the identity store, by part."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.announcements = Announcements(conn)
        self.ledger = Ledger(conn)
        self.graph = GraphReads(conn)
        self.loader = StateLoader(conn)
        self.writes = GraphWrites(conn, self.ledger, self.announcements)
        self.reviews = ReviewQueue(conn)
        self.export = Export(conn, self.graph)
        self.erasure = CustomerErasure(conn)
        self.settings = RulesAndModels(conn)


class IdentityStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[IdentityTransaction]:
        async with self.engine.begin() as conn:
            yield IdentityTransaction(conn)

    async def run(self, work: Callable[[IdentityTransaction], Awaitable[T]]) -> T:
        """Runs ``work`` in one transaction, retried from the start after a deadlock or a
        serialisation failure (the runtime's shared runner)."""
        return await run_in_transaction(self.transaction, work)


def group_by_customer(rows: Iterable[tuple[str, Any]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for customer, item in rows:
        out[customer].append(item)
    return out
