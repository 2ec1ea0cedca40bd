#!/usr/bin/env bash
# `make dev`, after `make db`: runs the services that exist, each log line prefixed by its
# name, until Ctrl-C; then stops them all (and the PostgreSQL/Redis `make services` started).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/debug"
export RUST_LOG=${RUST_LOG:-info}
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

export AUTH_PORT=${AUTH_PORT:-8081} CHAT_PORT=${CHAT_PORT:-8082}
run auth dream-auth
run chat dream-chat

cat <<TXT

Dream (development) — database ${DATABASE_URL}, Redis ${REDIS_URL}
  auth     http://127.0.0.1:${AUTH_PORT}   (health: /health, ready: /ready, metrics: /metrics)
  chat     http://127.0.0.1:${CHAT_PORT}

Try:
  curl -s -X POST http://127.0.0.1:${AUTH_PORT:-8081}/api/v1/auth/login \\
       -H 'content-type: application/json' \\
       -d '{"email":"demo@example.com","password":"dream-demo-2026"}'
  # then, with TOKEN set to its access_token:
  curl -s http://127.0.0.1:${CHAT_PORT}/api/v1/conversations/sophia/messages -H "authorization: Bearer \$TOKEN"

The gateway (127.0.0.1:\${GATEWAY_PORT:-8080}), ai and media services join as they land.
Ctrl-C stops everything.
TXT
wait
