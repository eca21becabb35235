"""Mapping files of ``svod import``: which column of a CSV (or flat Parquet) file goes to which
field of the public message, and how its text becomes that field's value.

A mapping file is YAML or JSON (docs/bulk-import.md, "svod import")::

    columns:                                # column -> field path in the message
      customer_no: record_ref.message_id
      phone: record.identifiers[phone]      # an identifier of that type, when the cell is set
      crm_id: record.identifiers[external_id:crm]   # type:namespace
      first_name: record.name.first_name
      birthday: record.birth_date           # 1985-03-14 or 14.03.1985
      city: record.addresses[0].city        # [N]: the N-th element of a repeated field
      tier: record.attributes.tier          # a key of a map field
    values:                                 # the same field in every message
      record_ref.source: crm
      channel: back_office                  # enums by their short name
    currency: RUB                           # of money cells (default SVOD_CURRENCY, else RUB)
    delimiter: ";"                          # CSV only (default ",")

Paths use the proto field names (``record.name.first_name``). Every path is checked against the
message when the mapping is loaded, so a typo is a usage error before anything is sent. An
empty cell sets nothing. Values convert by the field's type: timestamps from ISO 8601 (a date,
or a time without a zone, is UTC), ``google.type.Date`` from ``YYYY-MM-DD`` or ``DD.MM.YYYY``,
``google.type.Money`` from a decimal (``1234.50``, ``1 234,50``), enums by short or full name,
integers, booleans (true/false/1/0/yes/no). A cell that does not convert rejects its line alone
(reported with its line, the field path and the column), the rest of the file goes on.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor

from svod_cli.common import UsageError

_SEGMENT = re.compile(r"^([a-z_][a-z0-9_]*)(?:\[([^\]]+)\])?$")
_IDENTIFIER_TYPES = "svod.common.v1.IdentifierType"


class CellError(ValueError):
    """A cell whose value does not fit its field (rejects the line)."""


@dataclass(frozen=True)
class Step:
    """One step of a path into the message dict: a field, an element of a repeated field, a
    key of a map, or a new identifier of a type."""

    name: str
    index: int | None = None  # [N] of a repeated message field
    map_key: str | None = None  # attributes.KEY
    identifier: tuple[str, str] | None = None  # identifiers[type] / [type:namespace]


Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class FieldPath:
    text: str
    steps: tuple[Step, ...]
    convert: Converter

    def apply(self, message: dict[str, Any], raw: Any) -> None:
        """Sets the field in ``message`` (a proto-JSON dict) from one cell; empty sets nothing."""
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return
        value = self.convert(raw)
        node: Any = message
        for position, step in enumerate(self.steps):
            last = position == len(self.steps) - 1
            if step.identifier is not None:
                kind, namespace = step.identifier
                identifier = {"type": kind, "value": value}
                if namespace:
                    identifier["namespace"] = namespace
                node.setdefault(step.name, []).append(identifier)
                return
            if step.map_key is not None:
                node.setdefault(step.name, {})[step.map_key] = value
                return
            if step.index is not None:
                items = node.setdefault(step.name, [])
                while len(items) <= step.index:
                    items.append({})
                if last:
                    items[step.index] = value
                    return
                node = items[step.index]
                continue
            if last:
                node[step.name] = value
                return
            node = node.setdefault(step.name, {})


def compile_path(descriptor: Any, text: str, currency: str) -> FieldPath:
    """``record.identifiers[phone]`` -> the steps and the leaf's converter; a path the message
    does not have is a UsageError saying which part."""
    steps: list[Step] = []
    current: Any = descriptor
    parts = text.strip().split(".")
    leaf: FieldDescriptor | None = None
    position = 0
    while position < len(parts):
        part = parts[position]
        match = _SEGMENT.match(part)
        if current is None or match is None:
            raise UsageError(f"{text!r}: no field {part!r} there")
        name, selector = match.groups()
        field = current.fields_by_name.get(name)
        if field is None:
            known = ", ".join(sorted(current.fields_by_name))
            raise UsageError(f"{text!r}: {current.name} has no field {name!r} (it has {known})")
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if is_map:
            if selector is not None or position + 1 != len(parts) - 1:
                raise UsageError(f"{text!r}: a map field takes one key: {name}.KEY")
            steps.append(Step(name, map_key=parts[position + 1]))
            leaf = field.message_type.fields_by_name["value"]
            break
        repeated = _is_repeated(field)
        if selector is not None and not repeated:
            raise UsageError(f"{text!r}: {name} is not a repeated field")
        if selector is not None and not selector.isdigit():
            identifier = _identifier_selector(field, selector, text)
            if position != len(parts) - 1:
                raise UsageError(f"{text!r}: {name}[{selector}] takes the value itself")
            steps.append(Step(name, identifier=identifier))
            leaf = field.message_type.fields_by_name["value"]
            break
        if repeated and selector is None:
            raise UsageError(f"{text!r}: {name} is repeated: say which element, {name}[0]")
        steps.append(Step(name, index=int(selector) if selector is not None else None))
        leaf = field
        current = field.message_type
        position += 1
    if leaf is None:
        raise UsageError(f"{text!r}: an empty path")
    return FieldPath(text, tuple(steps), _converter(leaf, text, currency))


def _is_repeated(field: FieldDescriptor) -> bool:
    repeated = getattr(field, "is_repeated", None)
    if repeated is not None:
        return bool(repeated)
    return bool(getattr(field, "label", 0) == FieldDescriptor.LABEL_REPEATED)


def _identifier_selector(field: Any, selector: str, text: str) -> tuple[str, str]:
    if field.message_type is None or field.message_type.name != "Identifier":
        raise UsageError(f"{text!r}: [{selector}] selects identifiers only; use [N] here")
    kind, _, namespace = selector.partition(":")
    enum = field.message_type.fields_by_name["type"].enum_type
    name = _enum_name(enum, kind)
    if name is None:
        raise UsageError(f"{text!r}: no identifier type {kind!r}")
    return name, namespace


def _enum_prefix(enum: EnumDescriptor) -> str:
    """``SourceChannel`` -> ``SOURCE_CHANNEL_``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"


