"""ipvlan: a node-level CNI configuration (reference plugins: ipvlan + host-local).

No DaemonSet: on each benchmark node a remote command (scripts/ipvlan-node.sh) installs the
pinned release of github containernetworking/plugins (``cni-plugins-linux-amd64-<v>.tgz`` into
/opt/cni/bin) and writes ``/etc/cni/net.d/10-ipvlan.conflist``.

Addressing: pods are ipvlan slaves of the node's primary interface and carry VPC addresses. The
VPC delivers only addresses assigned to an ENI, so each benchmark node gets
``variant.node_secondary_ips`` secondary private IPs (cnibench/program/nodes.py) and host-local
hands out exactly those: one single-address range (rangeStart = rangeEnd) per secondary IP, all
in one range set (host-local takes one address per range set; single-address ranges do not
overlap: plugins/ipam/host-local/backend/allocator/range.go ``Overlaps`` at v1.9.1). ``subnet``
is the node subnet and ``gateway`` its VPC router (the subnet's second address, which AWS
reserves for it).

Config keys: plugins/main/ipvlan/ipvlan.go ``NetConf`` (master, mode, mtu) and host-local
``ranges``/``routes`` (cni.dev content/plugins/current/ipam/host-local.md). ``master`` is the
interface of the node's default route, detected on the node (the plugin's own default too).
MTU: an ipvlan slave inherits its master's MTU (the plugin leaves ``mtu`` 0 to the kernel), which
is the catalog's value (no overhead); it is set only if the catalog ever says otherwise.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Sequence

import pulumi

from cnibench.variants import CNI_PLUGINS_RELEASE, thaw
from cnibench.program.cni.base import CniContext, Installed, detected_mtu_matches, fingerprint, node_script

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
    url = CNI_PLUGINS_RELEASE.format(v=version)
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
