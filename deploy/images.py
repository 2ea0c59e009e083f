"""Build the gateway and models images with whichever OCI engine is present (docker, else podman).

    python -m deploy.images [--engine podman] [--export export] [--base local]

The gateway image is built from ``PYTHON_IMAGE`` (the official python:3.11 slim image) when the
engine has it or can pull it. Where no registry is reachable, a build-time stand-in is made from
Debian bookworm packages with debootstrap (Debian's Python 3.11.2 instead of python.org's 3.11.x,
same glibc family) and imported into the engine's store under a tag holding a content key, so a
second run reuses it. Certificates are mounted at build time only (podman); nothing of this
machine is copied into an image.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO_ROOT / "Dockerfile.gateway"
MODELS_DOCKERFILE = REPO_ROOT / "deploy" / "models.Dockerfile"
DEBIAN_MIRROR = os.environ.get("DRG_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# No python3-pip: the Dockerfile's build stages use the pip that `python -m venv` bootstraps
# (python3.11-venv's ensurepip wheels), so the runtime layers carry no pip at all.
# python3-distutils is named because debootstrap does not resolve the virtual package
# (python3.11-distutils) that python3.11-venv depends on.
BASE_PACKAGES = (
    "python3.11",
    "python3.11-venv",
    "python3-distutils",
    "python-is-python3",
    "ca-certificates",
)
# Removed from the debootstrap tree: apt's lists and caches, documentation, locales; and the
# EXTERNALLY-MANAGED marker (the official image has none: pip installs into /usr/local there).
BASE_PRUNE = (
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf/templates.dat-old",
    "var/log",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/lib/python3.11/EXTERNALLY-MANAGED",  # the official image has none either
)
BASE_RECIPE = 2  # bump when the recipe changes in a way the key below does not see
RLIMITS = ("--ulimit", "nofile=16384:16384", "--ulimit", "nproc=4096:4096")


class ImageError(RuntimeError):
    """An image could not be built; the message says why."""


@dataclass(frozen=True)
class Engine:
    """An OCI engine CLI (``docker`` or ``podman``)."""

    name: str
    path: str

    @property
    def is_podman(self) -> bool:
        """podman accepts build-time volumes and needs explicit rlimits on this kind of host."""
        return self.name == "podman"

    def run(self, *args: str, check: bool = True, timeout: float = 900) -> str:
        """Run the CLI; stdout. ImageError with stderr's tail when it fails and ``check``."""
        done = subprocess.run(
            [self.path, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise ImageError(f"{self.name} {args[0]} failed: {done.stderr[-3000:]}")
        return done.stdout

    def has_image(self, ref: str) -> bool:
        """Whether the engine's store holds ``ref``."""
        return self.run("image", "inspect", ref, check=False).strip() not in ("", "[]")

    def image_size(self, ref: str) -> int:
        """Size of an image in bytes as the engine reports it."""
        return int(self.run("image", "inspect", "--format", "{{.Size}}", ref).strip())

    def run_flags(self) -> tuple[str, ...]:
        """Flags every ``run`` needs here (podman: rlimits this host accepts)."""
        return RLIMITS if self.is_podman else ()


def find_engine(preferred: str | None = None) -> Engine | None:
    """docker when its daemon answers, else podman; ``preferred`` picks one; None when absent."""
    names = [preferred] if preferred else ["docker", "podman"]
    for name in names:
        path = shutil.which(name)
        if path is None:
            continue
        if name == "docker":
            ping = subprocess.run([path, "info"], capture_output=True, timeout=30, check=False)
            if ping.returncode != 0:
                continue
        return Engine(name, path)
    return None


def project_version() -> str:
    """The version in pyproject.toml (the image tag)."""
    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return str(data["project"]["version"])


def default_python_image() -> str:
    """``PYTHON_IMAGE``'s default in Dockerfile.gateway."""
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    if match is None:
        raise ImageError("Dockerfile.gateway declares no PYTHON_IMAGE default")
    return match[1]


def base_key() -> str:
    """Content key of the local base: suite, packages, pruning and recipe version."""
    recipe = repr(("bookworm", "minbase", BASE_PACKAGES, BASE_PRUNE, BASE_RECIPE, DEBIAN_MIRROR))
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def local_base_ref() -> str:
    """Tag of the locally built base in the engine's store."""
    return f"localhost/drg-python-base:3.11-bookworm-{base_key()}"


def _as_root(command: list[str]) -> list[str]:
    """``command`` as root: directly when already root, else through ``sudo -n``."""
    if os.geteuid() == 0:
        return command
    if shutil.which("sudo") is None:
        raise ImageError("debootstrap needs root (or passwordless sudo)")
    return ["sudo", "-n", *command]


def build_local_base(engine: Engine, log: Path | None = None) -> str:
    """Debian bookworm minbase + Python 3.11 imported as an image (reused when present)."""
    ref = local_base_ref()
    if engine.has_image(ref):
        return ref
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        raise ImageError("no registry base and no debootstrap to build one (apt install it)")
    with tempfile.TemporaryDirectory(prefix="drg-base-") as tmp:
        root = Path(tmp) / "rootfs"
        command = [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            "bookworm",
            str(root),
            DEBIAN_MIRROR,
        ]
        with (log or Path(os.devnull)).open("ab") as output:
            done = subprocess.run(
                _as_root(command), stdout=output, stderr=subprocess.STDOUT, check=False
            )
        if done.returncode != 0:
            raise ImageError(f"debootstrap failed (exit {done.returncode}); see {log}")
        prune = [str(root / part) for part in BASE_PRUNE]
        subprocess.run(_as_root(["rm", "-rf", *prune]), check=True)
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(
            _as_root(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tarball), "."]),
            check=True,
        )
        engine.run(
            "import",
            "--change",
            'CMD ["python3"]',
            "--change",
            "ENV LANG=C.UTF-8",
            str(tarball),
            ref,
        )
        subprocess.run(_as_root(["rm", "-rf", str(root)]), check=True)
    return ref


