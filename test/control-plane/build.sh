#!/usr/bin/env bash
# Builds (when missing) the control-plane binaries used by the test harness:
#   etcd            from go.etcd.io/etcd/server/v3   (its root package is etcd's main)
#   kube-apiserver  from k8s.io/kubernetes/cmd/kube-apiserver
#   kube-scheduler  from k8s.io/kubernetes/cmd/kube-scheduler
#   kube-controller-manager  from k8s.io/kubernetes/cmd/kube-controller-manager
#                   (only when asked for by name; up.sh builds it for FT_CONTROLLERS=1)
# Binaries are cached outside the repository:
#   ${FT_CACHE_DIR:-$HOME/.cache/finetune-operator}/bin/<component>-<version>/<component>
# Idempotent: a binary that already exists is not rebuilt.
#
# Usage: test/control-plane/build.sh [--path] [etcd|kube-apiserver|kube-scheduler|kube-controller-manager ...]
#        (no component: etcd, kube-apiserver, kube-scheduler;
#         --path: only print where the binaries are/would be)
# Env:   FT_CACHE_DIR        cache root (default ~/.cache/finetune-operator)
#        FT_BUILD_PARALLEL   value for `go build -p` (default 1: shared CI machines)
#        FT_BUILD_NICE       nice level for the builds (default 19)
set -euo pipefail

ETCD_VERSION="${FT_ETCD_VERSION:-v3.7.3}"
K8S_VERSION="${FT_K8S_VERSION:-v1.37.2}"
# staging modules (k8s.io/api, apimachinery, ...) are published as v0.<minor>.<patch>
K8S_STAGING_VERSION="v0.${K8S_VERSION#v1.}"

CACHE_DIR="${FT_CACHE_DIR:-$HOME/.cache/finetune-operator}"
BIN_DIR="$CACHE_DIR/bin"
SRC_DIR="$CACHE_DIR/src"
PAR="${FT_BUILD_PARALLEL:-1}"
NICE="${FT_BUILD_NICE:-19}"

export GOFLAGS="-mod=mod"
export CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

log() { printf '[build.sh] %s\n' "$*" >&2; }

PATH_ONLY=0
if [ "${1:-}" = "--path" ]; then PATH_ONLY=1; shift; fi
want=("$@")
[ ${#want[@]} -eq 0 ] && want=(etcd kube-apiserver kube-scheduler)

# Path of one component's binary (printed for callers, e.g. harness.mjs).
bin_path() {
  case "$1" in
    etcd) echo "$BIN_DIR/etcd-$ETCD_VERSION/etcd" ;;
    kube-apiserver|kube-scheduler|kube-controller-manager) echo "$BIN_DIR/$1-$K8S_VERSION/$1" ;;
    *) log "unknown component: $1"; exit 2 ;;
  esac
}

# go build of one main package into the cache, atomically (tmp file + mv).
go_build() { # <module dir> <out> <package> [ldflags extra]
  local dir="$1" out="$2" pkg="$3" extra="${4:-}"
  mkdir -p "$(dirname "$out")"
  local start end
  start=$(date +%s)
  log "building $(basename "$out") from $pkg (go build -p $PAR under nice -n $NICE; the first build can take a long time)"
  ( cd "$dir" && nice -n "$NICE" go build -p "$PAR" -trimpath -ldflags="-s -w $extra" -o "$out.tmp.$$" "$pkg" )
  mv -f "$out.tmp.$$" "$out"
  end=$(date +%s)
  log "built $out in $((end - start))s"
  echo "built $(basename "$out") in $((end - start))s" >>"$CACHE_DIR/build-times.log"
}

# Throwaway module for etcd: the etcd server module's root package is the etcd main.
prepare_etcd_module() {
  local dir="$SRC_DIR/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  if [ ! -f "$dir/go.mod" ]; then
    cat >"$dir/go.mod" <<GOMOD
module finetune-operator.local/controlplane-etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  fi
  echo "$dir"
}

# Throwaway module for kubernetes: k8s.io/kubernetes requires its staging modules at
# v0.0.0 and replaces them with ./staging/src/... paths, which do not apply when it is a
# dependency. Every such v0.0.0 requirement is replaced here with its published version.
prepare_k8s_module() {
  local dir="$SRC_DIR/kubernetes-$K8S_VERSION"
  mkdir -p "$dir"
  if [ ! -f "$dir/go.mod" ]; then
    local kmod
    kmod=$(cd "$dir" && GOFLAGS= go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
    [ -f "$kmod" ] || { log "could not download k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
    local staging
    staging=$(awk '/^require \(/{r=1;next} r&&/^\)/{r=0} r&&$2=="v0.0.0"{print $1}' "$kmod" | sort -u)
    [ -n "$staging" ] || { log "no staging modules found in $kmod"; exit 1; }
    {
      echo "module finetune-operator.local/controlplane-kubernetes"
      echo
      echo "go 1.26.0"
      echo
      echo "godebug default=go1.26"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      echo "replace ("
      for m in $staging; do echo "	$m => $m $K8S_STAGING_VERSION"; done
      echo ")"
    } >"$dir/go.mod.tmp"
    mv "$dir/go.mod.tmp" "$dir/go.mod"
    log "wrote $dir/go.mod ($(echo "$staging" | wc -l) staging replace lines)"
  fi
  echo "$dir"
}

k8s_ldflags() {
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local p="k8s.io/component-base/version"
  echo "-X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
}

if [ "$PATH_ONLY" = 1 ]; then
  for c in "${want[@]}"; do echo "$c=$(bin_path "$c")"; done
  exit 0
fi

mkdir -p "$BIN_DIR" "$SRC_DIR"
locked=0
for c in "${want[@]}"; do
  out=$(bin_path "$c")
  if [ -x "$out" ]; then
    [ "${FT_QUIET:-0}" = 1 ] || log "up to date: $out"
    continue
  fi
  if [ "$locked" = 0 ]; then
    # One build at a time per cache (parallel test files on a fresh machine): wait for
    # the other one, then look again.
    exec 9>"$CACHE_DIR/build.lock"
    if ! flock -n 9; then
      log "another build is running in $CACHE_DIR; waiting for it"
      flock 9
    fi
    locked=1
    if [ -x "$out" ]; then log "built meanwhile: $out"; continue; fi
  fi
  command -v go >/dev/null || { log "go not found on PATH (Go >= 1.26 is needed to build $c)"; exit 1; }
  case "$c" in
    etcd)
      dir=$(prepare_etcd_module)
      go_build "$dir" "$out" "go.etcd.io/etcd/server/v3"
      ;;
    kube-apiserver|kube-scheduler|kube-controller-manager)
      dir=$(prepare_k8s_module)
      go_build "$dir" "$out" "k8s.io/kubernetes/cmd/$c" "$(k8s_ldflags)"
      ;;
  esac
done

# Machine-readable summary on stdout: <component>=<path>
for c in "${want[@]}"; do echo "$c=$(bin_path "$c")"; done
