"""Fundus photograph intake: decoding, preprocessing and quality gate.

The ONE implementation used by training, export, the gateway and the tests. Depends on numpy,
OpenCV, Pillow and pydicom only; never on TensorFlow.
"""

from fundus.config import DecodeLimits, PreprocessConfig
from fundus.decode import decode_image
from fundus.errors import (
    CorruptImage,
    DicomNoPixelData,
    DicomUnsupportedImage,
    DicomUnsupportedSopClass,
    DicomUnsupportedTransferSyntax,
    EmptyInput,
    FundusError,
    ImageTooLarge,
    ImageTooSmall,
    UnsupportedFormat,
)
from fundus.formats import detect_format
from fundus.pipeline import load_and_preprocess, preprocess_image
from fundus.quality import REASONS, QualityThresholds
from fundus.types import ImageFormat, ImageInfo, Laterality, Preprocessed, QualityReport, RGBImage

__all__ = [
    "REASONS",
    "CorruptImage",
    "DecodeLimits",
    "DicomNoPixelData",
    "DicomUnsupportedImage",
    "DicomUnsupportedSopClass",
    "DicomUnsupportedTransferSyntax",
    "EmptyInput",
    "FundusError",
    "ImageFormat",
    "ImageInfo",
    "ImageTooLarge",
    "ImageTooSmall",
    "Laterality",
    "PreprocessConfig",
    "Preprocessed",
    "QualityReport",
    "QualityThresholds",
    "RGBImage",
    "UnsupportedFormat",
    "decode_image",
    "detect_format",
    "load_and_preprocess",
    "preprocess_image",
]
