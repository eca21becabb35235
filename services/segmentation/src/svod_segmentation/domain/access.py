"""Segment-scoped access: which segments a principal may see.

Configured by ``SVOD_SEGMENT_ACCESS="principal=seg1|seg2;other=*"``. A principal that is listed
sees only its segments (``*`` = all); an unlisted principal, or a call without authentication
when API keys are off, is unrestricted.
"""

from __future__ import annotations

from dataclasses import dataclass

from svod_runtime.errors import PermissionDenied


@dataclass(frozen=True)
class Scope:
    """The segments a caller may use; ``None`` means all."""

    principal: str = ""
    segments: frozenset[str] | None = None

    def allows(self, segment_id: str) -> bool:
        return self.segments is None or segment_id in self.segments

    def require(self, segment_id: str) -> None:
        if not self.allows(segment_id):
            raise PermissionDenied(
                f"principal {self.principal!r} may not use segment {segment_id!r}"
            )

    def filter(self, segment_ids: list[str]) -> list[str]:
        return [s for s in segment_ids if self.allows(s)]


UNRESTRICTED = Scope()


def parse_access(spec: str) -> dict[str, frozenset[str] | None]:
    """``"mkt=vip|lapsed;ops=*"`` -> {"mkt": {"vip", "lapsed"}, "ops": None}."""
    grants: dict[str, frozenset[str] | None] = {}
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        principal, _, segments = item.partition("=")
        names = {s.strip() for s in segments.split("|") if s.strip()}
        grants[principal.strip()] = None if "*" in names else frozenset(names)
    return grants


def scope_for(principal: str | None, grants: dict[str, frozenset[str] | None]) -> Scope:
    if principal is None or principal not in grants:
        return Scope(principal or "")
    return Scope(principal, grants[principal])
