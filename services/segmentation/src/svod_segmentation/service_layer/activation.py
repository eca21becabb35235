"""Activation use cases: destinations, bindings, full and live syncs, webhook deliveries.

Live sync: every ``sync_s`` seconds each live binding's destination is brought in line with
the segment's consenting members (one statement diffs them against what the destination
holds), and the differences become deliveries: rows in ``deliveries`` plus outbox messages,
in the same transaction. The outbox relay retries them with backoff; deliveries of a binding
are sent in sequence order (a later one waits for the earlier ones). Contact data and consents
are fetched from the profile service when a delivery is sent, and consent is checked again
then: an entry of someone who opted out in the meantime is not sent (their exit follows as
soon as the read model hears of the opt-out).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from svod_runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from svod_runtime.ids import parse_uuid
from svod_runtime.outbox import DeliveryError, OutboxMessage
from svod_segmentation.domain import audiences, exports, webhooks
from svod_segmentation.domain.access import UNRESTRICTED, Scope
from svod_segmentation.domain.activation import (
    Binding,
    BindingMode,
    Contact,
    Delivery,
    DeliveryKind,
    DeliveryState,
    Destination,
    DestinationKind,
    Eligibility,
    FileFormat,
    Sync,
    SyncState,
    eligibility,
    pages,
    validate_binding,
    validate_destination,
)
from svod_segmentation.domain.model import MembershipKind
from svod_segmentation.service_layer.ports import (
    ActivationRepository,
    ActivationUnit,
    ContactDirectory,
    ExportFiles,
    WebhookSender,
)

log = logging.getLogger(__name__)
audit = logging.getLogger("svod.audit")

MAX_PAGE = 1000
MAX_DELIVERY_PAGE = 500
MAX_REDRIVE_IDS = 1000
Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _page_size(requested: int, most: int) -> int:
    """The default (100) for 0, at most ``most``; negative sizes are refused."""
    if requested < 0:
        raise InvalidArgument([FieldViolation("page_size", f"0 (default 100) to {most}")])
    return min(requested or 100, most)


def _issued_id(value: str, field: str) -> str:
    return parse_uuid(value, field, "not an id this service gave")


class ActivationService:
    def __init__(
        self,
        store: ActivationRepository,
        directory: ContactDirectory,
        webhook_client: WebhookSender,
        export_dir: Path,
        clock: Clock = _utc_now,
        on_enqueued: Callable[[], None] = lambda: None,
        *,
        files: ExportFiles,
    ) -> None:
        self.files = files
        self.store = store
        self.directory = directory
        self.webhook_client = webhook_client
        self.export_dir = export_dir
        self.clock = clock
        self.on_enqueued = on_enqueued

    # -- destinations ------------------------------------------------------------------------
    async def create_destination(self, destination: Destination) -> tuple[Destination, str]:
        """Returns the destination and its secret when one was generated (else "")."""
        validate_destination(destination)
        generated = ""
        if destination.kind is DestinationKind.WEBHOOK and not destination.secret:
            generated = webhooks.new_secret()
            destination = replace(destination, secret=generated)
        async with self.store.transaction() as tx:
            try:
                saved = await tx.insert_destination(destination)
            except KeyError:
                raise AlreadyExists(f"destination {destination.destination_id!r} exists") from None
        return saved, generated

    async def get_destination(self, destination_id: str) -> Destination:
        async with self.store.transaction() as tx:
            found = await tx.destination(destination_id)
        if found is None:
            raise NotFound(f"no destination {destination_id!r}")
        return found

    async def list_destinations(self, after: str, limit: int) -> tuple[list[Destination], str]:
        limit = _page_size(limit, MAX_PAGE)
        async with self.store.transaction() as tx:
            found = await tx.destinations(after, limit + 1)
        token = found[limit - 1].destination_id if len(found) > limit else ""
        return found[:limit], token

    async def delete_destination(self, destination_id: str) -> None:
        async with self.store.transaction() as tx:
            if await tx.destination(destination_id) is None:
                raise NotFound(f"no destination {destination_id!r}")
            bound = await tx.bindings(destination_id=destination_id)
            if bound:
                raise FailedPrecondition(
                    f"destination {destination_id!r} has {len(bound)} binding(s); delete them first"
                )
            await tx.delete_destination(destination_id)

    # -- bindings ----------------------------------------------------------------------------
    async def create_binding(self, binding: Binding, scope: Scope = UNRESTRICTED) -> Binding:
        errors = []
        if not binding.segment_id:
            errors.append(FieldViolation("binding.segment_id", "required"))
        if not binding.destination_id:
            errors.append(FieldViolation("binding.destination_id", "required"))
        if errors:
            raise InvalidArgument(errors)
        scope.require(binding.segment_id)
        now = self.clock()
        binding = replace(
            binding,
            binding_id=str(uuid.uuid4()),
            next_sync_at=now if binding.schedule_seconds else None,
        )
        async with self.store.transaction() as tx:
            destination = await tx.destination(binding.destination_id)
            if destination is None:
                raise NotFound(f"no destination {binding.destination_id!r}")
            if not await tx.segment_exists(binding.segment_id):
                raise NotFound(f"no segment {binding.segment_id!r}")
            validate_binding(binding, destination)
            saved = await tx.insert_binding(binding)
            if saved.mode is BindingMode.LIVE:
                # A live binding starts from the whole audience; changes follow it.
                await self._full_webhook_sync(tx, saved, destination, scheduled=False)
        self.on_enqueued()
        return saved

    async def list_bindings(
        self, segment_id: str, destination_id: str, scope: Scope = UNRESTRICTED
    ) -> list[Binding]:
        async with self.store.transaction() as tx:
            found = await tx.bindings(segment_id, destination_id)
        return [b for b in found if scope.allows(b.segment_id)]

    async def delete_binding(self, binding_id: str, scope: Scope = UNRESTRICTED) -> None:
        binding_id = _issued_id(binding_id, "binding_id")
        async with self.store.transaction() as tx:
            found = await tx.binding(binding_id, lock=True)
            if found is None:
                raise NotFound(f"no binding {binding_id}")
            scope.require(found.segment_id)
            await tx.delete_binding(binding_id)

    # -- syncs -------------------------------------------------------------------------------
    async def start_sync(
        self, binding_id: str, scope: Scope = UNRESTRICTED, *, scheduled: bool = False
    ) -> Sync:
        binding_id = _issued_id(binding_id, "binding_id")
        async with self.store.transaction() as tx:
            binding = await tx.binding(binding_id, lock=True)
            if binding is None:
                raise NotFound(f"no binding {binding_id}")
            scope.require(binding.segment_id)
            destination = await tx.destination(binding.destination_id)
            assert destination is not None  # bindings reference destinations
            if destination.kind is DestinationKind.WEBHOOK:
                sync = await self._full_webhook_sync(tx, binding, destination, scheduled)
            else:
                sync = Sync(
                    sync_id=str(uuid.uuid4()),
                    binding_id=binding.binding_id,
                    segment_id=binding.segment_id,
                    destination_id=binding.destination_id,
                    state=SyncState.RUNNING,
                    started_at=self.clock(),
                )
                await tx.insert_sync(sync, scheduled)
                await tx.enqueue_export(binding.binding_id, sync.sync_id)
        self.on_enqueued()
        return sync

    async def _full_webhook_sync(
        self,
        tx: ActivationUnit,
        binding: Binding,
        destination: Destination,
        scheduled: bool,
    ) -> Sync:
        """The destination gets the whole consenting audience, a page per delivery; what it
        holds is replaced by it (live changes continue from there)."""
        now = self.clock()
        held = await tx.replace_held(
            binding.binding_id, binding.segment_id, destination.consent_channel
        )
        total = await tx.member_count(binding.segment_id)
        sync = Sync(
            sync_id=str(uuid.uuid4()),
            binding_id=binding.binding_id,
            segment_id=binding.segment_id,
            destination_id=binding.destination_id,
            state=SyncState.DONE,
            started_at=now,
            ended_at=now,
            member_count=total,
            delivered_count=len(held),
            skipped_no_consent=total - len(held),
        )
        await tx.insert_sync(replace(sync, state=SyncState.RUNNING), scheduled)
        await tx.add_deliveries(
            binding, DeliveryKind.FULL_SYNC_PAGE, pages(list(held)), sync.sync_id
        )
        await tx.finish_sync(sync)
        return sync

    async def get_sync(self, sync_id: str, scope: Scope = UNRESTRICTED) -> Sync:
        sync_id = _issued_id(sync_id, "sync_id")
        async with self.store.transaction() as tx:
            found = await tx.sync(sync_id)
        if found is None:
            raise NotFound(f"no sync {sync_id}")
        scope.require(found.segment_id)
        return found

    # -- deliveries --------------------------------------------------------------------------
    async def list_deliveries(
        self, destination_id: str, state: DeliveryState | None, limit: int, token: str
    ) -> tuple[list[Delivery], str, int]:
        if not destination_id:
            raise InvalidArgument([FieldViolation("destination_id", "required")])
        if token:
            token = _issued_id(token, "page_token")
        limit = _page_size(limit, MAX_DELIVERY_PAGE)
        async with self.store.transaction() as tx:
            if await tx.destination(destination_id) is None:
                raise NotFound(f"no destination {destination_id!r}")
            found = await tx.deliveries(destination_id, state, token, limit + 1)
            dead = await tx.dead_letter_count(destination_id)
        next_token = found[limit - 1].delivery_id if len(found) > limit else ""
        return found[:limit], next_token, dead

    async def redrive(self, destination_id: str, delivery_ids: list[str]) -> int:
        if not destination_id:
            raise InvalidArgument([FieldViolation("destination_id", "required")])
        if len(delivery_ids) > MAX_REDRIVE_IDS:
            raise InvalidArgument(
                [FieldViolation("delivery_ids", f"at most {MAX_REDRIVE_IDS} per call")]
            )
        ids = [_issued_id(d, f"delivery_ids[{i}]") for i, d in enumerate(delivery_ids)]
        async with self.store.transaction() as tx:
            if await tx.destination(destination_id) is None:
                raise NotFound(f"no destination {destination_id!r}")
            if ids:
                states = await tx.states_of(destination_id, ids)
                for index, delivery_id in enumerate(ids):
                    state = states.get(delivery_id)
                    if state is None:
                        raise NotFound(f"delivery_ids[{index}]: no delivery {delivery_id}")
                    if state != DeliveryState.DEAD_LETTER.value:
                        raise FailedPrecondition(
                            f"delivery_ids[{index}]: delivery {delivery_id} is {state}, "
                            "not a dead letter"
                        )
            redriven = await tx.redrive(destination_id, ids or None)
        self.on_enqueued()
        return len(redriven)

    # -- background work ---------------------------------------------------------------------
    async def reconcile_live_once(self) -> int:
        """Turns each live binding's differences into deliveries; returns how many changes."""
        async with self.store.transaction() as tx:
            binding_ids = await tx.live_binding_ids()
        changes = 0
        for binding_id in binding_ids:
            async with self.store.transaction() as tx:
                binding = await tx.lock_live_binding(binding_id)
                if binding is None:  # deleted, or another replica is on it
                    continue
                destination = await tx.destination(binding.destination_id)
                assert destination is not None
                diff = await tx.reconcile(
                    binding.binding_id, binding.segment_id, destination.consent_channel
                )
                if not diff:
                    continue
                at = self.clock().isoformat()
                items: list[tuple[str, ...]] = []
                for customer_id, was_in, is_in, old_label, new_label in diff:
                    if was_in:
                        items.append((customer_id, MembershipKind.EXITED, old_label, at))
                    if is_in:
                        items.append((customer_id, MembershipKind.ENTERED, new_label, at))
                await tx.add_deliveries(binding, DeliveryKind.CHANGES, pages(items))
                changes += len(items)
        if changes:
            self.on_enqueued()
        return changes

    async def start_scheduled_once(self) -> int:
        async with self.store.transaction() as tx:
            due = await tx.claim_scheduled(self.clock())
        for binding in due:
            try:
                await self.start_sync(binding.binding_id, scheduled=True)
            except NotFound:
                continue
        return len(due)

    async def run(self, interval_s: float) -> None:
        """Background task: scheduled full syncs and live changes."""
        while True:
            try:
                await self.start_scheduled_once()
                await self.reconcile_live_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("activation pass failed")
            await asyncio.sleep(interval_s)

    # -- outbox handlers ---------------------------------------------------------------------
    async def deliver_webhook(self, message: OutboxMessage) -> None:
        """Sends one delivery. Returns when it reached a verdict (delivered or dead letter);
        raises DeliveryError(UNAVAILABLE) to be retried with backoff."""
        delivery_id = message.payload.decode()
        async with self.store.transaction() as tx:
            delivery = await tx.delivery(delivery_id)
            if delivery is None or delivery.state is not DeliveryState.PENDING:
                return  # delivered or given up on before (a redelivered message)
            destination = await tx.destination(delivery.destination_id)
            earlier = await tx.earlier_pending(delivery.binding_id, delivery.sequence)
        if destination is None:
            await self._record(delivery, DeliveryState.DEAD_LETTER, 0, "destination deleted")
            return
        if earlier is not None:
            raise DeliveryError("UNAVAILABLE", f"waits for delivery {earlier} of its binding")
        ids = list(dict.fromkeys(item[0] for item in delivery.items))
        contacts = await self._contacts(ids)
        allowed = {c for c in ids if eligibility(contacts.get(c), destination) is Eligibility.OK}
        body = webhooks.body(delivery, contacts, allowed)
        timestamp = int(self.clock().timestamp())
        answer = await self.webhook_client.post(
            destination.url,
            body.payload,
            webhooks.headers(delivery.delivery_id, destination.secret, timestamp, body.payload),
        )
        _audit_delivery(destination, body.sent, answer.status)
        outcome = webhooks.outcome_of(answer.status)
        error = answer.error or f"HTTP {answer.status}"
        if outcome is webhooks.Outcome.DELIVERED:
            await self._record(delivery, DeliveryState.DELIVERED, answer.status, "")
            return
        if outcome is webhooks.Outcome.DEAD or (
            outcome is webhooks.Outcome.RETRY_COUNTED
            and delivery.failed_attempts + 1 >= destination.max_attempts
        ):
            await self._record(
                delivery,
                DeliveryState.DEAD_LETTER,
                answer.status,
                error,
                counted=outcome is webhooks.Outcome.RETRY_COUNTED,
            )
            log.warning(
                "delivery %s to destination %s is a dead letter (%s)",
                delivery.delivery_id,
                destination.destination_id,
                error,
            )
            return
        counted = outcome is webhooks.Outcome.RETRY_COUNTED
        await self._record(delivery, DeliveryState.PENDING, answer.status, error, counted=counted)
        raise DeliveryError("UNAVAILABLE", f"receiver: {error}")

    async def _record(
        self,
        delivery: Delivery,
        state: DeliveryState,
        status: int,
        error: str,
        *,
        counted: bool = False,
    ) -> None:
        async with self.store.transaction() as tx:
            await tx.record_attempt(
                delivery.delivery_id, state, status, error, counted=counted, now=self.clock()
            )

    async def _contacts(self, ids: list[str]) -> dict[str, Contact]:
        try:
            return await self.directory.contacts(ids)
        except Unavailable as error:
            raise DeliveryError("UNAVAILABLE", error.message) from None

    async def run_export(self, message: OutboxMessage) -> None:
        """Writes a file or ad-audience sync's files."""
        sync_id = message.payload.decode()
        async with self.store.transaction() as tx:
            sync = await tx.sync(sync_id)
            if sync is None or sync.state is not SyncState.RUNNING:
                return
            destination = await tx.destination(sync.destination_id)
            members = await tx.members(sync.segment_id)
        if destination is None:
            await self._finish(sync, SyncState.FAILED, error="destination deleted")
            return
        contacts = await self._contacts([c for c, _ in members])
        chosen: list[tuple[Contact, str]] = []
        no_consent = no_contact = 0
        for customer_id, label in members:
            contact = contacts.get(customer_id)
            verdict = eligibility(contact, destination)
            if verdict is Eligibility.NO_CONSENT:
                no_consent += 1
            elif verdict is Eligibility.NO_CONTACT:
                no_contact += 1
            else:
                assert contact is not None
                chosen.append((contact, label))
        try:
            paths = await asyncio.to_thread(self._write, sync, destination, chosen)
        except OSError as error:
            await self._finish(
                sync, SyncState.FAILED, error=f"cannot write the export: {type(error).__name__}"
            )
            return
        _audit_delivery(destination, len(chosen), 0)
        await self._finish(
            replace(
                sync,
                member_count=len(members),
                delivered_count=len(chosen),
                skipped_no_consent=no_consent,
                skipped_no_contact=no_contact,
                file_paths=tuple(str(p) for p in paths),
            ),
            SyncState.DONE,
        )

    def _write(
        self, sync: Sync, destination: Destination, chosen: list[tuple[Contact, str]]
    ) -> list[Path]:
        stamp = sync.started_at.strftime("%Y%m%dT%H%M%SZ")
        base = self.export_dir / destination.destination_id
        stem = f"{destination.destination_id}-{stamp}-{sync.sync_id[:8]}"
        if destination.kind is DestinationKind.FILE:
            rows = [exports.export_row(contact, label) for contact, label in chosen]
            if destination.file_format is FileFormat.JSONL:
                path = base / f"{stem}.jsonl"
                self.files.write_jsonl(path, rows)
            else:
                path = base / f"{stem}.csv"
                self.files.write_csv(
                    path, exports.COLUMNS, [[r[c] for c in exports.COLUMNS] for r in rows]
                )
            return [path]
        assert destination.platform is not None
        files = audiences.audience_files(destination.platform, [c for c, _ in chosen])
        out = []
        for suffix, (header, lines) in files.items():
            path = base / f"{stem}.{suffix}" if suffix == "csv" else base / f"{stem}-{suffix}"
            self.files.write_csv(path, header, lines)
            out.append(path)
        return out

    async def _finish(self, sync: Sync, state: SyncState, error: str = "") -> None:
        async with self.store.transaction() as tx:
            await tx.finish_sync(replace(sync, state=state, error=error, ended_at=self.clock()))


def _audit_delivery(destination: Destination, customers: int, status: int) -> None:
    """Personal data left Svod: who it went to and how many people (never who they were)."""
    audit.info(
        "audit",
        extra={
            "audit": "export",
            "service": "segmentation",
            "destination": destination.destination_id,
            "kind": destination.kind.value,
            "customers": customers,
            "http_status": status,
        },
    )
