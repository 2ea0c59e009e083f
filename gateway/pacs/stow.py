"""STOW-RS (DICOM PS3.18 section 10.5) wire format: the request body and the response dataset.

Request: ``multipart/related; type="application/dicom"; boundary=...`` with one DICOM Part 10
instance per part, or a raw DICOM body whatever its declared Content-Type (Orthanc's Lua
``HttpPost`` and some scripts send that). Response: ``application/dicom+json`` with the
Referenced SOP Sequence (0008,1199) and the Failed SOP Sequence (0008,1198).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from gateway.errors import ERRORS, ApiError

DICOM_MEDIA_TYPE = "application/dicom"
DICOM_JSON_MEDIA_TYPE = "application/dicom+json"

# Failure Reason (0008,1197) values, PS3.18 table "Store Instances Response Failure Reasons".
PROCESSING_FAILURE = 0x0110
SOP_CLASS_NOT_SUPPORTED = 0x0122
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
DUPLICATE_SOP_INSTANCE = 0x0111
"""PS3.7 C.4 "Duplicate SOP Instance": the UID is already registered (here: with other content).
PS3.18 I.2.2 allows codes beyond its table; none of its own means "already exists"."""

FAILURE_REASONS: dict[str, int] = {
    "dicom_unsupported_sop_class": SOP_CLASS_NOT_SUPPORTED,
    "dicom_unsupported_transfer_syntax": TRANSFER_SYNTAX_NOT_SUPPORTED,
    "dicom_no_pixel_data": DATASET_DOES_NOT_MATCH_SOP_CLASS,
    "dicom_unsupported_image": CANNOT_UNDERSTAND,
    "corrupt_image": CANNOT_UNDERSTAND,
    "invalid_image": CANNOT_UNDERSTAND,
    "empty_input": CANNOT_UNDERSTAND,
    "unsupported_format": CANNOT_UNDERSTAND,
    "image_too_small": CANNOT_UNDERSTAND,
    "malformed_request": CANNOT_UNDERSTAND,
    "unsupported_media_type": CANNOT_UNDERSTAND,
    "image_too_large": OUT_OF_RESOURCES,
    "payload_too_large": OUT_OF_RESOURCES,
    "overloaded": OUT_OF_RESOURCES,
    "backend_overloaded": OUT_OF_RESOURCES,
    "store_unavailable": OUT_OF_RESOURCES,
    "instance_conflict": DUPLICATE_SOP_INSTANCE,
    "laterality_missing": CANNOT_UNDERSTAND,
    "study_patient_mismatch": CANNOT_UNDERSTAND,
}
"""Gateway error code -> STOW-RS Failure Reason; anything else is a processing failure."""

TRANSIENT_REASONS = frozenset({OUT_OF_RESOURCES, PROCESSING_FAILURE})
"""Reasons a sender should retry later (how the delivery client reads a PACS's answer)."""

PRIVATE_GROUP = 0x0009
PRIVATE_CREATOR = "DRG GATEWAY 1"
"""Private block in Failed SOP Sequence items: (0009,xx01) error code, (0009,xx02) message."""

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_TYPE = re.compile(r'(?:^|;)\s*type="?([^";]+)"?', re.IGNORECASE)


def failure_reason(error_code: str) -> int:
    """STOW-RS Failure Reason for a gateway error code."""
    return FAILURE_REASONS.get(error_code, PROCESSING_FAILURE)


def split_body(content_type_header: str, body: bytes, max_parts: int) -> list[bytes]:
    """The DICOM instances of a STOW-RS request body.

    ``multipart/related`` is split into its parts (each must be ``application/dicom``);
    anything else is taken as one raw instance whatever the declared type. More than
    ``max_parts`` parts: 413 ``too_many_parts`` as soon as part ``max_parts + 1`` is found (the
    rest of the body is not scanned).
    """
    main_type = content_type_header.split(";", 1)[0].strip().lower()
    if not body:
        raise ApiError("empty_input", "the request body is empty")
    if main_type != "multipart/related":
        return [body]
    declared = _TYPE.search(content_type_header)
    if declared and declared.group(1).strip().lower() != DICOM_MEDIA_TYPE:
        raise ApiError(
            "unsupported_media_type",
            f"multipart/related type {declared.group(1)!r} is not supported; send "
            'type="application/dicom" (Part 10 instances)',
        )
    match = _BOUNDARY.search(content_type_header)
    if not match:
        raise ApiError("malformed_request", "multipart/related without a boundary parameter")
    return _parts(body, match.group(1).strip().encode("latin-1"), max_parts)


def _parts(body: bytes, boundary: bytes, max_parts: int) -> list[bytes]:
    delimiter = b"--" + boundary
    if body.startswith(delimiter):
        position = 0
    else:
        position = body.find(b"\r\n" + delimiter)
        if position < 0:
            raise ApiError("malformed_request", "the multipart body has no boundary delimiter")
        position += 2
    parts: list[bytes] = []
    while True:
        position += len(delimiter)
        if body[position : position + 2] == b"--":
            break  # close delimiter
        if len(parts) == max_parts:
            raise ApiError(
                "too_many_parts",
                f"the request holds more than {max_parts} instances (DRG_PACS_MAX_PARTS); "
                "send fewer instances per request",
            )
        line_end = body.find(b"\r\n", position)
        if line_end < 0:
            raise ApiError("malformed_request", "the multipart body ends inside a delimiter line")
        start = line_end + 2
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            raise ApiError("malformed_request", "the multipart body has no closing delimiter")
        parts.append(_part_content(body[start:end]))
        position = end + 2
    if not parts:
        raise ApiError("malformed_request", "the multipart body holds no parts")
    return parts


def _part_content(part: bytes) -> bytes:
    header_end = part.find(b"\r\n\r\n")
    if part.startswith(b"\r\n"):
        return part[2:]  # a part without headers
    if header_end < 0:
        raise ApiError("malformed_request", "a multipart part has no header terminator")
    headers = part[:header_end].decode("latin-1").lower()
    for line in headers.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip() == "content-type":
            media = value.split(";", 1)[0].strip()
            if media not in (DICOM_MEDIA_TYPE, "application/octet-stream"):
                raise ApiError(
                    "unsupported_media_type",
                    f"part Content-Type {media!r}: only application/dicom parts are accepted",
                )
    return part[header_end + 4 :]


@dataclass(frozen=True)
class InstanceResult:
    """The STOW-RS verdict for one instance (UIDs may be unknown for unreadable data)."""

    sop_class_uid: str | None
    sop_instance_uid: str | None
    failure_reason: int | None = None
    error_code: str | None = None
    message: str | None = None

    @property
    def stored(self) -> bool:
        """Accepted (graded, or already graded earlier)."""
        return self.failure_reason is None


def response_status(results: list[InstanceResult]) -> int:
    """200 all stored, 202 some, 409 none; 503 when every failure is worth retrying later."""
    stored = sum(result.stored for result in results)
    if stored == len(results):
        return 200
    if stored:
        return 202
    if all(_retry_later(result) for result in results):
        return 503
    return 409


def _retry_later(result: InstanceResult) -> bool:
    """The gateway's own error code decides, as on the REST side: 5xx is worth a retry, 4xx
    never (an instance over the pixel limit is Out of Resources, but it stays too large)."""
    if result.error_code in ERRORS:
        return ERRORS[result.error_code].status >= 500
    return result.failure_reason in TRANSIENT_REASONS


def response_dataset(results: list[InstanceResult]) -> dict[str, Any]:
    """The STOW-RS response as DICOM JSON (PS3.18 F.2)."""
    ds = Dataset()
    referenced = [_reference(r) for r in results if r.stored]
    failed = [_failure(r) for r in results if not r.stored]
    if failed:
        ds.FailedSOPSequence = failed
    if referenced:
        ds.ReferencedSOPSequence = referenced
    document: dict[str, Any] = ds.to_json_dict()
    return document


def _reference(result: InstanceResult) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = result.sop_class_uid or ""
    item.ReferencedSOPInstanceUID = result.sop_instance_uid or ""
    return item


def _failure(result: InstanceResult) -> Dataset:
    item = _reference(result)
    item.FailureReason = result.failure_reason
    if result.error_code:
        block = item.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
        block.add_new(0x01, "LO", result.error_code)
        if result.message:
            block.add_new(0x02, "LT", result.message[:1024])
    return item
