"""The embedded default: the gateway with the local backend, grading the sample images.

    python -m demo --model-dir export [--port 8080]

Starts ``python -m gateway`` (through ``demo.quiet_gateway``, which keeps TensorFlow's start-up
logs off the screen; local backend, authentication off, 127.0.0.1 only), waits until it is ready,
grades the sample photographs (the real EyePACS/DICOM fixtures in ../shared when present, else
synthetic ones), prints a table, then keeps serving until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from demo.quiet import quiet_environ
from demo.samples import DEFAULT_SHARED, sample_inputs


def start_gateway(model_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """The gateway process, local backend, demo settings, TensorFlow's start-up logs off."""
    env = quiet_environ({k: v for k, v in os.environ.items() if not k.startswith("DRG_")})
    env.update(
        DRG_BACKEND="local",
        DRG_MODEL_DIR=str(model_dir),
        DRG_AUTH="disabled",
        DRG_ENVIRONMENT="development",
        DRG_HOST="127.0.0.1",
        DRG_PORT=str(port),
        DRG_LOG_LEVEL="WARNING",
    )
    return subprocess.Popen([sys.executable, "-m", "demo.quiet_gateway"], env=env)


def wait_ready(
    url: str, process: subprocess.Popen[bytes], timeout_s: float = 180
) -> dict[str, object]:
    """Poll /readyz; return its body."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the gateway exited during startup (see its log above)")
        try:
            response = httpx.get(url + "/readyz", timeout=2)
            if response.status_code == 200:
                body: dict[str, object] = response.json()
                return body
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("the gateway did not become ready")


def known_grades(shared: Path) -> dict[str, str]:
    """Reference grades of the EyePACS samples (labels.csv), when present."""
    labels = shared / "eyepacs-sample" / "labels.csv"
    if not labels.is_file():
        return {}
    rows = [line.split(",") for line in labels.read_text().splitlines()[1:] if "," in line]
    return {name: grade.strip() for name, grade in rows}


def grade_samples(url: str, shared: Path) -> None:
    """POST every sample to /v1/grade and print one line each."""
    samples = sample_inputs(shared)
    truth = known_grades(shared)
    print(
        f"\n{'image':40} {'quality':22} {'grade':>5} {'truth':>5}  {'P(ref)':>6}  "
        f"{'action':26} {'ms':>6}"
    )
    for name, data in samples:
        started = time.perf_counter()
        response = httpx.post(url + "/v1/grade", files={"image": (name, data)}, timeout=120)
        elapsed_ms = (time.perf_counter() - started) * 1000
        body = response.json()
        if response.status_code != 200:
            print(f"{name:40} error {body['error']['code']}: {body['error']['message'][:60]}")
            continue
        quality = (
            "gradable" if body["quality"]["gradable"] else ",".join(body["quality"]["reasons"])
        )
        grade = "-" if body["grade"] is None else str(body["grade"])
        probability = body["referable_probability"]
        referable = "-" if probability is None else f"{probability:.2f}"
        print(
            f"{name:40} {quality:22} {grade:>5} {truth.get(name, '?'):>5}  {referable:>6}  "
            f"{body['action']:26} {elapsed_ms:6.0f}"
        )
    if samples and body.get("model_warning"):
        print(f"\nNOTE: {body['model_warning']}")
    print(f"DISCLAIMER: {body.get('disclaimer', '')}")


def main(argv: list[str] | None = None) -> int:
    """Run the demo until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("export"))
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--no-serve", action="store_true", help="exit after grading the samples")
    args = parser.parse_args(argv)
    url = f"http://127.0.0.1:{args.port}"
    process = start_gateway(args.model_dir, args.port)
    try:
        ready = wait_ready(url, process)
        print(
            f"gateway ready at {url} (model {ready['model']}, local backend, auth OFF: demo only)"
        )
        grade_samples(url, args.shared)
        if args.no_serve:
            return 0
        print(f"\nServing at {url} (API docs at {url}/docs). Ctrl-C to stop.")
        process.wait()
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
