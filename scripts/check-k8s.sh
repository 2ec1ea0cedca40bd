#!/usr/bin/env bash
# What can be checked of k8s/ without a cluster. Renders every Kustomize overlay, validates it
# offline against the Kubernetes schemas (kubernetes-validate, strict), then checks what a schema
# cannot:
# - every service (a dream-* binary of services/) has its Deployment, Service, HPA and PDB; its
#   liveness and readiness probes and its Prometheus annotations point at the admin port
#   (ADMIN_PORT), which its Service does not expose;
# - every container of every workload has CPU and memory requests and a memory limit, runs as
#   non-root on a read-only root filesystem;
# - the Ingress has a TLS block covering its hosts;
# - the migration Job runs `dreamctl migrate`, then loads the character catalogue; the
#   maintenance CronJob runs `dreamctl maintenance`; every dreamctl subcommand and flag used
#   exists in crates/dreamctl/src/main.rs;
# - NetworkPolicies: admin ports reachable from the monitoring namespace only, the gateway from
#   the ingress controller only, the other services from the gateway only (media also from ai);
# - secrets: none rendered from k8s/; every key referenced is one k8s/create-secrets.sh makes for
#   that overlay; the token signing key reaches auth alone;
# - the prod overlay pins its image.
# Settings that the README's configuration table does not document are reported as warnings.
# Then proves the check can fail: broken manifests, one per kind of mistake, must be rejected.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kubectl >/dev/null || { echo "kubectl is needed: sudo apt-get install -y kubernetes-client" >&2; exit 1; }
command -v kubernetes-validate >/dev/null || { echo "kubernetes-validate is needed: pip install kubernetes-validate" >&2; exit 1; }
k8s_version=1.32.0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat > "$tmp/structure.py" <<'PY'
import pathlib, re, sys, yaml

rendered, secrets_file, overlay = sys.argv[1:4]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
problems, undocumented = [], {}

# What the workspace builds and what dreamctl accepts, read from the sources.
services = sorted(
    m.group(1)
    for f in pathlib.Path("services").glob("*/Cargo.toml")
    for m in re.finditer(r'name\s*=\s*"dream-([a-z]+)"', f.read_text())
)
main_rs = pathlib.Path("crates/dreamctl/src/main.rs").read_text()
enum = re.search(r"enum Command \{(.*?)\n\}", main_rs, re.S).group(1)
subcommands = {re.sub(r"(?<!^)([A-Z])", r"-\1", v).lower() for v in re.findall(r"^    ([A-Z]\w*)\b", enum, re.M)}
flags = set()
for attr, field in re.findall(r"#\[arg\((.*?)\)\]\s*(\w+)\s*:", main_rs, re.S):
    named = re.search(r'\blong\s*=\s*"([^"]+)"', attr)
    if named:
        flags.add("--" + named.group(1))
    elif re.search(r"\blong\b", attr):
        flags.add("--" + field.replace("_", "-"))
# A seed that loads the character catalogue (and not the synthetic dataset).
CATALOGUE_FLAGS = {"--demo", "--characters-only"}

def secrets_in(path):
    return {d["metadata"]["name"]: set(d.get("data", {})) | set(d.get("stringData", {}))
            for d in yaml.safe_load_all(open(path)) if d and d["kind"] == "Secret"}
# What create-secrets.sh always makes, and what it makes when the optional keys are given.
secret_keys, secret_keys_full = secrets_in(secrets_file), secrets_in(secrets_file.replace(".yaml", "-full.yaml"))

readme = pathlib.Path("README.md").read_text().split("## Configuration", 1)[-1].split("\n## ", 1)[0]
documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", readme))
# Read by the code being added with the admin listener (not yet in the README's table).
documented |= {"ADMIN_PORT", "TRUSTED_PROXIES", "WEB_DIR"}


def workloads():
    for kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        for name, d in by_kind.get(kind, {}).items():
            yield f"{kind}/{name}", d["spec"]["template"]
    for name, d in by_kind.get("CronJob", {}).items():
        yield f"CronJob/{name}", d["spec"]["jobTemplate"]["spec"]["template"]


def all_containers(pod):
    return pod.get("initContainers", []) + pod.get("containers", [])


def env_of(c):
    return {e["name"]: e for e in c.get("env", [])}


