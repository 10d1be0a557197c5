#!/usr/bin/env bash
# The chaos run: three instances behind nginx over Redis in the chosen layout, an audited load
# at human pace through nginx, and a seeded random schedule of faults; at the end the
# audit's checker reads every game's log and chat from Redis and judges the run
# (docs/reliability.md). Exits non-zero when a guarantee broke.
#
#   cargo build --release && scripts/chaos.sh [--seconds N] [--seed S] [--layout single|sentinel|cluster]
#
# Layouts: single (one Redis, AOF appendfsync always), sentinel (a primary, two replicas,
# three Sentinels, quorum 2, down-after 1000 ms), cluster (three masters each with a replica,
# cluster-node-timeout 1000 ms). Both wait for every replica by default: REDIS_WAIT_REPLICAS=2
# on Sentinel, =1 on a Cluster master's one replica (WAIT_REPLICAS overrides). With fewer, a
# primary the Sentinels replace while it still runs (a stop_primary, or a loaded machine
# stalling it past down-after) acknowledges moves its replica then throws away
# (docs/reliability.md, finding 4).
#
# Faults, one at a time with a few quiet seconds between them, drawn from a bag of every kind
# shuffled with the seed (bash's RANDOM, seeded); faults on an instance hit the one holding
# the most connections: kill -9 of an instance (restarted after 3-8 s), SIGTERM of an
# instance (it drains; restarted), SIGSTOP of the Redis primary (or of a master) for 1-4 s,
# kill -9 of the primary or a master (a failover; one Redis is restarted from its AOF; a dead
# node comes back as a replica), an instance's Redis link frozen for 3-8 s through a TCP proxy
# (single layout only: with Sentinel or Cluster the instances learn the nodes' real addresses
# from Redis, so no proxy sits on their path), latency and loss on one instance's path for
# 10-20 s through a userspace TCP proxy between nginx and that instance (this kernel has no
# `tc netem`; every instance sits behind such a relay, idle until told), and a reconnect storm
# (a third of the clients dropped at once). The proxies and the storm live in the load
# generator, which times every fault on its clients' clock (control file, see
# server/tools/src/audit).
#
# Environment: CONNECTIONS (default 2000), THINK_MS (default 500), TTT_BIN (default
# target/release/tictactoe, else target/debug), JSON_OUT (copy the audit's JSON report
# there), HISTORY_OUT (write every client's record and the stored games there, as JSON),
# KEEP_LOGS=1 (keep the run directory), TTT_PORT_MIN / TTT_PORT_SPAN (the ports it
# picks from, default 12000 / 8000: below the test suite's), STUCK_AFTER (default 30s),
# UPSTREAM_PARAMS (nginx's parameters for each instance, default as docs/deploy.md:
# `max_fails=0`), SENTINEL_DEBUG (Sentinel timings to set with `SENTINEL DEBUG`, e.g.
# "info-period 1000 publish-period 250": a resumed old primary is then made a replica within
# a few seconds instead of up to 18, which is what a stop_primary waits for with every replica
# waited for; default: Redis's own).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds=300 seed=1 layout=single
while (($#)); do
  case "$1" in
    --seconds) seconds="${2:?}"; shift 2 ;;
    --seed) seed="${2:?}"; shift 2 ;;
    --layout) layout="${2:?}"; shift 2 ;;
    *) echo "usage: scripts/chaos.sh [--seconds N] [--seed S] [--layout single|sentinel|cluster]" >&2; exit 2 ;;
  esac
done
case "$layout" in single | sentinel | cluster) ;; *) echo "chaos: unknown layout $layout" >&2; exit 2 ;; esac
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -ge 40 ]] || { echo "chaos: --seconds must be a number, at least 40" >&2; exit 2; }
[[ "$seed" =~ ^[0-9]+$ ]] || { echo "chaos: --seed must be a number" >&2; exit 2; }
RANDOM=$seed

bin="${TTT_BIN:-}"
if [[ -z "$bin" ]]; then
  for candidate in "${CARGO_TARGET_DIR:-$root/target}/release/tictactoe" "${CARGO_TARGET_DIR:-$root/target}/debug/tictactoe"; do
    if [[ -x "$candidate" ]]; then bin="$candidate"; break; fi
  done
