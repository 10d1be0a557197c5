#!/usr/bin/env bash
# The docker-compose topology without Docker: a Redis, three instances of the built binary and
# nginx in front (rendered from deploy/nginx.conf.template), all local processes on free ports.
# Prints the URL, then runs until Ctrl-C, which stops every process it started.
#
#   cargo build && scripts/topology.sh
#   REDIS_LAYOUT=sentinel scripts/topology.sh    # as docker-compose.sentinel.yml
#
# Settings (environment): TTT_BIN (default target/release/tictactoe, else target/debug),
# INSTANCES (default 3), KEEP_LOGS=1 to keep the run directory with the logs after exit,
# REDIS_LAYOUT: `single` (default, one Redis) or `sentinel` (a primary, a replica and three
# Sentinels with quorum 2; the instances find the primary through them, so `kill -9` of the
# primary's pid shows a failover; SENTINEL_DOWN_AFTER_MS, default 1000, is how long the primary
# must be silent before the Sentinels act), TTT_PORT_MIN and TTT_PORT_SPAN (the ports it picks
# from, default 20000 and 12000).
# Any server setting (FORFEIT_GRACE_MS, MOVE_RATE, ...) in the environment reaches the
# instances as it is.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
instances="${INSTANCES:-3}"

bin="${TTT_BIN:-}"
if [[ -z "$bin" ]]; then
  for candidate in "$root/target/release/tictactoe" "$root/target/debug/tictactoe"; do
    if [[ -x "$candidate" ]]; then bin="$candidate"; break; fi
  done
fi
[[ -n "$bin" && -x "$bin" ]] || { echo "topology: no server binary: run 'cargo build' first (or set TTT_BIN)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "topology: redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
[[ -x "$nginx_bin" ]] || { echo "topology: nginx is not installed (scripts/install-test-deps.sh)" >&2; exit 1; }

# Each child in its own process group: Ctrl-C reaches only this script, which then stops
# the children in order (instead of all of them at once, twice).
set -m

run_dir="$(mktemp -d "${TMPDIR:-/tmp}/ttt-topology.XXXXXX")"
pids=()

cleanup() {
  trap - EXIT INT TERM
  local pid
  # SIGTERM first: instances drain their sessions (telling browsers 1012), nginx stops its
  # workers, Redis finishes its append-only file.
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ "${KEEP_LOGS:-0}" == 1 ]]; then
    echo "topology: logs kept in $run_dir"
  else
    rm -rf "$run_dir"
  fi
  echo "topology: stopped"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

taken_ports=" "
# A port nothing listens on (and that this script has not handed out already), below the
# kernel's ephemeral range (32768 and up), where other programs' client sockets would race a
# server for it. TTT_PORT_MIN and TTT_PORT_SPAN narrow the range (the test suite gives the
# script one its own servers never use). Sets FP, in this shell: $(free_port) would run in a
# subshell and forget the port it handed out.
port_min=${TTT_PORT_MIN:-20000}
port_span=${TTT_PORT_SPAN:-12000}
free_port() {
  local port
  while :; do
    port=$((port_min + RANDOM % port_span))
    [[ "$taken_ports" == *" $port "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      taken_ports+="$port "
      FP=$port
      return
    fi
  done
}

# Waits (at most $3 seconds) until `GET $2` on 127.0.0.1:$1 answers 200.
wait_http() {
  local port="$1" path="$2" limit="$3" status
  local deadline=$((SECONDS + limit))
  while ((SECONDS < deadline)); do
    status="$( (exec 3<>"/dev/tcp/127.0.0.1/$port" &&
      printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3 &&
      head -n1 <&3) 2>/dev/null || true)"
    [[ "$status" == *" 200 "* ]] && return 0
    sleep 0.1
  done
  return 1
}

layout="${REDIS_LAYOUT:-single}"
case "$layout" in
  single | sentinel) ;;
  *) echo "topology: REDIS_LAYOUT must be 'single' or 'sentinel', not '$layout'" >&2; exit 1 ;;
esac

redis_pids=()
# Starts a redis-server named $1 on port $2 with any further arguments; waits until it answers.
start_redis() {
  local name="$1" port="$2"
  shift 2
  mkdir -p "$run_dir/$name"
  redis-server --port "$port" --bind 127.0.0.1 --save "" \
    --appendonly yes --appendfsync always --dir "$run_dir/$name" \
    --logfile "$run_dir/$name.log" "$@" &
  pids+=("$!")
  redis_pids+=("$name|$port|$!")
  local deadline=$((SECONDS + 10))
  until redis-cli -p "$port" ping >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "topology: $name did not start: $run_dir/$name.log" >&2; exit 1; }
    sleep 0.1
  done
}

