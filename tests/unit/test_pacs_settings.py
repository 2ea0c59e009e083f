"""PACS settings: delivery endpoint, auth from secret files, backoff; bad values stop startup."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.pacs.client import read_secret, stow_client
from gateway.settings import Settings


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "keys.txt"
    path.write_text("x sha256:" + "0" * 64 + "\n")
    monkeypatch.setenv("DRG_API_KEYS_FILE", str(path))
    return path


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("s3cret\n")
    return path


def test_pacs_is_off_by_default() -> None:
    settings = Settings()
    assert settings.pacs_enabled is False
    assert settings.pacs_stow_url is None
    assert settings.pacs_auth == "none"


def test_basic_auth_reads_the_password_file(
    monkeypatch: pytest.MonkeyPatch, secret: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("DRG_PACS_ENABLED", "true")
    monkeypatch.setenv("DRG_DATABASE_URL", f"sqlite:///{tmp_path / 'drg.sqlite3'}")
    monkeypatch.setenv("DRG_PACS_STOW_URL", "https://pacs.hospital.example/dicom-web")
    monkeypatch.setenv("DRG_PACS_AUTH", "basic")
    monkeypatch.setenv("DRG_PACS_USERNAME", "drg")
    monkeypatch.setenv("DRG_PACS_PASSWORD_FILE", str(secret))
    settings = Settings()
    assert read_secret(secret) == "s3cret"
    client = stow_client(settings)
    assert client.url == "https://pacs.hospital.example/dicom-web/studies"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DRG_PACS_AUTH": "basic"}, "DRG_PACS_STOW_URL"),
        ({"DRG_PACS_STOW_URL": "http://p/dw", "DRG_PACS_AUTH": "basic"}, "DRG_PACS_USERNAME"),
        ({"DRG_PACS_STOW_URL": "http://p/dw", "DRG_PACS_AUTH": "bearer"}, "DRG_PACS_TOKEN_FILE"),
        (
            {
                "DRG_PACS_STOW_URL": "http://p/dw",
                "DRG_PACS_AUTH": "bearer",
                "DRG_PACS_TOKEN_FILE": "/nope",
            },
            "does not exist",
        ),
        ({"DRG_PACS_CA_FILE": "/nope"}, "does not exist"),
        ({"DRG_PACS_STOW_URL": "ftp://pacs/dw"}, "pacs_stow_url"),
        ({"DRG_PACS_STOW_URL": "http://user:pw@pacs/dw"}, "must not carry credentials"),
        ({"DRG_PACS_AUTH": "digest"}, "pacs_auth"),
        ({"DRG_PACS_RETRY_INITIAL_S": "10", "DRG_PACS_RETRY_MAX_S": "5"}, "RETRY_MAX_S"),
        ({"DRG_PACS_RETRY_INITIAL_S": "0"}, "pacs_retry_initial_s"),
    ],
)
def test_bad_pacs_settings_stop_startup(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_an_empty_secret_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        read_secret(empty)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DRG_PACS_OUTBOX_PATH": "var/outbox.sqlite3"}, "DRG_DATABASE_URL"),
        ({"DRG_DATABASE_URL": "postgresql://drg:pw@db:5432/drg"}, "must not carry a password"),
        ({"DRG_DATABASE_URL": "mysql://drg@db/drg"}, "unsupported database URL"),
        ({"DRG_DATABASE_PASSWORD_FILE": "/nonexistent/pw"}, "DRG_DATABASE_PASSWORD_FILE"),
        ({"DRG_PACS_TIMEOUT_S": "30", "DRG_PACS_LEASE_S": "30"}, "DRG_PACS_LEASE_S"),
        ({"DRG_DATABASE_SSLMODE": "sometimes"}, "database_sslmode"),
    ],
)
def test_bad_store_settings_are_refused_with_their_name(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        Settings()


def test_the_database_password_comes_from_its_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    password = tmp_path / "pw"
    password.write_text("s3cret-db\n")
    monkeypatch.setenv("DRG_DATABASE_URL", "postgresql://drg@db.internal:5432/drg")
    monkeypatch.setenv("DRG_DATABASE_PASSWORD_FILE", str(password))
    monkeypatch.setenv("DRG_DATABASE_SSLMODE", "verify-full")
    database = Settings().database
    url = database.connect_url()
    assert url.password == "s3cret-db" and url.drivername == "postgresql+psycopg"
    assert url.query["sslmode"] == "verify-full" and url.query["connect_timeout"] == "5"
    assert "s3cret" not in database.describe()
