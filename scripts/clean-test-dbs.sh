#!/usr/bin/env bash
# Drops the per-test databases a killed test run left behind, and the test templates
# (they are rebuilt on the next run).
set -euo pipefail
admin=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
command -v psql >/dev/null || { echo "psql not installed: nothing cleaned"; exit 0; }
psql "$admin" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'dream\_test\_%' OR datname LIKE 'dream\_tpl%'" |
  while read -r db; do
    psql "$admin" -qc "ALTER DATABASE \"$db\" IS_TEMPLATE false" -c "DROP DATABASE \"$db\" WITH (FORCE)"
    echo "dropped $db"
  done