def secret_refs(c):
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}


def port_number(c, port):
    if isinstance(port, int):
        return port
    return next((p["containerPort"] for p in c.get("ports", []) if p.get("name") == port), None)


def selects(selector, labels):
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        has, value = e["key"] in labels, labels.get(e["key"])
        if not {"In": has and value in e.get("values", []), "NotIn": not has or value not in e.get("values", []),
                "Exists": has, "DoesNotExist": not has}[e["operator"]]:
            return False
    return True


def peer(p):
    if "ipBlock" in p:
        return ("anyone",)
    ns = p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
    pod = p.get("podSelector")
    if "namespaceSelector" in p and (ns is None or pod):
        return ("anyone",)  # a namespace selector other than one named namespace: too wide to reason about
    if ns:
        return ("namespace", ns)
    names = pod.get("matchLabels", {}).get("app.kubernetes.io/name")
    return ("pod", names) if names and set(pod) == {"matchLabels"} and len(pod["matchLabels"]) == 1 else ("anyone",)


def allowed_peers(labels, container, port):
    """Who may connect to this pod on this port, by the rendered NetworkPolicies."""
    peers = set()
    for np in by_kind.get("NetworkPolicy", {}).values():
        if "Ingress" not in np["spec"].get("policyTypes", ["Ingress"]) or not selects(np["spec"]["podSelector"], labels):
            continue
        for rule in np["spec"].get("ingress", []):
            ports = rule.get("ports")
            covered = not ports or any(
                (port_number(container, rp["port"]) or -1) <= port <= rp.get("endPort", port_number(container, rp["port"]) or -1)
                for rp in ports if "port" in rp
            ) or any("port" not in rp for rp in ports)
            if covered:
                peers |= {peer(p) for p in rule.get("from", [{}])} if rule.get("from") else {("anyone",)}
    return peers


# -- Every service: Deployment, probes and scraping on the admin port, Service, HPA, PDB.
deployments = by_kind.get("Deployment", {})
expected_peers = {
    "gateway": {("namespace", "ingress-nginx")},
    "media": {("pod", "gateway"), ("pod", "ai")},
}
for svc in services:
    dep = deployments.get(svc)
    if not dep or not dep["spec"]["template"]["spec"]["containers"][0].get("command", [""])[0].endswith(f"/dream-{svc}"):
        problems.append(f"{svc}: no Deployment named {svc} running dream-{svc}")
        continue
    template = dep["spec"]["template"]
    pod, c = template["spec"], template["spec"]["containers"][0]
    env = env_of(c)
    try:
        public, admin = int(env["PORT"]["value"]), int(env["ADMIN_PORT"]["value"])
    except (KeyError, ValueError):
        problems.append(f"{svc}: PORT and ADMIN_PORT must be set as numbers")
        continue
    if public == admin:
        problems.append(f"{svc}: ADMIN_PORT must differ from PORT")
    declared = {p["containerPort"] for p in c.get("ports", [])}
    if not {public, admin} <= declared:
        problems.append(f"{svc}: the container must declare ports {public} and {admin}")
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or port_number(c, get.get("port")) != admin:
            problems.append(f"{svc}: {probe} must GET {path} on the admin port {admin}")
    notes = template["metadata"].get("annotations", {})
    if notes.get("prometheus.io/scrape") != "true" or notes.get("prometheus.io/port") != str(admin) or notes.get("prometheus.io/path", "/metrics") != "/metrics":
        problems.append(f"{svc}: Prometheus annotations must scrape /metrics on the admin port {admin}")
    if not pod.get("terminationGracePeriodSeconds", 30) > 25:
        problems.append(f"{svc}: grace period must exceed the 20 s drain + 5 s preStop")
    for ref in c.get("envFrom", []):
        if "configMapRef" in ref and ref["configMapRef"]["name"] not in by_kind.get("ConfigMap", {}):
            problems.append(f"{svc}: envFrom names a ConfigMap that is not rendered")
    labels = template["metadata"]["labels"]
    svcs = [s for s in by_kind.get("Service", {}).values() if s["spec"].get("selector") and selects({"matchLabels": s["spec"]["selector"]}, labels)]
    if not svcs:
        problems.append(f"{svc}: no Service selects it")
    for s in svcs:
        targets = {port_number(c, p.get("targetPort", p["port"])) for p in s["spec"]["ports"]}
        if admin in targets or public not in targets:
            problems.append(f"{svc}: Service {s['metadata']['name']} must expose the public port {public} and not the admin port")
    if not any(h["spec"]["scaleTargetRef"]["name"] == svc for h in by_kind.get("HorizontalPodAutoscaler", {}).values()):
        problems.append(f"{svc}: no HorizontalPodAutoscaler")
    if not any(selects(p["spec"]["selector"], labels) for p in by_kind.get("PodDisruptionBudget", {}).values()):
        problems.append(f"{svc}: no PodDisruptionBudget")
    # Network: admin from monitoring only; public from the one expected caller.
    want_public = expected_peers.get(svc, {("pod", "gateway")})
    got_admin, got_public = allowed_peers(labels, c, admin), allowed_peers(labels, c, public)
    if got_admin != {("namespace", "monitoring")}:
        problems.append(f"{svc}: admin port {admin} must be reachable from the monitoring namespace only (allowed: {sorted(got_admin)})")
    if got_public != want_public:
        problems.append(f"{svc}: public port {public} must be reachable from {sorted(want_public)} only (allowed: {sorted(got_public)})")
    # Signing keys only where they are used.
    refs = secret_refs(c)
    if ("JWT_PRIVATE_KEY_PEM" in refs) != (svc == "auth"):
        problems.append(f"{svc}: JWT_PRIVATE_KEY_PEM belongs to auth alone")
    if "JWT_PUBLIC_KEY_PEM" not in refs:
        problems.append(f"{svc}: needs JWT_PUBLIC_KEY_PEM")

