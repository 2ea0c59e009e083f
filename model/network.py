"""The grading network: keras.applications backbone + a 5-grade head, and training augmentation.

The *core* model maps float pixels in [0, 255] (uint8 values; the EfficientNet graph rescales
them itself, so never divide by 255) to class probabilities [N, 5]. Its layers are named so the
export can split it for Grad-CAM: ``backbone`` (feature map) -> ``pool`` -> ``head_dropout`` ->
``probabilities``. Training wraps it with augmentation layers that only the training stream sees.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from contract.grades import NUM_GRADES
from model.config import AugmentConfig, Config

NUM_CLASSES = NUM_GRADES
BACKBONE_LAYER = "backbone"
HEAD_LAYERS = ("pool", "head_dropout", "probabilities")


@keras.saving.register_keras_serializable(package="dr")
class OrdinalHead(keras.layers.Layer):  # type: ignore[misc]
    """Cumulative-logit head (CORAL-style): P(y > k) = sigmoid(w.x - b_k), b_0 < b_1 < b_2 < b_3.

    The thresholds are ordered by construction (b_k = b_0 + sum softplus(d)), so the class
    probabilities p_0 = 1 - P(y>0), p_k = P(y>k-1) - P(y>k), p_4 = P(y>3) are never negative.
    Output: class probabilities [N, 5] (float32), like the softmax head.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.kernel = self.add_weight(
            shape=(input_shape[-1], 1), initializer="glorot_uniform", name="kernel"
        )
        self.first_bias = self.add_weight(
            shape=(1,), initializer=keras.initializers.Constant(-1.5), name="first_bias"
        )
        # softplus(0.5413) = 1.0: initial thresholds one logit apart.
        self.bias_gaps = self.add_weight(
            shape=(self.num_classes - 2,),
            initializer=keras.initializers.Constant(0.5413),
            name="bias_gaps",
        )

    def cumulative(self, x: Any) -> Any:
        """[N, K-1] P(y > k)."""
        logit = ops.matmul(ops.cast(x, "float32"), self.kernel)
        biases = ops.concatenate(
            [self.first_bias, self.first_bias + ops.cumsum(ops.softplus(self.bias_gaps))]
        )
        return ops.sigmoid(logit - biases[None, :])

    def call(self, x: Any) -> Any:
        s = self.cumulative(x)
        ones = ops.ones_like(s[:, :1])
        zeros = ops.zeros_like(s[:, :1])
        upper = ops.concatenate([ones, s], axis=1)
        lower = ops.concatenate([s, zeros], axis=1)
        return ops.maximum(upper - lower, 0.0)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.num_classes)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes}


