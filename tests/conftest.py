"""Shared fixtures: paths to the real data in ../shared (skipped when absent), and the tiny model
exported by model/ with the lean protos and API keys every gateway test uses.

Session fixtures live here, once: a fixture imported into several conftest files would be a
separate fixture per directory and train the tiny model once per directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.auth import hash_key
from gateway.lean_protos import build as build_lean_protos
from harness.postgres import PostgresServer, PostgresUnavailable
from tests.support.tiny_model import tiny_export

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
EYEPACS_DIR = SHARED_DATA / "eyepacs-sample"
DICOM_DIR = SHARED_DATA / "dicom"
RETINAMNIST_NPZ = SHARED_DATA / "retinamnist" / "retinamnist.npz"

API_KEY = "integration-test-key"
PACS_ONLY_KEY = "pacs-only-key"


def require(path: Path) -> Path:
    """Skip the calling test with a clear reason when a ../shared fixture is missing."""
    if not path.exists():
        pytest.skip(f"real fixture {path} is absent (only present beside the team's checkout)")
    return path


@pytest.fixture(scope="session")
def eyepacs_files() -> list[Path]:
    """The six full-resolution EyePACS JPEGs."""
    files = sorted(require(EYEPACS_DIR).glob("*.jpeg"))
    if not files:
        pytest.skip(f"no JPEGs in {EYEPACS_DIR}")
    return files


@pytest.fixture(scope="session")
def dicom_dir() -> Path:
    """Directory with the OP DICOM fixtures."""
    return require(DICOM_DIR)


@pytest.fixture(scope="session")
def lean_protos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TF Serving's generated modules without the TF runtime (as in the gateway image)."""
    out = tmp_path_factory.mktemp("lean") / "protos"
    build_lean_protos(out)
    return out


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<root>/dr_grader/1``: the tiny config trained and exported by model/.

    ``TEST_TINY_EXPORT=<root>`` reuses a root that ``tiny_export`` built earlier (development
    only: several local runs then share one build; CI never sets it).
    """
    reused = os.environ.get("TEST_TINY_EXPORT")
    if reused:
        return require(Path(reused) / "dr_grader" / "1").parents[1]
    return tiny_export(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="session")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two clients: one allowed to grade, one PACS-only."""
    path = tmp_path_factory.mktemp("keys") / "keys.txt"
    path.write_text(f"tester {hash_key(API_KEY)} grade\npacs {hash_key(PACS_ONLY_KEY)} pacs\n")
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server (Debian's postgresql, installed by .ci/run) on 127.0.0.1;
    skipped with the reason when the binaries are absent. Tests that stop or kill it start it
    again before they end."""
    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    with server:
        yield server
