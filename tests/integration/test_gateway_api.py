"""The gateway against the TF Serving stand-in over real gRPC: endpoints, errors, auth, logs."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess

import httpx
import numpy as np
import pytest
from PIL import Image

from gateway.errors import ERRORS
from harness.processes import GatewayProcess
from synthetic import (
    encode_dicom,
    encode_jpeg,
    encode_png,
    synthesize_fundus,
    synthesize_non_fundus,
)
from tests.integration.conftest import PACS_ONLY_KEY

PHOTO = synthesize_fundus(3, width=1400, height=1050, seed=31)
JPEG = encode_jpeg(PHOTO)
PHI = ("SYNTHETIC^PATIENT", "SYN0001", "19700101")


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert ERRORS[code].status == status


def test_live_and_ready(gateway: GatewayProcess) -> None:
    assert httpx.get(gateway.url + "/livez").json() == {"status": "alive"}
    ready = httpx.get(gateway.url + "/readyz").json()
    assert ready["status"] == "ready"
    assert ready["model"] == {"name": "dr_grader", "version": 1}
    assert ready["backend"] == "tfserving"
    # Open Inference Protocol v2 health paths: the same answers.
    assert httpx.get(gateway.url + "/v2/health/live").json() == {"status": "alive"}
    assert httpx.get(gateway.url + "/v2/health/ready").json() == ready


def test_health_paths_in_openapi(gateway: GatewayProcess) -> None:
    paths = httpx.get(gateway.url + "/openapi.json").json()["paths"]
    for path in ("/livez", "/readyz", "/v2/health/live", "/v2/health/ready"):
        assert set(paths[path]) == {"get"}, path
    for v2, old in (("/v2/health/live", "/livez"), ("/v2/health/ready", "/readyz")):
        for key in ("summary", "responses"):
            assert paths[v2]["get"][key] == paths[old]["get"][key], (v2, key)


def test_grade_multipart_jpeg(client: httpx.Client) -> None:
    response = client.post("/v1/grade", files={"image": ("eye.jpg", JPEG, "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["quality"]["gradable"] is True
    assert body["grade"] in range(5)
    probabilities = body["probabilities"]
    assert sorted(probabilities) == ["0", "1", "2", "3", "4"]
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert body["referable"] == (body["grade"] >= 2 or body["referable_probability"] >= 0.5)
    assert body["referable_probability"] == pytest.approx(
        probabilities["2"] + probabilities["3"] + probabilities["4"], abs=1e-4
    )
    assert body["model"] == {"name": "dr_grader", "version": 1}
    assert body["recommendation"]
    assert "not a diagnosis" in body["disclaimer"]
    assert body["heatmap_png_base64"] is None
    assert response.headers["x-request-id"] == body["request_id"]


def test_raw_body_gives_the_same_answer_as_multipart(client: httpx.Client) -> None:
    raw = client.post("/v1/grade", content=JPEG, headers={"Content-Type": "image/jpeg"}).json()
    multipart = client.post("/v1/grade", files={"image": JPEG}).json()
    assert raw["probabilities"] == multipart["probabilities"]
    # Content-Type is only a hint: a JPEG labelled PNG is still a JPEG.
    mislabelled = client.post("/v1/grade", content=JPEG, headers={"Content-Type": "image/png"})
    assert mislabelled.json()["probabilities"] == raw["probabilities"]


def test_png_and_dicom(client: httpx.Client) -> None:
    png = client.post("/v1/grade", files={"image": encode_png(PHOTO)})
    assert png.status_code == 200
    dicom = client.post(
        "/v1/grade",
        content=encode_dicom(PHOTO, transfer_syntax="jpeg_baseline", laterality="L"),
        headers={"Content-Type": "application/dicom"},
    )
    assert dicom.status_code == 200, dicom.text
    assert dicom.json()["laterality"] == "L"
    assert dicom.json()["quality"]["gradable"]


def test_explain_returns_an_overlay_png(client: httpx.Client) -> None:
    body = client.post("/v1/grade?explain=true", files={"image": JPEG}).json()
    overlay = Image.open(io.BytesIO(base64.b64decode(body["heatmap_png_base64"])))
    assert overlay.format == "PNG"
    assert overlay.size[0] == overlay.size[1] > 0
    plain = client.post("/v1/grade", files={"image": JPEG}).json()
    assert body["grade"] == plain["grade"]


def test_ungradable_image_is_answered_not_graded(client: httpx.Client) -> None:
    document = encode_png(synthesize_non_fundus("document", seed=3))
    body = client.post("/v1/grade", files={"image": document}).json()
    assert body["quality"] == {
        "gradable": False,
        "score": body["quality"]["score"],
        "reasons": ["no_fundus_disc"],
    }
    assert body["grade"] is None
    assert body["probabilities"] is None
    assert body["action"] == "retake_or_refer_in_person"
    assert "Retake" in body["recommendation"]


def test_exam_worse_eye_and_ungradable_eye(client: httpx.Client) -> None:
    blurred = encode_jpeg(synthesize_fundus(0, width=1400, height=1050, seed=4, blur_sigma=14))
    body = client.post("/v1/exams", files={"left": JPEG, "right": blurred}).json()
    assert body["left"]["laterality"] == "L"
    assert body["right"]["laterality"] == "R"
    assert body["right"]["quality"]["gradable"] is False
    patient = body["patient"]
    if body["left"]["referable"]:
        assert patient["deciding_eye"] == "left"
        assert patient["referable"] is True
    else:
        assert patient["action"] == "retake_or_refer_in_person"
        assert patient["deciding_eye"] == "right"


def test_exam_both_gradable(client: httpx.Client) -> None:
    other = encode_jpeg(synthesize_fundus(0, width=1400, height=1050, seed=5))
    body = client.post("/v1/exams", files={"left": JPEG, "right": other}).json()
    grades = {eye: body[eye]["grade"] for eye in ("left", "right")}
    patient = body["patient"]
    assert patient["worst_grade"] == grades[patient["deciding_eye"]]
    assert patient["referable"] == (body["left"]["referable"] or body["right"]["referable"])
    if not patient["referable"]:
        assert patient["worst_grade"] == max(grades.values())
        assert patient["action"] == "rescreen_12_months"


def test_exam_of_one_eye_names_the_missing_one(client: httpx.Client) -> None:
    body = client.post("/v1/exams", files={"left": JPEG}).json()
    assert body["right"] is None
    assert len(body["left"]["images"]) == 1
    assert body["patient"]["missing_eyes"] == ["right"]
    assert "right eye was not examined" in body["patient"]["summary"]
    assert_error(
        client.post("/v1/exams", data={"note": "x"}, files={"other": JPEG}),
        400,
        "malformed_request",
    )
    assert_error(client.post("/v1/exams", content=JPEG), 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "empty_input"),
        (b"hello, this is not an image", 415, "unsupported_format"),
        (JPEG[: len(JPEG) // 2], 422, "corrupt_image"),
        (encode_png(np.zeros((8, 8, 3), np.uint8)), 422, "image_too_small"),
        (encode_dicom(PHOTO, number_of_frames=2), 422, "dicom_unsupported_image"),
    ],
)
def test_bad_images_get_4xx_codes(
    client: httpx.Client, body: bytes, status: int, code: str
) -> None:
    assert_error(client.post("/v1/grade", files={"image": body}), status, code)


def test_bad_requests(client: httpx.Client) -> None:
    assert_error(client.post("/v1/grade", files={"picture": JPEG}), 400, "missing_field")
    assert_error(
        client.post("/v1/grade", data={"image": "text"}, files={"x": b"1"}), 400, "missing_field"
    )
    assert_error(
        client.post("/v1/grade", content=b'{"a": 1}', headers={"Content-Type": "application/json"}),
        415,
        "unsupported_media_type",
    )
    broken = client.post(
        "/v1/grade",
        content=b"--xyz\r\nbroken",
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert broken.status_code == 400
    assert_error(
        client.post("/v1/grade?explain=maybe", files={"image": JPEG}), 422, "invalid_parameter"
    )
    assert_error(client.get("/v1/nothing"), 404, "not_found")
    assert_error(client.get("/v1/grade"), 405, "method_not_allowed")


def test_model_version_and_label(client: httpx.Client) -> None:
    assert client.post("/v1/grade?version=1", files={"image": JPEG}).json()["model"]["version"] == 1
    assert (
        client.post("/v1/grade?label=stable", files={"image": JPEG}).json()["model"]["version"] == 1
    )
    assert_error(
        client.post("/v1/grade?version=7", files={"image": JPEG}), 503, "model_unavailable"
    )
    # Regression: a version above int64 overflowed the protobuf field (500).
    assert_error(
        client.post(f"/v1/grade?version={2**63}", files={"image": JPEG}), 422, "invalid_parameter"
    )
    assert_error(
        client.post("/v1/grade?label=nope", files={"image": JPEG}), 422, "backend_rejected_input"
    )
    assert_error(
        client.post("/v1/grade?version=1&label=stable", files={"image": JPEG}),
        422,
        "invalid_parameter",
    )


def test_auth(gateway: GatewayProcess) -> None:
    url = gateway.url + "/v1/grade"
    assert_error(httpx.post(url, files={"image": JPEG}), 401, "unauthorized")
    assert_error(
        httpx.post(url, files={"image": JPEG}, headers={"X-API-Key": "wrong"}), 401, "unauthorized"
    )
    assert_error(
        httpx.post(url, files={"image": JPEG}, headers={"X-API-Key": PACS_ONLY_KEY}),
        403,
        "forbidden",
    )
    for path in ("/livez", "/readyz", "/v2/health/live", "/v2/health/ready", "/metrics"):
        assert httpx.get(gateway.url + path).status_code == 200


def test_openapi_documents_every_error_code(gateway: GatewayProcess) -> None:
    spec = httpx.get(gateway.url + "/openapi.json").json()
    grade = spec["paths"]["/v1/grade"]["post"]
    text = json.dumps(grade["responses"])
    for code in (
        "corrupt_image",
        "unauthorized",
        "overloaded",
        "backend_timeout",
        "model_unavailable",
    ):
        assert code in text
    assert set(grade["requestBody"]["content"]) >= {
        "multipart/form-data",
        "image/jpeg",
        "application/dicom",
    }
    # Swagger UI needs a CDN: off in production (DRG_DOCS_ENABLED; issue 14, finding 12).
    assert httpx.get(gateway.url + "/docs").status_code == 404


def test_metrics_after_traffic(client: httpx.Client, gateway: GatewayProcess) -> None:
    client.post("/v1/grade", files={"image": JPEG})
    client.post("/v1/grade", files={"image": encode_png(synthesize_non_fundus("document", seed=1))})
    client.post("/v1/grade", files={"image": b"junk"})
    text = httpx.get(gateway.url + "/metrics").text
    assert 'drg_http_requests_total{method="POST",route="/v1/grade",status="200"}' in text
    assert 'drg_ungradable_total{reason="no_fundus_disc"}' in text
    assert 'drg_errors_total{code="unsupported_format"}' in text
    assert 'drg_model_info{model="dr_grader",version="1"} 1.0' in text
    assert "drg_backend_request_duration_seconds_bucket" in text
    assert "drg_prediction_confidence_bucket" in text
    if shutil.which("promtool"):
        checked = subprocess.run(
            ["promtool", "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    else:
        pytest.skip("promtool not installed (Debian package prometheus; .ci/run installs it)")


def test_logs_are_json_without_patient_data(client: httpx.Client, gateway: GatewayProcess) -> None:
    dicom = encode_dicom(PHOTO, transfer_syntax="jpeg_baseline")
    assert (
        client.post(
            "/v1/grade", content=dicom, headers={"Content-Type": "application/dicom"}
        ).status_code
        == 200
    )
    broken = dicom[:400] + b"\x00" * 50 + dicom[450:]
    client.post("/v1/grade", content=broken, headers={"Content-Type": "application/dicom"})
    logs = gateway.logs()
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any(entry.get("route") == "/v1/grade" and entry.get("status") == 200 for entry in lines)
    assert all("request_id" in entry for entry in lines if entry.get("msg") == "request")
    for value in PHI:
        assert value not in logs
