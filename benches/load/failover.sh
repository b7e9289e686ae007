#!/usr/bin/env bash
# Failover benchmark: client success rate and added latency when the primary endpoint fails.
#
#   bash benches/load/failover.sh [--duration S] [--connections N] [--latency-ms N]
#                                 [--threshold-ms N] [--no-build]
#
# Starts two parapet-mock upstreams (primary, fallback; both with --latency-ms of provider
# time to first byte, default 20) and Parapet with a failover policy (primary → fallback,
# latency_threshold_ms = --threshold-ms, default 200; breaker min_requests 10 over 10 s,
# cool-down 5 s). Runs wrk for each scenario, the primary's fault set through the mock's
# PUT /__mock/fault: none (baseline), 503 on every request, hang on every request, reset
# on every request, 503 on 30% of requests. Reports success rate (2xx / all) and the added
# latency (scenario p50 / p99 minus baseline p50 / p99). Writes benches/load/failover-results.md.
# All traffic stays on 127.0.0.1; every process started here is stopped on exit.
set -euo pipefail

DURATION=10
CONNS=16
LATENCY_MS=20
THRESHOLD_MS=200
BUILD=1
die() { echo "failover.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="${2:?}"; shift ;;
    --connections) CONNS="${2:?}"; shift ;;
    --latency-ms) LATENCY_MS="${2:?}"; shift ;;
    --threshold-ms) THRESHOLD_MS="${2:?}"; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
for n in "$DURATION" "$CONNS" "$LATENCY_MS" "$THRESHOLD_MS"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "not a number: $n"
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(mktemp -d /tmp/parapet-failover.XXXXXX)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v wrk >/dev/null || die "wrk is required (apt-get install wrk)"
command -v curl >/dev/null || die "curl is required"
if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release --bin parapet --bin parapet-mock) >&2
fi
MOCK_BIN="${PARAPET_MOCK_BIN:-$ROOT/target/release/parapet-mock}"
PARAPET_BIN="${PARAPET_BIN:-$ROOT/target/release/parapet}"
[ -x "$MOCK_BIN" ] && [ -x "$PARAPET_BIN" ] || die "missing binaries (build first)"

MOCK_URL=""
start_mock() { # name -> sets MOCK_URL (not in a subshell: the pid must reach PIDS)
  "$MOCK_BIN" --listen 127.0.0.1:0 --no-record --latency-ms "$LATENCY_MS" >"$WORK/$1.out" 2>"$WORK/$1.err" &
  PIDS+=("$!")
  local i
  MOCK_URL=""
  for i in $(seq 1 150); do
    MOCK_URL="$(sed -n 's/^listening on //p' "$WORK/$1.out" | head -n1)"
    [ -n "$MOCK_URL" ] && break
    sleep 0.1
  done
  [ -n "$MOCK_URL" ] || die "mock $1 did not start"
}
start_mock primary; PRIMARY="$MOCK_URL"
start_mock fallback; FALLBACK="$MOCK_URL"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
P_PORT="$(free_port)"; A_PORT="$(free_port)"
cat >"$WORK/parapet.toml" <<TOML
[[endpoints]]
id = "primary"
kind = "openai"
base_url = "$PRIMARY"
[[endpoints]]
id = "fallback"
kind = "openai"
base_url = "$FALLBACK"
[[routes]]
id = "chat"
path_prefix = "/v1/"
endpoint = "primary"
[[failover_policies]]
id = "bench"
route_id = "chat"
primary_endpoint = "primary"
fallback_endpoints = ["fallback"]
window_seconds = 10
min_requests = 10
cooldown_ms = 5000
[failover_policies.conditions]
latency_threshold_ms = $THRESHOLD_MS
error_rate_threshold = 0.5
[policies]
dir = "$ROOT/tests/fixtures/no-policies"
watch = false
[store]
data_dir = "$WORK/data"
TOML
PARAPET_LISTEN="127.0.0.1:$P_PORT" PARAPET_ADMIN_LISTEN="127.0.0.1:$A_PORT" RUST_LOG="${RUST_LOG:-warn}" \
  "$PARAPET_BIN" serve --config "$WORK/parapet.toml" >"$WORK/parapet.out" 2>"$WORK/parapet.err" &
