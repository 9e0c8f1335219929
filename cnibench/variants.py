"""The variant catalog: one typed, immutable record per CNI variant.

This module is the single source of truth that the Pulumi program, the policy pack, the
local lab and the reports read. Nothing else in the project may hard-code a port, an
overhead, a chart version or an IAM action of a variant.

Every fact carries the source it was checked against (repository, path, tag).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping


class UnknownVariantError(ValueError):
    """A variant name that is not in the catalog."""

    def __init__(self, name: str, key: str = "cnibench:variant") -> None:
        self.name = name
        super().__init__(
            f"{key}: unknown variant {name!r}; valid variants: {', '.join(sorted(CATALOG))}"
        )


class Underlay(str, enum.Enum):
    """What the network between the two benchmark nodes must provide."""

    L2 = "same-l2-subnet"  # pod routes point at the peer node IP: it must be on-link
    L3 = "l3"  # encapsulated: any IP reachability between nodes is enough
    VPC_ROUTES = "vpc-route-table"  # one VPC route per node's pod range (flannel aws-vpc)
    ENI = "vpc-eni"  # pods get VPC addresses from ENIs (cilium ENI IPAM)

    @property
    def needs_l2(self) -> bool:
        return self is Underlay.L2


class InstallMethod(str, enum.Enum):
    HELM = "helm"  # helm.v3.Release of a pinned chart
    MANIFEST = "manifest"  # typed Kubernetes resources equivalent to the upstream manifest
    NODE_CONFIG = "node-config"  # CNI config file + reference plugins written at bootstrap


@dataclass(frozen=True)
class Install:
    method: InstallMethod
    version: str  # the pinned CNI release (chart version for Helm)
    source: str  # the upstream manifest / chart repository / release the install follows
    chart: str | None = None  # Helm chart name (HELM only)


@dataclass(frozen=True)
class PortRule:
    """Traffic the underlay must admit between nodes, as an AWS security-group rule sees it.

    ``protocol`` is ``tcp``, ``udp``, ``icmp`` or an IP protocol number as a string ("4" for
    IP-in-IP). Protocol-number rules carry no ports.
    """

    protocol: str
    from_port: int | None = None
    to_port: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.protocol in ("tcp", "udp"):
            if self.from_port is None:
                raise ValueError(f"{self.protocol} rule needs a port: {self.description}")
            if self.to_port is None:
                object.__setattr__(self, "to_port", self.from_port)
        elif self.from_port is not None and self.protocol != "icmp":
            raise ValueError(f"IP protocol {self.protocol} takes no ports: {self.description}")

    @property
    def label(self) -> str:
        if self.protocol in ("tcp", "udp"):
            ports = str(self.from_port) if self.from_port == self.to_port else f"{self.from_port}-{self.to_port}"
            return f"{self.protocol}/{ports}"
        if self.protocol == "icmp":
            return "icmp"
        return f"ip-proto/{self.protocol}"


def freeze(value: Any) -> Any:
    """Deep-freeze dicts and lists so a catalog record cannot be mutated by a consumer."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of :func:`freeze`: plain dicts and lists, e.g. for Helm values."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


class PodAddressing(str, enum.Enum):
    """How a variant's pod packets look on the wire between the nodes."""

    ENCAPSULATED = "encapsulated"  # inside a tunnel between node addresses (the tunnel's port carries them)
    POD_CIDR = "pod-cidr"  # routed unencapsulated: pod-CIDR source addresses cross the underlay
    VPC = "vpc"  # pods hold VPC addresses of the node subnets (ENI IPAM, ipvlan on secondary IPs)


