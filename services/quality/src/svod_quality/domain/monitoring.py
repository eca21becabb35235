"""Counting findings for monitoring: by rule, field (without positions) and action.

A finding's ``field`` points at one value of one record (``identifiers[2].value``); monitoring
wants the kind of field instead (``phone``), so that a day's errors of one source add up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from svod_quality.domain.model import FindingAction, RawRecord, Result

# (rule, field, action) -> number of findings.
FindingKey = tuple[str, str, str]


def finding_field(record: RawRecord, path: str) -> str:
    """The monitored field of a finding path: ``identifiers[1].value`` -> the identifier's type,
    ``name.first_name`` -> ``first_name``, ``addresses[0].city`` -> ``city``,
    ``attributes[tier]`` -> ``attributes.tier``; anything else as it is."""
    if path.startswith("identifiers["):
        end = path.find("]")
        index = int(path[12:end]) if end > 12 and path[12:end].isdigit() else -1
        if 0 <= index < len(record.identifiers):
            return record.identifiers[index][0]
        return "identifiers"
    if path.startswith("name."):
        return path[5:]
    if path.startswith("addresses["):
        _, dot, rest = path.partition("].")
        return rest if dot else "addresses"
    if path.startswith("attributes[") and path.endswith("]"):
        return "attributes." + path[11:-1]
    return path


@dataclass(slots=True)
class BatchTally:
    """What a batch (or a part of one) did: records, refused and flagged ones, findings."""

    records: int = 0
    rejected: int = 0
    flagged: int = 0
    findings: Counter[FindingKey] = field(default_factory=Counter)

    def add(self, sent: RawRecord, result: Result) -> None:
        """Counts one record's result; ``sent`` is the record as the source sent it."""
        self.records += 1
        self.rejected += result.rejected
        flagged = False
        for finding in result.findings:
            flagged = flagged or finding.action is FindingAction.FLAGGED
            self.findings[(finding.rule, finding_field(sent, finding.field), finding.action)] += 1
        self.flagged += flagged

    def merge(self, other: BatchTally) -> None:
        self.records += other.records
        self.rejected += other.rejected
        self.flagged += other.flagged
        self.findings.update(other.findings)


def tally(pairs: Iterable[tuple[RawRecord, Result]]) -> BatchTally:
    out = BatchTally()
    for sent, result in pairs:
        out.add(sent, result)
    return out
