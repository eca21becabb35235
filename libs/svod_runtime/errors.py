"""Errors a service's domain raises; the server maps each to one gRPC status code.

Plain Python on purpose: domain modules raise these without knowing about gRPC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request, named by its path (e.g. ``record.identifiers[0].value``)."""

    field: str
    description: str


class SvodError(Exception):
    """Base of every error with a defined status code."""

    code: str = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(SvodError):
    code = "INVALID_ARGUMENT"

    def __init__(self, violations: Iterable[FieldViolation], message: str = "") -> None:
        self.violations = tuple(violations)
        if not message:
            message = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(message or "invalid argument")


class NotFound(SvodError):
    code = "NOT_FOUND"


class AlreadyExists(SvodError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(SvodError):
    """The request is valid but the system's state refuses it. ``reason`` (UPPER_SNAKE_CASE)
    and ``metadata`` go to the caller as google.rpc.ErrorInfo, for programs to act on."""

    code = "FAILED_PRECONDITION"

    def __init__(
        self, message: str, *, reason: str = "", metadata: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.metadata = dict(metadata or {})


ERASED_REASON = "CUSTOMER_ERASED"
# Ends the message of every CustomerErased refusal: a peer that only sees the text (an outbox
# relay's DeliveryError) tells an erasure from other refusals by it.
ERASED_TEXT = "was erased: messages about them are dropped"


class CustomerErased(FailedPrecondition):
    """A message about a customer erased on request: dropped, never applied."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(
            f"customer {customer_id} {ERASED_TEXT}",
            reason=ERASED_REASON,
            metadata={"customer_id": customer_id},
        )


def is_erasure(refusal: str) -> bool:
    """Whether a peer's refusal (its status text) says the customer was erased."""
    return ERASED_TEXT in refusal


class PermissionDenied(SvodError):
    code = "PERMISSION_DENIED"


class Unauthenticated(SvodError):
    code = "UNAUTHENTICATED"


class ResourceExhausted(SvodError):
    """Over a limit (rate, concurrent streams); ``retry_after_s`` says when to try again."""

    code = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(SvodError):
    """A dependency (database, peer service) cannot be reached now; the caller may retry."""

    code = "UNAVAILABLE"


class ConfigurationError(Exception):
    """The service cannot start with this configuration; the message says what to set."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ViolationCollector:
    """Collects field violations so a request reports all its bad fields at once."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.violations.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations)
