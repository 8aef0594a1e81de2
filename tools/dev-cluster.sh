#!/usr/bin/env bash
# A development cluster on this machine: the real control plane of test/control-plane (etcd,
# kube-apiserver, kube-scheduler, kube-controller-manager for garbage collection), the
# FineTuneJob CRD, and the node agent of test/node-agent playing two GPU nodes.
#
#   tools/dev-cluster.sh up      (npm run cluster:up)    prints the KUBECONFIG to export
#   tools/dev-cluster.sh down    (npm run cluster:down)
#
# The controller is not started: run `npx ftjob controller --kubeconfig ...` yourself (the
# printed instructions say how), so you can watch its log and restart it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${FT_CLUSTER_DIR:-/tmp/finetune-cluster}"
CRD="$ROOT/deploy/helm/finetune-operator/crds/finetunejobs.finetune.dev.yaml"

case "${1:-}" in
  up)
    FT_CLUSTER_DIR="$DIR" FT_CONTROLLERS=1 FT_QUIET=1 bash "$ROOT/test/control-plane/up.sh" >/dev/null
    export KUBECONFIG="$DIR/kubeconfig"
    kubectl apply --server-side -f "$CRD" >/dev/null
    kubectl wait --for=condition=Established --timeout=60s crd/finetunejobs.finetune.dev >/dev/null
    nohup node "$ROOT/test/node-agent/main.mjs" --kubeconfig "$KUBECONFIG" --workdir "$DIR/node-agent" \
      --node node-a:2 --node node-b:2 >"$DIR/logs/node-agent.log" 2>&1 &
    echo $! >"$DIR/run/node-agent.pid"
    mkdir -p "$DIR/examples"
    for example in "$ROOT"/examples/cluster/*.yaml; do
      node "$ROOT/tools/local-example.mjs" "$example" "$DIR/results" >"$DIR/examples/$(basename "$example")"
    done
    for _ in $(seq 1 60); do
      [ "$(kubectl get nodes --no-headers 2>/dev/null | grep -c ' Ready')" -ge 2 ] && break
      sleep 0.5
    done
    cat <<USAGE
Development cluster is up: etcd, kube-apiserver, kube-scheduler, kube-controller-manager, the
FineTuneJob CRD, and a node agent running pods as local processes on node-a and node-b (2 GPUs each).
State and logs: $DIR (node agent: $DIR/logs/node-agent.log, pod logs under $DIR/node-agent/pods/)

  export KUBECONFIG=$KUBECONFIG
  npx ftjob controller --kubeconfig \$KUBECONFIG --worker-image local/ftjob:dev &
  kubectl apply -f $DIR/examples/digits-5to9.yaml    (examples/cluster/digits-5to9.yaml with
                                                      hostPath folders instead of the image and PVC)
  kubectl get ftj -w                                  (results: $DIR/results/finetune-results/)

Stop it: npm run cluster:down
USAGE
    ;;
  down)
    if [ -f "$DIR/run/node-agent.pid" ]; then
      pid="$(cat "$DIR/run/node-agent.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$DIR/run/node-agent.pid"
    fi
    FT_CLUSTER_DIR="$DIR" bash "$ROOT/test/control-plane/down.sh"
    ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
