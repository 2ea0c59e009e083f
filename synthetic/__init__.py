"""Deterministic synthetic fundus photographs (and non-fundus pictures) plus file encoders.

Used by tests, demos and CI when no real data is available. Everything is pure numpy + OpenCV +
Pillow + pydicom (never TensorFlow) and fully deterministic: the same arguments always give the
same array / the same bytes.

Design notes
------------
* One ``numpy.random.default_rng(seed)`` is split (``Generator.spawn``) into independent streams
  for the background, the lesions and the fine sensor noise. The background and the noise never
  depend on ``grade``, so for a given seed and size every grade shares the identical retina and
  only the lesions differ.
* Lesion sets are nested: each lesion type draws a fixed candidate list and one uniform number
  from its own stream; the grade only decides how many candidates are used (per-grade count
  ranges are non-decreasing), so grade ``g + 1`` contains every lesion of grade ``g``.
* The retina is drawn for a right eye (optic disc right of the fovea) at a working resolution
  whose long side is at most 1024 px (and whose short side is at least 256 px when that fits);
  a left eye is the horizontal mirror. The drawing is then resized to the requested size, fine
  noise is added at the final resolution and everything outside the circular field is zeroed.
* Sizes are all relative to the disc radius, so any size from ~28 px to 5000 px works.

CLI: ``python -m synthetic --grade 2 --size 1024x768 --seed 3 --format jpeg --out x.jpg``
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filewriter import dcmwrite
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, generate_uid

from fundus.types import Laterality, RGBImage

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

__all__ = [
    "DICOM_SOP_CLASSES",
    "DICOM_TRANSFER_SYNTAXES",
    "NON_FUNDUS_KINDS",
    "encode_dicom",
    "encode_jpeg",
    "encode_png",
    "encode_tiff",
    "main",
    "synthesize_fundus",
    "synthesize_non_fundus",
]

_MAX_WORK = 1024
"""Longest side of the working canvas; larger outputs are resized up from it."""
_MIN_WORK = 256
"""Shortest side of the working canvas when that fits; smaller outputs are resized down."""
_MIN_SIDE = 8
_MAX_SIDE = 16384
_DISC_FRACTION = 0.92
"""Diameter of the circular retinal field as a fraction of min(width, height)."""
_SHIFT = 4
_SUB = float(1 << _SHIFT)
"""Fixed-point sub-pixel precision for OpenCV drawing calls."""

# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def _pt(x: float, y: float) -> tuple[int, int]:
    """Fixed-point point for OpenCV drawing with ``shift=_SHIFT``."""
    return (round(x * _SUB), round(y * _SUB))


def _fixed(v: float) -> int:
    """Fixed-point scalar (radius, axis) for OpenCV drawing with ``shift=_SHIFT``."""
    return max(1, round(v * _SUB))


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: float) -> F32:
    """Zero-mean, unit-ish std smooth noise: a random grid of ~``cells`` cells across, upsampled."""
    gw = max(2, round(cells * width / max(width, height)))
    gh = max(2, round(cells * height / max(width, height)))
    grid = rng.standard_normal((gh + 2, gw + 2)).astype(np.float32)
    up = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.asarray(up, dtype=np.float32)


def _gauss(xs: F32, ys: F32, x0: float, y0: float, sigma: float) -> F32:
    """Isotropic Gaussian bump (peak 1) on the grid given by 1-D coordinates ``xs``, ``ys``."""
    k = np.float32(-0.5 / (sigma * sigma))
    gx = np.exp((xs - np.float32(x0)) ** 2 * k)
    gy = np.exp((ys - np.float32(y0)) ** 2 * k)
    return np.asarray(gy[:, None] * gx[None, :], dtype=np.float32)


def _roi(alpha: F32) -> tuple[slice, slice] | None:
    """Bounding box of the non-zero part of ``alpha`` (None when all zero)."""
    nz = alpha > 0
    rows = np.flatnonzero(nz.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(nz.any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def _darken(img: F32, alpha: F32, factor: Sequence[float]) -> None:
    """In place on planar [3, H, W]: scale channel c towards ``factor[c]`` where alpha > 0."""
    roi = _roi(alpha)
    if roi is None:
        return
    a = alpha[roi]
    for c, f in enumerate(factor):
        if f != 1.0:
            img[c][roi] *= np.float32(1.0) - a * np.float32(1.0 - f)


def _paint(img: F32, alpha: F32, colour: Sequence[float], illum: F32 | None) -> None:
    """In place on planar [3, H, W]: blend towards ``colour`` (times ``illum``) where alpha > 0."""
    roi = _roi(alpha)
    if roi is None:
        return
    a = alpha[roi]
    for c, value in enumerate(colour):
        plane = img[c][roi]
        target = np.float32(value) if illum is None else illum[roi] * np.float32(value)
        plane += a * (target - plane)


def _u8_to_alpha(mask: NDArray[np.uint8]) -> F32:
    return np.asarray(mask, dtype=np.float32) * np.float32(1.0 / 255.0)


def _check_size(width: int, height: int) -> None:
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise ValueError(f"{name} must be an int, got {v!r}")
        if not _MIN_SIDE <= v <= _MAX_SIDE:
            raise ValueError(f"{name} must be in {_MIN_SIDE}..{_MAX_SIDE}, got {v}")


def _working_size(width: int, height: int) -> tuple[int, int]:
    """Working canvas size: long side <= 1024, short side >= 256 where that fits."""
    long_side, short_side = max(width, height), min(width, height)
    if long_side > _MAX_WORK:
        s = _MAX_WORK / long_side
    elif short_side < _MIN_WORK:
        s = min(_MIN_WORK / short_side, _MAX_WORK / long_side)
    else:
        s = 1.0
    return max(_MIN_SIDE, round(width * s)), max(_MIN_SIDE, round(height * s))


def _field_alpha(width: int, height: int) -> F32:
    """Anti-aliased circular field mask (1 inside the retina, 0 outside) at a given size."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    radius = _DISC_FRACTION * min(width, height) / 2.0
    xs = (np.arange(width, dtype=np.float32) - np.float32(cx)) ** 2
    ys = (np.arange(height, dtype=np.float32) - np.float32(cy)) ** 2
    dist = np.sqrt(ys[:, None] + xs[None, :])
    soft = max(0.75, 0.004 * radius)
    alpha = np.clip((np.float32(radius) - dist) / np.float32(soft) + np.float32(0.5), 0.0, 1.0)
    return np.asarray(alpha, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Geometry and background (right eye)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Geometry:
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
class _VesselPath:
    """A drawn vessel centre line (for venous beading)."""

    xs: F64
    ys: F64
    thick: F64


def _geometry(rng: np.random.Generator, width: int, height: int) -> _Geometry:
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    radius = _DISC_FRACTION * min(width, height) / 2.0
    disc_r = radius / 6.0 * float(rng.uniform(0.95, 1.05))
    return _Geometry(
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


def _trace(
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


def _draw_path(mask: NDArray[np.uint8], xs: F64, ys: F64, thick: F64) -> None:
    """Draw a tapering polyline; sub-pixel widths become fainter 1-px lines."""
    t = thick[:-1]
    px = np.maximum(1, np.rint(t)).astype(np.int64)
    value = np.rint(255.0 * np.minimum(1.0, t)).astype(np.int64)
    pts = np.rint(np.stack([xs, ys], axis=1) * _SUB).astype(np.int32)
    # One cv2.polylines call per run of segments sharing width and intensity.
    change = np.flatnonzero((np.diff(px) != 0) | (np.diff(value) != 0)) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [len(t)]])
    for s0, s1 in zip(starts.tolist(), stops.tolist(), strict=True):
        cv2.polylines(
            mask, [pts[s0 : s1 + 1]], False, int(value[s0]), int(px[s0]), cv2.LINE_AA, _SHIFT
        )


def _grow_tree(
    rng: np.random.Generator,
    masks: list[NDArray[np.uint8]],
    geo: _Geometry,
    *,
    x0: float,
    y0: float,
    heading: float,
    length: float,
    turn: float,
    thickness: float,
    depth: int,
    paths: list[_VesselPath] | None,
) -> None:
    """Draw one vessel and, recursively, its branches (one mask per depth level)."""
    step = max(1.0, 0.022 * geo.radius)
    xs, ys, hs = _trace(
        rng, x0=x0, y0=y0, heading=heading, length=length, turn=turn, step=step, wiggle=0.035
    )
    n = len(xs)
    thick = thickness * np.linspace(1.0, 0.4, n)
    _draw_path(masks[depth], xs, ys, thick)
    if paths is not None and depth <= 1:
        paths.append(_VesselPath(xs, ys, thick))
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


def _vessels(rng: np.random.Generator, geo: _Geometry) -> tuple[F32, F32, list[_VesselPath]]:
    """Artery and vein opacity maps (0..1) and the main vein paths."""
    shape = (geo.height, geo.width)
    depth_levels = 4
    vein_masks = [np.zeros(shape, np.uint8) for _ in range(depth_levels)]
    art_masks = [np.zeros(shape, np.uint8) for _ in range(depth_levels)]
    vein_paths: list[_VesselPath] = []
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
    vein = _u8_to_alpha(np.maximum.reduce(vein_masks))
    art = _u8_to_alpha(np.maximum.reduce(art_masks))
    return art, vein, vein_paths


@dataclass
class _Background:
    geo: _Geometry
    image: F32
    """Planar float32 RGB [3, H, W], 0..255."""
    illum: F32
    vein_paths: list[_VesselPath]


def _background(rng: np.random.Generator, width: int, height: int) -> _Background:
    """Retina without lesions (right eye) at the working size."""
    geo = _geometry(rng, width, height)
    xs = np.arange(width, dtype=np.float32)
    ys = np.arange(height, dtype=np.float32)
    r = geo.radius
    gx = ((xs - np.float32(geo.cx)) / np.float32(r))[None, :]
    gy = ((ys - np.float32(geo.cy)) / np.float32(r))[:, None]
    rn = np.sqrt(gx * gx + gy * gy)

    # Illumination: radial vignetting plus a gentle off-centre tilt.
    tilt_dir = float(rng.uniform(0.0, 2.0 * math.pi))
    tilt = float(rng.uniform(0.0, 0.08))
    illum = (
        np.float32(1.0)
        - np.float32(0.5) * np.minimum(rn, np.float32(1.1)) ** np.float32(2.2)
        + np.float32(tilt * math.cos(tilt_dir)) * gx
        + np.float32(tilt * math.sin(tilt_dir)) * gy
    )
    illum = np.asarray(np.clip(illum, 0.2, 1.2), dtype=np.float32)

    base = np.array([212.0, 98.0, 46.0]) * rng.uniform(0.92, 1.06, 3)

    # Texture: low-frequency blotches, choroidal mottling, fine grain.
    low = _smooth_noise(rng, width, height, 6.0)
    tint = _smooth_noise(rng, width, height, 4.0)
    mid = _smooth_noise(rng, width, height, 24.0)
    grain = rng.standard_normal((height, width)).astype(np.float32)
    grain = np.asarray(cv2.GaussianBlur(grain, (0, 0), max(0.6, 0.0025 * r)), dtype=np.float32)
    grain *= np.float32(1.0 / max(float(grain.std()), 1e-6))
    shade = illum * (
        np.float32(1.0)
        + np.float32(0.06) * low
        + np.float32(0.035) * mid
        + np.float32(0.025) * grain
    )
    img = np.empty((3, height, width), np.float32)
    img[0] = shade * np.float32(base[0])
    img[1] = shade * (np.float32(1.0) + np.float32(0.05) * tint) * np.float32(base[1])
    img[2] = shade * (np.float32(1.0) + np.float32(0.08) * tint) * np.float32(base[2])

    # Macula and fovea: darker, more so in green/blue (macular pigment).
    mac = _gauss(xs, ys, geo.fovea_x, geo.fovea_y, 0.17 * r)
    fov = _gauss(xs, ys, geo.fovea_x, geo.fovea_y, 0.045 * r)
    _darken(img, mac, (0.74, 0.62, 0.6))
    _darken(img, fov, (0.82, 0.75, 0.75))
    reflex = _gauss(xs, ys, geo.fovea_x, geo.fovea_y, max(0.6, 0.008 * r))
    _paint(img, reflex * np.float32(0.35), (230.0, 170.0, 120.0), illum)

    # Optic disc: slightly vertically oval, orange-pink rim, pale yellow cup, soft edge.
    ex = ((xs - np.float32(geo.disc_x)) / np.float32(geo.disc_r * 0.93))[None, :]
    ey = ((ys - np.float32(geo.disc_y)) / np.float32(geo.disc_r * 1.06))[:, None]
    de = np.sqrt(ex * ex + ey * ey)
    soft = np.float32(max(0.08, 1.2 / geo.disc_r))
    disc_a = np.clip((np.float32(1.0) - de) / soft + np.float32(0.5), 0.0, 1.0)
    halo = np.clip((np.float32(1.25) - de) / np.float32(0.3), 0.0, 1.0) * np.float32(0.25)
    _paint(img, np.asarray(halo, np.float32), (225.0, 140.0, 85.0), illum)
    disc_tex = np.float32(1.0) + np.float32(0.04) * mid
    _paint(img, np.asarray(disc_a * 0.95, np.float32), (242.0, 178.0, 112.0), disc_tex)
    cup = _gauss(xs, ys, geo.disc_x - 0.12 * geo.disc_r, geo.disc_y, 0.32 * geo.disc_r)
    _paint(img, cup * np.float32(0.85), (252.0, 228.0, 172.0), None)

    # Vessels: veins darker and wider than arteries; they fade in the foveal avascular zone.
    art, vein, vein_paths = _vessels(rng, geo)
    faz = np.float32(1.0) - _gauss(xs, ys, geo.fovea_x, geo.fovea_y, 0.06 * r)
    _darken(img, vein * faz, (0.52, 0.34, 0.42))
    _darken(img, art * faz, (0.74, 0.52, 0.58))
    return _Background(geo, img, illum, vein_paths)


# ---------------------------------------------------------------------------------------------
# Lesions
# ---------------------------------------------------------------------------------------------

# Per-grade (min, max) counts. Both bounds are non-decreasing in grade, so with one fixed uniform
# draw per type the count is non-decreasing in grade and lesion sets are nested.
_COUNTS: dict[str, tuple[tuple[int, int], ...]] = {
    "microaneurysm": ((0, 0), (3, 8), (10, 20), (20, 34), (22, 38)),
    "haemorrhage": ((0, 0), (0, 0), (3, 8), (16, 28), (18, 32)),
    "exudate": ((0, 0), (0, 0), (3, 8), (8, 16), (9, 18)),
    "cotton_wool": ((0, 0), (0, 0), (0, 0), (3, 6), (4, 7)),
    "beading": ((0, 0), (0, 0), (0, 0), (2, 3), (3, 4)),
    "neovascular": ((0, 0), (0, 0), (0, 0), (0, 0), (2, 4)),
}


def _count(kind: str, grade: int, u: float) -> int:
    lo, hi = _COUNTS[kind][grade]
    return lo + min(hi - lo, int(u * (hi - lo + 1)))


def _sample_site(
    rng: np.random.Generator,
    geo: _Geometry,
    quadrant: int | None = None,
    max_r: float = 0.8,
) -> tuple[float, float]:
    """Random point on the retina away from the optic disc (optionally in one quadrant)."""
    for _ in range(64):
        rr = geo.radius * max_r * math.sqrt(float(rng.uniform(0.02, 1.0)))
        if quadrant is None:
            ang = float(rng.uniform(0.0, 2.0 * math.pi))
        else:
            ang = (quadrant + float(rng.uniform(0.05, 0.95))) * math.pi / 2.0
        x = geo.cx + rr * math.cos(ang)
        y = geo.cy + rr * math.sin(ang)
        if math.hypot(x - geo.disc_x, y - geo.disc_y) > 1.5 * geo.disc_r:
            return x, y
    return geo.fovea_x, geo.fovea_y - 0.3 * geo.radius


def _draw_microaneurysms(rng: np.random.Generator, geo: _Geometry, n: int, total: int) -> F32:
    mask = np.zeros((geo.height, geo.width), np.uint8)
    for i in range(total):
        x, y = _sample_site(rng, geo, max_r=0.7)
        rad = geo.dd * float(rng.uniform(0.022, 0.04))
        if i < n:
            cv2.circle(mask, _pt(x, y), _fixed(max(rad, 0.7)), 255, -1, cv2.LINE_AA, _SHIFT)
    return _u8_to_alpha(mask)


def _draw_haemorrhages(rng: np.random.Generator, geo: _Geometry, n: int, total: int) -> F32:
    """Dot, blot and flame haemorrhages; candidate i lies in quadrant i % 4."""
    mask = np.zeros((geo.height, geo.width), np.uint8)
    for i in range(total):
        x, y = _sample_site(rng, geo, quadrant=i % 4, max_r=0.85)
        style = float(rng.random())
        size = geo.dd * float(rng.uniform(0.06, 0.16))
        blobs = [
            (
                float(rng.normal(0.0, 0.45)) * size,
                float(rng.normal(0.0, 0.45)) * size,
                size * float(rng.uniform(0.5, 1.0)),
                size * float(rng.uniform(0.4, 0.9)),
                float(rng.uniform(0.0, 180.0)),
            )
            for _ in range(4)
        ]
        if i >= n:
            continue
        if style < 0.35:  # dot
            cv2.circle(mask, _pt(x, y), _fixed(size * 0.55), 255, -1, cv2.LINE_AA, _SHIFT)
        elif style < 0.8:  # blot: a few overlapping ellipses
            for ox, oy, ax, ay, ang in blobs[: 2 + int(style * 3)]:
                cv2.ellipse(
                    mask,
                    _pt(x + ox, y + oy),
                    (_fixed(ax), _fixed(ay)),
                    ang,
                    0,
                    360,
                    255,
                    -1,
                    cv2.LINE_AA,
                    _SHIFT,
                )
        else:  # flame: elongated along the nerve fibres (radial from the disc)
            ang = math.degrees(math.atan2(y - geo.disc_y, x - geo.disc_x))
            cv2.ellipse(
                mask,
                _pt(x, y),
                (_fixed(size * 1.6), _fixed(size * 0.45)),
                ang,
                0,
                360,
                255,
                -1,
                cv2.LINE_AA,
                _SHIFT,
            )
    alpha = _u8_to_alpha(mask)
    if n:
        alpha = np.asarray(cv2.GaussianBlur(alpha, (0, 0), max(0.5, 0.012 * geo.dd)), np.float32)
    return alpha


def _draw_exudates(rng: np.random.Generator, geo: _Geometry, n: int, total: int) -> F32:
    """Clusters of small waxy yellow spots, mostly around the macula."""
    mask = np.zeros((geo.height, geo.width), np.uint8)
    for i in range(total):
        if rng.random() < 0.6:  # near the macula (circinate-ish)
            ang = float(rng.uniform(0.0, 2.0 * math.pi))
            rr = geo.radius * float(rng.uniform(0.12, 0.4))
            x, y = geo.fovea_x + rr * math.cos(ang), geo.fovea_y + rr * math.sin(ang)
        else:
            x, y = _sample_site(rng, geo, max_r=0.75)
        k = int(rng.integers(2, 8))
        spots = [
            (
                x + float(rng.normal(0.0, 0.18)) * geo.dd,
                y + float(rng.normal(0.0, 0.18)) * geo.dd,
                geo.dd * float(rng.uniform(0.015, 0.045)),
            )
            for _ in range(k)
        ]
        if i < n:
            for sx, sy, rad in spots:
                cv2.circle(mask, _pt(sx, sy), _fixed(max(rad, 0.6)), 255, -1, cv2.LINE_AA, _SHIFT)
    return _u8_to_alpha(mask)


def _draw_cotton_wool(rng: np.random.Generator, geo: _Geometry, n: int, total: int) -> F32:
    """Pale fluffy blobs near the arcades (blurred clusters of circles)."""
    mask = np.zeros((geo.height, geo.width), np.uint8)
    for i in range(total):
        x, y = _sample_site(rng, geo, max_r=0.65)
        size = geo.dd * float(rng.uniform(0.12, 0.24))
        parts = [
            (
                x + float(rng.normal(0.0, 0.4)) * size,
                y + float(rng.normal(0.0, 0.4)) * size,
                size * float(rng.uniform(0.4, 0.8)),
            )
            for _ in range(4)
        ]
        if i < n:
            for px, py, rad in parts:
                cv2.circle(mask, _pt(px, py), _fixed(rad), 255, -1, cv2.LINE_AA, _SHIFT)
    alpha = _u8_to_alpha(mask)
    if n:
        alpha = np.asarray(cv2.GaussianBlur(alpha, (0, 0), max(0.8, 0.05 * geo.dd)), np.float32)
    return alpha


def _draw_beading(
    rng: np.random.Generator, geo: _Geometry, paths: list[_VesselPath], n: int, total: int
) -> F32:
    """Sausage-like calibre changes along stretches of the larger veins."""
    mask = np.zeros((geo.height, geo.width), np.uint8)
    for i in range(total):
        if not paths:
            break
        p = paths[int(rng.integers(0, len(paths)))]
        m = len(p.xs)
        start = int(rng.uniform(0.2, 0.6) * m)
        stop = min(m, start + max(4, int(rng.uniform(0.2, 0.35) * m)))
        period = int(rng.integers(2, 4))
        if i >= n:
            continue
        for j in range(start, stop, period):
            rad = 0.85 * float(p.thick[j])
            if rad >= 0.5:
                cv2.circle(
                    mask,
                    _pt(float(p.xs[j]), float(p.ys[j])),
                    _fixed(rad),
                    255,
                    -1,
                    cv2.LINE_AA,
                    _SHIFT,
                )
    return _u8_to_alpha(mask)


def _draw_neovascular(rng: np.random.Generator, geo: _Geometry, n: int, total: int) -> F32:
    """Fine tangled new vessels: tufts on/near the optic disc (NVD); the last may be an NVE."""
    mask = np.zeros((geo.height, geo.width), np.uint8)
    step = max(0.7, 0.02 * geo.dd)
    thin = np.full(1, max(0.45, 0.01 * geo.dd))
    for i in range(total):
        if i == total - 1 and rng.random() < 0.5:  # NVE along the superior arcade
            x = geo.disc_x - 0.55 * geo.radius + float(rng.normal(0.0, 0.05)) * geo.radius
            y = geo.disc_y - 0.35 * geo.radius
        else:
            ang = float(rng.uniform(0.0, 2.0 * math.pi))
            rr = geo.disc_r * float(rng.uniform(0.3, 1.3))
            x, y = geo.disc_x + rr * math.cos(ang), geo.disc_y + rr * math.sin(ang)
        loops = []
        for _ in range(int(rng.integers(8, 15))):
            ox = x + float(rng.normal(0.0, 0.25)) * geo.dd
            oy = y + float(rng.normal(0.0, 0.25)) * geo.dd
            heading = float(rng.uniform(0.0, 2.0 * math.pi))
            length = geo.dd * float(rng.uniform(0.2, 0.6))
            turn = float(rng.uniform(2.0, 5.0)) * (1.0 if rng.random() < 0.5 else -1.0)
            xs, ys, _ = _trace(
                rng,
                x0=ox,
                y0=oy,
                heading=heading,
                length=length,
                turn=turn,
                step=step,
                wiggle=0.25,
            )
            loops.append((xs, ys))
        if i < n:
            for xs, ys in loops:
                _draw_path(mask, xs, ys, np.full(len(xs), float(thin[0])))
    return _u8_to_alpha(mask)


def _draw_preretinal(rng: np.random.Generator, geo: _Geometry, present: bool) -> F32:
    """Boat-shaped pre-retinal haemorrhage: an ellipse with a flat (fluid level) top."""
    mask = np.zeros((geo.height, geo.width), np.uint8)
    x = geo.disc_x - geo.dd * float(rng.uniform(0.6, 1.4))
    y = geo.disc_y + geo.dd * float(rng.uniform(0.9, 1.5))
    ax = geo.dd * float(rng.uniform(0.45, 0.75))
    ay = geo.dd * float(rng.uniform(0.3, 0.45))
    if present:
        cv2.ellipse(
            mask, _pt(x, y), (_fixed(ax), _fixed(ay)), 0, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT
        )
        level = int(max(0, math.floor(y - 0.25 * ay)))
        mask[:level] = 0
    alpha = _u8_to_alpha(mask)
    if present:
        alpha = np.asarray(cv2.GaussianBlur(alpha, (0, 0), max(0.5, 0.015 * geo.dd)), np.float32)
    return alpha


def _add_lesions(rng: np.random.Generator, bg: _Background, grade: int) -> F32:
    """Copy of the background with the lesions of ``grade`` (nested across grades)."""
    img = bg.image.copy()  # planar [3, H, W]
    if grade == 0:
        return img
    geo = bg.geo
    streams = rng.spawn(8)
    us = streams[0].random(8)

    def total(kind: str) -> int:
        return _COUNTS[kind][-1][1]

    ma = _draw_microaneurysms(
        streams[1], geo, _count("microaneurysm", grade, float(us[0])), total("microaneurysm")
    )
    haem = _draw_haemorrhages(
        streams[2], geo, _count("haemorrhage", grade, float(us[1])), total("haemorrhage")
    )
    exu = _draw_exudates(streams[3], geo, _count("exudate", grade, float(us[2])), total("exudate"))
    cws = _draw_cotton_wool(
        streams[4], geo, _count("cotton_wool", grade, float(us[3])), total("cotton_wool")
    )
    bead = _draw_beading(
        streams[5], geo, bg.vein_paths, _count("beading", grade, float(us[4])), total("beading")
    )
    nv = _draw_neovascular(
        streams[6], geo, _count("neovascular", grade, float(us[5])), total("neovascular")
    )
    pre = _draw_preretinal(streams[7], geo, grade >= 4 and float(us[6]) < 0.5)

    _paint(img, cws * np.float32(0.8), (236.0, 218.0, 188.0), bg.illum)
    _paint(img, exu * np.float32(0.92), (238.0, 212.0, 96.0), bg.illum)
    _darken(img, bead, (0.52, 0.34, 0.42))
    _darken(img, haem, (0.5, 0.2, 0.24))
    _darken(img, ma, (0.55, 0.22, 0.27))
    _darken(img, nv * np.float32(0.85), (0.68, 0.38, 0.42))
    _darken(img, pre * np.float32(0.95), (0.4, 0.12, 0.15))
    return img


# ---------------------------------------------------------------------------------------------
# Public generators
# ---------------------------------------------------------------------------------------------


def synthesize_fundus(
    grade: int,
    *,
    width: int = 768,
    height: int = 576,
    seed: int = 0,
    laterality: Laterality = "R",
    blur_sigma: float = 0.0,
    brightness: float = 1.0,
) -> RGBImage:
    """Synthetic colour fundus photograph, uint8 RGB [height, width, 3].

    grade: international DR scale 0..4 (ValueError otherwise); lesions are nested across grades.
    laterality: "R" puts the optic disc right of the fovea, "L" mirrors the image.
    blur_sigma: Gaussian blur sigma in output pixels (0 = none), applied after noise.
    brightness: final multiplier before clipping (0.15 -> too dark, 3.0 -> over-exposed).
    """
    if isinstance(grade, bool) or not isinstance(grade, (int, np.integer)) or not 0 <= grade <= 4:
        raise ValueError(f"grade must be an int in 0..4, got {grade!r}")
    if laterality not in ("L", "R"):
        raise ValueError(f"laterality must be 'L' or 'R', got {laterality!r}")
    _check_size(width, height)
    if not math.isfinite(blur_sigma) or blur_sigma < 0:
        raise ValueError(f"blur_sigma must be >= 0, got {blur_sigma}")
    if not math.isfinite(brightness) or brightness < 0:
        raise ValueError(f"brightness must be >= 0, got {brightness}")

    bg_rng, lesion_rng, noise_rng = np.random.default_rng(seed).spawn(3)
    ww, wh = _working_size(width, height)
    bg = _background(bg_rng, ww, wh)
    work = _add_lesions(lesion_rng, bg, int(grade))
    if laterality == "L":
        work = work[:, :, ::-1]

    noise = noise_rng.standard_normal((height, width), dtype=np.float32)
    noise *= np.float32(1.6)
    field = _field_alpha(width, height)
    resize = (ww, wh) != (width, height)
    interp = cv2.INTER_LINEAR if width * height > ww * wh else cv2.INTER_AREA
    planes: list[NDArray[np.uint8]] = []
    for c in range(3):
        src: F32 = np.ascontiguousarray(work[c])
        plane: F32 = src
        if resize:
            plane = np.asarray(cv2.resize(src, (width, height), interpolation=interp), np.float32)
        plane += noise
        plane *= field
        if blur_sigma > 0:
            plane = np.asarray(cv2.GaussianBlur(plane, (0, 0), float(blur_sigma)), np.float32)
        if brightness != 1.0:
            plane *= np.float32(brightness)
        np.clip(plane, 0.0, 255.0, out=plane)
        plane += np.float32(0.5)
        planes.append(plane.astype(np.uint8))
    return np.asarray(cv2.merge(planes), dtype=np.uint8)


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
    _check_size(width, height)
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
        field = _field_alpha(width, height)[..., None]
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


# ---------------------------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------------------------


def _check_rgb(image: RGBImage) -> NDArray[np.uint8]:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected uint8 RGB [H, W, 3], got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr)


