"""API keys: several named clients, keys stored only as SHA-256 hashes, constant-time checks.

Key file (DRG_API_KEYS_FILE), one client per line, ``#`` comments:

    <client-name> sha256:<hex digest of the key> [scope,scope]

Scopes: ``grade`` (the /v1 routes), ``pacs`` (DICOMweb intake; reads the results of what that
client sent) and ``results:read`` (reads every PACS result: admins); none listed = ``grade`` and
``pacs`` (``results:read`` is never implied: it must be listed).
Keys are random 256-bit tokens, so a plain SHA-256 is enough (no password stretching needed).
Create one with ``python -m gateway.auth new-key --name pacs-1 --scopes pacs >> keys.txt``; the
key itself is printed once on stderr. Send it as ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import ApiError

SCOPES = frozenset({"grade", "pacs", "results:read"})
DEFAULT_SCOPES = frozenset({"grade", "pacs"})
"""Of a key-file line without scopes (what "all" meant before ``results:read`` existed)."""
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HASH = re.compile(r"^sha256:([0-9a-f]{64})$")


@dataclass(frozen=True)
class ApiClient:
    """An authenticated caller: a name for logs and its scopes."""

    name: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class _Entry:
    client: ApiClient
    digest: bytes


def hash_key(key: str) -> str:
    """The form stored in the key file."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class ApiKeyStore:
    """Parsed key file; ``authenticate`` compares against every entry in constant time."""

    def __init__(self, entries: list[_Entry]) -> None:
        if not entries:
            raise ValueError("the API key file holds no keys")
        self._entries = entries

    @classmethod
    def load(cls, path: Path) -> ApiKeyStore:
        """Parse a key file; malformed lines stop startup with their line number."""
        entries: list[_Entry] = []
        for number, raw in enumerate(path.read_text().splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) not in (2, 3) or not _NAME.match(parts[0]) or not _HASH.match(parts[1]):
                raise ValueError(f"{path}:{number}: expected '<name> sha256:<hex> [scopes]'")
            scopes = frozenset(parts[2].split(",")) if len(parts) == 3 else DEFAULT_SCOPES
            if not scopes <= SCOPES:
                raise ValueError(f"{path}:{number}: unknown scopes {sorted(scopes - SCOPES)}")
            digest = bytes.fromhex(parts[1].removeprefix("sha256:"))
            entries.append(_Entry(ApiClient(parts[0], scopes), digest))
        return cls(entries)

    def authenticate(self, key: str | None, scope: str) -> ApiClient:
        """Return the client owning ``key``; 401 if unknown, 403 if it lacks ``scope``."""
        if not key:
            raise ApiError("unauthorized", "send an API key: 'Authorization: Bearer <key>'")
        presented = hashlib.sha256(key.encode()).digest()
        found: ApiClient | None = None
        for entry in self._entries:  # no early exit: time does not depend on the match
            if hmac.compare_digest(presented, entry.digest):
                found = entry.client
        if found is None:
            raise ApiError("unauthorized", "unknown API key")
        if scope not in found.scopes:
            raise ApiError("forbidden", f"client {found.name!r} may not use {scope!r} routes")
        return found


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    """Extract the key from ``Authorization: Bearer`` or ``X-API-Key``."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return x_api_key.strip() if x_api_key else None


def main(argv: list[str] | None = None) -> int:
    """``new-key``: print a key-file line on stdout and the key itself on stderr."""
    parser = argparse.ArgumentParser(description="API key tool")
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new-key")
    new.add_argument("--name", required=True)
    new.add_argument("--scopes", default="")
    args = parser.parse_args(argv)
    if not _NAME.match(args.name):
        parser.error("name: letters, digits, _ . - only")
    key = secrets.token_urlsafe(32)
    line = f"{args.name} {hash_key(key)}" + (f" {args.scopes}" if args.scopes else "")
    print(line)
    print(f"API key for {args.name} (shown once): {key}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