fi
[[ -n "$bin" && -x "$bin" ]] || { echo "chaos: no server binary: run 'cargo build --release' first (or set TTT_BIN)" >&2; exit 1; }
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
command -v redis-server >/dev/null && [[ -x "$nginx_bin" ]] ||
  { echo "chaos: needs redis-server and nginx (scripts/install-test-deps.sh)" >&2; exit 1; }

# Every child in its own process group, stopped by its pid at the end.
set -m
run_dir="$(mktemp -d "${TMPDIR:-/tmp}/ttt-chaos.XXXXXX")"
control="$run_dir/control"
: >"$control"
declare -A pid_of   # name -> pid of every process started (instances, Redis nodes, ...)
declare -A port_of  # name -> port

stop_pid() {
  local pid="$1" sig="${2:-TERM}"
  [[ -n "$pid" && "$pid" -gt 1 ]] || return 0
  kill -CONT "$pid" 2>/dev/null || true
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  trap - EXIT INT TERM
  local name
  [[ -n "${loadgen_pid:-}" ]] && stop_pid "$loadgen_pid"
  for name in "${!pid_of[@]}"; do stop_pid "${pid_of[$name]}"; done
  if [[ "${KEEP_LOGS:-0}" == 1 ]]; then echo "chaos: logs kept in $run_dir" >&2; else rm -rf "$run_dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { echo "chaos: [$((SECONDS - t0))s] $*" >&2; }
t0=$SECONDS
# R = a random integer in [$1, $2], from the seeded RANDOM (never in a subshell, where bash
# reseeds it).
rand() { R=$(($1 + RANDOM % ($2 - $1 + 1))); }
# Tells the load generator (which timestamps it).
tell() { echo "$*" >>"$control"; }

taken=" "
port_min=${TTT_PORT_MIN:-12000}
port_span=${TTT_PORT_SPAN:-8000}
# FP = a free port below the ephemeral range, never handed out twice (as in scripts/topology.sh).
# Called in this shell, not in $(...): a subshell would forget the port it handed out. Drawn
# from SRANDOM so that which ports are busy never shifts the seeded RANDOM's faults.
free_port() {
  local port
  while :; do
    port=$((port_min + SRANDOM % port_span))
    [[ "$taken" == *" $port "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then taken+="$port "; FP=$port; return; fi
  done
}
# Waits (at most $2 s) until something listens on port $1.
wait_port() {
  local deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}
# Waits (at most $3 s) until GET $2 on port $1 answers 200.
wait_http() {
  local deadline=$((SECONDS + $3)) status
  while ((SECONDS < deadline)); do
    status="$( (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3 && head -n1 <&3) 2>/dev/null || true)"
    [[ "$status" == *" 200 "* ]] && return 0
    sleep 0.1
  done
  return 1
}
rcli() { timeout 5 redis-cli -p "$@" 2>/dev/null; }

# ---- Redis ------------------------------------------------------------------------------
redis_nodes=()
# Starts (or restarts, same port and data) Redis node $1 with extra arguments.
start_redis() {
  local name="$1"
  shift
  mkdir -p "$run_dir/$name"
  redis-server --port "${port_of[$name]}" --bind 127.0.0.1 --save "" --appendonly yes \
    --appendfsync always --dir "$run_dir/$name" --logfile "$run_dir/$name.log" "$@" &
  pid_of[$name]=$!
  wait_port "${port_of[$name]}" 10 || { echo "chaos: $name did not start" >&2; exit 1; }
}
# Arguments each node is restarted with.
declare -A redis_args

case "$layout" in
  single)
    free_port; port_of[redis]=$FP
    redis_nodes=(redis)
    start_redis redis
    audit_redis="redis://127.0.0.1:${port_of[redis]}"
    ;;
  sentinel)
    for n in redis-1 redis-2 redis-3; do free_port; port_of[$n]=$FP; redis_nodes+=("$n"); done
    start_redis redis-1
    for n in redis-2 redis-3; do
      redis_args[$n]="--replicaof 127.0.0.1 ${port_of[redis-1]}"
      # shellcheck disable=SC2086
      start_redis "$n" ${redis_args[$n]}
    done
    # Sentinels learn the replicas from the primary's INFO, every 10 s: have them in sync first.
    deadline=$((SECONDS + 60))
    for n in redis-2 redis-3; do
      until rcli "${port_of[$n]}" info replication | grep -q '^master_link_status:up'; do
        ((SECONDS < deadline)) || { echo "chaos: $n never synced: $(tail -5 "$run_dir/$n.log")" >&2; exit 1; }
        sleep 0.2
      done
    done
    sentinels=()
    for i in 1 2 3; do
      free_port; port_of[sentinel-$i]=$FP
      mkdir -p "$run_dir/sentinel-$i"
      cat >"$run_dir/sentinel-$i/sentinel.conf" <<EOF
port ${port_of[sentinel-$i]}
bind 127.0.0.1
dir $run_dir/sentinel-$i
logfile $run_dir/sentinel-$i.log
sentinel monitor ttt 127.0.0.1 ${port_of[redis-1]} 2
sentinel down-after-milliseconds ttt 1000
sentinel failover-timeout ttt 5000
sentinel parallel-syncs ttt 2
EOF
      redis-server "$run_dir/sentinel-$i/sentinel.conf" --sentinel &
      pid_of[sentinel-$i]=$!
      sentinels+=("127.0.0.1:${port_of[sentinel-$i]}")
      wait_port "${port_of[sentinel-$i]}" 10 || { echo "chaos: sentinel-$i did not start" >&2; exit 1; }
      if [[ -n "${SENTINEL_DEBUG:-}" ]]; then
        # shellcheck disable=SC2086
        rcli "${port_of[sentinel-$i]}" sentinel debug $SENTINEL_DEBUG | grep -q '^OK' ||
          { echo "chaos: sentinel-$i refused SENTINEL DEBUG $SENTINEL_DEBUG" >&2; exit 1; }
      fi
    done
    # Ready once every Sentinel knows both replicas and the two other Sentinels. A loaded
    # machine can take two of the primary's 10 s INFO rounds: wait well past that.
    deadline=$((SECONDS + 90))
    for i in 1 2 3; do
      until rcli "${port_of[sentinel-$i]}" sentinel ckquorum ttt | grep -q '^OK' &&
        [[ "$(rcli "${port_of[sentinel-$i]}" sentinel replicas ttt | grep -c '^ip$')" == 2 ]]; do
        ((SECONDS < deadline)) || {
          echo "chaos: Sentinels not ready; sentinel-$i says: $(rcli "${port_of[sentinel-$i]}" sentinel ckquorum ttt)" >&2
          tail -n 15 "$run_dir"/sentinel-*.log >&2
          exit 1
        }
        sleep 0.2
      done
    done
    audit_redis="sentinel://$(IFS=,; echo "${sentinels[*]}")/ttt"
    ;;
  cluster)
    nodes=()
    for i in 1 2 3 4 5 6; do
      n=redis-$i
      free_port; port_of[$n]=$FP
      # The cluster bus is the port + 10000: keep it free too.
      while (exec 3<>"/dev/tcp/127.0.0.1/$((port_of[$n] + 10000))") 2>/dev/null || ((port_of[$n] + 10000 > 65535)); do
        free_port; port_of[$n]=$FP
      done
      redis_nodes+=("$n")
      redis_args[$n]="--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 1000"
      # shellcheck disable=SC2086
      start_redis "$n" ${redis_args[$n]}
      nodes+=("127.0.0.1:${port_of[$n]}")
    done
    timeout 30 redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$run_dir/cluster-create.log" 2>&1 ||
      { echo "chaos: cluster create failed: $(tail -5 "$run_dir/cluster-create.log")" >&2; exit 1; }
    deadline=$((SECONDS + 30))
    for n in "${redis_nodes[@]}"; do
      until rcli "${port_of[$n]}" cluster info | grep -q 'cluster_state:ok'; do
        ((SECONDS < deadline)) || { echo "chaos: cluster not ok" >&2; exit 1; }
        sleep 0.2
      done
    done
    audit_redis="cluster://$(IFS=,; echo "${nodes[*]}")"
    ;;
