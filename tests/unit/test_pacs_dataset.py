"""One STOW-RS part: bounded parsing (hostile bodies fail in milliseconds of CPU) and the content
digest that tells an honest resend from other data under the same SOP Instance UID."""

from __future__ import annotations

import io
import time

import numpy as np
import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian

from gateway.errors import ApiError
from gateway.pacs.dataset import content_digest, read_instance
from synthetic import encode_dicom, synthesize_fundus

ZEROS = 80 * 1024 * 1024
"""The review's body: 80 MiB of zeros (22.5 s of gateway CPU before)."""


def photo(**options: object) -> bytes:
    image = synthesize_fundus(2, width=96, height=80, seed=3)
    return encode_dicom(image, seed=11, **options)  # type: ignore[arg-type]


def digest(data: bytes) -> str:
    return content_digest(read_instance(data))


@pytest.mark.parametrize(
    "body",
    [b"\x00" * ZEROS, b"\x00" * 128 + b"DICM" + b"\x00" * ZEROS],
    ids=["zeros", "preamble-then-zeros"],
)
def test_zeros_fail_fast(body: bytes) -> None:
    started = time.process_time()
    with pytest.raises(ApiError) as caught:
        read_instance(body)
    cpu_s = time.process_time() - started
    assert caught.value.code == "corrupt_image"
    # Measured 0.15 s here; pydicom needs about 20 s for the whole body (see MAX_READS).
    assert cpu_s < 3.0, cpu_s


def test_a_photograph_parses_and_its_digest_is_stable() -> None:
    data = photo()
    ds = read_instance(data)
    assert ds.PatientName == "SYNTHETIC^PATIENT"
    assert digest(data) == digest(data)
    assert len(digest(data)) == 64


def reencoded(data: bytes, change: str) -> bytes:
    """What a PACS may change on a resend without changing the instance."""
    ds = pydicom.dcmread(io.BytesIO(data))
    if change == "implicit_vr":
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    elif change == "file_meta":
        ds.file_meta.SourceApplicationEntityTitle = "OTHER_PACS"
        ds.file_meta.ImplementationVersionName = "PACS_9"
    elif change == "ignored_attributes":
        ds.InstitutionName = "Another hospital"
        block = ds.private_block(0x0011, "SOME VENDOR", create=True)
        block.add_new(0x01, "LO", "vendor data")
    buffer = io.BytesIO()
    implicit = change == "implicit_vr"
    ds.save_as(buffer, implicit_vr=implicit, little_endian=True, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.parametrize("change", ["implicit_vr", "file_meta", "ignored_attributes"])
def test_an_honest_resend_has_the_same_digest(change: str) -> None:
    data = photo()
    again = reencoded(data, change)
    assert again != data
    assert digest(again) == digest(data)


def test_other_pixels_patient_or_laterality_change_the_digest() -> None:
    base = digest(photo())
    planted = photo(patient_name="ATTACKER^PLANTED")
    other_eye = photo(laterality="L")
    ds = pydicom.dcmread(io.BytesIO(photo()))
    pixels = np.frombuffer(ds.PixelData, dtype=np.uint8).copy()
    pixels[0] ^= 1  # one bit of one pixel
    ds.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    digests = {base, digest(planted), digest(other_eye), digest(buffer.getvalue())}
    assert len(digests) == 4


def test_an_oversized_copied_sequence_is_refused() -> None:
    ds = pydicom.dcmread(io.BytesIO(photo()))
    items = []
    for index in range(4000):
        item = pydicom.Dataset()
        item.PatientID = f"ID{index:06d}" * 2
        items.append(item)
    ds.OtherPatientIDsSequence = items
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    with pytest.raises(ApiError) as caught:
        read_instance(buffer.getvalue())
    assert caught.value.code == "invalid_image"
