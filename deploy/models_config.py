"""TF Serving's ``models.config`` for the stable/canary release scheme.

    python deploy/models_config.py render --stable 3 --canary 4 --out models.config
    python deploy/models_config.py show k8s/base/tfserving/models.config

The file is a ``ModelServerConfig`` text proto with one model, the ``specific`` version policy
(exactly the versions the two labels name, so a pod fetches and loads nothing else) and the
labels ``stable`` (what the gateway asks for) and ``canary`` (what the canary gateway pod asks
for). Outside a model release both labels name the same version. Every file written here is
parsed back with tensorflow-serving-api's own ``ModelServerConfig`` and checked.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

MODEL_NAME = "dr_grader"
BASE_PATH = "/models/dr_grader"
LABELS = ("stable", "canary")
HEADER = """\
# ModelServerConfig (text proto) read by tensorflow_model_server --model_config_file.
# Written by deploy/models_config.py during releases; both labels must always exist:
# the gateway asks for `stable` (DRG_MODEL_LABEL) and the canary gateway pod for `canary`.
# Outside a model release they point at the same version.
"""


class ConfigError(ValueError):
    """models.config does not follow the release scheme."""


@dataclass(frozen=True)
class ReleaseState:
    """Which versions the two labels name."""

    stable: int
    canary: int

    @property
    def versions(self) -> list[int]:
        """The versions TF Serving must load (sorted, no duplicates)."""
        return sorted({self.stable, self.canary})

    def to_json(self) -> str:
        """``{"stable": N, "canary": M}``: the release pointer stored beside the models."""
        return json.dumps({"stable": self.stable, "canary": self.canary}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReleaseState:
        """Inverse of ``to_json``; refuses anything but two positive integers."""
        data = json.loads(text)
        if not isinstance(data, dict) or set(data) != set(LABELS):
            raise ConfigError(f"release pointer must hold exactly {list(LABELS)}: {text!r}")
        values = [data[label] for label in LABELS]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
            raise ConfigError(f"release pointer versions must be integers >= 1: {text!r}")
        return cls(stable=data["stable"], canary=data["canary"])


def build(state: ReleaseState, model_name: str = MODEL_NAME, base_path: str = BASE_PATH) -> str:
    """The models.config text for ``state``."""
    if state.stable < 1 or state.canary < 1:
        raise ConfigError("versions must be >= 1")
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    model.model_version_policy.specific.versions.extend(state.versions)
    model.version_labels["stable"] = state.stable
    model.version_labels["canary"] = state.canary
    text = HEADER + str(text_format.MessageToString(config))
    parse(text, model_name)  # never write what we could not read back
    return text


def parse(text: str, model_name: str = MODEL_NAME) -> ReleaseState:
    """Parse with tensorflow-serving-api's ModelServerConfig and check the release scheme."""
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ConfigError(f"not a ModelServerConfig text proto: {error}") from None
    if config.WhichOneof("config") != "model_config_list":
        raise ConfigError("expected a model_config_list")
    models = list(config.model_config_list.config)
    if [m.name for m in models] != [model_name]:
        raise ConfigError(
            f"expected exactly one model {model_name!r}, got {[m.name for m in models]}"
        )
    model = models[0]
    if model.model_platform != "tensorflow":
        raise ConfigError(f"model_platform must be 'tensorflow', got {model.model_platform!r}")
    if not model.base_path.startswith("/"):
        raise ConfigError(f"base_path must be a local absolute path, got {model.base_path!r}")
    if model.model_version_policy.WhichOneof("policy_choice") != "specific":
        raise ConfigError("model_version_policy must be `specific` (load only labelled versions)")
    missing = [label for label in LABELS if label not in model.version_labels]
    if missing:
        raise ConfigError(f"version_labels lacks {missing}")
    extra = sorted(set(model.version_labels) - set(LABELS))
    if extra:
        raise ConfigError(f"unexpected version_labels {extra}")
    state = ReleaseState(model.version_labels["stable"], model.version_labels["canary"])
    versions = sorted(model.model_version_policy.specific.versions)
    if versions != state.versions:
        raise ConfigError(
            f"specific versions {versions} must be exactly the labelled versions {state.versions}"
        )
    return state


def main(argv: list[str] | None = None) -> int:
    """CLI: ``render`` a config, or ``show`` the state of one as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="write models.config for a release state")
    render.add_argument("--stable", type=int, required=True)
    render.add_argument("--canary", type=int, help="default: the stable version")
    render.add_argument("--model-name", default=MODEL_NAME)
    render.add_argument("--base-path", default=BASE_PATH)
    render.add_argument("--out", type=Path, help="default: stdout")
    show = sub.add_parser("show", help="print the release state of a models.config as JSON")
    show.add_argument("path", type=Path)
    show.add_argument("--model-name", default=MODEL_NAME)
    args = parser.parse_args(argv)
    try:
        if args.command == "render":
            state = ReleaseState(args.stable, args.canary or args.stable)
            text = build(state, args.model_name, args.base_path)
            if args.out:
                args.out.write_text(text)
            else:
                sys.stdout.write(text)
        else:
            print(parse(args.path.read_text(), args.model_name).to_json())
    except ConfigError as error:
        print(f"models.config: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
