"""Format detection by magic bytes."""

from __future__ import annotations

import numpy as np
import pytest

from fundus import EmptyInput, ImageFormat, UnsupportedFormat, detect_format
from synthetic import encode_dicom, encode_jpeg, encode_png, encode_tiff

IMAGE = np.full((32, 48, 3), 120, np.uint8)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (encode_jpeg(IMAGE), ImageFormat.JPEG),
        (encode_png(IMAGE), ImageFormat.PNG),
        (encode_tiff(IMAGE), ImageFormat.TIFF),
        (encode_dicom(IMAGE), ImageFormat.DICOM),
        (encode_dicom(IMAGE, with_preamble=False), ImageFormat.DICOM),
        (
            encode_dicom(IMAGE, transfer_syntax="implicit_le", with_preamble=False),
            ImageFormat.DICOM,
        ),
        (b"DICM" + encode_dicom(IMAGE)[132:], ImageFormat.DICOM),
    ],
)
def test_detects_each_container(data: bytes, expected: ImageFormat) -> None:
    assert detect_format(data) is expected


def test_big_endian_tiff_magic() -> None:
    assert detect_format(b"MM\x00*" + b"\x00" * 16) is ImageFormat.TIFF


def test_empty_input() -> None:
    with pytest.raises(EmptyInput) as caught:
        detect_format(b"")
    assert caught.value.code == "empty_input"


@pytest.mark.parametrize(
    "data",
    [
        b"hello world, not an image",
        b"GIF89a" + b"\x00" * 40,
        b"%PDF-1.7\n",
        b"\x00" * 200,
        b"\xff\xd8",
    ],
)
def test_unknown_bytes_are_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        detect_format(data)
    assert caught.value.code == "unsupported_format"
