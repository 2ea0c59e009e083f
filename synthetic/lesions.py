"""DR lesions drawn on the background; lesion sets are nested across grades."""

from __future__ import annotations

import math

import cv2
import numpy as np

from synthetic.background import Background
from synthetic.canvas import F32, SHIFT, darken, fixed, paint, pt, u8_to_alpha
from synthetic.vessels import Geometry, VesselPath, draw_path, trace

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
    geo: Geometry,
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


def _draw_microaneurysms(rng: np.random.Generator, geo: Geometry, n: int, total: int) -> F32:
    mask = np.zeros((geo.height, geo.width), np.uint8)
    for i in range(total):
        x, y = _sample_site(rng, geo, max_r=0.7)
        rad = geo.dd * float(rng.uniform(0.022, 0.04))
        if i < n:
            cv2.circle(mask, pt(x, y), fixed(max(rad, 0.7)), 255, -1, cv2.LINE_AA, SHIFT)
    return u8_to_alpha(mask)


def _draw_haemorrhages(rng: np.random.Generator, geo: Geometry, n: int, total: int) -> F32:
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
            cv2.circle(mask, pt(x, y), fixed(size * 0.55), 255, -1, cv2.LINE_AA, SHIFT)
        elif style < 0.8:  # blot: a few overlapping ellipses
            for ox, oy, ax, ay, ang in blobs[: 2 + int(style * 3)]:
                cv2.ellipse(
                    mask,
                    pt(x + ox, y + oy),
                    (fixed(ax), fixed(ay)),
                    ang,
                    0,
                    360,
                    255,
                    -1,
                    cv2.LINE_AA,
                    SHIFT,
                )
        else:  # flame: elongated along the nerve fibres (radial from the disc)
            ang = math.degrees(math.atan2(y - geo.disc_y, x - geo.disc_x))
            cv2.ellipse(
                mask,
                pt(x, y),
                (fixed(size * 1.6), fixed(size * 0.45)),
                ang,
                0,
                360,
                255,
                -1,
                cv2.LINE_AA,
                SHIFT,
            )
    alpha = u8_to_alpha(mask)
    if n:
        alpha = np.asarray(cv2.GaussianBlur(alpha, (0, 0), max(0.5, 0.012 * geo.dd)), np.float32)
    return alpha


def _draw_exudates(rng: np.random.Generator, geo: Geometry, n: int, total: int) -> F32:
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
                cv2.circle(mask, pt(sx, sy), fixed(max(rad, 0.6)), 255, -1, cv2.LINE_AA, SHIFT)
    return u8_to_alpha(mask)


def _draw_cotton_wool(rng: np.random.Generator, geo: Geometry, n: int, total: int) -> F32:
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
                cv2.circle(mask, pt(px, py), fixed(rad), 255, -1, cv2.LINE_AA, SHIFT)
    alpha = u8_to_alpha(mask)
    if n:
        alpha = np.asarray(cv2.GaussianBlur(alpha, (0, 0), max(0.8, 0.05 * geo.dd)), np.float32)
    return alpha


def _draw_beading(
    rng: np.random.Generator, geo: Geometry, paths: list[VesselPath], n: int, total: int
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
                    pt(float(p.xs[j]), float(p.ys[j])),
                    fixed(rad),
                    255,
                    -1,
                    cv2.LINE_AA,
                    SHIFT,
                )
    return u8_to_alpha(mask)


def _draw_neovascular(rng: np.random.Generator, geo: Geometry, n: int, total: int) -> F32:
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
            xs, ys, _ = trace(
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
                draw_path(mask, xs, ys, np.full(len(xs), float(thin[0])))
    return u8_to_alpha(mask)


def _draw_preretinal(rng: np.random.Generator, geo: Geometry, present: bool) -> F32:
    """Boat-shaped pre-retinal haemorrhage: an ellipse with a flat (fluid level) top."""
    mask = np.zeros((geo.height, geo.width), np.uint8)
    x = geo.disc_x - geo.dd * float(rng.uniform(0.6, 1.4))
    y = geo.disc_y + geo.dd * float(rng.uniform(0.9, 1.5))
    ax = geo.dd * float(rng.uniform(0.45, 0.75))
    ay = geo.dd * float(rng.uniform(0.3, 0.45))
    if present:
        cv2.ellipse(mask, pt(x, y), (fixed(ax), fixed(ay)), 0, 0, 360, 255, -1, cv2.LINE_AA, SHIFT)
        level = int(max(0, math.floor(y - 0.25 * ay)))
        mask[:level] = 0
    alpha = u8_to_alpha(mask)
    if present:
        alpha = np.asarray(cv2.GaussianBlur(alpha, (0, 0), max(0.5, 0.015 * geo.dd)), np.float32)
    return alpha


def add_lesions(rng: np.random.Generator, bg: Background, grade: int) -> F32:
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

    paint(img, cws * np.float32(0.8), (236.0, 218.0, 188.0), bg.illum)
    paint(img, exu * np.float32(0.92), (238.0, 212.0, 96.0), bg.illum)
    darken(img, bead, (0.52, 0.34, 0.42))
    darken(img, haem, (0.5, 0.2, 0.24))
    darken(img, ma, (0.55, 0.22, 0.27))
    darken(img, nv * np.float32(0.85), (0.68, 0.38, 0.42))
    darken(img, pre * np.float32(0.95), (0.4, 0.12, 0.15))
    return img