esac

# P = the node that takes writes now: the only one (single), the Sentinels' primary, or a
# master chosen with the seed (cluster); empty if none.
primary() {
  local n port
  P=""
  case "$layout" in
    single) P=redis ;;
    sentinel)
      port="$(rcli "${port_of[sentinel-1]}" sentinel get-master-addr-by-name ttt | tail -n1 || true)"
      for n in "${redis_nodes[@]}"; do
        if [[ "${port_of[$n]}" == "$port" ]]; then P="$n"; fi
      done
      ;;
    cluster)
      local masters=()
      for n in "${redis_nodes[@]}"; do
        kill -0 "${pid_of[$n]}" 2>/dev/null || continue
        if rcli "${port_of[$n]}" role | head -n1 | grep -q '^master$'; then masters+=("$n"); fi
      done
      if ((${#masters[@]})); then P="${masters[$((RANDOM % ${#masters[@]}))]}"; fi
      ;;
  esac
  return 0
}
# Waits (at most $1 s) until the layout takes writes again with every node up.
wait_redis_healthy() {
  local deadline=$((SECONDS + $1)) n p
  while ((SECONDS < deadline)); do
    case "$layout" in
      single) rcli "${port_of[redis]}" ping | grep -q PONG && return 0 ;;
      sentinel)
        primary
        p="$P"
        if [[ -n "$p" ]] && rcli "${port_of[$p]}" role | head -n1 | grep -q '^master$' &&
          [[ "$(rcli "${port_of[$p]}" info replication | grep -c 'state=online')" == 2 ]]; then
          return 0
        fi
        ;;
      cluster)
        # Every node says the cluster is ok, and every master has its replica in sync (with
        # REDIS_WAIT_REPLICAS=1 a shard takes no move before).
        local ok=1
        for n in "${redis_nodes[@]}"; do
          rcli "${port_of[$n]}" cluster info | grep -q 'cluster_state:ok' || ok=0
          if rcli "${port_of[$n]}" role | head -n1 | grep -q '^master$' &&
            ! rcli "${port_of[$n]}" info replication | grep -q 'state=online'; then
            ok=0
          fi
        done
        ((ok)) && return 0
        ;;
    esac
    sleep 0.2
  done
  return 1
}

