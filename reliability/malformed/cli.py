"""Bad input against the running gateway: thousands of malformed requests, no server error.

``python -m reliability.malformed`` (see the package docstring): run the scenario and print
the tables."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from reliability.malformed.catalogue import MalformedRequests
from reliability.malformed.health import health
from reliability.malformed.report import run
from reliability.malformed.stack import serving_stack


def main(argv: list[str] | None = None) -> int:
    """Run the scenario and print the table; exit 1 when any rule is broken."""
    # prog: the usage line the runner printed as bench/malformed.py, unchanged by the split.
    parser = argparse.ArgumentParser(prog="malformed.py", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--model-root", type=Path, default=Path("export"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show-failures", type=int, default=20, help="failures listed in full")
    parser.add_argument("--show-accepted", type=int, default=40, help="2xx variants listed")
    args = parser.parse_args(argv)

    generator = MalformedRequests(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="bench-malformed-"))
    with serving_stack(args.model_root, workdir) as stack:
        report = run(stack.gateway.url, generator, args.requests, args.concurrency)
        after = health(stack)
    print(report.table())
    print(f"\n2xx by variant (the {args.show_accepted} most frequent):")
    print(report.accepted_table(args.show_accepted))
    for result in report.failures[: args.show_failures]:
        print(f"FAILURE #{result.index} {result.family} {result.variant}: {result.verdict}")
    print(after.describe())
    print(f"gateway log: {workdir / 'gateway.log'}")
    ok = report.ok and after.ok
    print("RESULT:", "PASS" if ok else "FAIL")
    return 0 if ok else 1
