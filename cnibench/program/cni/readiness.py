"""The readiness gate: a remote command on the control plane that the benchmark depends on.

It runs scripts/cni-ready.sh: wait for the CNI's workloads to roll out (``kubectl rollout
status``), for both benchmark nodes to be Ready and for CoreDNS to be Available (``kubectl
wait``), then check the cluster's datapaths with two throw-away pods, one on each benchmark node
(pod-to-pod, pod-to-service, DNS, pod-to-node; and pod-to-metadata, which must be refused: no pod
reads the instance metadata service), all within ``READY_TIMEOUT`` seconds. A failure
names the variant and the path that failed, with the pods that are not ready, the nodes and the
latest events.

A variant without a service path (catalog ``no_service_path``) skips the checks that cannot pass
on it, with that reason: the gate prints them as skipped, never as passed.
"""

from __future__ import annotations

import pulumi
from pulumi_command import remote

from cnibench.program.cni.base import CONTROL_PLANE, CniContext, Installed, node_script
from cnibench.variants import Variant

SCRIPT = "cni-ready.sh"
READY_TIMEOUT = 600  # seconds: image pulls + rollout of a DaemonSet on fresh nodes
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"  # written by kubeadm init
# the gate's checks (cni-ready.sh CHECKS) that need a service path: ClusterIP DNAT for the
# Service and for the cluster DNS behind it, and the kubelet reaching its own node's pods for
# CoreDNS's readiness probe. ipvlan l2 has neither: its pods bypass the node's netfilter, and a
# node cannot reach its own ipvlan pods (the catalog's ``no_service_path`` says why)
NO_SERVICE_PATH_SKIPS = ("coredns", "pod-to-service", "dns")


def skipped_checks(variant: Variant) -> tuple[tuple[str, ...], str]:
    """The checks the gate skips for ``variant`` and why (``()``, ``""``: none)."""
    if variant.no_service_path:
        return NO_SERVICE_PATH_SKIPS, variant.no_service_path
    return (), ""


def readiness_gate(ctx: CniContext, installed: Installed, timeout: int = READY_TIMEOUT) -> remote.Command:
    nodes = pulumi.Output.all(*ctx.node_names()).apply(lambda names: " ".join(names))
    skips, reason = skipped_checks(ctx.variant)
    return node_script(
        f"{ctx.name}-ready",
        ctx.cluster.connection(CONTROL_PLANE),
        SCRIPT,
        env={
            "KUBECONFIG": ADMIN_KUBECONFIG,
            "CNIBENCH_VARIANT": ctx.variant.name,
            "CNI_NAMESPACE": installed.namespace,
            "CNI_WORKLOADS": " ".join(installed.workloads),
            "CNI_NODES": nodes,
            "CNI_TIMEOUT": str(timeout),
            "CNI_SKIP_CHECKS": " ".join(skips),
            "CNI_SKIP_REASON": reason,
        },
        triggers=[installed.fingerprint],
        opts=ctx.node_opts(depends_on=list(installed.resources)),
    )
