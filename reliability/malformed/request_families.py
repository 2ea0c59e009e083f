"""Request families that break the request around the image: multipart fields and framing,
sizes, query strings, STOW-RS, auth, routing and empty bodies."""

from __future__ import annotations

import copy
from collections.abc import Callable

from pydicom.uid import UID

from reliability.malformed.image_families import Context
from reliability.malformed.materials import DICOM_KINDS
from reliability.malformed.mutators import truncate, write_dicom
from reliability.malformed.wire import (
    BODY_LIMIT,
    EXAMS,
    GRADE,
    STOW,
    UPLOAD_LIMIT,
    MalformedRequest,
    Part,
    bearer,
    form_type,
    multipart,
    stow_type,
)


def multipart_fields(ctx: Context, family: str) -> MalformedRequest:
    """Well-formed multipart bodies with the wrong fields."""
    rng = ctx.rng
    image = ctx.valid_jpeg()
    boundary = f"f{rng.getrandbits(48):x}"
    eyes = [Part("left", image, "l.jpg"), Part("right", image, "r.jpg")]
    cases: dict[str, tuple[str, list[Part]]] = {
        "grade_no_image": (GRADE, [Part("notes", b"hello", None, None)]),
        "grade_field_file": (GRADE, [Part("file", image)]),
        "grade_field_Image": (GRADE, [Part("Image", image)]),
        "grade_image_as_text": (GRADE, [Part("image", image, None, None)]),
        "grade_image_empty_file": (GRADE, [Part("image", b"")]),
        "grade_no_parts": (GRADE, []),
        "grade_20_fields": (GRADE, [Part(f"f{i}", b"x", None, None) for i in range(20)]),
        "grade_6_files": (GRADE, [Part("image", image) for _ in range(6)]),
        "grade_two_images": (GRADE, [Part("image", image), Part("image", b"junk")]),
        "grade_name_unicode": (GRADE, [Part("imäge", image)]),
        "grade_filename_traversal": (GRADE, [Part("image", image, "../../../etc/passwd")]),
        "grade_no_disposition": (GRADE, [Part(None, image)]),
        "exams_left_only": (EXAMS, eyes[:1]),
        "exams_right_only": (EXAMS, eyes[1:]),
        "exams_image_field": (EXAMS, [Part("image", image)]),
        "exams_left_as_text": (EXAMS, [Part("left", b"abc", None, None), eyes[1]]),
        "exams_eyes_empty": (EXAMS, [Part("left", b""), Part("right", b"")]),
        "exams_10_files": (EXAMS, [Part("left", image) for _ in range(10)]),
        "exams_upper_case": (EXAMS, [Part("LEFT", image), Part("RIGHT", image)]),
    }
    variant = rng.choice(sorted(cases))
    route, parts = cases[variant]
    headers = {**bearer(ctx.keys.grade), "Content-Type": form_type(boundary)}
    return MalformedRequest(family, variant, "POST", route, headers, multipart(parts, boundary))