# Waits (at most $2 seconds) until `redis-cli -p $1` with the arguments after $3 prints a line
# matching the pattern $3.
wait_redis_says() {
  local port="$1" limit="$2" pattern="$3"
  shift 3
  local deadline=$((SECONDS + limit))
  until redis-cli -p "$port" "$@" 2>/dev/null | grep -q "$pattern"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

free_port; redis_port=$FP
start_redis redis "$redis_port"
if [[ "$layout" == sentinel ]]; then
  free_port; replica_port=$FP
  start_redis redis-replica "$replica_port" --replicaof 127.0.0.1 "$redis_port"
  wait_redis_says "$replica_port" 15 '^master_link_status:up' info replication ||
    { echo "topology: the replica never synced: $run_dir/redis-replica.log" >&2; exit 1; }
  sentinels=()
  for i in 1 2 3; do
    free_port; port=$FP
    mkdir -p "$run_dir/sentinel-$i"
    # Sentinel rewrites its own file: each one gets a private copy.
    cat >"$run_dir/sentinel-$i/sentinel.conf" <<EOF
port $port
bind 127.0.0.1
dir $run_dir/sentinel-$i
logfile $run_dir/sentinel-$i.log
sentinel monitor ttt 127.0.0.1 $redis_port 2
sentinel down-after-milliseconds ttt ${SENTINEL_DOWN_AFTER_MS:-1000}
sentinel failover-timeout ttt 5000
sentinel parallel-syncs ttt 1
EOF
    redis-server "$run_dir/sentinel-$i/sentinel.conf" --sentinel &
    pids+=("$!")
    redis_pids+=("sentinel-$i|$port|$!")
    sentinels+=("127.0.0.1:$port")
  done
  # Ready once every Sentinel knows the replica and the two others: only then can they agree
  # on a failover.
  for s in "${sentinels[@]}"; do
    { wait_redis_says "${s##*:}" 20 '^OK' sentinel ckquorum ttt &&
      wait_redis_says "${s##*:}" 20 "^$replica_port\$" sentinel replicas ttt; } ||
      { echo "topology: Sentinel $s is not ready:" >&2; tail -n 20 "$run_dir"/sentinel-*.log >&2; exit 1; }
  done
  # A failover cuts every instance off at once: they wait it out instead of sending their
  # players elsewhere (REDIS_LOST_MS above down-after plus the election).
  redis_env=(REDIS_SENTINELS="$(IFS=,; echo "${sentinels[*]}")" REDIS_SENTINEL_MASTER=ttt
    REDIS_LOST_MS="${REDIS_LOST_MS:-$(( ${SENTINEL_DOWN_AFTER_MS:-1000} + 5000 ))}")
else
  redis_env=(REDIS_URL="redis://127.0.0.1:$redis_port/")
fi

upstreams=""
direct=()
instance_pids=()
for i in $(seq 1 "$instances"); do
  free_port; port=$FP
  env "${redis_env[@]}" \
  LISTEN_ADDR="127.0.0.1:$port" \
  INSTANCE_ID="ttt-$i" \
  WEB_DIR="${WEB_DIR:-$root/web}" \
  TRUSTED_PROXIES="127.0.0.1" \
    "$bin" >"$run_dir/ttt-$i.log" 2>&1 &
  pids+=("$!")
  instance_pids+=("$!")
  upstreams+="server 127.0.0.1:$port max_fails=0; "
  direct+=("$port")
done
for i in "${!direct[@]}"; do
  wait_http "${direct[$i]}" /readyz 15 ||
    { echo "topology: ttt-$((i + 1)) never became ready: $run_dir/ttt-$((i + 1)).log" >&2; exit 1; }
done

free_port; lb_port=$FP
mkdir -p "$run_dir/nginx"
template="$(<"$root/deploy/nginx.conf.template")"
conf="${template//'${TTT_LISTEN}'/127.0.0.1:$lb_port}"
conf="${conf//'${TTT_UPSTREAMS}'/$upstreams}"
conf="${conf//'${TTT_RUN_DIR}'/$run_dir/nginx}"
conf="${conf//'${TTT_EXTRA_SERVERS}'/}"
printf '%s\n' "$conf" >"$run_dir/nginx/nginx.conf"
"$nginx_bin" -p "$run_dir/nginx" -c "$run_dir/nginx/nginx.conf" -e "$run_dir/nginx/error.log" \
  -g 'daemon off;' >"$run_dir/nginx/access.log" 2>>"$run_dir/nginx/error.log" &
nginx_pid="$!"
pids+=("$nginx_pid")
wait_http "$lb_port" /readyz 10 || { echo "topology: nginx did not start: $run_dir/nginx/error.log" >&2; exit 1; }

cat <<EOF
topology: up
  open     http://127.0.0.1:$lb_port/   (nginx, spreading over $instances instances)
EOF
for r in "${redis_pids[@]}"; do
  IFS='|' read -r name port pid <<<"$r"
  printf '  %-14s 127.0.0.1:%s   pid %s\n' "$name" "$port" "$pid"
done
if [[ "$layout" == sentinel ]]; then
  echo "  (master name ttt; kill -9 the primary's pid to watch a failover)"
fi
for i in "${!direct[@]}"; do
  echo "  ttt-$((i + 1))    http://127.0.0.1:${direct[$i]}/   pid ${instance_pids[$i]}"
done
echo "  logs     $run_dir"
echo "Ctrl-C stops everything."

# Runs until Ctrl-C (or until nginx dies); instances may be killed meanwhile to watch the
# browsers move to the others.
wait "$nginx_pid" || true
