"""Shared fixtures: paths to the real data in ../shared (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
EYEPACS_DIR = SHARED_DATA / "eyepacs-sample"
DICOM_DIR = SHARED_DATA / "dicom"
RETINAMNIST_NPZ = SHARED_DATA / "retinamnist" / "retinamnist.npz"


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
