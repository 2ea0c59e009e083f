"""Data sources (APTOS / EyePACS / folder / npz / synthetic) and the preprocessing cache."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fundus import PreprocessConfig
from model.cache import build_cache, cache_dir, is_excluded
from model.config import DataConfig, SyntheticConfig, load_config
from model.data import prepare_data
from model.sources import make_source, patient_of
from synthetic import encode_jpeg, encode_png, synthesize_fundus

PP = PreprocessConfig(size=32)


def _photo(grade: int, seed: int, laterality: str = "R") -> np.ndarray:
    return synthesize_fundus(grade, width=160, height=120, seed=seed, laterality=laterality)


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_patient_of():
    assert patient_of("10_left") == "10"
    assert patient_of("10_right") == "10"
    assert patient_of("abc-Left") == "abc"
    assert patient_of("0a2b3c") == "0a2b3c"


def test_aptos_layout(tmp_path):
    images = tmp_path / "train_images"
    images.mkdir()
    rows = []
    for i in range(6):
        (images / f"id{i}.png").write_bytes(encode_png(_photo(i % 5, i)))
        rows.append([f"id{i}", i % 5])
    _write_csv(tmp_path / "train.csv", ["id_code", "diagnosis"], rows)
    source = make_source(
        DataConfig(source="aptos", csv=str(tmp_path / "train.csv"), images_dir=str(images))
    )
    records = source.records()
    assert [r.grade for r in records] == [0, 1, 2, 3, 4, 0]
    assert all(r.patient == r.id and r.split == "train" for r in records)
    assert source.load(records[0])[:8] == b"\x89PNG\r\n\x1a\n"


def test_eyepacs_layout_groups_eyes_and_reads_test_split(tmp_path):
    images = tmp_path / "train"
    images.mkdir()
    rows = []
    for p in range(3):
        for eye, lat in (("left", "L"), ("right", "R")):
            (images / f"{p}_{eye}.jpeg").write_bytes(encode_jpeg(_photo(p, p, lat)))
            rows.append([f"{p}_{eye}", p])
    _write_csv(tmp_path / "trainLabels.csv", ["image", "level"], rows[:4])
    _write_csv(tmp_path / "testLabels.csv", ["image", "level"], rows[4:])
    config = DataConfig(
        source="eyepacs",
        csv=str(tmp_path / "trainLabels.csv"),
        images_dir=str(images),
        test_csv=str(tmp_path / "testLabels.csv"),
    )
    records = make_source(config).records()
    assert [(r.id, r.patient, r.split) for r in records] == [
        ("0_left", "0", "train"),
        ("0_right", "0", "train"),
        ("1_left", "1", "train"),
        ("1_right", "1", "train"),
        ("2_left", "2", "test"),
        ("2_right", "2", "test"),
    ]


def test_csv_errors(tmp_path):
    (tmp_path / "imgs").mkdir()
    _write_csv(tmp_path / "bad.csv", ["image", "grade"], [["a", 1]])
    with pytest.raises(ValueError, match="missing columns"):
        make_source(
            DataConfig(
                source="eyepacs", csv=str(tmp_path / "bad.csv"), images_dir=str(tmp_path / "imgs")
            )
        ).records()
    _write_csv(tmp_path / "ok.csv", ["image", "level"], [["missing_left", 1]])
    with pytest.raises(FileNotFoundError):
        make_source(
            DataConfig(
                source="eyepacs", csv=str(tmp_path / "ok.csv"), images_dir=str(tmp_path / "imgs")
            )
        ).records()
    with pytest.raises(ValueError, match=r"data\.csv"):
        make_source(DataConfig(source="aptos"))


def test_folder_layout(tmp_path):
    for grade in (0, 2, 4):
        d = tmp_path / str(grade)
        d.mkdir()
        (d / f"x{grade}_left.jpg").write_bytes(encode_jpeg(_photo(grade, grade)))
        (d / "notes.txt").write_text("ignored")
    records = make_source(DataConfig(source="folder", folder=str(tmp_path))).records()
    assert [(r.grade, r.patient) for r in records] == [(0, "x0"), (2, "x2"), (4, "x4")]


def test_npz_source_official_split(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for part, n in (("train", 6), ("val", 2), ("test", 3)):
        arrays[f"{part}_images"] = rng.integers(0, 255, (n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{part}_labels"] = (np.arange(n) % 5).reshape(n, 1).astype(np.uint8)
    np.savez(tmp_path / "r.npz", **arrays)
    source = make_source(DataConfig(source="retinamnist", npz_path=str(tmp_path / "r.npz")))
    records = source.records()
    assert sum(r.split == "train" for r in records) == 8
    assert sum(r.split == "test" for r in records) == 3
    image = source.load(records[-1])
    assert image.shape == (28, 28, 3) and image.dtype == np.uint8
    assert np.array_equal(image, arrays["test_images"][2])


def test_cache_builds_resumes_and_is_keyed_by_config(tmp_path):
    source = make_source(
        DataConfig(
            source="synthetic",
            synthetic=SyntheticConfig(count=6, test_count=2, width=160, height=120, dark_every=3),
        )
    )
    records = source.records()
    first = build_cache(source, records, PP, tmp_path, progress=False)
    assert first.images.shape == (8, 32, 32, 3)
    dark = [m for r, m in zip(first.records, first.meta, strict=True) if "too_dark" in m.reasons]
    assert len(dark) == 2
    # Simulate an interruption: drop the last two finished lines; the rebuild redoes only those.
    meta = first.path / "meta.jsonl"
    lines = meta.read_text().splitlines()
    meta.write_text("\n".join(lines[:-2]) + "\n")
    again = build_cache(source, records, PP, tmp_path, progress=False)
    assert len(again.path.joinpath("meta.jsonl").read_text().splitlines()) == 8
    assert np.array_equal(np.asarray(again.images), np.asarray(first.images))
    other = cache_dir(tmp_path, source, records, PreprocessConfig(size=32, ben_graham=True))
    assert other != first.path


def test_cache_parallel_matches_serial(tmp_path):
    source = make_source(
        DataConfig(
            source="synthetic",
            synthetic=SyntheticConfig(count=4, test_count=0, width=160, height=120),
        )
    )
    records = source.records()
    serial = build_cache(source, records, PP, tmp_path / "a", workers=0, progress=False)
    parallel = build_cache(source, records, PP, tmp_path / "b", workers=2, progress=False)
    assert np.array_equal(np.asarray(serial.images), np.asarray(parallel.images))
    assert [m.sha1 for m in serial.meta] == [m.sha1 for m in parallel.meta]


def test_exclusion_rules():
    from model.cache import ImageMeta

    dark = ImageMeta(False, 0.1, ("too_dark",), None, "x")
    blurred = ImageMeta(False, 0.3, ("blurred",), None, "x")
    broken = ImageMeta(False, 0.0, ("corrupt_image",), "corrupt_image", "x")
    good = ImageMeta(True, 0.9, (), None, "x")
    assert is_excluded(broken, False, None)
    assert not is_excluded(good, True, None)
    assert not is_excluded(dark, False, None)
    assert is_excluded(dark, True, None)
    assert is_excluded(dark, True, ["too_dark"]) and not is_excluded(blurred, True, ["too_dark"])


def test_prepare_data_lists_ungradable_and_keeps_test(tmp_path):
    config = load_config(
        Path(__file__).resolve().parents[2] / "model" / "configs" / "tiny.yaml",
        [
            f"cache.root={tmp_path / 'cache'}",
            "data.synthetic.count=10",
            "data.synthetic.test_count=5",
            "data.synthetic.dark_every=5",
            "preprocess.size=32",
        ],
    )
    data = prepare_data(config, tmp_path, progress=False)
    assert len(data.cv_rows) == 8  # two dark training photos excluded
    assert len(data.test_rows) == 5  # the dark test photo stays (exclude_ungradable_test: false)
    listing = list(csv.DictReader((tmp_path / "ungradable.csv").open()))
    assert sum(row["excluded"] == "True" for row in listing) == 2
    info = json.loads((tmp_path / "data.json").read_text())
    assert info["fingerprint"] == data.fingerprint and len(data.fingerprint) == 64
