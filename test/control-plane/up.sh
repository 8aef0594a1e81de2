#!/usr/bin/env bash
# Starts a real Kubernetes control plane on 127.0.0.1 for tests and local development:
# etcd + kube-apiserver + kube-scheduler (+ optionally kube-controller-manager), no kubelet.
#
#   test/control-plane/up.sh            (or: npm run cluster:up)
#   export KUBECONFIG=/tmp/finetune-cluster/kubeconfig
#   test/control-plane/down.sh          (or: npm run cluster:down)
#
# Env:
#   FT_CLUSTER_DIR      state dir: certs, etcd data, logs, pid files, kubeconfig
#                       (default /tmp/finetune-cluster)
#   FT_CACHE_DIR        binary cache (see build.sh)
#   FT_ETCD_PORT, FT_ETCD_PEER_PORT, FT_APISERVER_PORT
#                       fixed ports (default: free ports picked at start)
#   FT_SCHEDULER        1 (default) = start kube-scheduler (built if missing); 0 = do not;
#                       auto = start it only if it is already built
#   FT_CONTROLLERS      1 = also start kube-controller-manager (built if missing) with the
#                       controllers in FT_CONTROLLERS_LIST (default: garbage collector,
#                       namespace deletion, default ServiceAccounts, kube-root-ca.crt,
#                       ClusterRole aggregation); 0 (default) = do not
#   FT_READY_TIMEOUT    seconds to wait for /readyz (default 180)
#   FT_OWNER_PID        if set, a watchdog runs down.sh once that process is gone
#                       (used by harness.mjs so a crashed test run leaves nothing behind)
#   FT_QUIET            1 = print only the machine-readable summary
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${FT_CLUSTER_DIR:-/tmp/finetune-cluster}"
READY_TIMEOUT="${FT_READY_TIMEOUT:-180}"
SCHEDULER="${FT_SCHEDULER:-1}"
CONTROLLERS="${FT_CONTROLLERS:-0}"
CONTROLLERS_LIST="${FT_CONTROLLERS_LIST:-garbage-collector-controller,namespace-controller,serviceaccount-controller,root-ca-certificate-publisher-controller,clusterrole-aggregation-controller}"
MARKER=".finetune-control-plane"

say() { [ "${FT_QUIET:-0}" = 1 ] || printf '[up.sh] %s\n' "$*" >&2; }
die() { printf '[up.sh] ERROR: %s\n' "$*" >&2; exit 1; }

for t in openssl curl node; do command -v "$t" >/dev/null || die "$t is required"; done

alive() { # <pid file> <binary name>
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

# Already running here? Then only print how to use it.
if [ -f "$DIR/$MARKER" ] && alive "$DIR/run/kube-apiserver.pid" kube-apiserver && alive "$DIR/run/etcd.pid" etcd; then
  say "control plane already running in $DIR"
  [ "${FT_QUIET:-0}" = 1 ] || cat "$DIR/usage.txt" >&2
  cat "$DIR/cluster.env"
  exit 0
fi
if [ -e "$DIR" ]; then
  if [ -f "$DIR/$MARKER" ]; then
    say "cleaning up stale state in $DIR"
    FT_CLUSTER_DIR="$DIR" FT_QUIET=1 bash "$HERE/down.sh" || true
  elif [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
    die "$DIR exists, is not empty and is not a control-plane dir; refusing to use it"
  fi
fi

# --- binaries ---------------------------------------------------------------
components=(etcd kube-apiserver)
case "$SCHEDULER" in
  1|true|yes) components+=(kube-scheduler) ;;
esac
case "$CONTROLLERS" in
  1|true|yes) components+=(kube-controller-manager) ;;
esac
declare -A BIN
while IFS='=' read -r k v; do BIN[$k]="$v"; done < <(bash "$HERE/build.sh" "${components[@]}")
if [ "$SCHEDULER" = auto ]; then
  s=$(bash "$HERE/build.sh" --path kube-scheduler | sed -n 's/^kube-scheduler=//p')
  [ -x "$s" ] && BIN[kube-scheduler]="$s"
fi

mkdir -p "$DIR"/{pki,etcd,logs,run}
chmod 700 "$DIR/pki" "$DIR/etcd"
touch "$DIR/$MARKER"
DIR="$(cd "$DIR" && pwd)"
PKI="$DIR/pki"

