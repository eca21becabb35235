"""How json and jsonb columns are read (svod_runtime.db.load_json): orjson where it reads a
value exactly as the json module does, json.loads where it may not (an integer beyond 64 bits,
infinities); the check for a long digit run against the regular expression it replaced."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from svod_runtime.db import has_long_digit_run, load_json

_LONG_DIGITS = re.compile(rb"\d{19}")  # the check before: ASCII digits (a bytes pattern)

_DIGITS = st.text(alphabet="0123456789", min_size=15, max_size=24)
_TEXTS = st.one_of(
    st.text(max_size=30), _DIGITS, st.builds("".join, st.lists(_DIGITS | st.text(max_size=3)))
)
_NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
)
_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXTS),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXTS, inner, max_size=4),
    max_leaves=12,
)


@given(st.binary(max_size=200) | _TEXTS.map(str.encode))
def test_the_digit_run_check_finds_what_the_regular_expression_found(data: bytes) -> None:
    expected = bool(_LONG_DIGITS.search(data))
    assert has_long_digit_run(data) is expected
    assert has_long_digit_run(memoryview(data)) is expected
    assert has_long_digit_run(bytearray(data)) is expected


@given(_TEXTS)
def test_a_text_is_looked_at_as_its_utf8_bytes(text: str) -> None:
    assert has_long_digit_run(text) is bool(_LONG_DIGITS.search(text.encode("utf-8")))


@given(_VALUES, st.booleans())
def test_a_column_loads_as_the_json_module_reads_it(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    expected = json.loads(text)
    for data in (text, text.encode(), memoryview(text.encode())):
        loaded = load_json(data)
        assert loaded == expected
        assert json.dumps(loaded) == json.dumps(expected)  # ints stay ints, floats floats
