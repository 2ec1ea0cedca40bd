#!/usr/bin/env bash
# `make dev`, after `make db`: runs the gateway and the four services, each log line prefixed by its
# name, says "ready at http://…" once every one of them answers, and runs until Ctrl-C; then stops
# them all gracefully, says "stopped" (and stops the PostgreSQL/Redis `make services` started).
#
# Logs are for people here: one short colored line per request (LOG_FORMAT=compact; `json` is what
# production writes, `pretty` spreads each event over several lines). The gateway logs every
# request; the services log only the ones that went wrong (RUST_LOG=info,access=warn), so a
# request is one line, and a failed one is followed by the line of the service that refused it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/debug"
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/dream} REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export LOG_FORMAT=${LOG_FORMAT:-compact}
# actix's own worker start/stop lines say nothing a person needs here.
gateway_log=${RUST_LOG:-info,actix_server=warn}
services_log=${RUST_LOG:-info,actix_server=warn,access=warn}
export AUTH_PORT=${AUTH_PORT:-8081} CHAT_PORT=${CHAT_PORT:-8082} AI_PORT=${AI_PORT:-8083} MEDIA_PORT=${MEDIA_PORT:-8084} GATEWAY_PORT=${GATEWAY_PORT:-8080}
export AUTH_URLS=${AUTH_URLS:-http://127.0.0.1:$AUTH_PORT} CHAT_URLS=${CHAT_URLS:-http://127.0.0.1:$CHAT_PORT} AI_URLS=${AI_URLS:-http://127.0.0.1:$AI_PORT}
export MEDIA_URLS=${MEDIA_URLS:-http://127.0.0.1:$MEDIA_PORT} MEDIA_URL=${MEDIA_URL:-http://127.0.0.1:$MEDIA_PORT}
# Photos the characters send are kept here (any object_store URL works, e.g. s3://bucket/dream).
export MEDIA_STORE_URL=${MEDIA_STORE_URL:-$root/.dev/media}
# The web app, built by `make web` (`make dev` builds it first); the gateway serves it at /.
if [ -z "${WEB_DIR:-}" ] && [ -f "$root/web/dist/index.html" ]; then export WEB_DIR=$root/web/dist; fi
if [ -n "${WEB_DIR:-}" ]; then web_note="(from $WEB_DIR)"; else web_note="(not built: make web)"; fi
# Colors only for a terminal: written to a file or a pipe, the processes' lines come without them
# too (they write into this script's pipes, so they cannot tell for themselves).
[[ -t 1 ]] || export NO_COLOR=1
if [[ -z ${NO_COLOR:-} ]]; then bold=$'\e[1m' green=$'\e[32m' red=$'\e[31m' off=$'\e[0m'; else bold='' green='' red='' off=''; fi

names=() pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "Stopping: letting requests in flight finish…"
  # Ctrl-C reached every process of the terminal already; TERM covers `kill` of this script.
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  local status=0 i
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" 2>/dev/null || { echo "${red}${names[$i]} exited with status $?${off}"; status=1; }
  done
  wait 2>/dev/null || true # the log prefixers, once their process's output is closed
  "$root/scripts/local-services.sh" stop
  echo "${bold}Dream stopped.${off}"
  exit "$status"
}
trap stop INT TERM EXIT

run() { # name binary log-filter
  # The prefixer ignores Ctrl-C: it must outlive its process to pass on the last lines
  # ("stopping", "stopped"). `$!` is the process itself, not the prefixer.
  RUST_LOG=$3 "$bin/$2" > >(trap '' INT; exec sed -u "s/^/[$1] /") 2>&1 &
  names+=("$1") pids+=($!)
}

run auth dream-auth "$services_log"
run chat dream-chat "$services_log"
run ai dream-ai "$services_log"
run media dream-media "$services_log"
run gateway dream-gateway "$gateway_log"

# Ready when each process's admin listener says so (the gateway's /ready also checks that it
# reaches every service).
ready() { curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$1/ready" 2>/dev/null; }
started=$SECONDS
for port in $AUTH_PORT $CHAT_PORT $AI_PORT $MEDIA_PORT $GATEWAY_PORT; do
  until ready $((port + 1000)); do
    for i in "${!pids[@]}"; do
      if ! kill -0 "${pids[$i]}" 2>/dev/null; then
        echo "${red}${names[$i]} exited before it was ready: see its lines above.${off}" >&2
        exit 1
      fi
    done
    if (( SECONDS - started > 60 )); then
      echo "${red}not ready after 60 s: admin port $((port + 1000)) does not answer /ready${off}" >&2
      exit 1
    fi
    sleep 0.2
  done
done

cat <<TXT

Dream (development) — database ${DATABASE_URL}, Redis ${REDIS_URL}
  web app  http://127.0.0.1:${GATEWAY_PORT}/   ${web_note}
           demo account demo@example.com / dream-demo-2026
  gateway  http://127.0.0.1:${GATEWAY_PORT}   the one public entry
  auth     http://127.0.0.1:${AUTH_PORT}   chat http://127.0.0.1:${CHAT_PORT}   ai http://127.0.0.1:${AI_PORT}
  media    http://127.0.0.1:${MEDIA_PORT}   photos in ${MEDIA_STORE_URL}
  admin    each port + 1000 (gateway http://127.0.0.1:$((GATEWAY_PORT + 1000))/ready): /health /ready /metrics

Try:
  TOKEN=\$(curl -s -X POST http://127.0.0.1:${GATEWAY_PORT}/api/v1/auth/login \\
       -H 'content-type: application/json' \\
       -d '{"email":"demo@example.com","password":"dream-demo-2026"}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -s http://127.0.0.1:${GATEWAY_PORT}/api/v1/conversations/sophia/messages -H "authorization: Bearer \$TOKEN"
  curl -s -X POST http://127.0.0.1:${GATEWAY_PORT}/api/v1/conversations/sophia/messages -H "authorization: Bearer \$TOKEN" \\
       -H 'content-type: application/json' -d '{"content":"Bonsoir Sophia, tu lis quoi en ce moment ?"}'
  curl -N -X POST http://127.0.0.1:${GATEWAY_PORT}/api/v1/conversations/sophia/reply -H "authorization: Bearer \$TOKEN" \\
       -H 'accept: text/event-stream'
  curl -s -X POST http://127.0.0.1:${GATEWAY_PORT}/api/v1/photos/sophia/generate -H "authorization: Bearer \$TOKEN" \\
       -H 'content-type: application/json' -d '{"prompt":"un coucher de soleil sur la plage"}'
  curl -s http://127.0.0.1:${GATEWAY_PORT}/api/v1/photos/sophia -H "authorization: Bearer \$TOKEN"

Dashboard:  target/debug/dreamctl monitor     (health, rates, errors, latency; fits 80×24)
Data:       make seed (2,000 users, 2 M messages; the demo account is kept)
Ctrl-C stops everything.
TXT
echo "${green}${bold}Dream is ready at http://127.0.0.1:${GATEWAY_PORT}${off} (all five processes answer; $((SECONDS - started)) s)"
status=0
wait -n "${pids[@]}" || status=$?
# A process that stops cleanly was most likely asked to (Ctrl-C reaches every process of the
# terminal, and may do so before this script's own trap runs); one that failed is said in red.
if [[ $status -eq 0 ]]; then
  echo "a process stopped: stopping the others"
else
  echo "${red}a process exited with status ${status}: stopping the others${off}" >&2
fi