def multipart_broken(ctx: Context, family: str) -> MalformedRequest:
    """multipart/form-data whose framing is broken."""
    rng = ctx.rng
    image = ctx.valid_jpeg()
    boundary = f"m{rng.getrandbits(48):x}"
    good = multipart([Part("image", image, "eye.jpg", "image/jpeg")], boundary)
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="e"\r\n'
    bodies: dict[str, tuple[bytes, str]] = {
        "boundary_mismatch": (good, form_type(boundary + "x")),
        "boundary_missing_in_body": (image, form_type(boundary)),
        "no_close_delimiter": (good[: -len(f"--{boundary}--\r\n")], form_type(boundary)),
        "truncated_in_part": (
            good[: rng.randrange(len(head) + 4, len(good) - 20)],
            form_type(boundary),
        ),
        "truncated_in_headers": (good[: rng.randrange(4, len(head))], form_type(boundary)),
        "no_header_terminator": (head.encode() + image, form_type(boundary)),
        "lf_line_ends": (good.replace(b"\r\n", b"\n"), form_type(boundary)),
        "close_only": (f"--{boundary}--\r\n".encode(), form_type(boundary)),
        "garbage_preamble": (rng.randbytes(256) + good, form_type(boundary)),
        "boundary_quoted_odd": (good, f'multipart/form-data; boundary="{boundary}'),
        "boundary_200_chars": (
            multipart([Part("image", image)], "q" * 200),
            form_type("q" * 200),
        ),
        "disposition_broken": (
            good.replace(b'name="image"', b"name=", 1),
            form_type(boundary),
        ),
        "disposition_not_form_data": (
            good.replace(b"form-data;", b"attachment;", 1),
            form_type(boundary),
        ),
        "header_line_garbage": (
            good.replace(
                b"\r\n\r\n", b"\r\n" + rng.randbytes(40).replace(b"\r", b"") + b"\r\n\r\n", 1
            ),
            form_type(boundary),
        ),
        "nested_multipart": (
            multipart([Part("image", good, "inner", form_type(boundary))], boundary + "o"),
            form_type(boundary + "o"),
        ),
        "random_body": (rng.randbytes(rng.choice((10, 1000, 50000))), form_type(boundary)),
    }
    variant = rng.choice(sorted(bodies))
    body, declared = bodies[variant]
    route = rng.choice((GRADE, GRADE, EXAMS))
    if route == EXAMS:
        body = body.replace(b'name="image"', b'name="left"')
    headers = {**bearer(ctx.keys.grade), "Content-Type": declared}
    return MalformedRequest(family, f"{route}:{variant}", "POST", route, headers, body)


