"""Domain errors, their HTTP statuses, and the one table from gRPC codes to them.

Every error a client can see has a stable machine-readable ``code``. The same code is used in
the JSON body (``{"error": {"code", "message"}}``), in the logs and in the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from fundus.errors import ERROR_CODES as FUNDUS_ERRORS
from fundus.errors import FundusError


@dataclass(frozen=True)
class ErrorSpec:
    """One row of the error table."""

    status: int
    description: str


ERRORS: dict[str, ErrorSpec] = {
    # Bad input (from fundus/): 4xx.
    "invalid_image": ErrorSpec(422, "The image cannot be used."),
    "empty_input": ErrorSpec(400, "The upload is empty."),
    "unsupported_format": ErrorSpec(415, "Not a JPEG, PNG, TIFF or DICOM file."),
    "corrupt_image": ErrorSpec(422, "The file is damaged or truncated."),
    "image_too_large": ErrorSpec(413, "Too many bytes or pixels."),
    "image_too_small": ErrorSpec(422, "The image is too small to grade."),
    "dicom_no_pixel_data": ErrorSpec(422, "The DICOM object holds no image."),
    "dicom_unsupported_transfer_syntax": ErrorSpec(415, "DICOM transfer syntax not supported."),
    "dicom_unsupported_sop_class": ErrorSpec(415, "DICOM object is not a photograph."),
    "dicom_unsupported_image": ErrorSpec(
        422, "DICOM pixel layout not supported (e.g. multi-frame)."
    ),
    # Bad request shape.
    "malformed_request": ErrorSpec(400, "The request body cannot be parsed."),
    "missing_field": ErrorSpec(400, "A required form field is missing."),
    "unsupported_media_type": ErrorSpec(415, "Unsupported Content-Type for this route."),
    "payload_too_large": ErrorSpec(413, "The request body exceeds the upload limit."),
    "headers_too_large": ErrorSpec(431, "The request headers exceed the size or count limit."),
    "header_read_timeout": ErrorSpec(408, "The request headers did not arrive in time."),
    "body_read_timeout": ErrorSpec(408, "The request body did not arrive in time."),
    "too_many_images": ErrorSpec(413, "More photographs of one eye than allowed."),
    "laterality_mismatch": ErrorSpec(
        422, "The DICOM ImageLaterality contradicts the eye the photograph was sent as."
    ),
    "laterality_missing": ErrorSpec(
        422, "The DICOM instance names no eye (ImageLaterality R or L); a study exam needs it."
    ),
    "study_patient_mismatch": ErrorSpec(
        409, "The study was received with another Patient ID; the instance was not stored."
    ),
    "too_many_parts": ErrorSpec(413, "The STOW-RS request holds more instances than allowed."),
    "instance_conflict": ErrorSpec(
        409, "This SOP Instance UID was already received with different content."
    ),
    "invalid_parameter": ErrorSpec(422, "A query parameter or field value is invalid."),
    "not_found": ErrorSpec(404, "No such resource."),
    "method_not_allowed": ErrorSpec(405, "Method not allowed on this route."),
    # Auth.
    "unauthorized": ErrorSpec(401, "Missing or unknown API key."),
    "forbidden": ErrorSpec(403, "This API key may not use this route."),
    # Capacity and time.
    "overloaded": ErrorSpec(503, "Too many requests in flight; retry after the given delay."),
    "request_timeout": ErrorSpec(504, "The request did not finish within its deadline."),
    # Backend (TF Serving) failures: never the client's fault.
    "backend_unavailable": ErrorSpec(503, "The model server cannot be reached."),
    "model_unavailable": ErrorSpec(503, "The requested model version is not being served."),
    "backend_overloaded": ErrorSpec(503, "The model server is out of resources."),
    "backend_timeout": ErrorSpec(504, "The model server did not answer in time."),
    "backend_rejected_input": ErrorSpec(422, "The model server rejected the input tensor."),
    "backend_error": ErrorSpec(502, "The model server failed."),
    "model_mismatch": ErrorSpec(503, "The served model does not match the gateway."),
    "store_unavailable": ErrorSpec(
        503, "The results store cannot be reached; nothing was stored, send it again later."
    ),
    "not_ready": ErrorSpec(503, "The gateway is not ready."),
    "internal_error": ErrorSpec(500, "An unexpected gateway fault (a bug); logged."),
}
"""The whole error vocabulary; OpenAPI docs, tests and the handlers read it from here."""


class ApiError(Exception):
    """An error with a stable code; its HTTP status comes from ``ERRORS``."""

    def __init__(self, code: str, message: str, *, retry_after_s: int | None = None) -> None:
        if code not in ERRORS:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s

    @property
    def status(self) -> int:
        """HTTP status of this error's code."""
        return ERRORS[self.code].status

    def body(self) -> dict[str, dict[str, str]]:
        """JSON body per docs/architecture.md, "Errors"."""
        return {"error": {"code": self.code, "message": self.message}}


GRPC_TO_ERROR: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.INVALID_ARGUMENT: "backend_rejected_input",
    grpc.StatusCode.NOT_FOUND: "model_unavailable",
    grpc.StatusCode.FAILED_PRECONDITION: "model_unavailable",
    grpc.StatusCode.UNAVAILABLE: "backend_unavailable",
    grpc.StatusCode.CANCELLED: "backend_unavailable",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "backend_overloaded",
    grpc.StatusCode.DEADLINE_EXCEEDED: "backend_timeout",
    grpc.StatusCode.OUT_OF_RANGE: "backend_rejected_input",
    grpc.StatusCode.UNIMPLEMENTED: "backend_error",
    grpc.StatusCode.INTERNAL: "backend_error",
    grpc.StatusCode.UNKNOWN: "backend_error",
    grpc.StatusCode.DATA_LOSS: "backend_error",
    grpc.StatusCode.ABORTED: "backend_error",
    grpc.StatusCode.ALREADY_EXISTS: "backend_error",
    grpc.StatusCode.PERMISSION_DENIED: "backend_error",
    grpc.StatusCode.UNAUTHENTICATED: "backend_error",
}
"""THE table from gRPC status codes to gateway errors (TF Serving uses NOT_FOUND for a model
that is unknown or still loading, FAILED_PRECONDITION for an unknown signature)."""


def from_grpc(code: grpc.StatusCode, details: str) -> ApiError:
    """Translate a failed gRPC call into an ``ApiError`` via ``GRPC_TO_ERROR``."""
    error_code = GRPC_TO_ERROR.get(code, "backend_error")
    return ApiError(error_code, f"model server answered {code.name}: {details}"[:500])


def from_fundus(error: FundusError) -> ApiError:
    """Translate an image error; its code is already part of the vocabulary."""
    return ApiError(error.code, error.message)


def _check_fundus_codes_are_mapped() -> None:
    missing = {cls.code for cls in FUNDUS_ERRORS} - set(ERRORS)
    if missing:
        raise RuntimeError(f"fundus error codes without an HTTP status: {sorted(missing)}")


_check_fundus_codes_are_mapped()
