"""Hypothesis strategies for hostile API requests, built from the protos' descriptors.

Any request message of the public API can be drawn: every field is left unset or given an
adversarial value of its type (huge and negative numbers, NaN and infinities, timestamps far
outside any calendar, NUL characters, very long and odd unicode strings, empty and huge repeated
fields). ``near(valid)`` starts from a valid request and spoils a few of its fields, which gets
deeper into a service than a wholly random message (most of those stop at the first check).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

FD = FieldDescriptor

# Texts that break naive code: NUL, control and format characters, numbers in disguise,
# markup and SQL, Cyrillic and emoji, lone combining marks. Surrogates cannot be encoded in
# UTF-8, so no client can send them; they are left out.
_SPECIAL_TEXTS = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\t\n\r",
    "\u200b",
    "\ufeff",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "1e309",
    "-1",
    "0",
    "9" * 40,
    "null",
    "None",
    "true",
    "%s%n%x",
    "{}",
    "[]",
    "'; DROP TABLE customers; --",
    "\\",
    "../../etc/passwd",
    "<script>",
    "Мария Смирнова",
    "😀👩‍👩‍👧",
    "\u0301",
    "ǅ",
    "+7 916 123-45-67",
    "89161234567",
    "a@b.ru",
    "@",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "2026-01-01",
    "9999-12-31T23:59:59Z",
    "0000-00-00",
)
_ALPHABET = st.characters(codec="utf-8", exclude_categories=("Cs",))


def texts(max_size: int = 300) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(_SPECIAL_TEXTS),
        st.text(_ALPHABET, max_size=40),
        st.text(_ALPHABET, min_size=max_size // 2, max_size=max_size),
        # Very long: past every documented length limit (the longest is a few thousand).
        st.builds(
            lambda c, n: c * n,
            st.sampled_from("aЖ😀0 \x00"),
            st.sampled_from((257, 1001, 5000, 70_000)),
        ),
    )


def _ints(bits: int, signed: bool) -> st.SearchStrategy[int]:
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    edges = [
        v
        for v in (0, 1, -1, 2, 100, 10**9, 10**10, 10**12, 10**15, low, high, low + 1, high - 1)
        if low <= v <= high
    ]
    return st.one_of(
        st.sampled_from(edges),
        st.integers(low, high),
        st.integers(-1000, 100_000).filter(lambda v: low <= v <= high),
    )


_DOUBLES = st.one_of(
    st.sampled_from(
        (
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            float("nan"),
            float("inf"),
            float("-inf"),
            1e308,
            -1e308,
            5e-324,
        )
    ),
    st.floats(allow_nan=True, allow_infinity=True),
)

_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FD.TYPE_INT32: _ints(32, True),
    FD.TYPE_SINT32: _ints(32, True),
    FD.TYPE_SFIXED32: _ints(32, True),
    FD.TYPE_INT64: _ints(64, True),
    FD.TYPE_SINT64: _ints(64, True),
    FD.TYPE_SFIXED64: _ints(64, True),
    FD.TYPE_UINT32: _ints(32, False),
    FD.TYPE_FIXED32: _ints(32, False),
    FD.TYPE_UINT64: _ints(64, False),
    FD.TYPE_FIXED64: _ints(64, False),
    FD.TYPE_DOUBLE: _DOUBLES,
    FD.TYPE_FLOAT: st.floats(width=32, allow_nan=True, allow_infinity=True),
    FD.TYPE_BOOL: st.booleans(),
    FD.TYPE_BYTES: st.binary(max_size=64),
}

# Well-known messages get values aimed at their edges.
_TIMESTAMP_SECONDS = st.one_of(
    st.sampled_from(
        (
            0,
            1,
            -1,
            1_700_000_000,
            10**12,
            -(10**12),
            253_402_300_799,  # 9999-12-31T23:59:59Z
            253_402_300_800,
            -62_135_596_800,  # 0001-01-01
            -62_135_596_801,
            -2_208_988_800,  # 1900-01-01
            4_102_444_800,  # 2100-01-01
            2**63 - 1,
            -(2**63),
        )
    ),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-2_208_988_800, 4_102_444_800),
)
_NANOS = st.one_of(
    st.sampled_from((0, 1, 999_999_999, 10**9, -1, -(10**9), 2**31 - 1, -(2**31))),
    st.integers(-(2**31), 2**31 - 1),
)


def _timestamp(message: Message, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
    message.seconds = draw(_TIMESTAMP_SECONDS)
    message.nanos = draw(_NANOS)


def _money(message: Message, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
    message.currency_code = draw(st.one_of(st.sampled_from(("RUB", "USD", "", "rub")), texts(8)))
    message.units = draw(_ints(64, True))
    message.nanos = draw(_NANOS)


def _date(message: Message, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
    message.year = draw(
        st.one_of(st.sampled_from((0, 1, 1900, 1990, 2026, 9999, 10000, -1)), _ints(32, True))
    )
    message.month = draw(st.one_of(st.integers(0, 13), _ints(32, True)))
    message.day = draw(st.one_of(st.integers(0, 32), _ints(32, True)))


_WELL_KNOWN: dict[str, Callable[[Message, Callable[[st.SearchStrategy[Any]], Any]], None]] = {
    "google.protobuf.Timestamp": _timestamp,
    "google.type.Money": _money,
    "google.type.Date": _date,
}


class Generator:
    """Draws values for the fields of a message, from its descriptor."""

    def __init__(
        self,
        draw: Callable[[st.SearchStrategy[Any]], Any],
        pools: Mapping[str, Sequence[str]] | None = None,
        max_depth: int = 4,
        set_probability: float = 0.5,
    ) -> None:
        self.draw = draw
        # Known-good values by field name (customer ids, segment ids ...), so that calls reach
        # past "not found".
        self.pools = dict(pools or {})
        self.max_depth = max_depth
        self.set_probability = set_probability

    def text(self, name: str) -> str:
        pool = self.pools.get(name)
        if pool and self.draw(st.booleans()):
            return self.draw(st.sampled_from(list(pool)))
        return self.draw(texts())

    def scalar(self, field: FieldDescriptor) -> Any:
        if field.type == FD.TYPE_STRING:
            return self.text(field.name)
        if field.type == FD.TYPE_ENUM:
            numbers = [v.number for v in field.enum_type.values]
            return self.draw(
                st.one_of(st.sampled_from(numbers), st.sampled_from((-1, 99, 2**31 - 1)))
            )
        return self.draw(_SCALARS[field.type])

    def fill(self, message: Message, depth: int = 0) -> Message:
        descriptor: Descriptor = message.DESCRIPTOR
        special = _WELL_KNOWN.get(descriptor.full_name)
        if special is not None:
            special(message, self.draw)
            return message
        oneof_done: set[str] = set()
        for field in descriptor.fields:
            if field.containing_oneof is not None and field.containing_oneof.name in oneof_done:
                continue
            if not self.draw(st.booleans()) and self.draw(st.floats(0, 1)) > self.set_probability:
                continue
            if field.containing_oneof is not None:
                oneof_done.add(field.containing_oneof.name)
            self.set_field(message, field, depth)
        return message

    def count(self, depth: int) -> int:
        """How many elements a repeated field gets: past the documented limits (10, 50, 100,
        1,000) only near the top, so a message stays within what a server receives."""
        if depth >= self.max_depth:
            return 0
        if depth > 1:
            return self.draw(st.integers(0, 2))
        return self.draw(st.one_of(st.integers(0, 3), st.sampled_from((0, 1, 11, 51, 101, 1001))))

    def set_field(self, message: Message, field: FieldDescriptor, depth: int) -> None:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            target = getattr(message, field.name)
            for _ in range(self.count(depth)):
                key = self.text(f"{field.name}.key")
                if value_field.message_type is not None:
                    self.fill(target[key], depth + 1)
                else:
                    target[key] = self.scalar(value_field)
            return
        if field.is_repeated:
            container = getattr(message, field.name)
            for _ in range(self.count(depth)):
                if field.message_type is not None:
                    self.fill(container.add(), depth + 1)
                else:
                    container.append(self.scalar(field))
            return
        if field.message_type is not None:
            if depth >= self.max_depth:
                return
            self.fill(getattr(message, field.name), depth + 1)
            getattr(message, field.name).SetInParent()
            return
        setattr(message, field.name, self.scalar(field))


def messages(
    cls: type[Message], pools: Mapping[str, Sequence[str]] | None = None, max_depth: int = 4
) -> st.SearchStrategy[Message]:
    """Any message of ``cls``, with adversarial values."""

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> Message:
        return Generator(draw, pools, max_depth).fill(cls())

    return build()


def _paths(descriptor: Descriptor, prefix: tuple[str, ...], depth: int) -> list[tuple[str, ...]]:
    out = []
    for field in descriptor.fields:
        path = (*prefix, field.name)
        out.append(path)
        if (
            field.message_type is not None
            and not field.is_repeated
            and field.message_type.full_name not in _WELL_KNOWN
            and depth < 3
        ):
            out.extend(_paths(field.message_type, path, depth + 1))
    return out


def near(
    valid: Message, pools: Mapping[str, Sequence[str]] | None = None, spoil: int = 3
) -> st.SearchStrategy[Message]:
    """``valid`` with up to ``spoil`` of its fields (at any depth) set to adversarial values."""
    paths = _paths(valid.DESCRIPTOR, (), 0)

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> Message:
        message = type(valid)()
        message.CopyFrom(valid)
        generator = Generator(draw, pools, max_depth=3)
        for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=spoil)):
            target = message
            for name in path[:-1]:
                target = getattr(target, name)
            field = target.DESCRIPTOR.fields_by_name[path[-1]]
            target.ClearField(field.name)
            generator.set_field(target, field, 1)
        return message

    return build()