@dataclass(frozen=True)
class Variant:
    name: str
    cni: str
    install: Install
    datapath: Mapping[str, Any]  # CNI-specific settings (net-conf Backend, args, Helm values)
    encap_overhead: int  # bytes the datapath adds to every packet on the wire
    underlay: Underlay
    ports: tuple[PortRule, ...]  # between nodes, beyond what Kubernetes itself needs
    min_kernel: tuple[int, int]
    replaces_kube_proxy: bool = False
    source_dest_check_off: bool = False
    iam_actions: tuple[str, ...] = ()
    # actions of iam_actions granted on named resources only (the rest on "*")
    iam_scopes: Mapping[str, IamScope] = field(default_factory=dict)
    # secondary private IPs each benchmark node's ENI gets for pod addresses (the VPC delivers
    # only addresses assigned to an ENI; ipvlan pods take them through host-local IPAM)
    node_secondary_ips: int = 0
    # the CNI reads instance metadata with a client that only speaks IMDSv1 (no session token):
    # the nodes must not require IMDSv2 tokens (http_tokens=optional)
    needs_imdsv1: bool = False
    # an encapsulating CNI that still sends pod packets to node addresses unencapsulated, with
    # their pod source address (neither tunnelled nor masqueraded): the nodes must then admit and
    # forward pod-CIDR sources like an unencapsulated variant's (source/dest check off, a rule
    # for the pod CIDR)
    pod_source_to_nodes: bool = False
    # the prefix of the host-side interface of every pod (kube-proxy's InterfaceNamePrefix
    # local-traffic detection), where the CNI names them so
    pod_host_interface_prefix: str | None = None
    # why pod-to-service traffic cannot be measured on this datapath (None: services work); the
    # suite records its service test as skipped with this reason
    no_service_path: str | None = None
    # every packet between two nodes is one flow to AWS, however many streams run (see
    # AWS_PER_FLOW below): IP-in-IP (no ports: the flow is source, destination, protocol 4) and
    # WireGuard (one UDP socket, 51820 <-> 51820); VXLAN and Geneve spread streams over the outer
    # UDP source port (a hash of the inner flow)
    encap_one_flow: bool = False
    lab_datapath: str | None = None  # the local-lab datapath that reproduces it, if any
    summary: str = ""
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "datapath", freeze(self.datapath))
        if self.encap_overhead < 0:
            raise ValueError(f"{self.name}: negative encapsulation overhead")
        stray = sorted(set(self.iam_scopes) - set(self.iam_actions))
        if stray:
            raise ValueError(f"{self.name}: iam_scopes names actions outside iam_actions: {', '.join(stray)}")

    @property
    def cni_version(self) -> str:
        return self.install.version

    @property
    def needs_l2(self) -> bool:
        return self.underlay.needs_l2

    @property
    def pod_addressing(self) -> PodAddressing:
        """Which source addresses pod packets carry between the nodes (what the security group
        and the route tables must let through)."""
        if self.underlay is Underlay.ENI or self.node_secondary_ips > 0:
            return PodAddressing.VPC
        if self.encap_overhead == 0 and self.underlay in (Underlay.L2, Underlay.VPC_ROUTES):
            return PodAddressing.POD_CIDR
        return PodAddressing.ENCAPSULATED

    @property
    def min_kernel_label(self) -> str:
        return f"{self.min_kernel[0]}.{self.min_kernel[1]}"

    def pod_mtu(self, underlay_mtu: int) -> int:
        """The MTU pods must use on an underlay of ``underlay_mtu`` bytes."""
        mtu = underlay_mtu - self.encap_overhead
        if mtu < 576:
            raise ValueError(
                f"{self.name}: underlay MTU {underlay_mtu} leaves {mtu} bytes for pods "
                f"after {self.encap_overhead} bytes of encapsulation (minimum 576)"
            )
        return mtu

    def kernel_ok(self, kernel: str | tuple[int, int]) -> bool:
        return parse_kernel(kernel) >= self.min_kernel


def parse_kernel(kernel: str | tuple[int, int]) -> tuple[int, int]:
    """``"6.1.0-13-cloud-amd64"`` -> ``(6, 1)``."""
    if isinstance(kernel, tuple):
        return kernel
    parts = kernel.strip().split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        raise ValueError(f"cannot read a kernel version from {kernel!r}") from None


