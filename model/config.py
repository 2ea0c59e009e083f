"""Run configuration: YAML file + ``key=value`` command-line overrides -> typed dataclasses.

``load_config("model/configs/retinamnist.yaml", ["train.epochs=3", "data.npz_path=/x.npz"])``.
Override values are parsed as YAML (``3`` -> int, ``true`` -> bool, ``[1,2]`` -> list,
``null`` -> None). Unknown keys are errors, so a typo never silently trains the wrong thing.
The resolved config is saved as ``config.yaml`` in every run directory.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from fundus import PreprocessConfig

SourceName = Literal["aptos", "eyepacs", "retinamnist", "folder", "synthetic"]
LossName = Literal["ce", "focal", "ordinal", "ce_ordinal"]
DecisionRule = Literal["argmax", "thresholds"]
TTAName = Literal["none", "hflip", "flip4"]
Precision = Literal["float32", "mixed_float16", "mixed_bfloat16"]
Distribution = Literal["none", "data_parallel"]


@dataclass
class SyntheticConfig:
    """Synthetic fundus photos from ``synthetic`` (CI, smoke runs)."""

    count: int = 40
    test_count: int = 10
    width: int = 384
    height: int = 288
    dark_every: int = 0
    """Every n-th image is rendered too dark (exercises the quality gate); 0 = never."""
    seed: int = 0


@dataclass
class DataConfig:
    """Where the images and labels come from and which ones are used."""

    source: SourceName = "retinamnist"
    npz_path: str | None = None
    csv: str | None = None
    images_dir: str | None = None
    test_csv: str | None = None
    test_images_dir: str | None = None
    folder: str | None = None
    test_folder: str | None = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    exclude_ungradable: bool = True
    """Drop images the quality gate calls ungradable from cross-validation (always listed)."""
    exclude_ungradable_test: bool = False
    """Also drop them from the held-out test split (off: report on the whole official split)."""
    exclude_reasons: list[str] | None = None
    """Only these quality reasons exclude an image; None = any reason."""


@dataclass
class CacheConfig:
    """Preprocessing cache (keyed by data source + PreprocessConfig)."""

    root: str = "cache"
    workers: int = 0
    """Worker processes for preprocessing; 0 = in-process."""


@dataclass
class FoldConfig:
    """Cross-validation folds (stratified by grade, grouped by patient)."""

    n_splits: int = 5
    seed: int = 42
    only: list[int] | None = None
    """Train only these folds (sharding over machines); None = all."""


@dataclass
class ModelConfig:
    """Backbone and head."""

    backbone: str = "EfficientNetB3"
    weights: str | None = None
    """Local weights file for the backbone (include_top=False); None = random init. Never a URL."""
    dropout: float = 0.3


@dataclass
class LossConfig:
    """Loss; ``ordinal`` switches the head to cumulative (CORAL-style) outputs."""

    name: LossName = "ce"
    label_smoothing: float = 0.0
    class_weight: Literal["balanced", "sqrt", "none"] = "balanced"
    focal_gamma: float = 2.0
    ordinal_weight: float = 1.0
    """Weight of the ordinal term in ``ce_ordinal``."""


@dataclass
class AugmentConfig:
    """Training-stream augmentation (keras-cv layers under TF, Keras layers under JAX)."""

    flip: bool = True
    rotation: float = 0.5
    """Fraction of a full turn: 0.5 = +-180 degrees (fundus photos have no canonical up)."""
    zoom: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2
    mixup: float = 0.0
    """Mixup (Zhang et al. 2018): each training image is blended with another of its batch,
    lambda ~ Beta(mixup, mixup) per image; labels and sample weights are blended alike. 0 = off."""


@dataclass
class TrainConfig:
    """Optimiser, schedule and stopping."""

    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    precision: Precision = "float32"
    patience: int = 10
    """Early stopping: epochs without a better validation QWK."""
    min_epochs: int = 0
    """Never stop before this many epochs."""
    keep: Literal["best_qwk", "last"] = "best_qwk"
    """Fold checkpoint: the epoch with the best validation QWK, or the last epoch (small noisy
    validation folds: the best-QWK epoch can be an early, undertrained one)."""
    ema_momentum: float | None = None
    """Keep an exponential moving average of the weights (per step); the fold keeps the averaged
    weights at the end of training. Needs ``keep: last`` (validation scores the raw weights)."""
    steps_per_epoch: int | None = None
    """Cap on steps per epoch (smoke runs); None = one pass over the fold's training images."""
    verbose: int = 2
    float16_checkpoint: bool = False
    """Round each fold's best weights to float16 values and also store them as a float16 npz
    (half the size, for moving runs between machines); predictions use the rounded weights."""
    jit_compile: bool | None = None
    """None = backend default (XLA under JAX, graph mode without XLA under TF)."""
    backup_every: int = 1
    """Save the resumable backup (weights + optimizer) every n epochs."""
    time_limit_s: float | None = None
    """Wall-clock budget for all folds of this invocation (data preparation included); each
    fold gets an equal share of what is left and stops early (best checkpoint kept) when over."""
    pause_after_s: float | None = None
    """Lease-bound machines: after this many seconds of this invocation, pause at the next epoch
    end that has a backup (fold NOT finished, backup kept); the same command resumes it."""
    run_eagerly: bool = False
    """Eager steps: slower per step but skips the ~100 s TF graph trace of B3 (tiny CI runs)."""
    distribution: Distribution = "none"
    """``data_parallel``: split each global ``batch_size`` over every visible device (JAX)."""


