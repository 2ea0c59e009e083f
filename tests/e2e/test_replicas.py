"""Two gateway replicas, one PostgreSQL, one Orthanc: delivery shared by lease, reads from any
replica, a replica SIGKILLed mid-delivery, the PACS down, the database restarted under load.

The driver (tests/e2e/replicas_scenario.py) runs inside a loopback-only network namespace
(Orthanc listens on all interfaces) and writes a JSON report of named checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.postgres import PostgresUnavailable, find_bindir
from harness.processes import REPO_ROOT
from tests.e2e.pacs_scenario import PHI_STRINGS
from tests.integration.conftest import PACS_ONLY_KEY

pytestmark = pytest.mark.slow
INSTANCES = 120


def test_two_replicas_share_one_store(
    netns: str, model_root: Path, keys_file: Path, tmp_path: Path
) -> None:
    try:
        find_bindir()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    report_path = tmp_path / "report.json"
    command = [
        "ip", "netns", "exec", netns,
        sys.executable, "-m", "tests.e2e.replicas_scenario",
        "--workdir", str(tmp_path / "work"),
        "--model-root", str(model_root),
        "--keys-file", str(keys_file),
        "--pacs-key", PACS_ONLY_KEY,
        "--report", str(report_path),
        "--instances", str(INSTANCES),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRG_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    began = time.monotonic()
    run = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    elapsed = time.monotonic() - began
    assert report_path.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert "error" not in report, report["error"]
    failed = [check for check in report["checks"] if not check["ok"]]
    assert not failed, json.dumps(failed, indent=1)
    assert run.returncode == 0, run.stderr[-3000:]
    names = {check["name"] for check in report["checks"]}
    for phase in ("alternate", "sigkill", "pacs_down", "db_restart"):
        assert f"{phase}: every SR in Orthanc" in names
        assert f"{phase}: one study and one study SR per instance" in names
    assert report["counts"]["alternate"]["instances"] == INSTANCES
    assert report["counts"]["sigkill"]["leases_held_by_a_at_kill"] >= 1
    for log_path in report["gateway_logs"]:
        log = Path(log_path).read_text(errors="replace")
        for phi in PHI_STRINGS:
            assert phi not in log, f"patient data {phi!r} in {log_path}"
    print(f"replicas: {elapsed:.1f} s; {report['timings_s']}; {json.dumps(report['counts'])}")
