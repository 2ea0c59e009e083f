#!/usr/bin/env bash
# Deployment revisions around an apply, so that a failed release goes back exactly where it was.
#   deploy/rollout.sh snapshot before.txt   # before kubectl apply
#   deploy/rollout.sh wait                  # rollout status of every Deployment (in parallel)
#   deploy/rollout.sh undo before.txt       # undo only the Deployments whose revision moved
# `kubectl rollout undo` without --to-revision would also "undo" an unchanged Deployment to an
# older revision; comparing with the snapshot avoids that.
set -euo pipefail

NAMESPACE="${NAMESPACE:-dr-grading}"
DEPLOYMENTS=(gateway gateway-canary tfserving)
TIMEOUT="${ROLLOUT_TIMEOUT:-15m}"

revision() {
  kubectl -n "$NAMESPACE" get deployment "$1" \
    -o jsonpath='{.metadata.annotations.deployment\.kubernetes\.io/revision}' 2>/dev/null || true
}

# The Deployments roll at the same time, so they are waited for in parallel: one `wait` takes at
# most TIMEOUT, not three times it (the workflows' job timeouts count on that, see tests/deploy).
wait_all() {
  local name pid failed=0
  local pids=()
  for name in "${DEPLOYMENTS[@]}"; do
    kubectl -n "$NAMESPACE" rollout status "deployment/$name" --timeout="$TIMEOUT" &
    pids+=("$!")
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
  done
  return "$failed"
}

case "${1:-}" in
  snapshot)
    : > "${2:?snapshot file}"
    for name in "${DEPLOYMENTS[@]}"; do
      echo "$name $(revision "$name")" >> "$2"
    done
    cat "$2"
    ;;
  wait)
    wait_all
    ;;
  undo)
    while read -r name before; do
      now="$(revision "$name")"
      if [[ -z "$before" ]]; then
        echo "rollout: $name did not exist before this release; leaving it" >&2
      elif [[ "$now" != "$before" ]]; then
        echo "rollout: $name revision $now -> back to $before"
        kubectl -n "$NAMESPACE" rollout undo "deployment/$name" --to-revision="$before"
      fi
    done < "${2:?snapshot file}"
    wait_all
    ;;
  *)
    echo "usage: $0 snapshot FILE | wait | undo FILE" >&2
    exit 2
    ;;
esac
