#!/usr/bin/env bash
# Connection scale: TOTAL concurrent sessions held for HOLD seconds against `wsbench serve`
# (release build, loopback), then closed at a ramp-down rate. One client process and one server
# process hold at most what the open-file hard limit allows, so the sessions are split over as
# many client/server pairs as that limit needs (one pair where it allows TOTAL), every client
# starting its load at the same instant (--start-at) so that all sessions are open at once.
# Prints each pair's figures, the merged result, and the memory per connection of both sides.
#
#   TOTAL=100000 HOLD=60 RATE=1 scripts/bench-conns.sh      # idle: keepalive pings only
#   TOTAL=100000 HOLD=60 RATE=20000 scripts/bench-conns.sh  # 20k requests/s over all of them
#
# Needs ~(TOTAL * 15 KiB) of memory beside the kernel's socket buffers, and takes about
# RAMP + HOLD + 30 s. Keep other work off the machine meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."

TOTAL=${TOTAL:-100000}
HOLD=${HOLD:-60}
RATE=${RATE:-1}
RAMP=${RAMP:-$((TOTAL / 2000 + 1))} # seconds to set every session up: 2,000 a second in all
BASE_PORT=${BASE_PORT:-18200}

hard=$(ulimit -Hn)
ulimit -n "$hard"
per=$((hard - 200)) # the rest: stdio, epoll, the runtime, the metrics endpoint
procs=$(((TOTAL + per - 1) / per))
echo "== $TOTAL sessions over $procs client/server pair(s) (open-file hard limit $hard), ramp ${RAMP}s, hold ${HOLD}s, ${RATE} req/s"

cargo build --release --quiet
bin=target/release/wsbench
out=$(mktemp -d)
servers=()
cleanup() { kill "${servers[@]}" 2>/dev/null || true; }
trap cleanup EXIT

for k in $(seq 1 "$procs"); do
  "$bin" serve --port $((BASE_PORT + k)) --stats-file "$out/stats$k.json" \
    --metrics-listen "127.0.0.1:$((BASE_PORT + 100 + k))" >"$out/serve$k.log" 2>&1 &
  servers+=($!)
done
sleep 1

start=$(date -u -d "+$((RAMP + 20)) sec" +%Y-%m-%dT%H:%M:%SZ)
# Each client connects from four source addresses of its own. Without them every client takes
# its ports from 127.0.0.1's one ephemeral range (28,232 here); past ~60 % of it the kernel's
# search for a free port in connect() spins (seen: 96 % system CPU for 16 s at the ramp's end,
# connect p99 of seconds); spread out, no address is more than 15 % used.
clients=()
for k in $(seq 1 "$procs"); do
  n=$((TOTAL / procs + (k <= TOTAL % procs ? 1 : 0)))
  rate=$(python3 -c "print(max(1, round($RATE * $n / $TOTAL)))")
  "$bin" run "ws://127.0.0.1:$((BASE_PORT + k))" -c "$n" --rate "$rate" -d "${HOLD}s" \
    --ramp-up "${RAMP}s" --connect-timeout 60s --start-at "$start" --ping-interval 10s \
    --close-rate 2000 --bind-ip "127.0.$k.1-127.0.$k.4" --worker-id "w$k" --no-gate --output quiet --json "$out/run$k.json" \
    >"$out/run$k.log" 2>&1 &
  clients+=($!)
done

# Halfway through the hold: every server's memory per connection, and every client's RSS.
now=$(date +%s)
at=$(date -d "$start" +%s)
sleep $((at - now + HOLD / 2))
for k in $(seq 1 "$procs"); do
  curl -s "127.0.0.1:$((BASE_PORT + 100 + k))/metrics" >"$out/metrics$k.txt" || true
  grep VmRSS "/proc/${clients[$((k - 1))]}/status" | awk '{print $2}' >"$out/client_rss$k.txt" || true
done

for pid in "${clients[@]}"; do wait "$pid" || true; done
kill -TERM "${servers[@]}"
for pid in "${servers[@]}"; do wait "$pid" || true; done
servers=()
"$bin" merge "$out"/run*.json --no-gate --output quiet --json "$out/merged.json" || true

python3 - "$out" "$procs" <<'EOF'
import json, sys, glob, re, os
out, procs = sys.argv[1], int(sys.argv[2])
rows = []
for k in range(1, procs + 1):
    r = json.load(open(f"{out}/run{k}.json"))
    st = json.load(open(f"{out}/stats{k}.json"))
    m = open(f"{out}/metrics{k}.txt").read() if os.path.exists(f"{out}/metrics{k}.txt") else ""
    def metric(name):
        g = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)", m, re.M)
        return float(g.group(1)) if g else None
    rows.append((k, r, st, metric("wsbench_server_memory_per_connection_bytes"),
                 metric("wsbench_server_connections_active")))
print(f"{'pair':>4} {'opened':>7} {'failed':>6} {'srv peak':>8} {'held mid':>8} {'sent':>8} {'ok':>8} "
      f"{'connect p99':>11} {'tcp/upgrade/hello p99 ms':>26} {'client KiB/conn':>15} {'server B/conn':>13}")
for k, r, st, srv_b, held in rows:
    c = r["connections"]; h = r.get("handshake_ms", {}) or {}
    p = lambda ph: (h.get(ph) or {}).get("p99")
    cl = r.get("client", {}) or {}
    print(f"{k:>4} {c['opened']:>7} {c['failed']:>6} {st['peak_active']:>8} {held or 0:>8.0f} "
          f"{r['counts']['sent']:>8} {r['counts']['succeeded']:>8} {(r.get('connect_ms') or {}).get('p99') or 0:>11.1f} "
          f"{'%s / %s / %s' % (p('tcp'), p('upgrade'), p('hello')):>26} "
          f"{cl.get('rss_per_conn_kb') or 0:>15.2f} {srv_b or 0:>13.0f}")
M = json.load(open(f"{out}/merged.json")) if os.path.exists(f"{out}/merged.json") else None
opened = sum(r["connections"]["opened"] for _, r, *_ in rows)
failed = sum(r["connections"]["failed"] for _, r, *_ in rows)
peak = sum(st["peak_active"] for _, _, st, *_ in rows)
print(f"all: {opened} opened, {failed} failed, servers' peak sum {peak}")
if M:
    p99 = lambda d: (d or {}).get("p99")
    h = M.get("handshake_ms") or {}
    c = M["counts"]
    print(f"merged: sent {c['sent']}, succeeded {c['succeeded']}, failed {c['failed']}, lost {c['lost']}; "
          f"latency p50 {M['latency_ms'].get('p50')} p99 {p99(M['latency_ms'])} ms; "
          f"connect p99 {p99(M.get('connect_ms'))} ms (tcp {p99(h.get('tcp'))} / upgrade {p99(h.get('upgrade'))} / hello {p99(h.get('hello'))})")
    res = M.get("resilience") or {}
    print(f"closes: answered {res.get('closes_answered')}, unanswered {res.get('closes_unanswered')}, dropped {res.get('closes_dropped')}; "
          f"pong p99 {p99(res.get('pong_ms'))} ms, pong timeouts {res.get('pong_timeouts')}, disconnects {res.get('disconnects')}")
print("files:", out)
EOF
