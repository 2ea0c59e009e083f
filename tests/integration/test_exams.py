"""``POST /v1/exams`` as clinics send it: several photographs per eye, through the gateway and
the TF Serving stand-in (which refuses a Predict above max_batch_size 2, as TF Serving does)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gateway.errors import ERRORS
from harness.processes import TFServingProcess
from synthetic import encode_dicom, encode_jpeg, synthesize_fundus, synthesize_non_fundus
from tests.integration.conftest import API_KEY, start_gateway

Files = list[tuple[str, tuple[str, bytes, str]]]


def photo(seed: int, grade: int = 1, blur: float = 0.0) -> bytes:
    return encode_jpeg(synthesize_fundus(grade, width=1024, height=768, seed=seed, blur_sigma=blur))


UNGRADABLE = encode_jpeg(synthesize_non_fundus("document", seed=9))


def files(left: list[bytes], right: list[bytes]) -> Files:
    out: Files = []
    for eye, images in (("left", left), ("right", right)):
        out.extend((eye, (f"{eye}{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images))
    return out


def check_eye(eye: dict[str, object], count: int) -> None:
    images = eye["images"]
    assert isinstance(images, list) and len(images) == count


def test_two_photographs_per_eye_of_real_eyepacs_images(
    client: httpx.Client, eyepacs_files: list[Path]
) -> None:
    by_name = {path.stem: path.read_bytes() for path in eyepacs_files}
    left = [by_name["10_left"], by_name["13_left"]]
    right = [by_name["10_right"], by_name["15_right"]]
    response = client.post("/v1/exams", files=files(left, right))
    assert response.status_code == 200, response.text
    body = response.json()
    for side in ("left", "right"):
        eye = body[side]
        check_eye(eye, 2)
        graded = [image for image in eye["images"] if image["grade"] is not None]
        if graded:
            worst = eye["images"][eye["deciding_image"]]
            assert eye["grade"] == worst["grade"] == max(image["grade"] for image in graded)
            assert eye["referable"] == any(image["referable"] for image in graded)
            assert eye["vision_threatening"] == (eye["grade"] >= 3)
    patient = body["patient"]
    assert patient["missing_eyes"] == []
    assert patient["referable"] == any(body[s]["referable"] for s in ("left", "right"))
    assert "macular oedema" in patient["caveat"]


def test_an_ungradable_photograph_does_not_hide_a_gradable_one(client: httpx.Client) -> None:
    body = client.post(
        "/v1/exams", files=files([UNGRADABLE, photo(seed=41)], [photo(seed=42)])
    ).json()
    left = body["left"]
    check_eye(left, 2)
    assert left["images"][0]["quality"]["gradable"] is False
    assert left["images"][1]["quality"]["gradable"] is True
    assert left["deciding_image"] == 1
    assert left["quality"]["gradable"] is True and left["quality"]["reasons"] == []
    assert left["grade"] == left["images"][1]["grade"]
    assert body["patient"]["insufficient_quality"] is False


def test_an_eye_with_only_ungradable_photographs_is_insufficient_quality(
    client: httpx.Client,
) -> None:
    blurred = photo(seed=43, blur=14)
    body = client.post("/v1/exams", files=files([photo(seed=44)], [UNGRADABLE, blurred])).json()
    right = body["right"]
    check_eye(right, 2)
    assert right["deciding_image"] is None and right["grade"] is None
    assert right["quality"]["gradable"] is False
    assert set(right["quality"]["reasons"]) >= {"no_fundus_disc"}
    assert right["action"] == "retake_or_refer_in_person"
    assert body["patient"]["insufficient_quality"] is True
    if not body["left"]["referable"]:
        assert body["patient"]["action"] == "retake_or_refer_in_person"


def test_a_missing_eye_is_named(client: httpx.Client) -> None:
    body = client.post("/v1/exams", files=files([], [photo(seed=45), photo(seed=46)])).json()
    assert body["left"] is None
    check_eye(body["right"], 2)
    assert body["patient"]["missing_eyes"] == ["left"]
    assert "left eye was not examined" in body["patient"]["summary"]


def test_a_laterality_mismatch_is_refused_never_swapped(client: httpx.Client) -> None:
    right_eye = encode_dicom(synthesize_fundus(1, width=640, height=480, seed=47), laterality="R")
    response = client.post(
        "/v1/exams",
        files=[("left", ("r.dcm", right_eye, "application/dicom")), *files([], [photo(seed=48)])],
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "laterality_mismatch" and ERRORS["laterality_mismatch"].status == 422
    assert "left[0]" in error["message"]


def test_more_photographs_than_the_limit_are_refused(client: httpx.Client) -> None:
    five = [photo(seed=50 + i) for i in range(5)]
    response = client.post("/v1/exams", files=files(five, []))
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "too_many_images"
    assert "at most 4" in response.json()["error"]["message"]


def test_the_stand_in_refuses_a_predict_above_max_batch_size(
    tfserving: TFServingProcess, lean_protos: Path, keys_file: Path, tmp_path: Path
) -> None:
    """Without the gateway's split (DRG_MAX_PREDICT_BATCH=2), four photographs in one Predict
    are refused by TF Serving's batching; with it, the same exam is graded."""
    exam = files([photo(seed=60), photo(seed=61)], [photo(seed=62), photo(seed=63)])
    headers = {"Authorization": f"Bearer {API_KEY}"}
    unsplit = start_gateway(
        tmp_path, lean_protos, keys_file, tfserving.target, max_predict_batch="4"
    )
    try:
        unsplit.wait_ready()
        refused = httpx.post(unsplit.url + "/v1/exams", files=exam, headers=headers, timeout=60)
    finally:
        unsplit.stop()
    assert refused.status_code >= 400, refused.text
    assert refused.json()["error"]["code"].startswith("backend_"), refused.text
    split = start_gateway(tmp_path, lean_protos, keys_file, tfserving.target)
    try:
        split.wait_ready()
        graded = httpx.post(split.url + "/v1/exams", files=exam, headers=headers, timeout=60)
    finally:
        split.stop()
    assert graded.status_code == 200, graded.text
    assert all(image["grade"] is not None for image in graded.json()["left"]["images"])


@pytest.mark.parametrize("count", [1, 4])
def test_from_one_to_the_limit_per_eye(client: httpx.Client, count: int) -> None:
    body = client.post("/v1/exams", files=files([photo(seed=70 + i) for i in range(count)], []))
    check_eye(body.json()["left"], count)
