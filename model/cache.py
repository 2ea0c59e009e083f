"""Preprocessing cache: every image goes once through fundus/ with the run's PreprocessConfig.

Layout of one cache (``<root>/<source>-<content key>-<PreprocessConfig fingerprint>/``):
- ``images.npy``: uint8 memmap [N, S, S, 3] in record order,
- ``meta.jsonl``: one line per finished record (quality verdict, error code, source sha1),
- ``records.json``: the record ids the cache was built for.

A line is appended to ``meta.jsonl`` only after its pixels were flushed, so an interrupted build
resumes where it stopped. Work runs in a spawn process pool (``workers > 0``) with a progress bar.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

import fundus
from fundus import FundusError, PreprocessConfig
from model.sources import DataSource, Record

log = logging.getLogger(__name__)
_FLUSH_EVERY = 256


@dataclass(frozen=True)
class ImageMeta:
    """What preprocessing learnt about one record."""

    gradable: bool
    score: float
    reasons: tuple[str, ...]
    error: str | None
    sha1: str


@dataclass
class CachedSet:
    """Preprocessed images (memmap) aligned with their records and quality metadata."""

    images: NDArray[np.uint8]
    records: list[Record]
    meta: list[ImageMeta]
    path: Path

    def indices(self, split: str) -> NDArray[np.int64]:
        """Row indices of one split ('train' = CV pool, 'test' = held out)."""
        return np.array([i for i, r in enumerate(self.records) if r.split == split], np.int64)


def cache_dir(
    root: Path, source: DataSource, records: Sequence[Record], pp: PreprocessConfig
) -> Path:
    """Directory keyed by the source content, the record list and the PreprocessConfig."""
    digest = hashlib.sha256(source.identity().encode())
    for r in records:
        digest.update(f"{r.id}|{r.grade}|{r.split}|{r.ref}\n".encode())
    return root / f"{source.name}-{digest.hexdigest()[:12]}-{pp.fingerprint()}"


# Worker state: set once per process by the pool initializer (spawned workers share nothing).
_WORKER: dict[str, Any] = {}


def _init_worker(source: DataSource, pp: PreprocessConfig) -> None:
    _WORKER["source"] = source
    _WORKER["pp"] = pp


def _process(item: tuple[int, Record]) -> tuple[int, NDArray[np.uint8] | None, ImageMeta]:
    """Load + preprocess one record; bad inputs become metadata, never exceptions."""
    index, record = item
    source: DataSource = _WORKER["source"]
    pp: PreprocessConfig = _WORKER["pp"]
    raw = source.load(record)
    sha1 = hashlib.sha1(raw if isinstance(raw, bytes) else raw.tobytes()).hexdigest()
    try:
        if isinstance(raw, bytes):
            result = fundus.load_and_preprocess(raw, pp)
        else:
            result = fundus.preprocess_image(raw, pp)
    except FundusError as exc:
        return index, None, ImageMeta(False, 0.0, (exc.code,), exc.code, sha1)
    q = result.quality
    return index, result.image, ImageMeta(q.gradable, float(q.score), tuple(q.reasons), None, sha1)


def _run(
    pending: list[tuple[int, Record]], source: DataSource, pp: PreprocessConfig, workers: int
) -> Iterator[tuple[int, NDArray[np.uint8] | None, ImageMeta]]:
    if workers <= 0:
        _init_worker(source, pp)
        yield from map(_process, pending)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, ctx, _init_worker, (source, pp)) as pool:
        yield from pool.map(_process, pending, chunksize=8)


def _read_meta(path: Path) -> dict[int, ImageMeta]:
    done: dict[int, ImageMeta] = {}
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a torn last line after a crash: redo that record
            continue
        done[int(row["index"])] = ImageMeta(
            bool(row["gradable"]),
            float(row["score"]),
            tuple(row["reasons"]),
            row["error"],
            row["sha1"],
        )
    return done


def build_cache(
    source: DataSource,
    records: Sequence[Record],
    pp: PreprocessConfig,
    root: str | Path,
    workers: int = 0,
    progress: bool = True,
) -> CachedSet:
    """Preprocess every record not yet cached (resumable) and return the cached set."""
    path = cache_dir(Path(root), source, records, pp)
    path.mkdir(parents=True, exist_ok=True)
    n, size = len(records), pp.size
    images_path, meta_path = path / "images.npy", path / "meta.jsonl"
    if images_path.exists():
        images = np.load(images_path, mmap_mode="r+")
        if images.shape != (n, size, size, 3):
            raise RuntimeError(f"{images_path}: shape {images.shape} does not match the records")
    else:
        (path / "records.json").write_text(json.dumps([r.id for r in records]))
        (path / "preprocess.json").write_text(pp.to_json())
        images = np.lib.format.open_memmap(images_path, "w+", np.uint8, (n, size, size, 3))
    done = _read_meta(meta_path)
    pending = [(i, r) for i, r in enumerate(records) if i not in done]
    if pending:
        log.info("preprocessing %d/%d images into %s", len(pending), n, path)
        buffered: list[str] = []
        with meta_path.open("a") as meta_file:

            def flush() -> None:
                images.flush()
                meta_file.write("".join(buffered))
                meta_file.flush()
                buffered.clear()

            bar = tqdm(total=n, initial=n - len(pending), desc="preprocess", disable=not progress)
            for index, image, meta in _run(pending, source, pp, workers):
                if image is not None:
                    images[index] = image
                done[index] = meta
                row = {"index": index, "id": records[index].id, **meta.__dict__}
                buffered.append(json.dumps(row) + "\n")
                if len(buffered) >= _FLUSH_EVERY:
                    flush()
                bar.update(1)
            flush()
            bar.close()
    images.flush()
    readonly = np.load(images_path, mmap_mode="r")
    return CachedSet(readonly, list(records), [done[i] for i in range(n)], path)


def is_excluded(meta: ImageMeta, drop_ungradable: bool, reasons: Sequence[str] | None) -> bool:
    """Whether an image is dropped: undecodable always; ungradable ones when configured
    (``reasons`` None = any reason, else only those reasons)."""
    if meta.error is not None:
        return True
    if meta.gradable or not drop_ungradable:
        return False
    return reasons is None or any(r in reasons for r in meta.reasons)
