"""Model provenance: the sha256 manifest written at release (deploy/manifest.py) and checked by
the model-sync init container (the rendered sync-models.sh, run for real with sha256sum), and the
IAM policies of the release roles (deploy/iam/)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from deploy import manifest
from tests.deploy.conftest import REPO_ROOT, container, one
from tests.deploy.test_crosschecks import mounted_file

IAM = REPO_ROOT / "deploy" / "iam"


def make_version(root: Path, version: int = 3) -> Path:
    """A version directory shaped like an export (files, not a loadable model)."""
    directory = root / "bucket" / str(version)
    (directory / "variables").mkdir(parents=True)
    (directory / "assets.extra").mkdir()
    (directory / "saved_model.pb").write_bytes(b"graph " * 100)
    (directory / "variables" / "variables.index").write_bytes(b"index")
    (directory / "variables" / "variables.data-00000-of-00001").write_bytes(os.urandom(4096))
    (directory / "assets.extra" / "model_card.json").write_text('{"name": "dr_grader"}')
    return directory


@pytest.fixture(scope="module")
def sync_script(rendered: dict[str, list[dict[str, Any]]]) -> tuple[str, dict[str, str]]:
    tfserving = one(rendered["eks"], "Deployment", "tfserving")
    sync = container(tfserving, "model-sync", init=True)
    env = {e["name"]: e["value"] for e in sync["env"]}
    return mounted_file(tfserving, "model-sync", sync["command"][1], rendered["eks"]), env


def run_sync(tmp_path: Path, script: str, env: dict[str, str], version: int = 3) -> Any:
    """The init container's script with an `aws` that copies from the local bucket."""
    if not shutil.which("sha256sum"):
        pytest.skip("sha256sum (coreutils) is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "aws").write_text(
        "#!/bin/sh\n"  # aws s3 sync --only-show-errors --no-progress SRC/ DEST/
        f'src="{tmp_path}/bucket/$(basename "$5")"; mkdir -p "$6"; cp -R "$src/." "$6"\n'
    )
    (bin_dir / "aws").chmod(0o755)
    (tmp_path / "models.config").write_text(
        f"model_version_policy {{ specific {{ versions: {version} }} }}"
    )
    (tmp_path / "sync.sh").write_text(script)
    shutil.rmtree(tmp_path / "models", ignore_errors=True)
    return subprocess.run(
        ["/bin/sh", str(tmp_path / "sync.sh")],
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "MODEL_S3_URI": env["MODEL_S3_URI"],
            "MODEL_NAME": env["MODEL_NAME"],
            "MODELS_CONFIG": str(tmp_path / "models.config"),
            "MODEL_ROOT": str(tmp_path / "models"),
        },
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def installed(tmp_path: Path, version: int = 3) -> set[str]:
    root = tmp_path / "models" / "dr_grader" / str(version)
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_manifest_round_trip_and_what_verify_refuses(tmp_path):
    directory = make_version(tmp_path)
    manifest.write(directory)
    manifest.verify(directory)
    lines = (directory / manifest.MANIFEST).read_text().splitlines()
    assert [line.split("  ")[1] for line in lines] == sorted(line.split("  ")[1] for line in lines)
    (directory / "variables" / "variables.index").write_bytes(b"tampered")
    with pytest.raises(manifest.ManifestError, match="sha256 mismatch"):
        manifest.verify(directory)
    manifest.write(directory)
    (directory / "assets.extra" / "extra.bin").write_bytes(b"x")
    with pytest.raises(manifest.ManifestError, match="not in the manifest"):
        manifest.verify(directory)
    (directory / "assets.extra" / "bad name").write_bytes(b"x")
    with pytest.raises(manifest.ManifestError, match="can be released"):
        manifest.build(directory)


