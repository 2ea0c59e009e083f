"""Faults and limits over real gRPC: backend loss and return, slowness, loading, overload,
upload limits, graceful shutdown, the lean process, and the local backend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from harness.processes import REPO_ROOT, GatewayProcess, TFServingProcess, free_port
from synthetic import encode_jpeg, synthesize_fundus
from tests.integration.conftest import API_KEY, start_gateway

JPEG = encode_jpeg(synthesize_fundus(2, width=1200, height=900, seed=41))
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def grade(gateway: GatewayProcess, timeout: float = 30) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/grade", files={"image": JPEG}, headers=AUTH, timeout=timeout
    )


def test_backend_goes_away_and_comes_back(
    model_root: Path, lean_protos: Path, keys_file: Path, tmp_path: Path
) -> None:
    port = free_port()
    server = TFServingProcess(model_root, port=port).start()
    gateway = start_gateway(tmp_path, lean_protos, keys_file, server.target, backend_timeout_s="2")
    try:
        assert grade(gateway).status_code == 200
        server.stop()
        started = time.monotonic()
        response = grade(gateway)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "backend_unavailable"
        assert time.monotonic() - started < 5
        ready = httpx.get(gateway.url + "/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "not_ready"
        server = TFServingProcess(model_root, port=port).start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and grade(gateway).status_code != 200:
            time.sleep(0.2)
        assert grade(gateway).status_code == 200
        assert httpx.get(gateway.url + "/readyz").status_code == 200
    finally:
        gateway.stop()
        server.stop()


def test_backend_slower_than_the_deadline_gives_504(
    model_root: Path, lean_protos: Path, keys_file: Path, tmp_path: Path
) -> None:
    server = TFServingProcess(model_root, args=("--predict-delay", "4")).start()
    gateway = start_gateway(tmp_path, lean_protos, keys_file, server.target, backend_timeout_s="1")
    try:
        started = time.monotonic()
        response = grade(gateway)
        elapsed = time.monotonic() - started
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "backend_timeout"
        assert elapsed < 3.5  # answered at the deadline, not after the slow backend
    finally:
        gateway.stop()
        server.stop()


def test_model_still_loading_is_not_ready(
    model_root: Path, lean_protos: Path, keys_file: Path, tmp_path: Path
) -> None:
    server = TFServingProcess(model_root, args=("--load-delay", "6")).start(wait_available=False)
    gateway = start_gateway(tmp_path, lean_protos, keys_file, server.target)
    try:
        for path in ("/readyz", "/v2/health/ready"):  # OIP v2 path: the same handler
            ready = httpx.get(gateway.url + path)
            assert ready.status_code == 503
            assert ready.json()["error"]["code"] == "not_ready"
            assert "LOADING" in ready.json()["error"]["message"]
        assert httpx.get(gateway.url + "/v2/health/live").status_code == 200
        response = grade(gateway)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_unavailable"
        assert gateway.wait_ready(timeout_s=240) > 0
        assert grade(gateway).status_code == 200
    finally:
        gateway.stop()
        server.stop()


def test_full_queue_answers_503_with_retry_after(
    model_root: Path, lean_protos: Path, keys_file: Path, tmp_path: Path
) -> None:
    server = TFServingProcess(model_root, args=("--predict-delay", "1.5")).start()
    gateway = start_gateway(
        tmp_path,
        lean_protos,
        keys_file,
        server.target,
        max_concurrent_inferences="1",
        max_queued_inferences="1",
    )
    try:
        results: list[httpx.Response] = []
        threads = [
            threading.Thread(target=lambda: results.append(grade(gateway))) for _ in range(5)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        statuses = sorted(r.status_code for r in results)
        assert statuses.count(200) >= 2
        refused = [r for r in results if r.status_code == 503]
        assert refused
        for response in refused:
            assert response.json()["error"]["code"] == "overloaded"
            assert response.headers["retry-after"] == "1"
        assert len(results) == 5  # every request got an answer
    finally:
        gateway.stop()
        server.stop()


def test_upload_limit_while_reading(
    tfserving: TFServingProcess, lean_protos: Path, keys_file: Path, tmp_path: Path
) -> None:
    gateway = start_gateway(
        tmp_path, lean_protos, keys_file, tfserving.target, max_upload_bytes="200000"
    )
    try:
        big = os.urandom(1_000_000)
        declared = httpx.post(gateway.url + "/v1/grade", content=big, headers=AUTH)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "payload_too_large"

        def chunks():  # no Content-Length: the limit must trip while reading
            for start in range(0, len(big), 65536):
                yield big[start : start + 65536]

        streamed = httpx.post(gateway.url + "/v1/grade", content=chunks(), headers=AUTH)
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "payload_too_large"
        image = httpx.post(gateway.url + "/v1/grade", content=os.urandom(300_000), headers=AUTH)
        assert image.json()["error"]["code"] == "image_too_large"  # fundus byte limit
    finally:
        gateway.stop()


def test_sigterm_finishes_in_flight_requests(
    model_root: Path, lean_protos: Path, keys_file: Path, tmp_path: Path
) -> None:
    server = TFServingProcess(model_root, args=("--predict-delay", "2")).start()
    gateway = start_gateway(tmp_path, lean_protos, keys_file, server.target)
    try:
        gateway.wait_ready()
        results: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: results.append(grade(gateway)))
        worker.start()
        time.sleep(0.7)
        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):
            httpx.get(gateway.url + "/livez", timeout=2)
        worker.join(timeout=30)
        assert results[0].status_code == 200
        # uvicorn re-raises SIGTERM after its graceful shutdown; python -m gateway exits 0 then.
        assert gateway.stop() == 0
    finally:
        gateway.stop()
        server.stop()


def test_lean_process_has_no_tf_runtime(
    tfserving: TFServingProcess, lean_protos: Path, keys_file: Path, tmp_path: Path
) -> None:
    gateway = start_gateway(tmp_path, lean_protos, keys_file, tfserving.target)
    try:
        gateway.wait_ready()  # start-to-ready time is measured by bench/gateway.py
        assert grade(gateway).status_code == 200
        assert gateway.process is not None
        maps = Path(f"/proc/{gateway.process.pid}/maps").read_text()
        assert "pywrap_tensorflow" not in maps
        assert "libtensorflow" not in maps
    finally:
        gateway.stop()
    probe = (
        "import sys, asyncio\n"
        "from gateway.main import create_app\n"
        "from gateway.settings import Settings\n"
        "app = create_app(Settings())\n"
        "async def run():\n"
        "    async with app.router.lifespan_context(app):\n"
        "        pass\n"
        "asyncio.run(run())\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('tensorflow'))\n"
        "assert 'tensorflow.python' not in sys.modules, loaded\n"
        "print(len(loaded))\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DRG_")},
        "PYTHONPATH": f"{lean_protos}{os.pathsep}{REPO_ROOT}",
        "DRG_API_KEYS_FILE": str(keys_file),
        "DRG_TFSERVING_TARGET": tfserving.target,
    }
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip()) > 0  # the generated protobuf modules were imported


def test_local_backend_matches_tf_serving(
    model_root: Path, lean_protos: Path, keys_file: Path, tmp_path: Path, client: httpx.Client
) -> None:
    via_tfserving = client.post("/v1/grade", files={"image": JPEG}).json()
    gateway = GatewayProcess(
        {
            "DRG_BACKEND": "local",
            "DRG_MODEL_DIR": str(model_root),
            "DRG_AUTH": "disabled",
            "DRG_ENVIRONMENT": "development",
        },
        lean_protos=Path("/nonexistent"),
        log_path=tmp_path / "local.log",
    ).start(timeout_s=120)
    try:
        local = httpx.post(gateway.url + "/v1/grade", files={"image": JPEG}, timeout=30).json()
        assert local["grade"] == via_tfserving["grade"]
        for key, value in via_tfserving["probabilities"].items():
            assert local["probabilities"][key] == pytest.approx(value, abs=1e-5)
        assert "authentication is DISABLED" in gateway.logs()
    finally:
        gateway.stop()