def _gray(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


_SUBSAMPLING = ("4:4:4", "4:2:2", "4:2:0")


def encode_jpeg(image: RGBImage, *, quality: int = 92, subsampling: str = "4:2:0") -> bytes:
    """Baseline (non-progressive) JPEG via Pillow; subsampling "4:4:4", "4:2:2" or "4:2:0"."""
    rgb = _check_rgb(image)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    if subsampling not in _SUBSAMPLING:
        raise ValueError(f"subsampling must be one of {_SUBSAMPLING}, got {subsampling!r}")
    return _jpeg_bytes(Image.fromarray(rgb, "RGB"), quality, subsampling)


def _jpeg_bytes(img: Image.Image, quality: int, subsampling: str) -> bytes:
    buf = io.BytesIO()
    img.save(
        buf, "JPEG", quality=quality, subsampling=subsampling, progressive=False, optimize=False
    )
    return buf.getvalue()


def encode_png(image: RGBImage, *, bit_depth: int = 8, grayscale: bool = False) -> bytes:
    """PNG via OpenCV: 8 or 16 bit (16-bit samples are value * 257), RGB or grayscale."""
    rgb = _check_rgb(image)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    arr: NDArray[np.uint8] | NDArray[np.uint16]
    pix = _gray(rgb) if grayscale else np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), np.uint8)
    arr = pix.astype(np.uint16) * np.uint16(257) if bit_depth == 16 else pix
    ok, encoded = cv2.imencode(".png", arr)
    if not ok:  # pragma: no cover - OpenCV failure
        raise RuntimeError("cv2.imencode failed to encode PNG")
    return bytes(encoded.tobytes())


