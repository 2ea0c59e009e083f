"""Pictures that are not gradable fundus photographs (documents, noise, black, ...)."""

from __future__ import annotations

import cv2
import numpy as np

from fundus.types import RGBImage
from synthetic.canvas import check_size, field_alpha
from synthetic.photo import synthesize_fundus

NON_FUNDUS_KINDS = ("document", "noise", "black", "gradient", "overexposed")


def synthesize_non_fundus(
    kind: str = "document", *, width: int = 640, height: int = 480, seed: int = 0
) -> RGBImage:
    """A picture that is NOT a gradable fundus photo, uint8 RGB [height, width, 3].

    kind: "document" (white page, black text lines), "noise" (uniform colour noise), "black"
    (values 0..3), "gradient" (full-frame colour gradient, no black border) or "overexposed"
    (a fundus disc washed out to near 255).
    """
    if kind not in NON_FUNDUS_KINDS:
        raise ValueError(f"unknown non-fundus kind {kind!r}; expected one of {NON_FUNDUS_KINDS}")
    check_size(width, height)
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == "black":
        return rng.integers(0, 4, (height, width, 3), dtype=np.uint8)
    if kind == "gradient":
        c0 = rng.uniform(60.0, 200.0, 3)
        c1 = rng.uniform(60.0, 240.0, 3)
        c2 = rng.uniform(60.0, 240.0, 3)
        u = np.linspace(0.0, 1.0, width)[None, :, None]
        v = np.linspace(0.0, 1.0, height)[:, None, None]
        grad = c0 * (1 - u) * (1 - v) + c1 * u * (1 - v * 0.5) + c2 * v * (1 - u * 0.5)
        grad = np.clip(grad, 40.0, 250.0)
        return np.asarray(np.round(grad), dtype=np.uint8)
    if kind == "overexposed":
        fundus = synthesize_fundus(0, width=width, height=height, seed=seed).astype(np.float32)
        field = field_alpha(width, height)[..., None]
        washed = np.float32(255.0) - (np.float32(255.0) - fundus) * np.float32(0.03)
        out = np.clip(washed * field + np.float32(0.5), 0.0, 255.0)
        return np.asarray(out, dtype=np.uint8)
    # document
    page = np.empty((height, width, 3), np.uint8)
    page[...] = np.array([246, 245, 240], np.uint8)
    page = np.clip(page.astype(np.int16) + rng.integers(-3, 4, (height, width, 1)), 0, 255).astype(
        np.uint8
    )
    line_h = max(4.0, height / 22.0)
    scale = line_h / 30.0
    thick = max(1, round(line_h / 12.0))
    margin = int(width * 0.08)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    y = margin * 0.6 + line_h
    while y < height - margin * 0.5:
        x = float(margin)
        while x < width - margin:
            word = "".join(rng.choice(letters, int(rng.integers(2, 9))))
            (tw, _), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
            if x + tw > width - margin:
                break
            cv2.putText(
                page,
                word,
                (int(x), int(y)),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                (15, 15, 20),
                thick,
                cv2.LINE_AA,
            )
            x += tw + line_h * 0.4
        y += line_h * (1.5 if rng.random() < 0.85 else 3.0)
    return np.asarray(page, dtype=np.uint8)
