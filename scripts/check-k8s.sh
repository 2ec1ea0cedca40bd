#!/usr/bin/env bash
# Renders every Kustomize overlay, validates the result offline against the Kubernetes schemas
# (kubernetes-validate, strict), and checks that every service has its Deployment with probes
# and a hardened pod, a Service, an HPA and a PodDisruptionBudget. Then proves the check can
# fail: a manifest with a misspelt probe and one without an HPA must both be rejected.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kubectl >/dev/null || { echo "kubectl is needed: sudo apt-get install -y kubernetes-client" >&2; exit 1; }
command -v kubernetes-validate >/dev/null || { echo "kubernetes-validate is needed: pip install kubernetes-validate" >&2; exit 1; }
k8s_version=1.32.0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

structure() { # file
  python3 - "$1" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
problems = []
deployments = by_kind.get("Deployment", {})
if not deployments:
    problems.append("no Deployment at all")
for name, dep in deployments.items():
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        if c.get(probe, {}).get("httpGet", {}).get("path") != path:
            problems.append(f"{name}: {probe} must GET {path}")
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problems.append(f"{name}: must run as non-root")
    if not c.get("securityContext", {}).get("readOnlyRootFilesystem"):
        problems.append(f"{name}: root filesystem must be read-only")
    if "resources" not in c:
        problems.append(f"{name}: no resources")
    if pod.get("terminationGracePeriodSeconds", 30) <= 25:
        problems.append(f"{name}: grace period must exceed the 20 s drain + 5 s preStop")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    if not any(all(labels.get(k) == v for k, v in s["spec"].get("selector", {}).items()) for s in by_kind.get("Service", {}).values()):
        problems.append(f"{name}: no Service selects it")
    if not any(h["spec"]["scaleTargetRef"]["name"] == name for h in by_kind.get("HorizontalPodAutoscaler", {}).values()):
        problems.append(f"{name}: no HorizontalPodAutoscaler")
    if not any(p["spec"]["selector"]["matchLabels"].items() <= labels.items() for p in by_kind.get("PodDisruptionBudget", {}).values()):
        problems.append(f"{name}: no PodDisruptionBudget")
for p in problems:
    print(f"  {p}")
sys.exit(1 if problems else 0)
PY
}

check() { # file label
  kubernetes-validate -k "$k8s_version" --strict "$1" > "$tmp/validate.log" 2>&1 || { grep -v '^INFO' "$tmp/validate.log"; return 1; }
  structure "$1"
}

for overlay in k8s/overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" > "$tmp/$name.yaml"
  if check "$tmp/$name.yaml"; then
    echo "k8s/$name: $(grep -c '^kind:' "$tmp/$name.yaml") objects valid for Kubernetes $k8s_version, every service complete"
  else
    echo "k8s/$name: INVALID" >&2
    exit 1
  fi
done

# The check must be able to fail.
sed 's/readinessProbe/readynessProbe/' "$tmp/prod.yaml" > "$tmp/broken-schema.yaml"
python3 -c "
import sys, yaml
docs = [d for d in yaml.safe_load_all(open('$tmp/prod.yaml')) if d and not (d['kind'] == 'HorizontalPodAutoscaler' and d['metadata']['name'] == 'chat')]
yaml.safe_dump_all(docs, open('$tmp/broken-structure.yaml', 'w'))
"
for broken in broken-schema broken-structure; do
  if check "$tmp/$broken.yaml" > /dev/null 2>&1; then
    echo "the k8s check accepted a broken manifest ($broken)" >&2
    exit 1
  fi
done
echo "k8s check rejects broken manifests (schema and structure): ok"
