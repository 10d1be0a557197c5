#!/usr/bin/env bash
# How much of a move's time in Redis is the Lua engine: `redis-benchmark` of the move script
# (server/src/store/scripts/transition.lua) with a real game's arguments, against a script
# that sends the same commands with fixed arguments and no logic, against the same commands
# sent one by one without Lua. For each: requests/s, Redis's CPU µs per request (its
# utime + stime over the run), its system calls per request (perf, when allowed) and, from
# INFO commandstats, the µs per call Redis spent executing EVALSHA (script and its commands)
# and each command inside.
#
#   scripts/bench-lua.sh [REQUESTS] [CLIENTS]     # default 200000 requests, 50 clients
#   CLIENTS=1 gives one request at a time, as at human pace (each pays its own read, write
#   and wake-up).
#
# The move script is run unchanged but for its compare-and-set: every request moves the same
# game (a benchmark cannot know the next version), so `expected` is taken from the game
# itself. Everything else (seat, move id list kept at 32, budget, state, log append with
# trim, publish, lifetime refresh) runs as in a real move.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-200000}
clients=${2:-50}

work=$(mktemp -d)
redis_pid=""
cleanup() {
  [[ -n "$redis_pid" ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

port=""
while [[ -z "$port" ]]; do
  p=$((20000 + SRANDOM % 12000))
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || port=$p
done
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  --logfile "$work/redis.log" &
redis_pid=$!
r() { redis-cli -p "$port" "$@"; }
until r ping >/dev/null 2>&1; do sleep 0.1; done

# A real game's state and event, as the chaos run's Redis held them.
state='{"board":"......O.X","turn":"O","status":"playing","round":198,"players":{"X":"Player-awes","O":"Player-hruv"},"result":null,"rematch":{"X":false,"O":false},"moves":[6,8],"score":{"X":103,"O":72,"draws":22},"began":1867,"moved":1869}'
event='{"type":"moved","game":"vwwhqg72fk","version":1878,"mark":"O","cell":1,"state":{"board":".O.X.....","turn":"X","status":"playing","round":199,"players":{"X":"Player-awes","O":"Player-hruv"},"result":null,"rematch":{"X":false,"O":false},"moves":[3,1],"score":{"X":103,"O":73,"draws":22},"began":1876,"moved":1878}}'
game='ttt:game:{vwwhqg72fk}'
keys=("$game" "$game:log" "$game:chat" "$game:presence")
channel="$game:events"
# A subscriber, as an instance would be (a publish to nobody costs less).
redis-cli -p "$port" subscribe "$channel" >/dev/null &
sub_pid=$!

# As the server loads it: after lobby_record.lua (used only with a lobby entry, not here).
move_sha=$(cat server/src/store/scripts/lobby_record.lua server/src/store/scripts/transition.lua |
  sed -e 's/^if cur\[1\] ~= ARGV\[1\] then$/if false then/' \
    -e "s/tonumber(ARGV\[1\]) + 1/tonumber(cur[1]) + 1/" | r -x script load)
grep -q '^if cur\[1\] ~= ARGV\[1\] then$' server/src/store/scripts/transition.lua ||
  { echo "bench-lua: transition.lua's compare-and-set changed; update this script" >&2; exit 1; }
# The same commands a regular move sends, with arguments of the same sizes, and no logic.
mids=$(printf ',%s=%s' $(for i in $(seq 1 32); do printf '703433332d37%04d %d ' "$i" $((1800 + i)); done))
plain_sha=$(r script load "
redis.call('HMGET', KEYS[1], 'v', 'x', 'o', 'm:p-x', 'r:p-x', 'e', 't')
redis.call('TIME')
redis.call('HSET', KEYS[1], 'r:p-x', '1796607128973393', 'v', '1869', 's', ARGV[1], 'm:p-x', ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '500', '*', 'e', ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return {'ok', '1869'}")

reset_game() {
  r del "${keys[@]}" >/dev/null
  r hset "$game" v 1 x p-x o p-o s "$state" >/dev/null
}

stat_cpu() { awk '{print $14 + $15}' "/proc/$redis_pid/stat"; }
hz=$(getconf CLK_TCK)

# run NAME ARGS...: one redis-benchmark of ARGS, and what it cost Redis.
run() {
  local name=$1
  shift
  r config resetstat >/dev/null
  local cpu0 perf_pid="" t0 t1
  cpu0=$(stat_cpu)
  if perf stat -e raw_syscalls:sys_enter -x, -p "$redis_pid" -o "$work/perf" true 2>/dev/null; then
    perf stat -e raw_syscalls:sys_enter -x, -p "$redis_pid" -o "$work/perf" &
    perf_pid=$!
    sleep 0.3
  fi
  t0=$(date +%s.%N)
  redis-benchmark -p "$port" -n "$requests" -c "$clients" -q "$@" >"$work/out" 2>&1
  t1=$(date +%s.%N)
  local calls syscalls="n/a"
  if [[ -n "$perf_pid" ]]; then
    kill -INT "$perf_pid"
    wait "$perf_pid" 2>/dev/null || true
    syscalls=$(awk -F, '/raw_syscalls/ {printf "%.2f", $1 / '"$requests"'}' "$work/perf")
  fi
  local cpu1
  cpu1=$(stat_cpu)
  local stats
  stats=$(r info commandstats | tr -d '\r')
  calls=$(awk -v n="$requests" -v a="$cpu0" -v b="$cpu1" -v hz="$hz" -v t0="$t0" -v t1="$t1" \
    'BEGIN { printf "%8.0f req/s  %6.2f CPU µs/req", n / (t1 - t0), (b - a) * 1e6 / hz / n }')
  printf '%-22s %s  %5s syscalls/req  exec µs/call:' "$name" "$calls" "$syscalls"
  echo "$stats" | awk -F'[:,=]' '/^cmdstat_/ { sub("cmdstat_", "", $1); t[$1] = $7 }
    END {
      n = split("evalsha hmget time hset xadd publish pexpire ping", order, " ")
      for (i = 1; i <= n; i++) if (order[i] in t) printf " %s %.2f", order[i], t[order[i]]
    }'
  echo
}

echo "redis-benchmark -n $requests -c $clients against $(redis-server --version | awk '{print $3}'), one game, one subscriber"
reset_game
run "move script" -r 1000000000 evalsha "$move_sha" 4 "${keys[@]}" 1 p-x holds x "$state" "$event" \
  "$channel" 3600000 500 __rand_int__ 1 1000000000 32 PUBLISH
r hget "$game" v | awk '{print "  (the game is now at version " $1 ")"}'
# The same without a move id (no list to search, append to and trim), then without a budget.
reset_game
run "  without move id" evalsha "$move_sha" 4 "${keys[@]}" 1 p-x holds x "$state" "$event" \
  "$channel" 3600000 500 '' 1 1000000000 32 PUBLISH
reset_game
run "  without budget" -r 1000000000 evalsha "$move_sha" 4 "${keys[@]}" 1 p-x holds x "$state" \
  "$event" "$channel" 3600000 500 __rand_int__ '' 0 32 PUBLISH
reset_game
run "commands only, Lua" evalsha "$plain_sha" 2 "${keys[0]}" "${keys[1]}" "$state" "$event" \
  "$mids" "$channel"
reset_game
run "HMGET alone" hmget "$game" v x o m:p-x r:p-x e t
run "HSET alone" hset "$game" r:p-x 1796607128973393 v 1869 s "$state" m:p-x "$mids"
run "XADD alone" xadd "${keys[1]}" MAXLEN '~' 500 '*' e "$event"
run "PUBLISH alone" publish "$channel" "$event"
run "PING alone" ping
kill "$sub_pid" 2>/dev/null || true
