#!/usr/bin/env bash
# Reproduces the figures in docs/benchmarks.md: starts a Redis (or a 3-master Redis Cluster
# with CLUSTER=1) and two release instances on fixed local ports, runs one load-generator
# scenario against them, prints the report, the Redis commands per accepted move and the
# instances' memory, and stops everything it started.
#
#   scripts/bench.sh play 200 0 30s        # connections, think ms, duration
#   scripts/bench.sh play 1000 100 30s
#   scripts/bench.sh idle 20000 0 10s      # idle connections on ONE instance
#   CLUSTER=1 scripts/bench.sh play 1000 100 30s
#   AOF=1 scripts/bench.sh play 200 0 30s  # Redis with appendonly yes, appendfsync always
#   INSTANCES=3 PER_INSTANCE=1 scripts/bench.sh idle 50000 0 10s
#       (one load generator per instance: one process cannot hold more than its open-file
#       limit of sockets, and each then reports its own instance's memory exactly)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-play} conns=${2:-200} think=${3:-0} duration=${4:-30s}
instances=${INSTANCES:-2}
bin=target/release/tictactoe
[ -x "$bin" ] || cargo build --release --locked
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Benchmarks measure the server, not its abuse protection: lift the budgets.
limits=(MOVE_RATE=1000000 MOVE_BURST=1000000 MSG_RATE=1000000 MSG_BURST=1000000
  IP_CONN_RATE=1000000 IP_CONN_BURST=1000000 IP_SESSION_RATE=1000000
  IP_SESSION_BURST=1000000 CHAT_RATE=1000000 CHAT_BURST=1000000 CREATE_RATE=1000000
  CREATE_BURST=1000000 IP_CREATE_RATE=1000000 IP_CREATE_BURST=1000000 RUST_LOG=warn)

if [ "${CLUSTER:-0}" = 1 ]; then
  nodes=()
  for i in 0 1 2; do
    port=$((17000 + i)) bus=$((27000 + i))
    mkdir -p "$work/n$i"
    redis-server --port $port --cluster-enabled yes --cluster-port $bus \
      --cluster-config-file nodes.conf --dir "$work/n$i" --save '' --appendonly no \
      --logfile "$work/n$i/log" &
    pids+=($!)
    nodes+=("127.0.0.1:$port")
  done
  for n in "${nodes[@]}"; do until redis-cli -u "redis://$n" ping >/dev/null 2>&1; do sleep 0.05; done; done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
  until redis-cli -p 17000 cluster info | grep -q cluster_state:ok; do sleep 0.1; done
  store=("REDIS_CLUSTER_URLS=redis://127.0.0.1:17000,redis://127.0.0.1:17001,redis://127.0.0.1:17002")
  stat_ports=(17000 17001 17002)
else
  if [ "${AOF:-0}" = 1 ]; then persist=(--appendonly yes --appendfsync always); else persist=(--appendonly no); fi
  redis-server --port 16379 --save '' "${persist[@]}" --dir "$work" --logfile "$work/redis.log" &
  pids+=($!)
  until redis-cli -p 16379 ping >/dev/null 2>&1; do sleep 0.05; done
  store=("REDIS_URL=redis://127.0.0.1:16379")
  stat_ports=(16379)
fi

urls=() server_pids=()
for i in $(seq 0 $((instances - 1))); do
  port=$((18080 + i))
  env "${limits[@]}" "${store[@]}" LISTEN_ADDR=127.0.0.1:$port INSTANCE_ID=bench-$i \
    "$bin" >"$work/server$i.log" 2>&1 &
  pids+=($!)
  server_pids+=($!)
  urls+=("ws://127.0.0.1:$port/ws")
  until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.05; done
done

for p in "${stat_ports[@]}"; do redis-cli -p "$p" config resetstat >/dev/null; done
if [ "${PER_INSTANCE:-0}" = 1 ]; then
  gens=()
  for i in $(seq 0 $((instances - 1))); do
    # Each load generator its own loopback source addresses: ports never run out.
    src=127.0.$((i + 1)).1,127.0.$((i + 1)).2,127.0.$((i + 1)).3
    "$bin" loadgen --urls "${urls[$i]}" --connections $((conns / instances)) --think-ms "$think" \
      --duration "$duration" --mode "$mode" --ramp 2000 --source-ips "$src" \
      --server-pids "${server_pids[$i]}" --quiet >"$work/loadgen$i.txt" 2>&1 &
    gens+=($!)
  done
  for g in "${gens[@]}"; do wait "$g"; done
  for i in $(seq 0 $((instances - 1))); do echo "--- load generator $i"; cat "$work/loadgen$i.txt"; done
else
  sources=127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4
  (IFS=,; "$bin" loadgen --urls "${urls[*]}" --connections "$conns" --think-ms "$think" \
    --duration "$duration" --mode "$mode" --ramp 2000 --source-ips "$sources" \
    --server-pids "${server_pids[*]}" --quiet)
fi

if [ "$mode" = play ]; then
  # Round trips per accepted move: every Redis call an instance makes is one round trip and
  # is counted per operation in its metrics.
  for port in $(seq 18080 $((18080 + instances - 1))); do
    curl -fs "http://127.0.0.1:$port/metrics"
  done | awk '
    /^moves_total\{result="accepted"\}/ { moves += $2 }
    /^redis_command_seconds_count\{/ { match($0, /op="[^"]*"/); op = substr($0, RSTART + 4, RLENGTH - 5); calls[op] += $2; total += $2 }
    END {
      printf "redis round trips %d for %d accepted moves: %.3f per move (all operations, incl. joins, rematches, lobby, clocks)\n", total, moves, total / moves
      for (op in calls) printf "  %-14s %9d  %.3f per move\n", op, calls[op], calls[op] / moves
    }'
  echo "redis commandstats (includes the commands run inside scripts):"
  for p in "${stat_ports[@]}"; do
    redis-cli -p "$p" info commandstats | tr -d '\r' | sort -t= -k3 -nr || true
  done
fi
