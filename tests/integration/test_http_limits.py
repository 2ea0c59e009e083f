"""Connection limits of the running gateway (issue 14, findings 3, 5 and 12), over raw sockets.

One real ``python -m gateway`` process with short timeouts (the production values are longer;
tests/deploy checks those). No model server is needed: every request here is refused, timed out
or answered before a grading would start.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.processes import GatewayProcess, free_port
from tests.conftest import API_KEY

HEADER_TIMEOUT_S = 1.0
KEEP_ALIVE_S = 2
BODY_TIMEOUT_S = 1.0
MAX_HEADER_BYTES = 16 * 1024
MAX_CONNECTIONS = 20


@pytest.fixture(scope="module")
def gateway(
    lean_protos: Path, keys_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A gateway with short connection timeouts and a separate metrics port."""
    process = GatewayProcess(
        {
            "DRG_BACKEND": "tfserving",
            "DRG_TFSERVING_TARGET": "127.0.0.1:1",  # never reached
            "DRG_API_KEYS_FILE": str(keys_file),
            "DRG_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
            "DRG_MAX_HEADER_COUNT": "50",
            "DRG_HEADER_READ_TIMEOUT_S": str(HEADER_TIMEOUT_S),
            "DRG_KEEP_ALIVE_TIMEOUT_S": str(KEEP_ALIVE_S),
            "DRG_BODY_READ_TIMEOUT_S": str(BODY_TIMEOUT_S),
            "DRG_REQUEST_TIMEOUT_S": "5",
            "DRG_SHUTDOWN_GRACE_S": "6",
            "DRG_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
            "DRG_METRICS_PORT": str(free_port()),
        },
        lean_protos,
        tmp_path_factory.mktemp("gw-limits") / "gateway.log",
    ).start()
    yield process
    process.stop()


