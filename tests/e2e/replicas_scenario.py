"""Two gateway replicas sharing one PostgreSQL and one Orthanc, run INSIDE a loopback-only netns.

    ip netns exec <ns> python -m tests.e2e.replicas_scenario --workdir W --model-root M \
        --keys-file K --pacs-key P --report R [--instances N]

Instances go straight to the gateways' STOW-RS (Orthanc holds only the SRs, so its instance
count is the number of SRs). Each instance is its own study (encode_dicom derives the Study
Instance UID from the seed), so each gets its own study SR (settle 0 s), and
``GET /v1/results/{uid}`` shows that study SR under ``sr``. Phases, each with its checks in the JSON report:

1. ``alternate``: N instances sent alternately to both replicas -> N SRs in Orthanc, N
   "delivered" answers counted by the two replicas together (no SR sent twice), every result
   readable from both replicas.
2. ``sigkill``: Orthanc frozen (SIGSTOP: connections hang), a batch sent to replica A, A
   SIGKILLed while it holds a lease, Orthanc thawed -> replica B delivers the whole batch.
3. ``pacs_down``: Orthanc stopped, a batch sent -> all pending; Orthanc back -> all delivered.
4. ``db_restart``: PostgreSQL stopped and started again under a steady STOW-RS load on both
   replicas -> 503 ``store_unavailable`` while it is down, 200s after, and every instance a
   200 reported stored has a result and its SR in Orthanc (0 accepted-but-lost).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pydicom

from harness.postgres import PostgresServer
from harness.processes import free_port
from synthetic import encode_dicom, synthesize_fundus
from tests.e2e.pacs_processes import ORTHANC_HTTP_PORT, ORTHANC_USER, REPO_ROOT, Child, Orthanc
from tests.e2e.waits import wait_for

LEASE_S = 6
PACS_TIMEOUT_S = 4
PACE_S = 0.1
"""Pause between one load client's requests (4 clients: about 30 requests/s in all)."""


def instance(seed: int) -> bytes:
    """A small synthetic OP photograph with its own UIDs."""
    image = synthesize_fundus(seed % 5, width=256, height=192, seed=seed)
    return encode_dicom(image, seed=seed, laterality="R" if seed % 2 else "L")


def sop_uid(data: bytes) -> str:
    """The SOP Instance UID of a Part 10 instance."""
    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)


class Replica:
    """One gateway process: local backend, PACS intake on, the shared PostgreSQL store."""

    def __init__(self, name: str, workdir: Path, args: argparse.Namespace, env: dict[str, str]):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"gateway-{name}.log"
        self.child = Child(
            [sys.executable, "-m", "gateway"], {**env, "DRG_PORT": str(self.port)}, self.log_path
        )
        self.http = httpx.Client(
            base_url=self.url, headers={"X-API-Key": args.pacs_key}, timeout=60
        )

    def start(self) -> None:
        self.child.start()

        def ready() -> bool:
            if not self.child.alive():
                raise RuntimeError(
                    f"gateway {self.name} exited: " + self.log_path.read_text()[-2000:]
                )
            return httpx.get(self.url + "/readyz", timeout=2).status_code == 200

        wait_for(f"gateway {self.name}", ready, 180)

    def kill(self) -> None:
        assert self.child.process is not None
        self.child.process.send_signal(signal.SIGKILL)
        self.child.process.wait()
        self.child.stop()

    @property
    def pid(self) -> int:
        assert self.child.process is not None
        return self.child.process.pid

    def stow(self, parts: list[bytes]) -> httpx.Response:
        boundary = "replicas-" + os.urandom(6).hex()
        body = (
            b"".join(
                b"--"
                + boundary.encode()
                + b"\r\nContent-Type: application/dicom\r\n\r\n"
                + p
                + b"\r\n"
                for p in parts
            )
            + b"--"
            + boundary.encode()
            + b"--\r\n"
        )
        content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
        return self.http.post(
            "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
        )

    def result(self, uid: str) -> dict[str, Any] | None:
        response = self.http.get(f"/v1/results/{uid}")
        return response.json() if response.status_code == 200 else None

    def metric(self, name: str, labels: str = "") -> float:
        text = httpx.get(self.url + "/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + labels) and not line.startswith("#")
        )