# ---- the load generator (first: it holds the proxies) ------------------------------------
for i in 1 2 3; do free_port; port_of[ttt-$i]=$FP; done
proxies=()
if [[ "$layout" == single ]]; then
  for i in 1 2 3; do
    free_port; port_of[redis-link-$i]=$FP
    proxies+=("redis-link-$i:${port_of[redis-link-$i]}:${port_of[redis]}")
  done
fi
for i in 1 2 3; do
  free_port; port_of[path-$i]=$FP
  proxies+=("path-$i:${port_of[path-$i]}:${port_of[ttt-$i]}")
done
free_port; port_of[nginx]=$FP

durable=(--durable-moves)
[[ "$layout" == single ]] && durable+=(--durable-chat)
[[ -n "${HISTORY_OUT:-}" ]] && durable+=(--history-out "$HISTORY_OUT")
# Its error is one line: a backtrace (CI sets RUST_BACKTRACE) would push it out of sight.
RUST_BACKTRACE=0 "$bin" loadgen --mode audit --urls "ws://127.0.0.1:${port_of[nginx]}/ws" \
  --connections "${CONNECTIONS:-2000}" --think-ms "${THINK_MS:-500}" --duration "${seconds}s" \
  --seed "$seed" --audit-redis "$audit_redis" --control "$control" \
  --ready-file "$run_dir/ready" --proxy "$(IFS=,; echo "${proxies[*]}")" \
  --stuck-after "${STUCK_AFTER:-30s}" "${durable[@]}" --json \
  >"$run_dir/report.json" 2> >(tee "$run_dir/loadgen.log" >&2) &
loadgen_pid=$!
wait_port "${port_of[path-1]}" 10 || { echo "chaos: the load generator did not start" >&2; exit 1; }

