"""What every service does when a person is erased: forget the messages about them that are
still in its outbox, pending or refused for good (dead letters).

A message is about the person when its key is one of their customer ids, or when its payload
mentions one of their values (a phone, an e-mail: identity's reports, profile's delivery
failures carry them). Payloads are JSON: a value is looked for as written and as JSON escapes
it (non-ASCII letters as \\uXXXX).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


def _spellings(values: Iterable[str]) -> list[bytes]:
    out: set[bytes] = set()
    for value in values:
        value = value.strip()
        if len(value) < 3:  # too short to tell the person's from anything else
            continue
        out.add(value.encode())
        out.add(json.dumps(value)[1:-1].encode())
    return sorted(out)


async def scrub_outbox(
    conn: AsyncConnection, customer_ids: Sequence[str], values: Iterable[str] = ()
) -> int:
    """Deletes the service's outbox messages about the person; returns how many."""
    result = await conn.execute(
        text(
            """
            DELETE FROM outbox
            WHERE key = ANY(CAST(:k AS text[]))
               OR EXISTS (SELECT 1 FROM unnest(CAST(:v AS bytea[])) AS v(needle)
                          WHERE position(v.needle IN outbox.payload) > 0)
            """
        ),
        {"k": list(customer_ids), "v": _spellings(values)},
    )
    return int(result.rowcount or 0)
