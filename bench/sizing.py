"""TF Serving pod settings derived from measured EfficientNet-B3 pass costs (pure, no TensorFlow).

``derive(measurement, node_cpus)`` turns the figures ``python -m bench.tfserving_sizing`` measures
(seconds and peak memory of one B3 forward pass per (pass batch, intra-op threads) cell) into the
settings of k8s/base/tfserving (batching.config, the thread flags, memory), the backend timeout
of the gateway, the autoscaler's pending-inference target and per-route latency SLOs. The
tests/deploy cross-checks call it on the committed measurement (``RESULTS_PATH``) and compare.

Model of the work (model/serving.py): a TF Serving batch of n images runs each of the F fold
models once on the n x V stacked TTA views, so it costs F forward passes at pass batch n x V.

Assumptions, stated because the measuring machine is not the node:
- one intra-op thread on the node is as fast as one here (re-run the bench on the node type to
  replace the figures; nothing else changes);
- k = cpus / t batches running at once, each on t threads of TF's shared intra-op pool, do not
  slow one another (memory bandwidth is not modelled: the margin covers it);
- at most k passes are alive at once (inter-op pool of k threads), so the activation memory is k
  times that of one pass.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "tfserving_sizing.json"
LADDER = (1, 2, 4, 8)  # TF Serving batch sizes considered (padded up to, so small is cheap)
EXAM_IMAGES = 2  # POST /v1/exams sends both eyes in one Predict request
ROUTE_IMAGES = {"/v1/grade": 1, "/v1/exams": EXAM_IMAGES}
GIB = 2**30


@dataclass(frozen=True)
class Cell:
    """One measured cell: a B3 forward pass over ``batch`` images on ``threads`` threads."""

    batch: int
    threads: int
    seconds: float
    peak_bytes: int | None


@dataclass(frozen=True)
class Measurement:
    """What the bench measured, with the production config's pass count."""

    cells: tuple[Cell, ...]
    folds: int
    views: int
    input_size: int
    weights_bytes: int
    runtime_rss_bytes: int
    measured_cpus: int
    machine: str = ""
    load_average: float = 0.0

    @property
    def passes_per_image(self) -> int:
        """B3 forward passes behind one graded image (folds x TTA views)."""
        return self.folds * self.views

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        """From the JSON record the bench writes."""
        cells = tuple(
            Cell(int(c["batch"]), int(c["threads"]), float(c["seconds"]), _peak(c))
            for c in data["cells"]
        )
        first = data["cells"][0]
        return cls(
            cells=cells,
            folds=int(data["folds"]),
            views=int(data["views"]),
            input_size=int(data["input_size"]),
            weights_bytes=int(first["weights_bytes"]),
            runtime_rss_bytes=int(first["runtime_rss_bytes"]),
            measured_cpus=int(data["measured_cpus"]),
            machine=str(data.get("machine", "")),
            load_average=float(data.get("load_average", 0.0)),
        )

    def curve(self, threads: int) -> list[Cell]:
        """The cells of one thread count, by batch."""
        return sorted((c for c in self.cells if c.threads == threads), key=lambda c: c.batch)

    def thread_counts(self) -> list[int]:
        """Measured intra-op thread counts."""
        return sorted({c.threads for c in self.cells})


def _peak(cell: dict[str, Any]) -> int | None:
    value = cell.get("peak_above_model_bytes")
    return None if value is None else int(value)


def _interpolate(points: list[tuple[int, float]], x: int) -> float:
    """Piecewise linear in batch; beyond the largest measured batch, linear in the batch (the
    per-image cost of the largest batch), never extrapolated below the smallest."""
    if x <= points[0][0]:
        return points[0][1] * x / points[0][0]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    last_x, last_y = points[-1]
    return last_y * x / last_x


