"""``python -m gateway`` in tfserving mode, started as a developer starts it (no PYTHONPATH, from
the project venv), never loads the TensorFlow runtime: checked on the running process."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from gateway.lean_protos import MARKER, default_dir
from harness.processes import GatewayProcess, TFServingProcess
from synthetic import encode_jpeg, synthesize_fundus
from tests.integration.conftest import API_KEY

TF_RUNTIME = ("_pywrap_tensorflow", "libtensorflow")


def test_plain_start_grades_without_the_tf_runtime(
    tfserving: TFServingProcess, keys_file: Path, tmp_path: Path
) -> None:
    gateway = GatewayProcess(
        {
            "DRG_BACKEND": "tfserving",
            "DRG_TFSERVING_TARGET": tfserving.target,
            "DRG_API_KEYS_FILE": str(keys_file),
        },
        lean_protos=Path("/nonexistent"),
        log_path=tmp_path / "gateway.log",
    )
    gateway.env.pop("PYTHONPATH")  # nothing set by hand: cwd (the checkout) and the venv only
    assert "PYTHONPATH" not in gateway.env and "PYTHONPATH" not in os.environ
    gateway.start()
    try:
        gateway.wait_ready()
        image = encode_jpeg(synthesize_fundus(2, width=800, height=600, seed=7))
        response = httpx.post(
            gateway.url + "/v1/grade",
            files={"image": image},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        maps = Path(f"/proc/{gateway.pid}/maps").read_text()
        loaded = [line for line in maps.splitlines() if any(n in line for n in TF_RUNTIME)]
        assert loaded == [], loaded[:3]
    finally:
        gateway.stop()
    # The copy it used is the venv's, built by `make setup` or by this start-up.
    assert (default_dir() / MARKER).is_file()
