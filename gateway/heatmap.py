"""Grad-CAM heatmap overlaid on the model input, as a PNG."""

from __future__ import annotations

import base64

import cv2
import numpy as np
from numpy.typing import NDArray


def overlay_png(image: NDArray[np.uint8], heatmap: NDArray[np.float32], opacity: float) -> bytes:
    """Colour-map ``heatmap`` (values in [0, 1], any size) over ``image`` (RGB) and encode PNG."""
    height, width = image.shape[:2]
    scaled = cv2.resize(np.clip(heatmap, 0.0, 1.0).astype(np.float32), (width, height))
    coloured = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_JET)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    blended = cv2.addWeighted(bgr, 1.0 - opacity, coloured, opacity, 0.0)
    ok, encoded = cv2.imencode(".png", blended)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def overlay_base64(image: NDArray[np.uint8], heatmap: NDArray[np.float32], opacity: float) -> str:
    """``overlay_png`` as base64 text for JSON."""
    return base64.b64encode(overlay_png(image, heatmap, opacity)).decode("ascii")
