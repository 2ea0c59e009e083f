"""train.distribution=data_parallel: two steps over 2 JAX CPU devices match one device.

Runs in a subprocess (KERAS_BACKEND=jax and the forced 2-device host platform must be set
before keras/jax import; the rest of the suite runs TF). Same initial weights, same global
batches, with and without ``keras.distribution.DataParallel``; the trained weights and the
predictions must agree. Tolerance: the only difference allowed is float32 summation order
(gradients summed across devices, batch-norm moments reduced over two shards), ~1e-6 relative.
Probabilities and the second step's loss: atol 1e-4 (the first step's reported loss differed by
9e-4 in the run that set these bounds, so it gets 2e-3). Weights: Adam divides by sqrt(v), so a gradient that is
~0 in float32 can flip sign and move one weight by up to lr per step; hence fewer than 1 % of
the weights may differ by more than 1e-4 (measured 0.29 %; a wrong split moves 85 %) and none
by more than lr x steps. The same test on
half the batch per step (a wrong split) breaks both bounds, checked here too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, keras, numpy as np
    from model.config import load_config
    from model.distribution import apply_distribution
    from model.losses import make_loss
    from model.network import build_model, make_optimizer

    config = load_config("model/configs/tiny.yaml", [
        "preprocess.size=32", "model.dropout=0.0", "train.batch_size=4",
        "train.distribution=data_parallel",
    ])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 4, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 5, (2, 4)), 5).astype("float32")
    probe = x[0]

    def train(distributed):
        keras.distribution.set_distribution(None)
        devices = apply_distribution("data_parallel" if distributed else "none", 4)
        model = build_model(config, seed=3)
        model.compile(optimizer=make_optimizer(config, 10, 2), loss=make_loss(config.loss),
                      jit_compile=True)
        losses = [float(model.train_on_batch(x[i], y[i])) for i in range(2)]
        probs = np.asarray(model.predict(probe, batch_size=4, verbose=0))
        return devices, losses, probs, [np.asarray(w) for w in model.get_weights()]

    d1, l1, p1, w1 = train(False)
    d2, l2, p2, w2 = train(True)
    # What a wrong split would give: each step on one device's half of the batch only.
    x, y = x[:, :2], y[:, :2]
    d3, l3, p3, w3 = train(False)
    def moved(a, b):
        return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b))
    def frac(a, b):
        n = sum(int(np.sum(np.abs(u - v) > 1e-4)) for u, v in zip(a, b))
        return n / sum(u.size for u in a)
    print(json.dumps({
        "jax_devices": len(jax.devices()), "devices": [d1, d2], "losses": [l1, l2],
        "prob_diff": float(np.max(np.abs(p1 - p2))),
        "weight_diff": moved(w1, w2), "weight_frac": frac(w1, w2),
        "half_prob_diff": float(np.max(np.abs(p1 - p3))), "half_weight_frac": frac(w1, w3),
        "weights_moved": moved(w1, [np.asarray(w) for w in build_model(config, seed=3).get_weights()]),
    }))
    """
)


@pytest.mark.timeout(600)
def test_two_devices_match_one() -> None:
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND="jax",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        JAX_PLATFORMS="cpu",
        CUDA_VISIBLE_DEVICES="",
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(result)
    assert result["jax_devices"] == 2
    assert result["devices"] == [1, 2]
    assert result["weights_moved"] > 1e-3  # the two steps really trained
    assert abs(result["losses"][0][0] - result["losses"][1][0]) < 2e-3
    assert abs(result["losses"][0][1] - result["losses"][1][1]) < 1e-4
    assert result["prob_diff"] < 1e-4
    assert result["weight_frac"] < 1e-2
    assert result["weight_diff"] <= 2 * 1e-3 * 1.01  # Adam: at most lr per step, anywhere
    # The tolerances reject what a wrong split gives (half the batch per step):
    assert result["half_prob_diff"] > 1e-3
    assert result["half_weight_frac"] > 0.1
