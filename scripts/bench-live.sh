#!/usr/bin/env bash
# The cost of live metrics (a benchmark, not a test): 64 x 32 against `wsbench serve` with
# metrics off, then on (--metrics-listen scraped every second, --otlp-endpoint pushing every
# second to a local sink), alternating, ROUNDS times; prints each run's calls/s and the medians.
# Usage: scripts/bench-live.sh [SECONDS_PER_RUN] [ROUNDS]   (default 10 5: about 2 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
rounds="${2:-5}"
cargo build --release --quiet
bin=target/release/wsbench
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" serve --port 0 > "$work/serve.out" 2>&1 &
pids+=($!)
# An OTLP/HTTP sink: answers every POST 200 and counts them.
python3 - "$work/sink.port" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
PY
pids+=($!)
for _ in $(seq 50); do
  url=$(sed -n 's/^wsbench serve listening on //p' "$work/serve.out")
  [ -n "$url" ] && [ -s "$work/sink.port" ] && break
  sleep 0.1
done
sink="http://127.0.0.1:$(cat "$work/sink.port")"
metrics="127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

run() {  # $1 = off|on; prints calls/s
  local extra=()
  if [ "$1" = on ]; then
    extra=(--metrics-listen "$metrics" --otlp-endpoint "$sink" --otlp-interval 1s)
    ( for _ in $(seq $((secs + 3))); do sleep 1; curl -s "http://$metrics/metrics" > /dev/null || true; done ) &
  fi
  "$bin" run --url "$url" -c 64 --inflight 32 -d "${secs}s" --no-gate --progress off \
    --output json "${extra[@]}" 2>/dev/null | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["throughput_rps"]))'
  wait
}

echo "machine: $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ); 64 x 32, ${secs}s per run, $rounds rounds"
off=(); on=()
for r in $(seq "$rounds"); do
  a=$(run off); b=$(run on)
  off+=("$a"); on+=("$b")
  echo "round $r: off $a  on $b"
done
python3 - "${off[*]}" "${on[*]}" <<'PY'
import statistics, sys
off = [int(x) for x in sys.argv[1].split()]
on = [int(x) for x in sys.argv[2].split()]
mo, mn = statistics.median(off), statistics.median(on)
print(f"median off {mo:,.0f} calls/s, on {mn:,.0f} calls/s: {100 * (mn - mo) / mo:+.1f} %")
PY
