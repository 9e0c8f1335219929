"""The readiness gate: a remote command on the control plane that the benchmark depends on.

It runs scripts/cni-ready.sh: wait for the CNI's workloads to roll out (``kubectl rollout
status``) and for both benchmark nodes to be Ready (``kubectl wait``), all within
``READY_TIMEOUT`` seconds; on a timeout it fails with the variant's name, the pods that are not
ready, the nodes and the latest events of the CNI's namespace.
"""

from __future__ import annotations

import pulumi
from pulumi_command import remote

from cnibench.program.cni.base import CONTROL_PLANE, CniContext, Installed, node_script

SCRIPT = "cni-ready.sh"
READY_TIMEOUT = 600  # seconds: image pulls + rollout of a DaemonSet on fresh nodes
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"  # written by kubeadm init


def readiness_gate(ctx: CniContext, installed: Installed, timeout: int = READY_TIMEOUT) -> remote.Command:
    nodes = pulumi.Output.all(*ctx.node_names()).apply(lambda names: " ".join(names))
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
        },
        triggers=[installed.fingerprint],
        opts=ctx.node_opts(depends_on=list(installed.resources)),
    )
