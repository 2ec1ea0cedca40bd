#!/usr/bin/env bash
# `make bench`: release binaries, the whole stack against a seeded benchmark database, the
# guide's load mix (closed and open loop, single operations, then without the cache), the
# report in bench/results/<date>.{md,json,svg}; everything it started is stopped at the end.
#
#   BENCH_DURATION=20 BENCH_CONNECTIONS=64 BENCH_RATES="500 1000 2000" make bench
#   BENCH_OPEN_DURATION=60 make bench   # longer open-loop runs (see open_duration below)
#   BENCH_PROFILE=1 make bench   # only a profile (perf) of the gateway and chat under the mix
#   BENCH_PROFILE=1 BENCH_PROFILE_CALLGRAPH=dwarf make bench   # with callers (bigger, slower)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rel="$root/target/release"
tmp="$root/bench/tmp"
mkdir -p "$tmp"

duration=${BENCH_DURATION:-20}
# The open loop's goal is a p99: at 2,000/s of the mix, 20 s hold 4,000 sends, so their p99 is
# the 40th slowest and moved 6–9 ms between runs of the same binaries. BENCH_OPEN_DURATION=60
# holds 12,000, but the three minutes of lighter load let windows expire, so the running
# system's mix after them starts colder (report 2026-12-01-b: hit rate 96.5 % against 99.6 %
# after 20 s runs); the default keeps the runs as every report before measured them.
open_duration=${BENCH_OPEN_DURATION:-$duration}
single=${BENCH_SINGLE_DURATION:-8}
connections=${BENCH_CONNECTIONS:-64}
rates=${BENCH_RATES:-500 1000 2000}
date=$(date -u +%Y-%m-%d)
out=${BENCH_OUT:-bench/results/$date}

