"""The audit log: one structured line per administrative change and per read of personal data.

Lines go to the logger ``svod.audit`` (always at INFO, whatever SVOD_LOG_LEVEL says) with the
fields ``audit`` ("change", "read" or "denied"), ``principal``, ``rpc``, ``code``, ``customers``
(reads: how many customers the answer revealed) and ``trace_id``. They never carry request or
response contents: who asked for what, not what they saw.
"""

from __future__ import annotations

import logging

import grpc

from svod_runtime.access import Access, Audit
from svod_runtime.auth import Principal
from svod_runtime.telemetry import current_trace_id

log = logging.getLogger("svod.audit")
log.setLevel(logging.INFO)


def customers_in(access: Access, response: object) -> int:
    """How many customers a unary answer revealed (the entry's count_field, else one)."""
    if not access.count_field:
        return 1
    return len(getattr(response, access.count_field, ()))


def record_call(
    service: str,
    method: str,
    principal: Principal,
    access: Access | None,
    code: grpc.StatusCode,
    customers: int,
) -> None:
    """Writes the audit line of a finished call, if its RPC is audited."""
    if access is None or access.audit is Audit.NONE:
        return
    kind = access.audit.value
    if access.audit is Audit.READ and code != grpc.StatusCode.OK and customers == 0:
        return
    log.info(
        "audit",
        extra={
            "audit": kind,
            "service": service,
            "principal": principal.name,
            "rpc": method,
            "code": code.name,
            "customers": customers if access.audit is Audit.READ else None,
            "trace_id": current_trace_id(),
        },
    )


def record_denied(service: str, method: str, principal_name: str, code: grpc.StatusCode) -> None:
    """A refused call (no key, missing scope, over a limit) is audited too."""
    log.info(
        "audit",
        extra={
            "audit": "denied",
            "service": service,
            "principal": principal_name,
            "rpc": method,
            "code": code.name,
            "trace_id": current_trace_id(),
        },
    )
