"""Result types shared by the decoder, the quality gate and the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Laterality = Literal["L", "R"]
RGBImage = NDArray[np.uint8]
"""uint8 array [H, W, 3], RGB channel order."""


class ImageFormat(StrEnum):
    """Container formats recognised by magic bytes."""

    JPEG = "jpeg"
    PNG = "png"
    TIFF = "tiff"
    DICOM = "dicom"


@dataclass(frozen=True)
class ImageInfo:
    """What the decoder learnt about the source; never carries patient data.

    source_width/height: size of the stored image. decoded_width/height: size actually decoded
    (smaller when the JPEG fast path decoded at reduced scale). reduced_scale: 1, 2, 4 or 8.
    """

    format: ImageFormat
    source_width: int
    source_height: int
    decoded_width: int
    decoded_height: int
    reduced_scale: int = 1
    bits_stored: int = 8
    laterality: Laterality | None = None
    sop_class_uid: str | None = None
    transfer_syntax_uid: str | None = None


@dataclass(frozen=True)
class QualityReport:
    """Quality gate verdict: gradable yes/no, a 0..1 score and machine-readable reasons."""

    gradable: bool
    score: float
    reasons: tuple[str, ...] = ()
    measurements: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Preprocessed:
    """Output of ``fundus.load_and_preprocess``: model input plus what was learnt on the way."""

    image: RGBImage
    """uint8 [S, S, 3] ready for the model's ``image`` input."""
    quality: QualityReport
    info: ImageInfo

    @property
    def laterality(self) -> Laterality | None:
        """'L' or 'R' when the source said so (DICOM ImageLaterality/Laterality)."""
        return self.info.laterality
