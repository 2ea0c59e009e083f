"""How the store connects: the URL, the password from a file, TLS and the connect timeout.

The gateway's ``Settings`` (``DRG_DATABASE_*``) and ``python -m gateway.store`` both end here,
so a migration Job and the gateway it prepares connect the same way. The password never sits in
the URL (it would reach logs and ``ps``): a URL that carries one is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from gateway.store.engine import normalize_url, safe_url

DEFAULT_DATABASE_URL = "sqlite:///var/drg.sqlite3"
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class DatabaseSettings:
    """The ``DRG_DATABASE_*`` settings, already validated."""

    url: str = DEFAULT_DATABASE_URL
    password_file: Path | None = None
    sslmode: str | None = None
    sslrootcert: Path | None = None
    connect_timeout_s: float = 5.0

    @property
    def embedded(self) -> bool:
        """SQLite: one file beside one gateway process, upgraded by the gateway itself."""
        return normalize_url(self.url).get_backend_name() == "sqlite"

    def connect_url(self) -> URL:
        """The URL to connect with: the password read from its file, TLS and timeout added."""
        url = normalize_url(self.url)
        if url.get_backend_name() == "sqlite":
            return url
        query = dict(url.query)
        query.setdefault("connect_timeout", str(max(1, round(self.connect_timeout_s))))
        if self.sslmode:
            query["sslmode"] = self.sslmode
        if self.sslrootcert:
            query["sslrootcert"] = str(self.sslrootcert)
        if self.password_file is not None:
            url = url.set(password=read_password(self.password_file))
        return url.set(query=query)

    def describe(self) -> str:
        """The URL as logs and messages may show it."""
        return safe_url(self.url)


def read_password(path: Path) -> str:
    """The password file's content without its trailing newline."""
    return path.read_text(encoding="utf-8").rstrip("\r\n")


def check_database_settings(url: str, password_file: Path | None, sslrootcert: Path | None) -> None:
    """Raise ``ValueError`` with the setting's name for a URL or file that cannot work."""
    try:
        parsed = normalize_url(url)
    except Exception as error:  # sqlalchemy's ArgumentError or our ValueError
        raise ValueError(f"DRG_DATABASE_URL: {error}") from None
    if parsed.password is not None:
        raise ValueError(
            "DRG_DATABASE_URL must not carry a password (it would be logged): put it in a file "
            "named by DRG_DATABASE_PASSWORD_FILE"
        )
    if parsed.get_backend_name() == "sqlite" and not parsed.database:
        raise ValueError("DRG_DATABASE_URL: sqlite:/// needs a file path")
    for name, path in (
        ("DRG_DATABASE_PASSWORD_FILE", password_file),
        ("DRG_DATABASE_SSLROOTCERT", sslrootcert),
    ):
        if path is not None and not path.is_file():
            raise ValueError(f"{name} {path} does not exist")


def from_environment(environ: Mapping[str, str] = os.environ) -> DatabaseSettings:
    """The ``DRG_DATABASE_*`` variables alone (what the migration CLI reads)."""
    password_file = environ.get("DRG_DATABASE_PASSWORD_FILE")
    sslrootcert = environ.get("DRG_DATABASE_SSLROOTCERT")
    sslmode = environ.get("DRG_DATABASE_SSLMODE") or None
    if sslmode is not None and sslmode not in SSLMODES:
        raise ValueError(f"DRG_DATABASE_SSLMODE {sslmode!r}: one of {', '.join(SSLMODES)}")
    settings = DatabaseSettings(
        url=environ.get("DRG_DATABASE_URL") or DEFAULT_DATABASE_URL,
        password_file=Path(password_file) if password_file else None,
        sslmode=sslmode,
        sslrootcert=Path(sslrootcert) if sslrootcert else None,
        connect_timeout_s=float(environ.get("DRG_DATABASE_CONNECT_TIMEOUT_S") or 5.0),
    )
    check_database_settings(settings.url, settings.password_file, settings.sslrootcert)
    return settings
