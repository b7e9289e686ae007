#!/usr/bin/env python3
"""Deployment invariants of the raw Kubernetes manifests, and `parapet validate`
of every embedded parapet.toml.

For each workload's `parapet` container: admin listener on 0.0.0.0:9090 with
readiness (/readyz) and liveness (/healthz) probes on it; hardened
securityContext; requests and limits; config and policies as read-only
directory mounts (no subPath, so ConfigMap updates arrive); a writable
/var/lib/parapet; provider-key secretKeyRefs optional; and
terminationGracePeriodSeconds >= preStop sleep + drain deadline + 5 s.

Every parapet.toml found in a ConfigMap and in the chart's values.yaml is run
through `parapet validate` when a parapet binary is available (PARAPET_BIN, or
target/release|debug/parapet); otherwise that part is reported as skipped.

Usage: check_manifests.py REPO_ROOT
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

errors = []
notes = []


def err(where, msg):
    errors.append(f"{where}: {msg}")


def env_map(c):
    return {e["name"]: e for e in c.get("env", [])}


def check_workload(where, doc):
    spec = doc["spec"]["template"]["spec"]
    containers = spec.get("containers", []) + spec.get("initContainers", [])
    parapet = [c for c in containers if c["name"] == "parapet"]
    if len(parapet) != 1:
        err(where, "expected exactly one container named parapet")
        return
    c = parapet[0]
    env = env_map(c)
    if env.get("PARAPET_ADMIN_LISTEN", {}).get("value") != "0.0.0.0:9090":
        err(where, "PARAPET_ADMIN_LISTEN must be 0.0.0.0:9090 (probes come from the kubelet)")
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    if ports.get("admin") != 9090:
        err(where, "container port `admin` must be 9090")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ("admin", 9090):
            err(where, f"{probe} must be GET {path} on the admin port")
    pod_sc = spec.get("securityContext", {})
    sc = c.get("securityContext", {})
    if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
        err(where, "runAsNonRoot is not set")
    if sc.get("readOnlyRootFilesystem") is not True:
        err(where, "readOnlyRootFilesystem must be true")
    if sc.get("allowPrivilegeEscalation") is not False:
        err(where, "allowPrivilegeEscalation must be false")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        err(where, "capabilities must drop ALL")
    res = c.get("resources", {})
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in res.get(kind, {}):
                err(where, f"resources.{kind}.{r} missing")
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for path in ("/etc/parapet", "/etc/parapet/policies"):
        m = mounts.get(path)
        if m is None:
            err(where, f"no volume mounted at {path}")
            continue
        if "subPath" in m or "subPathExpr" in m:
            err(where, f"{path} uses subPath: ConfigMap updates would never arrive")
        if not m.get("readOnly"):
            err(where, f"{path} should be mounted readOnly")
        if "configMap" not in volumes.get(m["name"], {}):
            err(where, f"{path} should be a configMap volume")
    data = mounts.get("/var/lib/parapet")
    if data is None or data.get("readOnly"):
        err(where, "/var/lib/parapet must be a writable mount")
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        ref = env.get(name, {}).get("valueFrom", {}).get("secretKeyRef")
        if ref is None or ref.get("optional") is not True:
            err(where, f"{name} must come from a secretKeyRef with optional: true")
    drain_ms = int(env.get("PARAPET_DRAIN_TIMEOUT_MS", {}).get("value", "30000"))
    pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    need = pre + drain_ms / 1000 + 5
    if grace < need:
        err(where, f"terminationGracePeriodSeconds {grace} < preStop {pre} s + drain {drain_ms / 1000:g} s + 5 s")
    notes.append(f"{where}: grace {grace} s >= preStop {pre} s + drain {drain_ms / 1000:g} s + margin")


def find_binary(root):
    if os.environ.get("PARAPET_BIN"):
        return Path(os.environ["PARAPET_BIN"])
    for p in (root / "target/release/parapet", root / "target/debug/parapet"):
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def main():
    root = Path(sys.argv[1]).resolve()
    configs = []
    workloads = 0
    for f in sorted((root / "deploy/kubernetes").rglob("*.yaml")):
        rel = f.relative_to(root)
        for doc in yaml.safe_load_all(f.read_text()):
            if not doc:
                continue
            kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
            if kind in ("Deployment", "StatefulSet", "DaemonSet"):
                workloads += 1
                check_workload(f"{rel} {kind}/{name}", doc)
            if kind == "ConfigMap" and "parapet.toml" in (doc.get("data") or {}):
                configs.append((f"{rel} ConfigMap/{name}", doc["data"]["parapet.toml"]))
    values = root / "deploy/helm/parapet/values.yaml"
    configs.append((f"{values.relative_to(root)} .config", yaml.safe_load(values.read_text())["config"]))
    configs.append(("parapet.toml (image default)", (root / "parapet.toml").read_text()))
    if workloads == 0:
        err("deploy/kubernetes", "no workloads found")

    binary = find_binary(root)
    validated = 0
    if binary is None:
        notes.append(f"SKIP parapet validate of {len(configs)} configs: no parapet binary "
                     "(set PARAPET_BIN or build target/debug/parapet)")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            for where, text in configs:
                path = Path(tmp) / "parapet.toml"
                (Path(tmp) / "policies").mkdir(exist_ok=True)
                path.write_text(text)
                # The container environment: these override the file as in the pods.
                env = dict(os.environ, PARAPET_ADMIN_LISTEN="0.0.0.0:9090", PARAPET_LOG_FORMAT="json",
                           PARAPET_DRAIN_TIMEOUT_MS="30000")
                r = subprocess.run([str(binary), "validate", "--config", str(path)],
                                   capture_output=True, text=True, env=env, timeout=60)
                if r.returncode != 0:
                    err(where, "parapet validate failed:\n" + (r.stderr or r.stdout).strip())
                else:
                    validated += 1
        notes.append(f"parapet validate ({binary}): {validated}/{len(configs)} configs ok")
    for n in notes:
        print(f"  {n}")
    for e in errors:
        print(f"ERROR {e}")
    print(f"manifests: {workloads} workloads checked, {len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
