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


async def read_file_lists(
    request: Request, fields: tuple[str, ...], max_per_field: int
) -> dict[str, list[bytes]]:
    """Every file of each named (repeatable) field, in the order sent; at least one in all.

    More than ``max_per_field`` in one field: 413 ``too_many_images`` (never a silent drop). A
    file under any other name: 400 ``malformed_request`` (a typo must not lose a photograph).
    """
    limit = max_per_field * len(fields)
    try:
        form = await request.form(max_files=limit + 1, max_fields=limit + 8)
    except Exception as error:  # python-multipart raises several types for broken bodies
        if "too many files" in str(error).lower():
            raise _too_many(max_per_field, fields) from None
        raise ApiError(
            "malformed_request", "the multipart/form-data body cannot be parsed"
        ) from None
    try:
        files: dict[str, list[bytes]] = {name: [] for name in fields}
        for name, value in form.multi_items():
            if name not in files:
                raise ApiError(
                    "malformed_request",
                    f"unknown multipart field {name!r}; send files as {' / '.join(fields)}",
                )
            if not isinstance(value, UploadFile):
                raise ApiError("missing_field", f"multipart field {name!r} must be a file")
            if len(files[name]) == max_per_field:
                raise _too_many(max_per_field, fields)
            files[name].append(await value.read())
        if not any(files.values()):
            raise ApiError(
                "missing_field", f"send at least one photograph in {' or '.join(fields)}"
            )
        return files
    finally:
        await form.close()


def _too_many(max_per_field: int, fields: tuple[str, ...]) -> ApiError:
    return ApiError(
        "too_many_images",
        f"at most {max_per_field} photographs per eye ({', '.join(fields)}; "
        "DRG_MAX_IMAGES_PER_EYE)",
    )


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
