"""Who may call what: one table mapping every RPC of Svod to the scope it needs.

Every RPC of the five services has exactly one entry in :data:`RPC_ACCESS` (a test fails when
one is missing; the interceptor refuses an RPC without an entry whenever authentication is on).
An entry says:

- ``scope``: what a caller's principal must hold (``Scope``);
- ``callers``: the services whose own principals (their key or their mTLS identity) may call it.
  A service principal holds no scopes: it may call exactly the RPCs that list it here, so
  ingestion may resolve and apply, but not merge customers or erase;
- ``segments``: what a principal limited to some segments gets (``SegmentRule``);
- ``audit``: whether a call is an administrative change or a read of personal data, each of
  which writes a line to the audit log (``Audit``), and for reads, where the response says how
  many customers it revealed (``count_field``).

Plain data on purpose: the services, the CLI and docs/security.md all read this one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    INGEST_WRITE = "ingest:write"
    PROFILE_READ = "profile:read"
    PROFILE_WRITE = "profile:write"
    PROFILE_EXPORT = "profile:export"
    PROFILE_ERASE = "profile:erase"
    IDENTITY_READ = "identity:read"
    IDENTITY_ADMIN = "identity:admin"
    SEGMENT_READ = "segment:read"
    SEGMENT_ADMIN = "segment:admin"
    QUALITY_READ = "quality:read"
    QUALITY_ADMIN = "quality:admin"
    # RPCs only the services call on each other.
    INTERNAL = "internal"


# What a human or application principal is given when mTLS alone authenticates it (no key
# file): everything but the services' own RPCs.
PUBLIC_SCOPES = frozenset(s for s in Scope if s is not Scope.INTERNAL)


class SegmentRule(StrEnum):
    """How an RPC treats a principal limited to some segments."""

    # The RPC reveals no customer: allowed.
    NONE = "none"
    # The RPC could reveal any customer: refused with PERMISSION_DENIED.
    REFUSE = "refuse"
    # The service itself shows only the principal's segments (and their members).
    SERVICE = "service"


class Audit(StrEnum):
    NONE = "none"
    # An administrative change: rules, merges, splits, review decisions, erasure, segments and
    # quality rules. The audit line names the principal and the outcome.
    CHANGE = "change"
    # A read of personal data: the audit line names the principal and how many customers.
    READ = "read"


@dataclass(frozen=True)
class Access:
    scope: Scope
    callers: frozenset[str] = frozenset()
    segments: SegmentRule = SegmentRule.NONE
    audit: Audit = Audit.NONE
    # For Audit.READ of a unary RPC: the repeated response field whose length is the number
    # of customers revealed ("" = one). A streaming RPC counts the messages it sent.
    count_field: str = ""


def _by(*services: str) -> frozenset[str]:
    return frozenset(services)


_INGESTION = "/svod.ingestion.v1.IngestionService/"
_IDENTITY = "/svod.identity.v1.IdentityService/"
_PROFILE = "/svod.profile.v1.ProfileService/"
_SEGMENTATION = "/svod.segmentation.v1.SegmentationService/"
_QUALITY = "/svod.quality.v1.QualityService/"

S = Scope
_REFUSE = SegmentRule.REFUSE
_SERVICE = SegmentRule.SERVICE
_CHANGE = Audit.CHANGE
_READ = Audit.READ

RPC_ACCESS: dict[str, Access] = {
    # -- ingestion ---------------------------------------------------------------------------
    _INGESTION + "Identify": Access(S.INGEST_WRITE),
    _INGESTION + "IdentifyStream": Access(S.INGEST_WRITE),
    _INGESTION + "Track": Access(S.INGEST_WRITE),
    _INGESTION + "TrackStream": Access(S.INGEST_WRITE),
    # Customer imports (svod import customers): like IdentifyStream, through identity's batch
    # engine; the job's state counts records and customers, it names none.
    _INGESTION + "StageCustomerImport": Access(S.INGEST_WRITE),
    _INGESTION + "CommitCustomerImport": Access(S.INGEST_WRITE),
    _INGESTION + "GetCustomerImport": Access(S.INGEST_WRITE),
    # Event imports (svod import events): like TrackStream, through profile's set-based event
    # fold; the job's state counts events and customers, it names none.
    _INGESTION + "StageEventImport": Access(S.INGEST_WRITE),
    _INGESTION + "CommitEventImport": Access(S.INGEST_WRITE),
    _INGESTION + "GetEventImport": Access(S.INGEST_WRITE),
    # Says which customer a record went to.
    _INGESTION + "GetRecordStatus": Access(S.INGEST_WRITE, segments=_REFUSE),
    _INGESTION + "ErasePayloads": Access(S.INTERNAL, _by("profile")),
    # Held events name their candidate customers (ids only).
    _INGESTION + "ListUnattributedEvents": Access(S.IDENTITY_READ, segments=_REFUSE),
    # Only schedules looks at held events (identity calls it after every merge and split):
    # nothing changes but when they are looked at, so no audit line.
    _INGESTION + "RecheckUnattributedEvents": Access(S.IDENTITY_ADMIN, _by("identity"), _REFUSE),
    # Dead letters (svod.common.v1.DeadLetter): topics, record ids, errors without personal data.
    _INGESTION + "ListDeadLetters": Access(S.INGEST_WRITE, segments=_REFUSE),
    _INGESTION + "GetDeadLetter": Access(S.INGEST_WRITE, segments=_REFUSE),
    _INGESTION + "RedriveDeadLetters": Access(S.INGEST_WRITE, segments=_REFUSE, audit=_CHANGE),
    # -- identity ----------------------------------------------------------------------------
    _IDENTITY + "Resolve": Access(S.INTERNAL, _by("ingestion")),
    _IDENTITY + "ResolveBatch": Access(S.INTERNAL, _by("ingestion")),
    _IDENTITY + "BatchLookupCustomers": Access(S.INTERNAL, _by("ingestion")),
    _IDENTITY + "LookupCustomer": Access(
        S.IDENTITY_READ, _by("profile"), segments=_REFUSE, audit=_READ
    ),
    _IDENTITY + "GetRecordCustomer": Access(S.IDENTITY_READ, segments=_REFUSE, audit=_READ),
    _IDENTITY + "MergeCustomers": Access(S.IDENTITY_ADMIN, segments=_REFUSE, audit=_CHANGE),
    _IDENTITY + "SplitCustomer": Access(S.IDENTITY_ADMIN, segments=_REFUSE, audit=_CHANGE),
    _IDENTITY + "Explain": Access(S.IDENTITY_READ, segments=_REFUSE, audit=_READ),
    # Profile reads the person's own items for their personal-data export.
    _IDENTITY + "ListReviewItems": Access(
        S.IDENTITY_ADMIN, _by("profile"), _REFUSE, _READ, count_field="items"
    ),
    _IDENTITY + "DecideReviewItem": Access(S.IDENTITY_ADMIN, segments=_REFUSE, audit=_CHANGE),
    _IDENTITY + "GetRules": Access(S.IDENTITY_READ),
    _IDENTITY + "UpdateRules": Access(S.IDENTITY_ADMIN, audit=_CHANGE),
    # Samples identifiers that would change hands (their values): a read of personal data.
    _IDENTITY + "PreviewRules": Access(
        S.IDENTITY_ADMIN, segments=_REFUSE, audit=_READ, count_field="sample_identifier_changes"
    ),
    _IDENTITY + "ListBlockedIdentifiers": Access(S.IDENTITY_READ, segments=_REFUSE),
    # Customer ids, record references, actors and reasons: no personal data.
    _IDENTITY + "ListLedgerEntries": Access(S.IDENTITY_READ, segments=_REFUSE),
    _IDENTITY + "ExportRecordMapping": Access(S.IDENTITY_READ, segments=_REFUSE, audit=_READ),
    _IDENTITY + "EraseCustomer": Access(S.INTERNAL, _by("profile"), audit=_CHANGE),
    _IDENTITY + "GetMatchModel": Access(S.IDENTITY_READ),
    _IDENTITY + "RefitMatchModel": Access(S.IDENTITY_ADMIN, audit=_CHANGE),
    # Bulk import (docs/bulk-import.md): ingestion's import jobs stage, commit and read back
    # records like Resolve's; the job's state names no customer.
    _IDENTITY + "StageImportRecords": Access(S.INTERNAL, _by("ingestion")),
    _IDENTITY + "CommitImport": Access(S.INTERNAL, _by("ingestion")),
    _IDENTITY + "ListImportResults": Access(S.INTERNAL, _by("ingestion")),
    _IDENTITY + "ListImportResultPages": Access(S.INTERNAL, _by("ingestion")),
    # A re-resolution's report samples identifiers changing hands (their values).
    _IDENTITY + "GetResolutionJob": Access(
        S.IDENTITY_ADMIN, _by("ingestion"), segments=_REFUSE, audit=_READ
    ),
    _IDENTITY + "ReresolveAll": Access(S.IDENTITY_ADMIN, segments=_REFUSE, audit=_CHANGE),
    # Dead letters: topics, customer ids, errors without personal data.
    _IDENTITY + "ListDeadLetters": Access(S.IDENTITY_READ, segments=_REFUSE),
    _IDENTITY + "GetDeadLetter": Access(S.IDENTITY_READ, segments=_REFUSE),
    _IDENTITY + "RedriveDeadLetters": Access(S.IDENTITY_ADMIN, segments=_REFUSE, audit=_CHANGE),
    # -- profile -----------------------------------------------------------------------------
    _PROFILE + "Apply": Access(S.INTERNAL, _by("ingestion")),
    _PROFILE + "ApplyBatch": Access(S.INTERNAL, _by("ingestion")),
    _PROFILE + "ApplyEvent": Access(S.INTERNAL, _by("ingestion")),
    _PROFILE + "ApplyEventBatch": Access(S.INTERNAL, _by("ingestion")),
    _PROFILE + "ApplyIdentityChange": Access(S.INTERNAL, _by("identity")),
    # Event imports (issue 22): ingestion's import jobs stage and commit history; an import's
    # state names no customer.
    _PROFILE + "StageEventImport": Access(S.INTERNAL, _by("ingestion")),
    _PROFILE + "CommitEventImport": Access(S.INTERNAL, _by("ingestion")),
    _PROFILE + "GetEventImport": Access(S.INTERNAL, _by("ingestion")),
    _PROFILE + "FoldCustomerImport": Access(S.INTERNAL, _by("ingestion")),
    _PROFILE + "FinishCustomerImport": Access(S.INTERNAL, _by("ingestion")),
    _PROFILE + "GetProfile": Access(S.PROFILE_READ, _by("quality"), _SERVICE, _READ),
    # Segmentation fetches contact data of the people a destination gets (activation).
    _PROFILE + "BatchGetProfiles": Access(
        S.PROFILE_READ, _by("segmentation"), _SERVICE, _READ, count_field="profiles"
    ),
    _PROFILE + "SearchProfiles": Access(
        S.PROFILE_READ, segments=_SERVICE, audit=_READ, count_field="profiles"
    ),
    # A dump of every profile: an export.
    _PROFILE + "StreamProfiles": Access(S.PROFILE_EXPORT, _by("quality"), _REFUSE, _READ),
    _PROFILE + "GetTimeline": Access(S.PROFILE_READ, segments=_SERVICE, audit=_READ),
    _PROFILE + "UpdateConsent": Access(S.PROFILE_WRITE, segments=_SERVICE, audit=_READ),
    _PROFILE + "ExportPersonalData": Access(S.PROFILE_EXPORT, segments=_SERVICE, audit=_READ),
    _PROFILE + "ErasePersonalData": Access(S.PROFILE_ERASE, segments=_REFUSE, audit=_CHANGE),
    _PROFILE + "GetErasureReceipt": Access(S.PROFILE_ERASE, segments=_REFUSE),
    # Dead letters: topics, customer ids, errors without personal data.
    _PROFILE + "ListDeadLetters": Access(S.PROFILE_READ, segments=_REFUSE),
    _PROFILE + "GetDeadLetter": Access(S.PROFILE_READ, segments=_REFUSE),
    _PROFILE + "RedriveDeadLetters": Access(S.PROFILE_WRITE, segments=_REFUSE, audit=_CHANGE),
    # -- segmentation ------------------------------------------------------------------------
    _SEGMENTATION + "CreateSegment": Access(S.SEGMENT_ADMIN, segments=_SERVICE, audit=_CHANGE),
    _SEGMENTATION + "UpdateSegment": Access(S.SEGMENT_ADMIN, segments=_SERVICE, audit=_CHANGE),
    _SEGMENTATION + "DeleteSegment": Access(S.SEGMENT_ADMIN, segments=_SERVICE, audit=_CHANGE),
    _SEGMENTATION + "GetSegment": Access(S.SEGMENT_READ, segments=_SERVICE),
    _SEGMENTATION + "ListSegments": Access(S.SEGMENT_READ, segments=_SERVICE),
    _SEGMENTATION + "PreviewSegment": Access(S.SEGMENT_READ, segments=_SERVICE),
    _SEGMENTATION + "ListMembers": Access(
        S.SEGMENT_READ, segments=_SERVICE, audit=_READ, count_field="members"
    ),
    _SEGMENTATION + "ExportMembers": Access(S.SEGMENT_READ, segments=_SERVICE, audit=_READ),
    _SEGMENTATION + "WatchMemberships": Access(S.SEGMENT_READ, segments=_SERVICE),
    _SEGMENTATION + "GetCustomerSegments": Access(S.SEGMENT_READ, _by("profile"), _SERVICE),
    _SEGMENTATION + "ApplyProfileChange": Access(S.INTERNAL, _by("profile")),
    _SEGMENTATION + "ApplyProfileChanges": Access(S.INTERNAL, _by("profile")),
    _SEGMENTATION + "EraseCustomer": Access(S.INTERNAL, _by("profile")),
    # Ingestion asks once at the end of a customer import.
    _SEGMENTATION + "RecomputeSegments": Access(
        S.SEGMENT_ADMIN, _by("ingestion"), segments=_SERVICE, audit=_CHANGE
    ),
    # Activation: destinations are configuration; binding a segment to one, starting a sync
    # and sending dead letters again send personal data out of Svod (an export).
    _SEGMENTATION + "CreateDestination": Access(S.SEGMENT_ADMIN, audit=_CHANGE),
    _SEGMENTATION + "GetDestination": Access(S.SEGMENT_READ),
    _SEGMENTATION + "ListDestinations": Access(S.SEGMENT_READ),
    _SEGMENTATION + "DeleteDestination": Access(S.SEGMENT_ADMIN, audit=_CHANGE),
    _SEGMENTATION + "CreateBinding": Access(S.PROFILE_EXPORT, segments=_SERVICE, audit=_CHANGE),
    _SEGMENTATION + "ListBindings": Access(S.SEGMENT_READ, segments=_SERVICE),
    _SEGMENTATION + "DeleteBinding": Access(S.SEGMENT_ADMIN, segments=_SERVICE, audit=_CHANGE),
    _SEGMENTATION + "StartSync": Access(S.PROFILE_EXPORT, segments=_SERVICE, audit=_CHANGE),
    _SEGMENTATION + "GetSync": Access(S.SEGMENT_READ, segments=_SERVICE),
    # Deliveries name no customer (counts, states, errors without personal data).
    _SEGMENTATION + "ListDeliveries": Access(S.SEGMENT_READ),
    _SEGMENTATION + "RedriveDeliveries": Access(S.PROFILE_EXPORT, segments=_REFUSE, audit=_CHANGE),
    # Totals per campaign and channel: no customer revealed.
    _SEGMENTATION + "GetCampaignReport": Access(S.SEGMENT_READ),
    _SEGMENTATION + "GetResponsiveness": Access(S.SEGMENT_READ, segments=_REFUSE, audit=_READ),
    # Dead letters of the outbox (webhook and export jobs; deliveries have their own above).
    _SEGMENTATION + "ListDeadLetters": Access(S.SEGMENT_READ, segments=_REFUSE),
    _SEGMENTATION + "GetDeadLetter": Access(S.SEGMENT_READ, segments=_REFUSE),
    # Sends data out of Svod again, like RedriveDeliveries.
    _SEGMENTATION + "RedriveDeadLetters": Access(S.PROFILE_EXPORT, segments=_REFUSE, audit=_CHANGE),
    # -- quality -----------------------------------------------------------------------------
    _QUALITY + "StandardizeBatch": Access(S.INTERNAL, _by("ingestion")),
    _QUALITY + "CreateValidationRule": Access(S.QUALITY_ADMIN, audit=_CHANGE),
    _QUALITY + "ListValidationRules": Access(S.QUALITY_READ),
    _QUALITY + "DeleteValidationRule": Access(S.QUALITY_ADMIN, audit=_CHANGE),
    _QUALITY + "ReportDuplicates": Access(S.INTERNAL, _by("identity")),
    # Campaign systems report bounces: feeding facts in, like ingestion.
    _QUALITY + "ReportContactFailures": Access(S.INGEST_WRITE, _by("profile")),
    _QUALITY + "EraseCustomer": Access(S.INTERNAL, _by("profile")),
    _QUALITY + "GetViolationStats": Access(S.QUALITY_READ),
    _QUALITY + "GetProfileScore": Access(S.QUALITY_READ, _by("profile"), _REFUSE),
    _QUALITY + "RefreshQualityReport": Access(S.QUALITY_ADMIN, audit=_CHANGE),
    _QUALITY + "GetQualityReport": Access(S.QUALITY_READ),
}

# Reachable without any credential: probes and tooling.
OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


def access_for(method: str) -> Access | None:
    return RPC_ACCESS.get(method)