def build_model(config: Config, seed: int | None = None) -> keras.Model:
    """Core model: float32 [N, S, S, 3] pixels in [0, 255] -> probabilities [N, 5]."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    size = config.image_size
    factory = getattr(keras.applications, config.model.backbone, None)
    if factory is None:
        raise ValueError(f"unknown keras.applications backbone {config.model.backbone!r}")
    weights = config.model.weights
    if weights is not None and weights.startswith(("http:", "https:", "imagenet")):
        raise ValueError("model.weights must be a local file path (this project never downloads)")
    backbone = factory(
        include_top=False, weights=weights, input_shape=(size, size, 3), name=BACKBONE_LAYER
    )
    inputs = keras.Input((size, size, 3), name="image", dtype="float32")
    features = backbone(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    x = keras.layers.Dropout(config.model.dropout, name="head_dropout")(x)
    if config.loss.name == "ordinal":
        outputs = OrdinalHead(name="probabilities")(x)
    else:
        outputs = keras.layers.Dense(
            NUM_CLASSES, activation="softmax", dtype="float32", name="probabilities"
        )(x)
    return keras.Model(inputs, outputs, name=f"dr_{config.model.backbone.lower()}")


def head_forward(model: keras.Model, features: Any) -> Any:
    """Apply the head of a core model to backbone features (inference mode)."""
    x = features
    for name in HEAD_LAYERS:
        x = (
            model.get_layer(name)(x, training=False)
            if name == "head_dropout"
            else model.get_layer(name)(x)
        )
    return x


def backbone_of(model: keras.Model) -> keras.Model:
    """The backbone sub-model (pixels -> last feature map)."""
    return model.get_layer(BACKBONE_LAYER)


def augmentation_layers(config: AugmentConfig, seed: int) -> list[keras.layers.Layer]:
    """Training-only augmentation. keras-cv layers under the TF backend (keras-cv imports TF);
    the equivalent Keras layers, same parameters, under JAX/torch."""
    layers: list[keras.layers.Layer] = []
    if keras.backend.backend() == "tensorflow":
        import keras_cv

        if config.flip:
            layers.append(keras_cv.layers.RandomFlip("horizontal_and_vertical", seed=seed))
        if config.rotation > 0:
            layers.append(
                keras_cv.layers.RandomRotation(config.rotation, fill_mode="constant", seed=seed + 1)
            )
        if config.zoom > 0:
            layers.append(
                keras_cv.layers.RandomZoom(
                    (-config.zoom, config.zoom), fill_mode="constant", seed=seed + 2
                )
            )
        if config.brightness > 0:
            layers.append(
                keras_cv.layers.RandomBrightness(config.brightness, (0, 255), seed=seed + 3)
            )
        if config.contrast > 0:
            layers.append(keras_cv.layers.RandomContrast((0, 255), config.contrast, seed=seed + 4))
        return layers
    kl = keras.layers
    if config.flip:
        layers.append(kl.RandomFlip("horizontal_and_vertical", seed=seed))
    if config.rotation > 0:
        layers.append(kl.RandomRotation(config.rotation, fill_mode="constant", seed=seed + 1))
    if config.zoom > 0:
        layers.append(
            kl.RandomZoom((-config.zoom, config.zoom), fill_mode="constant", seed=seed + 2)
        )
    if config.brightness > 0:
        layers.append(kl.RandomBrightness(config.brightness, (0, 255), seed=seed + 3))
    if config.contrast > 0:
        layers.append(kl.RandomContrast(config.contrast, (0, 255), seed=seed + 4))
    if keras.backend.backend() == "jax":
        # RandomRotation/RandomZoom declare supports_jit=False because TF's projective-transform
        # kernel has no XLA lowering; under JAX they use jax.scipy map_coordinates, which jits.
        # Without this the whole train step would run op by op (about 100x slower on a GPU).
        for layer in layers:
            layer.supports_jit = True
    return layers


def training_model(core: keras.Model, config: Config, seed: int) -> keras.Model:
    """Augmentation (active only when training=True) followed by the core model."""
    size = config.image_size
    inputs = keras.Input((size, size, 3), name="image", dtype="float32")
    x = inputs
    for layer in augmentation_layers(config.augment, seed):
        x = layer(x)
    return keras.Model(inputs, core(x), name="train_model")


def warmup_cosine(lr: float, total_steps: int, warmup_steps: int, min_ratio: float) -> Any:
    """Linear warmup from 0 to ``lr`` then cosine decay to ``min_ratio * lr``."""
    warmup_steps = max(0, min(warmup_steps, total_steps - 1))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else lr,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=min_ratio,
        warmup_target=lr if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def make_optimizer(
    config: Config, total_steps: int, steps_per_epoch: int
) -> keras.optimizers.Optimizer:
    """AdamW with warmup + cosine decay; no weight decay on biases and normalisation params;
    optionally a moving average of the weights (Keras swaps it in when ``fit`` ends)."""
    t = config.train
    schedule = warmup_cosine(
        t.lr, total_steps, math.ceil(t.warmup_epochs * steps_per_epoch), t.min_lr_ratio
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=t.weight_decay,
        use_ema=t.ema_momentum is not None,
        ema_momentum=t.ema_momentum or 0.99,
    )
    optimizer.exclude_from_weight_decay(
        var_names=["bias", "gamma", "beta", "first_bias", "bias_gaps"]
    )
    return optimizer


def reset_optimizer(optimizer: keras.optimizers.Optimizer) -> None:
    """Return a built optimizer to its initial state (step 0, zero moments) for the next fold.

    Reusing one compiled training model across folds saves a full graph trace / XLA compile per
    fold (about 90 s on 2 CPU cores for B3)."""
    inner = getattr(optimizer, "inner_optimizer", None)
    for variable in optimizer.variables:
        if inner is not None and variable.name == "dynamic_scale":
            variable.assign(np.asarray(optimizer.initial_scale, variable.dtype))
        else:
            variable.assign(np.zeros(variable.shape, variable.dtype))


def tta_views(images: Any, tta: str) -> list[Any]:
    """Test-time views of a batch [N, H, W, 3] (works on numpy and backend tensors)."""
    flip = np.flip if isinstance(images, np.ndarray) else ops.flip
    if tta == "none":
        return [images]
    flip_w = flip(images, axis=2)
    if tta == "hflip":
        return [images, flip_w]
    if tta == "flip4":
        return [images, flip_w, flip(images, axis=1), flip(flip_w, axis=1)]
    raise ValueError(f"unknown tta {tta!r}")