# ---- instances and nginx ---------------------------------------------------------------------
common=(MOVE_RATE=1000000 MOVE_BURST=1000000 MSG_RATE=1000000 MSG_BURST=1000000
  IP_CONN_RATE=1000000 IP_CONN_BURST=1000000 IP_SESSION_RATE=1000000 IP_SESSION_BURST=1000000
  CHAT_RATE=1000000 CHAT_BURST=1000000 IP_PENDING_MAX=1000000 IP_WS_MAX=1000000
  CREATE_RATE=1000000 CREATE_BURST=1000000 IP_CREATE_RATE=1000000 IP_CREATE_BURST=1000000
  TRUSTED_PROXIES=127.0.0.1 WEB_DIR="$root/web" RUST_LOG="${RUST_LOG:-warn}"
  EVENT_LOG_LEN=1000000 FORFEIT_GRACE_MS=10000 SHUTDOWN_GRACE_MS=3000)
start_instance() {
  local i="$1" store
  case "$layout" in
    single) store=(REDIS_URL="redis://127.0.0.1:${port_of[redis-link-$i]}/" REDIS_LOST_MS=3000) ;;
    sentinel) store=(REDIS_SENTINELS="$(IFS=,; echo "${sentinels[*]}")" REDIS_SENTINEL_MASTER=ttt
      REDIS_LOST_MS=6000 REDIS_WAIT_REPLICAS="${WAIT_REPLICAS:-2}") ;;
    cluster) store=(REDIS_CLUSTER_URLS="$(for n in "${redis_nodes[@]}"; do printf 'redis://127.0.0.1:%s,' "${port_of[$n]}"; done | sed 's/,$//')"
      REDIS_LOST_MS=6000 REDIS_WAIT_REPLICAS="${WAIT_REPLICAS:-1}") ;;
  esac
  env "${common[@]}" "${store[@]}" LISTEN_ADDR="127.0.0.1:${port_of[ttt-$i]}" INSTANCE_ID="ttt-$i" \
    "$bin" >>"$run_dir/ttt-$i.log" 2>&1 &
  pid_of[ttt-$i]=$!
  wait_http "${port_of[ttt-$i]}" /readyz 30 || { echo "chaos: ttt-$i never became ready: $(tail -5 "$run_dir/ttt-$i.log")" >&2; exit 1; }
}
for i in 1 2 3; do start_instance "$i"; done

mkdir -p "$run_dir/nginx"
# nginx reaches each instance through its path proxy (normally a plain relay).
upstreams=""
# Each upstream line as docs/deploy.md has it, unless UPSTREAM_PARAMS says otherwise
# (docs/reliability.md, finding 1: what `max_fails=1` did to WebSockets once every instance
# refused).
for i in 1 2 3; do
  upstreams+="server 127.0.0.1:${port_of[path-$i]} ${UPSTREAM_PARAMS:-max_fails=0}; "
done
template="$(<"$root/deploy/nginx.conf.template")"
conf="${template//'${TTT_LISTEN}'/127.0.0.1:${port_of[nginx]}}"
conf="${conf//'${TTT_UPSTREAMS}'/$upstreams}"
conf="${conf//'${TTT_RUN_DIR}'/$run_dir/nginx}"
conf="${conf//'${TTT_EXTRA_SERVERS}'/}"
printf '%s\n' "$conf" >"$run_dir/nginx/nginx.conf"
"$nginx_bin" -p "$run_dir/nginx" -c "$run_dir/nginx/nginx.conf" -e "$run_dir/nginx/error.log" \
  -g 'daemon off;' >/dev/null 2>>"$run_dir/nginx/error.log" &
pid_of[nginx]=$!
wait_http "${port_of[nginx]}" /readyz 10 || { echo "chaos: nginx did not start" >&2; exit 1; }

