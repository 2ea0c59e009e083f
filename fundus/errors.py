"""Typed errors raised by the fundus library.

Every failure that a caller can cause with bad input is a ``FundusError`` with a stable,
machine-readable ``code``. Transports (REST, STOW-RS) map these codes to responses in one
place; the codes themselves never change once published.
"""

from __future__ import annotations


class FundusError(Exception):
    """Base class: bad or unusable input image. ``code`` is stable and machine-readable."""

    code: str = "invalid_image"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class EmptyInput(FundusError):
    """No bytes at all."""

    code = "empty_input"


class UnsupportedFormat(FundusError):
    """The bytes are not JPEG, PNG, TIFF or DICOM."""

    code = "unsupported_format"


class CorruptImage(FundusError):
    """The format was recognised but the data cannot be decoded."""

    code = "corrupt_image"


class ImageTooLarge(FundusError):
    """Encoded size or declared pixel count exceeds the configured limits."""

    code = "image_too_large"


class ImageTooSmall(FundusError):
    """Decoded image is too small to grade."""

    code = "image_too_small"


class DicomNoPixelData(FundusError):
    """A DICOM object without (7FE0,0010) Pixel Data, e.g. a report or a presentation state."""

    code = "dicom_no_pixel_data"


class DicomUnsupportedTransferSyntax(FundusError):
    """A DICOM transfer syntax we cannot decode (e.g. JPEG 2000 without a decoder)."""

    code = "dicom_unsupported_transfer_syntax"


class DicomUnsupportedSopClass(FundusError):
    """A DICOM object that is not a photograph we grade (e.g. CT, a structured report)."""

    code = "dicom_unsupported_sop_class"


class DicomUnsupportedImage(FundusError):
    """A DICOM image whose pixel layout we do not grade (e.g. multi-frame, float, palette)."""

    code = "dicom_unsupported_image"


ERROR_CODES: tuple[type[FundusError], ...] = (
    FundusError,
    EmptyInput,
    UnsupportedFormat,
    CorruptImage,
    ImageTooLarge,
    ImageTooSmall,
    DicomNoPixelData,
    DicomUnsupportedTransferSyntax,
    DicomUnsupportedSopClass,
    DicomUnsupportedImage,
)
"""Every error class; their codes form the public error vocabulary of the library."""
