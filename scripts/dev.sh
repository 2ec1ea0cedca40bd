#!/usr/bin/env bash
# `make dev`, after `make db`: prints what is running and how to use it.
# The HTTP services (gateway, auth, chat, ai, media) are not written yet; until they are,
# `make dev` prepares the database and the tools and stops here.
set -euo pipefail
cat <<TXT

Dream's database is ready at ${DATABASE_URL} (migrated, demo characters loaded).
  demo account:  demo@example.com / dream-demo-2026
  try:           target/debug/dreamctl explain        # after: make seed
                 psql "${DATABASE_URL}" -c 'SELECT id, name FROM characters'

The HTTP services are not built yet; this target will start them behind the gateway
on 127.0.0.1:\${GATEWAY_PORT:-8080} once they land.
TXT