def oversized(ctx: Context, family: str) -> MalformedRequest:
    """Bodies over the body limit (declared or chunked), and images over the upload limit."""
    rng = ctx.rng
    image = ctx.valid_jpeg()
    over = BODY_LIMIT + rng.randint(1, 256 * 1024)
    filler = (image * (over // len(image) + 1))[:over]
    boundary = f"o{rng.getrandbits(48):x}"
    grade_auth = bearer(ctx.keys.grade)
    variant = rng.choice(
        (
            "raw_declared",
            "raw_chunked",
            "multipart_declared",
            "multipart_chunked",
            "stow_declared",
            "stow_chunked",
            "image_over_upload_limit",
            "exams_eyes_over_upload_limit",
        )
    )
    chunked = variant.endswith("chunked")
    if variant.startswith("raw"):
        headers = {**grade_auth, "Content-Type": "image/jpeg"}
        return MalformedRequest(family, variant, "POST", GRADE, headers, filler, chunked)
    if variant.startswith("multipart"):
        body = multipart([Part("image", filler, "big.jpg", "image/jpeg")], boundary)
        headers = {**grade_auth, "Content-Type": form_type(boundary)}
        return MalformedRequest(family, variant, "POST", GRADE, headers, body, chunked)
    if variant.startswith("stow"):
        body = multipart([Part(None, filler, None, "application/dicom")], boundary)
        headers = {**bearer(ctx.keys.pacs), "Content-Type": stow_type(boundary)}
        return MalformedRequest(family, variant, "POST", STOW, headers, body, chunked)
    # Under the body limit, over DRG_MAX_UPLOAD_BYTES per image: fundus refuses it.
    padded = image + bytes(UPLOAD_LIMIT + rng.randint(1, 4096) - len(image))
    if variant == "image_over_upload_limit":
        headers = {**grade_auth, "Content-Type": "image/jpeg"}
        return MalformedRequest(family, variant, "POST", GRADE, headers, padded)
    body = multipart([Part("left", padded), Part("right", padded)], boundary)
    headers = {**grade_auth, "Content-Type": form_type(boundary)}
    return MalformedRequest(family, variant, "POST", EXAMS, headers, body)


BAD_QUERIES = (
    "explain=maybe",
    "explain=",
    "explain=2",
    "explain=true&explain=maybe",
    "explain=%00",
    "version=-1",
    "version=0",
    "version=abc",
    "version=1.5",
    "version=1e3",
    "version=",
    "version=%FF%FE",
    "version=99999999999999999999999999",
    "version=1&label=stable",
    "label=has%20space",
    "label=" + "x" * 40,
    "label=",
    "label=%E2%9C%93",
    "laterality=X",
    "laterality=left",
    "laterality=",
    "laterality=L&laterality=Q",
)
GOOD_QUERIES = ("explain=true", "laterality=L", "version=1", "label=stable", "unknown=1")
"""Valid or ignored parameters: a 200 expected (sent so the bad ones are not alone)."""


def query_params(ctx: Context, family: str) -> MalformedRequest:
    """Bad query parameters on a valid request."""
    rng = ctx.rng
    query = rng.choice(BAD_QUERIES) if rng.random() < 0.85 else rng.choice(GOOD_QUERIES)
    boundary = f"q{rng.getrandbits(48):x}"
    if rng.random() < 0.7:
        headers = {**bearer(ctx.keys.grade), "Content-Type": "image/jpeg"}
        return MalformedRequest(
            family, f"grade:{query}", "POST", f"{GRADE}?{query}", headers, ctx.valid_jpeg()
        )
    parts = [Part("left", ctx.valid_jpeg()), Part("right", ctx.valid_jpeg())]
    headers = {**bearer(ctx.keys.grade), "Content-Type": form_type(boundary)}
    body = multipart(parts, boundary)
    return MalformedRequest(family, f"exams:{query}", "POST", f"{EXAMS}?{query}", headers, body)


def _dicom_with(ctx: Context, sop_class: str, keep_pixels: bool) -> bytes:
    dataset = copy.deepcopy(ctx.materials.datasets["dicom"])
    dataset.SOPInstanceUID = UID(ctx.uid())
    dataset.SOPClassUID = sop_class
    if not keep_pixels:
        del dataset.PixelData
    return write_dicom(dataset)


def stow_request(ctx: Context, family: str) -> MalformedRequest:
    """STOW-RS requests that are broken as a whole or hold unusable instances."""
    rng = ctx.rng
    images = ctx.materials.images
    boundary = f"s{rng.getrandbits(48):x}"
    valid = ctx.materials.dicom(rng.choice(DICOM_KINDS), ctx.uid())
    dicom_part = Part(None, valid, None, "application/dicom")
    stow = stow_type(boundary)

    def related(parts: list[Part], declared: str = stow) -> tuple[bytes, str]:
        return multipart(parts, boundary), declared

    def corrupt() -> bytes:
        return truncate(rng, ctx.materials.dicom("dicom", ctx.uid()))[1]

    json_type = f'multipart/related; type="application/json"; boundary={boundary}'
    unterminated = f"--{boundary}\r\nContent-Type: application/dicom\r\n".encode() + valid
    cases: dict[str, Callable[[], tuple[bytes, str]]] = {
        "related_type_json": lambda: related([dicom_part], json_type),
        "related_no_boundary": lambda: (valid, 'multipart/related; type="application/dicom"'),
        "related_no_delimiter": lambda: (valid, stow),
        "related_no_close": lambda: (multipart([dicom_part], boundary, close=False), stow),
        "related_part_jpeg": lambda: related([Part(None, images["jpeg"], None, "image/jpeg")]),
        "related_no_parts": lambda: (f"--{boundary}--\r\n".encode(), stow),
        "related_no_header_end": lambda: (unterminated, stow),
        "related_boundary_mismatch": lambda: related([dicom_part], stow_type(boundary + "z")),
        "related_mixed_instances": lambda: related(
            [
                dicom_part,
                Part(None, corrupt(), None, "application/dicom"),
                Part(None, images["jpeg"], None, "application/dicom"),
            ]
        ),
        "related_twenty_corrupt": lambda: related(
            [Part(None, corrupt(), None, None) for _ in range(20)]
        ),
        "related_same_instance_twice": lambda: related([dicom_part, dicom_part]),
        "raw_jpeg": lambda: (images["jpeg"], "application/dicom"),
        "raw_png_no_type": lambda: (images["png"], ""),
        "raw_text": lambda: (b"not a dicom file\n" * rng.randint(1, 100), "text/plain"),
        "raw_sr_no_pixel_data": lambda: (
            _dicom_with(ctx, "1.2.840.10008.5.1.4.1.1.88.33", keep_pixels=False),
            "application/dicom",
        ),
        "raw_ct_image": lambda: (
            _dicom_with(ctx, "1.2.840.10008.5.1.4.1.1.2", keep_pixels=True),
            "application/dicom",
        ),
    }
    variant = rng.choice(sorted(cases))
    body, declared = cases[variant]()
    headers = bearer(ctx.keys.pacs) | ({"Content-Type": declared} if declared else {})
    return MalformedRequest(family, variant, "POST", STOW, headers, body)


def auth(ctx: Context, family: str) -> MalformedRequest:
    """Missing, unknown, malformed and wrong-scope API keys."""
    rng = ctx.rng
    image = ctx.valid_jpeg()
    route = rng.choice((GRADE, EXAMS, STOW))
    wrong_scope = ctx.keys.grade if route == STOW else ctx.keys.pacs
    cases: dict[str, dict[str, str]] = {
        "missing": {},
        "unknown_key": bearer("not-a-key"),
        "token_scheme": {"Authorization": f"Token {ctx.keys.grade}"},
        "basic_scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "bearer_only": {"Authorization": "Bearer"},
        "x_api_key_unknown": {"X-API-Key": "nope"},
        "latin1_key": {"Authorization": "Bearer cl\xe9-\xff"},
        "long_key": bearer("k" * 4000),
        "wrong_scope": bearer(wrong_scope),
        "key_with_spaces": {"Authorization": f"Bearer  {ctx.keys.grade} x"},
    }
    variant = rng.choice(sorted(cases))
    headers = cases[variant] | {"Content-Type": "image/jpeg"}
    return MalformedRequest(family, f"{route}:{variant}", "POST", route, headers, image)


def routing(ctx: Context, family: str) -> MalformedRequest:
    """Wrong methods, unknown paths and bad path parameters."""
    cases = (
        ("GET", GRADE),
        ("PUT", GRADE),
        ("PATCH", EXAMS),
        ("DELETE", STOW),
        ("GET", EXAMS),
        ("POST", "/v1/grades"),
        ("POST", "/v2/grade"),
        ("POST", "/v1/grade/extra"),
        ("POST", "/livez"),
        ("DELETE", "/metrics"),
        ("GET", "/v1/results/not-a-uid"),
        ("GET", "/v1/results/1.2.3.4"),
        ("GET", "/v1/results/" + "1" * 80),
        ("GET", "/v1/results/1..2"),
        ("GET", "/%ff%fe"),
        ("GET", "/v1/" + "a" * 2000),
    )
    method, path = ctx.rng.choice(cases)
    headers = bearer(ctx.keys.both) | {"Content-Type": "image/jpeg"}
    body = ctx.valid_jpeg() if method in ("POST", "PUT", "PATCH") else b""
    return MalformedRequest(family, f"{method} {path[:40]}", method, path, headers, body)


def empty_body(ctx: Context, family: str) -> MalformedRequest:
    """No bytes where an image was expected."""
    rng = ctx.rng
    boundary = f"e{rng.getrandbits(48):x}"
    grade_auth, pacs_auth = bearer(ctx.keys.grade), bearer(ctx.keys.pacs)
    cases: dict[str, tuple[str, dict[str, str], bytes]] = {
        "grade_raw_jpeg": (GRADE, grade_auth | {"Content-Type": "image/jpeg"}, b""),
        "grade_raw_no_type": (GRADE, grade_auth, b""),
        "grade_form_no_body": (GRADE, grade_auth | {"Content-Type": form_type(boundary)}, b""),
        "exams_no_body": (EXAMS, grade_auth | {"Content-Type": form_type(boundary)}, b""),
        "stow_raw": (STOW, pacs_auth | {"Content-Type": "application/dicom"}, b""),
        "stow_related_no_body": (STOW, pacs_auth | {"Content-Type": stow_type(boundary)}, b""),
        "stow_related_empty_part": (
            STOW,
            pacs_auth | {"Content-Type": stow_type(boundary)},
            multipart([Part(None, b"", None, "application/dicom")], boundary),
        ),
    }
    variant = rng.choice(sorted(cases))
    route, headers, body = cases[variant]
    return MalformedRequest(family, variant, "POST", route, headers, body)