def connect(gateway: GatewayProcess, port: int | None = None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port or gateway.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket, limit_s: float = 10.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (s from now)."""
    began = time.monotonic()
    sock.settimeout(limit_s)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - began


def status_and_code(response: bytes) -> tuple[int, str | None]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body)["error"]["code"]
    except (ValueError, KeyError):
        return status, None


def peak_rss_kib(gateway: GatewayProcess) -> int:
    assert gateway.process is not None
    status = Path(f"/proc/{gateway.process.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(b"X-Big: " + b"a" * (8 << 20) + b"\r\n", id="one 8 MB header"),
        pytest.param(b"X-a: b\r\n" * (1 << 20), id="8 MB of short lines"),
        pytest.param(b"X-a: b\r\n" * 60, id="60 short headers, over the count"),
    ],
)
def test_oversized_headers_get_431_without_buffering(gateway, headers):
    before = peak_rss_kib(gateway)
    with connect(gateway) as sock:
        began = time.monotonic()
        # The server may answer and close while we are still sending.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
        response, _ = read_until_closed(sock)
        elapsed = time.monotonic() - began
    assert status_and_code(response) == (431, "headers_too_large")
    assert elapsed < 5
    # 8 MB was sent; the gateway must have kept at most its limit plus one socket read.
    assert peak_rss_kib(gateway) - before < 4 * 1024
    assert httpx.get(gateway.url + "/livez").status_code == 200
    assert '"error_code":"headers_too_large"' in gateway.logs()


def test_headers_under_the_limit_pass(gateway):
    filler = {f"X-F{i}": "v" * 100 for i in range(40)}  # ~4.6 KB, 40 lines
    assert httpx.get(gateway.url + "/livez", headers=filler).status_code == 200


def test_half_sent_headers_get_408_within_the_header_timeout(gateway):
    with connect(gateway) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\n")
        began = time.monotonic()
        for _ in range(3):  # slowloris: a line now and then, never the end
            time.sleep(HEADER_TIMEOUT_S / 4)
            sock.sendall(b"X-Slow: 1\r\n")
        response, _ = read_until_closed(sock)
        elapsed = time.monotonic() - began
    assert status_and_code(response) == (408, "header_read_timeout")
    assert HEADER_TIMEOUT_S * 0.8 < elapsed < HEADER_TIMEOUT_S + 2


def test_a_silent_connection_is_closed_after_the_header_timeout(gateway):
    with connect(gateway) as sock:
        response, elapsed = read_until_closed(sock)
    assert response == b""
    assert HEADER_TIMEOUT_S * 0.8 < elapsed < HEADER_TIMEOUT_S + 2


def test_keep_alive_lasts_the_configured_time(gateway):
    with connect(gateway) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n")
        response, elapsed = read_until_closed(sock)
    assert response.startswith(b"HTTP/1.1 200")
    assert KEEP_ALIVE_S - 0.5 < elapsed < KEEP_ALIVE_S + 2


def test_a_trickled_body_gets_408_within_the_body_timeout(gateway):
    with connect(gateway) as sock:
        sock.sendall(
            b"POST /v1/grade HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
            + API_KEY.encode()
            + b"\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
        )
        began = time.monotonic()
        for _ in range(4):
            time.sleep(BODY_TIMEOUT_S / 4)
            try:
                sock.sendall(b"x" * 10)
            except (BrokenPipeError, ConnectionResetError):
                break
        response, _ = read_until_closed(sock)
        elapsed = time.monotonic() - began
    assert status_and_code(response) == (408, "body_read_timeout")
    assert b"connection: close" in response.lower()
    assert elapsed < BODY_TIMEOUT_S + 3


def test_an_early_answer_does_not_wait_for_a_trickled_body(gateway):
    # 401 before the body: the connection must not stay open while the body trickles on.
    with connect(gateway) as sock:
        sock.sendall(
            b"POST /v1/grade HTTP/1.1\r\nHost: t\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: 1000000\r\n\r\n"
        )
        began = time.monotonic()
        sock.settimeout(0.5)
        received = b""
        closed = False
        while time.monotonic() - began < 12 and not closed:
            try:
                sock.sendall(b"x" * 10)
                chunk = sock.recv(65536)
                closed = chunk == b""
                received += chunk
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
        elapsed = time.monotonic() - began
    assert received.startswith(b"HTTP/1.1 401")
    assert closed and elapsed < 9  # LINGER_S (5 s) plus margin; before: open indefinitely


def test_metrics_only_on_the_metrics_port(gateway):
    metrics_port = int(gateway.env["DRG_METRICS_PORT"])
    metrics_url = f"http://127.0.0.1:{metrics_port}"
    assert "drg_http_requests_total" in httpx.get(metrics_url + "/metrics").text
    for path in ("/metrics", "/%6detrics", "/metrics/", "/%2Fmetrics"):
        response = httpx.get(gateway.url + path)
        assert response.status_code == 404, path
        assert "drg_" not in response.text
    assert httpx.get(metrics_url + "/livez").status_code == 404
    assert httpx.get(metrics_url + "/openapi.json").status_code == 404


def test_docs_off_in_production_but_openapi_stays(gateway):
    assert httpx.get(gateway.url + "/docs").status_code == 404
    assert httpx.get(gateway.url + "/redoc").status_code == 404
    assert "/v1/grade" in httpx.get(gateway.url + "/openapi.json").json()["paths"]


def refused_lines(gateway: GatewayProcess) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in gateway.logs().splitlines() if line.startswith("{")]
    return [x for x in lines if x.get("status") == 401 and x.get("route") == "/v1/grade"]


def test_refused_keys_are_logged_with_the_peer_address(gateway):
    response = httpx.post(gateway.url + "/v1/grade", content=b"x", headers={"X-API-Key": "no"})
    assert response.status_code == 401
    assert refused_lines(gateway)[-1]["peer"] == "127.0.0.1"
    forwarded = {"X-API-Key": "no", "X-Forwarded-For": "203.0.113.9, 198.51.100.7, <b>"}
    assert httpx.post(gateway.url + "/v1/grade", content=b"x", headers=forwarded).status_code == 401
    # Only a valid address is logged (here the last entry is not one: no forwarded_for).
    assert "forwarded_for" not in refused_lines(gateway)[-1]
    forwarded["X-Forwarded-For"] = "203.0.113.9, 198.51.100.7"
    httpx.post(gateway.url + "/v1/grade", content=b"x", headers=forwarded)
    assert refused_lines(gateway)[-1]["forwarded_for"] == "198.51.100.7"  # what the ALB appends


def test_request_ids_are_echoed_only_in_a_safe_form(gateway):
    good = httpx.get(gateway.url + "/livez", headers={"X-Request-ID": "abc.DEF-12_3"})
    assert good.headers["x-request-id"] == "abc.DEF-12_3"
    for bad in ("has space", "a" * 65, "<script>", "x;y"):
        echoed = httpx.get(gateway.url + "/livez", headers={"X-Request-ID": bad})
        assert echoed.headers["x-request-id"] != bad
        assert len(echoed.headers["x-request-id"]) == 32


def test_past_the_connection_cap_the_longest_idle_connection_closes(gateway):
    opened = time.monotonic()
    idle = [connect(gateway) for _ in range(MAX_CONNECTIONS)]
    try:
        # New connections past the cap close the oldest idle ones; requests still answered.
        assert httpx.get(gateway.url + "/livez").status_code == 200
        assert httpx.get(gateway.url + "/livez").status_code == 200
        # Some of the oldest idle connections were closed (which one exactly depends on the
        # order the server accepted them in) by the cap, not by the later header timeout.
        readable, _, _ = select.select(
            idle, [], [], max(0.1, HEADER_TIMEOUT_S * 0.9 - (time.monotonic() - opened))
        )
        assert readable and all(sock.recv(1) == b"" for sock in readable)
        assert time.monotonic() - opened < HEADER_TIMEOUT_S * 0.9
    finally:
        for sock in idle:
            sock.close()
