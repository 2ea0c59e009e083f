"""The demo's sample images; ``python -m demo.samples`` runs them through fundus/ preprocessing
and prints the verdicts.

Uses the real EyePACS samples and DICOM fixtures from ../shared when present, else synthetic
fundus photographs. Writes the 512 px model inputs to artifacts/demo/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2

from fundus.config import PreprocessConfig
from fundus.errors import FundusError
from fundus.pipeline import load_and_preprocess

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def sample_inputs(shared: Path) -> list[tuple[str, bytes]]:
    """Real samples when ../shared is present, else synthetic ones (one per grade)."""
    files = sorted((shared / "eyepacs-sample").glob("*.jpeg")) + sorted(
        (shared / "dicom").glob("*.dcm")
    )
    if files:
        return [(path.name, path.read_bytes()) for path in files]
    import synthetic

    samples = []
    for grade in range(5):
        image = synthetic.synthesize_fundus(grade, width=2592, height=1944, seed=grade)
        samples.append((f"synthetic_grade{grade}.jpg", synthetic.encode_jpeg(image)))
    document = synthetic.synthesize_non_fundus("document", seed=1)
    samples.append(("synthetic_document.png", synthetic.encode_png(document)))
    return samples


def main(argv: list[str] | None = None) -> int:
    """Print one line per sample: format, sizes, quality verdict, time."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("artifacts/demo"))
    args = parser.parse_args(argv)
    config = PreprocessConfig(size=args.size)
    args.out.mkdir(parents=True, exist_ok=True)
    samples = sample_inputs(args.shared)
    print(f"{'file':40} {'format':6} {'source':>11} {'scale':>5} {'ms':>5}  verdict")
    for name, data in samples:
        start = time.perf_counter()
        try:
            result = load_and_preprocess(data, config)
        except FundusError as error:
            print(f"{name:40} error {error.code}: {error.message}")
            continue
        elapsed_ms = (time.perf_counter() - start) * 1000
        info, quality = result.info, result.quality
        verdict = "gradable" if quality.gradable else "UNGRADABLE " + ",".join(quality.reasons)
        size = f"{info.source_width}x{info.source_height}"
        print(
            f"{name:40} {info.format.value:6} {size:>11} {info.reduced_scale:>5} "
            f"{elapsed_ms:5.0f}  {verdict} "
            f"(score {quality.score:.2f}, eye {result.laterality or '?'})"
        )
        out_path = args.out / (Path(name).stem + ".png")
        cv2.imwrite(str(out_path), cv2.cvtColor(result.image, cv2.COLOR_RGB2BGR))
    print(f"model inputs ({args.size} px) written to {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
