"""PACS round trip against a real Orthanc (DICOMweb plugin) and a real gateway process.

Orthanc listens on all interfaces, so everything runs in a fresh network namespace with only
loopback: the scenario driver (tests/e2e/pacs_scenario.py) starts Orthanc and the gateway
inside it. Every study gets one study SR; a 2 + 2 photograph study's SR must say what
``POST /v1/exams`` says on the same files, and a fifth photograph gives a new SR naming the
first. This test creates the namespace, runs the driver, checks its report and the gateway's
log, and always deletes the namespace (ending any process of ours still in it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.processes import REPO_ROOT
from tests.e2e.pacs_scenario import PHI_STRINGS
from tests.integration.conftest import API_KEY, PACS_ONLY_KEY

pytestmark = pytest.mark.slow


def test_pacs_roundtrip_through_orthanc(
    netns: str, model_root: Path, keys_file: Path, tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    command = [
        "ip", "netns", "exec", netns,
        sys.executable, "-m", "tests.e2e.pacs_scenario",
        "--workdir", str(tmp_path / "work"),
        "--model-root", str(model_root),
        "--keys-file", str(keys_file),
        "--grade-key", API_KEY,
        "--pacs-key", PACS_ONLY_KEY,
        "--report", str(report_path),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRG_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    began = time.monotonic()
    run = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=400, check=False
    )
    elapsed = time.monotonic() - began
    assert report_path.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    failed = [check for check in report["checks"] if not check["ok"]]
    assert "error" not in report, report["error"]
    assert not failed, json.dumps(failed, indent=1)
    assert run.returncode == 0, run.stderr[-3000:]
    assert report["ok"]
    names = {check["name"] for check in report["checks"]}
    for expected in (
        "photo: grade = JSON",
        "ungradable: gradable = JSON",
        "resends: still exactly one SR",
        "restart: result still pending",
        "after outage: grade = JSON",
        "secondary capture (forwarded late): grade = JSON",
        "study: exactly one SR in Orthanc",
        "study: GET /v1/studies sr = the SR in Orthanc",
        "study: left eye = POST /v1/exams",
        "study: right eye = POST /v1/exams",
        "study: patient = POST /v1/exams",
        "fifth: new SR names the first",
        "fifth: JSON sr.replaces",
        "fifth: left eye = POST /v1/exams",
    ):
        assert expected in names
    if shutil.which("dciodvfy"):
        assert {"study SR 4: dciodvfy 0 errors", "study SR 5: dciodvfy 0 errors"} <= names
    study = report["study"]["study"]["sr"]
    assert [len(study["eyes"][side]["photographs"]) for side in "LR"] == [2, 2]
    assert report["srs"]["ungradable"]["gradable"] is False
    assert report["srs"]["photo"]["sr_grade"] == report["srs"]["photo"]["json_grade"]

    log = Path(report["gateway_log"]).read_text(errors="replace")
    assert "pacs_delivered" in log
    for phi in PHI_STRINGS:
        assert phi not in log, f"patient data {phi!r} in the gateway log"
    print(f"PACS round trip: {elapsed:.1f} s; timings {report['timings_s']}")