# ---------------------------------------------------------------------------------------
# Kubernetes itself (not the CNI): ports between the nodes of a kubeadm cluster.
# Source: kubernetes/website content/en/docs/reference/networking/ports-and-protocols.md
KUBERNETES_NODE_PORTS: tuple[PortRule, ...] = (
    PortRule("tcp", 6443, description="Kubernetes API server"),
    PortRule("tcp", 2379, 2380, description="etcd server client API"),
    PortRule("tcp", 10250, description="kubelet API"),
    PortRule("tcp", 10256, description="kube-proxy health (kube-proxy --healthz-bind-address)"),
    PortRule("tcp", 10257, description="kube-controller-manager"),
    PortRule("tcp", 10259, description="kube-scheduler"),
    PortRule("tcp", 30000, 32767, description="NodePort services"),
    PortRule("udp", 30000, 32767, description="NodePort services (UDP)"),
)

# ---------------------------------------------------------------------------------------
# Pinned releases.
# flannel: github flannel-io/flannel, Documentation/kube-flannel.yml at the tag.
FLANNEL_VERSION = "v0.28.9"
FLANNEL_MANIFEST = "https://github.com/flannel-io/flannel/releases/download/{v}/kube-flannel.yml"
# The aws-vpc backend was removed in v0.20.0; v0.19.2 is the last release that ships it
# (flannel-io/flannel pkg/backend/awsvpc exists at v0.19.2, not at v0.20.0).
FLANNEL_AWS_VPC_VERSION = "v0.19.2"
# kube-router: github cloudnativelabs/kube-router, daemonset/generic-kuberouter-all-features.yaml
KUBE_ROUTER_VERSION = "v2.11.1"
KUBE_ROUTER_MANIFEST = (
    "https://raw.githubusercontent.com/cloudnativelabs/kube-router/{v}/daemonset/"
    "generic-kuberouter-all-features.yaml"
)
# cilium: chart "cilium" from https://helm.cilium.io/ (github cilium/charts cilium-1.18.12.tgz,
# packaged from cilium/cilium v1.18.12 install/kubernetes/cilium)
CILIUM_CHART_VERSION = "1.18.12"
CILIUM_REPOSITORY = "https://helm.cilium.io/"
# reference CNI plugins: github containernetworking/plugins releases
CNI_PLUGINS_VERSION = "v1.9.1"
# (one tarball per architecture: cni-plugins-linux-amd64-v1.9.1.tgz, cni-plugins-linux-arm64-...;
# the catalog keeps "{arch}" and the installer fills in the nodes' architecture)
CNI_PLUGINS_RELEASE = (
    "https://github.com/containernetworking/plugins/releases/download/{v}/"
    "cni-plugins-linux-{arch}-{v}.tgz"
)

# ipvlan in l2 mode: a slave's packets are switched to the master device without entering the
# master's network namespace stack, so the host's netfilter hooks (kube-proxy's ClusterIP DNAT)
# never see them; only l3s mode passes them through the master's L3 and netfilter/conntrack
# (Linux Documentation/networking/ipvlan.rst, "4.1 L2 mode", "4.3 L3S mode"). The same
# isolation keeps the node itself from reaching its own ipvlan pods (the kubelet's HTTP probes).
IPVLAN_NO_SERVICE_PATH = ("ipvlan l2 pods bypass the node's netfilter hooks (Linux ipvlan.rst: only l3s mode "
                          "passes netfilter/conntrack), so kube-proxy's ClusterIP DNAT never applies: "
                          "pod-to-service is not measured")

# EC2 User Guide, "Amazon EC2 instance network bandwidth": the bandwidth of a single flow (5-tuple;
# for protocols other than TCP/UDP the flow is source IP, destination IP and next protocol) is
# limited to 5 Gbit/s outside a cluster placement group and 10 Gbit/s inside one, whatever the
# instance's aggregate bandwidth. The nodes are in a cluster placement group.
AWS_PER_FLOW_LIMIT_GBIT = {"cluster-placement-group": 10.0, "outside": 5.0}
AWS_PER_FLOW_SOURCE = "EC2 User Guide, Amazon EC2 instance network bandwidth (single-flow limit)"

