"""STOW-RS wire format: splitting request bodies (with the parts cap), the response dataset and
its status."""

from __future__ import annotations

import pytest

from gateway.errors import ERRORS, ApiError
from gateway.pacs import stow
from gateway.pacs.stow import InstanceResult, response_dataset, response_status, split_body

A = b"\x00" * 128 + b"DICM first instance \r\n--not-the-boundary\r\n"
B = b"\x00" * 128 + b"DICM second"
MULTIPART = 'multipart/related; type="application/dicom"; boundary=XyZ'
MAX = 20


def multipart(*parts: bytes, boundary: bytes = b"XyZ", preamble: bytes = b"") -> bytes:
    body = preamble
    for part in parts:
        body += b"--" + boundary + b"\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n"
    return body + b"--" + boundary + b"--\r\n"


def test_multipart_related_is_split_into_instances() -> None:
    assert split_body(MULTIPART, multipart(A, B), max_parts=MAX) == [A, B]


def test_preamble_epilogue_and_quoted_boundary() -> None:
    body = multipart(A, preamble=b"ignored preamble\r\n") + b"epilogue"
    header = 'Multipart/Related; boundary="XyZ"; type="application/dicom"'
    assert split_body(header, body, max_parts=MAX) == [A]


def test_part_without_headers_and_octet_stream_part() -> None:
    body = b"--XyZ\r\n\r\n" + A + b"\r\n--XyZ\r\nContent-Type: application/octet-stream\r\n\r\n"
    body += B + b"\r\n--XyZ--"
    assert split_body(MULTIPART, body, max_parts=MAX) == [A, B]


@pytest.mark.parametrize(
    "content_type",
    ["application/dicom", "application/x-www-form-urlencoded", "application/octet-stream", ""],
)
def test_any_other_content_type_is_one_raw_instance(content_type: str) -> None:
    assert split_body(content_type, A, max_parts=MAX) == [A]


@pytest.mark.parametrize(
    ("content_type", "body", "code"),
    [
        (MULTIPART, b"", "empty_input"),
        ("multipart/related; type=application/dicom", multipart(A), "malformed_request"),
        (MULTIPART, b"no delimiter at all", "malformed_request"),
        (
            MULTIPART,
            b"--XyZ\r\nContent-Type: application/dicom\r\n\r\ntruncated",
            "malformed_request",
        ),
        (MULTIPART, b"--XyZ--\r\n", "malformed_request"),
        (
            'multipart/related; type="application/dicom+json"; boundary=XyZ',
            multipart(A),
            "unsupported_media_type",
        ),
        (
            MULTIPART,
            b"--XyZ\r\nContent-Type: application/dicom+xml\r\n\r\n<x/>\r\n--XyZ--",
            "unsupported_media_type",
        ),
    ],
)
def test_broken_bodies_are_refused_with_a_code(content_type: str, body: bytes, code: str) -> None:
    with pytest.raises(ApiError) as caught:
        split_body(content_type, body, max_parts=MAX)
    assert caught.value.code == code


def test_parts_up_to_the_cap_are_accepted() -> None:
    assert split_body(MULTIPART, multipart(*[A] * 3), max_parts=3) == [A] * 3


def test_more_parts_than_the_cap_is_too_many_parts_before_the_rest_is_read() -> None:
    # 50,000 tiny parts (the review's 3.4 MB body) stop at part 4; what follows the fourth
    # delimiter is never looked at (a truncated tail does not turn the 413 into a 400).
    body = multipart(*[b"x"] * 50_000)
    with pytest.raises(ApiError) as caught:
        split_body(MULTIPART, body[: len(body) // 2], max_parts=3)
    assert (caught.value.code, caught.value.status) == ("too_many_parts", 413)
    assert "3" in caught.value.message


def stored(uid: str = "1.2.3") -> InstanceResult:
    return InstanceResult("1.2.840.10008.5.1.4.1.1.77.1.5.1", uid)


def refused(code: str, uid: str | None = "1.2.4") -> InstanceResult:
    return InstanceResult(
        "1.2.840.10008.5.1.4.1.1.88.33", uid, stow.failure_reason(code), code, "why"
    )


@pytest.mark.parametrize(
    ("results", "status"),
    [
        ([stored()], 200),
        ([stored(), stored("1.2.5")], 200),
        ([stored(), refused("dicom_unsupported_sop_class")], 202),
        ([refused("dicom_unsupported_sop_class")], 409),
        ([refused("corrupt_image"), refused("overloaded")], 409),
        ([refused("overloaded"), refused("backend_unavailable")], 503),
        # A decompression bomb stays too large: 409, not 503 + Retry-After (a PACS would resend
        # it forever), even beside a transient failure.
        ([refused("image_too_large")], 409),
        ([refused("image_too_large"), refused("overloaded")], 409),
        # Other content under a known UID: a conflict, never worth resending as is.
        ([refused("instance_conflict")], 409),
        ([stored(), refused("instance_conflict")], 202),
    ],
)
def test_response_status(results: list[InstanceResult], status: int) -> None:
    assert response_status(results) == status


def test_response_dataset_is_stow_rs_json() -> None:
    document = response_dataset([stored(), refused("dicom_unsupported_sop_class")])
    referenced = document["00081199"]["Value"]
    assert referenced == [
        {
            "00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.77.1.5.1"]},
            "00081155": {"vr": "UI", "Value": ["1.2.3"]},
        }
    ]
    failed = document["00081198"]["Value"][0]
    assert failed["00081155"]["Value"] == ["1.2.4"]
    assert failed["00081197"] == {"vr": "US", "Value": [0x0122]}
    assert failed["00090010"]["Value"] == [stow.PRIVATE_CREATOR]
    assert failed["00091001"]["Value"] == ["dicom_unsupported_sop_class"]
    assert failed["00091002"]["Value"] == ["why"]


def test_all_stored_response_has_no_failed_sequence() -> None:
    assert "00081198" not in response_dataset([stored()])


def test_failure_reasons_cover_every_error_code() -> None:
    allowed = {
        stow.PROCESSING_FAILURE,
        stow.SOP_CLASS_NOT_SUPPORTED,
        stow.OUT_OF_RESOURCES,
        stow.DATASET_DOES_NOT_MATCH_SOP_CLASS,
        stow.CANNOT_UNDERSTAND,
        stow.TRANSFER_SYNTAX_NOT_SUPPORTED,
        stow.DUPLICATE_SOP_INSTANCE,
    }
    assert set(stow.FAILURE_REASONS) <= set(ERRORS)
    for code in ERRORS:
        assert stow.failure_reason(code) in allowed
    assert stow.failure_reason("dicom_unsupported_sop_class") == 0x0122
    assert stow.failure_reason("dicom_unsupported_transfer_syntax") == 0xC122
    assert stow.failure_reason("corrupt_image") == 0xC000
    assert stow.failure_reason("overloaded") == 0xA700
    assert stow.failure_reason("backend_unavailable") == 0x0110
    assert stow.failure_reason("instance_conflict") == 0x0111
