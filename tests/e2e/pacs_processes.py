"""The processes of the Orthanc scenarios (tests/e2e/pacs_scenario.py, replicas_scenario.py):
Orthanc from the shipped configuration and Lua script, and a gateway pushing to it, each a child
process of the driver (inside its network namespace) writing to a log file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from tests.e2e.waits import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
ORTHANC_HTTP_PORT = 8042
ORTHANC_DICOM_PORT = 4242
GATEWAY_PORT = 8080
ORTHANC_USER = "drg-gateway"
PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
STUDY_SETTLE_S = 1.0
"""How long a study's SR waits for more instances (short: the scenario sends whole studies)."""


class Child:
    """A child process (in this namespace) writing to a log file."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        """Start it (the log file is appended to across restarts)."""
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, cwd=REPO_ROOT, env=self.env, stdout=self._log, stderr=self._log
        )

    def alive(self) -> bool:
        """Still running."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, wait, SIGKILL if needed; return the exit code."""
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


class Orthanc:
    """Orthanc configured from pacs/orthanc/orthanc.json with test paths and ports."""

    def __init__(self, workdir: Path, password: str, api_key: str) -> None:
        config = json.loads((REPO_ROOT / "pacs/orthanc/orthanc.json").read_text())
        storage = workdir / "orthanc-storage"
        storage.mkdir(parents=True, exist_ok=True)
        config.update(
            {
                "StorageDirectory": str(storage),
                "IndexDirectory": str(storage),
                "HttpPort": ORTHANC_HTTP_PORT,
                "DicomPort": ORTHANC_DICOM_PORT,
                "Plugins": [str(PLUGIN)],
                "LuaScripts": [str(REPO_ROOT / "pacs/orthanc/drg-forward.lua")],
                "StableAge": 2,
            }
        )
        gateway = f"http://127.0.0.1:{GATEWAY_PORT}/dicomweb/"
        config["DicomWeb"]["Servers"]["drg-gateway"]["Url"] = gateway
        config["DrgGateway"]["Url"] = gateway + "studies"
        config["DrgGateway"]["RetryBaseSeconds"] = 1
        config_path = workdir / "orthanc.json"
        config_path.write_text(json.dumps(config, indent=2))
        # The shipped configuration reads its secrets from the environment (${...}).
        env = {**os.environ, "DRG_ORTHANC_PASSWORD": password, "DRG_API_KEY": api_key}
        self.child = Child(["Orthanc", str(config_path)], env, workdir / "orthanc.log")
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{ORTHANC_HTTP_PORT}",
            auth=(ORTHANC_USER, password),
            timeout=30,
        )

    def start(self) -> float:
        """Start and wait for the REST API; seconds taken."""
        began = time.monotonic()
        self.child.start()
        wait_for("Orthanc", lambda: self.child.alive() and self.http.get("/system").is_success, 60)
        return time.monotonic() - began

    def stop(self) -> None:
        """Stop Orthanc (its storage stays)."""
        self.child.stop()

    def upload(self, data: bytes) -> str:
        """Store an instance through the REST API (this fires the Lua script)."""
        response = self.http.post("/instances", content=data)
        response.raise_for_status()
        return str(response.json()["ID"])

    def study_id(self, study_uid: str) -> str | None:
        """Orthanc's id of a study."""
        found = self.http.post("/tools/lookup", content=study_uid).json()
        studies = [entry["ID"] for entry in found if entry["Type"] == "Study"]
        return studies[0] if studies else None

    def srs(self, study_uid: str) -> list[bytes]:
        """Every SR instance of a study, as Part 10 bytes."""
        study = self.study_id(study_uid)
        if study is None:
            return []
        files = []
        for series in self.http.get(f"/studies/{study}/series").json():
            if series["MainDicomTags"].get("Modality") == "SR":
                for instance in series["Instances"]:
                    files.append(self.http.get(f"/instances/{instance}/file").content)
        return files

    def series_id(self, study_uid: str, modality: str) -> str:
        """Orthanc's id of the (first) series of a modality in a study."""
        study = self.study_id(study_uid)
        for series in self.http.get(f"/studies/{study}/series").json():
            if series["MainDicomTags"].get("Modality") == modality:
                return str(series["ID"])
        raise LookupError(f"no {modality} series")


class Gateway:
    """The gateway with the local backend, the PACS intake on, pushing to Orthanc."""

    def __init__(self, workdir: Path, model_root: Path, keys_file: Path, password: str) -> None:
        password_file = workdir / "orthanc-password.txt"
        password_file.write_text(password + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRG_")}
        env.update(
            {
                "PYTHONPATH": str(REPO_ROOT),
                "DRG_BACKEND": "local",
                "DRG_MODEL_DIR": str(model_root),
                "DRG_API_KEYS_FILE": str(keys_file),
                "DRG_HOST": "127.0.0.1",
                "DRG_PORT": str(GATEWAY_PORT),
                "DRG_READINESS_CACHE_S": "0",
                "DRG_PACS_ENABLED": "true",
                "DRG_DATABASE_URL": f"sqlite:///{workdir / 'store' / 'drg.sqlite3'}",
                "DRG_PACS_STOW_URL": f"http://127.0.0.1:{ORTHANC_HTTP_PORT}/dicom-web",
                "DRG_PACS_AUTH": "basic",
                "DRG_PACS_USERNAME": ORTHANC_USER,
                "DRG_PACS_PASSWORD_FILE": str(password_file),
                "DRG_PACS_RETRY_INITIAL_S": "0.2",
                "DRG_PACS_RETRY_MAX_S": "1.5",
                "DRG_PACS_STUDY_SETTLE_S": str(STUDY_SETTLE_S),
            }
        )
        self.log_path = workdir / "gateway.log"
        self.child = Child([sys.executable, "-m", "gateway"], env, self.log_path)
        self.url = f"http://127.0.0.1:{GATEWAY_PORT}"

    def start(self) -> float:
        """Start and wait for /readyz; seconds taken."""
        began = time.monotonic()
        self.child.start()

        def ready() -> bool:
            if not self.child.alive():
                raise RuntimeError("gateway exited: " + self.log_path.read_text()[-2000:])
            return httpx.get(self.url + "/readyz", timeout=2).status_code == 200

        wait_for("gateway readiness", ready, 180)
        return time.monotonic() - began

    def stop(self) -> int | None:
        """SIGTERM (graceful: the lifespan stops the delivery worker)."""
        return self.child.stop()
