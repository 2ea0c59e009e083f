"""End-to-end PACS round trip, run INSIDE a network namespace that has only loopback.

    ip netns exec <ns> python -m tests.e2e.pacs_scenario --workdir W --model-root M \
        --keys-file K --grade-key G --pacs-key P --report R

Orthanc (listening on all interfaces, hence the namespace) runs with the DICOMweb plugin and
the shipped pacs/orthanc/orthanc.json + drg-forward.lua; the gateway runs with the local
backend beside it. Fixed ports are fine: nothing else lives in a fresh namespace.

1. Photographs uploaded to Orthanc's REST API are forwarded by the Lua script; their SRs
   appear in the same studies with the grade of the gateway's JSON (and of /v1/grade).
2. The same instance sent again (directly, and by Orthanc's own STOW-RS client) yields no
   second SR; a non-photograph is refused per instance (0x0122).
3. Orthanc stopped: an instance sent to the gateway stays pending through a gateway restart and
   its SR arrives once Orthanc is back.
4. Gateway stopped: what Orthanc received meanwhile is forwarded once the gateway is back.

Writes a JSON report; exits 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import pydicom

from synthetic import encode_dicom, synthesize_fundus, synthesize_non_fundus
from tests.e2e.dicom_sr import summarize, summarize_study
from tests.e2e.study_checks import StudyChecks
from tests.e2e.waits import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
ORTHANC_HTTP_PORT = 8042
ORTHANC_DICOM_PORT = 4242
GATEWAY_PORT = 8080
ORTHANC_USER = "drg-gateway"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
T = TypeVar("T")

SECOND_PATIENT = ("TESTPERSON^SECOND", "E2E0002", "19810203")
"""Name, ID and birth date of the second patient (the first uses encode_dicom's defaults)."""
PHI_STRINGS = (
    "SYNTHETIC^PATIENT",
    "SYNTHETIC",
    "SYN0001",
    "19700101",
    "SYNACC",
    "TESTPERSON",
    "E2E0002",
    "19810203",
)
"""Patient names, IDs, birth dates and accession numbers used here: never in gateway logs."""


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


class Scenario(StudyChecks):
    """The steps and their checks."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        password = "orthanc-" + os.urandom(8).hex()
        self.orthanc = Orthanc(workdir, password, args.pacs_key)
        self.gateway = Gateway(workdir, args.model_root, args.keys_file, password)
        self.pacs_http = httpx.Client(
            base_url=self.gateway.url, headers={"X-API-Key": args.pacs_key}, timeout=60
        )
        self.grade_http = httpx.Client(
            base_url=self.gateway.url,
            headers={"Authorization": f"Bearer {args.grade_key}"},
            timeout=60,
        )
        self.report: dict[str, Any] = {"checks": [], "timings_s": {}, "srs": {}}
        self.dciodvfy = shutil.which("dciodvfy")

    # -- bookkeeping ---------------------------------------------------------------------

    def check(self, name: str, ok: bool, detail: Any = None) -> bool:
        """Record one check."""
        self.report["checks"].append({"name": name, "ok": bool(ok), "detail": detail})
        return bool(ok)

    def timed(self, name: str, began: float) -> None:
        """Record how long a step took."""
        self.report["timings_s"][name] = round(time.monotonic() - began, 2)

    # -- helpers -------------------------------------------------------------------------

    def result(self, sop_uid: str) -> dict[str, Any]:
        """GET /v1/results/{uid} (200 expected) with the PACS's key: results are readable by
        the client that sent the instance (and by ``results:read`` keys), 404 for others."""
        response = self.pacs_http.get(f"/v1/results/{sop_uid}")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def stow(self, parts: list[bytes]) -> httpx.Response:
        """A multipart/related STOW-RS request straight to the gateway."""
        boundary = "e2e-" + os.urandom(6).hex()
        body = b"".join(
            b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n"
            for p in parts
        )
        body += b"--" + boundary.encode() + b"--\r\n"
        content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
        return self.pacs_http.post(
            "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
        )

    def wait_sr(self, source: bytes, timeout_s: float = 45) -> bytes:
        """The SR of ``source`` once it is in Orthanc."""
        ds = pydicom.dcmread(io.BytesIO(source))

        def probe() -> bytes | None:
            for data in self.orthanc.srs(str(ds.StudyInstanceUID)):
                sr = pydicom.dcmread(io.BytesIO(data))
                if str(ds.SOPInstanceUID) in summarize(sr)["images"]:
                    return data
            return None

        return wait_for("the SR in Orthanc", probe, timeout_s, every_s=0.3)

    def check_sr(self, name: str, source: bytes, sr_bytes: bytes) -> None:
        """The SR in Orthanc says what the gateway's JSON says, in the source's study."""
        src = pydicom.dcmread(io.BytesIO(source))
        sr = pydicom.dcmread(io.BytesIO(sr_bytes))
        # Orthanc holds the SR; the gateway marks it delivered right after Orthanc's answer.
        body = wait_for(
            "the delivered state",
            lambda: (
                (b := self.result(str(src.SOPInstanceUID)))["delivery"]["status"] == "delivered"
                and b
            ),
            10,
        )
        result = body["result"]
        study = summarize_study(sr)  # a one-photograph study: its one eye is the photograph
        (summary,) = study["eyes"].values()
        summary["images"] = study["images"]
        summary["algorithm_version"] = study["algorithm_version"]
        self.check(
            f"{name}: the eye's one photograph says the same",
            {k: summary.get(k) for k in ("grade", "gradable", "referable", "reasons")}
            == {
                k: summary["photographs"][0].get(k)
                for k in ("grade", "gradable", "referable", "reasons")
            },
        )
        self.report["srs"][name] = {
            "sr_sop_instance_uid": str(sr.SOPInstanceUID),
            "json_grade": result["grade"],
            "sr_grade": summary.get("grade"),
            "gradable": summary.get("gradable"),
            "reasons": summary["reasons"],
            "delivery": body["delivery"],
        }
        self.check(f"{name}: SR class", sr.SOPClassUID == COMPREHENSIVE_SR)
        self.check(f"{name}: same study", sr.StudyInstanceUID == src.StudyInstanceUID)
        self.check(f"{name}: new series", sr.SeriesInstanceUID != src.SeriesInstanceUID)
        self.check(
            f"{name}: same patient",
            (str(sr.PatientName), sr.PatientID) == (str(src.PatientName), src.PatientID),
        )
        self.check(f"{name}: references the source", str(src.SOPInstanceUID) in summary["images"])
        self.check(
            f"{name}: SR UID = JSON", str(sr.SOPInstanceUID) == body["sr"]["sop_instance_uid"]
        )
        self.check(
            f"{name}: gradable = JSON",
            summary.get("gradable") == result["quality"]["gradable"],
            [summary.get("gradable"), result["quality"]["gradable"]],
        )
        self.check(
            f"{name}: grade = JSON",
            summary.get("grade") == result["grade"],
            [summary.get("grade"), result["grade"]],
        )
        if result["quality"]["gradable"]:
            self.check(f"{name}: referable = JSON", summary.get("referable") == result["referable"])
        else:
            self.check(
                f"{name}: ungradable reasons listed",
                len(summary["reasons"]) == len(result["quality"]["reasons"]) > 0,
                summary["reasons"],
            )
        self.check(
            f"{name}: algorithm version",
            summary.get("algorithm_version") == str(body["model"]["version"]),
        )
        self.check(
            f"{name}: delivered", body["delivery"]["status"] == "delivered", body["delivery"]
        )
        self.dciodvfy_check(name, sr_bytes)

    def grade_direct(self, data: bytes) -> int | None:
        """The grade /v1/grade gives for the same bytes."""
        response = self.grade_http.post(
            "/v1/grade", content=data, headers={"Content-Type": "application/dicom"}
        )
        response.raise_for_status()
        grade: int | None = response.json()["grade"]
        return grade

    def metric(self, name: str) -> float:
        """One sample of the gateway's /metrics (sum over label sets)."""
        text = httpx.get(self.gateway.url + "/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def dciodvfy_check(self, name: str, data: bytes) -> None:
        """dciodvfy reports no error (when installed)."""
        if not self.dciodvfy:
            return
        with tempfile.NamedTemporaryFile(suffix=".dcm") as handle:
            handle.write(data)
            handle.flush()
            run = subprocess.run(
                [self.dciodvfy, handle.name], capture_output=True, text=True, check=False
            )
        errors = [
            line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")
        ]
        self.check(f"{name}: dciodvfy 0 errors", not errors, errors[:5])

    # -- the scenario ----------------------------------------------------------------------

    def run(self) -> None:
        """All phases; Orthanc and the gateway are stopped whatever happens."""
        try:
            self._run()
        finally:
            self.gateway.stop()
            self.orthanc.stop()

    def _run(self) -> None:
        photo = encode_dicom(synthesize_fundus(2, width=768, height=576, seed=11), seed=11)
        ungradable = encode_dicom(
            synthesize_non_fundus("document", width=640, height=480, seed=12),
            seed=12,
            laterality="L",
        )
        began = time.monotonic()
        self.report["timings_s"]["orthanc_start"] = round(self.orthanc.start(), 2)
        self.report["timings_s"]["gateway_start"] = round(self.gateway.start(), 2)

        # 1. Orthanc -> Lua -> gateway -> SR back in Orthanc.
        step = time.monotonic()
        self.orthanc.upload(photo)
        self.orthanc.upload(ungradable)
        sr_photo = self.wait_sr(photo)
        sr_ungradable = self.wait_sr(ungradable)
        self.timed("roundtrip_two_instances", step)
        self.check_sr("photo", photo, sr_photo)
        self.check_sr("ungradable", ungradable, sr_ungradable)
        json_grade = self.result(str(pydicom.dcmread(io.BytesIO(photo)).SOPInstanceUID))["result"][
            "grade"
        ]
        direct = self.grade_direct(photo)
        self.check(
            "photo: /v1/grade gives the same grade", direct == json_grade, [direct, json_grade]
        )

        anonymous = httpx.post(self.gateway.url + "/dicomweb/studies", content=photo, timeout=30)
        self.check("intake needs an API key", anonymous.status_code == 401, anonymous.status_code)
        wrong_scope = self.grade_http.post("/dicomweb/studies", content=photo)
        self.check("intake needs the pacs scope", wrong_scope.status_code == 403)
        unknown = self.grade_http.get("/v1/results/1.2.3.4.5.6")
        self.check("unknown result: 404", unknown.status_code == 404, unknown.status_code)
        photo_uid = str(pydicom.dcmread(io.BytesIO(photo)).SOPInstanceUID)
        foreign = self.grade_http.get(f"/v1/results/{photo_uid}")
        self.check(
            "another client's result: 404 like an unknown one",
            foreign.status_code == 404 and foreign.json() == unknown.json(),
            foreign.status_code,
        )

        # 2. Idempotency and per-instance refusal.
        response = self.stow([photo, sr_photo])
        body = response.json()
        failed = body.get("00081198", {}).get("Value", [])
        referenced = body.get("00081199", {}).get("Value", [])
        self.check("resend + SR: 202", response.status_code == 202, response.status_code)
        self.check(
            "resend + SR: media type",
            response.headers["content-type"].startswith("application/dicom+json"),
        )
        self.check("resend + SR: photo referenced", len(referenced) == 1)
        self.check(
            "resend + SR: SR refused with 0x0122",
            len(failed) == 1 and failed[0]["00081197"]["Value"] == [0x0122],
            failed,
        )
        photo_uid = str(pydicom.dcmread(io.BytesIO(photo)).StudyInstanceUID)
        series = self.orthanc.series_id(photo_uid, "OP")
        job = self.orthanc.http.post(
            "/dicom-web/servers/drg-gateway/stow",
            json={"Resources": [series], "Synchronous": True},
        )
        self.check("Orthanc STOW-RS client re-send accepted", job.is_success, job.status_code)
        time.sleep(1.5)
        srs = self.orthanc.srs(photo_uid)
        self.check("resends: still exactly one SR", len(srs) == 1, len(srs))
        duplicates = self.metric('drg_pacs_instances_total{outcome="duplicate"}')
        self.check("resends counted as duplicates", duplicates >= 2, duplicates)

        # 3. PACS outage and a gateway restart: nothing is lost.
        step = time.monotonic()
        self.orthanc.stop()
        second = encode_dicom(
            synthesize_fundus(3, width=768, height=576, seed=13, laterality="L"),
            seed=13,
            laterality="L",
            patient_name=SECOND_PATIENT[0],
            patient_id=SECOND_PATIENT[1],
            patient_birth_date=SECOND_PATIENT[2],
        )
        second_uid = str(pydicom.dcmread(io.BytesIO(second)).SOPInstanceUID)
        # Raw body with the Content-Type Orthanc's Lua HttpPost would send by default.
        response = self.pacs_http.post(
            "/dicomweb/studies",
            content=second,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        self.check(
            "outage: intake still accepts", response.status_code == 200, response.status_code
        )
        pending = wait_for(
            "a failed delivery attempt",
            lambda: (d := self.result(second_uid)["delivery"])["attempts"] >= 1 and d,
            20,
        )
        self.check(
            "outage: result pending with an error",
            pending["status"] == "pending" and pending["last_error"],
            pending,
        )
        self.check("outage: pending gauge", self.metric("drg_pacs_outbox_pending") >= 1)
        code = self.gateway.stop()
        self.check("gateway stops cleanly (exit 0 after the drain)", code == 0, code)
        self.report["timings_s"]["gateway_restart"] = round(self.gateway.start(), 2)
        after = self.result(second_uid)["delivery"]
        self.check("restart: result still pending", after["status"] == "pending", after)
        self.orthanc.start()
        sr_second = self.wait_sr(second)
        self.timed("outage_recovery", step)
        self.check_sr("after outage", second, sr_second)

        # 4. Gateway down while Orthanc receives: the Lua script retries later.
        step = time.monotonic()
        self.gateway.stop()
        third = encode_dicom(
            synthesize_fundus(1, width=640, height=480, seed=14), seed=14, sop_class="sc"
        )
        fourth = encode_dicom(
            synthesize_fundus(4, width=640, height=480, seed=15),
            seed=15,
            transfer_syntax="jpeg_baseline",
        )
        self.orthanc.upload(third)
        self.gateway.start()
        self.orthanc.upload(fourth)
        sr_third = self.wait_sr(third)
        sr_fourth = self.wait_sr(fourth)
        self.timed("gateway_outage_recovery", step)
        self.check_sr("secondary capture (forwarded late)", third, sr_third)
        self.check_sr("jpeg baseline", fourth, sr_fourth)

        self.study_phase()

        self.check(
            "outbox drained",
            wait_for(
                "empty outbox", lambda: self.metric("drg_pacs_outbox_pending") == 0 or None, 10
            ),
        )
        self.report["timings_s"]["total"] = round(time.monotonic() - began, 2)


def main(argv: list[str] | None = None) -> int:
    """Run the scenario; write the report; 0 when every check passed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--model-root", type=Path, required=True)
    parser.add_argument("--keys-file", type=Path, required=True)
    parser.add_argument("--grade-key", required=True)
    parser.add_argument("--pacs-key", required=True)
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    scenario = Scenario(args, args.workdir)
    try:
        scenario.run()
    except Exception:
        scenario.report["error"] = traceback.format_exc()
    report = scenario.report
    report["ok"] = "error" not in report and all(c["ok"] for c in report["checks"])
    report["gateway_log"] = str(scenario.gateway.log_path)
    report["phi_strings"] = list(PHI_STRINGS)
    args.report.write_text(json.dumps(report, indent=2, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