def forward_seconds(m: Measurement, pass_batch: int, threads: int) -> float:
    """Seconds of one B3 forward over ``pass_batch`` images on ``threads`` threads."""
    return _interpolate([(c.batch, c.seconds) for c in m.curve(threads)], pass_batch)


def forward_peak_bytes(m: Measurement, pass_batch: int, threads: int) -> float:
    """Peak memory of one forward pass above the loaded model (activations, workspaces)."""
    points = [(c.batch, float(c.peak_bytes)) for c in m.curve(threads) if c.peak_bytes is not None]
    if not points:
        raise ValueError(f"no peak memory measured at {threads} threads")
    return _interpolate(points, pass_batch)


def batch_seconds(m: Measurement, images: int, threads: int) -> float:
    """Seconds of one TF Serving batch of ``images``: F passes at pass batch images x V."""
    return m.folds * forward_seconds(m, images * m.views, threads)


def _round_up(value: float, step: float) -> float:
    return math.ceil(value / step - 1e-9) * step


@dataclass(frozen=True)
class Sizing:
    """Settings for the TF Serving pod and its callers, with the reasons."""

    node_cpus: int
    threads_per_batch: int
    num_batch_threads: int
    intra_op_parallelism: int
    inter_op_parallelism: int
    max_batch_size: int
    allowed_batch_sizes: tuple[int, ...]
    max_enqueued_batches: int
    batch_timeout_micros: int
    backend_timeout_s: int
    memory_gib: float
    hpa_pending_per_pod: int
    slo_p99_s: dict[str, float]
    images_per_s: float
    batch_s: float
    reasons: list[str] = field(default_factory=list, compare=False)

    @property
    def memory_quantity(self) -> str:
        """The memory as a Kubernetes quantity (Mi, so half GiB steps stay integers)."""
        return f"{round(self.memory_gib * 1024)}Mi"

    def as_dict(self) -> dict[str, Any]:
        """The settings without the reasons."""
        return {
            "threads_per_batch": self.threads_per_batch,
            "num_batch_threads": self.num_batch_threads,
            "tensorflow_intra_op_parallelism": self.intra_op_parallelism,
            "tensorflow_inter_op_parallelism": self.inter_op_parallelism,
            "max_batch_size": self.max_batch_size,
            "allowed_batch_sizes": list(self.allowed_batch_sizes),
            "max_enqueued_batches": self.max_enqueued_batches,
            "batch_timeout_micros": self.batch_timeout_micros,
            "DRG_BACKEND_TIMEOUT_S": self.backend_timeout_s,
            "memory (request = limit)": self.memory_quantity,
            "hpa pending inferences per pod": self.hpa_pending_per_pod,
            "p99 SLO s per route": self.slo_p99_s,
            "pod images/s": round(self.images_per_s, 3),
            "seconds per full batch": round(self.batch_s, 2),
        }


def _max_batch(m: Measurement, threads: int, request_images: int) -> int:
    """Smallest ladder size >= the largest request within 5 % of the best cost per image.

    TF Serving refuses a request larger than max_batch_size, so an exam (2 images) sets the floor;
    above it a bigger batch is only worth its latency if it is cheaper per image.
    """
    candidates = [n for n in LADDER if n >= request_images]
    cost = {n: batch_seconds(m, n, threads) / n for n in candidates}
    best = min(cost.values())
    return min(n for n in candidates if cost[n] <= best * 1.05)


