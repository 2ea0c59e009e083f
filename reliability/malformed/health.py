"""The gateway's health after the run: alive, ready, still grading, a clean log and bounded
peak memory."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from harness.gateway_stack import Stack, memory_kib
from reliability.malformed.materials import materials
from reliability.malformed.wire import GRADE, KEYS, PATIENT_MARKERS, bearer

MAX_PEAK_RSS_MB = 1024
"""Ceiling on the gateway's peak resident memory over the run. It idles near 150 MB and the
largest legal upload here is 1 MiB; a decoder that believes a size field (a PNG chunk declaring
2 GB costs 2 GB in OpenCV 5) shows up as a peak far above this."""


@dataclass(frozen=True)
class Health:
    """The gateway after the run (-1: no answer)."""

    running: bool
    livez: int
    readyz: int
    valid_grade: int
    internal_errors_logged: int
    patient_markers_logged: int
    peak_rss_mb: int

    @property
    def ok(self) -> bool:
        """Alive, ready, grading, a clean log and bounded memory."""
        return (
            self.running
            and (self.livez, self.readyz, self.valid_grade) == (200, 200, 200)
            and self.internal_errors_logged == 0
            and self.patient_markers_logged == 0
            and 0 < self.peak_rss_mb <= MAX_PEAK_RSS_MB
        )

    def describe(self) -> str:
        """One line for the report."""
        return (
            f"after the run: process running={self.running}, /livez {self.livez}, "
            f"/readyz {self.readyz}, valid image {self.valid_grade}, "
            f"internal_error log lines {self.internal_errors_logged}, "
            f"patient attributes in the log {self.patient_markers_logged}, "
            f"peak RSS {self.peak_rss_mb} MB (limit {MAX_PEAK_RSS_MB})"
        )


def _status(call: Callable[[], httpx.Response]) -> int:
    try:
        return call().status_code
    except httpx.TransportError:
        return -1


def peak_rss_mb(pid: int) -> int:
    """VmHWM of a live process in MB (-1 when it is gone)."""
    try:
        return memory_kib(pid, ("VmHWM",))["VmHWM"] // 1024
    except OSError:
        return -1


def health(stack: Stack) -> Health:
    """Probe the gateway, read its peak memory and its log."""
    url = stack.gateway.url
    headers = {**bearer(KEYS.grade), "Content-Type": "image/jpeg"}
    image = materials().images["jpeg"]
    log = stack.gateway.logs()
    internal = 0
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        internal += entry.get("error_code") == "internal_error"
    process = stack.gateway.process
    running = process is not None and process.poll() is None
    return Health(
        running=running,
        livez=_status(lambda: httpx.get(url + "/livez", timeout=10)),
        readyz=_status(lambda: httpx.get(url + "/readyz", timeout=10)),
        valid_grade=_status(
            lambda: httpx.post(url + GRADE, content=image, headers=headers, timeout=30)
        ),
        internal_errors_logged=internal,
        patient_markers_logged=sum(log.count(marker) for marker in PATIENT_MARKERS),
        peak_rss_mb=peak_rss_mb(process.pid) if process is not None and running else -1,
    )
