"""The registry of validation checks a rule can name, with the fields and parameters each takes.

A check gets the values of its field in a record (``FieldValue``: where it is, the standardised
value, and what standardisation learnt about it) and returns the problems it finds. Only
``required`` (``wants_empty``) sees empty values; the others get the non-empty ones only.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import re2

from svod_quality.domain.dates import DEFAULT_MAX_AGE, DEFAULT_MIN_AGE, birth_date_problem
from svod_quality.domain.emails import EmailInfo
from svod_quality.domain.model import IDENTIFIER_TYPES
from svod_quality.domain.names import name_problem
from svod_quality.domain.phones import PhoneInfo

NAME_FIELDS: Final = ("first_name", "last_name", "middle_name", "full_name")
ADDRESS_FIELDS: Final = ("country_code", "postal_code", "region", "city", "address_line")
RECORD_FIELDS: Final = frozenset(
    {*IDENTIFIER_TYPES, *NAME_FIELDS, *ADDRESS_FIELDS, "birth_date", "gender"}
)
ATTRIBUTE_PREFIX: Final = "attributes."
_TEXT_FIELDS: Final = frozenset(RECORD_FIELDS - {"birth_date"})
_RU_POSTCODE: Final = re.compile(r"[1-6]\d{5}")  # Russian indices start with 1-6
_OTHER_POSTCODE: Final = re.compile(r"[A-Z0-9][A-Z0-9 \-]{1,9}", re.IGNORECASE)
MAX_REGEX_LENGTH: Final = 500
# As svod_runtime.bounds.MAX_ATTRIBUTE_NAME (a rule on a longer name could never apply).
MAX_ATTRIBUTE_NAME: Final = 64
# RE2 reports a refused pattern in the exception; its own stderr log would only repeat it.
_RE2_OPTIONS: Final = re2.Options()
_RE2_OPTIONS.log_errors = False
PHONE_KINDS: Final = frozenset({"mobile", "landline", "other"})


def is_known_field(name: str) -> bool:
    """A record field, or ``attributes.<name>`` for a custom attribute."""
    if name.startswith(ATTRIBUTE_PREFIX):
        attribute = name[len(ATTRIBUTE_PREFIX) :]
        return 0 < len(attribute) <= MAX_ATTRIBUTE_NAME and "\x00" not in attribute
    return name in RECORD_FIELDS


def is_text_field(name: str) -> bool:
    return name in _TEXT_FIELDS or (is_known_field(name) and name.startswith(ATTRIBUTE_PREFIX))


class FieldValue(NamedTuple):
    path: str  # where the value is in the record as sent, e.g. "identifiers[2].value"
    value: Any  # str, or dt.date for birth_date
    info: Any = None  # PhoneInfo / EmailInfo / the address' country code


class Problem(NamedTuple):
    path: str
    message: str
    suggestion: str = ""


CheckFn = Callable[[Sequence[FieldValue], Mapping[str, Any], dt.date, str], list[Problem]]


@dataclass(frozen=True)
class ParamSpec:
    """A rule parameter: parsed from a string (the proto carries ``map<string, string>``)."""

    kind: str  # "int", "regex" or "kinds" (comma-separated phone kinds)
    required: bool = False
    default: Any = None
    minimum: int = 0
    maximum: int = 10_000


@dataclass(frozen=True)
class CheckSpec:
    name: str
    fn: CheckFn
    description: str
    fields: frozenset[str] | None = None  # None: any text field
    params: Mapping[str, ParamSpec] = field(default_factory=dict)
    wants_empty: bool = False

    def applies_to(self, field_name: str) -> bool:
        if self.name == "required":
            return is_known_field(field_name)
        return field_name in self.fields if self.fields is not None else is_text_field(field_name)


def parse_param(spec: ParamSpec, raw: object) -> tuple[Any, str]:
    """(value, error): the parameter's typed value, or why the raw one is unusable."""
    text = str(raw).strip() if isinstance(raw, (str, int)) and not isinstance(raw, bool) else None
    if text is None:
        return None, "must be a string"
    if spec.kind == "int":
        if not re.fullmatch(r"-?\d+", text):
            return None, "must be an integer"
        number = int(text)
        if not spec.minimum <= number <= spec.maximum:
            return None, f"must be between {spec.minimum} and {spec.maximum}"
        return number, ""
    if spec.kind == "regex":
        if not text or len(text) > MAX_REGEX_LENGTH:
            return None, f"must be a regular expression of 1-{MAX_REGEX_LENGTH} characters"
        return compile_rule_pattern(text)
    kinds = frozenset(k.strip() for k in text.split(",") if k.strip())
    if not kinds or not kinds <= PHONE_KINDS:
        return None, f"must be a comma-separated subset of {', '.join(sorted(PHONE_KINDS))}"
    return kinds, ""


def _required(
    values: Sequence[FieldValue], params: Mapping[str, Any], today: dt.date, missing: str
) -> list[Problem]:
    if not values:
        return [Problem(missing, "is required")]
    return [Problem(v.path, "is required") for v in values if v.value in ("", None)]


def _max_length(
    values: Sequence[FieldValue], params: Mapping[str, Any], today: dt.date, missing: str
) -> list[Problem]:
    limit = params["max"]
    return [
        Problem(v.path, f"is longer than {limit} characters")
        for v in values
        if len(v.value) > limit
    ]


def compile_rule_pattern(text: str) -> tuple[Any, str]:
    """(compiled pattern, error) of a rule's regular expression, compiled by RE2.

    A rule's pattern runs on every record of its field on the event loop, so it must take time
    linear in the value: RE2 guarantees that (no backtracking), where Python's ``re`` takes
    exponential time on patterns like ``(a+)+$`` and froze the service. Constructs RE2 has no
    linear algorithm for (back-references, look-around) and patterns that compile to more than
    RE2's memory budget are refused.
    """
    try:
        return re2.compile(text, _RE2_OPTIONS), ""
    except re2.error as error:
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        return (
            None,
            f"not a regular expression RE2 accepts (no back-references or look-around): {reason}",
        )


