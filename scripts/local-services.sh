#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer where DATABASE_URL / REDIS_URL point (default
# 127.0.0.1:5432 and 127.0.0.1:6379). When nothing listens there, starts local servers from the
# installed binaries into .dev/ (and remembers that it did, so `stop` stops only those).
# When the binaries are missing, says exactly what to install.
#
#   scripts/local-services.sh ensure   # start what is missing
#   scripts/local-services.sh stop     # stop what `ensure` started
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.dev"
db_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/dream}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379}

# host and port out of a URL like scheme://[user[:pw]@]host[:port][/...]
host_of() { local h=${1#*://}; h=${h##*@}; h=${h%%/*}; h=${h%%\?*}; echo "${h%%:*}"; }
port_of() { local h=${1#*://}; h=${h##*@}; h=${h%%/*}; h=${h%%\?*}; [[ $h == *:* ]] && echo "${h##*:}" || echo "$2"; }

listening() { timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

wait_for() { # host port what
  for _ in $(seq 1 50); do listening "$1" "$2" && return 0; sleep 0.2; done
  echo "error: $3 did not come up on $1:$2" >&2; return 1
}

pg_bin() {
  local b
  for b in "$(command -v "$1" 2>/dev/null)" /usr/lib/postgresql/*/bin/"$1" /usr/local/pgsql/bin/"$1"; do
    [[ -n $b && -x $b ]] && { echo "$b"; return 0; }
  done
  return 1
}

as_pg_user() { # PostgreSQL refuses to run as root
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_postgres() {
  local host port
  host=$(host_of "$db_url"); port=$(port_of "$db_url" 5432)
  if listening "$host" "$port"; then echo "postgres: up on $host:$port"; return 0; fi
  if [[ $host != 127.0.0.1 && $host != localhost ]]; then
    echo "error: PostgreSQL at $host:$port does not answer, and it is not local: start it or fix DATABASE_URL" >&2; return 1
  fi
  local initdb pg_ctl
  if ! initdb=$(pg_bin initdb) || ! pg_ctl=$(pg_bin pg_ctl); then
    echo "error: nothing listens on $host:$port and no PostgreSQL server is installed." >&2
    echo "       Install one:  sudo apt-get install -y postgresql postgresql-contrib   (Debian/Ubuntu)" >&2
    echo "                     brew install postgresql@15                             (macOS)" >&2
    return 1
  fi
  if [[ $(id -u) == 0 ]] && ! id postgres >/dev/null 2>&1; then
    echo "error: running as root and there is no 'postgres' user to run PostgreSQL as" >&2; return 1
  fi
  local data="$state/postgres"
  mkdir -p "$state"
  if [[ ! -f $data/PG_VERSION ]]; then
    echo "postgres: initialising a local cluster in $data"
    mkdir -p "$data"; [[ $(id -u) == 0 ]] && chown postgres "$data"
    as_pg_user "$initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  fi
  [[ $(id -u) == 0 ]] && chown -R postgres "$data"
  echo "postgres: starting on $host:$port (data in $data)"
  as_pg_user "$pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $port -k $data -c listen_addresses=$host -c max_connections=100" start >/dev/null
  echo postgres >> "$state/started"
  wait_for "$host" "$port" PostgreSQL
}

ensure_redis() {
  local host port
  host=$(host_of "$redis_url"); port=$(port_of "$redis_url" 6379)
  if listening "$host" "$port"; then echo "redis: up on $host:$port"; return 0; fi
  if [[ $host != 127.0.0.1 && $host != localhost ]]; then
    echo "error: Redis at $host:$port does not answer, and it is not local: start it or fix REDIS_URL" >&2; return 1
  fi
  if ! command -v redis-server >/dev/null; then
    echo "error: nothing listens on $host:$port and redis-server is not installed." >&2
    echo "       Install it:  sudo apt-get install -y redis-server   (Debian/Ubuntu)" >&2
    echo "                    brew install redis                     (macOS)" >&2
    return 1
  fi
  mkdir -p "$state/redis"
  echo "redis: starting on $host:$port"
  redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly no \
    --dir "$state/redis" --pidfile "$state/redis/redis.pid" --logfile "$state/redis/redis.log"
  echo redis >> "$state/started"
  wait_for "$host" "$port" Redis
}

stop_started() {
  [[ -f $state/started ]] || return 0
  if grep -qx postgres "$state/started"; then
    echo "postgres: stopping the local cluster"
    as_pg_user "$(pg_bin pg_ctl)" -D "$state/postgres" -m fast stop >/dev/null || true
  fi
  if grep -qx redis "$state/started" && [[ -f $state/redis/redis.pid ]]; then
    echo "redis: stopping the local server"
    kill "$(cat "$state/redis/redis.pid")" 2>/dev/null || true
  fi
  rm -f "$state/started"
}

case ${1:-ensure} in
  ensure) ensure_postgres && ensure_redis ;;
  stop) stop_started ;;
  *) echo "usage: $0 ensure|stop" >&2; exit 2 ;;
esac
