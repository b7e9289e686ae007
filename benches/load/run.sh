#!/usr/bin/env bash
# Load harness: throughput and latency of direct-to-mock vs through Parapet vs through nginx.
#
#   bash benches/load/run.sh [--quick] [--connections N] [--duration S] [--threads N]
#                            [--latency-ms N] [--low-rounds N] [--low-pace MS] [--no-build]
#                            [--targets direct,parapet,parapet-norec,nginx]
# Env: PARAPET_BENCH_POLICIES=DIR runs Parapet with that policy directory (default: none).
#
# Builds release binaries, installs wrk and nginx with apt-get if they are missing, starts
# parapet-mock (--no-record), Parapet (passthrough config) and nginx (proxy_pass with a
# keepalive upstream), then runs wrk against each target for a non-streaming and a
# streaming (SSE) chat completion. `parapet` records every call in its event store (the
# default); `parapet-norec` is the same with `[store] enabled = false`. Then LOW_ROUNDS
# rounds of interleaved one-connection chat cells (direct, nginx, parapet-norec, parapet:
# those that are targets, each call followed by a --low-pace pause in ms, default 0) compare
# Parapet's overhead histogram with the latency wrk adds.
# Prints markdown tables and writes them to benches/load/results.md. All traffic stays on 127.0.0.1; every wait is bounded; every
# process started here is stopped on exit. See docs/BENCHMARKS.md.
set -euo pipefail

CONNS=32
DURATION=10
THREADS=2
LATENCY_MS=0
LOW_ROUNDS=3
LOW_PACE=0
TARGETS="direct,parapet,nginx"
BUILD=1
QUICK=0

die() { echo "run.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; DURATION=3 ;;
    --connections) CONNS="${2:?}"; shift ;;
    --duration) DURATION="${2:?}"; shift ;;
    --threads) THREADS="${2:?}"; shift ;;
    --latency-ms) LATENCY_MS="${2:?}"; shift ;;
    --low-rounds) LOW_ROUNDS="${2:?}"; shift ;;
    --low-pace) LOW_PACE="${2:?}"; shift ;;
    --targets) TARGETS="${2:?}"; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
for n in "$CONNS" "$DURATION" "$THREADS" "$LATENCY_MS" "$LOW_ROUNDS" "$LOW_PACE"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "not a number: $n"
done
# Low-load overhead cells (see below): half the main cell duration, at least 2 s.
LOW_DURATION=$(( DURATION > 4 ? DURATION / 2 : 2 ))
[ "$THREADS" -le "$CONNS" ] || THREADS="$CONNS"
IFS=',' read -r -a TARGET_LIST <<< "$TARGETS"
for t in "${TARGET_LIST[@]}"; do
  case "$t" in direct|parapet|parapet-norec|nginx) ;; *) die "unknown target: $t" ;; esac