class Scenario:
    """The four phases and their checks."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        work: Path = args.workdir
        password = "orthanc-" + os.urandom(8).hex()
        (work / "orthanc-password").write_text(password)
        self.orthanc = Orthanc(work, password, args.pacs_key)
        self.postgres = PostgresServer()
        self.report: dict[str, Any] = {"checks": [], "timings_s": {}, "counts": {}}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DRG_")}
        self.env.update(
            {
                "PYTHONPATH": str(REPO_ROOT),
                "DRG_BACKEND": "local",
                "DRG_MODEL_DIR": str(args.model_root),
                "DRG_API_KEYS_FILE": str(args.keys_file),
                "DRG_HOST": "127.0.0.1",
                "DRG_READINESS_CACHE_S": "0",
                "DRG_PACS_ENABLED": "true",
                "DRG_PACS_STOW_URL": f"http://127.0.0.1:{ORTHANC_HTTP_PORT}/dicom-web",
                "DRG_PACS_AUTH": "basic",
                "DRG_PACS_USERNAME": ORTHANC_USER,
                "DRG_PACS_PASSWORD_FILE": str(work / "orthanc-password"),
                "DRG_PACS_RETRY_INITIAL_S": "0.2",
                "DRG_PACS_RETRY_MAX_S": "1.5",
                "DRG_PACS_TIMEOUT_S": str(PACS_TIMEOUT_S),
                "DRG_PACS_LEASE_S": str(LEASE_S),
                "DRG_PACS_POLL_S": "1",
                "DRG_PACS_STUDY_SETTLE_S": "0",
            }
        )
        self.a = Replica("a", work, args, self.env)
        self.b = Replica("b", work, args, self.env)
        self.seed = 1000

    def check(self, name: str, ok: bool, detail: Any = None) -> None:
        self.report["checks"].append({"name": name, "ok": bool(ok), "detail": detail})

    def batch(self, count: int) -> list[bytes]:
        self.seed += count
        return [instance(self.seed - count + i) for i in range(count)]

    def orthanc_count(self) -> int:
        return int(self.orthanc.http.get("/statistics").json()["CountInstances"])

    def sr_in_orthanc(self, sr_uid: str) -> bool:
        found = self.orthanc.http.post("/tools/lookup", content=sr_uid).json()
        return any(entry["Type"] == "Instance" for entry in found)

    def wait_delivered(self, uids: list[str], replica: Replica, timeout_s: float) -> list[str]:
        """Wait until every result says delivered; return the UIDs that never got there."""
        deadline = time.monotonic() + timeout_s
        left = list(uids)
        while left and time.monotonic() < deadline:
            left = [
                u
                for u in left
                if (replica.result(u) or {}).get("delivery", {}).get("status") != "delivered"
            ]
            if left:
                time.sleep(0.5)
        return left

    def delivered_everywhere(self, phase: str, uids: list[str], readers: list[Replica]) -> None:
        """Every result readable from every replica; each instance's study SR (its own study)
        in Orthanc, one SR per study, and GET /v1/studies naming the same SR."""
        missing = [u for u in uids if not all(r.result(u) for r in readers)]
        self.check(f"{phase}: every result readable from every replica", not missing, missing[:5])
        results = [readers[0].result(u) or {} for u in uids]
        srs = [r.get("sr", {}).get("sop_instance_uid") for r in results]
        absent = [u for u, s in zip(uids, srs, strict=True) if not s or not self.sr_in_orthanc(s)]
        self.check(f"{phase}: every SR in Orthanc", not absent, absent[:5])
        studies = {r.get("study_instance_uid") for r in results}
        self.check(
            f"{phase}: one study and one study SR per instance",
            len(studies) == len(set(srs)) == len(uids),
            [len(studies), len(set(srs)), len(uids)],
        )
        for uid, result in list(zip(uids, results, strict=True))[:3]:
            study = readers[-1].http.get(f"/v1/studies/{result.get('study_instance_uid')}")
            body = study.json() if study.status_code == 200 else {}
            self.check(
                f"{phase}: GET /v1/studies names the result's SR",
                body.get("sr", {}).get("sop_instance_uid") == result["sr"]["sop_instance_uid"]
                and [i["sop_instance_uid"] for i in body.get("instances", [])] == [uid],
                [study.status_code, body.get("sr"), result.get("sr")],
            )

    def run(self) -> None:
        began = time.monotonic()
        self.postgres.start()
        self.env["DRG_DATABASE_URL"] = self.postgres.settings_url()
        self.env["DRG_DATABASE_PASSWORD_FILE"] = str(self.postgres.password_file)
        for replica in (self.a, self.b):
            replica.child.env.update(self.env)
        migrate = subprocess.run(
            [sys.executable, "-m", "gateway.store", "upgrade"],
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        self.check("migration job: upgrade exit 0", migrate.returncode == 0, migrate.stderr[-500:])
        self.check(
            "migration job: no password in its output",
            self.postgres.password not in migrate.stdout + migrate.stderr,
        )
        self.orthanc.start()
        self.a.start()
        self.b.start()
        self.report["timings_s"]["startup"] = round(time.monotonic() - began, 1)
        for phase in (self.alternate, self.sigkill, self.pacs_down, self.db_restart):
            started = time.monotonic()
            phase()
            self.report["timings_s"][phase.__name__] = round(time.monotonic() - started, 1)

    def alternate(self) -> None:
        parts = self.batch(self.args.instances)
        uids = [sop_uid(p) for p in parts]
        statuses = [
            (self.a if i % 2 == 0 else self.b).stow(parts[i : i + 4]).status_code
            for i in range(0, len(parts), 4)
        ]
        self.check("alternate: every STOW-RS request 200", set(statuses) == {200}, statuses)
        left = self.wait_delivered(uids, self.b, 120)
        self.check("alternate: all delivered", not left, len(left))
        self.delivered_everywhere("alternate", uids, [self.a, self.b])
        sent = sum(
            r.metric("drg_pacs_deliveries_total", '{result="delivered"}') for r in (self.a, self.b)
        )
        self.report["counts"]["alternate"] = {
            "instances": len(uids),
            "delivered_calls": sent,
            "orthanc": self.orthanc_count(),
        }
        self.check(
            "alternate: each SR sent exactly once (delivered calls = instances)",
            sent == len(uids),
            sent,
        )
        self.check(
            "alternate: Orthanc holds one SR per instance", self.orthanc_count() == len(uids)
        )

    def leases_of(self, replica: Replica) -> int:
        with psycopg.connect(self.postgres.url.replace("postgresql+psycopg", "postgresql")) as conn:
            row = conn.execute(
                "SELECT count(*) FROM studies WHERE status = 'pending' AND lease_owner LIKE %s",
                (f"%:{replica.pid}:%",),
            ).fetchone()
        return int(row[0]) if row else 0

    def sigkill(self) -> None:
        before = self.orthanc_count()
        assert self.orthanc.child.process is not None
        self.orthanc.child.process.send_signal(signal.SIGSTOP)
        try:
            parts = self.batch(12)
            uids = [sop_uid(p) for p in parts]
            status = self.a.stow(parts).status_code
            self.check("sigkill: batch stored by A", status == 200, status)
            held = wait_for("a lease held by A", lambda: self.leases_of(self.a) or None, 20)
            self.a.kill()
            self.report["counts"]["sigkill"] = {"leases_held_by_a_at_kill": held}
        finally:
            self.orthanc.child.process.send_signal(signal.SIGCONT)
        left = self.wait_delivered(uids, self.b, 90)
        self.check("sigkill: B delivered A's whole batch, 0 lost", not left, len(left))
        self.delivered_everywhere("sigkill", uids, [self.b])
        self.check("sigkill: one SR per instance", self.orthanc_count() == before + len(uids))
        self.a.start()

    def pacs_down(self) -> None:
        before = self.orthanc_count()
        self.orthanc.stop()
        parts = self.batch(10)
        uids = [sop_uid(p) for p in parts]
        statuses = [self.a.stow(parts[:5]).status_code, self.b.stow(parts[5:]).status_code]
        self.check("pacs_down: intake goes on (200)", statuses == [200, 200], statuses)
        time.sleep(3)
        pending = [(self.b.result(u) or {}).get("delivery", {}).get("status") for u in uids]
        self.check(
            "pacs_down: all pending while the PACS is down", set(pending) == {"pending"}, pending
        )
        self.orthanc.start()
        left = self.wait_delivered(uids, self.a, 90)
        self.check("pacs_down: all delivered after", not left, len(left))
        self.delivered_everywhere("pacs_down", uids, [self.a, self.b])
        self.check("pacs_down: one SR per instance", self.orthanc_count() == before + len(uids))

    def db_restart(self) -> None:
        accepted: list[str] = []
        answers: dict[str, int] = {}
        lock = threading.Lock()
        stop = threading.Event()
        seeds = iter(range(self.seed, self.seed + 100_000))

        def client(replica: Replica) -> None:
            while not stop.is_set():
                with lock:
                    seed = next(seeds)
                part = instance(seed)
                time.sleep(PACE_S)
                try:
                    response = replica.stow([part])
                except httpx.HTTPError as error:
                    key = type(error).__name__
                else:
                    key = str(response.status_code)
                    if response.status_code == 503:
                        key += ":" + (
                            "store_unavailable"
                            if b"store_unavailable" in response.content
                            else "other"
                        )
                        key += ":retry-after" if "retry-after" in response.headers else ""
                    if response.status_code == 200:
                        with lock:
                            accepted.append(sop_uid(part))
                with lock:
                    answers[key] = answers.get(key, 0) + 1

        threads = [
            threading.Thread(target=client, args=(r,)) for r in (self.a, self.b) for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        time.sleep(4)
        before_outage = len(accepted)
        self.postgres.stop()
        time.sleep(4)
        self.postgres.start()
        accepted_at_restart = len(accepted)
        time.sleep(6)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        self.report["counts"]["db_restart"] = {
            "answers": answers,
            "accepted": len(accepted),
            "accepted_before_outage": before_outage,
        }
        self.check(
            "db_restart: 503 store_unavailable with Retry-After during the outage",
            answers.get("503:store_unavailable:retry-after", 0) > 0,
            answers,
        )
        unexpected = {
            k: v
            for k, v in answers.items()
            if k not in ("200", "503:store_unavailable:retry-after")
        }
        self.check(
            "db_restart: no other answer than 200 or 503 store_unavailable",
            not unexpected,
            unexpected,
        )
        after_restart = len(accepted) - accepted_at_restart
        self.report["counts"]["db_restart"]["accepted_after_restart"] = after_restart
        self.check(
            "db_restart: recovery (200s after the restart)", after_restart >= 10, after_restart
        )
        left = self.wait_delivered(accepted, self.b, 120)
        self.check("db_restart: 0 accepted-but-lost (every 200 delivered)", not left, len(left))
        self.delivered_everywhere("db_restart", accepted, [self.a, self.b])

    def close(self) -> None:
        for replica in (self.a, self.b):
            replica.child.stop()
        self.orthanc.stop()
        self.postgres.close()


def main(argv: list[str] | None = None) -> int:
    """Run the scenario; write the report; 0 when every check passed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--model-root", type=Path, required=True)
    parser.add_argument("--keys-file", type=Path, required=True)
    parser.add_argument("--pacs-key", required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--instances", type=int, default=120)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    scenario = Scenario(args)
    try:
        scenario.run()
    except Exception:
        scenario.report["error"] = traceback.format_exc()
    finally:
        scenario.close()
    report = scenario.report
    report["ok"] = "error" not in report and all(c["ok"] for c in report["checks"])
    report["gateway_logs"] = [str(scenario.a.log_path), str(scenario.b.log_path)]
    args.report.write_text(json.dumps(report, indent=2, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
