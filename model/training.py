"""Cross-validated training of the grading network (library behind ``python -m model.train``).

Run directory (``runs/<name>-<time>/`` or ``run_dir``):
  config.yaml            resolved config          data.json / ungradable.csv   data selection
  folds.csv              id, patient, grade, fold train.log                    log
  fold_<k>/history.csv   per-epoch loss, val_loss, val_acc, val_qwk, lr
  fold_<k>/best.weights.h5   best-QWK core weights  fold_<k>/state.json        early-stopping state
  fold_<k>/backup/       last-epoch weights + optimizer (resume; removed when the fold ends)
  fold_<k>/predictions.npz   OOF and test probabilities of that fold; fold_<k>/DONE
  oof.csv, test_predictions.csv, thresholds.json, summary.json   after the last fold

Re-running with the same ``run_dir`` resumes: finished folds are skipped, an interrupted fold
continues from its last epoch (weights, optimizer state, LR schedule position, best QWK).
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
from numpy.typing import NDArray

from model.batches import TrainBatches, predict_probs
from model.callbacks import QWKCheckpoint
from model.config import Config, save_config
from model.data import PreparedData, prepare_data
from model.decision import expected_grade, optimise_thresholds, predict_grade
from model.distill import prepare_teacher, soft_targets, write_report
from model.distribution import apply_distribution
from model.folds import assign_folds, read_folds, write_folds
from model.losses import class_weights, make_loss
from model.metrics import NUM_CLASSES, quadratic_weighted_kappa
from model.network import build_model, make_optimizer, reset_optimizer, training_model

log = logging.getLogger(__name__)
BEST_WEIGHTS = "best.weights.h5"
COMPACT_WEIGHTS = "best.weights.f16.npz"


def fold_dir(run_dir: Path, k: int) -> Path:
    return run_dir / f"fold_{k}"


def resolve_run_dir(config: Config) -> Path:
    """``run_dir`` when set (resume), else a new timestamped directory under runs_root."""
    if config.run_dir:
        return Path(config.run_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path(config.runs_root) / f"{config.name}-{stamp}"


def setup_logging(run_dir: Path | None = None) -> None:
    """Log to stderr and, when given, to ``run_dir/train.log``."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if run_dir is not None:
        handlers.append(logging.FileHandler(run_dir / "train.log"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )


def set_precision(precision: str) -> None:
    """Global Keras dtype policy (mixed precision keeps float32 variables and a float32 head)."""
    keras.mixed_precision.set_global_policy(precision)


def round_to_float16(model: keras.Model) -> None:
    """Round float32 weights to float16-representable values in place (compact checkpoints)."""
    for variable in model.weights:
        if str(variable.dtype) == "float32":
            value = keras.ops.convert_to_numpy(variable.value)
            variable.assign(value.astype(np.float16).astype(np.float32))


def save_compact(model: keras.Model, path: Path) -> None:
    """Weights as float16 arrays in ``model.weights`` order (half the size; transfer-friendly)."""
    arrays = {
        f"w{i:04d}": keras.ops.convert_to_numpy(v.value).astype(np.float16)
        for i, v in enumerate(model.weights)
    }
    np.savez(path, **arrays)


def load_fold_weights(model: keras.Model, directory: Path) -> None:
    """Load a fold's best weights: ``best.weights.h5`` or the compact float16 file."""
    if (directory / BEST_WEIGHTS).exists():
        model.load_weights(directory / BEST_WEIGHTS)
        return
    compact = directory / COMPACT_WEIGHTS
    if not compact.exists():
        raise FileNotFoundError(f"no {BEST_WEIGHTS} or {COMPACT_WEIGHTS} in {directory}")
    with np.load(compact) as data:
        arrays = [data[f"w{i:04d}"] for i in range(len(data.files))]
    if len(arrays) != len(model.weights):
        raise ValueError(f"{compact}: {len(arrays)} arrays for {len(model.weights)} weights")
    model.set_weights([a.astype(str(v.dtype)) for a, v in zip(arrays, model.weights, strict=True)])


class CVTrainer:
    """Trains every fold with ONE compiled training model (re-initialised between folds)."""

    def __init__(
        self,
        config: Config,
        data: PreparedData,
        run_dir: Path,
        folds: NDArray[np.int64],
        todo: list[int],
        started: float | None = None,
        teacher: NDArray[np.float32] | None = None,
    ) -> None:
        self.config, self.data, self.run_dir, self.folds = config, data, run_dir, folds
        self.teacher = teacher
        """Distillation: the teacher's probabilities per cached image (None: labels only)."""
        self.started = started if started is not None else time.monotonic()
        t = config.train
        set_precision(t.precision)
        self.devices = apply_distribution(t.distribution, t.batch_size)
        # Fold k starts from the initialisation of seed + k. All of them are drawn before anything
        # is traced: re-seeding TF later would force a retrace of the compiled train step.
        self.initial = {k: build_model(config, seed=config.seed + k).get_weights() for k in todo}
        self.core = build_model(config, seed=config.seed)
        self.train_model = training_model(self.core, config, seed=config.seed)
        grades = data.grades(data.cv_rows)
        self.weights = class_weights(grades, config.loss.class_weight)
        # One step count for every fold so the compiled step and the LR schedule are shared.
        smallest = min(int(np.sum(folds != k)) for k in range(config.folds.n_splits))
        self.batch_size = min(t.batch_size, smallest)
        self.steps = smallest // self.batch_size
        if t.steps_per_epoch:
            self.steps = min(self.steps, t.steps_per_epoch)
        optimizer = make_optimizer(config, self.steps * t.epochs, self.steps)
        jit = t.jit_compile if t.jit_compile is not None else keras.backend.backend() == "jax"
        self.train_model.compile(
            optimizer=optimizer,
            loss=make_loss(config.loss),
            jit_compile=jit and not t.run_eagerly,
            run_eagerly=t.run_eagerly,
        )
        if t.run_eagerly:
            self.core.compile(run_eagerly=True)  # eager per-epoch validation too
        log.info(
            "backend=%s precision=%s params=%d steps/epoch=%d batch=%d class_weights=%s",
            keras.backend.backend(),
            t.precision,
            self.core.count_params(),
            self.steps,
            self.batch_size,
            np.round(self.weights, 3).tolist(),
        )

    def _reinitialise(self, k: int) -> None:
        self.core.set_weights(self.initial.pop(k))
        if self.train_model.optimizer.built:
            reset_optimizer(self.train_model.optimizer)

    def train_fold(self, k: int, remaining: int = 1) -> dict[str, Any]:
        """Train fold k (or resume it), then write its OOF and test predictions."""
        cfg, data, t = self.config, self.data, self.config.train
        directory = fold_dir(self.run_dir, k)
        directory.mkdir(parents=True, exist_ok=True)
        train_rows = data.cv_rows[self.folds != k]
        val_rows = data.cv_rows[self.folds == k]
        self._reinitialise(k)
        started = time.perf_counter()
        budget = (self.started, t.time_limit_s, remaining) if t.time_limit_s is not None else None
        qwk = QWKCheckpoint(
            self.core,
            data.images,
            val_rows,
            data.grades(val_rows),
            directory / BEST_WEIGHTS,
            directory / "state.json",
            cfg.eval.decision,
            t.patience,
            t.min_epochs,
            cfg.eval.batch_size,
            budget,
            pause=(self.started + t.pause_after_s, t.backup_every)
            if t.pause_after_s is not None
            else None,
            keep=t.keep,
        )
        finished = qwk.state["epochs_done"] >= t.epochs or (
            qwk.state["wait"] >= t.patience and qwk.state["epochs_done"] >= t.min_epochs
        )
        if not finished:
            batches = TrainBatches(
                data.images,
                train_rows,
                data.grades(train_rows),
                self.weights,
                self.batch_size,
                seed=cfg.seed * 1000 + k + int(qwk.state["epochs_done"]),
                steps=self.steps,
                mixup=cfg.augment.mixup,
                targets=None
                if self.teacher is None
                else soft_targets(
                    self.teacher[train_rows], data.grades(train_rows), cfg.distill.weight
                ),
            )
            callbacks = [
                qwk,  # first: adds val_* to the logs the CSV logger writes
                keras.callbacks.CSVLogger(str(directory / "history.csv"), append=True),
                keras.callbacks.BackupAndRestore(
                    str(directory / "backup"),
                    save_freq="epoch" if t.backup_every <= 1 else t.backup_every * self.steps,
                    delete_checkpoint=False,  # deleted below once the fold is finished
                ),
            ]
            log.info("fold %d: %d train / %d val images", k, len(train_rows), len(val_rows))
            self.train_model.fit(batches, epochs=t.epochs, callbacks=callbacks, verbose=t.verbose)
            if qwk.paused:
                log.info("fold %d paused after epoch %d", k, qwk.state["epochs_done"])
                return {"fold": k, "paused_after_epoch": int(qwk.state["epochs_done"])}
        shutil.rmtree(directory / "backup", ignore_errors=True)
        train_seconds = time.perf_counter() - started
        load_fold_weights(self.core, directory)
        if t.float16_checkpoint:
            round_to_float16(self.core)
            save_compact(self.core, directory / COMPACT_WEIGHTS)
        oof = predict_probs([self.core], data.images, val_rows, cfg.eval.batch_size, cfg.eval.tta)
        test = predict_probs(
            [self.core], data.images, data.test_rows, cfg.eval.batch_size, cfg.eval.tta
        )
        np.savez(
            directory / "predictions.npz",
            val_rows=val_rows,
            oof=oof,
            test_rows=data.test_rows,
            test=test,
        )
        val_grades = data.grades(val_rows)
        summary = {
            "fold": k,
            "best_epoch": int(qwk.state["best_epoch"]) + 1,
            "kept": t.keep,
            "kept_epoch": int(qwk.state.get("kept_epoch", qwk.state["best_epoch"])) + 1,
            "epochs_done": int(qwk.state["epochs_done"]),
            "best_val_qwk_during_training": float(qwk.state["best_qwk"]),
            "stopped_by_time_limit": qwk.state.get("stopped_by_time_limit"),
            "oof_qwk_tta": quadratic_weighted_kappa(val_grades, predict_grade(oof, "argmax")),
            "oof_acc_tta": float((oof.argmax(1) == val_grades).mean()),
            "train_seconds": round(train_seconds, 1),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (directory / "DONE").write_text(json.dumps(summary, indent=2))
        log.info("fold %d done: %s", k, summary)
        return summary


def _write_probs_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def aggregate(
    config: Config, data: PreparedData, run_dir: Path, folds: list[int]
) -> dict[str, Any]:
    """Combine the outputs of the trained folds: oof.csv (their validation rows),
    test_predictions.csv (their mean), thresholds.json."""
    fold_of = read_folds(run_dir / "folds.csv")
    oof_rows: list[list[Any]] = []
    oof_probs, oof_grades, test_stack = [], [], []
    for k in folds:
        with np.load(fold_dir(run_dir, k) / "predictions.npz") as p:
            for row, probs in zip(p["val_rows"], p["oof"], strict=True):
                record = data.cached.records[int(row)]
                oof_rows.append(
                    [
                        record.id,
                        record.patient,
                        record.grade,
                        fold_of[record.id],
                        *map(float, probs),
                    ]
                )
                oof_probs.append(probs)
                oof_grades.append(record.grade)
            test_stack.append(p["test"])
    probs_header = [f"p{g}" for g in range(NUM_CLASSES)]
    _write_probs_csv(
        run_dir / "oof.csv", ["id", "patient", "grade", "fold", *probs_header], oof_rows
    )
    test_mean = np.mean(test_stack, axis=0) if test_stack else np.zeros((0, NUM_CLASSES))
    test_rows = [
        [data.cached.records[int(r)].id, data.cached.records[int(r)].grade, *map(float, probs)]
        for r, probs in zip(data.test_rows, test_mean, strict=True)
    ]
    _write_probs_csv(run_dir / "test_predictions.csv", ["id", "grade", *probs_header], test_rows)
    oof_p, oof_y = np.asarray(oof_probs), np.asarray(oof_grades)
    thresholds = optimise_thresholds(expected_grade(oof_p), oof_y)
    info = {
        "rule": config.eval.decision,
        "thresholds": thresholds,
        "oof_qwk_argmax": quadratic_weighted_kappa(oof_y, predict_grade(oof_p, "argmax")),
        "oof_qwk_thresholds": quadratic_weighted_kappa(
            oof_y, predict_grade(oof_p, "thresholds", thresholds)
        ),
    }
    (run_dir / "thresholds.json").write_text(json.dumps(info, indent=2))
    return info


def run_training(config: Config, progress: bool = True) -> Path:
    """Prepare data, assign folds, train every configured fold, aggregate. Returns the run dir."""
    run_dir = resolve_run_dir(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.run_dir = str(run_dir)
    if config.distill.teacher_run is not None:  # one student, validated like one fold
        config.folds.only = [config.distill.holdout_fold]
    setup_logging(run_dir)
    save_config(config, run_dir / "config.yaml")
    started = time.perf_counter()
    started_monotonic = time.monotonic()
    data = prepare_data(config, run_dir, progress)
    teacher = None
    if config.distill.teacher_run is not None:
        teacher = prepare_teacher(config, data, run_dir)
    folds_path = run_dir / "folds.csv"
    ids = data.ids(data.cv_rows)
    if folds_path.exists():
        fold_of = read_folds(folds_path)
        folds = np.array([fold_of[i] for i in ids], np.int64)
    else:
        folds = assign_folds(
            data.grades(data.cv_rows),
            data.patients(data.cv_rows),
            config.folds.n_splits,
            config.folds.seed,
        )
        write_folds(folds_path, [data.cached.records[i] for i in data.cv_rows], folds)
    wanted = (
        config.folds.only if config.folds.only is not None else list(range(config.folds.n_splits))
    )
    todo = [k for k in wanted if not (fold_dir(run_dir, k) / "DONE").exists()]
    if todo:
        trainer = CVTrainer(
            config,
            data,
            run_dir,
            folds,
            todo,
            started_monotonic,
            teacher=None if teacher is None else teacher.probs,
        )
        for i, k in enumerate(todo):
            if trainer.train_fold(k, remaining=len(todo) - i).get("paused_after_epoch"):
                break  # the lease is nearly over: leave the remaining folds for the resume
    # A run is complete with every fold done (a student: its one network).
    needed = wanted if teacher is not None else list(range(config.folds.n_splits))
    complete = all((fold_dir(run_dir, k) / "DONE").exists() for k in needed)
    summary: dict[str, Any] = {
        "backend": keras.backend.backend(),
        "folds_trained_now": todo,
        "seconds": round(time.perf_counter() - started, 1),
        "complete": complete,
        "data": data.counts,
        "fingerprint": data.fingerprint,
        "folds": [
            json.loads((fold_dir(run_dir, k) / "DONE").read_text())
            for k in needed
            if (fold_dir(run_dir, k) / "DONE").exists()
        ],
    }
    if complete:
        summary["thresholds"] = aggregate(config, data, run_dir, needed)
        if teacher is not None:
            summary["distill"] = write_report(
                config, teacher, run_dir, fold_dir(run_dir, wanted[0])
            )
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    log.info(
        "run %s: %s folds done in %.0f s",
        run_dir,
        "all" if complete else "some",
        summary["seconds"],
    )
    return run_dir
