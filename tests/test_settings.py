"""Settings: production refuses weak secrets (without echoing them); .env.example is complete."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from api.app import create_app
from api.core.config import (
    DEVELOPMENT_JWT_SECRET,
    ConfigurationError,
    Settings,
    load_settings,
)
from tests.support.paths import REPO_ROOT

GOOD_SECRET = "k" * 16 + "-production-secret-" + "z" * 16


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No setting from the outer environment or a local `.env` leaks into these tests."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def _refusal(clean_env: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        clean_env.setenv(name, value)
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    return str(raised.value)


def test_production_refuses_the_example_secret(clean_env: pytest.MonkeyPatch) -> None:
    message = _refusal(clean_env, ENV="production", JWT_SECRET_KEY=DEVELOPMENT_JWT_SECRET)
    assert "JWT_SECRET_KEY" in message
    assert "development example value" in message
    assert DEVELOPMENT_JWT_SECRET not in message


def test_production_refuses_the_default_secret_too(clean_env: pytest.MonkeyPatch) -> None:
    assert "development example value" in _refusal(clean_env, ENV="production")


@pytest.mark.parametrize("env", ["development", "production"])
def test_short_secrets_are_refused_without_being_echoed(
    clean_env: pytest.MonkeyPatch, env: str
) -> None:
    short = "short-but-secret-value-31-bytes"
    assert len(short.encode()) == 31
    message = _refusal(clean_env, ENV=env, JWT_SECRET_KEY=short)
    assert "JWT_SECRET_KEY must be at least 32 bytes" in message
    assert short not in message


def test_secret_length_is_counted_in_bytes(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ENV", "production")
    clean_env.setenv("JWT_SECRET_KEY", "é" * 16)  # 16 characters, 32 bytes
    assert load_settings().jwt_secret_key.get_secret_value() == "é" * 16


def test_production_starts_with_a_real_secret(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ENV", "production")
    clean_env.setenv("JWT_SECRET_KEY", GOOD_SECRET)
    settings = load_settings()
    assert settings.env == "production"
    assert GOOD_SECRET not in repr(settings)


def test_invalid_values_name_the_variable_not_the_value(clean_env: pytest.MonkeyPatch) -> None:
    message = _refusal(
        clean_env,
        ACCESS_TOKEN_EXPIRE_MINUTES="0",
        FORWARDED_ALLOW_IPS="10.0.0.0/8,not-a-network",
        JWT_SECRET_KEY=GOOD_SECRET,
    )
    assert "ACCESS_TOKEN_EXPIRE_MINUTES" in message
    assert "FORWARDED_ALLOW_IPS" in message
    assert "not-a-network" not in message and GOOD_SECRET not in message


def test_lists_are_comma_separated(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CORS_ORIGINS", "http://a.example, http://b.example")
    clean_env.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8, 192.0.2.1")
    settings = load_settings()
    assert settings.cors_origins == ["http://a.example", "http://b.example"]
    assert settings.forwarded_allow_ips == ["10.0.0.0/8", "192.0.2.1"]


def test_the_app_refuses_to_start_in_production_with_the_example_secret(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("ENV", "production")
    with pytest.raises(ConfigurationError):
        create_app()
    # And as a process: `uvicorn api.main:app` imports this module.
    env = {"PATH": "/usr/bin:/bin", "ENV": "production", "PYTHONPATH": str(REPO_ROOT)}
    env["JWT_SECRET_KEY"] = DEVELOPMENT_JWT_SECRET
    result = subprocess.run(
        [sys.executable, "-c", "import api.main"],
        env=env,
        cwd=Path.cwd(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "development example value" in result.stderr
    assert DEVELOPMENT_JWT_SECRET not in result.stderr


def _env_example() -> dict[str, str]:
    entries = {}
    for line in (REPO_ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"not NAME=value: {line!r}"
            entries[name.strip()] = value.strip()
    return entries


def test_env_example_lists_every_setting() -> None:
    listed = set(_env_example())
    missing = {name.upper() for name in Settings.model_fields} - listed
    assert not missing, f".env.example does not list {sorted(missing)}"


def test_env_example_shows_the_defaults(clean_env: pytest.MonkeyPatch) -> None:
    """Loading .env.example gives exactly the built-in defaults (empty values mean default)."""
    from_example = Settings(_env_file=str(REPO_ROOT / ".env.example"))  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_example.model_dump() == defaults.model_dump()
