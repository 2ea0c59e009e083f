"""What goes on the wire: one malformed request, the gateway's keys and limits, and multipart
bodies built by hand so they can be broken."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.auth import hash_key
from gateway.main import body_limit

UPLOAD_LIMIT = 1024 * 1024
"""DRG_MAX_UPLOAD_BYTES of the gateway under test: small, so oversized bodies stay cheap."""
BODY_LIMIT = body_limit(UPLOAD_LIMIT)
"""The gateway's request body limit for that upload limit."""
PHOTO_SIZE = (320, 240)
PATIENT_MARKERS = ("SYNTHETIC^PATIENT", "SYN0001", "19700101")
"""Patient attributes of the synthetic DICOM files; they must never reach the gateway's log."""


@dataclass(frozen=True)
class MalformedRequest:
    """One request: what it tests (family, variant) and what goes on the wire."""

    family: str
    variant: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    chunked: bool = False
    """Send the body with Transfer-Encoding: chunked (no Content-Length)."""

    @property
    def route(self) -> str:
        """The route without its query string."""
        return self.path.split("?", 1)[0]


@dataclass(frozen=True)
class Keys:
    """API keys of the gateway under test: one per scope."""

    grade: str = "malformed-grade-key"
    pacs: str = "malformed-pacs-key"
    both: str = "malformed-both-key"

    def write(self, path: Path) -> Path:
        """The key file (DRG_API_KEYS_FILE) for these keys."""
        path.write_text(
            f"grader {hash_key(self.grade)} grade\n"
            f"pacs {hash_key(self.pacs)} pacs\n"
            f"both {hash_key(self.both)} grade,pacs\n"
        )
        return path


KEYS = Keys()
"""The keys of the gateway that ``serving_stack`` starts."""


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for ``key``."""
    return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class Part:
    """One part of a multipart body; ``name`` None gives no Content-Disposition."""

    name: str | None
    data: bytes
    filename: str | None = "upload.bin"
    content_type: str | None = "application/octet-stream"


def multipart(parts: list[Part], boundary: str, *, close: bool = True) -> bytes:
    """multipart/form-data or multipart/related body with CRLF line ends."""
    chunks: list[bytes] = []
    for part in parts:
        headers = []
        if part.name is not None:
            disposition = f'form-data; name="{part.name}"'
            if part.filename is not None:
                disposition += f'; filename="{part.filename}"'
            headers.append(f"Content-Disposition: {disposition}")
        if part.content_type is not None:
            headers.append(f"Content-Type: {part.content_type}")
        head = "".join(f"{h}\r\n" for h in headers)
        chunks.append(f"--{boundary}\r\n{head}\r\n".encode("latin-1") + part.data + b"\r\n")
    if close:
        chunks.append(f"--{boundary}--\r\n".encode("latin-1"))
    return b"".join(chunks)


def form_type(boundary: str) -> str:
    """Content-Type of a multipart/form-data body."""
    return f"multipart/form-data; boundary={boundary}"


def stow_type(boundary: str) -> str:
    """Content-Type of a STOW-RS request."""
    return f'multipart/related; type="application/dicom"; boundary={boundary}'


GRADE, EXAMS, STOW = "/v1/grade", "/v1/exams", "/dicomweb/studies"
