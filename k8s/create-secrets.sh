#!/usr/bin/env bash
# Creates or updates the dream-secrets Secret the manifests read, from the files of
# deploy/gen-keys.sh (run first if they are missing). Nothing secret lives in k8s/.
#
#   k8s/create-secrets.sh dev      # namespace dream-dev: the in-cluster PostgreSQL and Redis, and
#                                  # a self-signed certificate for dream.localhost (dream-tls)
#   DATABASE_URL=postgres://dream:…@pooler:6432/dream \
#   DATABASE_DIRECT_URL=postgres://dream:…@primary:5432/dream \
#   REDIS_URL=rediss://:…@redis:6379 k8s/create-secrets.sh prod
#
# OPENAI_API_KEY and MEDIA_API_KEY are added when set in the environment. --print writes the
# objects to stdout instead of applying them (no cluster needed; scripts/check-k8s.sh uses it).
# After a change, `kubectl -n NAMESPACE rollout restart deployment` makes the pods read it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
overlay=${1:-}
print=false
[ "${2:-}" = --print ] && print=true
case $overlay in
  dev) namespace=dream-dev ;;
  prod) namespace=dream ;;
  *) echo "usage: $0 dev|prod [--print]" >&2; exit 2 ;;
esac
dir=${DREAM_SECRETS_DIR:-$root/deploy/secrets}
if [ ! -s "$dir/jwt-ed25519.pem" ] || [ ! -s "$dir/postgres-password" ]; then
  DREAM_SECRETS_DIR=$dir "$root/deploy/gen-keys.sh" >&2
fi

args=(
  --from-file=JWT_PRIVATE_KEY_PEM="$dir/jwt-ed25519.pem"
  --from-file=JWT_PUBLIC_KEY_PEM="$dir/jwt-ed25519.pub.pem"
)
if [ "$overlay" = dev ]; then
  password=$(cat "$dir/postgres-password")
  # No pooler in dev: the services and dreamctl both talk to the in-cluster server.
  args+=(
    --from-literal=POSTGRES_PASSWORD="$password"
    --from-literal=DATABASE_URL="postgres://dream:$password@postgres:5432/dream"
    --from-literal=DATABASE_DIRECT_URL="postgres://dream:$password@postgres:5432/dream"
    --from-literal=REDIS_URL=redis://redis:6379
  )
else
  for var in DATABASE_URL DATABASE_DIRECT_URL REDIS_URL; do
    [ -n "${!var:-}" ] || { echo "$var is needed for prod (see the header of $0)" >&2; exit 2; }
    args+=(--from-literal="$var=${!var}")
  done
fi
for var in OPENAI_API_KEY MEDIA_API_KEY; do
  [ -z "${!var:-}" ] || args+=(--from-literal="$var=${!var}")
done

objects() {
  kubectl create namespace "$namespace" --dry-run=client -o yaml
  echo ---
  kubectl -n "$namespace" create secret generic dream-secrets "${args[@]}" --dry-run=client -o yaml
  if [ "$overlay" = dev ]; then
    # A browser or curl trusts it with --cacert; prod's comes from cert-manager.
    if [ ! -s "$dir/dev-tls.crt" ]; then
      (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
        -subj /CN=dream.localhost -addext subjectAltName=DNS:dream.localhost \
        -keyout "$dir/dev-tls.key" -out "$dir/dev-tls.crt" 2>/dev/null)
    fi
    echo ---
    kubectl -n "$namespace" create secret tls dream-tls --cert="$dir/dev-tls.crt" --key="$dir/dev-tls.key" \
      --dry-run=client -o yaml
  fi
}
if $print; then
  objects
else
  objects | kubectl apply -f -
fi
