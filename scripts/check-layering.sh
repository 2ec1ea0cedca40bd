#!/usr/bin/env bash
# One door into the data: services reach PostgreSQL and Redis only through db-core's domain
# stores (`kit.store.conversations()...`). No service depends on diesel or redis, names a query
# module, opens a connection, or sends a raw cache command.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
for toml in services/*/Cargo.toml; do
  if grep -nE '^(diesel|diesel-async|diesel_migrations|redis|bb8-redis|bb8)\b' "$toml"; then
    echo "error: $toml names diesel, redis or a pool; call db-core's domain stores instead" >&2
    bad=1
  fi
  if grep -nE 'db-core.*features.*testing' "$toml"; then
    echo "error: $toml opens db-core's testing door" >&2
    bad=1
  fi
done
if grep -rnE 'queries::|\.db\(\)|\.db\.(read|write)|\.cache\(\)\.|redis::' services/*/src; then
  echo "error: a service reaches past the domain stores (above)" >&2
  bad=1
fi
exit $bad
