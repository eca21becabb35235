"""A staged row's COPY line, joined as it is when nothing in it needs escaping, is the line
escaped field by field; a row with something to escape is escaped."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from benchmarks.profile.event_data import events
from svod_profile.adapters.event_imports import _copy_line, _escaped_copy_line
from svod_profile.domain.events import EventFact
from svod_profile.entrypoints.grpc_servicer import event_fact

CUSTOMERS = [str(uuid.UUID(int=n)) for n in range(1, 30)]


def _facts() -> list[tuple[str, EventFact]]:
    return [(r.customer_id, event_fact(r, "RUB")) for r in events(CUSTOMERS, 600, 11)]


def test_rows_with_nothing_to_escape_are_joined_as_they_are() -> None:
    for customer_id, fact in _facts():
        assert _copy_line(customer_id, fact) == _escaped_copy_line(customer_id, fact)


@pytest.mark.parametrize(
    "changes",
    [
        {"message_id": 'odd\t"id"\\'},
        {"order_id": "A\tB\nC\rD\\E"},
        {"categories": ('x"y', "z,{}")},
        {"categories": ("a\\b",)},
        {"properties": {'k\t"': "v\\n\n{}"}},
        {"identifiers": (("phone", '+7 916\t"1"', ""),)},
        {"reference_id": "line\nbreak"},
    ],
)
def test_a_row_with_something_to_escape_is_escaped(changes: dict) -> None:
    customer_id, fact = _facts()[0]
    odd = replace(fact, **changes)
    line = _copy_line(customer_id, odd)
    assert line == _escaped_copy_line(customer_id, odd)
    assert line.count("\t") == 16
    assert line.endswith("\n")
    assert "\n" not in line[:-1]
