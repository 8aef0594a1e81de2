#!/usr/bin/env bash
# Builds (when missing) the helm binary used by the chart tests (test/helm), from its Go
# module helm.sh/helm/v3 (main package cmd/helm), and caches it like the control plane:
#   ${FT_CACHE_DIR:-$HOME/.cache/finetune-operator}/bin/helm-<version>/helm
# Idempotent: a binary that already exists is not rebuilt.
#
# Usage: test/control-plane/build-helm.sh [--path]
#        (--path: only print where the binary is/would be)
# Output (stdout): helm=<path>
# Env:   FT_HELM_VERSION     helm.sh/helm/v3 version (default v3.22.0)
#        FT_CACHE_DIR        cache root (default ~/.cache/finetune-operator)
#        FT_BUILD_PARALLEL   value for `go build -p` (default 1: shared CI machines)
#        FT_BUILD_NICE       nice level for the build (default 19)
set -euo pipefail

HELM_VERSION="${FT_HELM_VERSION:-v3.22.0}"
CACHE_DIR="${FT_CACHE_DIR:-$HOME/.cache/finetune-operator}"
OUT="$CACHE_DIR/bin/helm-$HELM_VERSION/helm"
SRC="$CACHE_DIR/src/helm-$HELM_VERSION"
PAR="${FT_BUILD_PARALLEL:-1}"
NICE="${FT_BUILD_NICE:-19}"

export GOFLAGS="-mod=mod"
export CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

log() { printf '[build-helm.sh] %s\n' "$*" >&2; }

if [ "${1:-}" = "--path" ]; then echo "helm=$OUT"; exit 0; fi
if [ -x "$OUT" ]; then
  [ "${FT_QUIET:-0}" = 1 ] || log "up to date: $OUT"
  echo "helm=$OUT"; exit 0
fi

mkdir -p "$CACHE_DIR/bin" "$SRC"
# Same lock as build.sh: one Go build at a time per cache (2 shared cores).
exec 9>"$CACHE_DIR/build.lock"
if ! flock -n 9; then
  log "another build is running in $CACHE_DIR; waiting for it"
  flock 9
fi
if [ -x "$OUT" ]; then log "built meanwhile: $OUT"; echo "helm=$OUT"; exit 0; fi
command -v go >/dev/null || { log "go not found on PATH (Go >= 1.26 is needed to build helm)"; exit 1; }

# Throwaway module that requires helm; helm's go.mod has no replace directives, so its
# own requirement list is the build list.
if [ ! -f "$SRC/go.mod" ]; then
  printf 'module finetune-operator.local/helm\n\ngo 1.26.0\n\nrequire helm.sh/helm/v3 %s\n' "$HELM_VERSION" >"$SRC/go.mod.tmp"
  mv "$SRC/go.mod.tmp" "$SRC/go.mod"
fi

# The same -X flags as helm's Makefile: the version, and the Kubernetes version that
# `helm template`/`helm lint` assume (from the k8s.io/client-go it is built with: v0.X.Y = 1.X).
client_go=$(cd "$SRC" && go list -m -f '{{.Version}}' k8s.io/client-go)
k8s_minor=$(echo "$client_go" | cut -d. -f2)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$k8s_minor"
done

mkdir -p "$(dirname "$OUT")"
start=$(date +%s)
log "building helm $HELM_VERSION (k8s client $client_go) with go build -p $PAR under nice -n $NICE; a cold build takes several minutes"
( cd "$SRC" && nice -n "$NICE" go build -p "$PAR" -trimpath -ldflags="$ldflags" -o "$OUT.tmp.$$" helm.sh/helm/v3/cmd/helm )
mv -f "$OUT.tmp.$$" "$OUT"
end=$(date +%s)
log "built $OUT in $((end - start))s"
echo "built helm in $((end - start))s" >>"$CACHE_DIR/build-times.log"
echo "helm=$OUT"
