#!/usr/bin/env bash
# Reproduces the figures in docs/benchmarks.md: starts a Redis (or a 3-master Redis Cluster
# with CLUSTER=1) and release instances on fixed local ports, runs one load-generator
# scenario against them, prints its report and stops everything it started. The report
# gives speed (moves/s, move-to-opponent latency) and what the moves of its measurement
# window cost: CPU µs, system calls (all of them with perf, else the read and write calls of
# /proc/<pid>/io) and context switches per accepted move of each instance, of Redis and of
# the load generator itself, Redis commands per move (INFO commandstats, inside scripts included) and Redis
# round trips per move (the instances' own metrics).
#
# One run:      scripts/bench.sh MODE CONNECTIONS THINK_MS|RATE DURATION
#   scripts/bench.sh play 200 0 30s        # closed loop: 200 connections, no think time
#   scripts/bench.sh play 200 0 30s -- --json   # flags after `--` go to the load generator
#   scripts/bench.sh play 1000 100 30s     # closed loop, 100 ms mean think time
#   scripts/bench.sh open 4000 5000 30s    # open loop: 4,000 connections offering 5,000 moves/s
#   scripts/bench.sh idle 20000 0 10s      # idle connections (memory)
#   CLUSTER=1 scripts/bench.sh play 1000 100 30s
#   AOF=1 scripts/bench.sh play 200 0 30s  # Redis with appendonly yes, appendfsync always
#   REDIS_UNIX=1 scripts/bench.sh play 4000 1000 30s   # instances reach Redis over a unix
#       socket (one Redis only); in an A/B, a wrapper BIN that sets
#       REDIS_URL=unix://$BENCH_REDIS_SOCKET before exec does it for one side
#   INSTANCES=3 PER_INSTANCE=1 scripts/bench.sh idle 50000 0 10s
#       (one load generator per instance: one process cannot hold more than its open-file
#       limit of sockets, and each then reports its own instance's memory exactly; no Redis
#       figures then, since each generator would divide all of Redis by its own moves)
#
# A/B:          scripts/bench.sh ab BIN_A BIN_B REPS MODE CONNECTIONS THINK_MS|RATE DURATION
#   scripts/bench.sh ab target/bench-bins/a0e92a9/tictactoe target/release/tictactoe 5 play 200 0 20s
#   Runs the two server binaries alternately (A B A B ...), REPS runs each, every run with a
#   fresh Redis and fresh instances, all driven by the same load generator (LOADGEN), and
#   prints every run's figures, each side's median, the ratio of medians B/A, and "paired":
#   the median of the ratios Bi/Ai of neighbouring runs, which a slow drift of the machine's
#   speed during the invocation moves less. This
#   machine's speed drifts by ±25 % from minute to minute: only ratios from one invocation
#   are evidence, never figures from different invocations. Reports are kept in
#   $AB_OUT (default: a temporary directory, printed).
#
#   scripts/bench.sh ab-table AB_OUT_DIR REPS prints that table again from the kept reports.
#
# Allocations: scripts/bench.sh allocs BIN [CONNECTIONS] [DURATION]
#   Heap allocations per accepted move of one instance under heaptrack (Debian package
#   `heaptrack`), `play CONNECTIONS 0 DURATION` (default 200, 6s). Unlike CPU time, the count
#   does not drift with the machine's speed. BIN must allocate with glibc, which heaptrack
#   sees: cargo build --release --no-default-features --target-dir target/glibc
#
# Baseline:     scripts/bench.sh build REV [DIR]
#   scripts/bench.sh build a0e92a9         # -> target/bench-bins/a0e92a9…/tictactoe
#   Builds the `tictactoe` binary of a git revision in a throwaway worktree with its own
#   target directory (DIR/target, kept for the next build of a nearby revision), copies it
#   to DIR/tictactoe and prints that path. DIR defaults to
#   ${CARGO_TARGET_DIR:-target}/bench-bins/<commit>. A cold release build takes a few
#   minutes and ~1.5 GB; SEED_TARGET=<an existing target dir> copies it in first so only
#   what changed is rebuilt. A binary already there is reused (FORCE=1 rebuilds).
#
# Environment: BIN (server binary of a single run; default the release build here, built if
# missing), LOADGEN (the binary whose `loadgen` drives every run; default the same release
# build: old baselines may lack its flags), INSTANCES (default 2), ARRIVALS (open mode: even
# or poisson), CLUSTER, AOF, PER_INSTANCE as above.
set -euo pipefail
cd "$(dirname "$0")/.."

