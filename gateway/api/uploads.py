"""Reading image uploads: multipart form fields or a raw body. The body size limit is enforced
by BodySizeLimitMiddleware while the bytes arrive; the format is decided by magic bytes later."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import UploadFile

from gateway.errors import ApiError

RAW_CONTENT_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/tiff",
        "application/dicom",
        "application/octet-stream",
    }
)


def content_type(request: Request) -> str:
    """Main type of the Content-Type header, lower case ('' when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_files(request: Request, fields: tuple[str, ...]) -> dict[str, bytes]:
    """Read the named file fields of a multipart/form-data body."""
    try:
        form = await request.form(max_files=len(fields) + 2, max_fields=16)
    except ApiError:
        raise
    except Exception:  # python-multipart raises several types for broken bodies
        raise ApiError(
            "malformed_request", "the multipart/form-data body cannot be parsed"
        ) from None
    try:
        files: dict[str, bytes] = {}
        for name in fields:
            value = form.get(name)
            if value is None:
                raise ApiError("missing_field", f"multipart field {name!r} is missing")
            if not isinstance(value, UploadFile):
                raise ApiError("missing_field", f"multipart field {name!r} must be a file")
            files[name] = await value.read()
        return files
    finally:
        await form.close()


async def read_single_image(request: Request) -> bytes:
    """The image of ``POST /v1/grade``: multipart field ``image`` or the raw body."""
    kind = content_type(request)
    if kind == "multipart/form-data":
        return (await read_files(request, ("image",)))["image"]
    if kind and kind not in RAW_CONTENT_TYPES and not kind.startswith("image/"):
        raise ApiError(
            "unsupported_media_type",
            f"Content-Type {kind!r}: send multipart/form-data (field 'image') or the raw image "
            "as image/jpeg, image/png, image/tiff or application/dicom",
        )
    return await request.body()
