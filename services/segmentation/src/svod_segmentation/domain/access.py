"""Segment-scoped access: which segments a principal may see.

A principal's ``segments`` come from the key file (svod_runtime.auth); a principal without
them, or any call while authentication is off, is unrestricted.
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