def encode_tiff(image: RGBImage) -> bytes:
    """Uncompressed 8-bit RGB TIFF via Pillow."""
    rgb = _check_rgb(image)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "TIFF")
    return buf.getvalue()


DICOM_SOP_CLASSES: dict[str, str] = {
    "op8": "1.2.840.10008.5.1.4.1.1.77.1.5.1",  # Ophthalmic Photography 8 Bit Image Storage
    "op16": "1.2.840.10008.5.1.4.1.1.77.1.5.2",  # Ophthalmic Photography 16 Bit Image Storage
    "sc": "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
}
DICOM_TRANSFER_SYNTAXES: dict[str, str] = {
    "explicit_le": "1.2.840.10008.1.2.1",
    "implicit_le": "1.2.840.10008.1.2",
    "jpeg_baseline": "1.2.840.10008.1.2.4.50",
    "jpeg_lossless": "1.2.840.10008.1.2.4.70",
}


def encode_dicom(
    image: RGBImage,
    *,
    transfer_syntax: str = "explicit_le",
    sop_class: str = "op8",
    laterality: Laterality | None = "R",
    monochrome: bool = False,
    bits: int = 8,
    patient_name: str = "SYNTHETIC^PATIENT",
    patient_id: str = "SYN0001",
    patient_birth_date: str = "19700101",
    with_preamble: bool = True,
    number_of_frames: int = 1,
    seed: int = 0,
) -> bytes:
    """DICOM Part 10 file bytes built with pydicom.

    transfer_syntax: "explicit_le", "implicit_le", "jpeg_baseline" (Pillow baseline JPEG,
    quality 92, 4:2:2 chroma subsampling, one encapsulated fragment per frame with a Basic Offset
    Table; YBR_FULL_422 for colour, MONOCHROME2 for grey) or "jpeg_lossless" (raises
    NotImplementedError: no installed library can encode JPEG Lossless Process 14).
    sop_class: "op8", "op16" or "sc". bits: 8 or 16 (16 only uncompressed; samples = value*257).
    UIDs are derived from ``seed`` only, so the same seed gives the same UIDs.
    with_preamble=False returns exactly the with_preamble=True bytes minus their first 132 bytes
    (the 128-byte preamble and b"DICM"): the File Meta group (0002,xxxx, explicit VR LE) followed
    by the dataset; ``pydicom.dcmread(..., force=True)`` reads it.
    number_of_frames > 1 repeats the frame and sets NumberOfFrames.
    """
    rgb = _check_rgb(image)
    if transfer_syntax not in DICOM_TRANSFER_SYNTAXES:
        raise ValueError(
            f"unknown transfer_syntax {transfer_syntax!r}; expected one of "
            f"{tuple(DICOM_TRANSFER_SYNTAXES)}"
        )
    if sop_class not in DICOM_SOP_CLASSES:
        raise ValueError(
            f"unknown sop_class {sop_class!r}; expected one of {tuple(DICOM_SOP_CLASSES)}"
        )
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    if laterality not in (None, "L", "R"):
        raise ValueError(f"laterality must be 'L', 'R' or None, got {laterality!r}")
    if number_of_frames < 1:
        raise ValueError(f"number_of_frames must be >= 1, got {number_of_frames}")
    if transfer_syntax == "jpeg_lossless":
        raise NotImplementedError(
            "JPEG Lossless (1.2.840.10008.1.2.4.70) encoding needs an encoder that is not "
            "installed (pylibjpeg-libjpeg only decodes; Pillow only writes DCT-based JPEG)"
        )
    compressed = transfer_syntax == "jpeg_baseline"
    if compressed and bits != 8:
        raise ValueError("bits=16 is only supported for uncompressed transfer syntaxes")

    def uid(role: str) -> UID:
        return generate_uid(entropy_srcs=["fundus.synthetic", role, str(int(seed))])

    ts_uid = UID(DICOM_TRANSFER_SYNTAXES[transfer_syntax])
    sop_uid = UID(DICOM_SOP_CLASSES[sop_class])
    instance_uid = uid("sop-instance")

    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_uid
    meta.MediaStorageSOPInstanceUID = instance_uid
    meta.TransferSyntaxUID = ts_uid
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "FUNDUS_SYNTH"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"] if sop_class != "sc" else ["DERIVED", "SECONDARY"]
    ds.SOPClassUID = sop_uid
    ds.SOPInstanceUID = instance_uid
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.ContentDate = "20240101"
    ds.ContentTime = "120000"
    ds.AccessionNumber = f"SYNACC{int(seed) % 1000000:06d}"
    ds.Modality = "OP"
    ds.Manufacturer = "fundus.synthetic"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Synthetic fundus photograph"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = patient_birth_date
    ds.PatientSex = "O"
    ds.StudyInstanceUID = uid("study")
    ds.SeriesInstanceUID = uid("series")
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    if sop_class == "sc":
        ds.ConversionType = "WSD"
    if laterality is not None:
        ds.ImageLaterality = laterality
    ds.BurnedInAnnotation = "NO"

    pixels = _gray(rgb) if monochrome else rgb
    rows, cols = int(pixels.shape[0]), int(pixels.shape[1])
    ds.Rows = rows
    ds.Columns = cols
    ds.SamplesPerPixel = 1 if monochrome else 3
    if not monochrome:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if number_of_frames > 1:
        ds.NumberOfFrames = number_of_frames
        ds.FrameIncrementPointer = 0x00181063  # Frame Time
        ds.FrameTime = 1000.0

    if compressed:
        ds.PhotometricInterpretation = "MONOCHROME2" if monochrome else "YBR_FULL_422"
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        pil = Image.fromarray(pixels, "L" if monochrome else "RGB")
        frame = _jpeg_bytes(pil, 92, "4:2:2")
        ds.PixelData = encapsulate([frame] * number_of_frames)
        ds["PixelData"].VR = "OB"
    else:
        ds.PhotometricInterpretation = "MONOCHROME2" if monochrome else "RGB"
        ds.LossyImageCompression = "00"
        samples = pixels.astype("<u2") * np.uint16(257) if bits == 16 else pixels
        data = samples.tobytes()
        data = data * number_of_frames
        if len(data) % 2:
            data += b"\x00"
        ds.PixelData = data
        ds["PixelData"].VR = "OW" if bits == 16 else "OB"

    ds.preamble = b"\x00" * 128
    buf = io.BytesIO()
    dcmwrite(
        buf,
        ds,
        implicit_vr=transfer_syntax == "implicit_le",
        little_endian=True,
        enforce_file_format=True,
    )
    out = buf.getvalue()
    return out if with_preamble else out[132:]


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must look like 1024x768, got {text!r}") from exc
    return w, h


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m synthetic``: write one synthetic image to a file."""
    parser = argparse.ArgumentParser(
        prog="python -m synthetic", description="Write a synthetic fundus photograph."
    )
    parser.add_argument("--grade", type=int, default=0, choices=range(5))
    parser.add_argument("--size", type=_parse_size, default=(768, 576), help="WIDTHxHEIGHT")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--laterality", choices=("L", "R"), default="R")
    parser.add_argument("--blur-sigma", type=float, default=0.0)
    parser.add_argument("--brightness", type=float, default=1.0)
    parser.add_argument(
        "--non-fundus",
        choices=NON_FUNDUS_KINDS,
        default=None,
        help="write a non-fundus picture of this kind instead",
    )
    parser.add_argument("--format", choices=("jpeg", "png", "tiff", "dicom"), default="jpeg")
    parser.add_argument(
        "--transfer-syntax",
        choices=tuple(DICOM_TRANSFER_SYNTAXES),
        default="explicit_le",
        help="DICOM only",
    )
    parser.add_argument("--out", required=True, help="output file path")
    args = parser.parse_args(argv)
    width, height = args.size
    try:
        if args.non_fundus:
            img = synthesize_non_fundus(args.non_fundus, width=width, height=height, seed=args.seed)
        else:
            img = synthesize_fundus(
                args.grade,
                width=width,
                height=height,
                seed=args.seed,
                laterality=args.laterality,
                blur_sigma=args.blur_sigma,
                brightness=args.brightness,
            )
        if args.format == "jpeg":
            data = encode_jpeg(img)
        elif args.format == "png":
            data = encode_png(img)
        elif args.format == "tiff":
            data = encode_tiff(img)
        else:
            data = encode_dicom(
                img,
                transfer_syntax=args.transfer_syntax,
                laterality=args.laterality,
                seed=args.seed,
            )
    except (ValueError, NotImplementedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with open(args.out, "wb") as fh:
        fh.write(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