if not any(np["spec"]["podSelector"] == {} and not np["spec"].get("ingress") for np in by_kind.get("NetworkPolicy", {}).values()):
    problems.append("no default-deny NetworkPolicy")

# -- Every container of every workload: resources, non-root, read-only root, known secrets.
for name, template in workloads():
    pod = template["spec"]
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problems.append(f"{name}: must run as non-root")
    for c in all_containers(pod):
        where = f"{name} container {c['name']}"
        res = c.get("resources", {})
        if not {"cpu", "memory"} <= set(res.get("requests", {})) or "memory" not in res.get("limits", {}):
            problems.append(f"{where}: needs cpu and memory requests and a memory limit")
        sc = c.get("securityContext", {})
        if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: root filesystem must be read-only, privilege escalation off")
        for var, ref in secret_refs(c).items():
            if ref.get("optional"):
                if ref["key"] not in secret_keys_full.get(ref["name"], set()):
                    problems.append(f"{where}: optional secret key {ref['key']} is not one k8s/create-secrets.sh adds")
            elif ref["key"] not in secret_keys.get(ref["name"], set()):
                problems.append(f"{where}: secret {ref['name']}/{ref['key']} is not made by k8s/create-secrets.sh {overlay}")
        if c["image"].split(":")[0].rsplit("/", 1)[-1] == "dream":
            if overlay == "prod" and (":" not in c["image"] or c["image"].endswith(":latest")):
                problems.append(f"{where}: prod must pin the image's tag, not {c['image']}")
            for var in list(env_of(c)) + [k for r in c.get("envFrom", []) if "configMapRef" in r
                                          for k in by_kind.get("ConfigMap", {}).get(r["configMapRef"]["name"], {}).get("data", {})]:
                if var not in documented:
                    undocumented.setdefault(var, set()).add(name)
for name in by_kind.get("Secret", {}):
    problems.append(f"Secret/{name} is rendered from k8s/: secrets come from k8s/create-secrets.sh")

# -- The Ingress: HTTPS for every host, to the gateway.
ingresses = by_kind.get("Ingress", {})
if not ingresses:
    problems.append("no Ingress")
