"""Fixtures for the deployment tests: the real tools, the rendered overlays, the gateway's own
metrics and routes (built in-process, no network), toy SavedModels and the real tiny export."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("local", "eks", "eks-gpu")
VENV_BIN = Path(sys.executable).parent
CRD_GROUPS = ("monitoring.coreos.com/",)


def find_tool(name: str, env_var: str | None = None) -> str:
    """A tool binary: $env_var, the venv's bin, .venv/checkov, or PATH; skip the test if absent."""
    candidates = [
        os.environ.get(env_var) if env_var else None,
        str(VENV_BIN / name),
        str(REPO_ROOT / ".venv" / name / "bin" / name),
        shutil.which(name),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip(f"{name} is not installed (CI installs it; see docs/deploy.md, 'Checks')")


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a tool, capture its output, never raise on a non-zero exit."""
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)


@pytest.fixture(scope="session")
def kubectl() -> str:
    return find_tool("kubectl")


def render_overlay(kubectl: str, path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` one kustomization; the documents as dicts."""
    result = run([kubectl, "kustomize", str(path)])
    assert result.returncode == 0, f"kustomize {path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def rendered(kubectl: str) -> dict[str, list[dict[str, Any]]]:
    """Every overlay, rendered once per test session."""
    return {
        name: render_overlay(kubectl, REPO_ROOT / "k8s" / "overlays" / name) for name in OVERLAYS
    }


@pytest.fixture(scope="session")
def rendered_dir(
    rendered: dict[str, list[dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The rendered overlays as files (``<overlay>.yaml``, built-in kinds in ``builtin/``)."""
    out = tmp_path_factory.mktemp("rendered")
    (out / "builtin").mkdir()
    for name, docs in rendered.items():
        (out / f"{name}.yaml").write_text(yaml.safe_dump_all(docs))
        builtin = [d for d in docs if not d["apiVersion"].startswith(CRD_GROUPS)]
        (out / "builtin" / f"{name}.yaml").write_text(yaml.safe_dump_all(builtin))
    return out


def objects(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Documents of one kind."""
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The document of ``kind`` named ``name`` (or ``name-<hash>`` for generated ones)."""
    found = [
        d
        for d in docs
        if d["kind"] == kind
        and re.fullmatch(rf"{re.escape(name)}(-[a-z0-9]{{10}})?", d["metadata"]["name"])
    ]
    assert len(found) == 1, (
        f"expected one {kind} {name}, found {[d['metadata']['name'] for d in found]}"
    )
    return found[0]


def container(deployment: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    """A (init) container of a Deployment by name."""
    key = "initContainers" if init else "containers"
    for item in deployment["spec"]["template"]["spec"].get(key, []):
        if item["name"] == name:
            return dict(item)
    raise AssertionError(f"{deployment['metadata']['name']} has no {key} {name}")


def secret_files_as_stand_ins(
    dep: dict[str, Any], env: dict[str, str], tmp_path: Path
) -> dict[str, str]:
    """``env`` with each file setting under a Secret mount of the gateway pointed at a stand-in.

    Asserts that the Secret volume provides the file (its ``items``, or every key without
    them); the stand-in holds an API-key line, which any of these files accepts as content.
    """
    mounts = container(dep, "gateway").get("volumeMounts", [])
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"].get("volumes", [])}
    out = dict(env)
    for key, value in env.items():
        mount = next((m for m in mounts if value.startswith(m["mountPath"] + "/")), None)
        if mount is None or "secret" not in volumes[mount["name"]]:
            continue
        relative = value[len(mount["mountPath"]) + 1 :]
        items = volumes[mount["name"]]["secret"].get("items")
        assert items is None or relative in [i["path"] for i in items], f"{key}: {value}"
        stand_in = tmp_path / mount["name"] / relative
        stand_in.parent.mkdir(parents=True, exist_ok=True)
        stand_in.write_text("probe sha256:" + "0" * 64 + "\n")
        out[key] = str(stand_in)
    return out


@contextmanager
def clean_drg_env(values: dict[str, str]) -> Iterator[None]:
    """os.environ with exactly ``values`` as its DRG_ variables (Settings reads os.environ)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("DRG_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("DRG_")]:
            del os.environ[key]
        os.environ.update(saved)


@pytest.fixture(scope="session")
def gateway_app() -> Any:
    """The real gateway app (tfserving backend, nothing listening: no call is made)."""
    from gateway.main import create_app
    from gateway.settings import Settings

    with clean_drg_env({}):
        settings = Settings(
            environment="development",
            host="127.0.0.1",
            auth="disabled",
            backend="tfserving",
            tfserving_target="127.0.0.1:9",
        )
    return create_app(settings)


@pytest.fixture(scope="session")
def gateway_metrics(gateway_app: Any) -> str:
    """What Prometheus scrapes: ``GET /metrics`` of the in-process gateway."""
    from fastapi.testclient import TestClient

    with TestClient(gateway_app) as client:
        client.get("/livez")  # one request, so the per-route series exist
        response = client.get("/metrics")
    assert response.status_code == 200
    return str(response.text)


@pytest.fixture(scope="session")
def gateway_routes(gateway_app: Any) -> dict[str, set[str]]:
    """path -> HTTP methods the gateway answers (its OpenAPI schema, checked by real requests)."""
    from fastapi.testclient import TestClient

    routes = {
        path: {method.upper() for method in operations}
        for path, operations in gateway_app.openapi()["paths"].items()
    }
    with TestClient(gateway_app) as client:
        for path, methods in routes.items():
            if "GET" in methods and "{" not in path:
                # 503 is fine (/readyz without a model server); 404/405 would mean no such route.
                assert client.get(path).status_code not in (404, 405), path
        assert client.get("/no-such-route").status_code == 404
    return routes


@pytest.fixture
def real_model_version_dir(request: pytest.FixtureRequest) -> Path:
    """``dr_grader/1`` of the tiny model exported by model/ (skips until that export exists)."""
    try:
        root = request.getfixturevalue("model_root")
    except NotImplementedError:
        pytest.skip("the tiny export (tests/support/tiny_model.py) is not implemented yet")
    return Path(root) / "dr_grader" / "1"


@pytest.fixture(scope="session")
def toy_model_factory(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Build (and cache) toy SavedModels by defect name."""
    pytest.importorskip("tensorflow")
    from tests.deploy.toy_model import build_toy_model

    cache: dict[tuple[str, int], Path] = {}

    def build(defect: str = "none", version: int = 1) -> Path:
        key = (defect, version)
        if key not in cache:
            root = tmp_path_factory.mktemp(f"toy-{defect}")
            cache[key] = build_toy_model(root, version=version, defect=defect)
        return cache[key]

    return build
