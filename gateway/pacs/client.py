"""STOW-RS client that pushes one SR at a time to the configured DICOMweb endpoint."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.pacs import stow
from gateway.settings import Settings

_RETRY_LATER_STATUSES = frozenset({401, 403, 407, 408, 425, 429})
"""Statuses that concern every result (auth, rate, gateway side), not this one: pause all."""


@dataclass(frozen=True)
class StoreOutcome:
    """Result of one STOW-RS attempt.

    ``detail`` is a short machine-readable reason (no patient data); ``pause_all`` means the
    PACS cannot take anything now (down, busy, refusing our credentials), so the worker backs
    off as a whole instead of trying every pending result.
    """

    delivered: bool
    pause_all: bool
    detail: str


def read_secret(path: Path) -> str:
    """A secret from a file (Kubernetes secret volume), trailing newline removed."""
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise ValueError(f"secret file {path} is empty")
    return value


class StowClient:
    """``POST {base}/studies`` with ``multipart/related; type="application/dicom"``."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        basic: tuple[str, str] | None = None,
        bearer: str | None = None,
        verify: str | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Accept": stow.DICOM_JSON_MEDIA_TYPE}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        self.url = base_url.rstrip("/") + "/studies"
        self._http = httpx.AsyncClient(
            timeout=timeout_s,
            headers=headers,
            auth=httpx.BasicAuth(*basic) if basic else None,
            verify=verify,
            follow_redirects=False,
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def store(self, sop_instance_uid: str, data: bytes) -> StoreOutcome:
        """Send one Part 10 instance; delivered only if the PACS lists it as stored."""
        boundary = uuid.uuid4().hex
        body = b"".join(
            (
                f"--{boundary}\r\nContent-Type: {stow.DICOM_MEDIA_TYPE}\r\n\r\n".encode(),
                data,
                f"\r\n--{boundary}--\r\n".encode(),
            )
        )
        content_type = f'multipart/related; type="{stow.DICOM_MEDIA_TYPE}"; boundary={boundary}'
        try:
            response = await self._http.post(
                self.url, content=body, headers={"Content-Type": content_type}
            )
        except httpx.TimeoutException:
            return StoreOutcome(False, True, "timeout")
        except httpx.TransportError as error:
            return StoreOutcome(False, True, f"transport_{type(error).__name__}")
        return interpret(response.status_code, _json(response), sop_instance_uid)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _uids(document: Any, tag: str) -> dict[str, int | None]:
    """SOP Instance UID -> Failure Reason (None when absent) for the items of a sequence."""
    found: dict[str, int | None] = {}
    if not isinstance(document, dict):
        return found
    items = (document.get(tag) or {}).get("Value") or []
    for item in items:
        if not isinstance(item, dict):
            continue
        uid_values = (item.get("00081155") or {}).get("Value") or []
        reason_values = (item.get("00081197") or {}).get("Value") or [None]
        if uid_values:
            reason = reason_values[0]
            found[str(uid_values[0])] = reason if isinstance(reason, int) else None
    return found


def interpret(status: int, document: Any, sop_instance_uid: str) -> StoreOutcome:
    """Decide from the HTTP status and the STOW-RS response whether our SR was stored."""
    if status >= 500 or status in _RETRY_LATER_STATUSES:
        return StoreOutcome(False, True, f"http_{status}")
    referenced = _uids(document, "00081199")
    failed = _uids(document, "00081198")
    if sop_instance_uid in failed:
        reason = failed[sop_instance_uid]
        detail = f"failure_reason_0x{reason:04X}" if reason is not None else f"http_{status}"
        return StoreOutcome(False, reason in stow.TRANSIENT_REASONS, detail)
    if status in (200, 202) and (sop_instance_uid in referenced or not failed):
        return StoreOutcome(True, False, f"http_{status}")
    return StoreOutcome(False, False, f"http_{status}")


def stow_client(settings: Settings) -> StowClient:
    """The STOW-RS client for the configured endpoint; secrets come from files."""
    assert settings.pacs_stow_url is not None
    basic = None
    bearer = None
    if settings.pacs_auth == "basic":
        assert settings.pacs_username is not None and settings.pacs_password_file is not None
        basic = (settings.pacs_username, read_secret(settings.pacs_password_file))
    elif settings.pacs_auth == "bearer":
        assert settings.pacs_token_file is not None
        bearer = read_secret(settings.pacs_token_file)
    verify: str | bool = str(settings.pacs_ca_file) if settings.pacs_ca_file else True
    return StowClient(
        settings.pacs_stow_url,
        timeout_s=settings.pacs_timeout_s,
        basic=basic,
        bearer=bearer,
        verify=verify,
    )