# Ports, from the projects' sources.
# flannel Documentation/backends.md: vxlan "Port ... Defaults to 8472"; wireguard
# "ListenPort ... Defaults to 51820"; ipip uses IP protocol 4.
_FLANNEL_VXLAN_PORT = PortRule("udp", 8472, description="flannel vxlan")
_FLANNEL_WG_PORT = PortRule("udp", 51820, description="flannel wireguard")
_IPIP = PortRule("4", description="IP-in-IP encapsulation")
# kube-router docs/user-guide.md (v2.11.1): iBGP between nodes on tcp 179; the overlay is
# IP-in-IP (IP protocol 4) unless --overlay-encap=fou (udp 5555). kube-router states no kernel
# minimum; IPVS needs ip_vs, ip_vs_rr, ip_vs_wrr, ip_vs_sh, ip_set, xt_set. We require 4.19, the
# oldest LTS kernel still supported by the distributions the cluster is built on.
_BGP = PortRule("tcp", 179, description="kube-router BGP")
# cilium Documentation/operations/system_requirements.rst (firewall rules): health checks
# tcp 4240 and ICMP echo between nodes, vxlan udp 8472, geneve udp 6081.
_CILIUM_HEALTH = (
    PortRule("tcp", 4240, description="cilium-health"),
    PortRule("icmp", description="cilium-health ICMP echo"),
)
_CILIUM_VXLAN = PortRule("udp", 8472, description="cilium vxlan")
_CILIUM_GENEVE = PortRule("udp", 6081, description="cilium geneve")

# Kernel minima.
# flannel vxlan: Documentation/backends.md recommends vxlan "on Linux 3.7+"? kept at the
# kube-flannel supported baseline; wireguard: in-tree since Linux 5.6.
# cilium: Documentation/operations/system_requirements.rst: Linux >= 5.10 (older doc builds say
# 5.4); no separate minimum for kube-proxy replacement; eBPF masquerading needs 4.19.
_CILIUM_MIN_KERNEL = (5, 10)

# flannel aws-vpc (v0.19.2): the calls backend/awsvpc/awsvpc.go makes, read at tag v0.19.2 (the
# documentation's list in Documentation/backends.md also names ReplaceRoute, which the code never
# calls): DescribeInstances (findENI), DescribeRouteTables (checkMatchingRoutes,
# cleanupBlackholeRoutes), DeleteRoute and CreateRoute (the node's pod-range route, in the route
# table of the net-conf's RouteTableID, which the program sets to the stack's own table), and
# ModifyNetworkInterfaceAttribute (disableSrcDestCheck). That last call only logs a warning when it
# fails ("failed to disable SourceDestCheck"), and the program turns the check off on the
# instances itself (source_dest_check_off), so the node role does not get it: no pod or process
# on a node can modify any network interface of the account.
FLANNEL_AWS_VPC_IAM = (
    "ec2:CreateRoute",
    "ec2:DeleteRoute",
    "ec2:DescribeRouteTables",
    "ec2:DescribeInstances",
)
# cilium ENI IPAM: Documentation/network/concepts/ipam/eni.rst "Required Privileges" (the
# operator's EC2 calls): the always-required list, plus DescribeTags (ENI garbage collection is on
# by default), UnassignPrivateIpAddresses (release of excess IPs) and DescribeInstances.
# Not DescribeManagedPrefixLists nor GetManagedPrefixListEntries: eni.rst lists them only on
# cilium's main branch since cilium/cilium#45806 ("feat: Support AWS prefix lists in Cilium
# policies": opened 2026-05-06, merged into main after 2026-07-20, when cilium/cilium#45805 still
# calls it in progress; a feature, not backported to the v1.18 line of chart 1.18.12), and they
# serve AWS prefix lists named in a network policy's toGroups/fromGroups, which the program writes
# none of. Every stored eni.rst without that PR, including a main copy newer than v1.18 (the
# multi-pool based ENI allocator), lists neither.
CILIUM_ENI_IAM = (
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeInstanceTypes",
    "ec2:CreateNetworkInterface",
    "ec2:AttachNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:ModifyNetworkInterfaceAttribute",
    "ec2:AssignPrivateIpAddresses",
    "ec2:CreateTags",
    "ec2:DescribeTags",
    "ec2:UnassignPrivateIpAddresses",
    "ec2:DescribeInstances",
)

