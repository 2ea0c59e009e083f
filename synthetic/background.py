"""The retina without lesions: illumination, texture, macula, optic disc and vessels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from synthetic.canvas import F32, darken, gauss, paint, smooth_noise
from synthetic.vessels import Geometry, VesselPath, geometry, vessels


@dataclass
class Background:
    geo: Geometry
    image: F32
    """Planar float32 RGB [3, H, W], 0..255."""
    illum: F32
    vein_paths: list[VesselPath]


def background(rng: np.random.Generator, width: int, height: int) -> Background:
    """Retina without lesions (right eye) at the working size."""
    geo = geometry(rng, width, height)
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
    low = smooth_noise(rng, width, height, 6.0)
    tint = smooth_noise(rng, width, height, 4.0)
    mid = smooth_noise(rng, width, height, 24.0)
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
    mac = gauss(xs, ys, geo.fovea_x, geo.fovea_y, 0.17 * r)
    fov = gauss(xs, ys, geo.fovea_x, geo.fovea_y, 0.045 * r)
    darken(img, mac, (0.74, 0.62, 0.6))
    darken(img, fov, (0.82, 0.75, 0.75))
    reflex = gauss(xs, ys, geo.fovea_x, geo.fovea_y, max(0.6, 0.008 * r))
    paint(img, reflex * np.float32(0.35), (230.0, 170.0, 120.0), illum)

    # Optic disc: slightly vertically oval, orange-pink rim, pale yellow cup, soft edge.
    ex = ((xs - np.float32(geo.disc_x)) / np.float32(geo.disc_r * 0.93))[None, :]
    ey = ((ys - np.float32(geo.disc_y)) / np.float32(geo.disc_r * 1.06))[:, None]
    de = np.sqrt(ex * ex + ey * ey)
    soft = np.float32(max(0.08, 1.2 / geo.disc_r))
    disc_a = np.clip((np.float32(1.0) - de) / soft + np.float32(0.5), 0.0, 1.0)
    halo = np.clip((np.float32(1.25) - de) / np.float32(0.3), 0.0, 1.0) * np.float32(0.25)
    paint(img, np.asarray(halo, np.float32), (225.0, 140.0, 85.0), illum)
    disc_tex = np.float32(1.0) + np.float32(0.04) * mid
    paint(img, np.asarray(disc_a * 0.95, np.float32), (242.0, 178.0, 112.0), disc_tex)
    cup = gauss(xs, ys, geo.disc_x - 0.12 * geo.disc_r, geo.disc_y, 0.32 * geo.disc_r)
    paint(img, cup * np.float32(0.85), (252.0, 228.0, 172.0), None)

    # Vessels: veins darker and wider than arteries; they fade in the foveal avascular zone.
    art, vein, vein_paths = vessels(rng, geo)
    faz = np.float32(1.0) - gauss(xs, ys, geo.fovea_x, geo.fovea_y, 0.06 * r)
    darken(img, vein * faz, (0.52, 0.34, 0.42))
    darken(img, art * faz, (0.74, 0.52, 0.58))
    return Background(geo, img, illum, vein_paths)
