"""The named rows of load_state's statements (adapters/state_rows.py) and the columns of
apply's statement (adapters/apply_columns.py): plain Python either side of the SQL."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from types import SimpleNamespace
from typing import Any

from svod_identity.adapters.apply_columns import ApplyColumns
from svod_identity.adapters.graph_writes import _APPLY
from svod_identity.adapters.state_rows import decode_batch_rows, decode_customer_rows
from svod_identity.domain.engine import Changes, NewRecord
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.model import IncomingRecord, RecordRef, ResolutionOutcome

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CARD = IdentifierKey("loyalty_card", "2941185716529", "loyalty")
PHONE = IdentifierKey("phone", "+79155796616")


def _row(kind: str, **columns: Any) -> SimpleNamespace:
    empty = dict.fromkeys(("t1", "t2", "t3", "pk", "c", "c2", "at", "j1", "j2", "f"))
    return SimpleNamespace(kind=kind, **(empty | columns))


def test_the_batch_rows_decode_by_kind() -> None:
    customer = uuid.uuid4()
    rows = decode_batch_rows(
        [
            _row("b", t1="n:anna", pk=30, j1=[9, 4]),
            _row("r", t1="crm", t2="m1", pk=4, c=customer, j1=[["phone", "", PHONE.value]], j2={}),
            _row("r", t1="crm", t2="m2", pk=9, c=customer, j1=[], j2={}, f=True),
            _row("x", t1=CARD.type, t2=CARD.namespace, t3=CARD.value, j1="frequency"),
            _row("p", j1=[12, 11]),
            _row("o", c=customer),
        ]
    )
    (block,) = rows.blocks
    assert (block.key, block.stored_size, block.loaded) == ("n:anna", 30, [4, 9])
    candidate, of_batch = rows.records
    assert (candidate.of_batch, of_batch.of_batch) == (False, True)
    assert candidate.record.ref == RecordRef("crm", "m1")
    assert candidate.record.customer_id == str(customer)
    assert candidate.record.identifiers == (PHONE,)
    (blocked,) = rows.blocked
    assert (blocked.key, blocked.reason) == (CARD, "frequency")
    assert rows.free_pks == [11, 12]
    assert rows.holders == {str(customer)}


def test_the_customer_rows_decode_by_kind() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    rows = decode_customer_rows(
        [
            _row("o", t1=CARD.type, t2=CARD.namespace, t3=CARD.value, c=a, j1=[str(b)]),
            _row("m", pk=4, c=b),
            _row("c", c=a, at=T0),
            # A record already read comes without its identifiers and attributes.
            _row("r", t1="crm", t2="m1", pk=4, c=b),
            _row("r", t1="crm", t2="m2", pk=5, c=a, j1=[], j2={"first_name": "Анна"}),
            _row("i", t1=PHONE.type, t2=PHONE.namespace, t3=PHONE.value, c=a),
            _row("k", c=a, c2=b),
        ]
    )
    (held,) = rows.held
    assert (held.key, held.customer_id, held.sharers) == (CARD, str(a), {str(b)})
    assert rows.candidates_now == {4: str(b)}
    assert [(c.customer_id, c.created_at) for c in rows.customers] == [(str(a), T0)]
    known, fresh = rows.records
    assert (known.pk, known.customer_id, known.record) == (4, str(b), None)
    assert fresh.record is not None
    assert fresh.record.person.first_name == "Анна"
    assert [(i.customer_id, i.key) for i in rows.identifiers] == [(str(a), PHONE)]
    assert rows.kept_apart == {frozenset((str(a), str(b)))}


def _new_record(pk: int, *keys: IdentifierKey, outcome: ResolutionOutcome) -> NewRecord:
    record = IncomingRecord(RecordRef("crm", f"m{-pk}"), "web", T0, keys, {})
    evidence = {"kind": "shared_identifier", "identifier": [PHONE.type, "", PHONE.value]}
    return NewRecord(pk, record, "c1", outcome, "phone", evidence, ("p:9155796616",))


def _changes() -> Changes:
    changes = Changes()
    changes.customers.append(("c1", T0))
    changes.records.append(_new_record(-1, PHONE, CARD, outcome=ResolutionOutcome.CREATED))
    changes.records.append(_new_record(-2, PHONE, outcome=ResolutionOutcome.LINKED_EXACT))
    changes.links.append((PHONE, "c1", "crm", T0))
    changes.touches.append((PHONE, T0 + dt.timedelta(hours=1)))
    changes.touches.append((CARD, T0 + dt.timedelta(hours=2)))
    changes.touches.append((CARD, T0 + dt.timedelta(hours=1)))
    return changes


def test_every_parameter_of_the_apply_statement_is_built() -> None:
    params = ApplyColumns.of(_changes(), {-1: 101, -2: 102}).params("svod-identity")
    named = set(re.findall(r"%\((\w+)\)s", _APPLY))
    assert set(params) == named


def test_records_their_identifiers_keys_and_placements_share_the_stored_pks() -> None:
    columns = ApplyColumns.of(_changes(), {-1: 101, -2: 102})
    assert columns.records.pk == [101, 102]
    assert columns.record_identifiers.record_pk == [101, 101, 102]
    assert columns.blocking_keys.record_pk == [101, 102]
    assert columns.records.ledger_kind == ["customer_created", "record_linked"]
    assert all(PHONE.value not in detail for detail in columns.records.ledger_detail)


def test_an_identifier_linked_and_seen_again_in_the_batch_is_one_row_with_the_latest_time() -> None:
    columns = ApplyColumns.of(_changes(), {-1: 101, -2: 102})
    assert columns.links.value == [PHONE.value]
    assert columns.links.first_seen == [T0]
    assert columns.links.last_seen == [T0 + dt.timedelta(hours=1)]
    # Held before: one update, with the latest time it was seen.
    assert columns.touches.value == [CARD.value]
    assert columns.touches.seen == [T0 + dt.timedelta(hours=2)]


def test_nothing_to_write_when_the_engine_changed_nothing() -> None:
    assert ApplyColumns.of(Changes(), {}).is_empty()
    assert not ApplyColumns.of(_changes(), {-1: 101, -2: 102}).is_empty()
