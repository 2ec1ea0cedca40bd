#!/usr/bin/env bash
# SQL and cache policy live in db-core: no service may depend on diesel or redis directly.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
for toml in services/*/Cargo.toml; do
  [[ -f $toml ]] || continue
  if grep -nE '^(diesel|diesel-async|diesel_migrations|redis|bb8-redis)\b' "$toml"; then
    echo "error: $toml names diesel or redis; call db-core instead" >&2
    bad=1
  fi
done
exit $bad
