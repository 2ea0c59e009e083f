"""The gateway image run as the clusters run it (read-only root, uid 10001, /tmp a tmpfs, no
capabilities) in front of the TF Serving stand-in on the host: ready, grades exactly as the
gateway process on the host does, scrapes, never loads TF, drains on SIGTERM, healthchecks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contract.signatures import SERVING_SIGNATURE
from deploy.container_run import Container
from harness.processes import GatewayProcess, TFServingProcess
from synthetic import encode_dicom, encode_jpeg, synthesize_fundus
from tests.conftest import API_KEY, DICOM_DIR, EYEPACS_DIR

AUTH = {"Authorization": f"Bearer {API_KEY}"}
TF_RUNTIME = ("_pywrap_tensorflow", "libtensorflow")
PHOTO = synthesize_fundus(2, width=1200, height=900, seed=23)


def photograph(kind: str) -> tuple[bytes, str]:
    """(body, content type) of one photograph; the shared real ones skip when absent."""
    if kind == "synthetic-jpeg":
        return encode_jpeg(PHOTO), "image/jpeg"
    if kind == "synthetic-dicom":
        return encode_dicom(PHOTO, transfer_syntax="jpeg_baseline", laterality="L"), "dicom"
    folder, pattern = (EYEPACS_DIR, "*.jpeg") if kind == "eyepacs-jpeg" else (DICOM_DIR, "*.dcm")
    files = sorted(folder.glob(pattern)) if folder.is_dir() else []
    if not files:
        pytest.skip(f"real fixture {folder} is absent (only present beside the team's checkout)")
    return files[0].read_bytes(), "image/jpeg" if kind == "eyepacs-jpeg" else "dicom"


def grade(base_url: str, body: bytes, kind: str) -> httpx.Response:
    """POST /v1/grade: a multipart JPEG upload, or a DICOM Part 10 body."""
    if kind == "dicom":
        headers = {**AUTH, "Content-Type": "application/dicom"}
        return httpx.post(base_url + "/v1/grade", content=body, headers=headers, timeout=60)
    return httpx.post(base_url + "/v1/grade", files={"image": body}, headers=AUTH, timeout=60)


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """A grading result without what differs per request (its id, its timings)."""
    return {k: v for k, v in result.items() if k not in ("request_id", "timings")}


@pytest.fixture(scope="module")
def container(start_container: Callable[..., Container], standin: TFServingProcess) -> Container:
    """One ready gateway container for the module (removed at the end of the session)."""
    started = start_container(standin.target, readiness_cache_s="0")
    started.wait_http("/readyz")
    return started


@pytest.fixture(scope="module")
def host_gateway(
    standin: TFServingProcess,
    lean_protos: Path,
    keys_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    """The same gateway as a host process (the lean protos first on its path)."""
    settings = {
        "DRG_BACKEND": "tfserving",
        "DRG_TFSERVING_TARGET": standin.target,
        "DRG_API_KEYS_FILE": str(keys_file),
    }
    log = tmp_path_factory.mktemp("host-gw") / "gateway.log"
    process = GatewayProcess(settings, lean_protos, log).start()
    process.wait_ready()
    yield process
    process.stop()


def test_ready_and_live_as_uid_10001_on_a_read_only_root(container: Container) -> None:
    assert httpx.get(container.url + "/readyz", timeout=5).status_code == 200
    assert httpx.get(container.url + "/livez", timeout=5).status_code == 200
    status = container.exec("cat", "/proc/1/status").stdout
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uids) == {"10001"}, status
    assert container.exec("touch", "/app/written").returncode != 0  # the root is read-only
    assert container.exec("touch", "/tmp/written").returncode == 0  # /tmp is the tmpfs
    mounts = container.exec("cat", "/proc/1/mounts").stdout.splitlines()
    assert any(line.split()[1] == "/tmp" and line.split()[2] == "tmpfs" for line in mounts)
    assert any(line.split()[1] == "/" and "ro" in line.split()[3].split(",") for line in mounts)


@pytest.mark.parametrize(
    "kind", ["synthetic-jpeg", "synthetic-dicom", "eyepacs-jpeg", "real-dicom"]
)
def test_grades_as_the_host_process_does(
    container: Container, host_gateway: GatewayProcess, kind: str
) -> None:
    body, content = photograph(kind)
    in_container = grade(container.url, body, content)
    on_host = grade(host_gateway.url, body, content)
    assert in_container.status_code == 200, in_container.text
    assert on_host.status_code == 200, on_host.text
    assert comparable(in_container.json()) == comparable(on_host.json())
    assert in_container.json()["model"] == {"name": "dr_grader", "version": 1}


def test_metrics_scrape_counts_the_grades(container: Container) -> None:
    def graded() -> float:
        text = httpx.get(container.url + "/metrics", timeout=10).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "drg_predictions_total"
        )

    before = graded()
    assert grade(container.url, encode_jpeg(PHOTO), "image/jpeg").status_code == 200
    assert graded() == before + 1


def test_no_tensorflow_runtime_in_the_container(container: Container) -> None:
    assert grade(container.url, encode_jpeg(PHOTO), "image/jpeg").status_code == 200
    maps = container.exec("cat", "/proc/1/maps")
    assert maps.returncode == 0 and "python" in maps.stdout  # the control: maps are readable
    loaded = [line for line in maps.stdout.splitlines() if any(n in line for n in TF_RUNTIME)]
    assert loaded == [], loaded[:3]
    # `tensorflow` there is the lean protos' package: generated modules, no runtime beside it.
    probe = "import tensorflow, importlib.util as u; print(*tensorflow.__path__, u.find_spec('tensorflow.python'))"
    found = container.exec("python", "-c", probe)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["/opt/lean-protos/tensorflow", "None"]


def test_healthcheck_passes_and_fails_when_nothing_listens(container: Container) -> None:
    assert container.healthcheck() == 0
    # The same command against a port nobody serves fails: the check can tell.
    test = container.healthcheck_command()
    wrong = container.exec("env", "DRG_PORT=1", *test)
    assert wrong.returncode != 0


def test_sigterm_drains_requests_in_flight_and_exits_0(
    start_container: Callable[..., Container], model_root: Path, tmp_path: Path
) -> None:
    predict_log = tmp_path / "predicts.log"
    slow = TFServingProcess(
        model_root, args=("--predict-delay", "3", "--predict-log", str(predict_log))
    ).start(timeout_s=600)
    try:
        container = start_container(slow.target, readiness_cache_s="0")
        container.wait_http("/readyz")
        results: list[int] = []
        senders = [
            threading.Thread(
                target=lambda: results.append(
                    grade(container.url, encode_jpeg(PHOTO), "image/jpeg").status_code
                )
            )
            for _ in range(3)
        ]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 30
        while not (predict_log.exists() and SERVING_SIGNATURE in predict_log.read_text()):
            assert time.monotonic() < deadline, "no grading request reached the model server"
            time.sleep(0.05)
        time.sleep(0.5)  # the other two are past their upload too (preprocessing, queued)
        code, seconds = container.stop(grace_s=45)
        for sender in senders:
            sender.join(timeout=60)
        assert results == [200, 200, 200]
        assert code == 0, container.logs()[-2000:]
        assert seconds < 35, seconds  # DRG_SHUTDOWN_GRACE_S: drained well within it
        assert seconds > 0.5, seconds  # it did wait for the 3 s predicts
    finally:
        slow.stop()