def python_base(engine: Engine, mode: str = "auto", log: Path | None = None) -> str:
    """The base to build from: the official image when present or pullable (``auto``,
    ``official``), else (``auto``, ``local``) the local Debian stand-in."""
    official = default_python_image()
    if mode in ("auto", "official"):
        qualified = official if "/" in official else f"docker.io/library/{official}"
        for ref in (official, qualified):
            if engine.has_image(ref):
                return ref
        if engine.run("pull", qualified, check=False, timeout=300):
            return qualified
        if mode == "official":
            raise ImageError(f"{official} cannot be pulled")
    return build_local_base(engine, log)


def build_gateway(engine: Engine, base: str, tag: str, *, layers: bool = True) -> str:
    """``Dockerfile.gateway`` from ``base`` as ``tag``; the context is the repository."""
    args = ["build", "-f", str(DOCKERFILE), "-t", tag, "--build-arg", f"PYTHON_IMAGE={base}"]
    args += ["--format", "docker"] if engine.is_podman else []
    args += ["--network", "host"]
    if engine.is_podman:
        # pip verifies the mirror's TLS with the host's CA bundle, mounted for the build only.
        args += [*RLIMITS, f"--layers={str(layers).lower()}"]
        if Path("/etc/ssl/certs").is_dir():
            args += ["-v", "/etc/ssl/certs:/etc/ssl/certs:ro"]
    engine.run(*args, str(REPO_ROOT), timeout=1800)
    return tag


def build_models(engine: Engine, export_root: Path, tag: str, base: str | None = None) -> str:
    """``deploy/models.Dockerfile`` with the export root (holding dr_grader/) as context.
    ``base``: the image whose ``cp`` the init container runs (default busybox)."""
    if not (export_root / "dr_grader").is_dir():
        raise ImageError(f"{export_root} holds no dr_grader/ export")
    args = ["build", "-f", str(MODELS_DOCKERFILE), "-t", tag]
    if base is not None:
        args += ["--build-arg", f"BASE_IMAGE={base}"]
    engine.run(*args, str(export_root), timeout=900)
    return tag


def main(argv: list[str] | None = None) -> int:
    """CLI: build both images and print their tags and sizes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["docker", "podman"], default=None)
    parser.add_argument("--base", choices=["auto", "official", "local"], default="auto")
    parser.add_argument("--export", type=Path, default=REPO_ROOT / "export")
    parser.add_argument("--tag", default=f"dr-gateway:{project_version()}")
    parser.add_argument("--models-tag", default=f"dr-models:{project_version()}")
    args = parser.parse_args(argv)
    engine = find_engine(args.engine)
    if engine is None:
        print("no OCI engine (docker or podman) found", file=sys.stderr)
        return 2
    began = time.monotonic()
    try:
        base = python_base(engine, args.base, Path(tempfile.gettempdir()) / "drg-base.log")
        print(f"base {base} ({engine.image_size(base) / 1e6:.0f} MB)")
        build_gateway(engine, base, args.tag)
        print(f"built {args.tag} ({engine.image_size(args.tag) / 1e6:.0f} MB)")
        if (args.export / "dr_grader").is_dir():
            models_base = None if base != local_base_ref() else base
            build_models(engine, args.export, args.models_tag, models_base)
            print(f"built {args.models_tag} ({engine.image_size(args.models_tag) / 1e6:.0f} MB)")
        else:
            print(f"no export in {args.export}: models image skipped (make demo exports one)")
    except ImageError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{engine.name} build took {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
