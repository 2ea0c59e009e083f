"""Data sources: turn a dataset layout into labelled records and load each record's pixels.

Layouts:
- ``aptos``: APTOS 2019 ``train.csv`` (id_code, diagnosis) + an images dir (``<id_code>.png``).
  No patient ids are published, so every image is its own group.
- ``eyepacs``: Kaggle 2015 ``trainLabels.csv`` (image, level) + images (``<image>.jpeg``);
  patient id = the name before ``_left``/``_right``.
- ``retinamnist``: the MedMNIST v2 npz; train+val form the CV pool, the official test split is
  held out. 28x28 arrays go through ``fundus.preprocess_image``.
- ``folder``: ``root/<grade>/<file>`` for grades 0..4 (patient = stem before _left/_right).
- ``synthetic``: ``synthetic`` photos, encoded as JPEG so they take the bytes path.

Sources are small picklable objects: preprocessing workers receive them and call ``load``.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from contract.grades import NUM_GRADES
from fundus.types import RGBImage
from model.config import DataConfig

Split = Literal["train", "test"]
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".tif", ".tiff", ".dcm", ".dicom")
_EYE = re.compile(r"^(?P<patient>.+?)[_-](?P<eye>left|right)$", re.IGNORECASE)


@dataclass(frozen=True)
class Record:
    """One labelled image. ``ref`` tells the source how to load it (path or index)."""

    id: str
    grade: int
    patient: str
    split: Split
    ref: str


class DataSource(Protocol):
    """What the cache needs from a dataset layout."""

    @property
    def name(self) -> str:
        """Short name of the layout (cache directory prefix)."""
        ...

    def records(self) -> list[Record]:
        """Every labelled image, CV pool (split 'train') and held-out test (split 'test')."""
        ...

    def load(self, record: Record) -> bytes | RGBImage:
        """Encoded file bytes (decoded by fundus) or an already decoded uint8 RGB array."""
        ...

    def identity(self) -> str:
        """Stable description of the source's content location, for cache keys."""
        ...


def patient_of(stem: str) -> str:
    """EyePACS-style patient id: ``'10_left'`` -> ``'10'``; other names are their own patient."""
    match = _EYE.match(stem)
    return match.group("patient") if match else stem


def _check_grade(value: str | int, where: str) -> int:
    grade = int(value)
    if not 0 <= grade <= 4:
        raise ValueError(f"{where}: grade {grade} outside 0..4")
    return grade


def _find_image(images_dir: Path, stem: str) -> Path:
    for suffix in IMAGE_SUFFIXES:
        candidate = images_dir / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no image for {stem!r} in {images_dir} (tried {IMAGE_SUFFIXES})")


@dataclass(frozen=True)
class CsvSource:
    """APTOS or EyePACS: a labels CSV + an images directory (optionally a labelled test set)."""

    name: str
    csv: Path
    images_dir: Path
    id_column: str
    label_column: str
    group_by_eye: bool
    test_csv: Path | None = None
    test_images_dir: Path | None = None

    def _read(self, csv_path: Path, images_dir: Path, split: Split) -> list[Record]:
        records = []
        with csv_path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = {self.id_column, self.label_column} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{csv_path}: missing columns {sorted(missing)}")
            for row in reader:
                stem = row[self.id_column].strip()
                path = _find_image(images_dir, stem)
                grade = _check_grade(row[self.label_column], f"{csv_path}:{stem}")
                patient = patient_of(stem) if self.group_by_eye else stem
                records.append(Record(stem, grade, patient, split, str(path)))
        return records

    def records(self) -> list[Record]:
        out = self._read(self.csv, self.images_dir, "train")
        if self.test_csv is not None:
            out += self._read(self.test_csv, self.test_images_dir or self.images_dir, "test")
        return out

    def load(self, record: Record) -> bytes:
        return Path(record.ref).read_bytes()

    def identity(self) -> str:
        return f"{self.name}:{self.csv.resolve()}:{self.test_csv}"


