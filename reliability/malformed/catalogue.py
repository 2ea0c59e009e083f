"""Every request family with its weight, and the seeded generator that builds request ``i``."""

from __future__ import annotations

import random
from collections.abc import Callable

from reliability.malformed.image_families import (
    Context,
    content_type,
    decompression_bomb,
    dicom_mutated,
    header_splice,
    jpeg_mutated,
    png_mutated,
    random_bytes,
    tiff_damaged,
    truncated_builder,
)
from reliability.malformed.materials import DICOM_KINDS, materials
from reliability.malformed.request_families import (
    auth,
    empty_body,
    multipart_broken,
    multipart_fields,
    oversized,
    query_params,
    routing,
    stow_request,
)
from reliability.malformed.wire import KEYS, MalformedRequest

Builder = Callable[[Context, str], MalformedRequest]
FAMILIES: dict[str, tuple[int, Builder]] = {
    "jpeg_truncated": (3, truncated_builder(("jpeg", "jpeg444", "jpeg_ungradable"))),
    "jpeg_mutated": (4, jpeg_mutated),
    "png_truncated": (3, truncated_builder(("png", "png16", "png_gray"))),
    "png_mutated": (4, png_mutated),
    "tiff_damaged": (2, tiff_damaged),
    "dicom_truncated": (3, truncated_builder(DICOM_KINDS)),
    "dicom_mutated": (5, dicom_mutated),
    "header_splice": (2, header_splice),
    "random_bytes": (3, random_bytes),
    "decompression_bomb": (2, decompression_bomb),
    "content_type": (2, content_type),
    "multipart_fields": (2, multipart_fields),
    "multipart_broken": (2, multipart_broken),
    "oversized": (1, oversized),
    "query_params": (2, query_params),
    "stow": (2, stow_request),
    "auth": (1, auth),
    "routing": (1, routing),
    "empty_body": (1, empty_body),
}
"""Family -> (weight, builder). Request i belongs to SCHEDULE[i % len(SCHEDULE)]."""
SCHEDULE: tuple[str, ...] = tuple(
    name
    for round_ in range(max(w for w, _ in FAMILIES.values()))
    for name, (w, _) in FAMILIES.items()
    if round_ < w
)
"""Every family appears in any len(SCHEDULE) consecutive requests, in proportion to its weight."""


class MalformedRequests:
    """Request ``index`` of ``seed``: always the same bytes, independent of any other index."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.keys = KEYS
        self.materials = materials()

    def __call__(self, index: int) -> MalformedRequest:
        family = SCHEDULE[index % len(SCHEDULE)]
        rng = random.Random(f"malformed/{self.seed}/{index}")
        return FAMILIES[family][1](Context(rng, self.materials, self.keys), family)
