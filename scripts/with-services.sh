#!/usr/bin/env bash
# Runs a command with PostgreSQL and Redis up; stops afterwards whatever it had to start.
set -euo pipefail
here=$(dirname "$0")
started_before=$( [[ -f $here/../.dev/started ]] && cat "$here/../.dev/started" || true )
"$here/local-services.sh" ensure
cleanup() { [[ -z $started_before ]] && "$here/local-services.sh" stop; true; }
trap cleanup EXIT
"$@"