def test_sync_installs_a_version_that_matches_its_manifest(tmp_path, sync_script):
    script, env = sync_script
    directory = make_version(tmp_path)
    manifest.write(directory)
    (directory / "unlisted.txt").write_text("added after the release")  # never installed
    result = run_sync(tmp_path, script, env)
    assert result.returncode == 0, result.stderr
    assert installed(tmp_path) == {
        "saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001",
        "assets.extra/model_card.json", "MANIFEST.sha256",
    }  # fmt: skip
    assert not (tmp_path / "models" / ".staging").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("tamper", "do not match MANIFEST.sha256"),
        ("no_manifest", "has no MANIFEST.sha256"),
        ("escape", "is malformed"),
        ("missing_file", "do not match MANIFEST.sha256"),
    ],
)
def test_sync_refuses_a_version_whose_manifest_does_not_match(
    tmp_path, sync_script, damage, message
):
    script, env = sync_script
    directory = make_version(tmp_path)
    manifest.write(directory)
    path = directory / manifest.MANIFEST
    if damage == "tamper":  # one byte of the weights changed after the release
        data = bytearray((directory / "variables" / "variables.data-00000-of-00001").read_bytes())
        data[0] ^= 1
        (directory / "variables" / "variables.data-00000-of-00001").write_bytes(bytes(data))
    elif damage == "no_manifest":
        path.unlink()
    elif damage == "escape":
        path.write_text(path.read_text() + f"{'0' * 64}  variables/../../../etc/passwd\n")
    else:
        (directory / "assets.extra" / "model_card.json").unlink()
    result = run_sync(tmp_path, script, env)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "models" / "dr_grader" / "3" / "saved_model.pb").exists()


# --- IAM: who may write model versions ----------------------------------------------------------


def policy(name: str) -> dict[str, Any]:
    return dict(json.loads((IAM / name).read_text()))


def subjects(trust: dict[str, Any]) -> list[str]:
    out = []
    for statement in trust["Statement"]:
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        condition = statement["Condition"]
        assert set(condition) == {"StringEquals"}, "no StringLike: subjects are exact"
        equals = condition["StringEquals"]
        assert equals["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
        sub = equals["token.actions.githubusercontent.com:sub"]
        out += [sub] if isinstance(sub, str) else list(sub)
    return out


@pytest.mark.parametrize(
    ("trust", "workflow", "job"),
    [
        ("model-release-trust.json", "model-release.yml", "validate"),
        ("deploy-trust.json", "model-release.yml", "canary"),
        ("deploy-trust.json", "release.yml", "deploy"),
    ],
)
def test_release_roles_trust_only_a_protected_environment(trust, workflow, job):
    import yaml

    subs = subjects(policy(trust))
    assert subs and all("*" not in s and "?" not in s for s in subs)
    assert all(re.fullmatch(r"repo:<org>/<repo>:environment:[a-z-]+", s) for s in subs), subs
    environments = {s.split(":environment:", 1)[1] for s in subs}
    spec = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / workflow).read_text())["jobs"][job]
    # A job with `environment:` gets the subject repo:<org>/<repo>:environment:<name>.
    assert spec["environment"] in environments


def test_model_release_role_can_add_versions_but_never_overwrite_or_delete():
    permissions = policy("model-release-permissions.json")["Statement"]
    actions = {a for s in permissions if s["Effect"] == "Allow" for a in _list(s["Action"])}
    assert not any(a.endswith("*") for a in actions)
    assert not any("Delete" in a or "Retention" in a or "LegalHold" in a for a in actions)
    put = [s for s in permissions if "s3:PutObject" in _list(s["Action"])]
    assert [_list(s["Resource"]) for s in put] == [["arn:aws:s3:::<model-bucket>/dr_grader/*"]]
    bucket = policy("model-bucket-policy.json")["Statement"]
    deny_unconditional = [
        s for s in bucket
        if s["Effect"] == "Deny" and "s3:PutObject" in _list(s["Action"])
        and s.get("Condition", {}).get("Null", {}).get("s3:if-none-match") == "true"
    ]  # fmt: skip
    assert deny_unconditional, "the bucket must refuse writes that could overwrite a version"
    assert any(
        s["Effect"] == "Deny" and any("DeleteObject" in a for a in _list(s["Action"]))
        for s in bucket
    )
    workflow = (REPO_ROOT / ".github" / "workflows" / "model-release.yml").read_text()
    assert (
        "--if-none-match '*'" in workflow
        and 'aws s3 sync --only-show-errors "candidate' not in workflow
    )


def _list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
