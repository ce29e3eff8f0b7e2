#!/usr/bin/env bash
# Everything a fresh machine needs before the demo or the tests, idempotent, one phase at a time with its
# duration: OS packages (Prometheus), the Python venv (.venv), and the control-plane toolchain built from Go
# modules into ~/.cache/heatsched (keyed by version; a warm machine skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
phase() { local name=$1; shift; local t0=$SECONDS; echo "== $name"; "$@"; echo "== $name: $((SECONDS - t0)) s"; }

os_packages() {
  if command -v prometheus >/dev/null; then echo "prometheus: $(command -v prometheus)"; return; fi
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # Debian's package also registers a system service; this project runs its own instances on loopback.
  command -v prometheus
}

# Python packages: exactly uv.lock (what CI tested), never a fresh resolution. uv itself is pinned and lives in
# its own venv (.uv), since `uv sync` makes .venv hold the locked packages and nothing else.
UV_VERSION=0.13.9
python_env() {
  local py=${PYTHON:-python3}
  "$py" -c 'import sys; assert sys.version_info >= (3, 11), "heatsched needs Python >= 3.11"'
  if [ ! -x .uv/bin/uv ] || [ "$(.uv/bin/uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    rm -rf .uv && "$py" -m venv .uv && .uv/bin/pip install -q "uv==$UV_VERSION"
  fi
  local stamp=.venv/.heatsched-installed
  if [ ! -f "$stamp" ] || [ uv.lock -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    # --locked: fail when pyproject.toml changed without `uv lock` (docs/install.md#dependencies)
    UV_PROJECT_ENVIRONMENT=.venv .uv/bin/uv sync --locked --extra test --extra twin --python "$py" -q
    touch "$stamp"
  fi
  .venv/bin/python -c 'import heatsched, kopf, kubernetes, prometheus_api_client; print("python env ok")'
}

toolchain() {
  command -v go >/dev/null || { echo "Go is needed to build the control plane (etcd, kube-*, kwok, helm)" >&2; exit 1; }
  bash toolchain/build.sh
}

phase "OS packages" os_packages
phase "Python environment" python_env
phase "toolchain (Go modules)" toolchain
