"""What every CNI installer shares: the context it is given, what it hands back, node scripts.

An installer (``flannel.install``, ``kube_router.install``, ``cilium.install``,
``ipvlan.install``) reads its settings from the variant's catalog record only, adds the values
that only the cluster knows (pod CIDR, API server address, route table, subnets, MTU), declares
its resources under the ``CniInstall`` component and returns an :class:`Installed` that names
the workloads the readiness gate waits for.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s
from pulumi_command import remote

from cnibench.config import StackConfig
from cnibench.program.cluster import remote_script

# roles of the node set; with controlPlaneOnBenchmarkNode the control plane is the client node
from cnibench.tags import BENCHMARK_ROLES, CONTROL_PLANE
from cnibench.variants import Variant

SCRIPTS = files("cnibench.program.cni") / "scripts"  # package data


# Annotation that tells pulumi-kubernetes not to wait for a workload's rollout itself: the
# readiness gate waits instead and, on a timeout, names the variant and the pods not ready.
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}


@dataclass(frozen=True)
class Installed:
    """What an installer declared, and what the readiness gate must wait for.

    ``workloads`` are ``kind/name`` in ``namespace`` (``kubectl rollout status`` syntax);
    ``fingerprint`` changes whenever the installed configuration changes, so the gate re-runs.
    """

    namespace: str
    workloads: tuple[str, ...]
    resources: tuple[pulumi.Resource, ...]
    fingerprint: pulumi.Output[str]
    # facts for the stack output / report (e.g. how the pod MTU is obtained)
    summary: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class CniContext:
    """Everything an installer may read. ``cluster``, ``nodes`` and ``network`` follow the
    interface contract of cnibench/program/cluster.py, nodes.py and network.py."""

    name: str
    cfg: StackConfig
    variant: Variant
    cluster: Any
    nodes: Mapping[str, Any]  # role -> Node
    network: Any
    parent: pulumi.Resource

    def k8s_opts(self, **extra: Any) -> pulumi.ResourceOptions:
        """Options of a Kubernetes object: the cluster's provider, after every node joined."""
        depends = list(getattr(self.cluster, "ready", []) or []) + list(extra.pop("depends_on", []))
        return pulumi.ResourceOptions(
            parent=self.parent, provider=self.cluster.provider, depends_on=depends, **extra
        )

    def node_opts(self, **extra: Any) -> pulumi.ResourceOptions:
        depends = list(getattr(self.cluster, "ready", []) or []) + list(extra.pop("depends_on", []))
        return pulumi.ResourceOptions(parent=self.parent, depends_on=depends, **extra)

    @property
    def api_server_url(self) -> pulumi.Output[str]:
        """``https://<control plane private IP>:<port>``: reachable from the host network of
        every node without a Service VIP (kube-proxy may be absent)."""
        return pulumi.Output.concat(
            "https://", self.cluster.api_server_host, ":", str(self.cluster.api_server_port)
        )

    def benchmark_nodes(self) -> list[tuple[str, Any]]:
        """(role, node) of the benchmark nodes, each node once."""
        seen: list[Any] = []
        out = []
        for role in BENCHMARK_ROLES:
            node = self.nodes[role]
            if any(node is s for s in seen):
                continue
            seen.append(node)
            out.append((role, node))
        return out

    def node_names(self) -> list[pulumi.Output[str]]:
        return [pulumi.Output.from_input(node.node_name) for _, node in self.benchmark_nodes()]


def nodes_of(nodes: Any) -> Mapping[str, Any]:
    """Accept a NodePair (``.nodes``) or its role -> Node mapping."""
    mapping = getattr(nodes, "nodes", nodes)
    missing = [r for r in BENCHMARK_ROLES + (CONTROL_PLANE,) if r not in mapping]
    if missing:
        raise ValueError(f"node set lacks the role(s) {', '.join(missing)}; has {', '.join(mapping)}")
    return mapping


# The pod-template annotation that carries a checksum of a CNI's ConfigMap: a new checksum is a
# new pod template, so the DaemonSet rolls its pods onto the new config (flannel and kube-router
# read their ConfigMaps only when a pod starts; nothing else in their templates changes).
CONFIG_CHECKSUM_ANNOTATION = "cnibench.io/config-checksum"


def template_metadata(labels: Mapping[str, str], config_checksum: Any = None) -> dict[str, Any]:
    """A DaemonSet pod template's metadata: its labels, and the ConfigMap checksum if given."""
    meta: dict[str, Any] = {"labels": dict(labels)}
    if config_checksum is not None:
        meta["annotations"] = {CONFIG_CHECKSUM_ANNOTATION: config_checksum}
    return meta


def fingerprint(*parts: Any) -> pulumi.Output[str]:
    """A short stable hash of ``parts`` (Outputs allowed), for ``triggers``."""

    def digest(values: list[Any]) -> str:
        text = json.dumps(values, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    return pulumi.Output.all(*parts).apply(digest)


def detected_mtu_matches(variant: Variant, cni_subtracts: int) -> bool:
    """True when the CNI's own MTU detection (interface MTU minus ``cni_subtracts``, the
    overhead its code subtracts) yields the catalog's pod MTU; otherwise the installer must set
    the MTU explicitly (underlay MTU minus the catalog overhead)."""
    return cni_subtracts == variant.encap_overhead


def script_create(script: str, env: Mapping[str, str]) -> str:
    """The ``create`` text running ``cnibench/program/cni/scripts/<script>`` as root with ``env``:
    the cluster's ``remote_script`` (script in a quoted here-document, ``sudo env K=V``)."""
    return remote_script(script, env, scripts_dir=SCRIPTS)


def node_script(
    resource_name: str,
    connection: Any,
    script: str,
    env: Mapping[str, pulumi.Input[str]],
    triggers: Sequence[pulumi.Input[Any]],
    opts: pulumi.ResourceOptions,
) -> remote.Command:
    """Run ``cnibench/program/cni/scripts/<script>`` on a node over SSH with ``env``."""
    keys = list(env)
    create = pulumi.Output.all(*[env[k] for k in keys]).apply(
        lambda values: script_create(script, dict(zip(keys, (str(v) for v in values))))
    )
    return remote.Command(
        resource_name,
        connection=connection,
        create=create,
        triggers=list(triggers),
        add_previous_output_in_env=False,
        opts=opts,
    )


def service_account_rbac(
    ctx: CniContext,
    name: str,
    namespace: pulumi.Input[str],
    rules: list[dict],
    labels: Mapping[str, str] | None = None,
) -> tuple[k8s.core.v1.ServiceAccount, k8s.rbac.v1.ClusterRole, k8s.rbac.v1.ClusterRoleBinding]:
    """ServiceAccount ``name`` in ``namespace``, ClusterRole ``name`` with ``rules`` and the
    ClusterRoleBinding between them (the RBAC block both upstream manifests carry)."""
    opts = ctx.k8s_opts()
    meta = {"name": name, **({"labels": dict(labels)} if labels else {})}
    sa = k8s.core.v1.ServiceAccount(
        f"{ctx.name}-serviceaccount", metadata={**meta, "namespace": namespace}, opts=opts,
    )
    role = k8s.rbac.v1.ClusterRole(f"{ctx.name}-clusterrole", metadata=meta, rules=rules, opts=opts)
    binding = k8s.rbac.v1.ClusterRoleBinding(
        f"{ctx.name}-clusterrolebinding",
        metadata=meta,
        role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role.metadata["name"]},
        subjects=[{"kind": "ServiceAccount", "name": sa.metadata["name"], "namespace": sa.metadata["namespace"]}],
        opts=opts,
    )
    return sa, role, binding
