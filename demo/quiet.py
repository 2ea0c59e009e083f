"""TensorFlow start-up quiet for the demo only (never set in the library or the image).

TensorFlow's C++ runtime prints oneDNN, CPU-feature and "no CUDA driver" lines on every import,
absl's Python logger warns about saved functions, and gRPC has its own log level. ``make demo``
wants its table and URLs on screen, so the demo processes turn these off; a value already in the
environment wins (``TF_CPP_MIN_LOG_LEVEL=0 make demo`` shows everything again).

TensorFlow 2.21 writes some of its import-time lines before absl logging is initialised, where
``TF_CPP_MIN_LOG_LEVEL`` does not reach them, so the import itself runs with file descriptor 2
pointed at /dev/null; a failing import still raises, and its traceback prints after.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Mapping

QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # C++ (and absl C++) logs: fatal only
    "GRPC_VERBOSITY": "ERROR",
}


def quiet_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` plus the quiet settings it does not already set (for child processes)."""
    return {**QUIET_ENV, **environ}


@contextlib.contextmanager
def _stderr_fd_silenced() -> Iterator[None]:
    """File descriptor 2 (where C++ writes) to /dev/null for the block, then back."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_tensorflow() -> None:
    """Import TensorFlow into this process with its start-up logs off (call before any other
    TensorFlow import: its C++ reads the environment once)."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] != QUIET_ENV["TF_CPP_MIN_LOG_LEVEL"]:
        return  # the user asked for TensorFlow's logs: keep the Python ones too
    with _stderr_fd_silenced():
        import tensorflow  # noqa: F401 - loaded here, quietly, for the code that follows
    import absl.logging  # after TensorFlow, which depends on it

    absl.logging.set_verbosity(absl.logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    for module in ("keras", "tensorflow", "tf_keras", "absl"):
        warnings.filterwarnings("ignore", module=module)
