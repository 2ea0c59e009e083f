"""``gateway.lean_protos.ensure``: the lean copy goes first on sys.path, built when missing or
stale, and start-up stops with a clear message when it cannot be."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gateway import lean_protos

REPO_ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from pathlib import Path
from gateway.lean_protos import ensure
print(ensure(Path(sys.argv[1])))
import gateway.protos
assert "tensorflow.python" not in sys.modules, "the TF runtime was loaded"
print(gateway.protos.tensor_pb2.__file__)
"""


def probe(folder: Path) -> list[str]:
    """ensure(folder) then import the protocol modules, in a fresh process without PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


def test_a_missing_folder_is_built_and_used(tmp_path: Path) -> None:
    folder = tmp_path / "lean-protos"
    used, tensor_module = probe(folder)
    assert Path(used) == folder
    assert Path(tensor_module).is_relative_to(folder)
    assert (folder / lean_protos.MARKER).read_text().strip() == lean_protos.wheel_version()


def test_a_copy_of_another_wheel_version_is_rebuilt(tmp_path: Path) -> None:
    folder = tmp_path / "lean-protos"
    lean_protos.build(folder)
    (folder / lean_protos.MARKER).write_text("0.0.1\n")
    stale = folder / "tensorflow" / "stale_pb2.py"
    stale.write_text("")
    probe(folder)
    assert not stale.exists()
    assert (folder / lean_protos.MARKER).read_text().strip() == lean_protos.wheel_version()


def test_no_copy_and_no_wheel_stops_with_the_fix(tmp_path: Path) -> None:
    # As in an image without tensorflow-serving-api and without a copy: nothing to build from.
    script = (
        "import sys\nfrom pathlib import Path\nfrom gateway import lean_protos\n"
        "lean_protos.wheel_version = lambda: None\n"
        "lean_protos.ensure(Path(sys.argv[1]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    folder = tmp_path / "lean-protos"
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert f"{folder} is missing" in done.stderr and "make setup" in done.stderr
    assert not folder.exists()
