#!/usr/bin/env bash
# What can be checked of deploy/ without a Docker engine: every YAML and JSON file parses,
# and the compose file starts each service with a binary the workspace builds.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import json, pathlib, re, sys, yaml
root = pathlib.Path("deploy")
for f in sorted(root.rglob("*")):
    if f.suffix in (".yaml", ".yml"):
        list(yaml.safe_load_all(f.read_text()))
    elif f.suffix == ".json":
        json.loads(f.read_text())
compose = yaml.safe_load((root / "compose.yaml").read_text())
bins = {p.parent.parent.name for p in pathlib.Path("services").glob("*/src/main.rs")}
for name, svc in compose["services"].items():
    cmd = " ".join(svc.get("command", []) if isinstance(svc.get("command"), list) else [svc.get("command") or ""])
    if "/bin/sh" in cmd or "bash" in cmd:
        sys.exit(f"compose service {name} needs a shell; the runtime image has none")
    for b in re.findall(r"dream-([a-z]+)", cmd):
        if b not in bins:
            sys.exit(f"compose service {name} runs dream-{b}, which the workspace does not build")
print(f"deploy/: every file parses; compose runs only binaries the workspace builds ({', '.join(sorted(bins))})")
PY
