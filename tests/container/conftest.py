"""Container fixtures: the OCI engine (docker, else podman; the tests skip without one), the
gateway and models images built once per session from the working tree, and the TF Serving
stand-in on the host serving the tiny export that the containers reach on 127.0.0.1.

The Python base is the official image when the engine can pull it, else the Debian stand-in of
deploy/images.py, kept in the engine's store under a content key (built once per machine).
Rebuilds of the gateway image reuse the engine's layer cache when nothing changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploy.container_run import Container, gateway_container
from deploy.images import Engine, ImageError, build_gateway, build_models, find_engine, python_base
from harness.processes import TFServingProcess, free_port

GATEWAY_TAG = "localhost/dr-gateway:tests"
MODELS_TAG = "localhost/dr-models:tests"


@pytest.fixture(scope="session")
def engine() -> Engine:
    """docker (its daemon answering) or podman; skip when neither is installed."""
    found = find_engine()
    if found is None:
        pytest.skip("no OCI engine: install podman (or docker) to run the container tests")
    return found


@pytest.fixture(scope="session")
def base_image(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Python 3.11 base; skip (with the reason) when none can be pulled or built."""
    log = tmp_path_factory.mktemp("base") / "debootstrap.log"
    try:
        return python_base(engine, "auto", log)
    except ImageError as exc:
        pytest.skip(f"no Python 3.11 base image: {exc}")


@pytest.fixture(scope="session")
def build_seconds() -> dict[str, float]:
    """Seconds each image build took in this session (printed by the size test)."""
    return {}


@pytest.fixture(scope="session")
def gateway_image(engine: Engine, base_image: str, build_seconds: dict[str, float]) -> str:
    """Dockerfile.gateway built from the working tree (a failure fails the tests)."""
    began = time.monotonic()
    build_gateway(engine, base_image, GATEWAY_TAG)
    build_seconds["gateway"] = time.monotonic() - began
    return GATEWAY_TAG


@pytest.fixture(scope="session")
def models_image(engine: Engine, base_image: str, model_root: Path) -> str:
    """deploy/models.Dockerfile with the tiny export as context (the base provides ``cp``
    where busybox cannot be pulled)."""
    busybox = "busybox:1.37.0"
    base = None if engine.has_image(busybox) else base_image
    return build_models(engine, model_root, MODELS_TAG, base)


@pytest.fixture(scope="session")
def standin(model_root: Path) -> Iterator[TFServingProcess]:
    """The TF Serving stand-in on the host (127.0.0.1) with the tiny model AVAILABLE."""
    server = TFServingProcess(model_root).start(timeout_s=600)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def start_container(
    engine: Engine, gateway_image: str, keys_file: Path
) -> Iterator[Callable[..., Container]]:
    """``start_container(target, **settings)``: a started gateway container (all removed at the
    end of the session)."""
    started: list[Container] = []

    def start(target: str, **settings: str) -> Container:
        container = gateway_container(
            engine, gateway_image, target, keys_file, free_port(), **settings
        )
        started.append(container)
        return container.start()

    yield start
    for container in started:
        container.remove()