release=${CARGO_TARGET_DIR:-target}/release/tictactoe
instances=${INSTANCES:-2}
work=$(mktemp -d)
all_pids=()
cleanup() {
  for p in "${all_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Benchmarks measure the server, not its abuse protection: lift the budgets.
# shellcheck source=scripts/bench-limits.sh
. scripts/bench-limits.sh

die() { echo "bench.sh: $*" >&2; exit 2; }

# Stops the given processes (each one we started, by its pid): SIGTERM, then SIGKILL after
# 10 s, and waits for them so that their ports are free for the next run.
stop_pids() {
  local p
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
}

# Starts a fresh Redis (or cluster) with its data in $1. Sets run_pids, redis_pids, store,
# redis_urls.
start_redis() {
  local dir=$1 i port bus nodes=()
  redis_pids=() redis_urls=()
  if [ "${CLUSTER:-0}" = 1 ]; then
    for i in 0 1 2; do
      port=$((17000 + i)) bus=$((27000 + i))
      mkdir -p "$dir/n$i"
      redis-server --port $port --cluster-enabled yes --cluster-port $bus \
        --cluster-config-file nodes.conf --dir "$dir/n$i" --save '' --appendonly no \
        --logfile "$dir/n$i/log" &
      redis_pids+=($!)
      nodes+=("127.0.0.1:$port")
      redis_urls+=("redis://127.0.0.1:$port")
    done
    run_pids+=("${redis_pids[@]}") all_pids+=("${redis_pids[@]}")
    for n in "${nodes[@]}"; do until redis-cli -u "redis://$n" ping >/dev/null 2>&1; do sleep 0.05; done; done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
    until redis-cli -p 17000 cluster info | grep -q cluster_state:ok; do sleep 0.1; done
    store=("REDIS_CLUSTER_URLS=$(IFS=,; echo "${redis_urls[*]}")")
  else
    local persist=(--appendonly no)
    if [ "${AOF:-0}" = 1 ]; then persist=(--appendonly yes --appendfsync always); fi
    mkdir -p "$dir"
    # It listens on a unix socket too: REDIS_UNIX=1 points the instances there, and every
    # instance finds its path in BENCH_REDIS_SOCKET (for a wrapper that picks per binary).
    # A socket's path has room for 107 bytes.
    local sock="$dir/redis.sock" unix=()
    if [ ${#sock} -le 107 ]; then
      unix=(--unixsocket "$sock" --unixsocketperm 700)
    elif [ "${REDIS_UNIX:-0}" = 1 ]; then
      die "REDIS_UNIX=1: the socket's path $sock is too long (TMPDIR)"
    fi
    redis-server --port 16379 ${unix[@]+"${unix[@]}"} --save '' "${persist[@]}" --dir "$dir" \
      --logfile "$dir/redis.log" &
    redis_pids+=($!)
    run_pids+=($!) all_pids+=($!)
    until redis-cli -p 16379 ping >/dev/null 2>&1; do
      kill -0 "${redis_pids[0]}" 2>/dev/null || { cat "$dir/redis.log" >&2; die "redis-server exited"; }
      sleep 0.05
    done
    redis_urls=("redis://127.0.0.1:16379")
    store=("REDIS_URL=redis://127.0.0.1:16379" "BENCH_REDIS_SOCKET=$sock")
    if [ "${REDIS_UNIX:-0}" = 1 ]; then store[0]="REDIS_URL=unix://$sock"; fi
  fi
}

# Starts $instances instances of binary $1, logs in $2, each under the command in the
# array `wrap` if set (allocs mode: heaptrack). Sets urls, server_pids.
start_instances() {
  local bin=$1 dir=$2 i port
  urls=() server_pids=()
  for i in $(seq 0 $((instances - 1))); do
    port=$((18080 + i))
    env "${bench_limits[@]}" "${store[@]}" LISTEN_ADDR=127.0.0.1:$port INSTANCE_ID=bench-$i \
      ${wrap[@]+"${wrap[@]}"} "$bin" >"$dir/server$i.log" 2>&1 &
    server_pids+=($!)
    run_pids+=($!) all_pids+=($!)
    urls+=("ws://127.0.0.1:$port/ws")
  done
  for i in $(seq 0 $((instances - 1))); do
    port=$((18080 + i))
    until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
      kill -0 "${server_pids[$i]}" 2>/dev/null || { cat "$dir/server$i.log" >&2; die "instance $i exited"; }
      sleep 0.05
    done
  done
}

# The load generator's flags for scenario MODE CONNECTIONS THINK_MS|RATE DURATION.
scenario_flags() {
  local mode=$1 conns=$2 x=$3 duration=$4
  case $mode in
    play | idle) flags=(--mode "$mode" --think-ms "$x") ;;
    open) flags=(--mode open --rate "$x" --arrivals "${ARRIVALS:-even}") ;;
    *) die "unknown mode $mode (play, open or idle)" ;;
  esac
  flags+=(--connections "$conns" --duration "$duration" --ramp 2000)
}

