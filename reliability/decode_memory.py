"""Peak memory of the gateway for small hostile images (issue 14, finding 2).

    python -m reliability.decode_memory [--model-root ROOT] [--only NAME ...]
    python -m reliability.decode_memory --opencv-flags

Starts the TF Serving stand-in (``ROOT``, default ``$TEST_TINY_EXPORT`` or /tmp/drg-tiny/export)
and the lean gateway exactly as the pod runs it (harness/gateway_stack.py), then for each case
resets the gateway's peak RSS (``/proc/PID/clear_refs`` 5), sends the case and reads VmHWM from
``/proc/PID/status``. Prints one row per case: statuses, error codes, idle and peak RSS (MiB).
Gateway settings: ``FIELDS`` below.
The same command measured the code before and after the fix (docs/security-review.md).

``--opencv-flags`` instead measures OpenCV's own decode of the review's PNG (and a large TIFF)
with each imread flag, one fresh process each (peak RSS growth): does ``IMREAD_REDUCED_*`` decode
a large PNG or TIFF at reduced size, or decode it whole and then shrink it?
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.gateway_stack import AUTH, Stack, fundus_jpeg, memory_kib, running_stack
from harness.processes import TFServingProcess, free_port
from reliability.hostile_images import TiffPage, png, tiff

FIELDS = {"request_timeout_s": "120", "shutdown_grace_s": "125"}
"""Gateway settings of the bench (production defaults otherwise): on 2 shared cores the code
before the fix needed more than the default 30 s for the exam, and a timed-out request's decode
threads keep running, so its peak would be read before it happens. The drain stays longer
than the request timeout, as the settings require."""

SIDE = 7000
"""49 M pixels: just under the pixel limit DRG_MAX_IMAGE_PIXELS (50 M), as in the review."""


@dataclass(frozen=True)
class Upload:
    """One request: a raw image to /v1/grade, or a two-eye exam to /v1/exams."""

    data: bytes
    content_type: str = "image/png"
    exam: bool = False

    def send(self, client: httpx.Client, base_url: str) -> tuple[int, str]:
        """Status and error code (``-`` for a success)."""
        if self.exam:
            files = {
                "left": ("left", self.data, self.content_type),
                "right": ("right", self.data, self.content_type),
            }
            response = client.post(base_url + "/v1/exams", files=files, headers=AUTH)
        else:
            headers = {**AUTH, "Content-Type": self.content_type}
            response = client.post(base_url + "/v1/grade", content=self.data, headers=headers)
        code = "-"
        if response.status_code >= 400:
            try:
                code = str(response.json()["error"]["code"])
            except (ValueError, KeyError, TypeError):
                code = "?"
        return response.status_code, code


@dataclass(frozen=True)
class Case:
    """Uploads sent at once (one thread each)."""

    name: str
    uploads: tuple[Upload, ...]


def hostile_corpus() -> dict[str, bytes]:
    """The review's 16-bit RGBA PNG, the largest images still admitted, and TIFFs that decode
    to hundreds of MB (a few 100 kB each)."""
    return {
        "png16_rgba": png(SIDE, SIDE, channels=4, bits=16),
        "png_rgb8": png(SIDE, SIDE, channels=3, bits=8),
        "png16_rgba_4000": png(4000, 4000, channels=4, bits=16),
        "tiff_deflate_rgb8": tiff(TiffPage(SIDE, SIDE, channels=3, bits=8)),
        "tiff16_gray": tiff(TiffPage(SIDE, SIDE, channels=1, bits=16)),
        "tiff16_rgb_tiled_2pages": tiff(
            TiffPage(SIDE, SIDE, channels=3, bits=16, tile=(512, 512)), TiffPage(64, 64)
        ),
    }


def cases(corpus: dict[str, bytes]) -> list[Case]:
    """The review's three cases, then the largest admitted PNG and TIFFs, alone, two at once
    and as an exam, and a normal photograph."""
    hostile = Upload(corpus["png16_rgba"])
    png8 = Upload(corpus["png_rgb8"])
    tiff8 = Upload(corpus["tiff_deflate_rgb8"], "image/tiff")
    return [
        Case("jpeg_photo_1200x900", (Upload(fundus_jpeg(), "image/jpeg"),)),
        Case("png16_rgba_7000", (hostile,)),
        Case("png16_rgba_7000_x2_concurrent", (hostile, hostile)),
        Case("exam_png16_rgba_7000_both_eyes", (Upload(hostile.data, exam=True),)),
        Case("png_rgb8_7000", (png8,)),
        Case("png_rgb8_7000_x2_concurrent", (png8, png8)),
        Case("exam_png16_rgba_4000_both_eyes", (Upload(corpus["png16_rgba_4000"], exam=True),)),
        Case("tiff_deflate_rgb8_7000", (tiff8,)),
        Case("tiff_deflate_rgb8_7000_x2_concurrent", (tiff8, tiff8)),
        Case("exam_tiff_deflate_rgb8_7000_both_eyes", (Upload(tiff8.data, "image/tiff", True),)),
        Case("tiff16_gray_7000", (Upload(corpus["tiff16_gray"], "image/tiff"),)),
        Case(
            "tiff16_rgb_tiled_2pages_7000",
            (Upload(corpus["tiff16_rgb_tiled_2pages"], "image/tiff"),),
        ),
        corpus_at_once(corpus),
    ]


def corpus_at_once(corpus: dict[str, bytes]) -> Case:
    """Everything at once (tests/reliability/test_decode_memory.py): the review's PNG twice and
    as both eyes of an exam, the 16-bit tiled TIFF, the deflate TIFF twice and as an exam, the
    16-bit gray TIFF."""
    png16 = corpus["png16_rgba"]
    tiff8 = Upload(corpus["tiff_deflate_rgb8"], "image/tiff")
    return Case(
        "hostile_corpus_at_once",
        (
            Upload(png16),
            Upload(png16),
            Upload(png16, exam=True),
            Upload(corpus["tiff16_rgb_tiled_2pages"], "image/tiff"),
            tiff8,
            tiff8,
            Upload(tiff8.data, "image/tiff", exam=True),
            Upload(corpus["tiff16_gray"], "image/tiff"),
        ),
    )


@dataclass(frozen=True)
class Row:
    """What one case did to the gateway."""

    name: str
    upload_kib: int
    statuses: tuple[int, ...]
    codes: tuple[str, ...]
    idle_rss_mib: float
    peak_rss_mib: float
    seconds: float


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux clear_refs, value 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def measure(stack: Stack, case: Case) -> Row:
    """Reset the peak, send the case's uploads concurrently, read the peak."""
    pid = stack.gateway_pid
    reset_peak(pid)
    idle = memory_kib(pid, ("VmRSS",))["VmRSS"] / 1024
    started = time.perf_counter()
    with httpx.Client(timeout=120) as client, ThreadPoolExecutor(len(case.uploads)) as pool:
        results = list(pool.map(lambda u: u.send(client, stack.gateway.url), case.uploads))
    seconds = time.perf_counter() - started
    peak = memory_kib(pid, ("VmHWM",))["VmHWM"] / 1024
    return Row(
        case.name,
        max(len(u.data) for u in case.uploads) // 1024,
        tuple(status for status, _ in results),
        tuple(code for _, code in results),
        idle,
        peak,
        seconds,
    )


