"""flannel as typed Kubernetes objects, equivalent to the upstream kube-flannel.yml.

Design notes and their sources: docs/cni.md (flannel).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

import pulumi
import pulumi_kubernetes as k8s

from cnibench.program.cni.base import (
    SKIP_AWAIT,
    CniContext,
    Installed,
    detected_mtu_matches,
    fingerprint,
    service_account_rbac,
    template_metadata,
)
from cnibench.variants import thaw

NAMESPACE = "kube-flannel"
NAME = "flannel"
CONFIGMAP = "kube-flannel-cfg"
DAEMONSET = "kube-flannel-ds"

# Bytes each backend subtracts from the external interface MTU, read from flannel's code:
# vxlan pkg/backend/vxlan/vxlan_network.go ``encapOverhead = 50``; ipip pkg/backend/ipip/ipip.go
# ``expectMTU := be.extIface.Iface.MTU - 20``; wireguard pkg/backend/wireguard/
# wireguard_network.go ``overhead = 80``; host-gw and aws-vpc (v0.19.2 backend/awsvpc, a
# SimpleNetwork) use the interface MTU as it is. Same values at v0.19.2 and v0.28.9.
FLANNEL_OVERHEAD: Mapping[str, int] = {"vxlan": 50, "ipip": 20, "wireguard": 80, "host-gw": 0, "aws-vpc": 0}


@dataclass(frozen=True)
class Release:
    """What differs between the two pinned kube-flannel.yml releases."""

    image: str
    cni_plugin_image: str
    install_conf: tuple[list[str], list[str]]  # command, args of the install-cni init container
    flanneld_args: tuple[str, ...]
    healthz_port: int | None  # None: no health endpoint, no probes
    limits: bool  # v0.19.2 sets limits equal to requests
    k8s_app_label: bool  # v0.28.9 adds k8s-app: flannel to every object
    node_verbs: tuple[str, ...]
    enable_nftables_key: bool  # net-conf.json "EnableNFTables" (v0.25+)
    extra_env: tuple[tuple[str, str], ...]


RELEASES: Mapping[str, Release] = {
    # Documentation/kube-flannel.yml @ v0.28.9
    "v0.28.9": Release(
        image="ghcr.io/flannel-io/flannel:v0.28.9",
        cni_plugin_image="ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3",
        install_conf=(["/opt/bin/install-conf"], ["/etc/kube-flannel/cni-conf.json", "/etc/cni/net.d/10-flannel.conflist"]),
        flanneld_args=("--ip-masq", "--kube-subnet-mgr", "--healthz-port=8081"),
        healthz_port=8081,
        limits=False,
        k8s_app_label=True,
        node_verbs=("get", "list", "watch"),
        enable_nftables_key=True,
        extra_env=(("EVENT_QUEUE_DEPTH", "5000"), ("CONT_WHEN_CACHE_NOT_READY", "false")),
    ),
    # Documentation/kube-flannel.yml @ v0.19.2 (the last release with the aws-vpc backend)
    "v0.19.2": Release(
        image="docker.io/rancher/mirrored-flannelcni-flannel:v0.19.2",
        cni_plugin_image="docker.io/rancher/mirrored-flannelcni-flannel-cni-plugin:v1.1.0",
        install_conf=(["cp"], ["-f", "/etc/kube-flannel/cni-conf.json", "/etc/cni/net.d/10-flannel.conflist"]),
        flanneld_args=("--ip-masq", "--kube-subnet-mgr"),
        healthz_port=None,
        limits=True,
        k8s_app_label=False,
        node_verbs=("list", "watch"),
        enable_nftables_key=False,
        extra_env=(("EVENT_QUEUE_DEPTH", "5000"),),
    ),
}


def release_of(version: str) -> Release:
    try:
        return RELEASES[version]
    except KeyError:
        raise ValueError(
            f"flannel {version}: no typed equivalent of its kube-flannel.yml; pinned releases: "
            f"{', '.join(sorted(RELEASES))}"
        ) from None


def net_conf(backend: Mapping[str, Any], pod_cidr: str, release: Release, route_table_id: str | None) -> dict:
    """``net-conf.json``: the catalog's Backend, the pod CIDR, and the cluster facts a backend
    needs (aws-vpc: the route table the nodes' subnets use, v0.19.2 backend/awsvpc
    ``RouteTableID``)."""
    backend = dict(thaw(backend))
    if "Type" not in backend:
        raise ValueError("flannel Backend without Type (flannel would fall back to udp)")
    if backend["Type"] == "aws-vpc":
        if not route_table_id:
            raise ValueError("flannel aws-vpc needs the stack's route table id (network.route_table_id)")
        backend["RouteTableID"] = route_table_id
    conf: dict[str, Any] = {"Network": pod_cidr}
    if release.enable_nftables_key:
        conf["EnableNFTables"] = False
    conf["Backend"] = backend
    return conf


def cni_conf(mtu: int | None) -> dict:
    """``cni-conf.json`` of kube-flannel.yml (same in both releases), with a delegate ``mtu``
    only when flannel's own computation would differ from the catalog."""
    delegate: dict[str, Any] = {"hairpinMode": True, "isDefaultGateway": True}
    if mtu is not None:
        delegate["mtu"] = mtu
    return {
        "name": "cbr0",
        "cniVersion": "0.3.1",
        "plugins": [
            {"type": "flannel", "delegate": delegate},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def _labels(release: Release, **labels: str) -> dict[str, str]:
    return {**labels, **({"k8s-app": "flannel"} if release.k8s_app_label else {})}


def daemonset_spec(release: Release, config_checksum: Any = None) -> dict:
    """The DaemonSet spec of kube-flannel.yml for ``release``."""
    resources: dict[str, Any] = {"requests": {"cpu": "100m", "memory": "50Mi"}}
    if release.limits:
        resources["limits"] = {"cpu": "100m", "memory": "50Mi"}
    container: dict[str, Any] = {
        "name": "kube-flannel",
        "image": release.image,
        "command": ["/opt/bin/flanneld"],
        "args": list(release.flanneld_args),
        "resources": resources,
        "securityContext": {"privileged": False, "capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            *({"name": k, "value": v} for k, v in release.extra_env),
        ],
        "volumeMounts": [
            {"name": "run", "mountPath": "/run/flannel"},
            {"name": "flannel-cfg", "mountPath": "/etc/kube-flannel/"},
            {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
        ],
    }
    if release.healthz_port is not None:
        container["ports"] = [{"name": "healthz", "containerPort": release.healthz_port, "protocol": "TCP"}]
        container["livenessProbe"] = {
            "httpGet": {"path": "/healthz", "port": "healthz"}, "initialDelaySeconds": 10, "periodSeconds": 30,
        }
        container["readinessProbe"] = {
            "httpGet": {"path": "/readyz", "port": "healthz"}, "initialDelaySeconds": 5, "periodSeconds": 10,
        }
    command, args = release.install_conf
    return {
        "selector": {"matchLabels": {"app": "flannel"}},
        "template": {
            "metadata": template_metadata({"tier": "node", "app": "flannel"}, config_checksum),
            "spec": {
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                    ]}],
                }}},
                "hostNetwork": True,
                "priorityClassName": "system-node-critical",
                "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
                "serviceAccountName": NAME,
                "initContainers": [
                    {
                        "name": "install-cni-plugin",
                        "image": release.cni_plugin_image,
                        "command": ["cp"],
                        "args": ["-f", "/flannel", "/opt/cni/bin/flannel"],
                        "volumeMounts": [{"name": "cni-plugin", "mountPath": "/opt/cni/bin"}],
                    },
                    {
                        "name": "install-cni",
                        "image": release.image,
                        "command": list(command),
                        "args": list(args),
                        "volumeMounts": [
                            {"name": "cni", "mountPath": "/etc/cni/net.d"},
                            {"name": "flannel-cfg", "mountPath": "/etc/kube-flannel/"},
                        ],
                    },
                ],
                "containers": [container],
                "volumes": [
                    {"name": "run", "hostPath": {"path": "/run/flannel"}},
                    {"name": "cni-plugin", "hostPath": {"path": "/opt/cni/bin"}},
                    {"name": "cni", "hostPath": {"path": "/etc/cni/net.d"}},
                    {"name": "flannel-cfg", "configMap": {"name": CONFIGMAP}},
                    {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
                ],
            },
        },
    }


