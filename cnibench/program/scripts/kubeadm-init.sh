#!/usr/bin/env bash
# `kubeadm init` on the control-plane node. Runs as root over SSH (components/cluster.py).
#
# Inputs:
#   KUBEADM_CONFIG  (environment) the InitConfiguration + ClusterConfiguration documents, with
#                   @KUBERNETES_VERSION@ where the installed kubeadm's own version goes
#   "$@"            extra `kubeadm init` flags, e.g. --skip-phases=addon/kube-proxy (kubeadm
#                   accepts --skip-* flags together with --config: kubernetes/kubernetes
#                   cmd/kubeadm/app/apis/kubeadm/validation/validation.go, isAllowedFlag)
#
# The bootstrap token is not printed (--skip-token-print): the join command is created by a
# separate step whose output is a secret.
set -euo pipefail
: "${KUBEADM_CONFIG:?KUBEADM_CONFIG is required}"

config=/etc/cnibench/kubeadm-init.yaml
install -d -m 0700 /etc/cnibench
version="$(kubeadm version -o short)"
# created 0600 before anything is written into it (it holds the bootstrap token)
install -m 0600 /dev/null "$config"
printf '%s\n' "$KUBEADM_CONFIG" | sed "s/@KUBERNETES_VERSION@/${version}/" >"$config"

if [ -f /etc/kubernetes/admin.conf ]; then
    echo "already initialised; not running kubeadm init again"
else
    kubeadm init --config "$config" --skip-token-print "$@"
fi

export KUBECONFIG=/etc/kubernetes/admin.conf
for _ in $(seq 1 60); do
    if kubectl get --raw /readyz >/dev/null 2>&1; then
        break
    fi
    sleep 5
done
kubectl get --raw /readyz
echo
kubectl get nodes -o wide