@dataclass
class EvalConfig:
    """Prediction and metric settings (shared by evaluate and export)."""

    tta: TTAName = "hflip"
    batch_size: int = 64
    decision: DecisionRule = "argmax"
    """How the served ``grade`` is chosen: argmax of the probabilities, or OOF-optimised
    thresholds on the expected grade (sum_k k * p_k)."""
    referable_threshold: float = 0.5
    bootstrap: int = 1000
    ece_bins: int = 15


@dataclass
class ExportConfig:
    """SavedModel export."""

    root: str = "export"
    model_name: str = "dr_grader"
    version: int | None = None
    """None = one more than the highest version already under root/model_name."""
    ensemble: bool = True
    """One SavedModel holding every fold (mean of probabilities); False = best fold only."""
    warmup_batch_sizes: list[int] | None = None
    """Batch sizes of the warmup records (one per signature and size); None = what the TF
    Serving batching configs in k8s/ allow (model.tfserving_batching.default_warmup_batch_sizes)."""
    warmup_records: int | None = None
    """Ignored: the old per-image count, still accepted so configs saved before issue 14 load."""
    verify: bool = True


@dataclass
class DistillConfig:
    """Knowledge distillation (model/distill.py): one student network learns a finished run's
    fold ensemble (its test-time views included) and the labels."""

    teacher_run: str | None = None
    """A finished run directory whose fold ensemble teaches; None = ordinary training."""
    teacher_version: int | None = None
    """The export version of the teacher, named in the student's model card."""
    weight: float = 0.7
    """Target = weight * teacher probabilities + (1 - weight) * one-hot label."""
    holdout_fold: int = 0
    """The student trains on the teacher's other folds and is validated on this one (as each
    fold model of the teacher was), so a single fold model compares like for like."""


@dataclass
class Config:
    """Everything a run needs; saved as ``config.yaml`` in the run directory."""

    name: str = "dr"
    seed: int = 42
    runs_root: str = "runs"
    run_dir: str | None = None
    """Fixed run directory (resume); None = runs_root/name-YYYYmmdd-HHMMSS."""
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: dict[str, Any] = field(default_factory=dict)
    cache: CacheConfig = field(default_factory=CacheConfig)
    folds: FoldConfig = field(default_factory=FoldConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    @property
    def preprocess_config(self) -> PreprocessConfig:
        """The fundus PreprocessConfig; its ``size`` is the model input size."""
        return PreprocessConfig.from_dict(self.preprocess)

    @property
    def image_size(self) -> int:
        """Model input side S (= preprocess.size)."""
        return self.preprocess_config.size

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON-serialisable); preprocess fully resolved."""
        data = dataclasses.asdict(self)
        data["preprocess"] = self.preprocess_config.to_dict()
        return data


T = TypeVar("T")


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _check_value(where: str, tp: Any, value: Any) -> Any:
    """Light type check / coercion of one leaf value against its annotation."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ValueError(f"{where}: {value!r} is not one of {typing.get_args(tp)}")
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(where, arg, value)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors))
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_check_value(f"{where}[]", item, v) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if _is_dataclass_type(tp):
        return from_dict(tp, value, where)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" (no dot) as a string
            return float(value)
        except ValueError:
            raise TypeError(f"{where}: expected a number, got {value!r}") from None
    if tp is bool and not isinstance(value, bool):
        raise TypeError(f"{where}: expected true/false, got {value!r}")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{where}: expected an integer, got {value!r}")
    if tp in (float, str) and not isinstance(value, tp):
        raise TypeError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from a nested dict; unknown keys and bad types are errors."""
    if not isinstance(data, dict):
        raise TypeError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{where or 'config'}: unknown keys {sorted(unknown)}")
    kwargs = {
        key: _check_value(f"{where}.{key}".lstrip("."), hints[key], value)
        for key, value in data.items()
    }
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=3"`` -> (["train", "epochs"], 3). The value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override must look like key=value, got {text!r}")
    path = key.strip().split(".")
    if any(not part for part in path):
        raise ValueError(f"bad key in override {text!r}")
    value = yaml.safe_load(raw) if raw.strip() else None
    return path, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key=value`` applied (nested keys create mappings)."""
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(data)) or {}
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ValueError(f"override {text!r}: {part!r} is not a mapping")
            node = child
        node[path[-1]] = value
    return out


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or defaults when ``path`` is None) and apply overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: top level must be a mapping")
        raw = loaded or {}
    raw = apply_overrides(raw, overrides or [])
    config = from_dict(Config, raw)
    config.preprocess_config  # noqa: B018 - validates the preprocess block early
    check_consistency(config)
    return config


def check_consistency(config: Config) -> None:
    """Reject settings that are valid one by one but not together."""
    t = config.train
    if t.ema_momentum is not None:
        if not 0.0 < t.ema_momentum < 1.0:
            raise ValueError(f"train.ema_momentum must be in (0, 1), got {t.ema_momentum}")
        if t.keep != "last":
            raise ValueError(
                "train.ema_momentum needs train.keep=last (validation is on raw weights)"
            )
    if config.augment.mixup < 0:
        raise ValueError(f"augment.mixup must be >= 0, got {config.augment.mixup}")
    d = config.distill
    if d.teacher_run is not None:
        if not 0.0 <= d.weight <= 1.0:
            raise ValueError(f"distill.weight must be in [0, 1], got {d.weight}")
        if not 0 <= d.holdout_fold < config.folds.n_splits:
            raise ValueError(
                f"distill.holdout_fold {d.holdout_fold} is not a fold of {config.folds.n_splits}"
            )
        if config.folds.only not in (None, [d.holdout_fold]):
            raise ValueError("a distillation trains one network: leave folds.only unset")


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