# --- ports --------------------------------------------------------------------
# Ask the kernel for free ports (bind to port 0, read it back, close).
read -r P_ETCD P_PEER P_API < <(node -e '
const net = require("node:net");
const n = 3, servers = [], ports = [];
let left = n;
for (let i = 0; i < n; i++) {
  const s = net.createServer(); servers.push(s);
  s.listen(0, "127.0.0.1", () => { ports[i] = s.address().port; if (--left === 0) { console.log(ports.join(" ")); servers.forEach((x) => x.close()); } });
}')
P_ETCD="${FT_ETCD_PORT:-$P_ETCD}"
P_PEER="${FT_ETCD_PEER_PORT:-$P_PEER}"
P_API="${FT_APISERVER_PORT:-$P_API}"

# --- certificates and keys ------------------------------------------------------
say "generating certificates in $PKI"
ossl() { openssl "$@" 2>>"$DIR/logs/openssl.log"; }
ec_key() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
ec_key "$PKI/ca.key"
ossl req -x509 -new -key "$PKI/ca.key" -sha256 -days 3650 -subj "/CN=finetune-test-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
  -out "$PKI/ca.crt"
sign() { # <name> <subject> <extendedKeyUsage> [subjectAltName]
  local name="$1" subj="$2" eku="$3" san="${4:-}"
  ec_key "$PKI/$name.key"
  ossl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$PKI/$name.ext"
  ossl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -sha256 -days 3650 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt"
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}
sign apiserver "/CN=kube-apiserver" serverAuth \
  "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
sign admin "/O=system:masters/CN=admin" clientAuth
sign scheduler "/CN=system:kube-scheduler" clientAuth
sign controller-manager "/CN=system:kube-controller-manager" clientAuth
# Service-account token signing key pair (TokenRequest API, `kubectl create token`).
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa.key"
ossl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
# Static bearer token for clients that prefer a token over a client cert.
ADMIN_TOKEN="$(openssl rand -hex 24)"
echo "$ADMIN_TOKEN" >"$PKI/admin.token"
echo "$ADMIN_TOKEN,admin-token,admin-token,system:masters" >"$PKI/tokens.csv"
chmod 600 "$PKI"/*.key "$PKI/admin.token" "$PKI/tokens.csv"

b64() { base64 -w0 <"$1"; }
kubeconfig() { # <file> <user> <crt> <key>
  cat >"$1" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: finetune-test
  cluster:
    server: https://127.0.0.1:$P_API
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(b64 "$3")
    client-key-data: $(b64 "$4")
contexts:
- name: finetune-test
  context:
    cluster: finetune-test
    user: $2
    namespace: default
current-context: finetune-test
KCFG
  chmod 600 "$1"
}
kubeconfig "$DIR/kubeconfig" admin "$PKI/admin.crt" "$PKI/admin.key"
kubeconfig "$DIR/scheduler.kubeconfig" system:kube-scheduler "$PKI/scheduler.crt" "$PKI/scheduler.key"
kubeconfig "$DIR/controller-manager.kubeconfig" system:kube-controller-manager "$PKI/controller-manager.crt" "$PKI/controller-manager.key"

# --- processes ---------------------------------------------------------------------
start() { # <name> <binary> args...  (detached, own session, stdio to the log file)
  local name="$1"; shift
  setsid "$@" </dev/null >>"$DIR/logs/$name.log" 2>&1 &
  echo $! >"$DIR/run/$name.pid"
}
fail() {
  printf '[up.sh] ERROR: %s\n' "$1" >&2
  for f in "$DIR"/logs/{etcd,kube-apiserver,kube-scheduler,kube-controller-manager}.log; do [ -s "$f" ] && { echo "--- tail of $f" >&2; tail -n 25 "$f" >&2; }; done
  FT_CLUSTER_DIR="$DIR" FT_QUIET=1 FT_KEEP_STATE="${FT_KEEP_STATE:-1}" bash "$HERE/down.sh" >/dev/null 2>&1 || true
  exit 1
}
wait_for() { # <what> <timeout s> <pid file> <binary> <command...>
  local what="$1" timeout="$2" pidf="$3" bin="$4"; shift 4
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    alive "$pidf" "$bin" || fail "$what exited during startup (state kept in $DIR)"
    [ $SECONDS -lt $deadline ] || fail "timed out after ${timeout}s waiting for $what (state kept in $DIR)"
    sleep 0.5
  done
}

say "starting etcd on 127.0.0.1:$P_ETCD"
start etcd "${BIN[etcd]}" \
  --name=finetune-test \
  --data-dir="$DIR/etcd" \
  --listen-client-urls="http://127.0.0.1:$P_ETCD" \
  --advertise-client-urls="http://127.0.0.1:$P_ETCD" \
  --listen-peer-urls="http://127.0.0.1:$P_PEER" \
  --initial-advertise-peer-urls="http://127.0.0.1:$P_PEER" \
  --initial-cluster="finetune-test=http://127.0.0.1:$P_PEER" \
  --initial-cluster-state=new \
  --unsafe-no-fsync \
  --quota-backend-bytes=$((1024 * 1024 * 1024)) \
  --log-level=warn
wait_for "etcd /health" 60 "$DIR/run/etcd.pid" etcd \
  curl -fsS --max-time 2 "http://127.0.0.1:$P_ETCD/health"

say "starting kube-apiserver on https://127.0.0.1:$P_API"
start kube-apiserver "${BIN[kube-apiserver]}" \
  --etcd-servers="http://127.0.0.1:$P_ETCD" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="$P_API" \
  --tls-cert-file="$PKI/apiserver.crt" \
  --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --token-auth-file="$PKI/tokens.csv" \
  --authorization-mode=Node,RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" \
  --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --endpoint-reconciler-type=none \
  --disable-admission-plugins=ServiceAccount \
  --allow-privileged=true \
  --profiling=false \
  --v="${FT_APISERVER_V:-1}"
wait_for "kube-apiserver /readyz" "$READY_TIMEOUT" "$DIR/run/kube-apiserver.pid" kube-apiserver \
  curl -fsS --max-time 5 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" "https://127.0.0.1:$P_API/readyz"
# The apiserver creates the default namespaces shortly after it is ready.
wait_for "namespace default" 60 "$DIR/run/kube-apiserver.pid" kube-apiserver \
  curl -fsS --max-time 5 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" "https://127.0.0.1:$P_API/api/v1/namespaces/default"

if [ -n "${BIN[kube-scheduler]:-}" ]; then
  say "starting kube-scheduler"
  start kube-scheduler "${BIN[kube-scheduler]}" \
    --kubeconfig="$DIR/scheduler.kubeconfig" \
    --leader-elect=false \
    --bind-address=127.0.0.1 \
    --secure-port=0 \
    --v=1
  sleep 0.5
  alive "$DIR/run/kube-scheduler.pid" kube-scheduler || fail "kube-scheduler exited during startup"
fi

if [ -n "${BIN[kube-controller-manager]:-}" ]; then
  say "starting kube-controller-manager ($CONTROLLERS_LIST)"
  start kube-controller-manager "${BIN[kube-controller-manager]}" \
    --kubeconfig="$DIR/controller-manager.kubeconfig" \
    --controllers="$CONTROLLERS_LIST" \
    --use-service-account-credentials=true \
    --root-ca-file="$PKI/ca.crt" \
    --leader-elect=false \
    --bind-address=127.0.0.1 \
    --secure-port=0 \
    --v=1
  sleep 0.5
  alive "$DIR/run/kube-controller-manager.pid" kube-controller-manager || fail "kube-controller-manager exited during startup"
fi

if [ -n "${FT_OWNER_PID:-}" ]; then
  # Watchdog: tear everything down once the owning process (a test run) is gone.
  FT_CLUSTER_DIR="$DIR" FT_WATCHDOG=1 setsid bash -c '
    while kill -0 "$1" 2>/dev/null && [ -f "$2/'"$MARKER"'" ]; do sleep 1; done
    [ -f "$2/'"$MARKER"'" ] && FT_QUIET=1 bash "$3/down.sh"
  ' watchdog "$FT_OWNER_PID" "$DIR" "$HERE" </dev/null >>"$DIR/logs/watchdog.log" 2>&1 &
  echo $! >"$DIR/run/watchdog.pid"
fi

cat >"$DIR/cluster.env" <<ENV
KUBECONFIG=$DIR/kubeconfig
FT_CLUSTER_DIR=$DIR
FT_APISERVER_URL=https://127.0.0.1:$P_API
FT_APISERVER_PORT=$P_API
FT_ETCD_URL=http://127.0.0.1:$P_ETCD
FT_CA_FILE=$PKI/ca.crt
FT_ADMIN_TOKEN_FILE=$PKI/admin.token
FT_SCHEDULER=$([ -n "${BIN[kube-scheduler]:-}" ] && echo 1 || echo 0)
FT_CONTROLLERS=$([ -n "${BIN[kube-controller-manager]:-}" ] && echo 1 || echo 0)
ENV
cat >"$DIR/usage.txt" <<USAGE
Control plane is up (etcd + kube-apiserver$([ -n "${BIN[kube-scheduler]:-}" ] && echo " + kube-scheduler")$([ -n "${BIN[kube-controller-manager]:-}" ] && echo " + kube-controller-manager"), no kubelet).
  API server : https://127.0.0.1:$P_API
  etcd       : http://127.0.0.1:$P_ETCD
  state/logs : $DIR
Use it:
  export KUBECONFIG=$DIR/kubeconfig
  kubectl get ns
Stop it:
  npm run cluster:down   (or FT_CLUSTER_DIR=$DIR test/control-plane/down.sh)
USAGE
[ "${FT_QUIET:-0}" = 1 ] || cat "$DIR/usage.txt" >&2
cat "$DIR/cluster.env"
