"""HTTP abuse probes against a running gateway process (issue 14, findings 3 and 5), and the
throughput cost of the header limits.

    python -m reliability.http_abuse [--root /tmp/h3-before] [--connections 200]
    python -m reliability.http_abuse --throughput [--model-root /tmp/drg-tiny/export]

The first form starts ``python -m gateway`` from ``--root`` (default: this checkout; a
``git worktree`` of an older commit gives the "before" figures with the same probes) with
production settings except auth keys, a dead model-server address and the PACS intake on, then
prints one table: a 50 MB header and 50 MB of short header lines on ``GET /livez`` (status,
seconds, RSS growth sampled every 20 ms), how long N idle and N half-sent (one header line
every 5 s) connections stay open, the keep-alive a client sees, and a body trickled over 40 s to
``POST /v1/grade`` and ``POST /dicomweb/studies``. Every wait is capped at 75 s.

``--throughput`` serves the gateway, in front of the TF Serving stand-in with a SavedModel, with
each protocol of ``reliability.http_variant`` in turn and runs ``hey`` against ``/livez`` and
``POST /v1/grade`` (requests/s, p50, p99).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from gateway.auth import hash_key
from gateway.lean_protos import build as build_lean_protos
from harness.gateway_stack import fundus_jpeg, memory_kib
from harness.hey import parse_hey, run_hey
from harness.processes import REPO_ROOT, GatewayProcess, TFServingProcess

GRADE_KEY = "bench-key"
PACS_KEY = "bench-pacs-key"
CAP_S = 75.0
MB50 = 50 * 1024 * 1024


def rss_kib(gw: GatewayProcess) -> int:
    """VmRSS of the gateway process."""
    return memory_kib(gw.pid, ("VmRSS",))["VmRSS"]


@contextlib.contextmanager
def gateway(
    root: Path, workdir: Path, env: dict[str, str], command: tuple[str, ...] = ("gateway",)
) -> Iterator[GatewayProcess]:
    """``python -m <command>`` from ``root`` with ``env`` (DRG_*), live on a free port."""
    lean = workdir / "lean-protos"
    if not lean.exists():
        build_lean_protos(lean)
    keys = workdir / "keys.txt"
    keys.write_text(f"bench {hash_key(GRADE_KEY)} grade\npacs {hash_key(PACS_KEY)} pacs\n")
    settings = {"DRG_API_KEYS_FILE": str(keys), "DRG_LOG_LEVEL": "WARNING", **env}
    process = GatewayProcess(settings, lean, workdir / "gateway.log", root=root, module=command)
    process.log_path = workdir / f"gateway-{process.port}.log"  # one log per gateway started
    try:
        process.launch()
        process.wait_http("/livez", timeout_s=120, interval_s=0.1)
        yield process
    finally:
        process.stop(timeout_s=60)


# --- probes --------------------------------------------------------------------------------


async def _status_line(
    reader: asyncio.StreamReader, cap_s: float, answered: list[float] | None = None
) -> tuple[str, float]:
    """The first response line (or "closed"/"open") and when the server closed (s); the time
    of the answer's first byte is appended to ``answered``."""
    began = time.monotonic()
    first = b""
    try:
        async with asyncio.timeout(cap_s):
            while chunk := await reader.read(65536):
                if not first:
                    first = chunk.split(b"\r\n", 1)[0]
                    if answered is not None:
                        answered.append(time.monotonic() - began)
    except TimeoutError:
        return (first.decode() or "no answer") + f", still open at {cap_s:g} s", cap_s
    except ConnectionError:
        pass
    return first.decode() or "closed, no answer", time.monotonic() - began


