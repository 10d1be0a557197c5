#!/usr/bin/env bash
# Counts the heap allocations an instance makes per accepted move: one Redis, one instance
# (serving both players of every game) run under heaptrack, `tictactoe loadgen` playing
# CONNECTIONS connections with no think time for DURATION. Every allocation of the process's
# life (start-up and connection set-up included) is divided by its accepted moves, so compare
# builds with the same arguments only. Unlike CPU time, the count does not drift with the
# machine's speed.
#
#   scripts/allocs.sh BIN [CONNECTIONS] [DURATION]
#   scripts/allocs.sh target/release/tictactoe 200 6s
#
# Needs heaptrack (Debian package `heaptrack`). The load generator is the release build here
# (LOADGEN to override).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(readlink -f "${1:?usage: scripts/allocs.sh BIN [CONNECTIONS] [DURATION]}")
conns=${2:-200}
duration=${3:-6s}
loadgen=${LOADGEN:-${CARGO_TARGET_DIR:-target}/release/tictactoe}
command -v heaptrack >/dev/null || { echo "allocs.sh: heaptrack is not installed" >&2; exit 2; }
[ -x "$bin" ] || { echo "allocs.sh: not an executable: $bin" >&2; exit 2; }
[ -x "$loadgen" ] || cargo build --release --locked

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

redis_port=16479
http_port=18180
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$work" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

env REDIS_URL="redis://127.0.0.1:$redis_port/" LISTEN_ADDR="127.0.0.1:$http_port" RUST_LOG=warn \
  MOVE_RATE=1000000 MOVE_BURST=1000000 MSG_RATE=1000000 MSG_BURST=1000000 \
  IP_CONN_RATE=1000000 IP_CONN_BURST=1000000 IP_SESSION_RATE=1000000 IP_SESSION_BURST=1000000 \
  IP_PENDING_MAX=1000000 IP_WS_MAX=1000000 CREATE_RATE=1000000 CREATE_BURST=1000000 \
  IP_CREATE_RATE=1000000 IP_CREATE_BURST=1000000 \
  heaptrack -o "$work/heap" "$bin" >"$work/heaptrack.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null && break; sleep 0.1; done
server=$(pgrep -P "${pids[1]}" -f "$bin" | head -1 || true)
[ -n "$server" ] || server=$(pgrep -f "^$bin" | head -1)

"$loadgen" loadgen --urls "ws://127.0.0.1:$http_port/ws" --mode play --think-ms 0 \
  --connections "$conns" --duration "$duration" --ramp 2000 --quiet >"$work/loadgen.txt" 2>&1
moves=$(curl -s "http://127.0.0.1:$http_port/metrics" |
  awk '/^moves_total\{result="accepted"\}/ {print $2}')
# SIGINT: the server shuts down and heaptrack writes its totals.
kill -INT "$server"
for _ in $(seq 100); do kill -0 "${pids[1]}" 2>/dev/null || break; sleep 0.1; done
calls=$(heaptrack_print -f "$work"/heap*.zst -p 0 -a 0 -T 0 -l 0 2>/dev/null |
  awk '/calls to allocation functions/ {print $5}')
[ -n "$moves" ] && [ -n "$calls" ] || { echo "allocs.sh: no figures" >&2; cat "$work/loadgen.txt" >&2; exit 1; }
awk -v c="$calls" -v m="$moves" -v b="$bin" \
  'BEGIN { printf "%s: %d allocations, %d accepted moves, %.1f allocations per move\n", b, c, m, c / m }'
