#!/usr/bin/env bash
# Makes a deployment's own secrets in deploy/secrets/ (gitignored; DREAM_SECRETS_DIR puts them
# elsewhere): the Ed25519 pair that signs access tokens, the PostgreSQL password, and the env
# files deploy/compose.yaml reads. k8s/create-secrets.sh loads the same files into a cluster.
#
#   deploy/gen-keys.sh
#
# Secrets are made once and kept: running it again only rewrites the env files from them, since a
# new token key logs everyone out and a new password no longer matches an existing database
# volume. To rotate one, delete its file and run it again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${DREAM_SECRETS_DIR:-$here/secrets}
command -v openssl >/dev/null || { echo "openssl is needed: sudo apt-get install -y openssl" >&2; exit 1; }
umask 077
mkdir -p "$dir"

if [ ! -s "$dir/jwt-ed25519.pem" ]; then
  openssl genpkey -algorithm ed25519 -out "$dir/jwt-ed25519.pem"
  rm -f "$dir/jwt-ed25519.pub.pem"
fi
[ -s "$dir/jwt-ed25519.pub.pem" ] || openssl pkey -in "$dir/jwt-ed25519.pem" -pubout -out "$dir/jwt-ed25519.pub.pem"
# No trailing newline: these files are also read whole (kubectl create secret --from-file).
# Hex, so it can stand in a URL unescaped.
[ -s "$dir/postgres-password" ] || printf '%s' "$(openssl rand -hex 24)" > "$dir/postgres-password"

# The development pair is public: anyone could mint tokens. The services refuse it in production,
# but failing here says why before anything starts.
if cmp -s <(openssl pkey -pubin -in "$dir/jwt-ed25519.pub.pem") <(openssl pkey -pubin -in "$here/dev-keys/jwt-ed25519.pub.pem"); then
  echo "$dir holds the development key pair; delete jwt-ed25519*.pem there and run again" >&2
  exit 1
fi

# A PEM as one double-quoted env-file value: compose turns \n back into newlines.
pem_value() { printf '"%s"' "$(awk '{printf "%s\\n", $0}' "$1")"; }
password=$(cat "$dir/postgres-password")

# One file per need, so that each service gets only the secrets it uses (compose.yaml's env_file):
# the private key reaches auth alone, the database URL only the services that query it.
write() { # file, then its lines
  local file=$1
  shift
  { echo "# Made by deploy/gen-keys.sh from the files beside it; edits are overwritten."; printf '%s\n' "$@"; } > "$dir/$file"
}
write jwt-public.env "JWT_PUBLIC_KEY_PEM=$(pem_value "$dir/jwt-ed25519.pub.pem")"
write jwt-private.env "JWT_PRIVATE_KEY_PEM=$(pem_value "$dir/jwt-ed25519.pem")"
write postgres.env "POSTGRES_PASSWORD=$password"
write database.env "DATABASE_URL=postgres://postgres:$password@postgres:5432/dream"

# The AI provider settings are the operator's to edit: made once, never overwritten.
if [ ! -e "$dir/ai.env" ]; then
  cat > "$dir/ai.env" <<'EOF'
# The ai service's provider (README, configuration). builtin answers offline; for any
# OpenAI-compatible API (OpenAI, vLLM, Ollama, llama.cpp), uncomment and fill in:
AI_PROVIDER=builtin
# AI_PROVIDER=openai
# OPENAI_BASE_URL=https://api.openai.com/v1
# OPENAI_MODEL=gpt-4o-mini
# OPENAI_API_KEY=
EOF
fi

echo "Secrets in $dir:"
for f in "$dir"/*; do echo "  ${f##*/}"; done