@dataclass(frozen=True)
class FolderSource:
    """``root/<grade>/<image>``; optional ``test_root`` with the same layout."""

    root: Path
    test_root: Path | None = None
    name: str = "folder"

    def _scan(self, root: Path, split: Split) -> list[Record]:
        records = []
        for grade in range(NUM_GRADES):
            grade_dir = root / str(grade)
            if not grade_dir.is_dir():
                continue
            for path in sorted(grade_dir.iterdir()):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    rid = (
                        f"{grade}/{path.stem}" if split == "train" else f"test/{grade}/{path.stem}"
                    )
                    records.append(Record(rid, grade, patient_of(path.stem), split, str(path)))
        if not records:
            raise ValueError(f"{root}: no images under {root}/<0..4>/")
        return records

    def records(self) -> list[Record]:
        out = self._scan(self.root, "train")
        if self.test_root is not None:
            out += self._scan(self.test_root, "test")
        return out

    def load(self, record: Record) -> bytes:
        return Path(record.ref).read_bytes()

    def identity(self) -> str:
        return f"folder:{self.root.resolve()}:{self.test_root}"


class NpzSource:
    """MedMNIST v2 RetinaMNIST npz: train+val -> CV pool, test -> held-out split."""

    name = "retinamnist"

    def __init__(self, path: Path) -> None:
        self.path = path
        with np.load(path) as data:
            self._arrays = {key: np.asarray(data[key]) for key in data.files}
        self._md5 = hashlib.md5(path.read_bytes()).hexdigest()

    def records(self) -> list[Record]:
        out = []
        for part, split in (("train", "train"), ("val", "train"), ("test", "test")):
            labels = self._arrays[f"{part}_labels"].reshape(-1)
            for i, label in enumerate(labels):
                rid = f"{part}_{i:04d}"
                grade = _check_grade(int(label), rid)
                out.append(Record(rid, grade, rid, split, f"{part}:{i}"))  # type: ignore[arg-type]
        return out

    def load(self, record: Record) -> RGBImage:
        part, index = record.ref.split(":")
        image = self._arrays[f"{part}_images"][int(index)]
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        return np.ascontiguousarray(image, dtype=np.uint8)

    def identity(self) -> str:
        return f"retinamnist:md5={self._md5}"


@dataclass(frozen=True)
class SyntheticSource:
    """Deterministic synthetic photos; pairs of records share a patient (left + right eye)."""

    count: int
    test_count: int
    width: int
    height: int
    dark_every: int = 0
    seed: int = 0
    name: str = "synthetic"

    def records(self) -> list[Record]:
        out = []
        for i in range(self.count + self.test_count):
            split: Split = "train" if i < self.count else "test"
            grade = i % 5
            eye = "right" if i % 2 == 0 else "left"
            patient = f"p{i // 2:04d}"
            rid = f"{patient}_{eye}"
            out.append(Record(rid, grade, patient, split, f"{self.seed + i}:{grade}:{eye}"))
        return out

    def load(self, record: Record) -> bytes:
        from synthetic import encode_jpeg, synthesize_fundus

        seed, grade, eye = record.ref.split(":")
        index = int(seed) - self.seed
        dark = self.dark_every > 0 and index % self.dark_every == self.dark_every - 1
        image = synthesize_fundus(
            int(grade),
            width=self.width,
            height=self.height,
            seed=int(seed),
            laterality="L" if eye == "left" else "R",
            brightness=0.12 if dark else 1.0,
        )
        return encode_jpeg(image)

    def identity(self) -> str:
        return (
            f"synthetic:{self.count}:{self.test_count}:{self.width}x{self.height}:"
            f"{self.dark_every}:{self.seed}"
        )


def _need(value: str | None, key: str) -> Path:
    if not value:
        raise ValueError(f"data.{key} must be set for this data source")
    return Path(value)


def _opt(value: str | None) -> Path | None:
    return Path(value) if value else None


def make_source(config: DataConfig) -> DataSource:
    """Build the configured source; paths come from the config only."""
    if config.source == "aptos":
        return CsvSource(
            "aptos",
            _need(config.csv, "csv"),
            _need(config.images_dir, "images_dir"),
            "id_code",
            "diagnosis",
            group_by_eye=False,
            test_csv=_opt(config.test_csv),
            test_images_dir=_opt(config.test_images_dir),
        )
    if config.source == "eyepacs":
        return CsvSource(
            "eyepacs",
            _need(config.csv, "csv"),
            _need(config.images_dir, "images_dir"),
            "image",
            "level",
            group_by_eye=True,
            test_csv=_opt(config.test_csv),
            test_images_dir=_opt(config.test_images_dir),
        )
    if config.source == "retinamnist":
        return NpzSource(_need(config.npz_path, "npz_path"))
    if config.source == "folder":
        return FolderSource(_need(config.folder, "folder"), _opt(config.test_folder))
    syn = config.synthetic
    return SyntheticSource(
        syn.count, syn.test_count, syn.width, syn.height, syn.dark_every, syn.seed
    )
