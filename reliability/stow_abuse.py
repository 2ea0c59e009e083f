"""Hostile STOW-RS traffic against a real gateway (issue 14 finding 4): what it costs the gateway.

    python -m reliability.stow_abuse --model-root /tmp/drg-tiny/export [--json out.json]

Starts the TF Serving stand-in and a lean gateway with the PACS intake on
(``harness.gateway_stack``) and measures, one scenario after the other:

- ``tiny_parts``: one multipart/related request of 50,000 one-byte parts (4.0 MB; the review
  sent 3.4 MB): wall time, HTTP status, response size, gateway log lines it caused (not
  counting the access lines of the /livez polls), and the worst ``/livez`` latency seen while
  it ran (polled every 50 ms; the liveness probe's view).
- ``zeros``: 80 MiB of zeros as one raw application/dicom instance: gateway CPU seconds
  (utime + stime of the process), wall time, status, worst ``/livez``.
- ``concurrent``: an unrelated ``POST /v1/grade`` (a 1200 x 900 fundus JPEG) alone (median of 3),
  then started 0.5 s after six concurrent 16 MiB zero STOW-RS bodies: its latency.

Only settings that every gateway version knows are set (so the same bench runs against the
code before a change, e.g. from a ``git worktree`` of the previous commit). Prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from gateway.auth import hash_key
from harness.gateway_stack import Stack, fundus_jpeg, running_stack

KEY = "stow-abuse-key"
HEADERS = {"X-API-Key": KEY}
MIB = 1024 * 1024


def cpu_s(pid: int) -> float:
    """utime + stime of a process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


def log_lines(stack: Stack) -> int:
    """Gateway log lines so far, without the access lines of the bench's own /livez polls."""
    return sum('"route":"/livez"' not in line for line in stack.gateway.logs().splitlines())


class LivezWatch:
    """Polls /livez every 50 ms in a thread; the worst latency (a timeout counts as its limit)."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self._url = url + "/livez"
        self._timeout_s = timeout_s
        self._stop = threading.Event()
        self.worst_s = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout_s) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                with contextlib.suppress(httpx.HTTPError):
                    client.get(self._url)
                self.worst_s = max(self.worst_s, time.monotonic() - started)
                self._stop.wait(0.05)

    def __enter__(self) -> LivezWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def multipart(parts: list[bytes]) -> tuple[bytes, str]:
    boundary = "abuse-" + uuid.uuid4().hex
    delimiter = b"--" + boundary.encode()
    head = delimiter + b"\r\nContent-Type: application/dicom\r\n\r\n"
    body = b"".join(head + part + b"\r\n" for part in parts) + delimiter + b"--\r\n"
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def stow(stack: Stack, body: bytes, content_type: str) -> httpx.Response:
    return httpx.post(
        stack.gateway.url + "/dicomweb/studies",
        content=body,
        headers={**HEADERS, "Content-Type": content_type},
        timeout=600,
    )


def measured(stack: Stack, call: Callable[[], httpx.Response]) -> dict[str, Any]:
    """Run ``call`` while watching /livez, the gateway's CPU and its log."""
    pid = stack.gateway_pid
    lines, cpu = log_lines(stack), cpu_s(pid)
    with LivezWatch(stack.gateway.url) as watch:
        started = time.monotonic()
        response = call()
        wall = time.monotonic() - started
    time.sleep(0.5)  # let the log flush
    return {
        "status": response.status_code,
        "wall_s": round(wall, 2),
        "gateway_cpu_s": round(cpu_s(pid) - cpu, 2),
        "livez_worst_s": round(watch.worst_s, 2),
        "response_bytes": len(response.content),
        "log_lines": log_lines(stack) - lines,
    }


def tiny_parts(stack: Stack, count: int = 50_000) -> dict[str, Any]:
    body, content_type = multipart([b"x"] * count)
    result = measured(stack, lambda: stow(stack, body, content_type))
    return {"parts": count, "body_bytes": len(body), **result}


def zeros(stack: Stack, size: int = 80 * MIB) -> dict[str, Any]:
    body = bytes(size)
    return {"body_bytes": size, **measured(stack, lambda: stow(stack, body, "application/dicom"))}


def grade_s(stack: Stack, image: bytes) -> float:
    started = time.monotonic()
    response = httpx.post(stack.grade_url, files={"image": image}, headers=HEADERS, timeout=600)
    if response.status_code != 200:
        raise RuntimeError(f"grading failed: {response.status_code} {response.text[:200]}")
    return time.monotonic() - started


def concurrent(stack: Stack, bodies: int = 6, size: int = 16 * MIB) -> dict[str, Any]:
    image = fundus_jpeg()
    grade_s(stack, image)  # warm
    alone = statistics.median(grade_s(stack, image) for _ in range(3))
    body = bytes(size)
    statuses: list[int] = []

    def send() -> None:
        statuses.append(stow(stack, body, "application/dicom").status_code)

    threads = [threading.Thread(target=send) for _ in range(bodies)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    during = grade_s(stack, image)
    for thread in threads:
        thread.join()
    return {
        "bodies": bodies,
        "body_bytes": size,
        "grade_alone_s": round(alone, 3),
        "grade_during_s": round(during, 3),
        "stow_statuses": sorted(statuses),
        "stow_all_done_s": round(time.monotonic() - started, 2),
    }


def run(model_root: Path, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    keys = workdir / "keys.txt"
    keys.write_text(f"abuse {hash_key(KEY)} grade,pacs\n")
    options = {
        "keys_file": keys,
        "pacs_enabled": "true",
        "database_url": f"sqlite:///{workdir / 'drg.sqlite3'}",
    }
    with running_stack(model_root, workdir, **options) as stack:
        return {
            "tiny_parts": tiny_parts(stack),
            "zeros": zeros(stack),
            "concurrent": concurrent(stack),
        }


def table(report: dict[str, Any]) -> str:
    tiny, zero, conc = report["tiny_parts"], report["zeros"], report["concurrent"]
    rows = [
        ("50,000 tiny parts: status", tiny["status"]),
        ("  wall time (s)", tiny["wall_s"]),
        ("  worst /livez (s)", tiny["livez_worst_s"]),
        ("  response (bytes)", tiny["response_bytes"]),
        ("  gateway log lines", tiny["log_lines"]),
        ("  gateway CPU (s)", tiny["gateway_cpu_s"]),
        ("80 MiB zeros: status", zero["status"]),
        ("  gateway CPU (s)", zero["gateway_cpu_s"]),
        ("  wall time (s)", zero["wall_s"]),
        ("  worst /livez (s)", zero["livez_worst_s"]),
        ("grading alone, median of 3 (s)", conc["grade_alone_s"]),
        (f"grading during {conc['bodies']} x 16 MiB STOW (s)", conc["grade_during_s"]),
        ("  STOW statuses", ",".join(map(str, conc["stow_statuses"]))),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-root", type=Path, required=True, help="<root>/dr_grader/<v>")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the report here too")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="stow-abuse-"))
    report = run(args.model_root, workdir)
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
