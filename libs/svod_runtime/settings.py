"""Settings read from the environment: typed pydantic-settings models, one error message.

Every variable is a field whose ``validation_alias`` is the variable's exact name (the Helm
chart and the docs use those names), documented by its ``description``. A model is read with
``Model.load(env)``: from the given mapping (a test's, ``svod run``'s), else ``os.environ``.
Empty variables count as unset. Constructing a model directly (``Model(field=...)``) reads no
environment at all, so code and tests that build settings by hand get exactly what they pass.

A value that does not fit raises ``ConfigurationError`` naming the variable and what it must
be, e.g. ``SVOD_IDENTITY_PORT must be an integer between 1 and 65535, got 'abc'``; each
service's entrypoint prints it and exits before serving.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Self

from annotated_types import Ge, Gt, Le, Lt
from pydantic import AliasChoices, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from svod_runtime.errors import ConfigurationError

# The environment a ``load`` reads; None outside one (direct construction reads nothing).
_LOADING: ContextVar[Mapping[str, str] | None] = ContextVar("svod_settings_env", default=None)


class _LoadingEnvSource(EnvSettingsSource):
    """The environment of the ``load`` in progress in place of ``os.environ``."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        env = _LOADING.get()
        if env is None:
            return {}
        return parse_env_vars(env, True, True, None)


class SettingsModel(BaseSettings):
    """Base of every settings model (see the module's docstring)."""

    model_config = SettingsConfigDict(
        case_sensitive=True,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _LoadingEnvSource(settings_cls)

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> Self:
        """The settings in ``env`` (default: the process's environment)."""
        token = _LOADING.set(os.environ if env is None else env)
        try:
            return cls()
        except ValidationError as error:
            raise ConfigurationError(describe(cls, error, _LOADING.get() or {})) from None
        finally:
            _LOADING.reset(token)


def variable_names(info: FieldInfo) -> tuple[str, ...]:
    """The environment variables a field is read from, the first present winning."""
    alias = info.validation_alias
    if isinstance(alias, str):
        return (alias,)
    if isinstance(alias, AliasChoices):
        return tuple(choice for choice in alias.choices if isinstance(choice, str))
    return ()


def expectation(info: FieldInfo) -> str:
    """What a field's variable must hold, in words: "an integer between 1 and 65535"."""
    kind = {int: "an integer", float: "a number", bool: "0 or 1"}.get(
        info.annotation,  # type: ignore[arg-type]
        "a valid value",
    )
    low: Any = next((m.ge for m in info.metadata if isinstance(m, Ge)), None)
    high: Any = next((m.le for m in info.metadata if isinstance(m, Le)), None)
    above: Any = next((m.gt for m in info.metadata if isinstance(m, Gt)), None)
    below: Any = next((m.lt for m in info.metadata if isinstance(m, Lt)), None)
    low, high, above, below = (_number(v) for v in (low, high, above, below))
    if low is not None and high is not None:
        return f"{kind} between {low} and {high}"
    bounds = []
    if low is not None:
        bounds.append(f"at least {low}")
    if above is not None:
        bounds.append(f"greater than {above}")
    if high is not None:
        bounds.append(f"at most {high}")
    if below is not None:
        bounds.append(f"less than {below}")
    return f"{kind} {' and '.join(bounds)}" if bounds else kind


def _number(value: Any) -> Any:
    """0.0 reads as 0, 65535 as 65535."""
    return f"{value:g}" if isinstance(value, float) else value


def describe(model: type[BaseSettings], error: ValidationError, env: Mapping[str, str]) -> str:
    """One part per bad variable: its name, what it must be, and what it was."""
    fields_by_variable = {
        name: info for info in model.model_fields.values() for name in variable_names(info)
    }
    parts = []
    for problem in error.errors():
        variable = str(problem["loc"][0]) if problem["loc"] else "?"
        info = fields_by_variable.get(variable) or model.model_fields.get(variable)
        if info is None:
            parts.append(f"{variable}: {problem['msg']}, got {problem['input']!r}")
            continue
        # Of a field's variables (SVOD_<SERVICE>_X, then SVOD_X), name the one that was read.
        given = [name for name in variable_names(info) if env.get(name)]
        variable = given[0] if given else variable
        parts.append(f"{variable} must be {expectation(info)}, got {problem['input']!r}")
    return "; ".join(parts)
