"""Load and faults, CI-sized: a short soak with hey, the model server killed and restarted under
load, a model server slower than the deadline, and SIGTERM to the gateway under load.

The tests run the same functions as ``python -m reliability.soak`` and ``python -m reliability.faults``
(the full-length runs and their figures are in docs/reliability.md); every criterion is checked by
those functions and printed with the figure it was judged on.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.gateway_stack import running_stack
from harness.processes import TFServingProcess
from reliability.criteria import Report
from reliability.faults import KillPlan, SigtermPlan, SlowPlan, run_kill, run_sigterm, run_slow
from reliability.soak import soak

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_server(model_root: Path) -> Iterator[TFServingProcess]:
    """One stand-in for the soak and the SIGTERM test (each starts its own gateway): a
    stand-in start imports TensorFlow, the longest part of these tests on 2 cores."""
    server = TFServingProcess(model_root).start()
    yield server
    server.stop()


def assert_passed(report: Report) -> None:
    """Show the figures (pytest -s or on failure) and fail on any criterion that did not hold."""
    print(report.render())
    assert report.passed, "\n".join(f"{c.name}: {c.detail}" for c in report.failures)


def test_short_soak_has_no_errors_and_no_rss_growth(
    model_root: Path, lean_protos: Path, model_server: TFServingProcess, tmp_path: Path
) -> None:
    if shutil.which("hey") is None:
        pytest.skip("hey is not installed (Debian package hey; .ci/run installs it)")
    with running_stack(model_root, tmp_path, lean_protos=lean_protos, server=model_server) as stack:
        # Half the short run warms up: since decoding runs in worker threads, their malloc
        # arenas fill over the first ~200 gradings (6 s of warm-up showed +16 % with no leak).
        report = soak(stack, duration_s=30, concurrency=8, rss_interval_s=1.0, warmup_fraction=0.5)
    assert_passed(report)


def test_model_server_killed_under_load_then_restarted(
    model_root: Path, lean_protos: Path, tmp_path: Path
) -> None:
    plan = KillPlan(before_s=3, down_s=3, after_s=8)
    assert_passed(run_kill(model_root, tmp_path, plan, lean_protos))


def test_model_server_slower_than_the_deadline_gives_504(
    model_root: Path, lean_protos: Path, tmp_path: Path
) -> None:
    assert_passed(run_slow(model_root, tmp_path, SlowPlan(duration_s=5), lean_protos))


def test_sigterm_under_load_drains_and_refuses_cleanly(
    model_root: Path, lean_protos: Path, model_server: TFServingProcess, tmp_path: Path
) -> None:
    # The shared stand-in answers at full speed: at concurrency 8 in a closed loop requests are
    # in flight at any instant, and the scenario checks that some were.
    plan = SigtermPlan()
    assert_passed(run_sigterm(model_root, tmp_path, plan, lean_protos, server=model_server))
