"""End-to-end fixtures: the tiny model, lean protos and API keys come from tests/conftest.py;
``netns`` (a loopback-only network namespace for Orthanc, which listens on all interfaces) is
here."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.pacs_processes import PLUGIN


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace with only loopback; deleted afterwards."""
    if shutil.which("Orthanc") is None or not PLUGIN.is_file():
        pytest.skip(
            "Orthanc or its DICOMweb plugin is not installed (apt: orthanc orthanc-dicomweb)"
        )
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("needs root and iproute2 ('ip netns') to isolate Orthanc")
    name = f"drg-e2e-{uuid.uuid4().hex[:8]}"
    created = _ip("netns", "add", name)
    if created.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {created.stderr.strip()}")
    try:
        up = _ip("-n", name, "link", "set", "lo", "up")
        assert up.returncode == 0, up.stderr
        yield name
    finally:
        # The driver stops Orthanc and the gateway itself; end any leftover (ours, by pid).
        for pid in _ip("netns", "pids", name).stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.2)
        _ip("netns", "delete", name)
