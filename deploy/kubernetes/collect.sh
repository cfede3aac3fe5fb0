#!/usr/bin/env bash
# Collects each worker's result from the Job's pod logs and merges them into one verdict.
# Usage: deploy/kubernetes/collect.sh [JOB_NAME] [-- merge flags...]
#   deploy/kubernetes/collect.sh wsbench -- --config config/ci.toml --junit report.xml
set -euo pipefail
job="${1:-wsbench}"
shift || true
[ "${1:-}" = "--" ] && shift
out="results-$job"
mkdir -p "$out"
kubectl wait --for=condition=complete "job/$job" --timeout=30m
for pod in $(kubectl get pods -l "job-name=$job" -o name); do
  name="${pod#pod/}"
  kubectl logs "$pod" \
    | sed -n '/^----- wsbench result begin -----$/,/^----- wsbench result end -----$/p' \
    | sed '1d;$d' > "$out/$name.json"
  [ -s "$out/$name.json" ] || { echo "no result in the log of $name" >&2; exit 3; }
done
exec wsbench merge "$out"/*.json "$@"
