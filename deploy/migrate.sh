#!/usr/bin/env bash
# The results store's migration Job (k8s/components/pacs), run to completion before the gateways
# roll: a gateway whose database schema is older than its code refuses to start.
#   deploy/migrate.sh run rendered.yaml rest.yaml     # release.yml; then kubectl apply -f rest.yaml
#   deploy/migrate.sh strip rendered.yaml rest.yaml   # rest.yaml only (model-release.yml)
# Both write rest.yaml: the render without its migration Jobs (label
# app.kubernetes.io/component=migration), so no later apply touches a Job. `run` then applies
# what the Job needs and rolls nothing (Namespace, ConfigMaps, Secrets, ServiceAccounts,
# NetworkPolicies: generated ConfigMaps carry a content hash, running pods keep theirs), deletes
# the previous Job (a Job's pod template is immutable under apply), applies the new one and waits
# until it is Complete (exit 0), Failed or past MIGRATION_TIMEOUT_S (its logs, exit 1).
# A render without a migration Job (PACS intake off) migrates nothing.
set -euo pipefail

NAMESPACE="${NAMESPACE:-dr-grading}"
# A little over the Job's activeDeadlineSeconds (600): the Job fails itself first.
TIMEOUT_S="${MIGRATION_TIMEOUT_S:-660}"
POLL_S="${MIGRATION_POLL_S:-5}"
FIELD_MANAGER="${FIELD_MANAGER:-release}"
PYTHON="${PYTHON:-python}"

# split RENDERED REST DIR: REST, DIR/prepare.yaml and DIR/jobs.yaml; prints the Jobs' names.
split() {
  "$PYTHON" - "$@" <<'PY'
import pathlib
import sys

import yaml

rendered, rest, work = (pathlib.Path(a) for a in sys.argv[1:4])
docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]


def migration(doc):
    labels = doc["metadata"].get("labels") or {}
    return doc["kind"] == "Job" and labels.get("app.kubernetes.io/component") == "migration"


prepare = {"Namespace", "ConfigMap", "Secret", "ServiceAccount", "NetworkPolicy"}
jobs = [d for d in docs if migration(d)]
rest.write_text(yaml.safe_dump_all([d for d in docs if not migration(d)], sort_keys=False))
(work / "prepare.yaml").write_text(
    yaml.safe_dump_all([d for d in docs if d["kind"] in prepare], sort_keys=False)
)
(work / "jobs.yaml").write_text(yaml.safe_dump_all(jobs, sort_keys=False))
for job in jobs:
    print(job["metadata"]["name"])
PY
}

# state JOB: the Job's true conditions, e.g. "Complete" or "Failed" (empty while it runs).
state() {
  kubectl -n "$NAMESPACE" get job "$1" \
    -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}'
}

wait_for() {
  local name="$1" now
  local deadline=$((SECONDS + TIMEOUT_S))
  while :; do
    now=" $(state "$name") "
    if [[ "$now" == *" Complete "* ]]; then
      echo "migrate: job/$name complete"
      kubectl -n "$NAMESPACE" logs "job/$name" --all-containers --tail=20 || true
      return 0
    fi
    if [[ "$now" == *" Failed "* ]] || ((SECONDS >= deadline)); then
      echo "migrate: job/$name did not complete (conditions:${now% }); its logs:" >&2
      kubectl -n "$NAMESPACE" logs "job/$name" --all-containers --tail=100 >&2 || true
      return 1
    fi
    sleep "$POLL_S"
  done
}

case "${1:-}" in
  run | strip)
    action="$1"
    rendered="${2:?rendered manifests}"
    rest="${3:?output file for the rest}"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    names="$(split "$rendered" "$rest" "$work")"
    jobs=()
    if [[ -n "$names" ]]; then
      mapfile -t jobs <<< "$names"
    fi
    if [[ "$action" == strip ]]; then
      exit 0
    fi
    if ((${#jobs[@]} == 0)); then
      echo "migrate: no migration Job in $rendered; nothing to migrate"
      exit 0
    fi
    kubectl apply --server-side --field-manager="$FIELD_MANAGER" -f "$work/prepare.yaml"
    for name in "${jobs[@]}"; do
      kubectl -n "$NAMESPACE" delete job "$name" --ignore-not-found --wait=true
    done
    kubectl apply --server-side --field-manager="$FIELD_MANAGER" -f "$work/jobs.yaml"
    for name in "${jobs[@]}"; do
      wait_for "$name"
    done
    ;;
  *)
    echo "usage: $0 run RENDERED REST | strip RENDERED REST" >&2
    exit 2
    ;;
esac
