#!/usr/bin/env bash
# The performance benchmark: not part of the test suite. Builds release, starts `wsbench serve`
# as a separate process on loopback, runs a fixed matrix against it and prints one table:
# configuration, round trips/s, p50, p99, client CPU per request, client peak RSS.
# Takes about 80 seconds at 10 s per case (five cases), plus the release build. Usage: scripts/bench.sh [SECONDS_PER_CASE]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"

# WSBENCH_BIN=/path/to/other/wsbench runs the same matrix with another build (an A/B).
if [ -n "${WSBENCH_BIN:-}" ]; then
  bin=$WSBENCH_BIN
else
  cargo build --release --quiet
  bin=target/release/wsbench
fi
# 10,000 connections need 10,000 sockets on each side; take what the hard limit allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" serve --port 0 > "$work/serve.out" 2>&1 &
server_pid=$!
for _ in $(seq 50); do
  url=$(sed -n 's/^wsbench serve listening on //p' "$work/serve.out")
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "${url:-}" ] || { echo "server did not start"; cat "$work/serve.out"; exit 1; }

cases=(
  "64 x 1|-c 64 --inflight 1 -d ${secs}s"
  "64 x 32|-c 64 --inflight 32 -d ${secs}s"
  "1,000 x 1|-c 1000 --inflight 1 -d ${secs}s --ramp-up 1s"
  "rate 100k (64 conns)|-c 64 --rate 100k -d ${secs}s"
  "10,000 conns, rate 20k|-c 10000 --rate 20k -d ${secs}s --ramp-up 5s --connect-timeout 20s"
)

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(date -u +%Y-%m-%dT%H:%MZ); server: wsbench serve (separate process)"
i=0
for c in "${cases[@]}"; do
  name="${c%%|*}"
  args="${c#*|}"
  i=$((i + 1))
  # shellcheck disable=SC2086
  "$bin" run --url "$url" $args --no-gate --progress off --output quiet --json "$work/$i.json" > /dev/null || true
  echo "$name|$args" > "$work/$i.name"
done

python3 - "$work" "$i" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
rows = [("configuration", "round trips/s", "target", "p50 ms", "p99 ms", "client us/req", "client CPU", "peak RSS MiB", "conns", "notes")]
for i in range(1, n + 1):
    name, args = open(f"{work}/{i}.name").read().strip().split("|", 1)
    try:
        d = json.load(open(f"{work}/{i}.json"))
    except Exception as e:
        rows.append((name, "failed", "", "", "", "", "", "", "", str(e)))
        continue
    lat, cl = d["latency_ms"], d["client"]
    target = f"{d['rate']['target_rps']:.0f}/s" if d.get("rate") else "closed"
    notes = []
    if d.get("rate"):
        notes.append(f"sent {d['rate']['achieved_send_rps']:.0f}/s")
    if cl["saturated"]:
        notes.append("client saturated: " + "; ".join(cl["reasons"]))
    if d["counts"]["failed"] or d["counts"]["timed_out"] or d["counts"]["lost"]:
        notes.append(f"errors {d['error_rate']*100:.3f}%")
    fmt = lambda v, f="{:.2f}": "-" if v is None else f.format(v)
    rows.append((
        name,
        f"{d['throughput_rps']:,.0f}",
        target,
        fmt(lat["p50"]),
        fmt(lat["p99"]),
        fmt(cl["cpu_us_per_request"]),
        f"{cl['cpu_share']*100:.0f}% of {cl['cores']}",
        f"{cl['peak_rss_mb']:.0f}",
        f"{d['connections']['opened']}",
        ", ".join(notes),
    ))
widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
for j, r in enumerate(rows):
    print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    if j == 0:
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
PY