def _enum_name(enum: EnumDescriptor, text: str) -> str | None:
    wanted = text.strip().upper().replace("-", "_").replace(" ", "_")
    for candidate in (wanted, _enum_prefix(enum) + wanted):
        if candidate in enum.values_by_name:
            return candidate
    if wanted.isdigit() and int(wanted) in enum.values_by_number:
        return str(enum.values_by_number[int(wanted)].name)
    return None


def _converter(field: FieldDescriptor, text: str, currency: str) -> Converter:
    message = field.message_type
    if message is not None:
        full = message.full_name
        if full == "google.protobuf.Timestamp":
            return _timestamp
        if full == "google.type.Date":
            return _date
        if full == "google.type.Money":
            return lambda raw: _money(raw, currency)
        raise UsageError(f"{text!r} is a message ({message.name}): map its fields")
    if field.enum_type is not None:
        enum = field.enum_type

        def enum_value(raw: Any) -> str:
            name = _enum_name(enum, str(raw))
            if name is None:
                raise CellError(f"{raw!r} is not a {enum.name}")
            return name

        return enum_value
    kind = field.cpp_type
    if kind in (
        FieldDescriptor.CPPTYPE_INT32,
        FieldDescriptor.CPPTYPE_INT64,
        FieldDescriptor.CPPTYPE_UINT32,
        FieldDescriptor.CPPTYPE_UINT64,
    ):
        return _integer
    if kind == FieldDescriptor.CPPTYPE_BOOL:
        return _boolean
    if kind in (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE):
        return float
    return _text


def _text(raw: Any) -> str:
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))  # a numeric Parquet column read as float: 79161234567.0
    return str(raw).strip()


def _integer(raw: Any) -> int:
    try:
        value = Decimal(str(raw).strip().replace(" ", ""))
    except InvalidOperation:
        raise CellError(f"{raw!r} is not a whole number") from None
    if value != value.to_integral_value():
        raise CellError(f"{raw!r} is not a whole number")
    return int(value)


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "y", "да"):
        return True
    if text in ("false", "0", "no", "n", "нет"):
        return False
    raise CellError(f"{raw!r} is not true or false")


