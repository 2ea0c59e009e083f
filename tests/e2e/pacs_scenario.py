"""End-to-end PACS round trip, run INSIDE a network namespace that has only loopback.

    ip netns exec <ns> python -m tests.e2e.pacs_scenario --workdir W --model-root M \
        --keys-file K --grade-key G --pacs-key P --report R

Orthanc (listening on all interfaces, hence the namespace) runs with the DICOMweb plugin and
the shipped pacs/orthanc/orthanc.json + drg-forward.lua; the gateway runs with the local
backend beside it. Fixed ports are fine: nothing else lives in a fresh namespace.

Every study gets one study SR (gateway/pacs/study_sr.py), read back by tests/e2e/dicom_sr.py;
the gateway runs with a 1 s study settle (pacs_processes.STUDY_SETTLE_S).

1. Photographs uploaded to Orthanc's REST API are forwarded by the Lua script; their study SRs
   appear in the same studies with the grade of the gateway's JSON (and of /v1/grade).
2. The same instance sent again (directly, and by Orthanc's own STOW-RS client) yields no
   second SR; a non-photograph is refused per instance (0x0122).
3. Orthanc stopped: an instance sent to the gateway stays pending through a gateway restart and
   its SR arrives once Orthanc is back.
4. Gateway stopped: what Orthanc received meanwhile is forwarded once the gateway is back.
5. A study of 2 left + 2 right photographs (tests/e2e/study_checks.py): exactly one study SR in
   Orthanc, saying what POST /v1/exams says on the same files; a fifth photograph later: a new
   study SR naming the first in its Predecessor Documents Sequence.

Writes a JSON report; exits 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import httpx
import pydicom

from synthetic import encode_dicom, synthesize_fundus, synthesize_non_fundus
from tests.e2e.dicom_sr import summarize, summarize_study
from tests.e2e.pacs_processes import Gateway, Orthanc
from tests.e2e.study_checks import StudyChecks
from tests.e2e.waits import wait_for

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"

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