# One run of server binary $1 with load generator $2 on scenario $3..$6; extra loadgen
# flags after `--`. The report goes to stdout.
run_once() {
  local bin=$1 loadgen=$2 dir
  shift 2
  dir=$(mktemp -d "$work/run.XXXX")
  run_pids=()
  start_redis "$dir/redis"
  start_instances "$bin" "$dir"
  scenario_flags "$1" "$2" "$3" "$4"
  shift 4
  [ "${1:-}" = -- ] && shift
  (IFS=,; "$loadgen" loadgen --urls "${urls[*]}" "${flags[@]}" \
    --source-ips 127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4 \
    --server-pids "${server_pids[*]}" --redis-urls "${redis_urls[*]}" \
    --redis-pids "${redis_pids[*]}" --quiet "$@") || true
  stop_pids "${run_pids[@]}"
}

# True unless the report (text or --json) says fewer games started than were planned: the
# figures of such a run describe fewer connections than asked for.
games_all_started() {
  local planned started
  if jq -e . "$1" >/dev/null 2>&1; then
    planned=$(jq '.games_planned // 0' "$1")
    started=$(jq '.games_started // 0' "$1")
  else
    read -r planned started < <(sed -nE 's/^games +([0-9]+) planned, ([0-9]+) started.*/\1 \2/p' "$1")
  fi
  [ "${started:-0}" -ge "${planned:-0}" ]
}