def _date(raw: Any) -> dict[str, int]:
    if isinstance(raw, dt.datetime):
        raw = raw.date()
    if not isinstance(raw, dt.date):
        text = str(raw).strip()
        for pattern in ("%Y-%m-%d", "%d.%m.%Y", "%Y%m%d"):
            try:
                raw = dt.datetime.strptime(text, pattern).date()
                break
            except ValueError:
                continue
        else:
            raise CellError(f"{text!r} is not a date (YYYY-MM-DD or DD.MM.YYYY)")
    return {"year": raw.year, "month": raw.month, "day": raw.day}


def _timestamp(raw: Any) -> str:
    if isinstance(raw, dt.datetime):
        moment = raw
    elif isinstance(raw, dt.date):
        moment = dt.datetime(raw.year, raw.month, raw.day)
    else:
        text = str(raw).strip().replace("Z", "+00:00")
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise CellError(f"{raw!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _money(raw: Any, currency: str) -> dict[str, Any]:
    text = str(raw).strip().replace("\u00a0", "").replace(" ", "").replace(",", ".")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise CellError(f"{raw!r} is not an amount") from None
    if not amount.is_finite():
        raise CellError(f"{raw!r} is not an amount")
    units = int(amount)  # towards zero; nanos carry the same sign, as google.type.Money wants
    nanos = int((amount - units) * 1_000_000_000)
    return {"currency_code": currency, "units": str(units), "nanos": nanos}


@dataclass(frozen=True)
class ColumnMapping:
    """A loaded mapping: column -> path, constant values, currency, CSV delimiter."""

    columns: dict[str, FieldPath]
    values: tuple[tuple[FieldPath, Any], ...]
    delimiter: str

    def message_dict(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """The proto-JSON dict of one row and the cells that did not convert (field, why)."""
        message: dict[str, Any] = {}
        errors: list[tuple[str, str]] = []
        for path, value in self.values:
            path.apply(message, value)
        for column, path in self.columns.items():
            try:
                path.apply(message, row.get(column))
            except CellError as error:
                errors.append((path.text, f"column {column}: {error}"))
        return message, errors


def read_mapping_file(path: Path) -> dict[str, Any]:
    """A mapping file's content (YAML, or JSON for a ``.json`` file), its shape checked."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror}") from None
    raw = _parse_mapping(path, text)
    if not isinstance(raw, dict) or not isinstance(raw.get("columns"), dict):
        raise UsageError(f"{path}: a mapping has `columns:` (column -> field path)")
    if not isinstance(raw.get("values") or {}, dict):
        raise UsageError(f"{path}: `values:` maps field paths to values")
    raw["source_file"] = str(path)
    return raw


def load_mapping(raw: dict[str, Any] | None, descriptor: Any, header: list[str]) -> ColumnMapping:
    """The mapping of a file read by ``read_mapping_file``; without one, every column's name is
    its own field path (a header ``record.identifiers[phone]``)."""
    currency = os.environ.get("SVOD_CURRENCY", "RUB")
    if raw is None:
        try:
            columns = {c: compile_path(descriptor, c, currency) for c in header if c.strip()}
        except UsageError as error:
            raise UsageError(f"a header without --mapping names fields: {error}") from None
        return ColumnMapping(columns, (), ",")
    where = raw["source_file"]
    currency = str(raw.get("currency") or currency)
    try:
        columns = {
            str(c): compile_path(descriptor, str(p), currency) for c, p in raw["columns"].items()
        }
        values = tuple(
            (compile_path(descriptor, str(p), currency), v)
            for p, v in (raw.get("values") or {}).items()
        )
        for field_path, value in values:  # constants must convert now, not on every line
            field_path.apply({}, value)
    except (UsageError, CellError) as error:
        raise UsageError(f"{where}: {error}") from None
    return ColumnMapping(columns, values, delimiter_of(raw))


def delimiter_of(raw: dict[str, Any] | None) -> str:
    delimiter = str((raw or {}).get("delimiter") or ",")
    if len(delimiter) != 1:
        raise UsageError(f"delimiter {delimiter!r}: one character")
    return delimiter


def _parse_mapping(path: Path, text: str) -> Any:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(f"{path}: not JSON: {error}") from None
    import yaml  # only mapping files need it

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise UsageError(f"{path}: not YAML: {error}") from None
