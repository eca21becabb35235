"""Customer imports (issue 22): an import's resolved records folded into profiles set-based.

ApplyBatch applies a record with a statement of its own (its claim, traits, identifiers and
source), reads and writes the shown values of each customer of a 100-record transaction, and
announces each changed customer once per transaction. Profiled while ingestion's import job
folded 12,018 records of 6,000 people (py-spy, 2 ApplyBatch calls of 500 in flight, load
average 4): 55% of profile's samples were in ApplyBatch's transactions, a third of those in
the per-record statements and their parameters; 16% were the announcements relayed to
segmentation (a customer whose records came in two calls was announced twice).

A fold takes a call's records (up to 2,000) in one transaction: one statement stores every
record's claim, traits, identifiers and source (``adapters/customer_imports``), one reads the
changed customers' values, and their shown values are chosen by the same code as ApplyBatch's
(``shown_values``, ``NameIndex``) over the same observations, so the profiles come out the
same. Nothing is announced per call: the changed customers are noted under the import and
FinishCustomerImport announces each once.

A customer without a profile when the fold starts (read with the erasure check) gets its
profile made whole by the lock: its shown values, name variants and keys are chosen from the
call's records before the lock and inserted with the row, instead of an empty row updated at
once (a second row version with its index entries, the name keys' GIN included). The row is
still inserted by the lock's INSERT ... ON CONFLICT DO NOTHING, where and when the empty one
was, so a concurrent creator meets it exactly as before (``lock_current_profiles``); a
profile someone else created meanwhile is not ``filled`` and is updated as an existing one,
and one made of a record that was not stored for it after all (applied before, twice in the
call, or with a merged-away customer's records joining it) is set back to empty and updated.

Why the shown values are the same: ApplyBatch recomputes a field's shown value from every
observation of it whenever a record touches the field; an import's later record that does not
touch a field leaves it as it was. So after any sequence of transactions a field's shown value
is the choice over all of its observations - which is what one computation over all of them
after the fold gives (the equivalence test holds the two paths to each other).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from svod_profile.domain.announcements import CHANGED_NO_EVENTS, CHANGED_TOPIC
from svod_profile.domain.imports import MAX_FOLD_RECORDS, check_import_id
from svod_profile.domain.model import RecordApplication, TraitObservation
from svod_profile.domain.names import NAME_FIELDS, NameIndex, ShownUpdate
from svod_profile.domain.one_record import OneRecordChoices
from svod_profile.domain.survivorship import SurvivorshipRules, shown_values
from svod_profile.service_layer.ports import CustomerImportRepository, CustomerImportUnit
from svod_profile.service_layer.use_cases import read_together
from svod_runtime.errors import CustomerErased, FieldViolation, InvalidArgument, SvodError
from svod_runtime.priority import step_aside
from svod_runtime.transactions import run_in_transaction

# Customers announced per FinishCustomerImport transaction.
ANNOUNCE_CHUNK = 10_000
Outcome = tuple[int, bool] | SvodError
Item = tuple[RecordApplication, dict[str, str]]
log = logging.getLogger(__name__)


class CustomerImports:
    def __init__(
        self,
        store: CustomerImportRepository,
        survivorship: SurvivorshipRules,
        checked: Callable[[RecordApplication], RecordApplication],
        apply_many: Callable[[list[Item]], Awaitable[list[Outcome]]],
        on_announced: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.survivorship = survivorship
        self.one_record = OneRecordChoices(survivorship)
        # ProfileService's own checks of a record (declared attributes typed), and its
        # ApplyBatch: the fallback of a call that fails as a whole.
        self.checked = checked
        self.apply_many = apply_many
        self.on_announced = on_announced

    async def fold(self, import_id: str, items: list[Item]) -> list[Outcome]:
        """Folds (record, trace carrier) items of an import; answers each in order with
        (version, changed) or its own refusal, as ApplyBatch does."""
        check_import_id(import_id)
        if not 1 <= len(items) <= MAX_FOLD_RECORDS:
            raise InvalidArgument(
                [FieldViolation("records", f"1 to {MAX_FOLD_RECORDS:,} records per call")]
            )
        outcomes: list[Outcome | None] = [None] * len(items)
        valid: list[tuple[int, RecordApplication]] = []
        for index, (app, _) in enumerate(items):
            try:
                valid.append((index, self.checked(app)))
            except SvodError as error:
                outcomes[index] = error
        if valid:
            apps = [app for _, app in valid]
            try:
                results = await run_in_transaction(
                    self.store.transaction, lambda tx: self._fold(tx, import_id, apps)
                )
            except Exception as error:  # noqa: BLE001 - each record then gets its own answer
                # A customer merged into an erased one meanwhile, or a write refused: ApplyBatch's
                # path answers each record (announcing as it does).
                log.info("import fold of %d failed (%s); as ApplyBatch", len(apps), type(error))
                results = await self.apply_many([items[index] for index, _ in valid])
            for (index, _), result in zip(valid, results, strict=True):
                outcomes[index] = result
        return [o for o in outcomes if o is not None]

    async def _fold(
        self, tx: CustomerImportUnit, import_id: str, apps: list[RecordApplication]
    ) -> list[Outcome]:
        erased, absent = await tx.erased_and_absent({app.customer_id for app in apps})
        answers: list[Outcome | None] = [
            CustomerErased(app.customer_id) if app.customer_id in erased else None for app in apps
        ]
        kept = [(i, app) for i, app in enumerate(apps) if app.customer_id not in erased]
        if not kept:
            return [a for a in answers if a is not None]
        # Customers without a profile are made whole by the lock (their shown values from
        # their records here, as the update below would give them), not inserted empty and
        # updated (see lock_current_profiles).
        mine: dict[str, list[RecordApplication]] = {}
        for _, app in kept:
            if app.customer_id in absent:
                mine.setdefault(app.customer_id, []).append(app)
        filled = await self._shown(await tx.customer_imports.as_stored(mine)) if mine else []
        # Locked in id order (no deadlock with ApplyBatch or the event batcher); a record
        # resolved before a merge follows it to the survivor.
        current, _ = await tx.events.lock_current_profiles(
            sorted({app.customer_id for _, app in kept}),
            with_metrics=False,
            erasure_locked=True,
            filled=tx.shown_json(filled) if filled else None,
        )
        # replace() only for a record whose customer was merged away (a replace() of each was
        # 1.6% of the fold's CPU in process, cProfile).
        owned = [
            app
            if current[app.customer_id] == app.customer_id
            else replace(app, customer_id=current[app.customer_id])
            for _, app in kept
        ]
        claimed = await tx.customer_imports.claim_and_observe(owned)
        touched: dict[str, set[str]] = {}
        # The records stored for profiles this fold created: all those profiles hold.
        created = tx.events.created
        whole = set(tx.events.filled)
        written: dict[str, list[RecordApplication]] = {}
        for (_, app), owner, is_new in zip(kept, owned, claimed, strict=True):
            if owner.customer_id in whole and (not is_new or owner is not app):
                # Made of a record not stored for it (applied before, twice in the call) or
                # without one merged into it: set back to empty and updated as before.
                whole.discard(owner.customer_id)
            if is_new:
                touched.setdefault(owner.customer_id, set()).update(t.field for t in owner.traits)
                if owner.customer_id in created:
                    written.setdefault(owner.customer_id, []).append(owner)
        unfilled = tx.events.filled - whole
        await tx.customer_imports.unfill(unfilled)
        for fields in touched.values():
            read_together(fields)
        rest = {c: fields for c, fields in touched.items() if c not in whole}
        observed = await tx.customer_imports.observations(
            rest, {c: a for c, a in written.items() if c not in whole}
        )
        updates = await self._shown(observed, rest)
        versions = await tx.update_shown_set(updates)
        versions.update(dict.fromkeys(whole & touched.keys(), 1))
        versions.update(await tx.versions({app.customer_id for app in owned} - set(versions)))
        await tx.customer_imports.note_changed(import_id, touched)
        for (i, _), app, is_new in zip(kept, owned, claimed, strict=True):
            answers[i] = (versions[app.customer_id], is_new)
        return [a for a in answers if a is not None]

    async def _shown(
        self,
        observed: dict[str, list[TraitObservation]],
        touched: dict[str, set[str]] | None = None,
    ) -> list[ShownUpdate]:
        """Each customer's shown values and name index from its observations, over the
        fields ``touched`` (default: the fields observed, with those read together)."""
        shown = []
        for owner, values in observed.items():
            # A single Apply or GetProfile during an import waits for no whole fold.
            await step_aside()
            if touched is None:
                fields = read_together({o.field for o in values})
                observations = values
            else:
                fields = touched[owner]
                observations = [o for o in values if o.field in fields]
            # A customer of one record (most of a fold's new ones): its choices by value.
            quick = self.one_record.of(fields, observations)
            if quick is not None:
                shown.append((owner, *quick))
                continue
            names = NameIndex.of(fields, observations) if fields & set(NAME_FIELDS) else None
            shown.append((owner, shown_values(observations, self.survivorship), names))
        return shown

    async def finish(self, import_id: str) -> int:
        """Announces each customer the import changed (and nobody announced yet) once; how
        many. A chunk of customers per transaction: its announcements are written in the
        transaction that takes them off the import's list, so a crash announces none twice."""
        check_import_id(import_id)
        total = 0
        while True:
            async with self.store.transaction() as tx:
                taken = await tx.customer_imports.take_changed(import_id, ANNOUNCE_CHUNK)
                await tx.enqueue_many(CHANGED_TOPIC, [(c, CHANGED_NO_EVENTS, {}) for c in taken])
            if not taken:
                return total
            total += len(taken)
            self.on_announced()
