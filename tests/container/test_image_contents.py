"""What the gateway image holds, read from its exported filesystem and its configuration: the
runtime only (no tests, no generator, no data, no pip, no compilers), nothing of this machine;
and the models image, whose init-container copy fills a volume the stand-in then serves."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from deploy.images import Engine
from harness.processes import TFServingProcess
from tests.conftest import REPO_ROOT

DATA_SUFFIXES = (".jpeg", ".jpg", ".dcm", ".npz", ".tfrecord", ".pb")
PALETTES = "/pydicom/data/palettes/"  # colour lookup tables pydicom applies, not test data
COMPILERS = ("gcc", "cc", "c++", "g++", "cpp", "clang", "cc1", "ld", "as", "make")


@pytest.fixture(scope="module")
def image_files(engine: Engine, gateway_image: str) -> dict[str, tarfile.TarInfo]:
    """Every path in the image's filesystem (``podman/docker export`` of a created container)."""
    name = f"drg-export-{uuid.uuid4().hex[:10]}"
    engine.run("create", "--name", name, gateway_image)
    try:
        export = subprocess.Popen([engine.path, "export", name], stdout=subprocess.PIPE)
        assert export.stdout is not None
        with tarfile.open(fileobj=export.stdout, mode="r|") as stream:
            members = {member.name.lstrip("./"): member for member in stream}
        assert export.wait() == 0
    finally:
        engine.run("rm", "-f", name, check=False)
    return members


def test_the_runtime_only(image_files: dict[str, tarfile.TarInfo]) -> None:
    paths = set(image_files)
    assert "app/gateway/__main__.py" in paths and "opt/venv/bin/python" in paths  # the control
    site = "opt/venv/lib/python3.11/site-packages/"
    assert f"{site}fastapi/__init__.py" in paths and f"{site}cv2/__init__.py" in paths
    top = {path.split("/")[1] for path in paths if path.startswith("app/") and "/" in path}
    assert top == {"contract", "fundus", "gateway"}, top  # no tests/, synthetic/, model/, ...
    assert not [p for p in paths if "/tests/" in p or p.startswith("app/tests")][:3]
    assert not [p for p in paths if "/synthetic/" in p or p.startswith("app/synthetic")][:3]
    assert not [p for p in paths if p.startswith(f"{site}pip/") or "/.cache/pip" in p][:3]
    assert not [p for p in paths if p.startswith(f"{site}tensorflow")][:3]
    data = [p for p in paths if p.lower().endswith(DATA_SUFFIXES) and PALETTES not in p]
    assert data == [], data[:5]
    binaries = {p.rsplit("/", 1)[-1] for p in paths if "/bin/" in p or p.startswith("bin/")}
    assert not binaries & set(COMPILERS), binaries & set(COMPILERS)
    assert not [p for p in paths if p.startswith("usr/lib/gcc/") or p.endswith("/cc1")][:3]
    assert "usr/include/python3.11/Python.h" not in paths  # no headers to build against


def test_only_the_imported_modules_carry_bytecode(image_files: dict[str, tarfile.TarInfo]) -> None:
    site = "opt/venv/lib/python3.11/site-packages/"
    cached = {p for p in image_files if p.startswith(site) and p.endswith(".pyc")}
    assert any("/fastapi/__pycache__/" in p for p in cached)  # what the gateway imports
    assert any("/cv2/" in p for p in cached)
    # fhir.resources ships STU3 as well; the gateway imports R4B only.
    assert not [p for p in cached if "/fhir/resources/STU3/" in p][:3]
    assert all(p.startswith("app/") for p in image_files if "/gateway/__pycache__/" in p)


def test_no_secret_or_machine_path_in_the_image(
    engine: Engine, gateway_image: str, image_files: dict[str, tarfile.TarInfo]
) -> None:
    config = engine.run("image", "inspect", gateway_image)
    history = engine.run("history", "--no-trunc", "--format", "{{.CreatedBy}}", gateway_image)
    for text in (config, history):
        assert str(REPO_ROOT) not in text and "/run/secrets" not in text
        assert "PIP_CERT" not in text and "PIP_INDEX_URL" not in text
    assert not [p for p in image_files if "api_keys" in p or p.endswith("keys.txt")]
    [image] = json.loads(config)
    user = image.get("Config", {}).get("User") or image.get("User")
    assert user == "10001:10001"
    print(f"\n{gateway_image}: {engine.image_size(gateway_image) / 1e6:.0f} MB")


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_models_image_init_copy_is_served(
    engine: Engine, models_image: str, model_root: Path, tmp_path: Path
) -> None:
    volume = tmp_path / "models"
    volume.mkdir()
    volume.chmod(0o777)  # what an emptyDir is: writable by the init container's uid 10001
    copy = [
        engine.path, "run", "--rm", "--read-only", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", *engine.run_flags(),
        "-v", f"{volume}:/models", models_image, "/bin/cp", "-R", "/export/.", "/models/",
    ]  # fmt: skip  # the init container of k8s/components/model-image
    done = subprocess.run(copy, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert tree_digest(volume / "dr_grader") == tree_digest(model_root / "dr_grader")
    server = TFServingProcess(volume).start(timeout_s=600)  # AVAILABLE, or it raises
    server.stop()
