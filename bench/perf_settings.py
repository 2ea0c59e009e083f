"""The gateway settings the performance benches measure with (``bench.gateway``,
``bench.serving``); the processes themselves are in harness/processes.py."""

from __future__ import annotations

# A 512 px B3 ensemble on 2 CPU cores takes seconds per request once 8 queue up.
SLOW_MODEL_TIMEOUT_S = "300"
PERF_FIELDS = {
    "max_concurrent_inferences": "8",
    "log_level": "WARNING",
    "backend_timeout_s": SLOW_MODEL_TIMEOUT_S,
    "request_timeout_s": SLOW_MODEL_TIMEOUT_S,
    "shutdown_grace_s": str(int(SLOW_MODEL_TIMEOUT_S) + 5),  # must exceed the request timeout
}
"""Gateway Settings of the performance benches: 8 concurrent inferences, quiet logs, long
timeouts (the stack is measured, not its deadlines)."""