build_rev() {
  local rev=${1:?usage: scripts/bench.sh build REV [DIR]} sha out tmp status=0
  sha=$(git rev-parse --verify --short=12 "$rev^{commit}") || die "no such revision: $rev"
  out=${2:-${CARGO_TARGET_DIR:-target}/bench-bins/$sha}
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  if [ -x "$out/tictactoe" ] && [ "${FORCE:-0}" != 1 ]; then
    echo "$out/tictactoe"
    return
  fi
  if [ -n "${SEED_TARGET:-}" ] && [ ! -d "$out/target" ]; then
    echo "seeding $out/target from $SEED_TARGET" >&2
    # The default DIR lies inside the default target: copy all but the kept baselines, or
    # cp would copy the directory into itself.
    mkdir -p "$out/target"
    for entry in "$SEED_TARGET"/* "$SEED_TARGET"/.[!.]*; do
      [ -e "$entry" ] || continue
      [ "$(basename "$entry")" = bench-bins ] && continue
      cp -a "$entry" "$out/target/"
    done
  fi
  tmp=$(mktemp -d)
  git worktree add --detach "$tmp/src" "$sha" >&2
  (cd "$tmp/src" && CARGO_TARGET_DIR="$out/target" cargo build --release --locked >&2) || status=$?
  git worktree remove --force "$tmp/src"
  rmdir "$tmp"
  [ "$status" = 0 ] || die "building $rev ($sha) failed"
  cp "$out/target/release/tictactoe" "$out/tictactoe"
  echo "$out/tictactoe"
}

# The figures compared in A/B mode, from one JSON report: [name, value] pairs. System calls
# are every call where perf could count them (run as root with linux-perf installed), read
# and write calls from /proc/<pid>/io always; context switches are voluntary + involuntary.
figures='def cs: if . == null then null else .voluntary_per_move + .involuntary_per_move end;
def figures: [
  ["moves/s", .moves_per_sec],
  ["p50 ms", .latency.p50_ms],
  ["p99 ms", .latency.p99_ms],
  ["CPU µs/move instances", .instances_cpu_us_per_move],
  (.instances | to_entries[] | ["  instance \(.key + 1)", .value.cpu.us_per_move]),
  ["CPU µs/move Redis", .redis_cpu_us_per_move],
  ["CPU µs/move loadgen", .loadgen_cpu.us_per_move],
  ["syscalls/move instances", .instances_kernel.syscalls_per_move],
  ["r/w calls/move instances", .instances_kernel.rw_calls_per_move],
  ["ctx switches/move instances", (.instances_kernel | cs)],
  ["syscalls/move Redis", .redis_kernel.syscalls_per_move],
  ["r/w calls/move Redis", .redis_kernel.rw_calls_per_move],
  ["ctx switches/move Redis", (.redis_kernel | cs)],
  ["syscalls/move loadgen", .loadgen_cpu.kernel.syscalls_per_move],
  ["ctx switches/move loadgen", (.loadgen_cpu.kernel | cs)],
  ["Redis commands/move", .redis_commands_per_move],
  ["Redis round trips/move", .redis_round_trips_per_move],
  ["KiB/connection", ([.instances[].kib_per_connection | select(. != null)]
    | if length == 0 then null else add / length end)],
  ["errors", ([.errors[], .transport_errors[]] | add // 0)]
];
def fmt: if . == null then "-"
  elif fabs >= 100 then round | tostring
  elif fabs >= 10 then (. * 10 | round) / 10 | tostring
  else (. * 1000 | round) / 1000 | tostring end;
def median: map(select(. != null)) | sort
  | if length == 0 then null
    elif length % 2 == 1 then .[(length - 1) / 2]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;'

ab() {
  [ $# -ge 7 ] || die "usage: scripts/bench.sh ab BIN_A BIN_B REPS MODE CONNECTIONS THINK_MS|RATE DURATION"
  local a=$1 b=$2 reps=$3 loadgen=${LOADGEN:-$release} out rep side bin
  shift 3
  [ "${PER_INSTANCE:-0}" = 1 ] && die "PER_INSTANCE does not apply to A/B runs"
  [ -x "$a" ] || die "not an executable: $a"
  [ -x "$b" ] || die "not an executable: $b"
  [ -x "$loadgen" ] || cargo build --release --locked
  out=${AB_OUT:-$(mktemp -d /tmp/bench-ab.XXXX)}
  mkdir -p "$out"
  echo "A: $a"
  echo "B: $b"
  echo "load generator: $loadgen; scenario: $*; $reps runs each, alternating; reports in $out"
  for rep in $(seq 1 "$reps"); do
    for side in A B; do
      bin=$a
      [ $side = B ] && bin=$b
      run_once "$bin" "$loadgen" "$@" -- --json >"$out/$side$rep.json" 2>"$out/$side$rep.txt"
      jq -r --arg run "$side$rep" "$figures"'
        "\($run): \(.moves_per_sec | fmt) moves/s, p99 \(.latency.p99_ms | fmt) ms, CPU µs/move instances \(.instances_cpu_us_per_move | fmt), Redis \(.redis_cpu_us_per_move | fmt), loadgen \(.loadgen_cpu.us_per_move | fmt); syscalls/move instances \(.instances_kernel.syscalls_per_move | fmt), Redis \(.redis_kernel.syscalls_per_move | fmt); ctx switches/move instances \(.instances_kernel | cs | fmt), Redis \(.redis_kernel | cs | fmt)"' \
        "$out/$side$rep.json" || { echo "$side$rep: no report" >&2; cat "$out/$side$rep.txt" >&2; }
    done
  done
  echo
  ab_table "$out" "$reps"
}

# The table of an A/B invocation's kept reports (its $AB_OUT directory).
ab_table() {
  local out=$1 reps=$2 side rep
  for side in A B; do
    for rep in $(seq 1 "$reps"); do
      [ -s "$out/$side$rep.json" ] && jq -c --arg side $side --argjson rep "$rep" \
        '{side: $side, rep: $rep, report: .}' "$out/$side$rep.json"
    done
  done | jq -rs "$figures"'
    (map(select(.side == "A")) | sort_by(.rep)) as $a
    | (map(select(.side == "B")) | sort_by(.rep)) as $b
    | (["figure"] + ($a | map("A\(.rep)")) + ($b | map("B\(.rep)"))
       + ["median A", "median B", "B/A", "paired"]) as $header
    | ($a[0].report // $b[0].report | [figures[] | .[0]]) as $names
    | $header, ($names | to_entries[] | .key as $i | .value as $name
      | ($a | map(.report | [figures[]][$i][1])) as $av
      | ($b | map(.report | [figures[]][$i][1])) as $bv
      | ($av | median) as $am | ($bv | median) as $bm
      | [$name] + ($av | map(fmt)) + ($bv | map(fmt))
        + [($am | fmt), ($bm | fmt),
           (if $am == null or $bm == null or $am == 0 then "-"
            else ($bm / $am * 1000 | round) / 1000 | tostring end),
           ([range(0; [$av, $bv] | map(length) | min)
             | select($av[.] != null and $bv[.] != null and $av[.] != 0)
             | $bv[.] / $av[.]] | median
            | if . == null then "-" else (. * 1000 | round) / 1000 | tostring end)])
    | @tsv' | column -t -s $'\t'
}

# Heap allocations per accepted move of one instance (serving both players of every game)
# run under heaptrack: every allocation of the process's life, start-up and connection set-up
# included, divided by its accepted moves; compare builds with the same arguments only.
allocs() {
  local bin dir server moves calls
  bin=$(readlink -f "${1:?usage: scripts/bench.sh allocs BIN [CONNECTIONS] [DURATION]}")
  local conns=${2:-200} duration=${3:-6s} loadgen=${LOADGEN:-$release}
  command -v heaptrack >/dev/null || die "heaptrack is not installed (apt-get install heaptrack)"
  # heaptrack sees malloc and free: jemalloc, linked in by default, bypasses them.
  if grep -q -a _rjem_malloc "$bin"; then
    die "$bin allocates with jemalloc, which heaptrack cannot see; build one with glibc's allocator: cargo build --release --locked --no-default-features --target-dir target/glibc"
  fi
  [ -x "$loadgen" ] || cargo build --release --locked
  instances=1
  dir=$(mktemp -d "$work/allocs.XXXX")
  run_pids=()
  start_redis "$dir/redis"
  wrap=(heaptrack -o "$dir/heap")
  start_instances "$bin" "$dir"
  scenario_flags play "$conns" 0 "$duration"
  "$loadgen" loadgen --urls "${urls[0]}" "${flags[@]}" --quiet >"$dir/loadgen.txt" 2>&1 || true
  moves=$(curl -s http://127.0.0.1:18080/metrics |
    awk '/^moves_total\{result="accepted"\}/ {print $2}')
  # heaptrack runs the server as its child; SIGINT lets it shut down and heaptrack finish.
  server=$(pgrep -f "^$bin" | head -1)
  [ -n "$server" ] && kill -INT "$server"
  for _ in $(seq 100); do kill -0 "${server_pids[0]}" 2>/dev/null || break; sleep 0.1; done
  calls=$(heaptrack_print -f "$dir"/heap*.zst -p 0 -a 0 -T 0 -l 0 2>/dev/null |
    awk '/calls to allocation functions/ {print $5}')
  stop_pids "${run_pids[@]}"
  [ -n "$moves" ] && [ -n "$calls" ] || { cat "$dir/loadgen.txt" >&2; die "no figures"; }
  awk -v c="$calls" -v m="$moves" -v b="$bin" \
    'BEGIN { printf "%s: %d allocations, %d accepted moves, %.1f allocations per move\n", b, c, m, c / m }'
}

case ${1:-play} in
  allocs)
    shift
    allocs "$@"
    ;;
  build)
    shift
    build_rev "$@"
    ;;
  ab-table)
    shift
    [ $# -eq 2 ] || die "usage: scripts/bench.sh ab-table AB_OUT_DIR REPS"
    ab_table "$@"
    ;;
  ab)
    shift
    ab "$@"
    ;;
  *)
    mode=${1:-play} conns=${2:-200} x=${3:-0} duration=${4:-30s}
    [ -x "$release" ] || cargo build --release --locked
    bin=${BIN:-$release} loadgen=${LOADGEN:-$release}
    if [ "${PER_INSTANCE:-0}" = 1 ]; then
      run_pids=()
      start_redis "$work/redis"
      start_instances "$bin" "$work"
      scenario_flags "$mode" $((conns / instances)) "$x" "$duration"
      gens=()
      for i in $(seq 0 $((instances - 1))); do
        # Each load generator its own loopback source addresses: ports never run out.
        src=127.0.$((i + 1)).1,127.0.$((i + 1)).2,127.0.$((i + 1)).3
        "$loadgen" loadgen --urls "${urls[$i]}" "${flags[@]}" --source-ips "$src" \
          --server-pids "${server_pids[$i]}" --quiet >"$work/loadgen$i.txt" 2>&1 &
        gens+=($!)
      done
      for g in "${gens[@]}"; do wait "$g" || true; done
      for i in $(seq 0 $((instances - 1))); do echo "--- load generator $i"; cat "$work/loadgen$i.txt"; done
      stop_pids "${run_pids[@]}"
    else
      # Anything after the scenario and a `--` goes to the load generator (e.g. --json).
      run_once "$bin" "$loadgen" "$mode" "$conns" "$x" "$duration" "${@:5}" | tee "$work/report"
      games_all_started "$work/report" ||
        die "not every game started: a limit not lifted (scripts/bench-limits.sh)? The figures above are not the scenario's"
    fi
    ;;
esac
