"""Settings from the environment: variables keep their names, and a bad value stops the service
at start with one message naming the variable and what it must be."""

from __future__ import annotations

from pathlib import Path

import pytest

from svod_identity.entrypoints.app import IdentitySettings
from svod_quality.entrypoints.settings import QualitySettings
from svod_runtime import entrypoint
from svod_runtime.config import ServiceConfig, port_of, target_of
from svod_runtime.entrypoint import run_service_cli
from svod_runtime.errors import ConfigurationError
from svod_runtime.settings import SettingsModel
from svod_segmentation.entrypoints.app import SegmentationSettings

DB = {"SVOD_DATABASE_URL": "postgresql://h/d"}


def _refusal(env: dict[str, str], service: str = "identity") -> str:
    with pytest.raises(ConfigurationError) as refused:
        ServiceConfig.from_env(service, {**DB, **env})
    return refused.value.message


def test_a_port_that_is_no_integer_is_named_with_what_it_must_be() -> None:
    assert _refusal({"SVOD_IDENTITY_PORT": "abc"}) == (
        "SVOD_IDENTITY_PORT must be an integer between 1 and 65535, got 'abc'"
    )
    assert _refusal({"SVOD_IDENTITY_PORT": "70000"}) == (
        "SVOD_IDENTITY_PORT must be an integer between 1 and 65535, got '70000'"
    )


def test_bad_durations_and_ratios_are_refused_by_name() -> None:
    assert _refusal({"SVOD_PEER_TIMEOUT_S": "soon"}) == (
        "SVOD_PEER_TIMEOUT_S must be a number greater than 0, got 'soon'"
    )
    assert _refusal({"OTEL_TRACES_SAMPLER_ARG": "2"}) == (
        "OTEL_TRACES_SAMPLER_ARG must be a number between 0 and 1, got '2'"
    )
    assert "SVOD_PROFILE_PORT must be" in _refusal({"SVOD_PROFILE_PORT": "x"})


def test_the_variable_named_is_the_one_that_was_set() -> None:
    """SVOD_<SERVICE>_HEALTH_PORT wins over SVOD_HEALTH_PORT; the message names the one read."""
    assert _refusal({"SVOD_HEALTH_PORT": "x"}).startswith("SVOD_HEALTH_PORT must be an integer")
    assert _refusal({"SVOD_IDENTITY_HEALTH_PORT": "-1", "SVOD_HEALTH_PORT": "9000"}) == (
        "SVOD_IDENTITY_HEALTH_PORT must be an integer between 0 and 65535, got '-1'"
    )


def test_names_defaults_and_empty_values_are_as_before() -> None:
    config = ServiceConfig.from_env(
        "profile",
        {
            **DB,
            "SVOD_PROFILE_HEALTH_PORT": "8081",
            "SVOD_HEALTH_PORT": "8080",
            "SVOD_PEER_API_KEY": "shared-key",
            "SVOD_PEER_TIMEOUT_S": "",  # empty: the default
            "SVOD_ALLOW_INSECURE": "true",  # only 1 turns it on
            "SVOD_RATE_LIMIT_BURST": "0",
            "SVOD_IDENTITY_PORT": "7001",
        },
    )
    assert config.health_port == 8081
    assert config.peer_api_key == "shared-key"
    assert config.peer_timeout_s == 5.0
    assert config.allow_insecure is False
    assert config.rate_limit_burst == 0
    assert config.peers["identity"] == "127.0.0.1:7001"
    assert config.port == 50053 and config.metrics_port == 9463
    assert port_of("quality", {}) == 50055
    assert target_of("quality", {"SVOD_QUALITY_TARGET": "q:1"}) == "q:1"


def test_a_services_own_tls_files_win_over_the_shared_ones() -> None:
    env = {
        **DB,
        "SVOD_TLS_CERT_FILE": "shared.pem",
        "SVOD_TLS_KEY_FILE": "shared.key",
        "SVOD_PROFILE_TLS_CERT_FILE": "profile.pem",
        "SVOD_TLS": "1",
    }
    tls = ServiceConfig.from_env("profile", env).tls
    assert (tls.cert_file, tls.key_file, tls.force) == ("profile.pem", "shared.key", True)
    assert ServiceConfig.from_env("identity", env).tls.cert_file == "shared.pem"


def test_the_retired_key_variable_is_still_refused() -> None:
    assert "SVOD_API_KEYS is no longer read" in _refusal({"SVOD_API_KEYS": "k"})


def test_a_model_built_by_hand_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVOD_SEGMENTATION_SWEEP_S", "9")
    assert SegmentationSettings().sweep_s == 1.0
    assert SegmentationSettings.from_env().sweep_s == 9.0
    assert SegmentationSettings.from_env({"SVOD_SEGMENTATION_RECOMPUTE_S": "0"}).recompute_s == 0


def test_service_settings_are_refused_by_name_too() -> None:
    assert QualitySettings.from_env({"SVOD_QUALITY_WORKERS": "-3"}).workers == 0
    with pytest.raises(ConfigurationError, match="SVOD_QUALITY_FRESHNESS_DAYS must be an integer"):
        QualitySettings.from_env({"SVOD_QUALITY_FRESHNESS_DAYS": "a year"})
    with pytest.raises(ConfigurationError, match="SVOD_SEGMENTATION_SYNC_S must be a number"):
        SegmentationSettings.from_env({"SVOD_SEGMENTATION_SYNC_S": "often"})


def test_every_setting_names_its_variable_and_says_what_it_is_for() -> None:
    from svod_runtime import config, db, logs, runtime, tls

    models: list[type[SettingsModel]] = [
        config.SharedSettings,
        config.PeerKeySettings,
        config.endpoint_settings("identity"),
        config.instance_settings("identity"),
        config.database_settings("identity"),
        db.PoolSettings,
        logs.LogSettings,
        runtime.SupervisorSettings,
        tls.TlsSettings,
        tls.tls_settings("identity"),
        IdentitySettings,
        QualitySettings,
        SegmentationSettings,
    ]
    for model in models:
        for name, info in model.model_fields.items():
            assert info.validation_alias, f"{model.__name__}.{name} names no variable"
            assert info.description, f"{model.__name__}.{name} is not documented"


def test_the_service_stops_at_start_with_the_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SVOD_DATABASE_URL", "postgresql://h/d")
    monkeypatch.setenv("SVOD_QUALITY_PORT", "abc")
    # The root logger stays as it is: a handler on this test's captured stderr would outlive it.
    monkeypatch.setattr(entrypoint, "setup_logging", lambda service: None)

    async def never(*_: object) -> None:
        raise AssertionError("started with a bad port")

    assert run_service_cli("quality", Path("."), never, ["serve"]) == 2  # type: ignore[arg-type]
    assert "SVOD_QUALITY_PORT must be an integer between 1 and 65535, got 'abc'" in (
        capsys.readouterr().err
    )


def test_a_services_own_settings_come_from_the_variables_its_configuration_was_read_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Services of one process (an in-process suite) each get their own variables: their own
    settings are read from those, not from the process's environment."""
    monkeypatch.setenv("SVOD_SEGMENTATION_SYNC_S", "9")
    env = {"SVOD_DATABASE_URL": "postgresql://h/d", "SVOD_SEGMENTATION_SYNC_S": "0.3"}
    config = ServiceConfig.from_env("segmentation", env)
    assert SegmentationSettings.from_env(config.own_settings_env).sync_s == 0.3
    built = ServiceConfig("segmentation", "postgresql://h/d")  # no variables: the process's
    assert SegmentationSettings.from_env(built.own_settings_env).sync_s == 9.0
