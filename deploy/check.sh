#!/usr/bin/env bash
# CI checks for deploy/: no container engine, no cluster, no network beyond PyPI.
#
#   bash deploy/check.sh
#
# Installs its tools (deploy/requirements-check.txt) into .venv-deploy at the
# repository root, once per change of that file. Every check runs even when an
# earlier one fails; the script prints a summary and exits non-zero on any
# failure. Environment: PARAPET_BIN=path/to/parapet to validate the embedded
# configs with a specific binary (default: target/release|debug/parapet if built).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv-deploy"
REQS="deploy/requirements-check.txt"
K8S_VERSIONS="1.30.0 1.37.0"   # oldest supported (native sidecar, preStop sleep) and newest bundled schema
LOG="$(mktemp -d)"
trap 'rm -rf "$LOG"' EXIT

results=()
passed=0 failed=0 skipped=0

run() { # run NAME CMD...: record PASS/FAIL, show output on failure
  local name="$1"; shift
  echo "==> $name"
  if "$@" >"$LOG/out" 2>&1; then
    sed 's/^/    /' "$LOG/out" | tail -n 20
    results+=("PASS  $name"); passed=$((passed + 1))
  else
    sed 's/^/    /' "$LOG/out"
    results+=("FAIL  $name"); failed=$((failed + 1))
  fi
}

skip() {
  echo "==> $1"; echo "    skipped: $2"
  results+=("SKIP  $1 ($2)"); skipped=$((skipped + 1))
}

setup_venv() {
  local stamp want
  want="$(sha256sum "$REQS" | cut -d' ' -f1)"
  stamp="$VENV/.deploy-check-requirements"
  if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "tools already installed in .venv-deploy"
    return 0
  fi
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV" || return 1
  # Keep the venv out of git status without touching the repository's .gitignore.
  echo '*' >"$VENV/.gitignore"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip || return 1
  # --ignore-requires-python: helm-sdkpy declares Python >= 3.12 but its cffi
  # bindings run on the machine's 3.11 (see the requirements file).
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    --ignore-requires-python -r "$REQS" || return 1
  echo "$want" >"$stamp"
  echo "installed: $("$VENV/bin/python" -m pip freeze | tr '\n' ' ')"
}

run "install tools into .venv-deploy" setup_venv
if [[ ! -x "$VENV/bin/kubernetes-validate" ]]; then
  echo "tools are missing; cannot run the checks" >&2
  printf '%s\n' "${results[@]}"
  exit 1
fi
PY="$VENV/bin/python"
mapfile -t MANIFESTS < <(find deploy/kubernetes -name '*.yaml' | sort)

run "yamllint (deploy/.yamllint)" "$VENV/bin/yamllint" -c deploy/.yamllint deploy/

for v in $K8S_VERSIONS; do
  run "kubernetes-validate --strict, Kubernetes $v: ${#MANIFESTS[@]} raw manifest files" \
    "$VENV/bin/kubernetes-validate" --strict --no-warn -k "$v" "${MANIFESTS[@]}"
done

run "manifest invariants + parapet validate of embedded configs" "$PY" deploy/ci/check_manifests.py "$ROOT"

run "values.schema.json is valid JSON Schema" \
  "$VENV/bin/check-jsonschema" --check-metaschema deploy/helm/parapet/values.schema.json
run "values.yaml conforms to values.schema.json" \
  "$VENV/bin/check-jsonschema" --schemafile deploy/helm/parapet/values.schema.json deploy/helm/parapet/values.yaml

run "helm lint (Helm Go library via helm-sdkpy): values.yaml + test-values/*" \
  "$PY" deploy/ci/helm_lint.py deploy/helm/parapet deploy/helm/test-values/*.yaml

render_and_validate() {
  local out="$LOG/rendered" f name
  mkdir -p "$out"
  for f in "" deploy/helm/test-values/*.yaml; do
    name="$(basename "${f:-default}" .yaml)"
    helm template parapet deploy/helm/parapet ${f:+-f "$f"} >"$out/$name.yaml" || return 1
  done
  for v in $K8S_VERSIONS; do
    "$VENV/bin/kubernetes-validate" --strict --no-warn -k "$v" "$out"/*.yaml || return 1
  done
}
if command -v helm >/dev/null 2>&1; then
  run "helm template | kubernetes-validate --strict (rendered chart)" render_and_validate
else
  skip "helm template | kubernetes-validate --strict (rendered chart)" \
    "no helm binary on this machine (not on PyPI/Debian); helm lint above renders every template"
fi

run "hadolint deploy/Dockerfile" "$VENV/bin/hadolint" deploy/Dockerfile
run "Dockerfile context references exist in git" "$PY" deploy/ci/check_dockerfile.py "$ROOT" deploy/Dockerfile

echo
echo "deploy/check.sh summary"
printf '  %s\n' "${results[@]}"
echo "deploy: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
