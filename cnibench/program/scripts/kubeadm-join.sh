#!/usr/bin/env bash
# `kubeadm join` of a worker node. Runs as root over SSH (components/cluster.py).
#
# Inputs (environment):
#   API_ENDPOINT   control-plane address:port
#   JOIN_TOKEN     bootstrap token (a secret: it reaches this script only through the SSH session)
#   CA_CERT_HASH   sha256:<hex> of the cluster CA's public key
#   NODE_NAME      the Kubernetes node name
#   KUBERNETES_DIR kubeadm's directory (default /etc/kubernetes; the tests point it elsewhere)
set -euo pipefail
: "${API_ENDPOINT:?API_ENDPOINT is required}"
: "${JOIN_TOKEN:?JOIN_TOKEN is required}"
: "${CA_CERT_HASH:?CA_CERT_HASH is required}"
: "${NODE_NAME:?NODE_NAME is required}"
k8s_dir=${KUBERNETES_DIR:-/etc/kubernetes}

# The discovery hash of the CA this node trusts, computed as the kubeadm join reference gives it
# (kubernetes.io/docs/reference/setup-tools/kubeadm/kubeadm-join: "openssl x509 -pubkey -in
# /etc/kubernetes/pki/ca.crt | openssl rsa -pubin -outform der 2>/dev/null | openssl dgst -sha256
# -hex | sed 's/^.* //'"; kubeadm's CA key is RSA unless encryptionAlgorithm says otherwise).
current_ca_hash() {
    openssl x509 -pubkey -in "$k8s_dir/pki/ca.crt" |
        openssl rsa -pubin -outform der 2>/dev/null |
        openssl dgst -sha256 -hex | sed 's/^.* //'
}

if [ -f "$k8s_dir/kubelet.conf" ]; then
    if [ -f "$k8s_dir/pki/ca.crt" ] && [ "sha256:$(current_ca_hash)" = "$CA_CERT_HASH" ]; then
        echo "already joined to this cluster; not running kubeadm join again"
        exit 0
    fi
    # joined to another cluster (the control plane was replaced): leave it first
    echo "joined to another cluster (CA differs): kubeadm reset, then join"
    kubeadm reset --force
fi
kubeadm join "$API_ENDPOINT" \
    --token "$JOIN_TOKEN" \
    --discovery-token-ca-cert-hash "$CA_CERT_HASH" \
    --node-name "$NODE_NAME"
