"""Per-epoch validation QWK, best checkpoint, early stopping, and resumable state."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
from numpy.typing import NDArray

from model.batches import batched_predict
from model.decision import DEFAULT_THRESHOLDS, predict_grade
from model.metrics import quadratic_weighted_kappa


class QWKCheckpoint(keras.callbacks.Callback):  # type: ignore[misc]
    """Evaluate the core model on the validation fold after every epoch.

    Adds ``val_loss`` (cross-entropy), ``val_acc``, ``val_qwk`` and ``lr`` to the epoch logs (so
    CSVLogger, placed after this callback, records them), saves the core weights whenever the
    QWK improves, stops after ``patience`` epochs without improvement, and keeps its own state in
    ``state.json`` so a resumed fold continues with the same best value and patience counter.
    """

    def __init__(
        self,
        core: keras.Model,
        images: NDArray[np.uint8],
        rows: NDArray[np.int64],
        grades: NDArray[np.int64],
        best_path: Path,
        state_path: Path,
        decision: str,
        patience: int,
        min_epochs: int,
        batch_size: int,
        budget: tuple[float, float, int] | None = None,
        pause: tuple[float, int] | None = None,
        keep: str = "best_qwk",
    ) -> None:
        super().__init__()
        # (run start on time.monotonic, run time limit s, folds left): the fold's deadline is set
        # after its first epoch, so one-off compilation never eats a single fold's share.
        self.budget = budget
        self.deadline: float | None = None
        # (monotonic time after which to pause, backup period in epochs): pause only at an
        # epoch whose backup BackupAndRestore has written, so a resumed fold loses nothing.
        self.pause = pause
        self.paused = False
        self.keep = keep
        self.core = core
        self.images, self.rows, self.grades = images, rows, grades
        self.best_path, self.state_path = best_path, state_path
        self.decision = decision
        self.patience, self.min_epochs, self.batch_size = patience, min_epochs, batch_size
        self.state: dict[str, Any] = {
            "best_qwk": -math.inf,
            "best_epoch": -1,
            "wait": 0,
            "epochs_done": 0,
        }
        if state_path.exists():
            self.state.update(json.loads(state_path.read_text()))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        probs = batched_predict(self.core.predict_on_batch, self.images, self.rows, self.batch_size)
        pred = predict_grade(probs, self.decision, list(DEFAULT_THRESHOLDS))
        qwk = quadratic_weighted_kappa(self.grades, pred)
        picked = np.clip(probs[np.arange(len(probs)), self.grades], 1e-7, 1.0)
        logs["val_loss"] = float(-np.log(picked).mean())
        logs["val_acc"] = float((probs.argmax(1) == self.grades).mean())
        logs["val_qwk"] = float(qwk) if np.isfinite(qwk) else 0.0
        optimizer = self.model.optimizer
        logs["lr"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        if logs["val_qwk"] > self.state["best_qwk"]:
            self.state.update(best_qwk=logs["val_qwk"], best_epoch=epoch, wait=0)
            if self.keep == "best_qwk":
                self.core.save_weights(self.best_path)
        else:
            self.state["wait"] += 1
        self.state["epochs_done"] = epoch + 1
        self.state_path.write_text(json.dumps(self.state))
        if self.state["wait"] >= self.patience and epoch + 1 >= self.min_epochs:
            self.model.stop_training = True
        now = time.monotonic()
        if self.budget is not None and self.deadline is None:
            run_started, limit, folds_left = self.budget
            self.deadline = now + max(0.0, limit - (now - run_started)) / max(1, folds_left)
        if self.deadline is not None and now > self.deadline:
            self.state["stopped_by_time_limit"] = epoch + 1
            self.state_path.write_text(json.dumps(self.state))
            self.model.stop_training = True
        elif self.pause is not None and not self.model.stop_training:
            pause_at, backup_every = self.pause
            if now > pause_at and (epoch + 1) % max(1, backup_every) == 0:
                self.paused = True
                self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """``keep="last"``: save the weights training ended with. Keras has swapped in the
        optimizer's moving average (``train.ema_momentum``) just before this call."""
        if self.keep == "last" and not self.paused:
            self.core.save_weights(self.best_path)
            self.state["kept_epoch"] = self.state["epochs_done"] - 1
            self.state_path.write_text(json.dumps(self.state))
