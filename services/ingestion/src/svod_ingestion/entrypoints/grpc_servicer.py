"""Thin gRPC adapter of the ingestion service."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc
from google.type import money_pb2
from opentelemetry import trace

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod_contacts.cards import normalize_card
from svod_contacts.emails import normalize_email
from svod_contacts.identifiers import IdentifierType
from svod_contacts.phones import normalize_phone
from svod_ingestion.adapters.quality_client import QualityStandardizer, Standardized, Unchecked
from svod_ingestion.domain.attribution import HeldEvent, Issue
from svod_ingestion.domain.imports import (
    MAX_IMPORT_RECORDS,
    CustomerImport,
    ImportPhase,
    ImportState,
    check_import_id,
)
from svod_ingestion.domain.messages import (
    CONTACT_CHANNELS,
    EVENT_TYPES,
    IDENTIFIER_TYPES,
    NAMESPACED,
    Amount,
    IdentifyMessage,
    Line,
    TrackMessage,
    validate_identify,
    validate_ref,
    validate_track,
)
from svod_ingestion.domain.model import Accepted, Incoming, MessageKind, RecordState
from svod_ingestion.service_layer.imports import CustomerImports, EventImports
from svod_ingestion.service_layer.use_cases import IngestionService
from svod_runtime import bounds
from svod_runtime.bounds import MAX_MESSAGE_ID, MAX_STREAM_MESSAGES, SOURCE_PATTERN
from svod_runtime.dead_letters import DeadLetterRpcs
from svod_runtime.errors import InvalidArgument, SvodError, Unavailable, ViolationCollector
from svod_runtime.outbox import DeliveryError
from svod_runtime.priority import step_aside
from svod_runtime.protoconv import (
    checked_timestamp,
    datetime_to_timestamp,
    enum_short_name,
    enum_short_names,
    enum_value,
    proto_date_parts,
)

_ID_TYPE = common_pb2.IdentifierType.DESCRIPTOR
_CHANNEL = common_pb2.SourceChannel.DESCRIPTOR
_EVENT_TYPE = common_pb2.EventType.DESCRIPTOR
_GENDER = common_pb2.Gender.DESCRIPTOR
_STATE = {
    RecordState.PENDING: ingestion_pb2.RecordStatus.STATE_PENDING,
    RecordState.DELIVERED: ingestion_pb2.RecordStatus.STATE_DELIVERED,
    RecordState.FAILED: ingestion_pb2.RecordStatus.STATE_FAILED,
    RecordState.UNATTRIBUTED: ingestion_pb2.RecordStatus.STATE_UNATTRIBUTED,
}
# Short names by number of the enums every streamed event converts (several a message).
_ID_TYPE_NAMES = enum_short_names(_ID_TYPE, "IDENTIFIER_TYPE_")
_CHANNEL_NAMES = enum_short_names(_CHANNEL, "SOURCE_CHANNEL_")
_EVENT_TYPE_NAMES = enum_short_names(_EVENT_TYPE, "EVENT_TYPE_")
_ISSUE = ingestion_pb2.AttributionIssue.DESCRIPTOR


def issue_number(issue: Issue) -> ingestion_pb2.AttributionIssue.ValueType:
    return enum_value(ingestion_pb2.AttributionIssue, issue.value, "ATTRIBUTION_ISSUE_")


def issue_of(number: int, field: str, errors: ViolationCollector) -> Issue | None:
    name = enum_short_name(_ISSUE, number, "ATTRIBUTION_ISSUE_")
    try:
        return Issue(name)
    except ValueError:
        errors.add(field, "unknown or unspecified issue")
        return None


def unattributed_event(held: HeldEvent) -> ingestion_pb2.UnattributedEvent:
    event = ingestion_pb2.UnattributedEvent(
        record_id=held.record_id,
        record_ref=common_pb2.RecordRef(source=held.source, message_id=held.message_id),
        issue=issue_number(held.issue),
        candidate_customer_ids=list(held.candidates),
        received_time=datetime_to_timestamp(held.received_at),
        held_time=datetime_to_timestamp(held.held_at),
        checks=held.checks,
        next_check_time=datetime_to_timestamp(held.next_check_at),
    )
    if held.payload is not None:  # erased payloads keep only the reference
        stored = ingestion_pb2.TrackRequest.FromString(held.payload).event
        event.event_type = stored.type
        event.occurred_time.CopyFrom(stored.occurred_time)
    return event


def _identifiers(identifiers: Iterable[common_pb2.Identifier]) -> list[tuple[str, str, str]]:
    names = _ID_TYPE_NAMES
    return [(names.get(i.type, ""), i.value, i.namespace) for i in identifiers]


def identify_message(request: ingestion_pb2.IdentifyRequest) -> IdentifyMessage:
    record = request.record
    refused = ViolationCollector()
    return IdentifyMessage(
        source=request.record_ref.source,
        message_id=request.record_ref.message_id,
        channel=enum_short_name(_CHANNEL, request.channel, "SOURCE_CHANNEL_"),
        observed_at=checked_timestamp(request.observed_time, "observed_time", refused),
        identifiers=_identifiers(record.identifiers),
        names={
            "first_name": record.name.first_name,
            "last_name": record.name.last_name,
            "middle_name": record.name.middle_name,
            "full_name": record.name.full_name,
        },
        birth_date=proto_date_parts(record.birth_date),
        attributes=dict(record.attributes),
        addresses=[
            {
                "country_code": a.country_code,
                "postal_code": a.postal_code,
                "region": a.region,
                "city": a.city,
                "address_line": a.address_line,
            }
            for a in record.addresses
        ],
        gender=enum_short_name(_GENDER, record.gender, "GENDER_"),
        size_bytes=request.ByteSize(),
        refused=tuple(refused.violations),
    )


def _amount(money: money_pb2.Money) -> Amount:
    return Amount(money.currency_code, money.units, money.nanos)


def track_message(
    request: ingestion_pb2.TrackRequest, size_bytes: int | None = None
) -> TrackMessage:
    """The domain's track call; ``size_bytes``: the request's serialised size, when known."""
    event = request.event
    refused = ViolationCollector()
    return TrackMessage(
        source=request.record_ref.source,
        message_id=request.record_ref.message_id,
        channel=_CHANNEL_NAMES.get(request.channel, ""),
        event_type=_EVENT_TYPE_NAMES.get(event.type, ""),
        occurred_at=checked_timestamp(event.occurred_time, "event.occurred_time", refused),
        identifiers=_identifiers(event.identifiers),
        total=_amount(event.total),
        lines=[
            Line(
                line.quantity,
                _amount(line.unit_price),
                _amount(line.discount),
                line.sku,
                line.product_name,
                line.category,
            )
            for line in event.lines
        ],
        contact_channel=event.contact_channel,
        loyalty_points=event.loyalty_points,
        order_id=event.order_id,
        reference_id=event.reference_id,
        # dict() of an empty protobuf map still walks the Mapping protocol (1 us an event).
        properties=dict(event.properties) if event.properties else {},
        size_bytes=request.ByteSize() if size_bytes is None else size_bytes,
        refused=tuple(refused.violations),
    )


_EVENT_TYPE_SET = frozenset(EVENT_TYPES)
_CONTACT_CHANNEL_SET = frozenset(CONTACT_CHANNELS)
_IDENTIFIER_TYPE_SET = frozenset(IDENTIFIER_TYPES)
_NAMESPACED_SET = frozenset(NAMESPACED)
_MONEY_REQUIRED = frozenset({"order_placed", "order_returned"})
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def latest_clean_second(now: dt.datetime) -> int:
    """The first whole second (since the epoch) ``track_clean`` no longer vouches for at
    ``now``: every time before it is at most ``now`` + FUTURE_TOLERANCE."""
    delta = now + bounds.FUTURE_TOLERANCE - _EPOCH
    return delta.days * 86_400 + delta.seconds  # whole seconds, rounded down


def _clean_text(value: str, max_length: int) -> bool:
    return len(value) <= max_length and "\x00" not in value


_MAX_UNITS = bounds.MAX_AMOUNT_UNITS
_MAX_NANOS = bounds.MAX_NANOS


def _amount_ok(units: int, nanos: int) -> bool:
    """``not bounds.amount_violation(units, nanos)``, without the call and its texts."""
    return 0 <= nanos <= _MAX_NANOS and (
        0 <= units < _MAX_UNITS or (units == _MAX_UNITS and not nanos)
    )


# By identifier type number, of the types validate_identifiers knows: the contact spelling's
# normaliser (None: no spelling to check) and whether a namespace is required. One look-up a
# identifier instead of a name, a set test and up to four comparisons with StrEnum members.
_NORMALIZERS: dict[str, Callable[[str], str | None]] = {
    IdentifierType.PHONE.value: normalize_phone,
    IdentifierType.EMAIL.value: normalize_email,
    IdentifierType.LOYALTY_CARD.value: normalize_card,
}
_ID_CHECKS: dict[int, tuple[Callable[[str], str | None] | None, bool]] = {
    number: (_NORMALIZERS.get(name), name not in _NORMALIZERS and name in _NAMESPACED_SET)
    for number, name in _ID_TYPE_NAMES.items()
    if name in _IDENTIFIER_TYPE_SET
}
# Sources SOURCE_PATTERN matched (a stream's messages mostly share one): a set look-up instead
# of the regular expression per message. Bounded: emptied when full.
_CLEAN_SOURCES: set[str] = set()
_MAX_CLEAN_SOURCES = 1024


def _clean_source(source: str) -> bool:
    if source in _CLEAN_SOURCES:
        return True
    if not (source and SOURCE_PATTERN.fullmatch(source)):
        return False
    if len(_CLEAN_SOURCES) >= _MAX_CLEAN_SOURCES:
        _CLEAN_SOURCES.clear()
    _CLEAN_SOURCES.add(source)
    return True


def _clean_identifiers(identifiers: Sequence[common_pb2.Identifier]) -> bool:
    if not identifiers or len(identifiers) > bounds.MAX_IDENTIFIERS:
        return False
    for identifier in identifiers:
        check = _ID_CHECKS.get(identifier.type)
        if check is None:
            return False
        value, namespace = identifier.value, identifier.namespace
        if not (
            _clean_text(namespace, bounds.MAX_NAMESPACE)
            and _clean_text(value, bounds.MAX_IDENTIFIER_VALUE)
            and value.strip()
        ):
            return False
        normalizer, namespaced = check
        if normalizer is not None:
            if normalizer(value) is None:
                return False
        elif namespaced and not namespace.strip():
            return False
    return True


def _clean_lines(lines: Sequence[common_pb2.LineItem], currency: str) -> bool:
    """Lines validate_track finds nothing wrong with; a discounted line is left to it (the
    discounts' sum)."""
    if len(lines) > bounds.MAX_LINES:
        return False
    for line in lines:
        if not 0 < line.quantity <= bounds.MAX_QUANTITY:
            return False
        price = line.unit_price
        code, units, nanos = price.currency_code, price.units, price.nanos
        if (code or units or nanos) and not (code == currency and _amount_ok(units, nanos)):
            return False
        if line.HasField("discount"):  # absent: empty, without building the empty message
            discount = line.discount
            if discount.currency_code or discount.units or discount.nanos:
                return False
        if not (
            _clean_text(line.sku, bounds.MAX_SKU)
            and _clean_text(line.product_name, bounds.MAX_PRODUCT_NAME)
            and _clean_text(line.category, bounds.MAX_CATEGORY)
        ):
            return False
    return True


def _clean_properties(properties: Mapping[str, str]) -> bool:
    return len(properties) <= bounds.MAX_PROPERTIES and all(
        key
        and _clean_text(key, bounds.MAX_PROPERTY_NAME)
        and _clean_text(value, bounds.MAX_PROPERTY_VALUE)
        for key, value in properties.items()
    )


def track_clean(  # noqa: PLR0911 - one early answer per check, read once each
    request: ingestion_pb2.TrackRequest, size_bytes: int, latest_second: int, currency: str
) -> bool:
    """True only when ``validate_track(track_message(request, size_bytes), now, currency)``
    finds nothing wrong (``latest_second``: ``latest_clean_second(now)``); False also for some
    good requests (a discounted line, a time within a second of the future's edge), which
    then go the checked way - the only one that names what is wrong, so a refusal's field
    violations are always its. Every field is read once and tested, with no TrackMessage,
    Amounts, datetime or violation collector built: track_message + validate_track cost
    18.8-20.3 us of CPU an order event against 6.4-6.9 here (probe, 2,000 bench_events_path
    events, process_time, load 35-56; 13% of ingestion's py-spy samples of a 200,000-event
    import), for every event StageEventImport, Track and TrackStream take. Amounts, lines and
    identifiers are tested inline, a known source by a set look-up (issue #20, session 34:
    7.1 -> 6.1 us an event of the pipeline benchmark, min of 20 passes over 5,000).
    tests/properties/test_track_clean.py holds the two to each other."""
    if size_bytes > bounds.MAX_MESSAGE_BYTES:
        return False
    ref = request.record_ref
    message_id = ref.message_id
    if not (
        _clean_source(ref.source)
        and message_id
        and _clean_text(message_id, MAX_MESSAGE_ID)
        and _CHANNEL_NAMES.get(request.channel, "unspecified") != "unspecified"
    ):
        return False
    event = request.event
    kind = _EVENT_TYPE_NAMES.get(event.type, "")
    stamp = event.occurred_time
    seconds, nanos = stamp.seconds, stamp.nanos
    if (
        kind not in _EVENT_TYPE_SET
        or (seconds == 0 and nanos == 0)
        or not bounds.timestamp_in_range(seconds, nanos)
        or seconds >= latest_second
        or not _clean_identifiers(event.identifiers)
    ):
        return False
    total = event.total
    code, units, nanos = total.currency_code, total.units, total.nanos
    if code or units or nanos:
        if not (code == currency and _amount_ok(units, nanos)):
            return False
    elif kind in _MONEY_REQUIRED:
        return False
    lines = event.lines
    if lines and not _clean_lines(lines, currency):
        return False
    contact_channel, points = event.contact_channel, event.loyalty_points
    if not (
        _clean_text(event.order_id, bounds.MAX_ORDER_ID)
        and _clean_text(event.reference_id, bounds.MAX_REFERENCE_ID)
        and _clean_text(contact_channel, bounds.MAX_CONTACT_CHANNEL)
        and 0 <= points <= bounds.MAX_LOYALTY_POINTS
    ):
        return False
    if (
        kind.startswith("campaign_") or kind == "contact_failed"
    ) and contact_channel not in _CONTACT_CHANNEL_SET:
        return False
    if kind.startswith("loyalty_") and points == 0:
        return False
    properties = event.properties
    return not properties or _clean_properties(properties)


_IMPORT_STATE = {
    ImportState.STAGING: ingestion_pb2.CustomerImport.STATE_STAGING,
    ImportState.RUNNING: ingestion_pb2.CustomerImport.STATE_RUNNING,
    ImportState.SUCCEEDED: ingestion_pb2.CustomerImport.STATE_SUCCEEDED,
    ImportState.FAILED: ingestion_pb2.CustomerImport.STATE_FAILED,
}
_IMPORT_PHASE = {
    ImportPhase.STAGING: ingestion_pb2.CustomerImport.PHASE_STAGING,
    ImportPhase.RESOLVING: ingestion_pb2.CustomerImport.PHASE_RESOLVING,
    ImportPhase.FOLDING: ingestion_pb2.CustomerImport.PHASE_FOLDING,
    ImportPhase.SEGMENTS: ingestion_pb2.CustomerImport.PHASE_SEGMENTS,
    ImportPhase.DONE: ingestion_pb2.CustomerImport.PHASE_DONE,
}


def customer_import(job: CustomerImport) -> ingestion_pb2.CustomerImport:
    reply = ingestion_pb2.CustomerImport(
        import_id=job.import_id,
        state=_IMPORT_STATE[job.state],
        phase=_IMPORT_PHASE[job.phase],
        records_staged=job.records_staged,
        resolution_phase=job.resolution_phase,
        records_total=job.records_total,
        records_resolved=job.records_resolved,
        records_delivered=job.records_delivered,
        records_failed=job.records_failed,
        customers_created=job.customers_created,
        records_linked=job.records_linked,
        records_already_resolved=job.records_already_resolved,
        customers_merged=job.customers_merged,
        review_items_opened=job.review_items_opened,
        error=job.error,
    )
    _set_times(reply, job)
    return reply


def _set_times(
    reply: ingestion_pb2.CustomerImport | ingestion_pb2.EventImport, job: CustomerImport
) -> None:
    """An import's create, commit and finish times, those it has."""
    for field, moment in (
        ("create_time", job.created_at),
        ("commit_time", job.committed_at),
        ("finish_time", job.finished_at),
    ):
        if moment is not None:
            getattr(reply, field).CopyFrom(datetime_to_timestamp(moment))


_EVENT_IMPORT_STATE = {
    ImportState.STAGING: ingestion_pb2.EventImport.STATE_STAGING,
    ImportState.RUNNING: ingestion_pb2.EventImport.STATE_RUNNING,
    ImportState.SUCCEEDED: ingestion_pb2.EventImport.STATE_SUCCEEDED,
    ImportState.FAILED: ingestion_pb2.EventImport.STATE_FAILED,
}
_EVENT_IMPORT_PHASE = {
    ImportPhase.STAGING: ingestion_pb2.EventImport.PHASE_STAGING,
    ImportPhase.FOLDING: ingestion_pb2.EventImport.PHASE_FOLDING,
    ImportPhase.DONE: ingestion_pb2.EventImport.PHASE_DONE,
}


def event_import(job: CustomerImport) -> ingestion_pb2.EventImport:
    reply = ingestion_pb2.EventImport(
        import_id=job.import_id,
        state=_EVENT_IMPORT_STATE[job.state],
        phase=_EVENT_IMPORT_PHASE.get(job.phase, ingestion_pb2.EventImport.PHASE_UNSPECIFIED),
        events_staged=job.records_staged,
        events_handed_over=job.events_handed_over,
        events_applied=job.events_applied,
        events_duplicate=job.events_duplicate,
        events_erased=job.events_erased,
        customers_changed=job.customers_changed,
        records_delivered=job.records_delivered,
        records_failed=job.records_failed,
        error=job.error,
    )
    _set_times(reply, job)
    return reply


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _response(accepted: Accepted) -> ingestion_pb2.IdentifyResponse:
    return ingestion_pb2.IdentifyResponse(
        record_id=accepted.record_id,
        duplicate=accepted.duplicate,
        received_time=datetime_to_timestamp(accepted.received_at),
    )


STREAM_CHUNK = 500
# A stream's answer lists this many refused messages in full (all are counted), each with at
# most MAX_LISTED_VIOLATIONS field violations: the answer stays far below the 4 MiB a gRPC
# client receives by default, however bad the stream.
MAX_LISTED_REJECTIONS = 1000
MAX_LISTED_VIOLATIONS = 20


class StreamAnswer:
    """The BulkResponse of a stream, built chunk by chunk; refusals listed in stream order."""

    def __init__(self) -> None:
        self.response = ingestion_pb2.BulkResponse()
        self._pending: list[tuple[int, Any, SvodError]] = []

    def reject(self, index: int, request: Any, error: SvodError) -> None:
        self._pending.append((index, request, error))

    def count(self, accepted: Accepted) -> None:
        self.tally(not accepted.duplicate)

    def tally(self, new: bool) -> None:
        """One more message stored (``new``) or answered as a duplicate."""
        if new:
            self.response.accepted_count += 1
        else:
            self.response.duplicate_count += 1

    def add(self, accepted: int, duplicates: int) -> None:
        """``accepted`` more messages stored and ``duplicates`` more answered as duplicates."""
        if accepted:
            self.response.accepted_count += accepted
        if duplicates:
            self.response.duplicate_count += duplicates

    def end_chunk(self) -> None:
        """Lists the chunk's refusals (they arrive out of order within a chunk)."""
        response = self.response
        for index, request, error in sorted(self._pending, key=lambda item: item[0]):
            response.rejected_count += 1
            if len(response.rejected) >= MAX_LISTED_REJECTIONS:
                continue
            rejected = response.rejected.add(
                index=index, record_ref=request.record_ref, reason=error.message[:2000]
            )
            if isinstance(error, InvalidArgument):
                for v in error.violations[:MAX_LISTED_VIOLATIONS]:
                    rejected.field_violations.add(field=v.field, description=v.description)
        self._pending.clear()


# What a span says of a record reference that is not well-formed.
MALFORMED = "(malformed)"


def mark_span(ref: common_pb2.RecordRef) -> None:
    """Names the message on the call's span, so its trace can be found by source and message
    id (``svod trace record``); ids, not personal data."""
    # Only values the front door would accept: a malformed one is refused anyway, and it can
    # be anything a client sent (a property test's source was a long run of Cyrillic letters,
    # which the personal-data scan of spans rightly took for a name).
    source = ref.source if SOURCE_PATTERN.fullmatch(ref.source) else MALFORMED
    message_id = ref.message_id if len(ref.message_id) <= MAX_MESSAGE_ID else MALFORMED
    trace.get_current_span().set_attributes(
        {"svod.record.source": source, "svod.record.message_id": message_id}
    )


def _import_of(import_id: str, named: str, count: int, field: str) -> str:
    """The import a stage stream's message belongs to (the first message names it; a later
    one may repeat it), its ``count`` items checked against the per-message limit."""
    errors = ViolationCollector()
    if named and import_id and named != import_id:
        errors.add("import_id", "one stream stages one import")
    import_id = import_id or named
    check_import_id(import_id, errors)
    if count > MAX_IMPORT_RECORDS:
        errors.add(field, f"at most {MAX_IMPORT_RECORDS:,} per message")
    errors.raise_if_any()
    return import_id


def _answered(
    answer: StreamAnswer,
    storable: Sequence[tuple[int, Any, Incoming]],
    outcomes: Sequence[Accepted | SvodError],
) -> ingestion_pb2.BulkResponse:
    """A stage message's answer: the checks' refusals already in ``answer``, then each stored
    item's outcome."""
    for (index, message, _), outcome in zip(storable, outcomes, strict=True):
        if isinstance(outcome, SvodError):
            answer.reject(index, message, outcome)
        else:
            answer.count(outcome)
    answer.end_chunk()
    return answer.response


class IngestionServicer(DeadLetterRpcs, ingestion_pb2_grpc.IngestionServiceServicer):
    def __init__(
        self,
        service: IngestionService,
        standardizer: QualityStandardizer,
        currency: str,
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        self.service = service
        self.standardizer = standardizer
        self.currency = currency
        self.attributes = attributes or {}
        # Customer imports through identity's batch engine (set by the app).
        self.imports: CustomerImports | None = None
        # Event imports through profile's set-based event fold (set by the app).
        self.event_imports: EventImports | None = None

    def _checked(self, request: ingestion_pb2.IdentifyRequest, now: dt.datetime) -> None:
        validate_identify(identify_message(request), now, self.attributes)

    def _identify_incoming(
        self, request: ingestion_pb2.IdentifyRequest, standardized: Standardized, now: dt.datetime
    ) -> Incoming:
        """The standardised record to store; the fingerprint is the request as sent."""
        if standardized.violations:
            raise InvalidArgument(standardized.violations)
        stored = ingestion_pb2.IdentifyRequest()
        stored.CopyFrom(request)
        stored.record.CopyFrom(standardized.record)
        if not request.HasField("observed_time"):
            stored.observed_time.FromDatetime(now)
        # What is delivered is the standardised record: it must keep within the bounds too
        # (an expanded abbreviation must not make a field too long for identity or profile).
        validate_identify(identify_message(stored), now, self.attributes)
        return Incoming(
            kind=MessageKind.IDENTIFY,
            source=request.record_ref.source,
            message_id=request.record_ref.message_id,
            channel=enum_short_name(_CHANNEL, request.channel, "SOURCE_CHANNEL_"),
            fingerprint=request.SerializeToString(deterministic=True),
            payload=stored.SerializeToString(deterministic=True),
            quality_checked=standardized.checked,
        )

    async def check_stored(self, payloads: list[bytes]) -> list[bytes | DeliveryError]:
        """Quality's check of stored identify calls accepted while it could not be asked (the
        relay's QualityGate): the standardised payload to deliver, or the refusal - a reject
        rule or a bound the standardised record breaks (INVALID_ARGUMENT, for good), or
        quality's failure status (retried later)."""
        requests = [ingestion_pb2.IdentifyRequest.FromString(p) for p in payloads]
        results = await self.standardizer.check([(r.record_ref.source, r.record) for r in requests])
        now = dt.datetime.now(dt.UTC)
        verdicts: list[bytes | DeliveryError] = []
        # Records whose call to quality failed as a whole share one error: the relay then
        # splits them (outbox.py) until a refusal that is not an outage names one record.
        failed: dict[str, DeliveryError] = {}
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, Unchecked):
                verdicts.append(
                    failed.setdefault(
                        result.status,
                        DeliveryError(result.status, "quality could not check the record yet"),
                    )
                )
                continue
            try:
                if result.violations:
                    raise InvalidArgument(result.violations)
                checked = ingestion_pb2.IdentifyRequest()
                checked.CopyFrom(request)
                checked.record.CopyFrom(result.record)
                validate_identify(identify_message(checked), now, self.attributes)
            except InvalidArgument as refusal:
                verdicts.append(DeliveryError("INVALID_ARGUMENT", refusal.message))
            else:
                verdicts.append(checked.SerializeToString(deterministic=True))
        return verdicts

    async def _identify(self, request: ingestion_pb2.IdentifyRequest) -> Accepted:
        now = dt.datetime.now(dt.UTC)
        self._checked(request, now)
        (standardized,) = await self.standardizer.standardize(
            [(request.record_ref.source, request.record)]
        )
        return await self.service.accept(self._identify_incoming(request, standardized, now))

    def _track_incoming(
        self,
        request: ingestion_pb2.TrackRequest,
        now: dt.datetime | None,
        latest_second: int = 0,
    ) -> Incoming:
        """The checked request as stored (InvalidArgument naming every bad field), checked as
        of ``now`` (None: the time of the call); ``latest_second``: ``latest_clean_second``
        of a time not after it, worked out once by a caller checking many (an earlier one only
        sends more requests the checked way, which takes ``now``)."""
        # Serialised first: its length is the request's size (ByteSize() would walk it again).
        payload = request.SerializeToString(deterministic=True)
        latest = latest_second or latest_clean_second(now or _now())
        if not track_clean(request, len(payload), latest, self.currency):
            validate_track(track_message(request, len(payload)), now or _now(), self.currency)
        ref = request.record_ref
        return Incoming(
            kind=MessageKind.TRACK,
            source=ref.source,
            message_id=ref.message_id,
            channel=_CHANNEL_NAMES.get(request.channel, ""),
            fingerprint=payload,
            payload=payload,
        )

    async def _track(self, request: ingestion_pb2.TrackRequest) -> Accepted:
        return await self.service.accept(self._track_incoming(request, dt.datetime.now(dt.UTC)))

    async def _store_chunk(
        self, chunk: list[tuple[int, Any, Incoming]], answer: StreamAnswer
    ) -> None:
        """Stores a stream's checked messages in one transaction; each gets its own answer
        (counted, or refused)."""
        outcomes = await self.service.accept_counted([incoming for _, _, incoming in chunk])
        # Counted at C speed (outcomes are True, False or an error): a tally per message was
        # two protobuf field accesses each.
        accepted, duplicates = outcomes.count(True), outcomes.count(False)
        answer.add(accepted, duplicates)
        if accepted + duplicates < len(outcomes):
            for (index, request, _), outcome in zip(chunk, outcomes, strict=True):
                if isinstance(outcome, SvodError):
                    answer.reject(index, request, outcome)

    async def Track(
        self, request: ingestion_pb2.TrackRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.TrackResponse:
        mark_span(request.record_ref)
        accepted = await self._track(request)
        return ingestion_pb2.TrackResponse(
            record_id=accepted.record_id,
            duplicate=accepted.duplicate,
            received_time=datetime_to_timestamp(accepted.received_at),
        )

    async def TrackStream(
        self,
        request_iterator: AsyncIterator[ingestion_pb2.TrackRequest],
        context: grpc.aio.ServicerContext,
    ) -> ingestion_pb2.BulkResponse:
        """Checks each message; stores the good ones STREAM_CHUNK per transaction, a chunk
        while the stream reads the next (chunks are stored one after the other, in stream
        order). A bad message is refused alone; at most MAX_STREAM_MESSAGES are read; the
        answer comes once every chunk is committed."""
        answer = StreamAnswer()
        chunk: list[tuple[int, Any, Incoming]] = []
        refused: list[tuple[int, Any, SvodError]] = []
        storing: asyncio.Task[None] | None = None
        index = 0
        # track_clean's bound for the chunk being read, worked out when it starts (once per
        # message it was 0.4 us an event); a request it does not vouch for then is checked
        # the checked way as of its own arrival.
        latest = latest_clean_second(_now())
        try:
            async for request in request_iterator:
                if index >= MAX_STREAM_MESSAGES:
                    answer.response.unread_from_index = index
                    break
                await step_aside()  # single calls first (svod_runtime.priority)
                try:
                    chunk.append((index, request, self._track_incoming(request, None, latest)))
                except SvodError as error:
                    refused.append((index, request, error))
                index += 1
                if index % STREAM_CHUNK == 0:
                    storing = await self._next_chunk(storing, chunk, refused, answer)
                    chunk, refused = [], []
                    latest = latest_clean_second(_now())
            storing = await self._next_chunk(storing, chunk, refused, answer)
            if storing is not None:
                await storing
        finally:
            if storing is not None and not storing.done():
                # The stream failed (its client went away, its deadline passed) while a chunk
                # was being stored: let that transaction end by itself (one cut in the middle
                # of a statement can leave its connection unusable). Nothing of it was
                # acknowledged, so committed or not, the client's retry is answered right.
                await asyncio.wait([storing])
            if storing is not None and not storing.cancelled():
                storing.exception()  # retrieved: raised above, or the stream's error wins
        return answer.response

    async def _next_chunk(
        self,
        storing: asyncio.Task[None] | None,
        chunk: list[tuple[int, Any, Incoming]],
        refused: list[tuple[int, Any, SvodError]],
        answer: StreamAnswer,
    ) -> asyncio.Task[None] | None:
        """Waits until the previous chunk is stored, then starts storing this one. Before, a
        stream read nothing while its chunk was stored (several round trips and a commit
        waiting for the disk): issue #20's durable accept ran at a fifth of raw gRPC
        streaming of the same messages."""
        if storing is not None:
            await storing
        if not chunk and not refused:
            return None
        return asyncio.create_task(self._store_answered(chunk, refused, answer))

    async def _store_answered(
        self,
        chunk: list[tuple[int, Any, Incoming]],
        refused: list[tuple[int, Any, SvodError]],
        answer: StreamAnswer,
    ) -> None:
        """One chunk of a stream: its good messages stored, every message answered."""
        for index, request, error in refused:
            answer.reject(index, request, error)
        if chunk:
            await self._store_chunk(chunk, answer)
        answer.end_chunk()

    async def Identify(
        self, request: ingestion_pb2.IdentifyRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.IdentifyResponse:
        mark_span(request.record_ref)
        return _response(await self._identify(request))

    async def IdentifyStream(
        self,
        request_iterator: AsyncIterator[ingestion_pb2.IdentifyRequest],
        context: grpc.aio.ServicerContext,
    ) -> ingestion_pb2.BulkResponse:
        """Checks each message; standardises and stores the good ones STREAM_CHUNK at a time.
        A bad message is refused alone; at most MAX_STREAM_MESSAGES are read."""
        answer = StreamAnswer()
        chunk: list[tuple[int, ingestion_pb2.IdentifyRequest]] = []
        index = 0
        async for request in request_iterator:
            if index >= MAX_STREAM_MESSAGES:
                answer.response.unread_from_index = index
                break
            chunk.append((index, request))
            index += 1
            if len(chunk) >= STREAM_CHUNK:
                await self._identify_chunk(chunk, answer)
                chunk = []
        if chunk:
            await self._identify_chunk(chunk, answer)
        return answer.response

    async def _identify_checked(
        self,
        chunk: list[tuple[int, ingestion_pb2.IdentifyRequest]],
        answer: StreamAnswer,
        *,
        must_check: bool = False,
    ) -> list[tuple[int, Any, Incoming]]:
        """Identify's validation and quality's standardisation of many records: the storable
        ones, the others refused in ``answer``. ``must_check``: UNAVAILABLE (nothing refused or
        stored) when quality cannot be asked now, instead of accepting records unchecked."""
        now = dt.datetime.now(dt.UTC)
        valid: list[tuple[int, ingestion_pb2.IdentifyRequest]] = []
        for index, request in chunk:
            await step_aside()  # single calls first (svod_runtime.priority)
            try:
                self._checked(request, now)
            except SvodError as error:
                answer.reject(index, request, error)
            else:
                valid.append((index, request))
        standardized = await self.standardizer.standardize(
            [(request.record_ref.source, request.record) for _, request in valid]
        )
        if must_check and not all(result.checked for result in standardized):
            raise Unavailable("quality could not standardise the records now; send them again")
        storable: list[tuple[int, Any, Incoming]] = []
        for (index, request), result in zip(valid, standardized, strict=True):
            await step_aside()
            try:
                storable.append((index, request, self._identify_incoming(request, result, now)))
            except SvodError as error:
                answer.reject(index, request, error)
        return storable

    async def _identify_chunk(
        self, chunk: list[tuple[int, ingestion_pb2.IdentifyRequest]], answer: StreamAnswer
    ) -> None:
        storable = await self._identify_checked(chunk, answer)
        if storable:
            await self._store_chunk(storable, answer)
        answer.end_chunk()

    # -- customer imports (docs/bulk-import.md) ----------------------------------------------

    async def StageCustomerImport(
        self,
        request_iterator: AsyncIterator[ingestion_pb2.StageCustomerImportRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[ingestion_pb2.StageCustomerImportResponse]:
        """Each message's records checked as Identify's, stored and staged with identity;
        answered once durable."""
        if self.imports is None:  # pragma: no cover - wired by the app
            raise Unavailable("customer imports are not configured")
        import_id = ""
        async for request in request_iterator:
            import_id = _import_of(import_id, request.import_id, len(request.records), "records")
            answer = StreamAnswer()
            storable = await self._identify_checked(
                list(enumerate(request.records)), answer, must_check=True
            )
            staged = await self.imports.stage(import_id, [item[2] for item in storable])
            bulk = _answered(answer, storable, staged.outcomes)
            yield ingestion_pb2.StageCustomerImportResponse(
                accepted_count=bulk.accepted_count,
                duplicate_count=bulk.duplicate_count,
                rejected=bulk.rejected,
                rejected_count=bulk.rejected_count,
                import_staged_count=staged.import_staged,
            )

    async def CommitCustomerImport(
        self,
        request: ingestion_pb2.CommitCustomerImportRequest,
        context: grpc.aio.ServicerContext,
    ) -> ingestion_pb2.CustomerImport:
        if self.imports is None:  # pragma: no cover - wired by the app
            raise Unavailable("customer imports are not configured")
        return customer_import(await self.imports.commit(request.import_id))

    async def GetCustomerImport(
        self, request: ingestion_pb2.GetCustomerImportRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.CustomerImport:
        if self.imports is None:  # pragma: no cover - wired by the app
            raise Unavailable("customer imports are not configured")
        return customer_import(await self.imports.get(request.import_id))

    # -- event imports (docs/bulk-import.md) -------------------------------------------------

    async def StageEventImport(
        self,
        request_iterator: AsyncIterator[ingestion_pb2.StageEventImportRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[ingestion_pb2.StageEventImportResponse]:
        """Each message's events checked as Track's, stored, attributed, and staged with
        profile (or handed to the streaming delivery); answered once durable."""
        if self.event_imports is None:  # pragma: no cover - wired by the app
            raise Unavailable("event imports are not configured")
        import_id = ""
        async for request in request_iterator:
            import_id = _import_of(import_id, request.import_id, len(request.events), "events")
            await step_aside()  # single calls first (svod_runtime.priority)
            answer = StreamAnswer()
            now = dt.datetime.now(dt.UTC)
            latest = latest_clean_second(now)
            storable: list[tuple[int, ingestion_pb2.TrackRequest, Incoming]] = []
            for index, event in enumerate(request.events):
                try:
                    storable.append((index, event, self._track_incoming(event, now, latest)))
                except SvodError as error:
                    answer.reject(index, event, error)
            staged = await self.event_imports.stage(import_id, [item[2] for item in storable])
            bulk = _answered(answer, storable, staged.outcomes)
            yield ingestion_pb2.StageEventImportResponse(
                accepted_count=bulk.accepted_count,
                duplicate_count=bulk.duplicate_count,
                rejected=bulk.rejected,
                rejected_count=bulk.rejected_count,
                handed_over_count=staged.handed_over,
                import_staged_count=staged.import_staged,
            )

    async def CommitEventImport(
        self, request: ingestion_pb2.CommitEventImportRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.EventImport:
        if self.event_imports is None:  # pragma: no cover - wired by the app
            raise Unavailable("event imports are not configured")
        return event_import(await self.event_imports.commit(request.import_id))

    async def GetEventImport(
        self, request: ingestion_pb2.GetEventImportRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.EventImport:
        if self.event_imports is None:  # pragma: no cover - wired by the app
            raise Unavailable("event imports are not configured")
        return event_import(await self.event_imports.get(request.import_id))

    async def ErasePayloads(
        self, request: ingestion_pb2.ErasePayloadsRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.ErasePayloadsResponse:
        count = await self.service.erase_payloads(
            [(r.source, r.message_id) for r in request.record_refs],
            [
                (enum_short_name(_ID_TYPE, i.type, "IDENTIFIER_TYPE_"), i.value, i.namespace)
                for i in request.identifiers
            ],
        )
        return ingestion_pb2.ErasePayloadsResponse(erased_count=count)

    async def GetRecordStatus(
        self, request: ingestion_pb2.GetRecordStatusRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.RecordStatus:
        errors = ViolationCollector()
        validate_ref(request.record_ref.source, request.record_ref.message_id, errors)
        errors.raise_if_any()
        status = await self.service.status(request.record_ref.source, request.record_ref.message_id)
        reply = ingestion_pb2.RecordStatus(
            record_id=status.record_id,
            record_ref=request.record_ref,
            state=_STATE[status.state],
            customer_id=status.customer_id or "",
            attempts=status.attempts,
            last_error=status.last_error or "",
            received_time=datetime_to_timestamp(status.received_at),
        )
        if status.delivered_at is not None:
            reply.delivered_time.CopyFrom(datetime_to_timestamp(status.delivered_at))
        if status.issue is not None:
            reply.attribution_issue = issue_number(status.issue)
            reply.candidate_customer_ids.extend(status.candidates)
        if status.unknown_for_s:
            reply.unknown_customer_time.FromTimedelta(dt.timedelta(seconds=status.unknown_for_s))
        return reply

    async def ListUnattributedEvents(
        self,
        request: ingestion_pb2.ListUnattributedEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> ingestion_pb2.ListUnattributedEventsResponse:
        errors = ViolationCollector()
        issues = [issue_of(n, f"issues[{i}]", errors) for i, n in enumerate(request.issues)]
        errors.raise_if_any()
        rows, token, counts = await self.service.unattributed(
            [i for i in issues if i is not None], request.page_size, request.page_token
        )
        return ingestion_pb2.ListUnattributedEventsResponse(
            events=[unattributed_event(r) for r in rows],
            next_page_token=token,
            counts=[
                ingestion_pb2.IssueCount(issue=issue_number(i), count=n)
                for i, n in sorted(counts.items(), key=lambda item: issue_number(item[0]))
            ],
            unattributed_count=sum(n for i, n in counts.items() if not i.waiting),
        )

    async def RecheckUnattributedEvents(
        self,
        request: ingestion_pb2.RecheckUnattributedEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> ingestion_pb2.RecheckUnattributedEventsResponse:
        count = await self.service.recheck(list(request.customer_ids), request.all)
        return ingestion_pb2.RecheckUnattributedEventsResponse(scheduled_count=count)
