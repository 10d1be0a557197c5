# Sourced by the benchmark scripts (bench.sh, bench-wait.sh): they measure the server, not its
# abuse protection, so every budget and per-address cap a load generator would run into is
# lifted (all its connections come from a few loopback addresses). A new limit belongs here,
# or the benchmarks measure it instead of the server.
# shellcheck disable=SC2034  # bench_limits is used by the scripts that source this file
bench_limits=(MOVE_RATE=1000000 MOVE_BURST=1000000 MSG_RATE=1000000 MSG_BURST=1000000
  IP_CONN_RATE=1000000 IP_CONN_BURST=1000000 IP_SESSION_RATE=1000000
  IP_SESSION_BURST=1000000 CHAT_RATE=1000000 CHAT_BURST=1000000
  IP_PENDING_MAX=1000000 IP_WS_MAX=1000000 CREATE_RATE=1000000
  CREATE_BURST=1000000 IP_CREATE_RATE=1000000 IP_CREATE_BURST=1000000 RUST_LOG=warn)
