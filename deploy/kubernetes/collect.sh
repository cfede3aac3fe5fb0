#!/usr/bin/env bash
# Collects each worker's result from the Job's pod logs and merges them into one verdict.
# Usage: deploy/kubernetes/collect.sh [JOB_NAME] [-- merge flags...]
#   deploy/kubernetes/collect.sh wsbench -- --config config/ci.toml --junit report.xml
# Exit codes: those of `wsbench merge` (0 pass, 1 threshold failed, 2 bad or damaged file,
# 4 inconclusive) once every pod has reported; 2 or 3 when a pod exited with it (its wsbench
# was misconfigured, or could not run); 3 when the Job failed otherwise, a pod's log holds no
# result, or the Job neither completed nor failed within WSBENCH_COLLECT_TIMEOUT seconds
# (default 1800).
set -euo pipefail
job="${1:-wsbench}"
shift || true
[ "${1:-}" = "--" ] && shift
out="results-$job"
mkdir -p "$out"

# Wait for Complete or Failed: `kubectl wait` on one condition would block on the other.
timeout="${WSBENCH_COLLECT_TIMEOUT:-1800}"
deadline=$((SECONDS + timeout))
state=""
while [ "$SECONDS" -lt "$deadline" ]; do
  state=$(kubectl get "job/$job" -o jsonpath='{.status.conditions[?(@.status=="True")].type}')
  case "$state" in
    *Complete*|*Failed*) break ;;
  esac
  sleep 5
done
case "$state" in
  *Complete*) ;;
  *Failed*)
    # The pods' own exit codes say why: 2 bad usage, 3 could not run (the job's command
    # exits 0 for a run that ran, whatever its verdict: the merge decides that).
    worst=3
    codes=$(kubectl get pods -l "job-name=$job" \
      -o jsonpath='{range .items[*]}{.metadata.name} {.status.containerStatuses[0].state.terminated.exitCode}{"\n"}{end}')
    echo "job/$job failed; pod exit codes:" >&2
    echo "$codes" >&2
    if echo "$codes" | awk '{print $2}' | grep -qx 2; then worst=2; fi
    exit "$worst"
    ;;
  *)
    echo "job/$job neither completed nor failed within ${timeout}s" >&2
    exit 3
    ;;
esac

for pod in $(kubectl get pods -l "job-name=$job" -o name); do
  name="${pod#pod/}"
  kubectl logs "$pod" \
    | sed -n '/^----- wsbench result begin -----$/,/^----- wsbench result end -----$/p' \
    | sed '1d;$d' > "$out/$name.json"
  [ -s "$out/$name.json" ] || { echo "no result in the log of $name" >&2; exit 3; }
done
exec wsbench merge "$out"/*.json "$@"
