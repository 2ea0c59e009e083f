"""``hey`` (Debian package hey; .ci/run installs it): sustained closed-loop HTTP load from
outside Python, and its text summary parsed."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_STATUS = re.compile(r"^\s*\[(\d{3})\]\s+(\d+) responses", re.MULTILINE)
_ERROR = re.compile(r"^\s*\[(\d+)\]\s+(.+)$", re.MULTILINE)
# Some hey builds print "50%% in": accept either.
_PERCENTILE = re.compile(r"^\s*(\d+)%+ in (\d+(?:\.\d+)?) secs", re.MULTILINE)
_RATE = re.compile(r"Requests/sec:\s+(\d+(?:\.\d+)?)")


@dataclass
class HeyResult:
    """What hey's summary says."""

    statuses: dict[int, int]
    errors: dict[str, int]
    percentiles_ms: dict[int, float]
    requests_per_s: float

    @property
    def requests(self) -> int:
        """Every request hey finished, answered or failed."""
        return sum(self.statuses.values()) + sum(self.errors.values())


def parse_hey(summary: str) -> HeyResult:
    """Parse hey's text summary (status and error distributions, latency distribution); a
    percentile hey did not print (no answer at all, or too few requests) is NaN."""
    statuses = {int(code): int(count) for code, count in _STATUS.findall(summary)}
    errors: dict[str, int] = {}
    if "Error distribution:" in summary:
        section = summary.split("Error distribution:", 1)[1]
        errors = {message.strip(): int(count) for count, message in _ERROR.findall(section)}
    percentiles = {int(p): float(s) * 1000 for p, s in _PERCENTILE.findall(summary)}
    for missing in {50, 95, 99} - set(percentiles):
        percentiles[missing] = math.nan
    rate = _RATE.search(summary)
    if rate is None:
        raise ValueError(f"unexpected hey output:\n{summary[-2000:]}")
    return HeyResult(statuses, errors, percentiles, float(rate.group(1)))


def post_options(body_file: Path, headers: dict[str, str], content_type: str) -> list[str]:
    """hey options that POST ``body_file`` as ``content_type`` with ``headers``."""
    options = ["-m", "POST", "-T", content_type, "-D", str(body_file)]
    for name, value in headers.items():
        options += ["-H", f"{name}: {value}"]
    return options


def run_hey(url: str, duration_s: float, concurrency: int, options: list[str]) -> str:
    """hey's summary for ``duration_s`` of ``concurrency`` closed-loop workers on ``url``.
    FileNotFoundError when hey is not installed, RuntimeError when it fails."""
    binary = shutil.which("hey")
    if binary is None:
        raise FileNotFoundError("hey is not installed (Debian package hey; .ci/run installs it)")
    command = [binary, "-z", f"{duration_s:g}s", "-c", str(concurrency), *options, url]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"hey failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout
