"""Where the ids merged into a customer point after the customer is split.

A merged-away id keeps answering for its person. When a split moves records out of the
customer it was merged into, the id follows the records it stood for: those first placed under
it (as the ledger says). It points at the side holding more of them now - the split's target
when most of them moved, the source when most stayed; an id whose records are evenly divided,
or that holds none any more (erased, or moved by an earlier split), goes where the id it was
merged into goes. So after a bridge merge and its undoing, the old id of the person split out
answers with that person again, never with the customer the records left.
"""

from __future__ import annotations

from collections.abc import Mapping


def alias_sides(
    parents: Mapping[str, str],
    holdings: Mapping[str, Mapping[str, int]],
    source: str,
    target: str,
) -> dict[str, str]:
    """Each merged-away id of ``source`` (``parents``: id -> the id it was merged into, the
    tree rooted at ``source``) -> ``source`` or ``target``, given where the records first
    placed under it are now (``holdings``: id -> current customer -> records)."""
    sides: dict[str, str] = {}

    def side(alias: str, depth: int = 0) -> str:
        if alias == source or depth > 64:
            return source
        if alias in sides:
            return sides[alias]
        held = holdings.get(alias, {})
        moved, stayed = held.get(target, 0), held.get(source, 0)
        if moved > stayed:
            chosen = target
        elif stayed > moved:
            chosen = source
        else:
            chosen = side(parents.get(alias, source), depth + 1)
        sides[alias] = chosen
        return chosen

    for alias in parents:
        side(alias)
    return sides
