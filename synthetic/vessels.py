"""Retina layout (disc, fovea, field) and the branching artery and vein trees (right eye)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from synthetic.canvas import DISC_FRACTION, F32, F64, SHIFT, SUB, u8_to_alpha


@dataclass(frozen=True)
class Geometry:
    """Layout of a right-eye retina on the working canvas (pixels)."""

    width: int
    height: int
    cx: float
    cy: float
    radius: float
    disc_x: float
    disc_y: float
    disc_r: float
    fovea_x: float
    fovea_y: float

    @property
    def dd(self) -> float:
        """Optic disc diameter, the natural unit of fundus anatomy."""
        return 2.0 * self.disc_r


@dataclass(frozen=True)
class VesselPath:
    """A drawn vessel centre line (for venous beading)."""

    xs: F64
    ys: F64
    thick: F64


def geometry(rng: np.random.Generator, width: int, height: int) -> Geometry:
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    radius = DISC_FRACTION * min(width, height) / 2.0
    disc_r = radius / 6.0 * float(rng.uniform(0.95, 1.05))
    return Geometry(
        width=width,
        height=height,
        cx=cx,
        cy=cy,
        radius=radius,
        disc_x=cx + radius * float(rng.uniform(0.54, 0.60)),
        disc_y=cy + radius * float(rng.uniform(-0.06, 0.02)),
        disc_r=disc_r,
        fovea_x=cx - radius * float(rng.uniform(0.10, 0.16)),
        fovea_y=cy + radius * float(rng.uniform(0.0, 0.05)),
    )


def trace(
    rng: np.random.Generator,
    *,
    x0: float,
    y0: float,
    heading: float,
    length: float,
    turn: float,
    step: float,
    wiggle: float,
) -> tuple[F64, F64, F64]:
    """Centre line of a smoothly curving vessel: points and local headings."""
    n = max(2, math.ceil(length / step))
    raw = rng.normal(0.0, wiggle, n + 2)
    smooth = np.convolve(raw, np.ones(3) / 3.0, mode="valid")
    dtheta = np.full(n, turn / n) + smooth
    hs = heading + np.cumsum(dtheta)
    xs = np.concatenate([[x0], x0 + np.cumsum(step * np.cos(hs))])
    ys = np.concatenate([[y0], y0 + np.cumsum(step * np.sin(hs))])
    return xs, ys, np.concatenate([[heading], hs])


def draw_path(mask: NDArray[np.uint8], xs: F64, ys: F64, thick: F64) -> None:
    """Draw a tapering polyline; sub-pixel widths become fainter 1-px lines."""
    t = thick[:-1]
    px = np.maximum(1, np.rint(t)).astype(np.int64)
    value = np.rint(255.0 * np.minimum(1.0, t)).astype(np.int64)
    pts = np.rint(np.stack([xs, ys], axis=1) * SUB).astype(np.int32)
    # One cv2.polylines call per run of segments sharing width and intensity.
    change = np.flatnonzero((np.diff(px) != 0) | (np.diff(value) != 0)) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [len(t)]])
    for s0, s1 in zip(starts.tolist(), stops.tolist(), strict=True):
        cv2.polylines(
            mask, [pts[s0 : s1 + 1]], False, int(value[s0]), int(px[s0]), cv2.LINE_AA, SHIFT
        )


def _grow_tree(
    rng: np.random.Generator,
    masks: list[NDArray[np.uint8]],
    geo: Geometry,
    *,
    x0: float,
    y0: float,
    heading: float,
    length: float,
    turn: float,
    thickness: float,
    depth: int,
    paths: list[VesselPath] | None,
) -> None:
    """Draw one vessel and, recursively, its branches (one mask per depth level)."""
    step = max(1.0, 0.022 * geo.radius)
    xs, ys, hs = trace(
        rng, x0=x0, y0=y0, heading=heading, length=length, turn=turn, step=step, wiggle=0.035
    )
    n = len(xs)
    thick = thickness * np.linspace(1.0, 0.4, n)
    draw_path(masks[depth], xs, ys, thick)
    if paths is not None and depth <= 1:
        paths.append(VesselPath(xs, ys, thick))
    if depth + 1 >= len(masks):
        return
    n_children = int(rng.integers(3, 6)) if depth == 0 else int(rng.integers(1, 4))
    min_thick = 0.35
    for _ in range(n_children):
        i = int(rng.uniform(0.12, 0.9) * (n - 1))
        side = 1.0 if rng.random() < 0.5 else -1.0
        child_heading = float(hs[i]) + side * float(rng.uniform(0.45, 1.05))
        child_thick = float(thick[i]) * float(rng.uniform(0.55, 0.8))
        child_len = length * float(rng.uniform(0.3, 0.55))
        child_turn = float(rng.normal(0.0, 0.45))
        if child_thick < min_thick:
            continue
        _grow_tree(
            rng,
            masks,
            geo,
            x0=float(xs[i]),
            y0=float(ys[i]),
            heading=child_heading,
            length=child_len,
            turn=child_turn,
            thickness=child_thick,
            depth=depth + 1,
            paths=paths,
        )


def vessels(rng: np.random.Generator, geo: Geometry) -> tuple[F32, F32, list[VesselPath]]:
    """Artery and vein opacity maps (0..1) and the main vein paths."""
    shape = (geo.height, geo.width)
    depth_levels = 4
    vein_masks = [np.zeros(shape, np.uint8) for _ in range(depth_levels)]
    art_masks = [np.zeros(shape, np.uint8) for _ in range(depth_levels)]
    vein_paths: list[VesselPath] = []
    t_vein = geo.dd / 12.0
    t_art = t_vein * 0.78
    r = geo.radius
    # (heading, length/R, total turn) of the main trunks for a right eye (y grows downwards).
    trunks = [
        (-math.pi / 2 - 0.35, 1.25, -1.35),  # superior temporal arcade, curves left
        (math.pi / 2 + 0.35, 1.25, 1.35),  # inferior temporal arcade
        (-math.pi / 2 + 0.45, 0.70, 0.75),  # superior nasal
        (math.pi / 2 - 0.45, 0.70, -0.75),  # inferior nasal
        (math.pi + 0.05, 0.38, 0.0),  # small macular branch
    ]
    for k, (heading, rel_len, turn) in enumerate(trunks):
        scale = 0.45 if k == 4 else 1.0
        for kind in ("vein", "artery"):
            is_vein = kind == "vein"
            dh = float(rng.normal(0.0, 0.06)) + (0.0 if is_vein else math.copysign(0.12, heading))
            length = r * rel_len * float(rng.uniform(0.9, 1.1))
            tr = turn * float(rng.uniform(0.85, 1.15)) + float(rng.normal(0.0, 0.05))
            sx = geo.disc_x + float(rng.normal(0.0, 0.12)) * geo.disc_r
            sy = geo.disc_y + float(rng.normal(0.0, 0.12)) * geo.disc_r
            _grow_tree(
                rng,
                vein_masks if is_vein else art_masks,
                geo,
                x0=sx,
                y0=sy,
                heading=heading + dh,
                length=length,
                turn=tr,
                thickness=(t_vein if is_vein else t_art) * scale,
                depth=0,
                paths=vein_paths if is_vein and k < 4 else None,
            )
    vein = u8_to_alpha(np.maximum.reduce(vein_masks))
    art = u8_to_alpha(np.maximum.reduce(art_masks))
    return art, vein, vein_paths
