"""Prepare a run's data: records -> preprocessing cache -> exclusions -> CV pool / test split.

Writes ``ungradable.csv`` (every image the quality gate rejected or that failed to decode, with
its reasons and whether it was excluded) and ``data.json`` (counts and the data fingerprint).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from model.cache import CachedSet, ImageMeta, build_cache, is_excluded
from model.config import Config
from model.sources import Record, make_source

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """Cached pixels plus the row indices used for cross-validation and held-out testing."""

    cached: CachedSet
    cv_rows: NDArray[np.int64]
    test_rows: NDArray[np.int64]
    fingerprint: str
    counts: dict[str, object]

    @property
    def images(self) -> NDArray[np.uint8]:
        return self.cached.images

    def grades(self, rows: NDArray[np.int64]) -> NDArray[np.int64]:
        return np.array([self.cached.records[i].grade for i in rows], np.int64)

    def ids(self, rows: NDArray[np.int64]) -> list[str]:
        return [self.cached.records[i].id for i in rows]

    def patients(self, rows: NDArray[np.int64]) -> list[str]:
        return [self.cached.records[i].patient for i in rows]


def data_fingerprint(cached: CachedSet, rows: NDArray[np.int64]) -> str:
    """sha256 over the PreprocessConfig and (id, grade, source sha1) of the training images."""
    digest = hashlib.sha256(cached.path.name.rsplit("-", 1)[-1].encode())
    for i in sorted(rows, key=lambda i: cached.records[i].id):
        r, m = cached.records[i], cached.meta[i]
        digest.update(f"{r.id},{r.grade},{m.sha1}\n".encode())
    return digest.hexdigest()


def prepare_data(
    config: Config, run_dir: Path | None = None, progress: bool = True
) -> PreparedData:
    """Build/reuse the cache and select rows; writes the listings into ``run_dir`` if given."""
    source = make_source(config.data)
    records = source.records()
    cached = build_cache(
        source, records, config.preprocess_config, config.cache.root, config.cache.workers, progress
    )
    d = config.data
    cv: list[int] = []
    test: list[int] = []
    listing: list[tuple[Record, ImageMeta, bool]] = []
    for i, (record, meta) in enumerate(zip(cached.records, cached.meta, strict=True)):
        drop_ungradable = (
            d.exclude_ungradable if record.split == "train" else d.exclude_ungradable_test
        )
        excluded = is_excluded(meta, drop_ungradable, d.exclude_reasons)
        if not meta.gradable or meta.error:
            listing.append((record, meta, excluded))
        if not excluded:
            (cv if record.split == "train" else test).append(i)
    cv_rows, test_rows = np.array(cv, np.int64), np.array(test, np.int64)
    if len(cv_rows) == 0:
        raise RuntimeError(
            "every training image was excluded; check data.exclude_ungradable/exclude_reasons"
        )
    counts: dict[str, object] = {
        "records": len(records),
        "cv": len(cv_rows),
        "test": len(test_rows),
        "ungradable_or_failed": len(listing),
        "excluded": sum(1 for *_, excluded in listing if excluded),
        "cv_grades": dict(sorted(Counter(int(cached.records[i].grade) for i in cv_rows).items())),
        "test_grades": dict(
            sorted(Counter(int(cached.records[i].grade) for i in test_rows).items())
        ),
    }
    fingerprint = data_fingerprint(cached, cv_rows)
    log.info("data: %s", counts)
    if run_dir is not None:
        with (run_dir / "ungradable.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "split", "grade", "score", "reasons", "error", "excluded"])
            for record, meta, excluded in listing:
                writer.writerow(
                    [
                        record.id,
                        record.split,
                        record.grade,
                        meta.score,
                        ";".join(meta.reasons),
                        meta.error or "",
                        excluded,
                    ]
                )
        info = {
            "source": source.identity(),
            "cache": str(cached.path),
            "fingerprint": fingerprint,
            "counts": counts,
        }
        (run_dir / "data.json").write_text(json.dumps(info, indent=2))
    return PreparedData(cached, cv_rows, test_rows, fingerprint, counts)
