"""ipvlan: a node-level CNI configuration (reference plugins: ipvlan + host-local).

Design notes and their sources: docs/cni.md (ipvlan).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Sequence

import pulumi

from cnibench.program.cni.base import CniContext, Installed, detected_mtu_matches, fingerprint, node_script
from cnibench.variants import CNI_PLUGINS_RELEASE, thaw

CONF_FILE = "/etc/cni/net.d/10-ipvlan.conflist"
NETWORK_NAME = "cnibench-ipvlan"
MASTER_TOKEN = "@MASTER@"  # replaced on the node by the interface of its default route
SCRIPT = "ipvlan-node.sh"


def node_subnet(ips: Sequence[str], subnet_cidrs: Sequence[str]) -> ipaddress.IPv4Network:
    """The node subnet that holds every one of the node's secondary addresses."""
    if not ips:
        raise ValueError(
            "ipvlan: a benchmark node has no secondary private IPs; the catalog's "
            "node_secondary_ips must be > 0 and cnibench/program/nodes.py must assign them"
        )
    for cidr in subnet_cidrs:
        net = ipaddress.IPv4Network(cidr)
        if all(ipaddress.IPv4Address(ip) in net for ip in ips):
            return net
    raise ValueError(f"ipvlan: secondary IPs {list(ips)} are not all inside one node subnet {list(subnet_cidrs)}")


def conflist(datapath: Any, ips: Sequence[str], subnet: ipaddress.IPv4Network, mtu: int | None) -> dict:
    """The node's CNI conflist: ipvlan on the node interface, host-local over exactly ``ips``."""
    dp = thaw(datapath)
    gateway = str(subnet.network_address + 1)  # the VPC router
    ranges = [[
        {"subnet": str(subnet), "rangeStart": ip, "rangeEnd": ip, "gateway": gateway}
        for ip in sorted(ips, key=ipaddress.IPv4Address)
    ]]
    plugin: dict[str, Any] = {
        "type": dp["plugin"],
        "master": MASTER_TOKEN,
        "mode": dp["mode"],
        "ipam": {"type": dp["ipam"], "ranges": ranges, "routes": [{"dst": "0.0.0.0/0"}]},
    }
    if mtu is not None:
        plugin["mtu"] = mtu
    return {"cniVersion": "1.0.0", "name": NETWORK_NAME, "plugins": [plugin]}


def install(ctx: CniContext) -> Installed:
    variant, cfg = ctx.variant, ctx.cfg
    mtu = None if detected_mtu_matches(variant, 0) else cfg.pod_mtu
    version = variant.install.version
    arches = {node.architecture for _, node in ctx.benchmark_nodes()}
    if len(arches) != 1:
        raise ValueError(f"ipvlan: the benchmark nodes differ in architecture ({sorted(arches)})")
    url = CNI_PLUGINS_RELEASE.format(v=version, arch=arches.pop())
    subnets = list(ctx.network.subnet_cidrs)
    commands = []
    confs = []
    for role, node in ctx.benchmark_nodes():
        conf = pulumi.Output.from_input(node.secondary_private_ips).apply(
            lambda ips: json.dumps(conflist(variant.datapath, ips, node_subnet(ips, subnets), mtu), sort_keys=True)
        )
        ips = pulumi.Output.from_input(node.secondary_private_ips).apply(lambda v: " ".join(v))
        confs.append(conf)
        commands.append(node_script(
            f"{ctx.name}-ipvlan-{role}",
            ctx.cluster.connection(role),
            SCRIPT,
            env={
                "CNI_PLUGINS_URL": url,
                "CNI_PLUGINS_VERSION": version,
                "CNI_CONF_FILE": CONF_FILE,
                "CNI_CONFLIST": conf,
                "CNI_POD_IPS": ips,
                "CNI_MASTER_TOKEN": MASTER_TOKEN,
            },
            triggers=[url, conf],
            opts=ctx.node_opts(),
        ))
    return Installed(
        namespace="kube-system",
        workloads=(),
        resources=tuple(commands),
        fingerprint=fingerprint(variant.name, url, *confs),
        summary={
            "plugins": url,
            "podMtu": cfg.pod_mtu,
            "podMtuSetBy": "conflist mtu" if mtu else "kernel (an ipvlan slave inherits the interface MTU)",
        },
    )
