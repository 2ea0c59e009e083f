"""Property tests: truncated, mutated and random bytes only ever raise FundusError.

Every input either decodes to a valid model input or raises a FundusError subclass with a
stable code; never another exception, never a hang (pytest-timeout bounds each test).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fundus import DecodeLimits, FundusError, PreprocessConfig, load_and_preprocess
from fundus.errors import ERROR_CODES
from synthetic import encode_dicom, encode_jpeg, encode_png, encode_tiff, synthesize_fundus

CONFIG = PreprocessConfig(size=64)
LIMITS = DecodeLimits(max_bytes=2_000_000, max_pixels=4_000_000)
KNOWN_CODES = {cls.code for cls in ERROR_CODES}
_PHOTO = synthesize_fundus(3, width=96, height=72, seed=7)
SEEDS: dict[str, bytes] = {
    "jpeg": encode_jpeg(_PHOTO),
    "png": encode_png(_PHOTO),
    "png16": encode_png(_PHOTO, bit_depth=16),
    "tiff": encode_tiff(_PHOTO),
    "dicom": encode_dicom(_PHOTO),
    "dicom_jpeg": encode_dicom(_PHOTO, transfer_syntax="jpeg_baseline"),
    "dicom_implicit": encode_dicom(_PHOTO, transfer_syntax="implicit_le", with_preamble=False),
}
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def _check(data: bytes) -> None:
    try:
        result = load_and_preprocess(data, CONFIG, LIMITS)
    except FundusError as error:
        assert error.code in KNOWN_CODES
        assert error.message
        return
    assert result.image.shape == (64, 64, 3)
    assert result.image.dtype == np.uint8
    assert 0.0 <= result.quality.score <= 1.0


@pytest.mark.timeout(300)
@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@pytest.mark.timeout(300)
@FUZZ
@given(st.sampled_from(sorted(SEEDS)), st.floats(0.0, 1.0))
def test_truncated_files(kind: str, fraction: float) -> None:
    data = SEEDS[kind]
    _check(data[: int(len(data) * fraction)])


@pytest.mark.timeout(300)
@FUZZ
@given(
    st.sampled_from(sorted(SEEDS)),
    st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), min_size=1, max_size=12),
)
def test_mutated_files(kind: str, mutations: list[tuple[float, int]]) -> None:
    data = bytearray(SEEDS[kind])
    for position, value in mutations:
        data[min(len(data) - 1, int(position * len(data)))] = value
    _check(bytes(data))


@pytest.mark.timeout(300)
@FUZZ
@given(st.sampled_from(sorted(SEEDS)), st.integers(0, 400), st.binary(min_size=1, max_size=64))
def test_header_splices(kind: str, offset: int, junk: bytes) -> None:
    """Overwrite bytes inside the header region, where sizes and lengths live."""
    data = bytearray(SEEDS[kind])
    start = min(offset, len(data) - 1)
    data[start : start + len(junk)] = junk
    _check(bytes(data))


@pytest.mark.timeout(300)
@FUZZ
@given(
    st.sampled_from(["dicom", "dicom_jpeg", "dicom_implicit"]),
    st.integers(0, 600),
    st.binary(min_size=1, max_size=16),
)
def test_broken_dicom_never_quotes_patient_data(kind: str, offset: int, junk: bytes) -> None:
    """pydicom warnings and logs can quote element values; none may reach warnings or logs."""
    import logging
    import warnings

    data = bytearray(SEEDS[kind])
    data[offset : offset + len(junk)] = junk
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _check(bytes(data))
    finally:
        logging.getLogger().removeHandler(handler)
    text = " ".join([str(w.message) for w in caught] + [r.getMessage() for r in records])
    for phi in ("SYNTHETIC", "SYN0001", "19700101"):
        assert phi not in text
