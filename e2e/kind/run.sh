#!/usr/bin/env bash
# Run the heatsched e2e suite on kind (needs Docker, kind and network access to the kwok release).
# Only cluster creation differs from the local path: the suite, its fixtures and the manifests are shared.
#   e2e/kind/run.sh [pytest args...]      KEEP=1 keeps the cluster afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."
source operator/heatsched/data/toolchain.env
name=heatsched-e2e
kubeconfig=${KUBECONFIG_OUT:-$PWD/.heatsched/kind-$name.kubeconfig}
mkdir -p "$(dirname "$kubeconfig")"
command -v kind >/dev/null || { echo "kind is not installed (https://kind.sigs.k8s.io)" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "no Docker engine: kind cannot run here; use the local path (make test)" >&2; exit 1; }
kind get clusters | grep -qx "$name" || kind create cluster --config e2e/kind/kind-config.yaml --kubeconfig "$kubeconfig"
kind get kubeconfig --name "$name" > "$kubeconfig"
# kwok simulates the e2e nodes inside the cluster (same controller and stages as the local path)
base=https://github.com/kubernetes-sigs/kwok/releases/download/$KWOK_VERSION
kubectl --kubeconfig "$kubeconfig" apply -f "$base/kwok.yaml" -f "$base/stage-fast.yaml"
kubectl --kubeconfig "$kubeconfig" -n kube-system rollout status deployment/kwok-controller --timeout=120s
[ -x .venv/bin/pytest ] || bash scripts/setup.sh
# the kind apiserver reaches the host (the placement service's webhook) through the kind network gateway
export HEATSCHED_E2E_WEBHOOK_HOST=${HEATSCHED_E2E_WEBHOOK_HOST:-$(docker network inspect kind -f "{{(index .IPAM.Config 0).Gateway}}")}
status=0
.venv/bin/pytest e2e --kubeconfig "$kubeconfig" "$@" || status=$?
[ "${KEEP:-0}" = 1 ] || kind delete cluster --name "$name"
exit $status