def header_probe(gw: GatewayProcess, headers: bytes) -> str:
    """Send ``GET /livez`` with ``headers``; status, seconds, RSS growth (peak sample)."""
    baseline = rss_kib(gw)
    peak = baseline
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            with contextlib.suppress(OSError, RuntimeError):
                peak = max(peak, rss_kib(gw))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    async def run() -> tuple[str, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        began = time.monotonic()
        with contextlib.suppress(ConnectionError):
            writer.write(b"GET /livez HTTP/1.1\r\nHost: bench\r\n" + headers + b"\r\n")
            await writer.drain()
        line, _ = await _status_line(reader, CAP_S)
        writer.close()
        return line, time.monotonic() - began

    line, seconds = asyncio.run(run())
    time.sleep(0.3)
    stop.set()
    sampler.join()
    return f"{line}; {seconds:.2f} s; RSS +{(peak - baseline) / 1024:.0f} MiB"


async def idle_connections(gw: GatewayProcess, count: int) -> str:
    """``count`` connections that send nothing: how long they stay open."""
    streams = [await asyncio.open_connection("127.0.0.1", gw.port) for _ in range(count)]
    results = await asyncio.gather(*(_status_line(r, CAP_S) for r, _ in streams))
    for _, writer in streams:
        writer.close()
    return _summary([s for _, s in results], count)


async def half_sent(gw: GatewayProcess, count: int) -> str:
    """``count`` slowloris connections: one header line every 5 s, never the blank line."""

    async def one() -> tuple[str, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(b"GET /livez HTTP/1.1\r\nHost: bench\r\n")
        watcher = asyncio.create_task(_status_line(reader, CAP_S))
        while not watcher.done():
            with contextlib.suppress(ConnectionError):
                writer.write(b"X-Slow: 1\r\n")
            await asyncio.wait([watcher], timeout=5)
        writer.close()
        return watcher.result()

    results = await asyncio.gather(*(one() for _ in range(count)))
    statuses = sorted({line.split(",")[0] for line, _ in results})
    return _summary([s for _, s in results], count) + f"; answers: {' | '.join(statuses)}"


async def keep_alive(gw: GatewayProcess) -> str:
    """One ``GET /livez`` on a keep-alive connection, then silence: when the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(b"GET /livez HTTP/1.1\r\nHost: bench\r\n\r\n")
    line, seconds = await _status_line(reader, CAP_S)
    writer.close()
    return f"{line}; server closed after {seconds:.1f} s"


async def trickled_body(gw: GatewayProcess, path: str, head: bytes, over_s: float = 40.0) -> str:
    """A 4,000-byte body sent evenly over ``over_s``: status and when the answer came."""
    size = 4000
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: bench\r\n".encode() + head)
    writer.write(f"Content-Length: {size}\r\n\r\n".encode())
    answered: list[float] = []
    watcher = asyncio.create_task(_status_line(reader, CAP_S, answered))
    sent = 0
    step = size // 40
    while sent < size and not watcher.done():
        await asyncio.wait([watcher], timeout=over_s / 40)
        with contextlib.suppress(ConnectionError):
            writer.write(b"\x00" * step)
        sent += step
    line, closed_s = await watcher
    writer.close()
    answer = f"answer after {answered[0]:.1f} s" if answered else "no answer"
    return f"{line.split(',')[0]}; {answer}, connection closed after {closed_s:.1f} s"


def _summary(seconds: list[float], count: int) -> str:
    ordered = sorted(seconds)
    still = sum(1 for s in ordered if s >= CAP_S)
    return (
        f"{count - still}/{count} closed by the server; median {ordered[len(ordered) // 2]:.1f} s,"
        f" max {ordered[-1]:.1f} s"
    )


def abuse(root: Path, workdir: Path, connections: int) -> list[tuple[str, str]]:
    """Every probe against one gateway from ``root``; (probe, result) rows."""
    env = {
        "DRG_TFSERVING_TARGET": "127.0.0.1:1",
        "DRG_PACS_ENABLED": "true",
        "DRG_PACS_OUTBOX_PATH": str(workdir / f"outbox-{time.time_ns()}.sqlite3"),
    }
    rows: list[tuple[str, str]] = []
    with gateway(root, workdir, env) as gw:
        rows.append(
            ("one 50 MB header, GET /livez", header_probe(gw, b"X-Big: " + b"a" * MB50 + b"\r\n"))
        )
        rows.append(("50 MB of 8-byte header lines", header_probe(gw, b"X-a: b\r\n" * (MB50 // 8))))

        async def concurrent() -> list[str]:
            grade_head = (
                f"Authorization: Bearer {GRADE_KEY}\r\nContent-Type: image/jpeg\r\n".encode()
            )
            stow_head = (
                f"Authorization: Bearer {PACS_KEY}\r\n"
                'Content-Type: multipart/related; type="application/dicom"; boundary=b\r\n'
            ).encode()
            return list(
                await asyncio.gather(
                    idle_connections(gw, connections),
                    half_sent(gw, connections),
                    keep_alive(gw),
                    trickled_body(gw, "/v1/grade", grade_head),
                    trickled_body(gw, "/dicomweb/studies", stow_head),
                )
            )

        idle, half, alive, grade, stow = asyncio.run(concurrent())
        rows += [
            (f"{connections} idle connections (no byte sent)", idle),
            (f"{connections} half-sent requests (a header line every 5 s)", half),
            ("keep-alive after one GET /livez", alive),
            ("4 kB body trickled over 40 s, POST /v1/grade", grade),
            ("4 kB body trickled over 40 s, POST /dicomweb/studies", stow),
        ]
    return rows


# --- throughput ----------------------------------------------------------------------------


def hey(url: str, seconds: int, concurrency: int, extra: list[str]) -> str:
    """``hey`` for ``seconds``: "R req/s, p50 X ms, p99 Y ms, statuses"."""
    out = run_hey(url, seconds, concurrency, extra)
    try:
        result = parse_hey(out)
    except ValueError:
        return "no result: " + out[-300:]
    p50, p99 = result.percentiles_ms[50], result.percentiles_ms[99]
    if math.isnan(p50) or math.isnan(p99):
        return "no result: " + out[-300:]
    codes = " ".join(f"{n} x {c}" for c, n in result.statuses.items())
    return f"{result.requests_per_s:.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms ({codes})"


def throughput(model_root: Path, workdir: Path, seconds: int) -> list[tuple[str, str]]:
    """/livez and /v1/grade with each protocol, one after the other, in one run."""
    if shutil.which("hey") is None:
        raise SystemExit("hey is not installed")
    image = workdir / "fundus.jpg"
    image.write_bytes(fundus_jpeg())
    server = TFServingProcess(model_root, args=("--labels", "stable=1")).start(timeout_s=600)
    rows: list[tuple[str, str]] = []
    try:
        env = {"DRG_TFSERVING_TARGET": server.target, "DRG_MAX_CONCURRENT_INFERENCES": "8"}
        for variant in ("limited", "httptools", "h11"):
            command = ("reliability.http_variant", variant)
            with gateway(REPO_ROOT, workdir, env, command) as gw:
                httpx.get(gw.url + "/readyz", timeout=30)
                auth = ["-H", f"Authorization: Bearer {GRADE_KEY}"]
                grade_args = ["-m", "POST", "-T", "image/jpeg", "-D", str(image), *auth]
                hey(gw.url + "/livez", 2, 8, [])  # warm-up
                rows.append((f"{variant}: GET /livez, c=8", hey(gw.url + "/livez", seconds, 8, [])))
                rows.append(
                    (
                        f"{variant}: POST /v1/grade, c=4",
                        hey(gw.url + "/v1/grade", seconds, 4, grade_args),
                    )
                )
    finally:
        server.stop()
    return rows


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    """A two-column Markdown table."""
    print(f"\n{title}\n")
    print("| probe | result |\n|---|---|")
    for probe, result in rows:
        print(f"| {probe} | {result} |")


def main(argv: list[str] | None = None) -> int:
    """Run the probes (or ``--throughput``) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="checkout to run")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--model-root", type=Path, default=Path("/tmp/drg-tiny/export"))
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="http-abuse-") as tmp:
        workdir = Path(tmp)
        if args.throughput:
            print_table(
                "throughput by HTTP protocol", throughput(args.model_root, workdir, args.seconds)
            )
        else:
            commit = subprocess.run(
                ["git", "-C", str(args.root), "rev-parse", "--short", "HEAD"],
                capture_output=True, text=True, check=False,
            ).stdout.strip()  # fmt: skip
            print_table(
                f"gateway at {args.root} ({commit})", abuse(args.root, workdir, args.connections)
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