def install(ctx: CniContext) -> Installed:
    variant, cfg = ctx.variant, ctx.cfg
    release = release_of(variant.install.version)
    backend = variant.datapath["Backend"]
    backend_type = backend.get("Type")
    if backend_type not in FLANNEL_OVERHEAD:
        raise ValueError(f"{variant.name}: flannel backend {backend_type!r} unknown; known: {', '.join(FLANNEL_OVERHEAD)}")
    mtu = None if detected_mtu_matches(variant, FLANNEL_OVERHEAD[backend_type]) else cfg.pod_mtu

    route_table = ctx.network.route_table_id if backend_type == "aws-vpc" else None
    net_conf_json = pulumi.Output.from_input(route_table).apply(
        lambda rt: json.dumps(net_conf(backend, cfg.pod_cidr, release, rt), indent=2)
    )
    cni_conf_json = json.dumps(cni_conf(mtu), indent=2)

    opts = ctx.k8s_opts()
    n = ctx.name
    ns = k8s.core.v1.Namespace(
        f"{n}-namespace",
        metadata={"name": NAMESPACE, "labels": _labels(release, **{"pod-security.kubernetes.io/enforce": "privileged"})},
        opts=opts,
    )
    sa, role, binding = service_account_rbac(
        ctx, NAME, ns.metadata["name"],
        rules=[
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["nodes"], "verbs": list(release.node_verbs)},
            {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
        ],
        labels=_labels(release),
    )
    config = k8s.core.v1.ConfigMap(
        f"{n}-config",
        metadata={
            "name": CONFIGMAP, "namespace": ns.metadata["name"],
            "labels": _labels(release, tier="node", app="flannel"),
        },
        data={"cni-conf.json": cni_conf_json, "net-conf.json": net_conf_json},
        opts=opts,
    )
    ds = k8s.apps.v1.DaemonSet(
        f"{n}-daemonset",
        metadata={
            "name": DAEMONSET, "namespace": ns.metadata["name"],
            "labels": _labels(release, tier="node", app="flannel"),
            "annotations": dict(SKIP_AWAIT),
        },
        spec=daemonset_spec(release, fingerprint(cni_conf_json, net_conf_json)),
        opts=ctx.k8s_opts(depends_on=[sa, binding, config]),
    )
    return Installed(
        namespace=NAMESPACE,
        workloads=(f"daemonset/{DAEMONSET}",),
        resources=(ns, role, sa, binding, config, ds),
        fingerprint=fingerprint(variant.name, release.image, net_conf_json, cni_conf_json),
        summary={
            "backend": backend_type,
            "podMtu": cfg.pod_mtu,
            "podMtuSetBy": "cni-conf.json delegate mtu" if mtu else
            f"flanneld (interface MTU - {FLANNEL_OVERHEAD[backend_type]})",
        },
    )
