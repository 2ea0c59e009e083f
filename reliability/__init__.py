"""Reliability runners: how the gateway behaves under long load, faults, malformed input and
hostile clients (``python -m reliability.soak``, ``reliability.faults``, ``reliability.malformed``,
...). Each prints the figures it judged beside its pass/fail criteria."""