def run(model_root: Path, only: tuple[str, ...] = (), **gateway_fields: str) -> list[Row]:
    """Start the stand-in once and a fresh gateway per case (freed memory stays resident in a
    process, so a case measured after another would start from the earlier peak)."""
    chosen = [c for c in cases(hostile_corpus()) if not only or c.name in only]
    rows = []
    with tempfile.TemporaryDirectory(prefix="decode-memory-") as workdir:
        server = TFServingProcess(model_root, port=free_port()).start(timeout_s=600)
        try:
            for case in chosen:
                casedir = Path(workdir) / case.name
                with running_stack(model_root, casedir, server=server, **gateway_fields) as stack:
                    rows.append(measure(stack, case))
        finally:
            server.stop()
    return rows


def table(rows: list[Row]) -> str:
    """The rows as a fixed-width table."""
    lines = [
        f"{'case':38} {'upload KiB':>10} {'status':>9} {'code':>17} "
        f"{'idle MiB':>8} {'peak MiB':>8} {'s':>5}"
    ]
    for r in rows:
        statuses = ",".join(str(s) for s in r.statuses)
        codes = ",".join(sorted(set(r.codes)))
        lines.append(
            f"{r.name:38} {r.upload_kib:>10} {statuses:>9} {codes:>17} "
            f"{r.idle_rss_mib:>8.0f} {r.peak_rss_mib:>8.0f} {r.seconds:>5.1f}"
        )
    return "\n".join(lines)


FLAG_SCRIPT = """
import sys, cv2, numpy as np
def kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
data = np.frombuffer(open(sys.argv[1], "rb").read(), np.uint8)
open("/proc/self/clear_refs", "w").write("5")
before = kib("VmRSS")
image = cv2.imdecode(data, getattr(cv2, sys.argv[2]))
print(image.shape, image.dtype, (kib("VmHWM") - before) / 1024)
"""
OPENCV_FLAGS = (
    "IMREAD_UNCHANGED",
    "IMREAD_COLOR_RGB",
    "IMREAD_REDUCED_COLOR_2",
    "IMREAD_REDUCED_COLOR_4",
    "IMREAD_REDUCED_COLOR_8",
)


def opencv_flags_table() -> str:
    """OpenCV's decode peak growth (MiB) per imread flag of the review's 7000 x 7000 16-bit RGBA
    PNG and of a 7000 x 7000 8-bit deflate TIFF, one fresh process each."""
    lines = [f"{'file':18} {'flag':24} {'output':>22} {'peak growth MiB':>16}"]
    files = {
        "png16_rgba_7000": png(SIDE, SIDE, channels=4, bits=16),
        "tiff_rgb8_7000": tiff(TiffPage(SIDE, SIDE, channels=3, bits=8)),
    }
    with tempfile.TemporaryDirectory(prefix="decode-flags-") as workdir:
        for name, data in files.items():
            path = Path(workdir) / name
            path.write_bytes(data)
            for flag in OPENCV_FLAGS:
                result = subprocess.run(
                    [sys.executable, "-c", FLAG_SCRIPT, str(path), flag],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                shape, dtype, peak = result.stdout.strip().rsplit(" ", 2)
                lines.append(f"{name:18} {flag:24} {shape + ' ' + dtype:>22} {float(peak):>16.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None, printer: Callable[[str], None] = print) -> None:
    """Command line: print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_root = os.environ.get("TEST_TINY_EXPORT", "/tmp/drg-tiny/export")
    parser.add_argument("--model-root", type=Path, default=Path(default_root))
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--opencv-flags", action="store_true")
    args = parser.parse_args(argv)
    if args.opencv_flags:
        printer(opencv_flags_table())
        return
    printer(table(run(args.model_root, tuple(args.only), **FIELDS)))


if __name__ == "__main__":
    main()
