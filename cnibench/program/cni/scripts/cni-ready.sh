#!/usr/bin/env bash
# cnibench readiness gate: the benchmark starts only when the CNI is rolled out and the
# benchmark nodes are Ready. Runs as root on the control plane (components/cni/readiness.py).
#
# Environment:
#   CNIBENCH_VARIANT  the variant, named in every message
#   CNI_NAMESPACE     namespace of the CNI's workloads
#   CNI_WORKLOADS     space-separated kind/name to wait for (kubectl rollout status); may be empty
#   CNI_NODES         space-separated Kubernetes node names that must be Ready
#   CNI_TIMEOUT       seconds for everything together
#   KUBECONFIG        an admin kubeconfig
set -euo pipefail

: "${CNIBENCH_VARIANT:?}" "${CNI_NAMESPACE:?}" "${CNI_NODES:?}" "${CNI_TIMEOUT:?}"
workloads=${CNI_WORKLOADS:-}
deadline=$(($(date +%s) + CNI_TIMEOUT))

left() {
    local seconds=$((deadline - $(date +%s)))
    ((seconds > 1)) || seconds=1
    echo "${seconds}s"
}

expired() {
    (($(date +%s) >= deadline))
}

# namespace/name, phase, node and container readiness of every pod that is neither Ready nor done
not_ready_pods() {
    kubectl get pods --all-namespaces -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{"\t"}{.status.phase}{"\t"}{.spec.nodeName}{"\t"}{.status.containerStatuses[*].ready}{"\n"}{end}' |
        awk -F '\t' '$2 != "Succeeded" && ($2 != "Running" || $4 == "" || $4 ~ /false/) {
            printf "  %s phase=%s node=%s ready=%s\n", $1, $2, ($3 == "" ? "<none>" : $3), ($4 == "" ? "<none>" : $4)
        }'
}

fail() {
    {
        echo "cnibench: CNI variant $CNIBENCH_VARIANT is not ready after ${CNI_TIMEOUT}s: $*"
        echo "pods not ready:"
        not_ready_pods || echo "  (cannot list pods)"
        echo "nodes:"
        kubectl get nodes -o wide || true
        echo "latest events in $CNI_NAMESPACE:"
        kubectl -n "$CNI_NAMESPACE" get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 20 || true
    } >&2
    exit 1
}

# 1. the nodes exist (kubectl wait fails at once on a node that has not registered yet)
for node in $CNI_NODES; do
    until kubectl get node "$node" > /dev/null 2>&1; do
        expired && fail "node $node has not registered"
        sleep 5
    done
done

# 2. the CNI's workloads are rolled out on every node
for workload in $workloads; do
    until kubectl -n "$CNI_NAMESPACE" get "$workload" > /dev/null 2>&1; do
        expired && fail "$CNI_NAMESPACE/$workload does not exist"
        sleep 5
    done
    kubectl -n "$CNI_NAMESPACE" rollout status "$workload" --timeout="$(left)" ||
        fail "$CNI_NAMESPACE/$workload is not rolled out"
done

# 3. the benchmark nodes are Ready (their CNI configuration is in place)
for node in $CNI_NODES; do
    kubectl wait --for=condition=Ready "node/$node" --timeout="$(left)" > /dev/null ||
        fail "node $node is not Ready"
done

echo "cnibench: CNI variant $CNIBENCH_VARIANT ready: ${workloads:-node configuration} on nodes $CNI_NODES"
