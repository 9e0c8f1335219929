#!/usr/bin/env bash
# Wait until a node has registered, then label it. Runs as root on the control plane over SSH
# (components/cluster.py).
#
# Inputs (environment):
#   NODE_NAME    the Kubernetes node name
#   NODE_LABELS  space-separated key=value labels, e.g. "cnibench.io/role=client"
set -euo pipefail
: "${NODE_NAME:?NODE_NAME is required}"
: "${NODE_LABELS:?NODE_LABELS is required}"
export KUBECONFIG=/etc/kubernetes/admin.conf

for _ in $(seq 1 60); do
    if kubectl get node "$NODE_NAME" >/dev/null 2>&1; then
        break
    fi
    sleep 5
done
read -r -a labels <<<"$NODE_LABELS"
kubectl label node "$NODE_NAME" "${labels[@]}" --overwrite
kubectl get node "$NODE_NAME" --show-labels
