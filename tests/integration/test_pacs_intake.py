"""The STOW-RS intake of a real gateway (uvicorn, PACS enabled) in front of the TF Serving stand-in
serving the tiny model: bounded work per request (issue 14 finding 4), content conflicts under a
known SOP Instance UID (finding 6) and per-client access to results (finding 7)."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from harness.processes import GatewayProcess, TFServingProcess
from synthetic import encode_dicom, synthesize_fundus
from tests.integration.conftest import start_pacs_gateway

MAX_PARTS = 4
KEYS = {"pacs-a": "key-a", "pacs-b": "key-b", "grader": "key-g", "admin": "key-admin"}
SCOPES = {"pacs-a": "pacs", "pacs-b": "pacs", "grader": "grade", "admin": "results:read"}
PLANTED = "ATTACKER^PLANTED"


def photo(seed: int, image_seed: int, **options: Any) -> bytes:
    """A DICOM photograph; its UIDs come from ``seed`` only, its pixels from ``image_seed``."""
    image = synthesize_fundus(2, width=640, height=560, seed=image_seed)
    return encode_dicom(image, seed=seed, **options)


def sop_uid(data: bytes) -> str:
    return str(pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID)


def multipart(parts: list[bytes]) -> tuple[bytes, str]:
    boundary = "b-" + uuid.uuid4().hex
    body = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n"
        for p in parts
    )
    return body + b"--" + boundary.encode() + b"--\r\n", (
        f'multipart/related; type="application/dicom"; boundary={boundary}'
    )


@pytest.fixture(scope="module")
def pacs_gateway(
    tfserving: TFServingProcess, lean_protos: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A gateway with the PACS intake on, four clients and at most MAX_PARTS parts a request."""
    clients = {name: (key, SCOPES[name]) for name, key in KEYS.items()}
    process = start_pacs_gateway(
        tmp_path_factory.mktemp("pacs-gw"),
        lean_protos,
        tfserving.target,
        clients,
        pacs_max_parts=str(MAX_PARTS),
    )
    yield process
    process.stop()


def stow(
    gateway: GatewayProcess, client: str, parts: list[bytes], request_id: str | None = None
) -> httpx.Response:
    body, content_type = multipart(parts)
    headers = {"X-API-Key": KEYS[client], "Content-Type": content_type}
    if request_id:
        headers["X-Request-ID"] = request_id
    return httpx.post(gateway.url + "/dicomweb/studies", content=body, headers=headers, timeout=60)


def failures(response: httpx.Response) -> list[tuple[int, str]]:
    """(Failure Reason, gateway code) of each Failed SOP Sequence item."""
    items = response.json().get("00081198", {}).get("Value", [])
    return [(i["00081197"]["Value"][0], i["00091001"]["Value"][0]) for i in items]


def log_entries(gateway: GatewayProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gateway.logs().splitlines() if line.startswith("{")]


