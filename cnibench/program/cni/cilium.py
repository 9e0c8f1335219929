"""cilium as a ``helm.v3.Release`` of the pinned chart from the official repository.

Design notes and their sources: docs/cni.md (cilium).
"""

from __future__ import annotations

from typing import Any, Mapping

import pulumi
import pulumi_kubernetes as k8s

from cnibench.program.cni.base import CniContext, Installed, detected_mtu_matches, fingerprint
from cnibench.variants import thaw

NAMESPACE = "kube-system"
RELEASE = "cilium"
DAEMONSET = "cilium"
OPERATOR = "cilium-operator"
# cilium pkg/mtu/mtu.go: TunnelOverhead = 50 (outer IPv4 20 + UDP 8 + VXLAN/Geneve 8 + inner
# Ethernet 14), subtracted whenever a tunnel is on.
TUNNEL_OVERHEAD = 50
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"  # set by kubeadm


def _merge(base: dict, extra: Mapping[str, Any]) -> dict:
    """Deep-merge ``extra`` into ``base`` (what Helm does with values)."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def routing_mode(values: Mapping[str, Any]) -> str:
    """The routing mode the chart renders: an empty ``routingMode`` means tunnel
    (templates/cilium-configmap.yaml: ``routingMode | default "tunnel"`` outside GKE), ENI too."""
    return values.get("routingMode") or "tunnel"


def ipam_mode(values: Mapping[str, Any]) -> str:
    return (values.get("ipam") or {}).get("mode") or "cluster-pool"  # values.yaml default


def helm_values(
    variant_values: Mapping[str, Any],
    *,
    replaces_kube_proxy: bool,
    api_server_host: Any,
    api_server_port: int,
    pod_cidr: str,
    node_mask: int,
    subnet_ids: list[Any],
    underlay_mtu: int | None,
) -> dict:
    values = thaw(variant_values)
    kpr = values.get("kubeProxyReplacement", "false")
    if kpr not in ("true", "false") or (kpr == "true") != replaces_kube_proxy:
        raise ValueError(
            f"cilium kubeProxyReplacement must be the string 'true' or 'false' and agree with the "
            f"catalog's replaces_kube_proxy={replaces_kube_proxy}; got {kpr!r}"
        )
    extra: dict[str, Any] = {
        "kubeProxyReplacement": kpr,
        "k8sServiceHost": api_server_host,
        # a string: numbers reach Helm as JSON floats; the chart quotes the value either way
        "k8sServicePort": str(api_server_port),
        "operator": {
            "replicas": 1,
            "nodeSelector": {"kubernetes.io/os": "linux", CONTROL_PLANE_LABEL: ""},
            # chart values.yaml: "Roll out cilium-operator pods automatically when configmap is updated"
            "rollOutPods": True,
        },
        # chart values.yaml (default false): "Roll out cilium agent pods automatically when
        # configmap is updated"; without it a re-run after a datapath setting changed would
        # measure the agents' old configuration
        "rollOutCiliumPods": True,
    }
    mode = ipam_mode(values)
    if mode == "cluster-pool":
        extra["ipam"] = {"operator": {
            "clusterPoolIPv4PodCIDRList": [pod_cidr],
            "clusterPoolIPv4MaskSize": node_mask,
        }}
    if mode == "eni":
        extra["eni"] = {"subnetIDsFilter": subnet_ids}
    elif routing_mode(values) == "native":
        extra["ipv4NativeRoutingCIDR"] = pod_cidr
    if underlay_mtu is not None:
        extra["MTU"] = underlay_mtu
    return _merge(values, extra)


def install(ctx: CniContext) -> Installed:
    variant, cfg = ctx.variant, ctx.cfg
    catalog_values = variant.datapath["values"]
    cilium_subtracts = TUNNEL_OVERHEAD if routing_mode(catalog_values) == "tunnel" else 0
    explicit_mtu = not detected_mtu_matches(variant, cilium_subtracts)
    # cilium's MTU value is the underlay's: it subtracts its own overhead from it
    underlay = cfg.pod_mtu + cilium_subtracts if explicit_mtu else None

    subnet_ids = list(dict.fromkeys([*ctx.network.benchmark_subnet_ids, ctx.network.control_plane_subnet_id]))
    values = helm_values(
        catalog_values,
        replaces_kube_proxy=variant.replaces_kube_proxy,
        api_server_host=ctx.cluster.api_server_host,
        api_server_port=ctx.cluster.api_server_port,
        pod_cidr=cfg.pod_cidr,
        node_mask=cfg.node_pod_mask_size,
        subnet_ids=subnet_ids,
        underlay_mtu=underlay,
    )
    release = k8s.helm.v3.Release(
        f"{ctx.name}-cilium",
        name=RELEASE,
        chart=variant.install.chart,
        version=variant.install.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=variant.install.source),
        namespace=NAMESPACE,
        values=values,
        # the readiness gate waits (and names the pods that are not ready on a timeout)
        skip_await=True,
        opts=ctx.k8s_opts(),
    )
    return Installed(
        namespace=NAMESPACE,
        workloads=(f"daemonset/{DAEMONSET}", f"deployment/{OPERATOR}"),
        resources=(release,),
        fingerprint=fingerprint(variant.name, variant.install.version, pulumi.Output.from_input(values)),
        summary={
            "chart": f"{variant.install.chart}-{variant.install.version}",
            "podMtu": cfg.pod_mtu,
            "podMtuSetBy": f"MTU={underlay}" if explicit_mtu else f"cilium agent (device MTU - {cilium_subtracts})",
        },
    )
