"""Settings: DRG_ environment, validation stops startup."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import Settings


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "keys.txt"
    path.write_text("x sha256:" + "0" * 64 + "\n")
    return path


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch, keys: Path) -> None:
    monkeypatch.setenv("DRG_API_KEYS_FILE", str(keys))
    monkeypatch.setenv("DRG_TFSERVING_TARGET", "tfserving:8500")
    monkeypatch.setenv("DRG_MAX_CONCURRENT_INFERENCES", "8")
    settings = Settings()
    assert settings.tfserving_target == "tfserving:8500"
    assert settings.max_concurrent_inferences == 8
    assert settings.backend == "tfserving"


def test_auth_needs_a_key_file(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="DRG_API_KEYS_FILE"):
        Settings()


def test_auth_off_only_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRG_AUTH", "disabled")
    with pytest.raises(ValidationError, match="development"):
        Settings()
    monkeypatch.setenv("DRG_ENVIRONMENT", "development")
    assert Settings().auth == "disabled"


def test_typo_in_a_variable_stops_startup(monkeypatch: pytest.MonkeyPatch, keys: Path) -> None:
    monkeypatch.setenv("DRG_API_KEYS_FILE", str(keys))
    monkeypatch.setenv("DRG_BACKNED", "local")
    with pytest.raises(ValidationError, match="DRG_BACKNED"):
        Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DRG_PORT", "0"),
        ("DRG_BACKEND", "grpc"),
        ("DRG_MODEL_NAME", "a/b"),
        ("DRG_REQUEST_TIMEOUT_S", "-1"),
        ("DRG_MODEL_VERSION", str(2**63)),  # TF Serving versions are int64
    ],
)
def test_bad_values(monkeypatch: pytest.MonkeyPatch, keys: Path, name: str, value: str) -> None:
    monkeypatch.setenv("DRG_API_KEYS_FILE", str(keys))
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_missing_key_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DRG_API_KEYS_FILE", str(tmp_path / "absent.txt"))
    with pytest.raises(ValidationError, match="does not exist"):
        Settings()


def test_auth_off_never_on_a_public_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRG_AUTH", "disabled")
    monkeypatch.setenv("DRG_ENVIRONMENT", "development")
    monkeypatch.setenv("DRG_HOST", "0.0.0.0")
    with pytest.raises(ValidationError, match="loopback"):
        Settings()
