#!/usr/bin/env bash
# The cost of REDIS_WAIT_REPLICAS, as an A/B in one invocation: a primary and a replica, two
# release instances acknowledging at once (A: REDIS_WAIT_REPLICAS=0) and two acknowledging
# after WAIT 1 (B), all on the same Redis; load-generator runs alternate A, B, A, B, ... and
# each prints moves/s, move latency and CPU per accepted move of every process. Medians per
# mode at the end. Free random ports; stops everything it started.
#
#   scripts/bench-wait.sh                  # 3 runs each of 200 connections, no think time, 10 s
#   REPS=5 CONNS=400 THINK=0 DURATION=10s scripts/bench-wait.sh
set -euo pipefail
cd "$(dirname "$0")/.."

reps=${REPS:-3} conns=${CONNS:-200} think=${THINK:-0} duration=${DURATION:-10s}
bin=target/release/tictactoe
[ -x "$bin" ] || cargo build --release --locked -p tictactoe
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

taken=" "
# FP = a free port not handed out before (set in this shell: a subshell would forget it).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))
    [[ "$taken" == *" $port "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      taken+="$port "
      FP=$port
      return
    fi
  done
}

# CPU time (user + system) of a process so far, in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# Accepted moves so far on the instances listening on the given ports.
accepted() {
  for port in "$@"; do curl -fs "http://127.0.0.1:$port/metrics"; done |
    awk '/^moves_total\{result="accepted"\}/ { n += $2 } END { print n + 0 }'
}

free_port; primary=$FP; free_port; replica=$FP
redis-server --port "$primary" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --logfile "$work/primary.log" &
pids+=($!) primary_pid=$!
mkdir -p "$work/replica"
redis-server --port "$replica" --bind 127.0.0.1 --save '' --appendonly no \
  --replicaof 127.0.0.1 "$primary" --repl-diskless-sync-delay 0 --dir "$work/replica" \
  --logfile "$work/replica.log" &
pids+=($!) replica_pid=$!
until redis-cli -p "$replica" info replication 2>/dev/null | grep -q '^master_link_status:up'; do
  sleep 0.05
done

# shellcheck source=scripts/bench-limits.sh
. scripts/bench-limits.sh
declare -A ports server_pids
for mode in A B; do
  wait_replicas=0
  [ "$mode" = B ] && wait_replicas=1
  for i in 1 2; do
    free_port; port=$FP
    env "${bench_limits[@]}" REDIS_URL="redis://127.0.0.1:$primary/" REDIS_WAIT_REPLICAS=$wait_replicas \
      LISTEN_ADDR="127.0.0.1:$port" INSTANCE_ID="bench-$mode$i" \
      "$bin" >"$work/server-$mode$i.log" 2>&1 &
    pids+=($!)
    ports[$mode]+="$port "
    server_pids[$mode]+="$! "
    until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.05; done
  done
done

echo "mode run moves/s p50_ms p99_ms | cpu us per accepted move: instances primary replica loadgen | load"
for rep in $(seq 1 "$reps"); do
  for mode in ${ORDER:-A B}; do
    read -r -a mports <<<"${ports[$mode]}"
    read -r -a mpids <<<"${server_pids[$mode]}"
    urls="ws://127.0.0.1:${mports[0]}/ws,ws://127.0.0.1:${mports[1]}/ws"
    moves0=$(accepted "${mports[@]}")
    s0=$(($(ticks "${mpids[0]}") + $(ticks "${mpids[1]}")))
    p0=$(ticks "$primary_pid") r0=$(ticks "$replica_pid")
    /usr/bin/time -f '%U %S' -o "$work/time" \
      "$bin" loadgen --urls "$urls" --connections "$conns" --think-ms "$think" \
      --duration "$duration" --mode play --ramp 2000 --json --quiet \
      >"$work/report.json" 2>"$work/loadgen.err" || { cat "$work/loadgen.err" >&2; exit 1; }
    moves=$(($(accepted "${mports[@]}") - moves0))
    s=$(($(ticks "${mpids[0]}") + $(ticks "${mpids[1]}") - s0))
    p=$(($(ticks "$primary_pid") - p0)) r=$(($(ticks "$replica_pid") - r0))
    lg=$(awk '{ print $1 + $2 }' "$work/time")
    python3 - "$mode" "$rep" "$moves" "$s" "$p" "$r" "$lg" "$hz" "$work/report.json" <<'EOF'
import json, os, sys
mode, rep, moves, s, p, r, lg, hz, path = sys.argv[1:]
moves, hz = max(int(moves), 1), int(hz)
rep_ = json.load(open(path))
lat = rep_.get("move_latency") or rep_.get("latency") or {}
us = lambda ticks: float(ticks) / hz * 1e6 / moves
print(f"{mode} {rep} {rep_['moves_per_sec']:.0f} {lat.get('p50_ms', float('nan')):.2f} "
      f"{lat.get('p99_ms', float('nan')):.2f} | {us(s):.0f} {us(p):.0f} {us(r):.0f} "
      f"{float(lg) * 1e6 / moves:.0f} | {os.getloadavg()[0]:.1f}"
      + (f" errors {rep_['errors']}" if rep_.get("errors") else "")
      + (f" transport {rep_['transport_errors']}" if rep_.get("transport_errors") else "")
      + (f" games {rep_['games_started']}/{rep_['games_planned']}" if rep_.get("games_started", 0) < rep_.get("games_planned", 0) else ""))
# A run whose games did not all start measured a limit, not the server.
if rep_.get("games_started", 0) < rep_.get("games_planned", 0):
    sys.exit(f"bench-wait.sh: only {rep_['games_started']} of {rep_['games_planned']} games started: a limit not lifted (scripts/bench-limits.sh)?")
EOF
  done
done | tee "$work/runs.txt"

echo "medians:"
for mode in A B; do
  awk -v m="$mode" '$1 == m' "$work/runs.txt" | python3 -c '
import statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
col = lambda i: statistics.median(float(r[i]) for r in rows)
mode = rows[0][0]
label = "A (no WAIT)" if mode == "A" else "B (WAIT 1)"
print(f"{label}: {col(2):.0f} moves/s, p50 {col(3):.2f} ms, p99 {col(4):.2f} ms; cpu us/move: "
      f"instances {col(6):.0f}, primary {col(7):.0f}, replica {col(8):.0f}, loadgen {col(9):.0f}")
'
done