for name, ing in ingresses.items():
    tls = ing["spec"].get("tls", [])
    tls_hosts = {h for t in tls if t.get("secretName") for h in t.get("hosts", [])}
    hosts = {r.get("host") for r in ing["spec"].get("rules", [])}
    if not tls or not hosts <= tls_hosts:
        problems.append(f"Ingress/{name}: needs a TLS block (with a secretName) covering {sorted(h or '*' for h in hosts)}")
    for r in ing["spec"].get("rules", []):
        for p in r["http"]["paths"]:
            if p["backend"]["service"]["name"] != "gateway":
                problems.append(f"Ingress/{name}: routes to {p['backend']['service']['name']}; only the gateway is public")
    if secret_keys.get(tls[0]["secretName"] if tls else None) is None and not ing["metadata"].get("annotations", {}).get("cert-manager.io/cluster-issuer"):
        problems.append(f"Ingress/{name}: nothing makes its TLS Secret (k8s/create-secrets.sh or a cert-manager annotation)")

# -- dreamctl: the migration Job loads the catalogue after migrating; the maintenance CronJob.
def dreamctl(c):
    cmd = c.get("command", []) + c.get("args", [])
    return cmd[1:] if cmd and cmd[0].endswith("/dreamctl") else None

for name, template in workloads():
    for c in all_containers(template["spec"]):
        args = dreamctl(c)
        if args is None:
            continue
        if not args or args[0] not in subcommands:
            problems.append(f"{name}: dreamctl has no subcommand {args[:1]} (has {sorted(subcommands)})")
        for a in args[1:]:
            if a.startswith("--") and a.split("=")[0] not in flags:
                problems.append(f"{name}: dreamctl has no flag {a} (crates/dreamctl/src/main.rs)")
        if secret_refs(c).get("DATABASE_URL", {}).get("key") != "DATABASE_DIRECT_URL":
            problems.append(f"{name}: dreamctl must reach PostgreSQL directly (DATABASE_URL from DATABASE_DIRECT_URL)")

migrations = []
for name, job in by_kind.get("Job", {}).items():
    pod = job["spec"]["template"]["spec"]
    inits = [dreamctl(c) for c in pod.get("initContainers", [])]
    mains = [dreamctl(c) for c in pod.get("containers", [])]
    if any(a and a[0] == "migrate" for a in inits):
        migrations.append(name)
        if not any(a and a[0] == "seed" and CATALOGUE_FLAGS & set(a) for a in mains):
            problems.append(f"Job/{name}: after migrating it must load the character catalogue (dreamctl seed with one of {sorted(CATALOGUE_FLAGS)})")
if not migrations:
    problems.append("no Job runs `dreamctl migrate` in an init container")
cron = [c for c in by_kind.get("CronJob", {}).values()
        if any((dreamctl(x) or [None])[0] == "maintenance" for x in all_containers(c["spec"]["jobTemplate"]["spec"]["template"]["spec"]))]
if not cron:
    problems.append("no CronJob runs `dreamctl maintenance`")
elif any(c["spec"].get("concurrencyPolicy") != "Forbid" for c in cron):
    problems.append("the maintenance CronJob must forbid concurrent runs")

for var, where in sorted(undocumented.items()):
    print(f"  warning: {var} ({', '.join(sorted(where))}) is not in the README's configuration table")
for p in problems:
    print(f"  {p}")
sys.exit(1 if problems else 0)
PY

# Every YAML file parses (kind.yaml is no Kustomize input), and the kind cluster of the README
# publishes the ingress ports on loopback only.
python3 - <<'PY'
import pathlib, sys, yaml
for f in sorted(pathlib.Path("k8s").rglob("*.yaml")):
    list(yaml.safe_load_all(f.read_text()))
kind = yaml.safe_load(pathlib.Path("k8s/kind.yaml").read_text())
for node in kind["nodes"]:
    for m in node.get("extraPortMappings", []):
        if m.get("listenAddress") != "127.0.0.1":
            sys.exit(f"k8s/kind.yaml: port {m['hostPort']} must listen on 127.0.0.1")
PY