def cpu_seconds(gateway: GatewayProcess) -> float:
    assert gateway.process is not None
    fields = Path(f"/proc/{gateway.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


# -- finding 4: bounded STOW-RS work ---------------------------------------------------------


def test_more_parts_than_the_cap_is_a_coded_413(pacs_gateway: GatewayProcess) -> None:
    response = stow(pacs_gateway, "pacs-a", [b"x"] * 50_000)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_parts"
    assert len(response.content) < 1000  # not one failure item per part


def test_one_summary_log_line_per_request(pacs_gateway: GatewayProcess) -> None:
    request_id = "stow-summary-" + uuid.uuid4().hex[:8]
    parts = [photo(seed=101, image_seed=1), b"not dicom", b"\x00" * 4096]
    response = stow(pacs_gateway, "pacs-a", parts, request_id)
    assert response.status_code == 202
    codes = [code for _, code in failures(response)]
    assert len(codes) == 2
    mine = [e for e in log_entries(pacs_gateway) if e.get("request_id") == request_id]
    pacs_lines = [e for e in mine if str(e.get("event", "")).startswith("pacs_")]
    assert [e["event"] for e in pacs_lines] == ["pacs_stow"]
    summary = pacs_lines[0]
    assert summary["images"] == 3 and summary["status"] == 202 and summary["client"] == "pacs-a"
    assert sum(summary["outcomes"].values()) == 3
    assert summary["outcomes"]["refused"] == 2
    assert summary["refusals"] == {code: codes.count(code) for code in codes}


def test_80_mib_of_zeros_is_refused_in_little_cpu_and_livez_keeps_answering(
    pacs_gateway: GatewayProcess,
) -> None:
    """The review: 22.5 s of CPU. Parsing is bounded (gateway.pacs.dataset.MAX_READS)."""
    body = b"\x00" * (80 * 1024 * 1024)
    before = cpu_seconds(pacs_gateway)
    answer: dict[str, httpx.Response] = {}

    def send() -> None:
        answer["stow"] = httpx.post(
            pacs_gateway.url + "/dicomweb/studies",
            content=body,
            headers={"X-API-Key": KEYS["pacs-a"], "Content-Type": "application/dicom"},
            timeout=120,
        )

    sender = threading.Thread(target=send)
    sender.start()
    worst_livez = 0.0
    while sender.is_alive():
        started = time.monotonic()
        assert httpx.get(pacs_gateway.url + "/livez", timeout=10).status_code == 200
        worst_livez = max(worst_livez, time.monotonic() - started)
        time.sleep(0.05)
    sender.join()
    used = cpu_seconds(pacs_gateway) - before
    assert used < 5.0, used  # receiving 80 MiB costs some; parsing it cost 22.5 s before
    assert worst_livez < 2.0, worst_livez
    response = answer["stow"]
    assert response.status_code == 409
    assert failures(response) == [(0xC000, "corrupt_image")]


# -- finding 6: other content under a known SOP Instance UID ------------------------------------


def outbox_row(gateway: GatewayProcess, uid: str) -> tuple[str | None, bytes | None]:
    """(sender, its study's SR bytes) of the instance, read straight from the gateway's SQLite
    store."""
    path = gateway.env["DRG_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT r.sender, s.sr_bytes FROM results r JOIN studies s"
            " ON s.study_uid = r.study_uid WHERE r.source_sop_uid = ?",
            (uid,),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_other_content_under_a_known_uid_is_a_409_conflict(pacs_gateway: GatewayProcess) -> None:
    genuine = photo(seed=202, image_seed=2)
    planted = photo(seed=202, image_seed=3, patient_name=PLANTED)
    uid = sop_uid(genuine)
    assert sop_uid(planted) == uid

    first = stow(pacs_gateway, "pacs-b", [planted])
    assert first.status_code == 200
    request_id = "stow-conflict-" + uuid.uuid4().hex[:8]
    second = stow(pacs_gateway, "pacs-a", [genuine], request_id)
    # Before the fix: 200 "stored", never graded, and the queued SR carried the planted patient
    # for the genuine photograph's sender.
    assert second.status_code == 409
    assert failures(second) == [(0x0111, "instance_conflict")]
    assert "00081199" not in second.json()
    sender, sr_bytes = outbox_row(pacs_gateway, uid)
    assert sender == "pacs-b"  # the first row stands, unchanged
    assert sr_bytes is not None
    assert str(pydicom.dcmread(io.BytesIO(sr_bytes)).PatientName) == PLANTED

    conflict_lines = [
        e
        for e in log_entries(pacs_gateway)
        if e.get("request_id") == request_id and e.get("event") == "pacs_conflict"
    ]
    assert len(conflict_lines) == 1
    assert conflict_lines[0]["level"] == "warning" and conflict_lines[0]["client"] == "pacs-a"
    for line in pacs_gateway.logs().splitlines():
        assert uid not in line and "ATTACKER" not in line and "SYNTHETIC" not in line


def test_an_honest_resend_is_idempotent_even_re_encoded(pacs_gateway: GatewayProcess) -> None:
    data = photo(seed=303, image_seed=4)
    assert stow(pacs_gateway, "pacs-a", [data]).status_code == 200
    _, first_sr = outbox_row(pacs_gateway, sop_uid(data))
    again = photo(seed=303, image_seed=4, transfer_syntax="implicit_le")
    assert again != data
    response = stow(pacs_gateway, "pacs-a", [again])
    assert response.status_code == 200 and failures(response) == []
    assert outbox_row(pacs_gateway, sop_uid(data))[1] == first_sr


# -- finding 7: who reads which result ------------------------------------------------------


def test_results_are_read_by_their_sender_and_admins_only(pacs_gateway: GatewayProcess) -> None:
    data = photo(seed=404, image_seed=5)
    uid = sop_uid(data)
    assert stow(pacs_gateway, "pacs-a", [data]).status_code == 200

    def get(client: str, which: str = uid) -> httpx.Response:
        return httpx.get(
            f"{pacs_gateway.url}/v1/results/{which}", headers={"X-API-Key": KEYS[client]}
        )

    assert get("pacs-a").status_code == 200
    assert get("pacs-a").json()["sop_instance_uid"] == uid
    assert get("admin").status_code == 200
    unknown = get("pacs-a", "1.2.3.4.5.6.7.8.9")
    assert unknown.status_code == 404
    for other in ("pacs-b", "grader"):  # the grade key is the release smoke key of the review
        response = get(other)
        assert response.status_code == 404
        assert response.json() == unknown.json()  # indistinguishable from an unknown UID