def derive(
    m: Measurement,
    node_cpus: int = 4,
    request_images: int = EXAM_IMAGES,
    versions_loaded: int = 2,
    margin: float = 1.5,
    memory_headroom: float = 1.25,
) -> Sizing:
    """The settings for a ``node_cpus`` TF Serving pod from the measured pass costs.

    ``versions_loaded``: stable + canary during a model release. ``margin`` covers the node's
    speed relative to this machine and the contention the model ignores.
    """
    options = []
    for t in m.thread_counts():
        if t > node_cpus or node_cpus % t:
            continue
        k = node_cpus // t
        n = _max_batch(m, t, request_images)
        throughput = k * n / batch_seconds(m, n, t)
        exam_s = batch_seconds(m, request_images, t)
        options.append((t, k, n, throughput, exam_s))
    if not options:
        raise ValueError(f"no measured thread count divides {node_cpus} CPUs")
    best_throughput = max(o[3] for o in options)
    # Lowest exam latency among the options within 10 % of the best throughput.
    t, k, n, throughput, exam_s = min(
        (o for o in options if o[3] >= 0.9 * best_throughput), key=lambda o: (o[4], -o[3])
    )
    full_batch_s = batch_seconds(m, n, t)
    enqueued = k
    # Worst wait of an admitted request: the k running batches finish, then the queued batches
    # (k per round) ahead of it and its own: (1 + ceil(enqueued / k)) batch times.
    worst_s = (1 + math.ceil(enqueued / k)) * full_batch_s
    backend_timeout = math.ceil(margin * worst_s)
    activations = k * forward_peak_bytes(m, n * m.views, t)
    weights = versions_loaded * m.folds * m.weights_bytes
    memory = _round_up(memory_headroom * (m.runtime_rss_bytes + weights + activations) / GIB, 0.5)
    pending = max(1, k * n // request_images)
    slo = {
        route: _round_up(margin * (batch_seconds(m, images, t) + full_batch_s), 0.5)
        for route, images in ROUTE_IMAGES.items()
    }
    reasons = [
        f"{t} intra-op thread(s) per batch x {k} batch threads = {node_cpus} CPUs: "
        f"{throughput:.3f} images/s per pod, an exam in {exam_s:.2f} s "
        f"(options t/k/images-per-s/exam-s: "
        + ", ".join(f"{o[0]}/{o[1]}/{o[3]:.3f}/{o[4]:.2f}" for o in options)
        + ")",
        f"max_batch_size {n}: an exam is {request_images} images (TF Serving refuses a larger "
        f"request); per image {full_batch_s / n:.2f} s at {n} vs "
        + ", ".join(
            f"{s}: {batch_seconds(m, s, t) / s:.2f} s" for s in LADDER if s >= request_images
        ),
        f"max_enqueued_batches {enqueued} (= num_batch_threads, TF Serving's advice for online "
        f"serving): worst admitted wait {worst_s:.1f} s; backend timeout {margin} x = "
        f"{backend_timeout} s",
        f"memory {memory:.1f} GiB = {memory_headroom} x (runtime {m.runtime_rss_bytes / GIB:.2f} "
        f"+ weights {versions_loaded} versions x {m.folds} folds = {weights / GIB:.2f} "
        f"+ activations {k} x pass batch {n * m.views} = {activations / GIB:.2f}) GiB",
        f"HPA: {pending} pending inferences per pod = what its {k} batch threads run at once "
        f"({k} x {n} images / {request_images} per exam); more means a queue",
        "p99 SLOs = "
        + str(margin)
        + " x (own batch + one full batch ahead): "
        + ", ".join(f"{r} {s:.1f} s" for r, s in slo.items()),
    ]
    return Sizing(
        node_cpus=node_cpus,
        threads_per_batch=t,
        num_batch_threads=k,
        intra_op_parallelism=node_cpus,
        inter_op_parallelism=k,
        max_batch_size=n,
        allowed_batch_sizes=tuple(s for s in LADDER if s <= n),
        max_enqueued_batches=enqueued,
        batch_timeout_micros=2000,
        backend_timeout_s=backend_timeout,
        memory_gib=memory,
        hpa_pending_per_pod=pending,
        slo_p99_s=slo,
        images_per_s=throughput,
        batch_s=full_batch_s,
        reasons=reasons,
    )


def load_measurement(path: Path = RESULTS_PATH) -> Measurement:
    """The committed measurement."""
    return Measurement.from_dict(json.loads(path.read_text()))
