"""BASELINE FOR BENCHMARKS ONLY: a seed-style naive grading service. Not the product; never
deploy it. ``bench/serving.py`` measures our stack against it on the same JPEGs and cores.

What is naive here, on purpose (the way a first prototype serves a Keras model):
- FastAPI under uvicorn with one worker; the ``async`` handler does the blocking work inside
  the event loop, so requests are served strictly one after another;
- Pillow decodes the upload at full resolution (no reduced-scale DCT decode);
- "float32 payload": the pixels become a float32 [1,S,S,3] array that is handed to Keras
  ``model.predict`` once per fold model, per request (no serving graph, no uint8 tensor,
  no request batching). The model call takes 4 bytes per value where ours sends 1.

What is the same as our SavedModel, so both do the same model work (model/serving.py): the fold
models and weights of the training run (``model.ensemble.load_fold_models``), the run's TTA
views stacked into one batch per fold model, the mean over views then over folds, the run's
decision rule and thresholds. The crop to the disc and the resize to S use fundus/'s own code
(``preprocess_image``), so both grade the same field of view; the quality verdict it computes
is ignored (every image is graded).

    python -m bench.naive_service --run-dir runs/smoke512 [--port 8090]
"""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import uvicorn
from fastapi import FastAPI, File, HTTPException, UploadFile
from numpy.typing import NDArray
from PIL import Image

from contract.grades import REFERABLE_MIN_GRADE
from fundus.config import PreprocessConfig
from fundus.pipeline import preprocess_image
from model.decision import DEFAULT_THRESHOLDS, predict_grade
from model.ensemble import load_fold_models, load_run_config, selected_folds
from model.network import NUM_CLASSES, tta_views


def naive_model_input(data: bytes, config: PreprocessConfig) -> NDArray[np.uint8]:
    """Full-resolution Pillow decode, then fundus/'s crop and resize: uint8 [S,S,3]."""
    with Image.open(io.BytesIO(data)) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return preprocess_image(pixels, config).image


@dataclass(frozen=True)
class NaiveGrader:
    """The run's fold models called with Keras ``model.predict``."""

    models: list[keras.Model]
    preprocess: PreprocessConfig
    tta: str
    rule: str
    thresholds: list[float]

    @classmethod
    def load(cls, run_dir: Path) -> NaiveGrader:
        """The folds, TTA and decision rule ``model.export`` would put in the SavedModel."""
        config = load_run_config(run_dir)
        models = load_fold_models(config, run_dir, selected_folds(config, run_dir))
        saved = run_dir / "thresholds.json"
        thresholds = json.loads(saved.read_text()).get("thresholds") if saved.exists() else None
        return cls(
            models,
            config.preprocess_config,
            config.eval.tta,
            config.eval.decision,
            list(thresholds or DEFAULT_THRESHOLDS),
        )

    def probabilities(self, pixels: NDArray[np.float32]) -> NDArray[np.float32]:
        """Mean over fold models of the mean over TTA views, for float32 [N,S,S,3]."""
        views = tta_views(pixels, self.tta)
        stacked = np.ascontiguousarray(np.concatenate(views))
        total = np.zeros((len(pixels), NUM_CLASSES), np.float64)
        for model in self.models:
            out = np.asarray(model.predict(stacked, verbose=0), np.float64)
            total += out.reshape(len(views), len(pixels), -1).mean(axis=0)
        return (total / len(self.models)).astype(np.float32)

    def grade(self, data: bytes) -> dict[str, Any]:
        """Decode, preprocess, float32, predict, decide: one image."""
        pixels = naive_model_input(data, self.preprocess).astype(np.float32)[None]
        probs = self.probabilities(pixels)
        grade = int(predict_grade(probs, self.rule, self.thresholds)[0])
        return {
            "grade": grade,
            "probabilities": [float(p) for p in probs[0]],
            "referable_probability": float(probs[0, REFERABLE_MIN_GRADE:].sum()),
        }


def create_app(run_dir: Path) -> FastAPI:
    """Load the models, then build the app (so /health answers only once they are loaded)."""
    grader = NaiveGrader.load(run_dir)
    app = FastAPI(title="naive baseline (benchmarks only)")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(image: UploadFile = File(...)) -> dict[str, Any]:  # noqa: B008
        data = await image.read()
        try:
            return grader.grade(data)  # blocking, in the event loop: the naive part
        except (OSError, ValueError) as error:
            raise HTTPException(400, f"cannot read the image: {error}") from None

    return app


def main(argv: list[str] | None = None) -> int:
    """Serve the baseline until stopped."""
    parser = argparse.ArgumentParser(description="naive baseline service (benchmarks only)")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.run_dir), host=args.host, port=args.port, workers=1, log_level="warning"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