done
has_target() { [[ ",$TARGETS," == *",$1,"* ]]; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(mktemp -d /tmp/parapet-load.XXXXXX)"
chmod 755 "$WORK" # nginx workers may run as an unprivileged user
PIDS=()

cleanup() {
  local pid i
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -----------------------------------------------------------------------------
apt_install() {
  command -v apt-get >/dev/null || return 1
  [ "$(id -u)" = 0 ] || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 && return 0
  apt-get update -qq >/dev/null 2>&1 || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}
command -v curl >/dev/null || apt_install curl || die "curl is required"
command -v python3 >/dev/null || die "python3 is required (free-port lookup)"
command -v wrk >/dev/null || apt_install wrk || die "wrk is required (apt-get install wrk)"
NGINX=""
if has_target nginx; then
  NGINX="$(command -v nginx || true)"
  [ -n "$NGINX" ] || [ ! -x /usr/sbin/nginx ] || NGINX=/usr/sbin/nginx
  if [ -z "$NGINX" ]; then
    apt_install nginx-light || apt_install nginx || die "nginx is required (apt-get install nginx-light)"
    NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
  fi
  [ -x "$NGINX" ] || die "nginx not found"
fi

# --- binaries --------------------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
  echo "building release binaries..." >&2
  (cd "$ROOT" && cargo build --release --bin parapet --bin parapet-mock) >&2
fi
MOCK_BIN="${PARAPET_MOCK_BIN:-$ROOT/target/release/parapet-mock}"
PARAPET_BIN="${PARAPET_BIN:-$ROOT/target/release/parapet}"
[ -x "$MOCK_BIN" ] || die "missing $MOCK_BIN"
{ ! has_target parapet && ! has_target parapet-norec; } || [ -x "$PARAPET_BIN" ] || die "missing $PARAPET_BIN"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http NAME URL PID SECONDS: until URL answers (any HTTP status), the process dies, or time runs out.
wait_http() {
  local name="$1" url="$2" pid="$3" secs="$4" deadline code
  deadline=$(( $(date +%s) + secs ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    kill -0 "$pid" 2>/dev/null || die "$name exited during start-up (logs in $WORK; KEEP_WORK=1 keeps them)"
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)"
    if [ "$code" != "000" ] && [ -n "$code" ]; then echo "$code"; return 0; fi
    sleep 0.1
  done
  die "$name did not answer $url within ${secs}s"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# --- mock --------------------------------------------------------------------------------
"$MOCK_BIN" --listen 127.0.0.1:0 --no-record --latency-ms "$LATENCY_MS" \
  >"$WORK/mock.out" 2>"$WORK/mock.err" &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
MOCK_URL=""
for _ in $(seq 1 150); do
  MOCK_URL="$(sed -n 's/^listening on //p' "$WORK/mock.out" | head -n1)"
  [ -n "$MOCK_URL" ] && break
  kill -0 "$MOCK_PID" 2>/dev/null || die "parapet-mock exited: $(cat "$WORK/mock.err")"
  sleep 0.1
done
[ -n "$MOCK_URL" ] || die "parapet-mock printed no address within 15s"
declare -A BASE
BASE[direct]="$MOCK_URL"

# --- parapet -----------------------------------------------------------------------------
PARAPET_PID=""
declare -A TPID TADMIN
IDLE_RSS=""
PEAK_RSS=0
# start_parapet TARGET STORE_ENABLED: sets BASE[TARGET]; the `parapet` target's admin port
# and pid are kept for the overhead, event-store and RSS figures.
start_parapet() {
  local t="$1" store="$2" p_port a_port pid deadline dir="$WORK/$1"
  p_port="$(free_port)"; a_port="$(free_port)"
  mkdir -p "$dir"
  cat >"$dir/parapet.toml" <<TOML
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[[endpoints]]
id = "mock-openai"
kind = "openai"
base_url = "$MOCK_URL"
api_key_env = "MOCK_PROVIDER_KEY"

[[endpoints]]
id = "mock-anthropic"
kind = "anthropic"
base_url = "$MOCK_URL"
api_key_env = "MOCK_PROVIDER_KEY"

[[routes]]
id = "anthropic"
path_prefix = "/v1/messages"
endpoint = "mock-anthropic"
auth = "passthrough"

[[routes]]
id = "openai"
path_prefix = "/v1/"
endpoint = "mock-openai"
auth = "passthrough"

# Guardrails off by default (a pure proxy comparison); set PARAPET_BENCH_POLICIES=policies
# (or any policy dir) to measure with policies on.
[policies]
dir = "${PARAPET_BENCH_POLICIES:-$ROOT/tests/fixtures/no-policies}"
watch = false

# Every call recorded (ai.request + ai.response) unless this is parapet-norec.
[store]
enabled = $store
data_dir = "$dir/data"
TOML
  PARAPET_LISTEN="127.0.0.1:$p_port" PARAPET_ADMIN_LISTEN="127.0.0.1:$a_port" \
    MOCK_PROVIDER_KEY="sk-mock-provider" RUST_LOG="${RUST_LOG:-warn}" \
    "$PARAPET_BIN" serve --config "$dir/parapet.toml" >"$dir/parapet.out" 2>"$dir/parapet.err" &
  pid=$!
  PIDS+=("$pid")
  deadline=$(( $(date +%s) + 30 ))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$a_port/readyz" || true)" = 200 ]; do
    kill -0 "$pid" 2>/dev/null || die "$t exited during start-up: $(tail -n 20 "$dir/parapet.err")"
    [ "$(date +%s)" -lt "$deadline" ] || die "$t /readyz not 200 within 30s"
    sleep 0.1
  done
  BASE[$t]="http://127.0.0.1:$p_port"
  TPID[$t]="$pid"
  TADMIN[$t]="$a_port"
  if [ "$t" = parapet ]; then
    PARAPET_PID="$pid"; A_PORT="$a_port"
  fi
}
if has_target parapet; then
  start_parapet parapet true
  sleep 1
  IDLE_RSS="$(rss_kb "$PARAPET_PID")"
fi
if has_target parapet-norec; then
  start_parapet parapet-norec false
fi

# --- nginx -------------------------------------------------------------------------------
if has_target nginx; then
  N_PORT="$(free_port)"
  MOCK_HOSTPORT="${MOCK_URL#http://}"
  mkdir -p "$WORK/nginx/logs"
  cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/client_body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  upstream mock {
    server $MOCK_HOSTPORT;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$N_PORT;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
  "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/logs/error.log" \
    >"$WORK/nginx.out" 2>&1 &
  PIDS+=("$!")
  wait_http nginx "http://127.0.0.1:$N_PORT/v1/models" "$!" 15 >/dev/null
  BASE[nginx]="http://127.0.0.1:$N_PORT"
fi

# --- workloads ---------------------------------------------------------------------------
PROMPT='Hello! Please summarise the plot of a short story about a lighthouse keeper.'
CHAT_BODY="{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"$PROMPT\"}]}"
STREAM_BODY="{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"$PROMPT\"}]}"
for kind in chat stream; do
  body="$CHAT_BODY"; [ "$kind" = stream ] && body="$STREAM_BODY"
  cat >"$WORK/$kind.lua" <<LUA
wrk.method = "POST"
wrk.body = [[$body]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-client"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %.1f\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout,
    latency.mean))
end
LUA
done
# Low-load cells: wrk's delay() pauses the connection after each response (not counted in
# the latency), so the calls do not queue behind each other or behind background work.
{ cat "$WORK/chat.lua"; echo "delay = function() return $LOW_PACE end"; } >"$WORK/chat-low.lua"

# Each target must give the real answer before it is measured (no benchmarking of 404s).
for t in "${TARGET_LIST[@]}"; do
  out="$(curl -s --max-time 5 -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-bench-client' \
    -d "$CHAT_BODY" "${BASE[$t]}/v1/chat/completions" || true)"
  [[ "$out" == *'"You said: Hello!'* ]] || die "$t: unexpected chat answer: ${out:0:300}"
  out="$(curl -sN --max-time 5 -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-bench-client' \
    -d "$STREAM_BODY" "${BASE[$t]}/v1/chat/completions" || true)"
  [[ "$out" == *'data: [DONE]'* ]] || die "$t: unexpected stream answer: ${out:0:300}"
done

declare -A RPS P50 P99 ERR OVH CPU
# CPU time (user + system, in clock ticks) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Sum and count of Parapet's own overhead histogram (all routes), from its /metrics.
overhead_totals() { # [admin port] (default: the parapet target's)
  curl -s --max-time 5 "http://127.0.0.1:${1:-$A_PORT}/metrics" |
    awk '/^parapet_overhead_seconds_sum/ {s += $NF} /^parapet_overhead_seconds_count/ {c += $NF} END {printf "%s %s", s + 0, c + 0}'
}
run_one() { # target kind
  local t="$1" kind="$2" out line wpid deadline rss before after
  echo "measuring $t/$kind: ${CONNS} connections, ${DURATION}s..." >&2
  [ "$t" = parapet ] && before="$(overhead_totals)"
  local c0=0 pid="${TPID[$t]:-}"
  [ -n "$pid" ] && c0="$(cpu_ticks "$pid")"
  wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s -s "$WORK/$kind.lua" \
    "${BASE[$t]}/v1/chat/completions" >"$WORK/wrk-$t-$kind.txt" 2>&1 &
  wpid=$!
  deadline=$(( $(date +%s) + DURATION + 30 ))
  while kill -0 "$wpid" 2>/dev/null; do
    if [ "$t" = parapet ]; then
      rss="$(rss_kb "$PARAPET_PID")"
      [ "${rss:-0}" -gt "$PEAK_RSS" ] && PEAK_RSS="$rss"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then kill -KILL "$wpid" 2>/dev/null || true; break; fi
    sleep 0.2
  done
  wait "$wpid" || die "wrk failed for $t/$kind: $(tail -n 5 "$WORK/wrk-$t-$kind.txt")"
  line="$(grep '^RESULT ' "$WORK/wrk-$t-$kind.txt" | tail -n1)" || die "no wrk result for $t/$kind"
  read -r _ req dur p50 p99 non2xx sockerr _ <<< "$line"
  if [ -n "$pid" ]; then
    CPU[$t.$kind]="$(awk -v a="$c0" -v b="$(cpu_ticks "$pid")" -v r="$req" -v hz="$(getconf CLK_TCK)" \
      'BEGIN { if (r > 0) printf "%.1f", (b - a) / hz * 1e6 / r; else print "n/a" }')"
  fi
  RPS[$t.$kind]="$(awk -v r="$req" -v d="$dur" 'BEGIN { printf "%.0f", r / (d / 1e6) }')"
  P50[$t.$kind]="$(awk -v v="$p50" 'BEGIN { printf "%.2f", v / 1000 }')"
  P99[$t.$kind]="$(awk -v v="$p99" 'BEGIN { printf "%.2f", v / 1000 }')"
  ERR[$t.$kind]=$(( non2xx + sockerr ))
  if [ "$t" = parapet ]; then
    after="$(overhead_totals)"
    OVH[$kind]="$(awk -v b="$before" -v a="$after" 'BEGIN { split(b, x, " "); split(a, y, " ");
      n = y[2] - x[2]; if (n > 0) printf "%.3f", (y[1] - x[1]) / n * 1000; else print "n/a" }')"
  fi
}
for kind in chat stream; do
  for t in "${TARGET_LIST[@]}"; do run_one "$t" "$kind"; done
done

# Overhead agreement at low load: one connection paced by LOW_PACE ms between calls (no
# queueing in front of Parapet and idle cores for its background work, so the latency it
# adds is its own work plus the extra loopback hop), the targets interleaved over
# LOW_ROUNDS rounds; for each Parapet target the internal figure is its overhead
# histogram's mean over the same calls. nginx, when a target, measures the bare hop.
# Round-to-round spread of the external differences is the noise.
declare -A LOWM LOWP LOWO
LOW_TARGETS=()
if has_target direct && { has_target parapet || has_target parapet-norec; }; then
  for t in direct nginx parapet-norec parapet; do has_target "$t" && LOW_TARGETS+=("$t"); done
  for round in $(seq 1 "$LOW_ROUNDS"); do
    for t in "${LOW_TARGETS[@]}"; do
      echo "low-load round $round: $t/chat, 1 connection, ${LOW_PACE} ms pace, ${LOW_DURATION}s..." >&2
      [ -n "${TADMIN[$t]:-}" ] && before="$(overhead_totals "${TADMIN[$t]}")"
      wrk -t1 -c1 -d"${LOW_DURATION}s" --timeout 10s -s "$WORK/chat-low.lua" \
        "${BASE[$t]}/v1/chat/completions" >"$WORK/low-$t-$round.txt" 2>&1 ||
        die "wrk failed for low-load $t: $(tail -n 5 "$WORK/low-$t-$round.txt")"
      line="$(grep '^RESULT ' "$WORK/low-$t-$round.txt" | tail -n1)" || die "no wrk result (low-load $t)"
      read -r _ _ _ p50 _ _ _ mean <<< "$line"
      LOWM[$round.$t]="$mean"; LOWP[$round.$t]="$p50"
      if [ -n "${TADMIN[$t]:-}" ]; then
        LOWO[$round.$t]="$(awk -v b="$before" -v a="$(overhead_totals "${TADMIN[$t]}")" 'BEGIN {
          split(b, x, " "); split(a, y, " "); n = y[2] - x[2];
          if (n > 0) printf "%.1f", (y[1] - x[1]) / n * 1e6; else print "nan" }')"
      fi
    done
  done
fi

med_range() { # numbers... -> "median [min, max]" (n/a when none)
  printf '%s\n' "$@" | grep -E '^-?[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.1f [%.1f, %.1f]", m, v[1], v[NR] }'
}
ratio() { # numerator denominator
  if [ -n "${1:-}" ] && [ -n "${2:-}" ] && [ "$2" != 0 ]; then
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
  else
    echo "n/a"
  fi
}

# --- report ------------------------------------------------------------------------------
REPORT="$WORK/results.md"
{
  echo "# Parapet load results"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- machine: $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || echo unknown CPU); load generator, mock, proxy share these cores"
  echo "- load: wrk, $THREADS threads, $CONNS connections, ${DURATION}s per cell$([ "$QUICK" = 1 ] && echo ' (--quick)'); mock latency ${LATENCY_MS} ms"
  echo "- workloads: chat = non-streaming POST /v1/chat/completions; stream = same with stream:true (SSE, 25 events)"
  echo
  echo "| workload | target | req/s | p50 ms | p99 ms | errors |"
  echo "| --- | --- | ---: | ---: | ---: | ---: |"
  for kind in chat stream; do
    for t in "${TARGET_LIST[@]}"; do
      echo "| $kind | $t | ${RPS[$t.$kind]} | ${P50[$t.$kind]} | ${P99[$t.$kind]} | ${ERR[$t.$kind]} |"
    done
  done
  if has_target parapet; then
    echo
    echo "| workload | parapet/direct req/s | parapet/nginx req/s | recording on/off req/s | parapet p50 - direct p50 (ms) | overhead mean from /metrics (ms) |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for kind in chat stream; do
      d="$(has_target direct && awk -v a="${P50[parapet.$kind]}" -v b="${P50[direct.$kind]}" 'BEGIN { printf "%.2f", a - b }' || echo n/a)"
      echo "| $kind | $(ratio "${RPS[parapet.$kind]:-}" "${RPS[direct.$kind]:-}") | $(ratio "${RPS[parapet.$kind]:-}" "${RPS[nginx.$kind]:-}") | $(ratio "${RPS[parapet.$kind]:-}" "${RPS[parapet-norec.$kind]:-}") | $d | ${OVH[$kind]:-n/a} |"
    done
    echo
    echo "| workload | parapet CPU µs/request | parapet-norec CPU µs/request | recording on/off CPU per request |"
    echo "| --- | ---: | ---: | ---: |"
    for kind in chat stream; do
      echo "| $kind | ${CPU[parapet.$kind]:-n/a} | ${CPU[parapet-norec.$kind]:-n/a} | $(ratio "${CPU[parapet.$kind]:-}" "${CPU[parapet-norec.$kind]:-}") |"
    done
    if [ "${#LOW_TARGETS[@]}" -gt 0 ] && [ "$LOW_ROUNDS" -gt 0 ]; then
      echo
      echo "Overhead agreement at low load (chat, 1 connection, a ${LOW_PACE} ms pause after each call, ${LOW_DURATION}s per cell, targets interleaved): p50 and mean latency added over direct, as wrk measures it, beside the mean of parapet_overhead_seconds over the same calls."
      echo
      echo "| round | target | p50 µs | mean µs | p50 - direct p50 µs | mean - direct mean µs | overhead histogram mean µs |"
      echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
      for round in $(seq 1 "$LOW_ROUNDS"); do
        for t in "${LOW_TARGETS[@]}"; do
          awk -v r="$round" -v t="$t" -v p="${LOWP[$round.$t]}" -v m="${LOWM[$round.$t]}" \
            -v dp="${LOWP[$round.direct]}" -v dm="${LOWM[$round.direct]}" -v o="${LOWO[$round.$t]:-n/a}" 'BEGIN {
            printf "| %s | %s | %d | %.1f | %d | %.1f | %s |\n", r, t, p, m, p - dp, m - dm, o }'
        done
      done
      echo
      echo "Over all rounds (median, and range in brackets; the range of a target's external difference is the noise):"
      echo
      echo "| target | p50 - direct p50 µs | mean - direct mean µs | p50 - nginx p50 µs | mean - nginx mean µs | overhead histogram mean µs |"
      echo "| --- | ---: | ---: | ---: | ---: | ---: |"
      VERDICT=""
      for t in "${LOW_TARGETS[@]}"; do
        [ "$t" = direct ] && continue
        dps=""; dms=""; dnp=""; dns=""; os=""
        for round in $(seq 1 "$LOW_ROUNDS"); do
          dps+="$(awk -v a="${LOWP[$round.$t]}" -v b="${LOWP[$round.direct]}" 'BEGIN { print a - b }') "
          dms+="$(awk -v a="${LOWM[$round.$t]}" -v b="${LOWM[$round.direct]}" 'BEGIN { print a - b }') "
          if has_target nginx && [ "$t" != nginx ]; then
            dnp+="$(awk -v a="${LOWP[$round.$t]}" -v b="${LOWP[$round.nginx]}" 'BEGIN { print a - b }') "
            dns+="$(awk -v a="${LOWM[$round.$t]}" -v b="${LOWM[$round.nginx]}" 'BEGIN { print a - b }') "
          fi
          os+="${LOWO[$round.$t]:-} "
        done
        echo "| $t | $(med_range $dps) | $(med_range $dms) | $(med_range $dnp) | $(med_range $dns) | $(med_range $os) |"
        # Agreement: the histogram's median (of per-round means) lies within the
        # round-to-round range of the hop-normalized external difference of the means
        # (Parapet's mean minus the bare nginx hop's mean: a mean against a mean).
        if [ -n "$dns" ] && [ -n "${os// /}" ]; then
          VERDICT+="$(printf '%s\n' $os | grep -E '^-?[0-9.]+$' | sort -g | awk -v t="$t" -v r="$(med_range $dns)" '
            { v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              split(r, x, /[][, ]+/); lo = x[2]; hi = x[3]
              printf "%s: histogram median %.1f µs %s the range of mean - nginx mean [%.1f, %.1f] µs. ",
                t, m, (m >= lo && m <= hi) ? "is within" : "is OUTSIDE", lo, hi }')"
        fi
      done
      if [ -n "$VERDICT" ]; then
        echo
        echo "Agreement: $VERDICT"
      fi
    fi
    echo
    echo "Event store of parapet after the run: $(curl -s --max-time 5 "http://127.0.0.1:$A_PORT/metrics" |
      awk '/^parapet_events_written_total/ {w += $NF} /^parapet_events_dropped_total/ {d += $NF} /^parapet_event_queue_full_total/ {f += $NF}
        END {printf "%d events written, %d dropped, queue full %d times", w, d, f}')."
    echo
    echo "Overhead from /metrics = mean of parapet_overhead_seconds (request arrival to response body end minus the upstream exchange's time on the wire) over the cell; the p50 difference is measured outside, by wrk, against direct-to-mock."
    echo
    echo "Parapet RSS: idle $(( IDLE_RSS / 1024 )) MiB (VmRSS 1 s after /readyz), peak under load $(( PEAK_RSS / 1024 )) MiB (VmRSS sampled every 0.2 s)."
  fi
} >"$REPORT"
cat "$REPORT"
cp "$REPORT" "$ROOT/benches/load/results.md"
echo "written to benches/load/results.md" >&2