PIDS+=("$!")
deadline=$(( $(date +%s) + 30 ))
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$A_PORT/readyz" || true)" = 200 ]; do
  [ "$(date +%s)" -lt "$deadline" ] || die "parapet not ready: $(tail -n 5 "$WORK/parapet.err")"
  sleep 0.1
done

cat >"$WORK/chat.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello! Please summarise a short story."}]}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, latency:percentile(50),
    latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
LUA

declare -A ROW
run() { # name fault-json
  local name="$1" fault="$2" line req p50 p99 max non2xx sockerr
  if [ -n "$fault" ]; then
    curl -s -o /dev/null -X PUT -H 'content-type: application/json' -d "$fault" "$PRIMARY/__mock/fault"
  else
    curl -s -o /dev/null -X DELETE "$PRIMARY/__mock/fault"
  fi
  # Every scenario starts with a closed breaker: wait out a cool-down left by the last one.
  sleep 5.5
  echo "measuring $name..." >&2
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 10s -s "$WORK/chat.lua" \
    "http://127.0.0.1:$P_PORT/v1/chat/completions" >"$WORK/wrk-$name.txt" 2>&1 || die "wrk failed"
  line="$(grep '^RESULT ' "$WORK/wrk-$name.txt" | tail -n1)" || die "no result for $name"
  read -r _ req p50 p99 max non2xx sockerr <<<"$line"
  ROW[$name]="$req $p50 $p99 $max $(( non2xx + sockerr ))"
}
run baseline ""
run "503-100%" '{"fault":"status","status":503,"rate":1.0}'
run "hang-100%" '{"fault":"hang","rate":1.0}'
run "reset-100%" '{"fault":"reset","rate":1.0}'
run "503-30%" '{"fault":"status","status":503,"rate":0.3}'

read -r _ base50 base99 _ _ <<<"${ROW[baseline]}"
REPORT="$WORK/failover-results.md"
{
  echo "# Parapet failover results"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- machine: $(nproc) cores (load generator, two mocks and Parapet share them); wrk 2 threads, $CONNS connections, ${DURATION}s per scenario"
  echo "- mocks answer after ${LATENCY_MS} ms; policy: latency_threshold_ms $THRESHOLD_MS, breaker 50% over 10 s with ≥ 10 calls, cool-down 5 s"
  echo
  echo "| scenario (primary) | requests | success % | p50 ms | p99 ms | max ms | added p50 ms | added p99 ms |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for name in baseline "503-100%" "hang-100%" "reset-100%" "503-30%"; do
    read -r req p50 p99 max errs <<<"${ROW[$name]}"
    awk -v n="$name" -v r="$req" -v e="$errs" -v a="$p50" -v b="$p99" -v m="$max" -v ba="$base50" -v bb="$base99" \
      'BEGIN { printf "| %s | %d | %.3f | %.2f | %.2f | %.1f | %.2f | %.2f |\n", n, r, (r > 0 ? 100 * (r - e) / r : 0),
        a / 1000, b / 1000, m / 1000, (a - ba) / 1000, (b - bb) / 1000 }'
  done
  echo
  echo "Targets (issue #4): success ≥ 99.9%; added latency ≤ latency_threshold_ms + 50 ms for hangs, ≤ 5 ms for fast failures once the breaker is open."
  echo
  echo "Endpoints after the run: \`$(curl -s --max-time 5 "http://127.0.0.1:$A_PORT/admin/endpoints")\`"
} >"$REPORT"
cat "$REPORT"
cp "$REPORT" "$ROOT/benches/load/failover-results.md"
echo "written to benches/load/failover-results.md" >&2