# The benchmark database: DATABASE_URL's server, database dream_bench.
base=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/dream}
export DATABASE_URL=${BENCH_DATABASE_URL:-${base%/*}/dream_bench}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export REDIS_KEY_PREFIX=${BENCH_REDIS_PREFIX:-dream-bench}

echo "── building release binaries"
cargo build --release --locked --bins
scripts/local-services.sh ensure
started_services=$( [[ -f .dev/started ]] && cat .dev/started || true )

echo "── benchmark database ${DATABASE_URL}"
"$rel/dreamctl" migrate --create-database >/dev/null
"$rel/dreamctl" seed --if-empty

# The stack: release, warnings only, ports of their own (make dev may be running).
export DREAM_ENV=development RUST_LOG=${BENCH_RUST_LOG:-warn}
export GATEWAY_PORT=9080 AUTH_PORT=9081 CHAT_PORT=9082 AI_PORT=9083 MEDIA_PORT=9084
export AUTH_URLS=http://127.0.0.1:9081 CHAT_URLS=http://127.0.0.1:9082 AI_URLS=http://127.0.0.1:9083
export MEDIA_URLS=http://127.0.0.1:9084 MEDIA_URL=http://127.0.0.1:9084 MEDIA_STORE_URL="$tmp/media"
# Tokens outlive the whole benchmark (an hour, the most allowed); limits stay on (their cost is
# part of the path) but high: the load generator is 2,000 users behind one address, so the cap
# on one address's requests at once (64) would refuse its open-loop bursts with 429s.
export ACCESS_TOKEN_TTL_S=3600 RATE_LIMIT_IP_PER_MIN=100000000 RATE_LIMIT_USER_PER_MIN=100000000
export GATEWAY_MAX_PER_CLIENT=100000
export LOGIN_LIMIT_PER_IP_PER_MIN=100000

pids=()
names=(gateway auth chat ai media)
stop_stack() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_stack
  [[ -z $started_services ]] || scripts/local-services.sh stop
}
trap cleanup EXIT INT TERM

start_stack() { # extra env assignments
  local name
  for name in auth chat ai media gateway; do
    env "$@" "$rel/dream-$name" >"$tmp/$name.log" 2>&1 &
    pids+=($!)
    eval "pid_$name=$!"
  done
  for port in 9080 9081 9082 9083 9084; do
    for _ in $(seq 1 100); do
      curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
      sleep 0.1
    done
    curl -fs "http://127.0.0.1:$port/health" >/dev/null || { echo "port $port did not come up" >&2; exit 1; }
  done
}

services() { # the admin listeners (port + 1000) serve /metrics
  local n port=10080 args=()
  for n in "${names[@]}"; do
    local var="pid_$n"
    args+=(--service "$n=http://127.0.0.1:$port@${!var}")
    port=$((port + 1))
  done
  echo "${args[@]}"
}

results="$tmp/results.json"
rm -f "$results"
bench() { # label cache args...
  local label=$1 cache=$2
  shift 2
  # shellcheck disable=SC2046
  "$rel/dream-bench" run --gateway "${target:-http://127.0.0.1:9080}" --tokens "$tmp/tokens.json" \
    --label "$label" --cache "$cache" --out "${BENCH_RESULTS:-$results}" $(services) "$@"
}

echo "── stack with the cache"
start_stack
# Tokens live an hour: a login from the last 40 minutes is reused.
if [[ -z $(find "$tmp/tokens.json" -mmin -40 2>/dev/null) ]]; then
  echo "── logging the seeded users in"
  "$rel/dream-bench" login --gateway http://127.0.0.1:9080 --out "$tmp/tokens.json"
fi
if [[ -n ${BENCH_PROFILE:-} ]]; then
  command -v perf >/dev/null || { echo "perf is needed: sudo apt-get install -y linux-perf" >&2; exit 1; }
  BENCH_RESULTS="$tmp/profile-run.json" bench "profile" true --mode closed --connections "$connections" --duration 15 --warmup 3 &
  load=$!
  sleep 5
  perfs=()
  for svc in gateway chat; do
    var="pid_$svc"
    perf record -F 999 --call-graph "${BENCH_PROFILE_CALLGRAPH:-fp}" -p "${!var}" -o "$tmp/perf-$svc.data" -- sleep 8 >/dev/null 2>&1 &
    perfs+=($!)
  done
  wait "$load" "${perfs[@]}"
  for svc in gateway chat; do
    perf report -i "$tmp/perf-$svc.data" --stdio --no-children --percent-limit 0.7 -g none 2>/dev/null \
      | grep -v '^$' > "$tmp/profile-$svc.txt" || true
    echo "── $svc: bench/tmp/profile-$svc.txt"
    grep -E '^ +[0-9]' "$tmp/profile-$svc.txt" | head -25
  done
  exit 0
fi
# The first run starts on a cold Redis: its longer warm-up fills the caches part of the way
# (the Zipf tail is first touched minutes later); the mix's last run measures a running system.
bench "mix, closed loop" true --mode closed --connections "$connections" --duration "$duration" --warmup 20
for op in conversation matches photos send; do
  bench "$op only" true --mode closed --connections "$connections" --duration "$single" --warmup 2 --mix "$op=1"
done
# The ceiling: the cheapest request there is, straight to chat (the machine's calibration).
target=http://127.0.0.1:9082 bench "ceiling: catalogue straight to chat" true --mode closed --connections "$connections" --duration "$single" --warmup 2 --mix catalogue=1
target=http://127.0.0.1:9082 bench "conversation straight to chat" true --mode closed --connections "$connections" --duration "$single" --warmup 2 --mix conversation=1
# Open loop after the closed-loop runs of the mix: a rate past what the machine serves leaves a
# backlog behind it (gone within the 10 s warm-up of the run after it).
for rate in $rates; do
  bench "mix, open loop, $rate/s" true --mode open --rate "$rate" --duration "$open_duration" --warmup 3
done
# The mix again, on the system as the runs above left it (minutes of traffic): the hit rate a
# running system has, where the first run's is a cold Redis filling. 10 s of warm-up, as the
# goal says; a backlog of the open loop is gone by then.
bench "mix, closed loop, running system" true --mode closed --connections "$connections" --duration "$duration" --warmup 10
# The hops come after the mix runs: minutes of catalogue and conversation alone before the
# running system's mix let the galleries of the Zipf tail expire and made its hit rate depend
# on how many hop runs there were (report 2026-12-01-d: 96.5 % with the floor's five runs
# before it, against 99.2 % in 2026-12-01-c).
# The gateway's hop against nginx's proxy_pass with a keep-alive upstream (the reference, when
# nginx is installed), alternated in pairs: this machine's speed drifts within minutes, so the
# report compares each pair's two runs, made back to back.
hop() { # pair operation
  bench "hop $1: $2 through the gateway" true --mode closed --connections "$connections" --duration "$single" --warmup 2 --mix "$2=1"
  # The floor: the same request through a bare actix-web + hyper proxy, the gateway's two
  # crates doing nothing else; the report sets the gateway's CPU against it.
  target=http://127.0.0.1:9091 bench "hop $1: $2 through the actix-web floor" true --mode closed --connections "$connections" --duration "$single" --warmup 2 --mix "$2=1" \
    --process "floor=$floor_pid"
  [[ -n $nginx ]] || return 0
  # nginx's workers' CPU is recorded beside the gateway's: the report puts both per request.
  local workers
  workers=$(pgrep -d, -P "$(cat "$tmp/nginx/nginx.pid")" || true)
  [[ -n $workers ]] || echo "── nginx's workers not found: their CPU is not recorded" >&2
  target=http://127.0.0.1:9090 bench "hop $1: $2 through nginx proxy_pass" true --mode closed --connections "$connections" --duration "$single" --warmup 2 --mix "$2=1" \
    ${workers:+--process "nginx=$workers"}
}
"$rel/dream-bench" floor --listen 127.0.0.1:9091 --upstream 127.0.0.1:9082 >"$tmp/floor.log" 2>&1 &
floor_pid=$!
pids+=("$floor_pid")
for _ in $(seq 1 100); do
  curl -fs http://127.0.0.1:9091/health >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs http://127.0.0.1:9091/health >/dev/null || { echo "the floor (port 9091) did not come up: bench/tmp/floor.log" >&2; exit 1; }
nginx=$(command -v nginx || true)
if [[ -n $nginx ]]; then
  mkdir -p "$tmp/nginx"
  cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx; proxy_temp_path $tmp/nginx; fastcgi_temp_path $tmp/nginx;
  uwsgi_temp_path $tmp/nginx; scgi_temp_path $tmp/nginx;
  upstream chat { server 127.0.0.1:9082; keepalive 64; }
  server {
    listen 127.0.0.1:9090;
    location / { proxy_pass http://chat; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
  nginx -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx"
else
  echo "── nginx is not installed: no reference hop (make bench-tools installs it)"
fi
for pair in 1 2 3; do hop "$pair" catalogue; done
# The conversation too, on the cache the runs above warmed (the "conversation only" run above
# follows a cold Redis): the goal's figure through the gateway, beside nginx's, in two pairs.
for pair in 1 2; do hop "$pair" conversation; done
[[ -z $nginx ]] || kill "$(cat "$tmp/nginx/nginx.pid")" 2>/dev/null || true
stop_stack

echo "── stack without the cache (PostgreSQL alone)"
start_stack CACHE_ENABLED=false
bench "mix, closed loop, no cache" false --mode closed --connections "$connections" --duration "$duration" --warmup 3
bench "mix, open loop, no cache, ${rates%% *}/s" false --mode open --rate "${rates%% *}" --duration "$duration" --warmup 3
stop_stack

"$rel/dream-bench" report --results "$results" --out "$out"
