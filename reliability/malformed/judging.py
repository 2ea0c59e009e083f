"""Verdicts: whether one answer of the gateway keeps the rules (a valid error code, no server
error)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import httpx

from gateway.errors import ERRORS
from gateway.pacs.stow import DICOM_JSON_MEDIA_TYPE, PRIVATE_CREATOR
from reliability.malformed.wire import STOW, MalformedRequest

Kind = Literal["accepted", "refused", "server_error", "codeless", "transport_error"]


@dataclass(frozen=True)
class Verdict:
    """What one answer was: ``code`` is the error code(s), what was accepted, or the failure."""

    kind: Kind
    status: int | None
    code: str


def _error_code(response: httpx.Response) -> str | None:
    """The table code of a ``{"error": {"code", "message"}}`` body whose status fits; else None."""
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(code, str) or not isinstance(message, str) or not message:
        return None
    if code not in ERRORS or ERRORS[code].status != response.status_code:
        return None
    return code


def _stow_failures(document: object) -> list[str | None]:
    """The gateway error code of every Failed SOP Sequence item (None when one lacks it)."""
    if not isinstance(document, dict):
        return [None]
    items = document.get("00081198", {}).get("Value", [])
    codes: list[str | None] = []
    for item in items:
        creator = next(
            (
                tag[6:8]
                for tag, element in item.items()
                if tag.startswith("00090")
                and tag[4:6] == "00"
                and element.get("Value") == [PRIVATE_CREATOR]
            ),
            None,
        )
        reason = item.get("00081197", {}).get("Value")
        code = item.get(f"0009{creator}01", {}).get("Value", [None])[0] if creator else None
        codes.append(code if reason and isinstance(code, str) else None)
    return codes


def _judge_stow(response: httpx.Response) -> Verdict:
    status = response.status_code
    try:
        document = response.json()
    except ValueError:
        return Verdict("codeless", status, "stow_not_json")
    failures = _stow_failures(document)
    stored = len(document.get("00081199", {}).get("Value", [])) if isinstance(document, dict) else 0
    codes = "+".join(sorted({code for code in failures if code}))
    if status >= 500 or any(code in ERRORS and ERRORS[code].status >= 500 for code in failures):
        return Verdict("server_error", status, codes or "no_code")
    if any(code is None or code not in ERRORS for code in failures):
        return Verdict("codeless", status, "stow_failure_without_code")
    if status == 200 and stored and not failures:
        return Verdict("accepted", status, "stored")
    if status == 202 and stored and failures:
        return Verdict("accepted", status, f"partly:{codes}")
    if status == 409 and failures and not stored:
        return Verdict("refused", status, codes)
    return Verdict("codeless", status, f"stow_status_{status}_inconsistent")


def judge(request: MalformedRequest, response: httpx.Response) -> Verdict:
    """Classify one answer against the rules in this module's docstring."""
    status = response.status_code
    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
    if request.route == STOW and media_type == DICOM_JSON_MEDIA_TYPE:
        return _judge_stow(response)
    if status >= 500:
        try:
            served_code = str(response.json()["error"]["code"])
        except (ValueError, KeyError, TypeError):
            served_code = "no_code"
        return Verdict("server_error", status, served_code)
    if 200 <= status < 300:
        return Verdict("accepted", status, _accepted_label(response))
    code = _error_code(response) if 400 <= status < 500 else None
    if code is None:
        return Verdict("codeless", status, "no_code")
    if status == 405 and "allow" not in response.headers:
        return Verdict("codeless", status, "405_without_allow_header")
    return Verdict("refused", status, code)


def _accepted_label(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "not_json"
    if not isinstance(body, dict):
        return "other"
    if "patient" in body:
        return "exam"
    gradable = body.get("quality", {}).get("gradable")
    return "gradable" if gradable is True else "ungradable" if gradable is False else "other"
