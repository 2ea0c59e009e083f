"""docker-compose.yml runs the gateway image as tests/container run it (needs no engine)."""

from __future__ import annotations

import re

import yaml

from deploy.container_run import KEYS_PATH, Container
from deploy.images import DOCKERFILE, Engine, project_version
from gateway.settings import Settings
from tests.conftest import REPO_ROOT


def test_compose_gateway_matches_the_image_and_the_container_tests() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["gateway"]
    assert service["image"] == f"dr-gateway:{project_version()}"  # what `make image` tags
    users = re.findall(r"^USER (\S+)$", DOCKERFILE.read_text(), re.M)
    assert service["user"] == users[-1] == "10001:10001"
    command = Container(Engine("docker", "docker"), "dr-gateway", 8080).command()
    assert service["read_only"] is True and "--read-only" in command
    assert service["tmpfs"] == ["/tmp"] and command[command.index("--tmpfs") + 1] == "/tmp"
    assert service["cap_drop"] == ["ALL"] and command[command.index("--cap-drop") + 1] == "ALL"
    assert service["security_opt"] == ["no-new-privileges:true"]
    assert "no-new-privileges" in command
    # The key file: compose mounts secret NAME at /run/secrets/NAME, the tests mount it there.
    assert service["environment"]["DRG_API_KEYS_FILE"] == KEYS_PATH
    assert f"/run/secrets/{service['secrets'][0]}" == KEYS_PATH
    grace = Settings.model_fields["shutdown_grace_s"].default
    assert float(service["stop_grace_period"].rstrip("s")) > grace
