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

python_env() {
  local py=${PYTHON:-python3}
  "$py" -c 'import sys; assert sys.version_info >= (3, 11), "heatsched needs Python >= 3.11"'
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  local stamp=.venv/.heatsched-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test]'
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
