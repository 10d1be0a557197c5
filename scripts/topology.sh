#!/usr/bin/env bash
# The docker-compose topology without Docker: a Redis, three instances of the built binary and
# nginx in front (rendered from deploy/nginx.conf.template), all local processes on free ports.
# Prints the URL, then runs until Ctrl-C, which stops every process it started.
#
#   cargo build && scripts/topology.sh
#
# Settings (environment): TTT_BIN (default target/release/tictactoe, else target/debug),
# INSTANCES (default 3), KEEP_LOGS=1 to keep the run directory with the logs after exit.
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
# A port nothing listens on (and that this script has not handed out already).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    [[ "$taken_ports" == *" $port "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      taken_ports+="$port "
      echo "$port"
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

redis_port="$(free_port)"
mkdir -p "$run_dir/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" \
  --appendonly yes --appendfsync always --dir "$run_dir/redis" \
  --logfile "$run_dir/redis.log" &
pids+=("$!")
deadline=$((SECONDS + 10))
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do
  ((SECONDS < deadline)) || { echo "topology: redis did not start: $run_dir/redis.log" >&2; exit 1; }
  sleep 0.1
done

upstreams=""
direct=()
for i in $(seq 1 "$instances"); do
  port="$(free_port)"
  LISTEN_ADDR="127.0.0.1:$port" \
  REDIS_URL="redis://127.0.0.1:$redis_port/" \
  INSTANCE_ID="ttt-$i" \
  WEB_DIR="${WEB_DIR:-$root/web}" \
  TRUSTED_PROXIES="127.0.0.1" \
    "$bin" >"$run_dir/ttt-$i.log" 2>&1 &
  pids+=("$!")
  upstreams+="server 127.0.0.1:$port max_fails=1 fail_timeout=5s; "
  direct+=("$port")
done
for i in "${!direct[@]}"; do
  wait_http "${direct[$i]}" /readyz 15 ||
    { echo "topology: ttt-$((i + 1)) never became ready: $run_dir/ttt-$((i + 1)).log" >&2; exit 1; }
done

lb_port="$(free_port)"
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
  redis    127.0.0.1:$redis_port
EOF
for i in "${!direct[@]}"; do
  echo "  ttt-$((i + 1))    http://127.0.0.1:${direct[$i]}/   pid ${pids[$((i + 1))]}"
done
echo "  logs     $run_dir"
echo "Ctrl-C stops everything."

# Runs until Ctrl-C (or until nginx dies); instances may be killed meanwhile to watch the
# browsers move to the others.
wait "$nginx_pid" || true
