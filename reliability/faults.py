"""Faults under load: the gateway in front of the TF Serving stand-in, real processes on 127.0.0.1.

    python -m reliability.faults --scenario kill|slow|sigterm|all [--model-root export] [options]

Scenarios (each starts its own stand-in + lean gateway, drives closed-loop load with
harness.load, which accounts for every request, and prints figures and PASS/FAIL):

- ``kill``: SIGKILL the model server mid-run, keep the load on for ``--down`` s, restart it on
  the same port. Every request gets an HTTP answer (sent == answered; no refusal, reset or
  hang) within the request deadline; while the model server is down only 503/504 with a
  backend code; /readyz turns 503; after the restart the gateway is back to all-200 within
  ``--recover-within`` s of the model being AVAILABLE (time from the restart command also
  printed; it includes TF's start-up). By default the gateway reaches the stand-in through a
  ``harness.tcp_gate.TcpGate`` that refuses connections from the kill until the restarted
  stand-in is AVAILABLE, as real TF Serving does (it listens only once its models are loaded;
  the stand-in listens first, which hides the gateway's reconnect delay), and the first
  request that succeeds must have been sent within 2 s of the port opening; ``--no-gate``
  connects directly.
- ``slow``: the model server takes ``--predict-delay`` s, beyond DRG_BACKEND_TIMEOUT_S: every
  request is answered 504, not before the backend deadline and not after the request deadline
  (latencies vs both deadlines printed).
- ``sigterm``: SIGTERM the gateway while requests are in flight (the model server takes
  ``--sigterm-delay`` s per prediction): in-flight requests complete with 200, new ones are
  refused at connect (uvicorn closes the listening socket first; in Kubernetes the preStop
  sleep has already taken the pod out of the Service), 0 connection resets, and the process
  exits within DRG_SHUTDOWN_GRACE_S after logging its lifespan shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.gateway_stack import Stack, fundus_jpeg, running_stack
from harness.load import REFUSED, RESET, TIMEOUT, LoadClient, LoadResult, Poller
from harness.load import latency_summary as summarize
from harness.processes import TFServingProcess
from reliability.criteria import Report

DOWN_CODES = frozenset({"backend_unavailable", "model_unavailable", "backend_timeout"})
"""What the gateway may answer while the model server is gone or still loading (503/504)."""
TIMEOUT_CODES = frozenset({"backend_timeout", "request_timeout"})
ANSWER_MARGIN_S = 1.0
"""Slack on a deadline for the answer to travel back on a 2-core machine shared with the load."""


@dataclass(frozen=True)
class KillPlan:
    """Timeline and limits of the ``kill`` scenario."""

    concurrency: int = 8
    before_s: float = 5.0
    down_s: float = 10.0
    after_s: float = 10.0
    streak: int = 20
    recover_within_s: float = 5.0
    min_interval_s: float = 0.1
    gated: bool = True
    reconnect_within_s: float = 2.0
    backend_timeout_s: float = 2.0
    request_timeout_s: float = 5.0


@dataclass(frozen=True)
class SlowPlan:
    """The ``slow`` scenario: a model server slower than the backend deadline."""

    concurrency: int = 4
    duration_s: float = 10.0
    predict_delay_s: float = 3.0
    backend_timeout_s: float = 1.0
    request_timeout_s: float = 2.0
    late_margin_s: float = 0.5


@dataclass(frozen=True)
class SigtermPlan:
    """The ``sigterm`` scenario: SIGTERM to the gateway with requests in flight."""

    concurrency: int = 8
    before_s: float = 3.0
    after_s: float = 3.0
    predict_delay_s: float = 1.0
    shutdown_grace_s: float = 10.0
    request_timeout_s: float = 8.0  # the drain must outlive it (Settings refuses otherwise)
    min_interval_s: float = 0.1
    exit_margin_s: float = 3.0


def _load_client(stack: Stack, body: bytes, concurrency: int, min_interval_s: float) -> LoadClient:
    deadline = stack.setting("request_timeout_s")
    return LoadClient(
        stack.grade_url,
        body,
        stack.auth_headers,
        concurrency=concurrency,
        timeout_s=deadline + 2 * ANSWER_MARGIN_S,
        min_interval_s=min_interval_s,
    )


def _count_line(result: LoadResult) -> str:
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(result.statuses().items()))
    codes = ", ".join(f"{k}: {v}" for k, v in sorted(result.codes().items())) or "none"
    return (
        f"sent {result.sent}, answered {result.answered}, outcomes {len(result.outcomes)} "
        f"in {result.duration_s:.1f} s; statuses {{{statuses}}}; error codes {{{codes}}}"
    )


def _check_every_request_answered(report: Report, result: LoadResult, deadline_s: float) -> None:
    failures = {k: v for k, v in result.statuses().items() if not k.isdigit()}
    report.check(
        "every request answered (sent == answered)",
        result.answered == result.sent,
        f"sent {result.sent}, answered {result.answered}, failures {failures or 0}",
    )
    slowest = max((o.latency_s for o in result.outcomes), default=0.0)
    report.check(
        "none hangs (every answer within the request deadline)",
        slowest <= deadline_s + ANSWER_MARGIN_S,
        f"slowest {slowest:.2f} s, deadline DRG_REQUEST_TIMEOUT_S {deadline_s:g} s "
        f"(+{ANSWER_MARGIN_S:g} s margin)",
    )


async def kill_scenario(stack: Stack, plan: KillPlan) -> Report:
    """SIGKILL the model server under load, restart it on the same port, watch the answers."""
    report = Report("kill: model server SIGKILLed under load, restarted on the same port")
    deadline = stack.setting("request_timeout_s")
    cache_s = stack.setting("readiness_cache_s")
    load = _load_client(stack, fundus_jpeg(), plan.concurrency, plan.min_interval_s)
    await load.start()
    ready_stop = asyncio.Event()
    readyz = Poller(stack.gateway.url + "/readyz", 0.25, load.now)
    poll_task = asyncio.create_task(readyz.run(ready_stop))
    await asyncio.sleep(plan.before_s)
    t_kill = load.now()
    stack.kill_server()
    await asyncio.sleep(plan.down_s)
    t_restart = load.now()
    await asyncio.to_thread(stack.restart_server)
    t_available = load.now()
    await asyncio.sleep(plan.after_s)
    result = await load.stop()
    ready_stop.set()
    await poll_task

    report.figure(
        f"gateway deadlines: DRG_BACKEND_TIMEOUT_S {stack.setting('backend_timeout_s'):g} s, "
        f"DRG_REQUEST_TIMEOUT_S {deadline:g} s; concurrency {plan.concurrency}"
    )
    report.figure(
        f"timeline (s since load start): kill {t_kill:.2f}, restart command {t_restart:.2f}, "
        f"model AVAILABLE {t_available:.2f} (stand-in start {t_available - t_restart:.2f} s"
        f"{'; port refused until then' if plan.gated else '; listening before AVAILABLE'}), "
        f"load stop {result.duration_s:.2f}"
    )
    report.figure(_count_line(result))
    before = [o for o in result.outcomes if o.done_at < t_kill]
    # Down until AVAILABLE: behind the gate the port refuses until then; directly, the
    # restarted stand-in listens first and answers NOT_FOUND while it loads.
    down = [o for o in result.outcomes if o.sent_at >= t_kill and o.done_at < t_available]
    report.figure(f"before the kill: {dict(result.statuses(before))}; {summarize(before)}")
    report.figure(f"while down: {dict(result.statuses(down))}; {summarize(down)}")
    _check_every_request_answered(report, result, deadline)
    report.check(
        "all 200 before the kill",
        bool(before) and all(o.status == 200 for o in before),
        f"{dict(result.statuses(before))}",
    )
    bad_down = [o for o in down if o.status not in (503, 504) or o.code not in DOWN_CODES]
    report.check(
        "only 503/504 with a backend code while down",
        bool(down) and not bad_down,
        f"{dict(result.codes(down))}; unexpected {len(bad_down)}",
    )
    unexpected = [o for o in result.outcomes if o.answered and o.status not in (200, 503, 504)]
    report.check(
        "no status other than 200/503/504 in the whole run",
        not unexpected,
        f"{len(unexpected)} other answers",
    )

    settled = [s for s in readyz.samples if t_kill + cache_s + 1.0 <= s[0] < t_available]
    report.figure(
        f"/readyz polled every 0.25 s: {len(settled)} polls between kill+{cache_s + 1.0:g} s "
        f"(readiness cache + 1 s) and AVAILABLE: {sorted({s[1] for s in settled})}; "
        f"last poll {readyz.samples[-1]}"
    )
    report.check(
        "/readyz 503 while the model server is down",
        bool(settled) and all(status == 503 for _, status in settled),
        f"{sum(1 for s in settled if s[1] == 503)}/{len(settled)} polls 503",
    )
    report.check(
        "/readyz 200 again at the end", readyz.samples[-1][1] == 200, f"{readyz.samples[-1]}"
    )

    after = sorted((o for o in result.outcomes if o.done_at >= t_kill), key=lambda o: o.done_at)
    first_ok = next((o.done_at for o in after if o.status == 200 and o.sent_at >= t_kill), None)
    first_ok_sent = min(
        (o.sent_at for o in result.outcomes if o.status == 200 and o.sent_at >= t_kill),
        default=None,
    )
    run = 0
    for outcome in reversed(after):
        if outcome.status != 200:
            break
        run += 1
    recovered_at = after[-run].done_at if run else None
    if first_ok is not None and recovered_at is not None:
        report.figure(
            f"first 200 sent after the kill: {first_ok - t_available:+.2f} s after AVAILABLE "
            f"({first_ok - t_restart:.2f} s after the restart command); all-200 from "
            f"{recovered_at - t_available:+.2f} s after AVAILABLE "
            f"({recovered_at - t_restart:.2f} s after the restart command), {run} answers 200 "
            f"in a row to the end"
        )
    report.check(
        f"full success again within {plan.recover_within_s:g} s of AVAILABLE",
        recovered_at is not None
        and run >= plan.streak
        and recovered_at - t_available <= plan.recover_within_s,
        "never"
        if recovered_at is None
        else f"{recovered_at - t_available:+.2f} s, then {run} x 200 (need {plan.streak})",
    )
    if plan.gated:
        # Sent time, not answer time: how soon the gateway's gRPC channel reconnected once the
        # port opened, free of the request's own latency (regression check of the channel's
        # reconnect backoff, gateway/backends/tfserving.py).
        report.check(
            f"first successful request sent within {plan.reconnect_within_s:g} s of the port "
            f"opening",
            first_ok_sent is not None and first_ok_sent - t_available <= plan.reconnect_within_s,
            "never" if first_ok_sent is None else f"{first_ok_sent - t_available:+.2f} s",
        )
    return report


async def slow_scenario(stack: Stack, plan: SlowPlan) -> Report:
    """A model server slower than the backend deadline: 504 at the deadline, every time."""
    report = Report("slow: model server slower than the backend deadline")
    backend_deadline = stack.setting("backend_timeout_s")
    request_deadline = stack.setting("request_timeout_s")
    load = _load_client(stack, fundus_jpeg(), plan.concurrency, 0.0)
    await load.start()
    await asyncio.sleep(plan.duration_s)
    result = await load.stop()
    report.figure(
        f"model server delay {plan.predict_delay_s:g} s per prediction; DRG_BACKEND_TIMEOUT_S "
        f"{backend_deadline:g} s, DRG_REQUEST_TIMEOUT_S {stack.setting('request_timeout_s'):g} s; "
        f"concurrency {plan.concurrency} (<= DRG_MAX_CONCURRENT_INFERENCES: no queueing)"
    )
    report.figure(_count_line(result))
    report.figure(f"latency: {summarize(result.outcomes)}")
    _check_every_request_answered(report, result, stack.setting("request_timeout_s"))
    wrong = [o for o in result.outcomes if o.status != 504 or o.code not in TIMEOUT_CODES]
    report.check(
        "every answer is 504 with a timeout code",
        bool(result.outcomes) and not wrong,
        f"{dict(result.codes())}; other {len(wrong)}",
    )
    latencies = [o.latency_s for o in result.outcomes]
    earliest, latest = min(latencies, default=0.0), max(latencies, default=0.0)
    one_call = sum(1 for t in latencies if t <= backend_deadline + plan.late_margin_s)
    report.figure(
        f"{one_call}/{len(latencies)} answered within the backend deadline + "
        f"{plan.late_margin_s:g} s; the rest had a second model-server call (the version "
        f"lookup, refreshed every DRG_READINESS_CACHE_S) before the prediction, each call "
        f"bounded by the backend deadline and all by the request deadline"
    )
    report.check(
        "no 504 before the backend deadline",
        earliest >= backend_deadline,
        f"earliest {earliest:.3f} s vs DRG_BACKEND_TIMEOUT_S {backend_deadline:g} s",
    )
    report.check(
        "every 504 by the request deadline",
        latest <= request_deadline + plan.late_margin_s,
        f"latest {latest:.3f} s vs DRG_REQUEST_TIMEOUT_S {request_deadline:g} s "
        f"(+{plan.late_margin_s:g} s allowed)",
    )
    return report


async def sigterm_scenario(stack: Stack, plan: SigtermPlan) -> Report:
    """SIGTERM to the gateway with requests in flight: drain, refuse new ones, exit."""
    report = Report("sigterm: gateway SIGTERMed under load")
    process = stack.gateway.process
    assert process is not None
    grace = stack.setting("shutdown_grace_s")
    load = _load_client(stack, fundus_jpeg(), plan.concurrency, plan.min_interval_s)
    await load.start()
    await asyncio.sleep(plan.before_s)
    t_term = load.now()
    process.send_signal(signal.SIGTERM)
    exit_wait = asyncio.create_task(
        asyncio.to_thread(_wait_exit, process, grace + plan.exit_margin_s + 5)
    )
    await asyncio.sleep(plan.after_s)
    result = await load.stop()
    exit_code, exited_at = await exit_wait
    t_exit = exited_at - (time.monotonic() - load.now())
    logs = stack.gateway.logs()

    in_flight = [o for o in result.outcomes if o.sent_at < t_term < o.done_at]
    late = [o for o in result.outcomes if o.sent_at >= t_term + 0.5]
    statuses = result.statuses()
    report.figure(
        f"model server args {' '.join(stack.server_args) or 'none'}; concurrency "
        f"{plan.concurrency}; DRG_SHUTDOWN_GRACE_S {grace:g} s"
    )
    report.figure(_count_line(result))
    report.figure(
        f"in flight at SIGTERM: {len(in_flight)} -> {dict(result.statuses(in_flight))}, "
        f"{summarize(in_flight)}"
    )
    report.figure(f"sent >= 0.5 s after SIGTERM: {len(late)} -> {dict(result.statuses(late))}")
    exit_after = None if exit_code is None else t_exit - t_term
    report.figure(
        f"gateway exit status {exit_code} "
        + ("(did not exit)" if exit_after is None else f"{exit_after:.2f} s after SIGTERM")
    )
    report.check(
        "0 connection resets, 0 hangs, nothing else failed",
        statuses.get(RESET, 0) == 0
        and statuses.get(TIMEOUT, 0) == 0
        and all(k.isdigit() or k == REFUSED for k in statuses),
        f"resets {statuses.get(RESET, 0)}, hangs {statuses.get(TIMEOUT, 0)}, "
        f"refused at connect {statuses.get(REFUSED, 0)}",
    )
    report.check(
        "every answer is 200 (in-flight requests complete)",
        all(o.status == 200 for o in result.outcomes if o.answered),
        f"{dict(result.statuses(o for o in result.outcomes if o.answered))}",
    )
    report.check(
        "requests in flight at SIGTERM completed with 200",
        bool(in_flight) and all(o.status == 200 for o in in_flight),
        f"{len(in_flight)} in flight, {sum(o.status == 200 for o in in_flight)} x 200",
    )
    report.check(
        "new requests refused at connect after SIGTERM",
        bool(late) and all(o.failure == REFUSED for o in late),
        f"{dict(result.statuses(late))}",
    )
    report.check(
        "exits after a graceful shutdown within DRG_SHUTDOWN_GRACE_S",
        exit_after is not None
        and exit_after <= grace + plan.exit_margin_s
        and exit_code == 0
        and "gateway stopped" in logs,
        f"status {exit_code}, lifespan shutdown logged: {'gateway stopped' in logs}",
    )
    return report


def _wait_exit(process: subprocess.Popen[bytes], timeout_s: float) -> tuple[int | None, float]:
    """(exit status or None, time.monotonic() when it exited or gave up)."""
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None, time.monotonic()
    return code, time.monotonic()


def run_kill(
    model_root: Path, workdir: Path, plan: KillPlan, lean_protos: Path | None = None
) -> Report:
    """Start a stack for ``kill`` and run it."""
    with running_stack(
        model_root,
        workdir,
        gated=plan.gated,
        backend_timeout_s=str(plan.backend_timeout_s),
        request_timeout_s=str(plan.request_timeout_s),
        lean_protos=lean_protos,
    ) as stack:
        return asyncio.run(kill_scenario(stack, plan))


def run_slow(
    model_root: Path, workdir: Path, plan: SlowPlan, lean_protos: Path | None = None
) -> Report:
    """Start a stack with a slow model server and run ``slow``."""
    with running_stack(
        model_root,
        workdir,
        server_args=("--predict-delay", str(plan.predict_delay_s)),
        backend_timeout_s=str(plan.backend_timeout_s),
        request_timeout_s=str(plan.request_timeout_s),
        max_concurrent_inferences=str(plan.concurrency),  # no queueing in the gateway
        lean_protos=lean_protos,
    ) as stack:
        return asyncio.run(slow_scenario(stack, plan))


def run_sigterm(
    model_root: Path,
    workdir: Path,
    plan: SigtermPlan,
    lean_protos: Path | None = None,
    server: TFServingProcess | None = None,
) -> Report:
    """Start a gateway in front of a slowish model server, or of the running ``server`` (its
    own speed then: ``plan.predict_delay_s`` does not apply), and run ``sigterm``."""
    with running_stack(
        model_root,
        workdir,
        server_args=() if server else ("--predict-delay", str(plan.predict_delay_s)),
        server=server,
        max_concurrent_inferences=str(plan.concurrency),
        shutdown_grace_s=str(plan.shutdown_grace_s),
        request_timeout_s=str(plan.request_timeout_s),
        lean_protos=lean_protos,
    ) as stack:
        return asyncio.run(sigterm_scenario(stack, plan))


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios; exit 1 when any criterion fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("kill", "slow", "sigterm", "all"), default="all")
    parser.add_argument("--model-root", type=Path, default=Path("export"))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--before", type=float, default=KillPlan.before_s, help="kill: s of load")
    parser.add_argument("--down", type=float, default=KillPlan.down_s, help="kill: s down")
    parser.add_argument("--after", type=float, default=KillPlan.after_s, help="kill: s after")
    parser.add_argument("--recover-within", type=float, default=KillPlan.recover_within_s)
    parser.add_argument("--no-gate", action="store_true", help="kill: connect directly")
    parser.add_argument("--slow-duration", type=float, default=SlowPlan.duration_s)
    parser.add_argument("--predict-delay", type=float, default=SlowPlan.predict_delay_s)
    parser.add_argument("--backend-timeout", type=float, default=SlowPlan.backend_timeout_s)
    parser.add_argument("--sigterm-delay", type=float, default=SigtermPlan.predict_delay_s)
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    reports: list[Report] = []
    if args.scenario in ("kill", "all"):
        kill = KillPlan(
            concurrency=args.concurrency,
            before_s=args.before,
            down_s=args.down,
            after_s=args.after,
            recover_within_s=args.recover_within,
            gated=not args.no_gate,
        )
        reports.append(run_kill(args.model_root, workdir / "kill", kill))
        print(reports[-1].render(), flush=True)
    if args.scenario in ("slow", "all"):
        slow = SlowPlan(
            concurrency=min(args.concurrency, 4),
            duration_s=args.slow_duration,
            predict_delay_s=args.predict_delay,
            backend_timeout_s=args.backend_timeout,
        )
        reports.append(run_slow(args.model_root, workdir / "slow", slow))
        print(reports[-1].render(), flush=True)
    if args.scenario in ("sigterm", "all"):
        sigterm = SigtermPlan(concurrency=args.concurrency, predict_delay_s=args.sigterm_delay)
        reports.append(run_sigterm(args.model_root, workdir / "sigterm", sigterm))
        print(reports[-1].render(), flush=True)
    print(f"logs in {workdir}")
    return 0 if all(report.passed for report in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