def _regex(
    values: Sequence[FieldValue], params: Mapping[str, Any], today: dt.date, missing: str
) -> list[Problem]:
    pattern = params["pattern"]
    return [
        Problem(v.path, f"does not match the pattern {pattern.pattern!r}")
        for v in values
        if not pattern.fullmatch(v.value)
    ]


def _phone_valid(
    values: Sequence[FieldValue], params: Mapping[str, Any], today: dt.date, missing: str
) -> list[Problem]:
    kinds: frozenset[str] | None = params.get("kinds")
    problems: list[Problem] = []
    for v in values:
        info: PhoneInfo = v.info
        if not info.valid:
            problems.append(Problem(v.path, f"not a valid phone number: {info.reason}"))
        elif kinds and info.kind not in kinds:
            allowed = ", ".join(sorted(kinds))
            problems.append(Problem(v.path, f"is a {info.kind} number; accepted: {allowed}"))
    return problems


def _phone_not_placeholder(
    values: Sequence[FieldValue], params: Mapping[str, Any], today: dt.date, missing: str
) -> list[Problem]:
    return [
        Problem(v.path, f"looks like a placeholder number ({v.info.reason})")
        for v in values
        if v.info.placeholder
    ]


def _email_valid(
    values: Sequence[FieldValue], params: Mapping[str, Any], today: dt.date, missing: str
) -> list[Problem]:
    problems = []
    for v in values:
        info: EmailInfo = v.info
        if not info.valid:
            problems.append(Problem(v.path, f"not a valid e-mail: {info.reason}", info.suggestion))
    return problems


def _email_not_disposable(
    values: Sequence[FieldValue], params: Mapping[str, Any], today: dt.date, missing: str
) -> list[Problem]:
    return [
        Problem(v.path, "is at a disposable (throw-away) mail service")
        for v in values
        if v.info.disposable
    ]


def _email_not_role(
    values: Sequence[FieldValue], params: Mapping[str, Any], today: dt.date, missing: str
) -> list[Problem]:
    return [
        Problem(v.path, "is a role address (info@, sales@, ...), not a person's")
        for v in values
        if v.info.role
    ]


def _birth_date_plausible(
    values: Sequence[FieldValue], params: Mapping[str, Any], today: dt.date, missing: str
) -> list[Problem]:
    problems = []
    for v in values:
        why = birth_date_problem(v.value, today, params["min_age"], params["max_age"])
        if why:
            problems.append(Problem(v.path, why))
    return problems


def _name_plausible(
    values: Sequence[FieldValue], params: Mapping[str, Any], today: dt.date, missing: str
) -> list[Problem]:
    problems = []
    for v in values:
        why = name_problem(v.value)
        if why:
            problems.append(Problem(v.path, why))
    return problems


def _postcode_format(
    values: Sequence[FieldValue], params: Mapping[str, Any], today: dt.date, missing: str
) -> list[Problem]:
    problems = []
    for v in values:
        russian = v.info in ("", "RU", None)
        pattern = _RU_POSTCODE if russian else _OTHER_POSTCODE
        if not pattern.fullmatch(v.value):
            expected = "6 digits starting with 1-6" if russian else "2-10 letters or digits"
            problems.append(Problem(v.path, f"is not a postcode ({expected})"))
    return problems


def _spec(
    name: str,
    fn: CheckFn,
    description: str,
    fields: set[str] | tuple[str, ...] | None = None,
    **params: ParamSpec,
) -> CheckSpec:
    return CheckSpec(name, fn, description, None if fields is None else frozenset(fields), params)


CHECKS: Final[Mapping[str, CheckSpec]] = {
    spec.name: spec
    for spec in (
        CheckSpec("required", _required, "the field has a value", wants_empty=True),
        _spec(
            "max_length",
            _max_length,
            "at most `max` characters",
            max=ParamSpec("int", required=True, minimum=1),
        ),
        _spec(
            "regex",
            _regex,
            "the whole value matches `pattern`",
            pattern=ParamSpec("regex", required=True),
        ),
        _spec(
            "phone_valid",
            _phone_valid,
            "a valid phone number; `kinds` optionally limits it to mobile/landline/other",
            {"phone"},
            kinds=ParamSpec("kinds"),
        ),
        _spec(
            "phone_not_placeholder",
            _phone_not_placeholder,
            "not 0000000000, 1234567890, one repeated digit, ...",
            {"phone"},
        ),
        _spec("email_valid", _email_valid, "syntactically valid e-mail", {"email"}),
        _spec(
            "email_not_disposable",
            _email_not_disposable,
            "not at a throw-away mail service",
            {"email"},
        ),
        _spec("email_not_role", _email_not_role, "not info@, sales@, ...", {"email"}),
        _spec(
            "birth_date_plausible",
            _birth_date_plausible,
            "not in the future; age between `min_age` and `max_age`",
            {"birth_date"},
            min_age=ParamSpec("int", default=DEFAULT_MIN_AGE, maximum=150),
            max_age=ParamSpec("int", default=DEFAULT_MAX_AGE, maximum=150),
        ),
        _spec(
            "name_plausible",
            _name_plausible,
            "no digits, not a placeholder such as 'тест', 'xxx', 'нет'",
            NAME_FIELDS,
        ),
        _spec(
            "postcode_format",
            _postcode_format,
            "6 digits for Russia, 2-10 letters/digits elsewhere",
            {"postal_code"},
        ),
    )
}