# Where an action is granted (IamScope): EC2's Describe* calls support no resource-level
# permissions, so they stay on "*" (EC2 user guide, "Supported resource-level permissions for
# Amazon EC2 API actions": an action not listed there needs "Resource": "*"); the others are
# scoped as far as the API's resource types allow.
class IamScope(str, enum.Enum):
    # the stack's own route table; the route's target ENI is also a resource of the request
    # (CreateRoute/DeleteRoute list route-table* plus optional target types), so ENIs are named too
    ROUTE_TABLE = "route-table"
    # network interfaces only (AWS's own AmazonEKS_CNI_Policy grants ec2:CreateTags on
    # arn:aws:ec2:*:*:network-interface/* and nothing else: cilium's operator tags the ENIs it
    # creates, nothing more)
    NETWORK_INTERFACES = "network-interfaces"


FLANNEL_AWS_VPC_IAM_SCOPES: Mapping[str, IamScope] = MappingProxyType({
    "ec2:CreateRoute": IamScope.ROUTE_TABLE,
    "ec2:DeleteRoute": IamScope.ROUTE_TABLE,
})
CILIUM_ENI_IAM_SCOPES: Mapping[str, IamScope] = MappingProxyType({"ec2:CreateTags": IamScope.NETWORK_INTERFACES})


def _flannel(name: str, backend: Mapping[str, Any], **kw: Any) -> Variant:
    version = kw.pop("version", FLANNEL_VERSION)
    return Variant(
        name=name,
        cni="flannel",
        install=Install(InstallMethod.MANIFEST, version, FLANNEL_MANIFEST.format(v=version)),
        datapath={"Backend": backend},
        **kw,
    )


def _kube_router(name: str, args: tuple[str, ...], **kw: Any) -> Variant:
    return Variant(
        name=name,
        cni="kube-router",
        install=Install(
            InstallMethod.MANIFEST, KUBE_ROUTER_VERSION, KUBE_ROUTER_MANIFEST.format(v=KUBE_ROUTER_VERSION)
        ),
        datapath={"args": args},
        **kw,
    )


def _cilium(name: str, values: Mapping[str, Any], **kw: Any) -> Variant:
    return Variant(
        name=name,
        cni="cilium",
        install=Install(InstallMethod.HELM, CILIUM_CHART_VERSION, CILIUM_REPOSITORY, chart="cilium"),
        datapath={"values": values},
        min_kernel=kw.pop("min_kernel", _CILIUM_MIN_KERNEL),
        # cilium pkg/datapath/connector: HostInterfacePrefix = "lxc" (Endpoint2IfName names every
        # endpoint's host-side interface lxc<hash>)
        pod_host_interface_prefix="lxc",
        **kw,
    )


