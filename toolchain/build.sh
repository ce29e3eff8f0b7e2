#!/usr/bin/env bash
# Build the local control-plane toolchain from Go modules into a cache outside the repo.
#
# Why: there is no Docker and no release-download site here, only the Go module proxy. So etcd,
# kube-apiserver, kube-scheduler, kube-controller-manager, kubectl, kwok and helm are compiled from
# their published modules, once per version, into $HEATSCHED_CACHE/toolchain/<name>-<version>/.
# Idempotent: a component whose binaries exist is skipped. Prints each step and its duration.
#
# Usage: toolchain/build.sh [component ...]   (default: all; components: kubernetes etcd kwok helm)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../operator/heatsched/data/toolchain.env
source "$here/../operator/heatsched/data/toolchain.env"
cache=${HEATSCHED_CACHE:-$HOME/.cache/heatsched}/toolchain
mkdir -p "$cache"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=${GOTOOLCHAIN:-local}

step() {  # step NAME CMD...: run CMD, print its duration
  local name=$1; shift
  local t0=$SECONDS
  echo "[toolchain] $name ..."
  "$@"
  echo "[toolchain] $name done in $((SECONDS - t0)) s"
}

have() { local d=$1; shift; for b in "$@"; do [ -x "$d/bin/$b" ] || return 1; done; }

build_kubernetes() {
  local v=$KUBERNETES_VERSION dir=$cache/kubernetes-$KUBERNETES_VERSION
  local bins=(kube-apiserver kube-scheduler kube-controller-manager kubectl)
  if have "$dir" "${bins[@]}"; then echo "[toolchain] kubernetes $v cached in $dir"; return; fi
  local w=$cache/src/kubernetes-$v; mkdir -p "$w" "$dir/bin"
  # k8s.io/kubernetes replaces every staging module with ./staging; a wrapper module maps each of
  # them to its published v0.X.Y instead (as kubernetes-sigs/scheduler-plugins does).
  local gomod; gomod=$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  local staging="v0.${v#v1.}"
  {
    echo "module heatsched.local/k8s-toolchain"
    echo "go $(sed -n 's/^go \([0-9.]*\).*/\1/p' "$gomod")"
    echo "require k8s.io/kubernetes $v"
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#replace \1 => \1 '"$staging"'#p' "$gomod"
  } > "$w/go.mod"
  printf 'package toolchain\n' > "$w/doc.go"
  local minor=${v#v1.}; minor=${minor%%.*}
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    ld+=" -X $pkg.gitCommit=heatsched-module-build -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  step "kubernetes $v: resolve modules" bash -c "cd '$w' && go mod download k8s.io/kubernetes && go get k8s.io/kubernetes@$v >/dev/null"
  local cmds=(); for b in "${bins[@]}"; do cmds+=("k8s.io/kubernetes/cmd/$b"); done
  step "kubernetes $v: build ${bins[*]}" bash -c "cd '$w' && go build -mod=mod -trimpath -ldflags '$ld' -o '$dir/bin/' ${cmds[*]}"
}

build_etcd() {
  local v=$ETCD_VERSION dir=$cache/etcd-$ETCD_VERSION
  if have "$dir" etcd; then echo "[toolchain] etcd $v cached in $dir"; return; fi
  local w=$cache/src/etcd-$v; mkdir -p "$w" "$dir/bin"
  # server/v3 carries replace directives too: a wrapper main pins every etcd module to $v.
  cat > "$w/go.mod" <<GOMOD
module heatsched.local/etcd
go 1.24
require (
	go.etcd.io/etcd/server/v3 $v
	go.etcd.io/etcd/api/v3 $v
	go.etcd.io/etcd/client/pkg/v3 $v
	go.etcd.io/etcd/client/v3 $v
	go.etcd.io/etcd/pkg/v3 $v
)
GOMOD
  cat > "$w/main.go" <<'GO'
// Command etcd is the upstream etcd server, built from go.etcd.io/etcd/server/v3.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  step "etcd $v: resolve modules" bash -c "cd '$w' && go mod tidy"
  step "etcd $v: build" bash -c "cd '$w' && go build -trimpath -ldflags '-s -w' -o '$dir/bin/etcd' ."
}

build_kwok() {
  local v=$KWOK_VERSION dir=$cache/kwok-$KWOK_VERSION
  if have "$dir" kwok && [ -s "$dir/stages.yaml" ]; then echo "[toolchain] kwok $v cached in $dir"; return; fi
  mkdir -p "$dir/bin"
  step "kwok $v: build" env GOBIN="$dir/bin" go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$v" "sigs.k8s.io/kwok/cmd/kwok@$v"
  # kwok v0.8 ships no built-in stages: take the upstream "fast" set (node ready + lease heartbeat,
  # pod ready/complete/delete) from the same module version.
  local src; src=$(go env GOMODCACHE)/sigs.k8s.io/kwok@$v/kustomize/stage
  local out=$dir/stages.yaml; : > "$out"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    { echo "---"; cat "$src/$f"; } >> "$out"
  done
}

build_helm() {
  local v=$HELM_VERSION dir=$cache/helm-$HELM_VERSION
  if have "$dir" helm; then echo "[toolchain] helm $v cached in $dir"; return; fi
  mkdir -p "$dir/bin"
  step "helm $v: build" env GOBIN="$dir/bin" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$v" "helm.sh/helm/v3/cmd/helm@$v"
}

components=("$@"); [ ${#components[@]} -gt 0 ] || components=(etcd kubernetes kwok helm)
t_all=$SECONDS
for c in "${components[@]}"; do
  case $c in
    kubernetes|etcd|kwok|helm) "build_$c" ;;
    *) echo "unknown component: $c (known: kubernetes etcd kwok helm)" >&2; exit 2 ;;
  esac
done
echo "[toolchain] all done in $((SECONDS - t_all)) s; binaries under $cache"
