#!/usr/bin/env bash
# `make dev`, after `make db`: runs the gateway and the four services, each log line prefixed by its
# name, until Ctrl-C; then stops them all (and the PostgreSQL/Redis `make services` started).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/debug"
export RUST_LOG=${RUST_LOG:-info}
export AUTH_PORT=${AUTH_PORT:-8081} CHAT_PORT=${CHAT_PORT:-8082} AI_PORT=${AI_PORT:-8083} MEDIA_PORT=${MEDIA_PORT:-8084} GATEWAY_PORT=${GATEWAY_PORT:-8080}
export AUTH_URLS=${AUTH_URLS:-http://127.0.0.1:$AUTH_PORT} CHAT_URLS=${CHAT_URLS:-http://127.0.0.1:$CHAT_PORT} AI_URLS=${AI_URLS:-http://127.0.0.1:$AI_PORT}
export MEDIA_URLS=${MEDIA_URLS:-http://127.0.0.1:$MEDIA_PORT} MEDIA_URL=${MEDIA_URL:-http://127.0.0.1:$MEDIA_PORT}
# Photos the characters send are kept here (any object_store URL works, e.g. s3://bucket/dream).
export MEDIA_STORE_URL=${MEDIA_STORE_URL:-$root/.dev/media}
# The web app, built by `make web` (`make dev` builds it first); the gateway serves it at /.
if [ -z "${WEB_DIR:-}" ] && [ -f "$root/web/dist/index.html" ]; then export WEB_DIR=$root/web/dist; fi
if [ -n "${WEB_DIR:-}" ]; then web_note="(from $WEB_DIR)"; else web_note="(not built: make web)"; fi
pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$root/scripts/local-services.sh" stop
}
trap stop INT TERM EXIT

run() { # name binary
  "$bin/$2" 2>&1 | sed -u "s/^/[$1] /" &
  pids+=($!)
}

run auth dream-auth
run chat dream-chat
run ai dream-ai
run media dream-media
run gateway dream-gateway

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
  curl -s -X POST http://127.0.0.1:${GATEWAY_PORT}/api/v1/conversations/sophia/messages -H "authorization: Bearer \$TOKEN" \
       -H 'content-type: application/json' -d '{"content":"Bonsoir Sophia, tu lis quoi en ce moment ?"}'
  curl -N -X POST http://127.0.0.1:${GATEWAY_PORT}/api/v1/conversations/sophia/reply -H "authorization: Bearer \$TOKEN" \
       -H 'accept: text/event-stream'
  curl -s -X POST http://127.0.0.1:${GATEWAY_PORT}/api/v1/photos/sophia/generate -H "authorization: Bearer \$TOKEN" \
       -H 'content-type: application/json' -d '{"prompt":"un coucher de soleil sur la plage"}'
  curl -s http://127.0.0.1:${GATEWAY_PORT}/api/v1/photos/sophia -H "authorization: Bearer \$TOKEN"

Dashboard:  target/debug/dreamctl monitor     (pools, Redis, latency, slow queries)
Ctrl-C stops everything.
TXT
wait