_VARIANTS: tuple[Variant, ...] = (
    _flannel(
        "flannel-vxlan",
        {"Type": "vxlan", "VNI": 1, "Port": 8472},
        # flannel pkg/backend/vxlan: the vxlan device MTU is the external MTU minus 50.
        encap_overhead=50,
        underlay=Underlay.L3,
        ports=(_FLANNEL_VXLAN_PORT,),
        min_kernel=(3, 7),
        lab_datapath="vxlan",
        summary="VXLAN overlay (VNI 1, udp 8472)",
    ),
    _flannel(
        "flannel-host-gw",
        {"Type": "host-gw"},
        encap_overhead=0,
        underlay=Underlay.L2,
        ports=(),
        min_kernel=(3, 10),
        source_dest_check_off=True,
        lab_datapath="host-gw",
        summary="routes to each node's pod range via the node IP",
    ),
    _flannel(
        "flannel-ipip",
        {"Type": "ipip"},
        encap_overhead=20,
        underlay=Underlay.L3,
        ports=(_IPIP,),
        min_kernel=(3, 10),
        encap_one_flow=True,
        lab_datapath="ipip",
        summary="IP-in-IP tunnel (IP protocol 4)",
    ),
    _flannel(
        "flannel-wireguard",
        {"Type": "wireguard", "ListenPort": 51820},
        # flannel pkg/backend/wireguard/wireguard_network.go (v0.28.9) subtracts 80 bytes
        # (room for an IPv6 outer header; 60 would do for IPv4 only): we follow the code.
        encap_overhead=80,
        underlay=Underlay.L3,
        ports=(_FLANNEL_WG_PORT,),
        min_kernel=(5, 6),
        encap_one_flow=True,
        lab_datapath="wireguard",
        summary="encrypted WireGuard tunnel (udp 51820)",
    ),
    _flannel(
        "flannel-aws-vpc",
        {"Type": "aws-vpc"},  # RouteTableID is filled in from the stack's route table
        version=FLANNEL_AWS_VPC_VERSION,
        encap_overhead=0,
        underlay=Underlay.VPC_ROUTES,
        ports=(),
        min_kernel=(3, 10),
        source_dest_check_off=True,
        iam_actions=FLANNEL_AWS_VPC_IAM,
        iam_scopes=FLANNEL_AWS_VPC_IAM_SCOPES,
        # v0.19.2 go.mod pins github.com/aws/aws-sdk-go v1.15.11 (2018); backend/awsvpc reads the
        # region and instance id with its ec2metadata client, which learned IMDSv2 session
        # tokens only in aws/aws-sdk-go PR #2958 (2019-11-19)
        needs_imdsv1=True,
        lab_datapath="host-gw",
        summary="one VPC route per node's pod range (flannel v0.19.2)",
    ),
    _kube_router(
        "kube-router-overlay",
        ("--run-router=true", "--run-firewall=true", "--run-service-proxy=false",
         "--enable-overlay=true", "--overlay-type=full", "--overlay-encap=ipip"),
        encap_overhead=20,
        underlay=Underlay.L3,
        ports=(_BGP, _IPIP),
        min_kernel=(4, 19),
        # kube-router v2.11.1 pkg/controllers/routing/pod_egress.go: the pod-egress MASQUERADE
        # rule matches pod-subnet sources whose destination is neither a pod subnet
        # (kube-router-pod-subnets) nor a node address (kube-router-node-ips), and the overlay
        # tunnels only routes to remote pod CIDRs; so pod -> node IP traffic (CoreDNS -> the API
        # server) crosses the VPC with a pod source address, which EC2's source/dest check drops.
        # (kube-router's own --disable-source-dest-check needs an AWS provider ID on the nodes,
        # which a kubeadm cluster without a cloud provider does not set.)
        source_dest_check_off=True,
        pod_source_to_nodes=True,
        encap_one_flow=True,
        lab_datapath="ipip",
        summary="BGP routes over an IP-in-IP tunnel between all nodes (--overlay-type=full)",
    ),
    _kube_router(
        "kube-router-native",
        ("--run-router=true", "--run-firewall=true", "--run-service-proxy=false",
         "--enable-overlay=false"),
        encap_overhead=0,
        underlay=Underlay.L2,
        ports=(_BGP,),
        min_kernel=(4, 19),
        source_dest_check_off=True,
        lab_datapath="host-gw",
        summary="BGP-learned direct routes, no tunnel",
    ),
    _kube_router(
        "kube-router-proxy",
        ("--run-router=true", "--run-firewall=true", "--run-service-proxy=true",
         "--enable-overlay=false"),
        encap_overhead=0,  # 20 bytes on services annotated for DSR (IPIP to the backend)
        underlay=Underlay.L2,
        ports=(_BGP, _IPIP),
        min_kernel=(4, 19),
        replaces_kube_proxy=True,
        source_dest_check_off=True,
        lab_datapath="host-gw",
        summary="native routing + IPVS service proxy replacing kube-proxy",
    ),
    _cilium(
        "cilium-vxlan",
        {"routingMode": "tunnel", "tunnelProtocol": "vxlan"},
        # cilium pkg/mtu: TunnelOverhead = 50 bytes for vxlan and geneve.
        encap_overhead=50,
        underlay=Underlay.L3,
        ports=(*_CILIUM_HEALTH, _CILIUM_VXLAN),
        lab_datapath="vxlan",
        summary="eBPF datapath, VXLAN tunnel",
    ),
    _cilium(
        "cilium-geneve",
        {"routingMode": "tunnel", "tunnelProtocol": "geneve"},
        encap_overhead=50,
        underlay=Underlay.L3,
        ports=(*_CILIUM_HEALTH, _CILIUM_GENEVE),
        lab_datapath="geneve",
        summary="eBPF datapath, Geneve tunnel",
    ),
    _cilium(
        "cilium-native",
        {"routingMode": "native", "autoDirectNodeRoutes": True},
        encap_overhead=0,
        underlay=Underlay.L2,
        ports=_CILIUM_HEALTH,
        source_dest_check_off=True,
        lab_datapath="host-gw",
        summary="eBPF datapath, native routing with auto direct node routes",
    ),
    _cilium(
        "cilium-native-kpr",
        # kubeProxyReplacement is a string in chart 1.18.12 (values.yaml: 'Valid options are
        # "true" or "false"'); only the string "true" enables the KPR parts of the configmap
        {"routingMode": "native", "autoDirectNodeRoutes": True, "kubeProxyReplacement": "true",
         "bpf": {"masquerade": True}},
        encap_overhead=0,
        underlay=Underlay.L2,
        ports=_CILIUM_HEALTH,
        replaces_kube_proxy=True,
        source_dest_check_off=True,
        lab_datapath="host-gw",
        summary="native routing + eBPF kube-proxy replacement and BPF masquerading",
    ),
    _cilium(
        "cilium-eni",
        # an empty routingMode means tunnel even with ENI IPAM: native must be explicit
        {"eni": {"enabled": True}, "ipam": {"mode": "eni"}, "routingMode": "native"},
        encap_overhead=0,
        underlay=Underlay.ENI,
        ports=_CILIUM_HEALTH,
        iam_actions=CILIUM_ENI_IAM,
        iam_scopes=CILIUM_ENI_IAM_SCOPES,
        lab_datapath=None,
        summary="pods get VPC addresses from ENIs (AWS ENI IPAM)",
    ),
    Variant(
        name="ipvlan",
        cni="ipvlan",
        install=Install(
            InstallMethod.NODE_CONFIG, CNI_PLUGINS_VERSION, CNI_PLUGINS_RELEASE.format(v=CNI_PLUGINS_VERSION, arch="{arch}")
        ),
        # containernetworking/plugins plugins/main/ipvlan: master, mode (l2|l3|l3s), mtu.
        datapath={"plugin": "ipvlan", "mode": "l2", "ipam": "host-local"},
        encap_overhead=0,
        underlay=Underlay.L2,
        ports=(),
        # the ipvlan driver entered Linux in 3.19
        min_kernel=(3, 19),
        node_secondary_ips=8,
        no_service_path=IPVLAN_NO_SERVICE_PATH,
        # Pods use the ENI's own secondary addresses, which the source/dest check admits; the
        # policy issue still asks for it off on every direct-routing variant: harmless, uniform.
        source_dest_check_off=True,
        lab_datapath="ipvlan",
        summary="ipvlan L2 slaves of the node ENI, VPC secondary IPs via host-local",
    ),
)

CATALOG: Mapping[str, Variant] = MappingProxyType({v.name: v for v in _VARIANTS})
if len(CATALOG) != len(_VARIANTS):  # pragma: no cover - guards the table above
    raise RuntimeError("duplicate variant name in the catalog")


def alternatives(variant: Variant, underlay: Underlay = Underlay.L3) -> str:
    """The catalog's variants over ``underlay`` (by default: encapsulating ones, which need only
    IP reachability), the same CNI's first: what to benchmark instead of ``variant``."""
    names = [v.name for v in CATALOG.values() if v.cni == variant.cni and v.underlay is underlay]
    names = names or [v.name for v in CATALOG.values() if v.underlay is underlay]
    return ", ".join(names)


def get_variant(name: str, key: str = "cnibench:variant") -> Variant:
    """The catalog record for ``name``; the error lists every valid variant."""
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownVariantError(name, key) from None


def variant_names() -> list[str]:
    return sorted(CATALOG)
