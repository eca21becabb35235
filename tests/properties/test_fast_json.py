"""The import file's fast message fill (svod_cli.fast_json) against protobuf's ParseDict: on
every dict it accepts, the very same message; every dict it declines goes to ParseDict, so
rejects keep ParseDict's wording."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from svod.ingestion.v1 import ingestion_pb2
from svod_cli.bulk_import import KINDS, Defaults, Row, build_message, jsonl_row
from svod_cli.fast_json import build, parse_dict

_TEXT = st.text(max_size=12)
_ODD = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False), st.integers(), _TEXT, st.just([])
)
_INT = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.integers(min_value=-999, max_value=999).map(str),
    st.sampled_from(["007", "-0", " 5", "5 ", "1e3", "", "+3", "٣"]),
    _ODD,
)
_TIME = st.one_of(
    st.sampled_from(
        [
            "2026-01-05T10:00:00Z",
            "2024-02-29T23:59:59.5Z",
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-05T10:00:00.123456789Z",
            "2026-01-05T10:00:00+03:00",
            "2026-01-05t10:00:00z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2026-01-05T24:00:00Z",
            "2026-01-05T10:00:60Z",
        ]
    ),
    _ODD,
)
_ENUM = st.one_of(
    st.sampled_from(
        ["EVENT_TYPE_ORDER_PLACED", "SOURCE_CHANNEL_WEB", "IDENTIFIER_TYPE_PHONE", "NOPE"]
    ),
    st.integers(min_value=-1, max_value=5),
    _ODD,
)


def _maybe(fields: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


_MONEY = _maybe({"currency_code": _TEXT, "currencyCode": _TEXT, "units": _INT, "nanos": _INT})
_LINE = _maybe(
    {"sku": _TEXT, "category": _TEXT, "quantity": _INT, "unit_price": _MONEY, "discount": _MONEY}
)
_EVENT = _maybe(
    {
        "type": _ENUM,
        "occurred_time": _TIME,
        "occurredTime": _TIME,
        "identifiers": st.one_of(
            st.lists(_maybe({"type": _ENUM, "value": _TEXT, "namespace": _TEXT}), max_size=3),
            _ODD,
        ),
        "order_id": _TEXT,
        "lines": st.one_of(st.lists(_LINE, max_size=3), _ODD),
        "total": st.one_of(_MONEY, _ODD),
        "properties": st.one_of(st.dictionaries(_TEXT, st.one_of(_TEXT, _ODD), max_size=3), _ODD),
        "loyalty_points": _INT,
        "nope": _TEXT,
    }
)
_TRACK = _maybe(
    {
        "record_ref": _maybe({"source": _TEXT, "message_id": st.one_of(_TEXT, _ODD)}),
        "recordRef": _maybe({"source": _TEXT}),
        "channel": _ENUM,
        "event": st.one_of(_EVENT, _ODD),
    }
)


def _parse_dict(data: dict[str, Any]) -> bytes | str:
    try:
        return json_format.ParseDict(data, ingestion_pb2.TrackRequest()).SerializeToString(
            deterministic=True
        )
    except json_format.ParseError as error:
        return f"refused: {error}"


@settings(max_examples=3000, deadline=None)
@given(_TRACK)
def test_the_fast_fill_gives_parse_dicts_message_or_declines(data: dict[str, Any]) -> None:
    fast = parse_dict(data, ingestion_pb2.TrackRequest())
    built = build(data, ingestion_pb2.TrackRequest)
    assert (fast is None) == (built is None)
    if fast is None or built is None:
        return
    assert fast.SerializeToString(deterministic=True) == _parse_dict(data), json.dumps(data)
    assert built.SerializeToString(deterministic=True) == _parse_dict(data), json.dumps(data)


def test_an_import_files_order_event_takes_the_fast_fill() -> None:
    data = {
        "record_ref": {"source": "shop", "message_id": "o-1"},
        "channel": "SOURCE_CHANNEL_WEB",
        "event": {
            "type": "EVENT_TYPE_ORDER_PLACED",
            "occurred_time": "2026-03-04T05:00:00Z",
            "identifiers": [{"type": "IDENTIFIER_TYPE_PHONE", "value": "+79001234567"}],
            "order_id": "o-1",
            "total": {"currency_code": "RUB", "units": "4521"},
            "lines": [{"sku": "a", "quantity": 2, "unit_price": {"units": 7, "nanos": 5}}],
            "properties": {"k": "v"},
        },
    }
    fast = parse_dict(data, ingestion_pb2.TrackRequest())
    assert fast is not None
    assert fast.SerializeToString(deterministic=True) == _parse_dict(data)


def test_what_parse_dict_refuses_is_declined() -> None:
    for data in (
        {"event": {"type": "EVENT_TYPE_NONE_SUCH"}},
        {"event": {"occurred_time": "2026-02-30T00:00:00Z"}},
        {"event": {"loyalty_points": 2**63}},
        {"channel": None},
        {"nope": 1},
        {"record_ref": {"source": "a"}, "recordRef": {"source": "b"}},
    ):
        assert parse_dict(data, ingestion_pb2.TrackRequest()) is None, data


_JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.floats(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.text(),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _exactly(line: str) -> bytes | str:
    """What the command made of a line when it read every line with json.loads: the
    message's bytes, or the refusal."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        return f"not JSON: {error.msg} at column {error.colno}"
    if not isinstance(data, dict):
        return "not a JSON object"
    return _built(Row(1, data))


def _built(row: Row) -> bytes | str:
    try:
        message = build_message(row, KINDS["events"], Defaults("", "SOURCE_CHANNEL_WEB", "imp"))
    except json_format.ParseError as error:
        return f"refused: {error}"
    return message.SerializeToString(deterministic=True)


_LONG = st.integers(min_value=-(2**70), max_value=2**70)


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        _JSON.map(json.dumps),
        st.text(max_size=40),
        _TRACK.map(json.dumps),
        # Integers beyond 64 bits (orjson reads them as floats) where the fill takes numbers.
        st.tuples(_LONG, _LONG, _LONG).map(
            lambda n: json.dumps(
                {
                    "record_ref": {"source": "shop", "message_id": "o-1"},
                    "channel": "SOURCE_CHANNEL_WEB",
                    "event": {
                        "type": "EVENT_TYPE_ORDER_PLACED",
                        "loyalty_points": n[0],
                        "total": {"units": n[1], "nanos": n[2]},
                    },
                }
            )
        ),
    )
)
def test_a_lines_message_is_the_one_json_loads_reading_gives(line: str) -> None:
    """orjson's reading of a line (taken without looking for long numbers first), the fill,
    and the line read again with json.loads when the fill declines: the very message (or
    refusal) that reading every line with json.loads gives - NaN, integers beyond 64 bits,
    lone surrogates and broken lines included."""
    row = jsonl_row(1, line)
    got = row.errors[0][1] if row.data is None else _built(row)
    assert got == _exactly(line), line
