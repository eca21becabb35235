"""Admission of one call: authentication, authorization by the RPC table, rate limits, stream
caps, and the audit line when it ends. The server interceptor calls :meth:`Guard.admit` before
the handler and :meth:`Admission.finish` after it; nothing else of the interceptor's work
(spans, error mapping, deadlines, logging) lives here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from svod_runtime import audit
from svod_runtime.access import Access
from svod_runtime.auth import (
    ANONYMOUS,
    Authenticator,
    Principal,
    authorize,
    is_open,
    reset_current_principal,
    set_current_principal,
)
from svod_runtime.errors import PermissionDenied, Unauthenticated
from svod_runtime.limits import LimitDefaults, PrincipalLimits


@dataclass
class Admission:
    guard: Guard
    method: str
    principal: Principal
    access: Access | None
    stream_slot: bool
    token: Any = None
    customers: int = 0

    def reveal(self, response: object) -> None:
        """Counts the customers a unary answer revealed (for the audit line)."""
        if self.access is not None:
            self.customers += audit.customers_in(self.access, response)

    def reveal_one(self) -> None:
        """A streamed message went out (one customer or record)."""
        self.customers += 1

    def finish(self, code: grpc.StatusCode) -> None:
        if self.token is not None:
            reset_current_principal(self.token)
            self.token = None
        if self.stream_slot:
            self.guard.limits.close_stream(self.principal)
            self.stream_slot = False
        audit.record_call(
            self.guard.service, self.method, self.principal, self.access, code, self.customers
        )


class Guard:
    def __init__(
        self,
        service: str,
        authenticator: Authenticator | None = None,
        limits: PrincipalLimits | None = None,
    ) -> None:
        self.service = service
        self.authenticator = authenticator or Authenticator()
        self.limits = limits or PrincipalLimits(LimitDefaults())

    def admit(self, method: str, context: grpc.aio.ServicerContext, streaming: bool) -> Admission:
        """The call's admission, its principal set as current; raises the refusal otherwise."""
        if is_open(method):
            return Admission(self, method, ANONYMOUS, None, False)
        name = "?"
        try:
            principal = self._principal(context)
            name = principal.name
            access = authorize(principal, method)
        except (Unauthenticated, PermissionDenied) as refusal:
            code = grpc.StatusCode.UNAUTHENTICATED
            if isinstance(refusal, PermissionDenied):
                code = grpc.StatusCode.PERMISSION_DENIED
            audit.record_denied(self.service, method, name, code)
            raise
        self.limits.admit_call(principal)
        slot = self.limits.open_stream(principal) if streaming else False
        admission = Admission(self, method, principal, access, slot)
        admission.token = set_current_principal(principal)
        return admission

    def _principal(self, context: grpc.aio.ServicerContext) -> Principal:
        authenticator = self.authenticator
        if not authenticator.enabled:
            return ANONYMOUS
        metadata: Mapping[str, Any] = dict(context.invocation_metadata() or ())
        auth_context: Mapping[str, Sequence[bytes]] = (
            context.auth_context() if authenticator.mutual_tls else {}
        )
        return authenticator.authenticate(metadata, auth_context)
