"""Sending the requests and reporting: results per family x status x code, and the 2xx
variants."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx

from harness.load import closed_loop
from reliability.malformed.catalogue import FAMILIES
from reliability.malformed.judging import Kind, Verdict, judge
from reliability.malformed.wire import MalformedRequest


@dataclass(frozen=True)
class Result:
    """One request's index, family, variant and verdict."""

    index: int
    family: str
    variant: str
    verdict: Verdict


@dataclass
class Report:
    """All results of a run and its timing."""

    results: list[Result] = field(default_factory=list)
    wall_s: float = 0.0
    concurrency: int = 1

    def count(self, kind: Kind) -> int:
        """Requests whose verdict is ``kind``."""
        return sum(r.verdict.kind == kind for r in self.results)

    @property
    def families(self) -> Counter[str]:
        """Requests per family."""
        return Counter(r.family for r in self.results)

    @property
    def failures(self) -> list[Result]:
        """Every answer that breaks the rules."""
        return [r for r in self.results if r.verdict.kind not in ("accepted", "refused")]

    @property
    def ok(self) -> bool:
        """No 5xx, no codeless 4xx, no transport error, and every family exercised."""
        return not self.failures and set(self.families) == set(FAMILIES)

    def table(self) -> str:
        """family x status x code counts, then totals."""
        rows = Counter(
            (r.family, r.verdict.kind, str(r.verdict.status or "-"), r.verdict.code)
            for r in self.results
        )
        lines = [f"{'family':<20} {'status':>6} {'verdict':<15} {'code':<42} {'count':>6}"]
        for (family, kind, status, code), n in sorted(rows.items()):
            lines.append(f"{family:<20} {status:>6} {kind:<15} {code[:42]:<42} {n:>6}")
        lines.append("")
        lines.append(f"{'family':<20} {'requests':>8} {'2xx':>6} {'4xx+code':>9} {'other':>6}")
        for family in FAMILIES:
            own = [r for r in self.results if r.family == family]
            accepted = sum(r.verdict.kind == "accepted" for r in own)
            refused = sum(r.verdict.kind == "refused" for r in own)
            other = len(own) - accepted - refused
            lines.append(f"{family:<20} {len(own):>8} {accepted:>6} {refused:>9} {other:>6}")
        total = len(self.results)
        rate = total / self.wall_s if self.wall_s else 0.0
        lines += [
            "",
            f"requests {total}, concurrency {self.concurrency}, wall {self.wall_s:.1f} s, "
            f"{rate:.1f} requests/s",
            f"families exercised: {len(self.families)}/{len(FAMILIES)}",
            f"2xx (damaged input that still decoded, or a lie the gateway may ignore): "
            f"{self.count('accepted')}",
            f"4xx with a valid error code: {self.count('refused')}",
            f"5xx (must be 0): {self.count('server_error')}",
            f"4xx/other without a valid code (must be 0): {self.count('codeless')}",
            f"connection errors/timeouts (must be 0): {self.count('transport_error')}",
        ]
        return "\n".join(lines)

    def accepted_table(self, limit: int = 40) -> str:
        """The most frequent variants answered 2xx: what still decoded, or what was ignored."""
        rows = Counter(
            (r.family, r.variant, r.verdict.code)
            for r in self.results
            if r.verdict.kind == "accepted"
        )
        lines = [f"{'family':<20} {'variant':<52} {'answer':<16} {'count':>5}"]
        for (family, variant, code), n in rows.most_common(limit):
            lines.append(f"{family:<20} {variant[:52]:<52} {code[:16]:<16} {n:>5}")
        if len(rows) > limit:
            lines.append(f"... {len(rows) - limit} more variants")
        return "\n".join(lines)


def send(http: httpx.Client, request: MalformedRequest) -> Verdict:
    """One request; transport failures become a verdict, not an exception."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()]
    body = request.body
    content: bytes | Iterator[bytes] = body
    if request.chunked:
        content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
    try:
        response = http.request(request.method, request.path, headers=headers, content=content)
    except httpx.TransportError as error:
        return Verdict("transport_error", None, f"{type(error).__name__}: {error}"[:120])
    return judge(request, response)


def run(
    base_url: str,
    requests: Callable[[int], MalformedRequest],
    count: int,
    concurrency: int = 8,
    timeout_s: float = 60.0,
    first: int = 0,
) -> Report:
    """Send requests ``first .. first + count - 1`` with ``concurrency`` clients."""

    def one(index: int) -> Result:
        request = requests(index)
        return Result(index, request.family, request.variant, send(http, request))

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=base_url, timeout=timeout_s, limits=limits) as http:
        results, wall_s = closed_loop(one, range(first, first + count), concurrency)
    return Report(results, wall_s, concurrency)
