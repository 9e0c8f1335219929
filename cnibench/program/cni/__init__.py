"""Install the variant's CNI on the cluster, from its catalog record alone.

``install_cni(name, cfg, cluster, nodes, network)`` picks the installer by ``variant.cni``
(flannel, kube-router, cilium: Kubernetes objects or a Helm release through the cluster's
``kubernetes.Provider``; ipvlan: node-level configuration over SSH) and adds the readiness gate
(``CniInstall.ready``) the benchmark depends on.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import pulumi
from pulumi_command import remote

from cnibench.config import StackConfig
from cnibench.program.cni import cilium, flannel, ipvlan, kube_router
from cnibench.program.cni.base import CniContext, Installed, nodes_of
from cnibench.program.cni.readiness import readiness_gate

INSTALLERS: Mapping[str, Callable[[CniContext], Installed]] = {
    "flannel": flannel.install,
    "kube-router": kube_router.install,
    "cilium": cilium.install,
    "ipvlan": ipvlan.install,
}


class CniInstall(pulumi.ComponentResource):
    """The CNI of one variant. ``ready`` is the readiness gate (CNI rolled out, both benchmark
    nodes Ready); ``installed`` what the installer declared."""

    ready: remote.Command

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        cluster: Any,
        nodes: Any,
        network: Any,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cnibench:index:CniInstall", name, None, opts)
        variant = cfg.variant_record
        try:
            installer = INSTALLERS[variant.cni]
        except KeyError:
            raise ValueError(
                f"{variant.name}: no installer for CNI {variant.cni!r}; known: {', '.join(INSTALLERS)}"
            ) from None
        self.variant = variant
        ctx = CniContext(name, cfg, variant, cluster, nodes_of(nodes), network, parent=self)
        self.installed = installer(ctx)
        self.ready = readiness_gate(ctx, self.installed)
        self.summary = dict(self.installed.summary)
        self.register_outputs({"ready": self.ready.stdout})

    def outputs(self) -> dict[str, Any]:
        """The ``cni`` stack output: what was installed and how, and the gate's report."""
        v = self.variant
        return {
            "variant": v.name,
            "cni": v.cni,
            "version": v.install.version,
            "install": v.install.method.value,
            "source": v.install.source,
            "namespace": self.installed.namespace,
            "workloads": list(self.installed.workloads),
            **self.summary,
            "ready": self.ready.stdout,
        }


# The contract's entry point: install_cni(name, cfg, cluster, nodes, network, opts=None) -> CniInstall
install_cni = CniInstall


__all__ = ["CniInstall", "INSTALLERS", "install_cni"]
