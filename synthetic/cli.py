"""``python -m synthetic``: write one synthetic image to a file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from synthetic.dicom import DICOM_TRANSFER_SYNTAXES, encode_dicom
from synthetic.encoders import encode_jpeg, encode_png, encode_tiff
from synthetic.non_fundus import NON_FUNDUS_KINDS, synthesize_non_fundus
from synthetic.photo import synthesize_fundus


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
