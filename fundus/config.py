"""Preprocessing and decode-limit configuration.

``PreprocessConfig`` is saved in the model card at export and read back by the gateway, so the
served model sees exactly the pixels the trained one saw. It serialises to/from JSON.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class PreprocessConfig:
    """Parameters of ``bytes -> uint8 [S,S,3]`` preprocessing.

    size: output side S in pixels.
    crop_threshold: a pixel belongs to the fundus disc when its max channel exceeds this (0..255).
    ben_graham: subtract a Gaussian local average (Ben Graham, Kaggle DR 2015) and re-centre at 128.
    ben_graham_sigma_fraction: Gaussian sigma as a fraction of S (S/30 is the classic choice).
    circle_mask: after Ben Graham, blank everything outside the disc (removes the bright rim).
    """

    size: int = 512
    crop_threshold: int = 10
    ben_graham: bool = False
    ben_graham_sigma_fraction: float = 1.0 / 30.0
    circle_mask: bool = True

    def __post_init__(self) -> None:
        if not 8 <= self.size <= 2048:
            raise ValueError(f"size must be in 8..2048, got {self.size}")
        if not 0 <= self.crop_threshold <= 254:
            raise ValueError(f"crop_threshold must be in 0..254, got {self.crop_threshold}")
        if not 0.0 < self.ben_graham_sigma_fraction <= 0.5:
            raise ValueError("ben_graham_sigma_fraction must be in (0, 0.5]")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, stable key order."""
        return asdict(self)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), suitable for hashing and for the model card."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        """Build from a dict; unknown keys are an error so typos never pass silently."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown PreprocessConfig keys: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> PreprocessConfig:
        """Inverse of ``to_json``."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("PreprocessConfig JSON must be an object")
        return cls.from_dict(data)

    def fingerprint(self) -> str:
        """Short content hash; keys preprocessing caches."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DecodeLimits:
    """Resource limits applied before and during decoding.

    max_bytes: largest encoded input accepted.
    max_pixels: largest declared width*height accepted (checked from headers before decoding,
        so decompression bombs are refused without allocating the full image).
    min_side: smallest width/height accepted.
    max_decoded_bytes: largest declared decoded size, pixels x channels x bytes per sample
        (x frames), also checked from headers (fundus/budget.py): the pixel limit alone lets a
        400 kB 16-bit RGBA PNG of 7000 x 7000 decode to 392 MB. The default admits a 50 M
        pixel 8-bit RGB photograph (150 MB).
    """

    max_bytes: int = 40 * 1024 * 1024
    max_pixels: int = 50_000_000
    min_side: int = 16
    max_decoded_bytes: int = 160 * 1024 * 1024