# The Secrets k8s/create-secrets.sh makes for each overlay, from throwaway keys: the manifests'
# secret references are checked against them.
for overlay in k8s/overlays/*/; do
  name=$(basename "$overlay")
  export DREAM_SECRETS_DIR="$tmp/secrets" DATABASE_URL=x DATABASE_DIRECT_URL=x REDIS_URL=x
  if ! { k8s/create-secrets.sh "$name" --print > "$tmp/secrets-$name.yaml" 2> "$tmp/secrets.log" &&
         OPENAI_API_KEY=x MEDIA_API_KEY=x k8s/create-secrets.sh "$name" --print > "$tmp/secrets-$name-full.yaml" 2>> "$tmp/secrets.log"; }; then
    cat "$tmp/secrets.log" >&2
    echo "k8s/create-secrets.sh $name failed" >&2
    exit 1
  fi
done

check() { # rendered.yaml overlay
  kubernetes-validate -k "$k8s_version" --strict "$1" > "$tmp/validate.log" 2>&1 || { grep -v '^INFO' "$tmp/validate.log"; return 1; }
  python3 "$tmp/structure.py" "$1" "$tmp/secrets-$2.yaml" "$2"
}

for overlay in k8s/overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" > "$tmp/$name.yaml"
  if check "$tmp/$name.yaml" "$name"; then
    echo "k8s/$name: $(grep -c '^kind:' "$tmp/$name.yaml") objects valid for Kubernetes $k8s_version, every service complete"
  else
    echo "k8s/$name: INVALID" >&2
    exit 1
  fi
done

# The check must be able to fail: one broken copy of the prod manifests per kind of mistake.
sed 's/readinessProbe/readynessProbe/' "$tmp/prod.yaml" > "$tmp/broken-schema.yaml"
kubernetes-validate -k "$k8s_version" --strict "$tmp/broken-schema.yaml" > /dev/null 2>&1 \
  && { echo "the k8s check accepted a broken manifest (schema)" >&2; exit 1; }
breaks=(no-hpa probe-on-public-port no-tls no-limits no-catalogue unknown-flag admin-open secret-inline private-key-everywhere api-key-required)
python3 - "$tmp" "${breaks[@]}" <<'PY'
import sys, yaml
tmp, breaks = sys.argv[1], sys.argv[2:]
for b in breaks:
    docs = [d for d in yaml.safe_load_all(open(f"{tmp}/prod.yaml")) if d]
    find = lambda kind, name: next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
    chat = find("Deployment", "chat")["spec"]["template"]["spec"]["containers"][0]
    job = find("Job", "dream-migrate")["spec"]["template"]["spec"]
    if b == "no-hpa":
        docs.remove(find("HorizontalPodAutoscaler", "chat"))
    elif b == "probe-on-public-port":
        chat["livenessProbe"]["httpGet"]["port"] = "http"
    elif b == "no-tls":
        del find("Ingress", "dream")["spec"]["tls"]
    elif b == "no-limits":
        del job["initContainers"][0]["resources"]["limits"]
    elif b == "no-catalogue":
        job["containers"][0]["command"] = ["/usr/local/bin/dreamctl", "seed"]
    elif b == "unknown-flag":
        job["initContainers"][0]["command"].append("--no-such-flag")
    elif b == "admin-open":
        docs.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "oops"},
                     "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "chat"}},
                              "ingress": [{"ports": [{"port": 9082}]}]}})
    elif b == "secret-inline":
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "dream-secrets"}, "stringData": {"A": "b"}})
    elif b == "api-key-required":  # the builtin provider needs no key: a pod must start without one
        ai = find("Deployment", "ai")["spec"]["template"]["spec"]["containers"][0]
        next(e for e in ai["env"] if e["name"] == "OPENAI_API_KEY")["valueFrom"]["secretKeyRef"].pop("optional")
    elif b == "private-key-everywhere":
        chat["env"].append({"name": "JWT_PRIVATE_KEY_PEM", "valueFrom": {"secretKeyRef": {"name": "dream-secrets", "key": "JWT_PRIVATE_KEY_PEM"}}})
    yaml.safe_dump_all(docs, open(f"{tmp}/broken-{b}.yaml", "w"))
PY
for b in "${breaks[@]}"; do
  # Rejected with a reason, not by a crash of the check itself.
  if python3 "$tmp/structure.py" "$tmp/broken-$b.yaml" "$tmp/secrets-prod.yaml" prod > "$tmp/broken-$b.log" 2>&1 \
    || grep -q Traceback "$tmp/broken-$b.log" || ! grep -q '^  [^ ]' "$tmp/broken-$b.log"; then
    echo "the k8s check accepted a broken manifest ($b)" >&2
    cat "$tmp/broken-$b.log" >&2
    exit 1
  fi
done
echo "k8s check rejects broken manifests (schema, ${breaks[*]}): ok"