say "layout $layout, seed $seed, ${CONNECTIONS:-2000} connections, ${THINK_MS:-500} ms think, $bin"
tell start
deadline=$((SECONDS + 180))
until [[ -s "$run_dir/ready" ]]; do
  kill -0 "$loadgen_pid" 2>/dev/null || { echo "chaos: the load generator stopped during set-up" >&2; exit 1; }
  ((SECONDS < deadline)) || { echo "chaos: set-up took over 180 s" >&2; exit 1; }
  sleep 0.2
done
load_start=$SECONDS
say "$(cat "$run_dir/ready") games set up; faults for $((seconds - 25)) s, then 25 s of quiet"

# ---- faults -------------------------------------------------------------------------------
kinds=(kill_instance drain_instance stop_primary kill_primary degrade_path reconnect_storm)
[[ "$layout" == single ]] && kinds+=(freeze_redis_link)

# Instance i's /metrics (nothing when it does not answer).
metrics_of() {
  (exec 3<>"/dev/tcp/127.0.0.1/${port_of[ttt-$1]}" &&
    printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && timeout 2 cat <&3) 2>/dev/null || true
}

# I = the instance holding the most connections (its `connections` gauge): a fault on an
# instance nobody uses (just restarted, say) would prove nothing.
busiest() {
  local i n best=-1
  I=1
  for i in 1 2 3; do
    n="$(metrics_of "$i" | awk '$1 == "connections" {print int($2)}' || true)"
    if [[ -n "$n" ]] && ((n > best)); then best=$n I=$i; fi
  done
  return 0
}

# Close frames by code and reason (`connections_closed_total`): each instance's latest reading
# is kept in closes.ttt-<i> (read before every fault), and added to the run's tally when that
# instance is killed or drained (its counters die with it) and at the end. What an instance
# sends between its last reading and its death (a drain's own 1012s) is not in the tally.
closes_read() {
  local out
  out="$(metrics_of "$1" | grep '^connections_closed_total{' || true)"
  [[ -n "$out" ]] && echo "$out" >"$run_dir/closes.ttt-$1"
  return 0
}
closes_keep() {
  closes_read "$1"
  if [[ -f "$run_dir/closes.ttt-$1" ]]; then
    cat "$run_dir/closes.ttt-$1" >>"$run_dir/closes"
    rm -f "$run_dir/closes.ttt-$1"
  fi
}
# One line: every close frame the instances sent, summed over their lives, by code and reason.
closes_summary() {
  local sum
  [[ -f "$run_dir/closes" ]] || { say "close frames sent: none"; return 0; }
  sum="$(awk '{split($0, a, "} "); n[a[1] "}"] += a[2]} END {for (k in n) printf "%s %d; ", k, n[k]}' \
    "$run_dir/closes" 2>/dev/null | sed 's/connections_closed_total//g')"
  say "close frames sent: ${sum:-none}"
}

