"""Request families that carry a damaged or lying image: the per-request context, and one
damaged file sent on each route that takes it."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass

from pydicom.uid import UID

from reliability.malformed.materials import DICOM_KINDS, UID_PLACEHOLDER, Materials
from reliability.malformed.mutators import (
    dicom_edit,
    jpeg_edit,
    mutate,
    png_edit,
    tiff_edit,
    truncate,
    write_dicom,
)
from reliability.malformed.wire import (
    EXAMS,
    GRADE,
    STOW,
    Keys,
    MalformedRequest,
    Part,
    bearer,
    form_type,
    multipart,
    stow_type,
)

MEDIA_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "tiff": "image/tiff",
    "dicom": "application/dicom",
}


@dataclass(frozen=True)
class Context:
    """What a family builder gets: the per-request random stream, materials and keys."""

    rng: random.Random
    materials: Materials
    keys: Keys

    def uid(self) -> str:
        """A fresh, valid DICOM UID as long as ``UID_PLACEHOLDER``."""
        return f"2.25.{self.rng.randrange(10**58, 10**59)}"

    def valid_jpeg(self) -> bytes:
        """A valid photograph for the other eye of an exam."""
        return self.materials.images[self.rng.choice(("jpeg", "jpeg444"))]


def send_image(
    ctx: Context, family: str, variant: str, data: bytes, media_type: str
) -> MalformedRequest:
    """A damaged file on one of the routes that take it: raw or multipart to /v1/grade, one eye
    of /v1/exams, and (DICOM) STOW-RS raw or multipart/related."""
    rng = ctx.rng
    boundary = f"b{rng.getrandbits(64):x}"
    grade_auth, pacs_auth = bearer(ctx.keys.grade), bearer(ctx.keys.pacs)
    roll = rng.random()
    if media_type == "application/dicom" and roll < 0.3:
        if roll < 0.15:
            headers = {**pacs_auth, "Content-Type": "application/dicom"}
            return MalformedRequest(family, variant, "POST", STOW, headers, data)
        body = multipart([Part(None, data, None, "application/dicom")], boundary)
        headers = {**pacs_auth, "Content-Type": stow_type(boundary)}
        return MalformedRequest(family, variant, "POST", STOW, headers, body)
    if roll < 0.5:
        declared = media_type if rng.random() < 0.8 else "application/octet-stream"
        headers = {**grade_auth, "Content-Type": declared}
        return MalformedRequest(family, variant, "POST", GRADE, headers, data)
    if roll < 0.8:
        body = multipart([Part("image", data, "eye", media_type)], boundary)
        headers = {**grade_auth, "Content-Type": form_type(boundary)}
        return MalformedRequest(family, variant, "POST", GRADE, headers, body)
    bad_eye = rng.choice(("left", "right"))
    good_eye = "right" if bad_eye == "left" else "left"
    parts = [Part(bad_eye, data, "bad", media_type), Part(good_eye, ctx.valid_jpeg(), "ok.jpg")]
    rng.shuffle(parts)
    headers = {**grade_auth, "Content-Type": form_type(boundary)}
    return MalformedRequest(family, variant, "POST", EXAMS, headers, multipart(parts, boundary))


def _image_kind(ctx: Context, kinds: tuple[str, ...]) -> tuple[str, bytes]:
    kind = ctx.rng.choice(kinds)
    if kind in DICOM_KINDS:
        return kind, ctx.materials.dicom(kind, ctx.uid())
    return kind, ctx.materials.images[kind]


def _media(kind: str) -> str:
    return MEDIA_TYPES[next(prefix for prefix in MEDIA_TYPES if kind.startswith(prefix))]


def truncated_builder(kinds: tuple[str, ...]) -> Callable[[Context, str], MalformedRequest]:
    def build(ctx: Context, family: str) -> MalformedRequest:
        kind, data = _image_kind(ctx, kinds)
        variant, damaged = truncate(ctx.rng, data)
        return send_image(ctx, family, f"{kind}:{variant}", damaged, _media(kind))

    return build


def jpeg_mutated(ctx: Context, family: str) -> MalformedRequest:
    """Structural JPEG damage or byte damage."""
    kind, data = _image_kind(ctx, ("jpeg", "jpeg444", "jpeg_ungradable"))
    edit = jpeg_edit if ctx.rng.random() < 0.5 else mutate
    variant, damaged = edit(ctx.rng, data)
    return send_image(ctx, family, f"{kind}:{variant}", damaged, "image/jpeg")


def png_mutated(ctx: Context, family: str) -> MalformedRequest:
    """Structural PNG damage or byte damage."""
    kind, data = _image_kind(ctx, ("png", "png16", "png_gray"))
    edit = png_edit if ctx.rng.random() < 0.6 else mutate
    variant, damaged = edit(ctx.rng, data)
    return send_image(ctx, family, f"{kind}:{variant}", damaged, "image/png")


def tiff_damaged(ctx: Context, family: str) -> MalformedRequest:
    """IFD damage, byte damage or truncation of a TIFF."""
    data = ctx.materials.images["tiff"]
    roll = ctx.rng.random()
    edit = tiff_edit if roll < 0.5 else mutate if roll < 0.8 else truncate
    variant, damaged = edit(ctx.rng, data)
    return send_image(ctx, family, variant, damaged, "image/tiff")


def dicom_mutated(ctx: Context, family: str) -> MalformedRequest:
    """Attribute damage (pydicom) or byte damage in the header or anywhere."""
    kind = ctx.rng.choice(DICOM_KINDS)
    if ctx.rng.random() < 0.6:
        dataset = copy.deepcopy(ctx.materials.datasets[kind])
        uid = UID(ctx.uid())
        dataset.SOPInstanceUID = uid
        dataset.file_meta.MediaStorageSOPInstanceUID = uid
        variant, damaged = dicom_edit(ctx.rng, dataset)
    else:
        variant, damaged = mutate(ctx.rng, ctx.materials.dicom(kind, ctx.uid()), 2048)
    return send_image(ctx, family, f"{kind}:{variant}", damaged, "application/dicom")


def header_splice(ctx: Context, family: str) -> MalformedRequest:
    """One format's signature or header on another format's body, and glued files."""
    images, rng = ctx.materials.images, ctx.rng
    jpeg, png, tiff = images["jpeg"], images["png"], images["tiff"]

    def dicom() -> bytes:
        return ctx.materials.dicom("dicom", ctx.uid())

    splices: dict[str, Callable[[], tuple[bytes, str]]] = {
        "png_signature_on_jpeg": lambda: (b"\x89PNG\r\n\x1a\n" + jpeg[8:], "image/png"),
        "jpeg_soi_on_png": lambda: (b"\xff\xd8\xff" + png[3:], "image/jpeg"),
        "tiff_header_on_jpeg": lambda: (b"II*\x00" + jpeg[4:], "image/tiff"),
        "tiff_big_endian_lie": lambda: (b"MM\x00*" + tiff[4:], "image/tiff"),
        "dicm_preamble_on_png": lambda: (bytes(128) + b"DICM" + png, "application/dicom"),
        "dicm_then_jpeg": lambda: (b"DICM" + jpeg, "application/dicom"),
        "bare_dicom_tag_on_jpeg": lambda: (
            b"\x08\x00\x05\x00CS\x0a\x00" + jpeg,
            "application/dicom",
        ),
        "dicom_meta_only": lambda: (dicom()[: rng.randrange(140, 400)], "application/dicom"),
        "jpeg_then_png": lambda: (jpeg + png, "image/jpeg"),
        "png_then_jpeg": lambda: (png + jpeg, "image/png"),
        "half_jpeg_half_png": lambda: (jpeg[: len(jpeg) // 2] + png[len(png) // 2 :], "image/jpeg"),
        "tiff_in_dicom_preamble": lambda: (tiff[:128] + dicom()[128:], "application/dicom"),
        "png_as_dicom_pixels": lambda: (_png_in_dicom(ctx), "application/dicom"),
    }
    variant = rng.choice(sorted(splices))
    data, media_type = splices[variant]()
    return send_image(ctx, family, variant, data, media_type)


def _png_in_dicom(ctx: Context) -> bytes:
    dataset = copy.deepcopy(ctx.materials.datasets["dicom"])
    dataset.SOPInstanceUID = UID(ctx.uid())
    dataset.PixelData = ctx.materials.images["png"]
    return write_dicom(dataset)


MAGIC_PREFIXES = {
    "none": b"",
    "jpeg": b"\xff\xd8\xff",
    "png": b"\x89PNG\r\n\x1a\n",
    "tiff_le": b"II*\x00",
    "tiff_be": b"MM\x00*",
    "dicom": bytes(128) + b"DICM",
    "bare_dicom": b"\x02\x00\x00\x00UL\x04\x00",
}


def random_bytes(ctx: Context, family: str) -> MalformedRequest:
    """Random bytes, sometimes behind a real format signature so a decoder gets them."""
    prefix_name = ctx.rng.choice(sorted(MAGIC_PREFIXES))
    size = ctx.rng.choice((1, 2, 7, 31, 128, 1000, 4096, 65536, 300000))
    data = MAGIC_PREFIXES[prefix_name] + ctx.rng.randbytes(size)
    media_type = ctx.rng.choice((*MEDIA_TYPES.values(), "application/octet-stream"))
    return send_image(ctx, family, f"{prefix_name}:{size}", data, media_type)


def decompression_bomb(ctx: Context, family: str) -> MalformedRequest:
    """Files that declare (or, compressed, really hold) hundreds of millions of pixels."""
    bombs = ctx.materials.bombs
    variant = ctx.rng.choice(sorted(bombs))
    media_type = _media(variant.split("_", 1)[0])
    data = bombs[variant].replace(UID_PLACEHOLDER.encode(), ctx.uid().encode())
    return send_image(ctx, family, variant, data, media_type)


CONTENT_TYPE_LIES = (
    "text/plain",
    "application/json",
    "application/x-www-form-urlencoded",
    "application/xml",
    "video/mp4",
    "%%%",
    "image/",
    "image/gif",
    "image/jpeg; charset=utf-8",
    "IMAGE/PNG",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=nowhere",
    "multipart/mixed; boundary=b1",
    "multipart/related; boundary=b1",
    "application/dicom+json",
    ";;;",
    None,
)


def content_type(ctx: Context, family: str) -> MalformedRequest:
    """Valid or damaged images under a wrong, malformed or missing Content-Type."""
    rng = ctx.rng
    declared = rng.choice(CONTENT_TYPE_LIES)
    kind = rng.choice(("jpeg", "png", "tiff", "dicom"))
    data = ctx.materials.dicom(kind, ctx.uid()) if kind == "dicom" else ctx.materials.images[kind]
    route = rng.choice((GRADE, GRADE, EXAMS, STOW))
    key = ctx.keys.pacs if route == STOW else ctx.keys.grade
    headers = bearer(key) | ({"Content-Type": declared} if declared is not None else {})
    return MalformedRequest(family, f"{route}:{declared}:{kind}", "POST", route, headers, data)
