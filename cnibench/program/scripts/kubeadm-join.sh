#!/usr/bin/env bash
# `kubeadm join` of a worker node. Runs as root over SSH (components/cluster.py).
#
# Inputs (environment):
#   API_ENDPOINT   control-plane address:port
#   JOIN_TOKEN     bootstrap token (a secret: it reaches this script only through the SSH session)
#   CA_CERT_HASH   sha256:<hex> of the cluster CA's public key
#   NODE_NAME      the Kubernetes node name
set -euo pipefail
: "${API_ENDPOINT:?API_ENDPOINT is required}"
: "${JOIN_TOKEN:?JOIN_TOKEN is required}"
: "${CA_CERT_HASH:?CA_CERT_HASH is required}"
: "${NODE_NAME:?NODE_NAME is required}"

if [ -f /etc/kubernetes/kubelet.conf ]; then
    echo "already joined; not running kubeadm join again"
    exit 0
fi
kubeadm join "$API_ENDPOINT" \
    --token "$JOIN_TOKEN" \
    --discovery-token-ca-cert-hash "$CA_CERT_HASH" \
    --node-name "$NODE_NAME"