kill_instance() {
  busiest; local i=$I
  tell "begin kill_instance ttt-$i"
  closes_keep "$i"
  kill -KILL "${pid_of[ttt-$i]}"; wait "${pid_of[ttt-$i]}" 2>/dev/null || true
  rand 3 8; sleep "$R"
  start_instance "$i"
  tell "end kill_instance ttt-$i"
}
drain_instance() {
  busiest; local i=$I
  tell "begin drain_instance ttt-$i"
  closes_keep "$i"
  stop_pid "${pid_of[ttt-$i]}" TERM
  sleep 1
  start_instance "$i"
  tell "end drain_instance ttt-$i"
}
stop_primary() {
  primary; local p="$P"
  [[ -n "$p" ]] || return 0
  tell "begin stop_primary $p cut=all"
  kill -STOP "${pid_of[$p]}"
  rand 1 4; sleep "$R"
  kill -CONT "${pid_of[$p]}"
  wait_redis_healthy 60 || say "Redis not healthy 60 s after stop_primary"
  tell "end stop_primary $p"
}
kill_primary() {
  local p p2 deadline
  primary; p="$P"
  [[ -n "$p" ]] || return 0
  tell "begin kill_primary $p cut=all"
  kill -KILL "${pid_of[$p]}"; wait "${pid_of[$p]}" 2>/dev/null || true
  case "$layout" in
    single)
      rand 1 3; sleep "$R"
      start_redis "$p"
      ;;
    sentinel)
      # Back as a replica of whoever was promoted (its own stale view would say primary).
      deadline=$((SECONDS + 30))
      until primary; p2="$P"; [[ -n "$p2" && "$p2" != "$p" ]]; do
        ((SECONDS < deadline)) || break
        sleep 0.2
      done
      sleep 2
      redis_args[$p]="--replicaof 127.0.0.1 ${port_of[${p2:-redis-1}]}"
      # shellcheck disable=SC2086
      start_redis "$p" ${redis_args[$p]}
      ;;
    cluster)
      sleep 4
      # shellcheck disable=SC2086
      start_redis "$p" ${redis_args[$p]}
      ;;
  esac
  wait_redis_healthy 60 || say "Redis not healthy 60 s after kill_primary"
  tell "end kill_primary $p"
}
freeze_redis_link() {
  busiest; local i=$I
  tell "begin freeze_redis_link ttt-$i cut=ttt-$i"
  tell "proxy redis-link-$i freeze"
  rand 3 8; sleep "$R"
  tell "proxy redis-link-$i normal"
  sleep 3
  tell "end freeze_redis_link ttt-$i"
}
degrade_path() {
  busiest; local i=$I
  tell "begin degrade_path ttt-$i"
  tell "proxy path-$i degrade"
  rand 10 20; sleep "$R"
  tell "proxy path-$i normal"
  tell "end degrade_path ttt-$i"
}
reconnect_storm() {
  tell "begin reconnect_storm"
  tell storm
  sleep 5
  tell "end reconnect_storm"
}

# What a failed run's reader needs first, short enough to be the last lines of a CI log: the
# load generator's verdict, the failovers (one no fault asked for means a node stalled past
# down-after), and each instance's last complaints.
digest() {
  local f
  echo "chaos: digest of the failed run" >&2
  grep -E '^(Error|FAIL)|must be 0\)$' "$run_dir/loadgen.log" | grep -vE ' 0 +\(must' | sed 's/^/  loadgen: /' >&2 || true
  grep -E '^(begin|end) ' "$control" | tr '\n' ';' | sed 's/^/  faults: /; s/$/\n/' >&2 || true
  if [[ "$layout" == sentinel ]]; then
    echo "  failovers (sentinel-1's +switch-master): $(grep -c '+switch-master' "$run_dir/sentinel-1.log" || true)," \
      "kill_primary faults: $(grep -c '^begin kill_primary' "$control" || true)" >&2
    grep -hE '\+(switch-master|tilt)|-failover-abort|failover-end-for-timeout' "$run_dir"/sentinel-*.log |
      sort -k5,5 | tail -n 12 | sed 's/^/  sentinel: /' >&2 || true
  fi
  for f in "$run_dir"/ttt-*.log; do
    grep -E 'WARN|ERROR' "$f" | tail -n 3 | cut -c1-300 | sed "s|^|  $(basename "$f" .log): |" >&2 || true
  done
}

bag=()
injected=0
while ((SECONDS - load_start < seconds - 25 - 10)); do
  if ((${#bag[@]} == 0)); then
    bag=("${kinds[@]}")
    for ((j = ${#bag[@]} - 1; j > 0; j--)); do
      k=$((RANDOM % (j + 1))); tmp="${bag[$j]}"; bag[$j]="${bag[$k]}"; bag[$k]="$tmp"
    done
  fi
  kind="${bag[0]}"
  bag=("${bag[@]:1}")
  for i in 1 2 3; do closes_read "$i"; done
  say "fault: $kind"
  "$kind"
  injected=$((injected + 1))
  kill -0 "$loadgen_pid" 2>/dev/null || break
  rand 5 10; sleep "$R"
done
say "$injected faults injected; waiting for the load to end and the checker"

status=0
wait "$loadgen_pid" || status=$?
loadgen_pid=""
[[ -n "${JSON_OUT:-}" ]] && cp "$run_dir/report.json" "$JSON_OUT"
for i in 1 2 3; do closes_keep "$i"; done
closes_summary
if ((status == 0)); then say "PASS"; else digest; say "FAIL (load generator exit $status)"; fi
exit "$status"
