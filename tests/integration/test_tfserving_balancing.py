"""The gateway's one gRPC channel spreads gradings over every model-server address.

In the cluster the target is ``dns:///tfserving-headless...:8500``: a headless Service whose DNS
name has one A record per ready TF Serving pod, balanced by the channel's ``round_robin``. Here
no name the test controls resolves to two loopback addresses (localhost is 127.0.0.1 only and
/etc/hosts is not ours to edit), so the target is gRPC's static ``ipv4:`` list of the two
stand-ins: the same resolver-to-balancer path (an address list handed to ``round_robin``), only
the address list comes from the target instead of DNS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.processes import GatewayProcess, TFServingProcess
from synthetic import encode_jpeg, synthesize_fundus
from tests.integration.conftest import API_KEY, start_gateway

GRADINGS = 20


@pytest.fixture
def two_servers(model_root: Path, tmp_path: Path) -> Iterator[list[tuple[TFServingProcess, Path]]]:
    """Two stand-ins, each logging its own Predict calls."""
    servers: list[tuple[TFServingProcess, Path]] = []
    try:
        for name in ("a", "b"):
            log = tmp_path / f"predict-{name}.log"
            args = ("--labels", "stable=1", "--predict-log", str(log))
            server = TFServingProcess(model_root, args=args)
            servers.append((server.start(wait_available=False), log))
        for server, _ in servers:  # both load TensorFlow at once
            server.wait_available(300)
        yield servers
    finally:
        for server, _ in servers:
            server.stop()


def served(log: Path) -> int:
    """Grading calls (serving_default) one stand-in answered."""
    lines = log.read_text().splitlines() if log.exists() else []
    return lines.count("serving_default")


def test_round_robin_reaches_both_model_servers(
    two_servers: list[tuple[TFServingProcess, Path]],
    lean_protos: Path,
    keys_file: Path,
    tmp_path: Path,
) -> None:
    (a, log_a), (b, log_b) = two_servers
    target = f"ipv4:127.0.0.1:{a.port},127.0.0.1:{b.port}"
    # The served version stays cached, as in production (readiness_cache_s): with no cache each
    # grading is GetModelStatus + Predict, and strict alternation would put every Predict on
    # the same server.
    gateway: GatewayProcess = start_gateway(
        tmp_path, lean_protos, keys_file, target, readiness_cache_s="600"
    )
    try:
        gateway.wait_ready()
        jpeg = encode_jpeg(synthesize_fundus(2, width=640, height=480, seed=7))
        with httpx.Client(base_url=gateway.url, headers={"X-API-Key": API_KEY}) as client:
            for _ in range(GRADINGS):
                response = client.post("/v1/grade", files={"image": ("eye.jpg", jpeg)}, timeout=30)
                assert response.status_code == 200, response.text
    finally:
        gateway.stop()
    counts = served(log_a), served(log_b)
    print(f"serving_default Predict calls per server: {counts}")
    assert sum(counts) == GRADINGS
    # round_robin alternates per call once both subchannels are READY: neither is starved.
    assert min(counts) >= GRADINGS // 4, counts
