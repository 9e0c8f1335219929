"""Network: VPC, subnets, route table and a security group derived from the catalog (under mocks)."""

from __future__ import annotations

import ipaddress

import pytest

from cnibench.config import parse_config
from cnibench.mocks import OFFLINE_PUBLIC_IP, run_program
from cnibench.program.network import Network, ingress_rules, node_port_rules, pod_traffic_sources, subnet_cidrs
from cnibench.tags import Tagging
from cnibench.variants import CATALOG, PortRule
from tests.conftest import ALL_STACKS

SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
SUBNET = "aws:ec2/subnet:Subnet"
OPERATOR = f"{OFFLINE_PUBLIC_IP}/32"


# The rules the nodes' security group must hold between the nodes, as (protocol, from port, to
# port) the way AWS takes them (ICMP: -1/-1; an IP protocol number: no ports), written out from the
# upstream sources, not read from the catalog.
#
# Kubernetes itself: kubernetes.io "Ports and Protocols", kubernetes/website
# content/en/docs/reference/networking/ports-and-protocols.md (main @ 3842a2847339fe9ad1013653ef81c9aa0f77b639):
# control plane TCP 6443 (API server), 2379-2380 (etcd), 10250 (kubelet), 10259 (kube-scheduler),
# 10257 (kube-controller-manager); worker nodes TCP 10250, 10256 (kube-proxy), 30000-32767
# (NodePort Services). NodePorts are allocated from --service-node-port-range (default
# 30000-32767) whatever the Service port's protocol (content/en/docs/concepts/services-networking/
# service.md, "type: NodePort"), so the range is open for UDP too.
KUBERNETES_PORTS = {
    ("tcp", 6443, 6443), ("tcp", 2379, 2380), ("tcp", 10250, 10250), ("tcp", 10256, 10256),
    ("tcp", 10257, 10257), ("tcp", 10259, 10259), ("tcp", 30000, 32767), ("udp", 30000, 32767),
}

# flannel Documentation/backends.md @ v0.28.9: vxlan "Port ... On Linux, defaults to kernel
# default, currently 8472"; wireguard "ListenPort ... Default is 51820"; ipip is IP-in-IP, IP
# protocol 4 (IANA protocol numbers: 4 = IPv4 encapsulation).
FLANNEL_VXLAN = ("udp", 8472, 8472)
FLANNEL_WIREGUARD = ("udp", 51820, 51820)
IPIP = ("4", None, None)
# kube-router docs/user-guide.md @ v2.11.1: --bgp-port "(default 179)"; --overlay-encap "ipip"
# by default; docs/dsr.md @ v2.11.1: DSR services reach their pods over "an ipip tunnel", so the
# service proxy variant admits IP protocol 4 without an overlay.
BGP = ("tcp", 179, 179)
# cilium Documentation/operations/system_requirements.rst (v1.18), "Firewall Rules": ICMP 8/0 and
# TCP 4240 among all nodes for cilium-health; VXLAN on "Linux's default VXLAN port 8472 over UDP";
# Geneve "the port is UDP 6081".
CILIUM_HEALTH = {("tcp", 4240, 4240), ("icmp", -1, -1)}
CILIUM_VXLAN = ("udp", 8472, 8472)
CILIUM_GENEVE = ("udp", 6081, 6081)

CNI_PORTS: dict[str, set[tuple]] = {
    "flannel-vxlan": {FLANNEL_VXLAN},
    "flannel-host-gw": set(),
    "flannel-ipip": {IPIP},
    "flannel-wireguard": {FLANNEL_WIREGUARD},
    "flannel-aws-vpc": set(),
    "kube-router-overlay": {BGP, IPIP},
    "kube-router-native": {BGP},
    "kube-router-proxy": {BGP, IPIP},
    "cilium-vxlan": CILIUM_HEALTH | {CILIUM_VXLAN},
    "cilium-geneve": CILIUM_HEALTH | {CILIUM_GENEVE},
    "cilium-native": CILIUM_HEALTH,
    "cilium-native-kpr": CILIUM_HEALTH,
    "cilium-eni": CILIUM_HEALTH,
    "ipvlan": set(),
}


def _as_tuple(rule) -> tuple:
    get = rule.inputs.get
    ports = tuple(None if get(k) is None else int(get(k)) for k in ("fromPort", "toPort"))
    return (get("ipProtocol"), *ports)


def _ingress(run):
    """The security group and the ingress rules the Network component declares (other
    components, e.g. the benchmark's host-network servers, may add their own: see
    test_rules_of_other_components_are_theirs)."""
    sg = run.one(SG)
    network = run.one("cnibench:index:Network")
    rules = [r for r in run.of_type(INGRESS) if r.parent == network.urn]
    assert rules and all(r.inputs["securityGroupId"] == sg.state["id"] for r in rules)
    nodes = [r for r in rules if r.inputs.get("referencedSecurityGroupId") == sg.state["id"]]
    cidr = [r for r in rules if "cidrIpv4" in r.inputs]
    assert len(nodes) + len(cidr) == len(rules)
    return sg, nodes, cidr


def test_the_port_table_covers_every_variant():
    assert set(CNI_PORTS) == set(CATALOG)


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_node_to_node_rules_are_kubernetes_and_the_cni_ports(stack_run, stack):
    run = stack_run(stack)
    _, nodes, _ = _ingress(run)
    got = [_as_tuple(r) for r in nodes]
    assert len(got) == len(set(got)), "duplicate node-to-node rule"
    assert set(got) == KUBERNETES_PORTS | CNI_PORTS[run.config["variant"]]
    for r in nodes:
        if r.inputs["ipProtocol"] not in ("tcp", "udp", "icmp"):
            # IP protocol 4 (IP-in-IP) and other protocol numbers carry no ports
            assert "fromPort" not in r.inputs and "toPort" not in r.inputs


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_rules_of_other_components_are_theirs(stack_run, stack):
    """Rules on the node group that the Network does not declare belong to another component
    and only ever open node-to-node traffic, never a CIDR."""
    run = stack_run(stack)
    sg = run.one(SG)
    network = run.one("cnibench:index:Network")
    for r in run.of_type(INGRESS):
        if r.parent != network.urn:
            assert r.parent, r.name
            assert r.inputs.get("referencedSecurityGroupId") == sg.state["id"], r.name
            assert "cidrIpv4" not in r.inputs and "cidrIpv6" not in r.inputs, r.name


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_ssh_and_api_only_from_the_operator(stack_run, stack):
    run = stack_run(stack)
    _, _, cidr = _ingress(run)
    operator = [r for r in cidr if r.inputs["cidrIpv4"] == OPERATOR]
    assert sorted(_as_tuple(r) for r in operator) == [("tcp", 22, 22), ("tcp", 6443, 6443)]
    for r in cidr:
        assert r.inputs["cidrIpv4"] != "0.0.0.0/0", f"{r.name} is open to the world"
        net = ipaddress.IPv4Network(r.inputs["cidrIpv4"])
        assert net.prefixlen > 0
    egress = run.one(EGRESS)
    assert egress.inputs["ipProtocol"] == "-1" and egress.inputs["cidrIpv4"] == "0.0.0.0/0"


# Where each variant's pod packets come from on the wire (a literal table, not derived from the
# catalog): VPC addresses of the node subnets (ENI IPAM, ipvlan on secondary IPs); pod-CIDR
# addresses (unencapsulated routing, and kube-router-overlay's pod -> node traffic, which
# kube-router neither tunnels nor masquerades: pod_egress.go excludes kube-router-node-ips);
# nothing outside the tunnel (the encapsulating ones).
POD_SOURCES = {
    "cilium-eni": "subnets", "ipvlan": "subnets",
    "cilium-native": "pod-cidr", "cilium-native-kpr": "pod-cidr", "flannel-aws-vpc": "pod-cidr",
    "flannel-host-gw": "pod-cidr", "kube-router-native": "pod-cidr", "kube-router-proxy": "pod-cidr",
    "kube-router-overlay": "pod-cidr",
    "cilium-geneve": None, "cilium-vxlan": None, "flannel-ipip": None, "flannel-vxlan": None,
    "flannel-wireguard": None,
}


def test_the_pod_source_table_covers_every_variant():
    assert set(POD_SOURCES) == set(CATALOG)


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_pod_traffic_rule_follows_the_underlay(stack_run, stack):
    run = stack_run(stack)
    _, _, cidr = _ingress(run)
    pods = [r for r in cidr if r.inputs["cidrIpv4"] != OPERATOR]
    subnets = sorted(s.inputs["cidrBlock"] for s in run.of_type(SUBNET))
    expected = POD_SOURCES[run.config["variant"]]
    if expected == "subnets":
        assert sorted(r.inputs["cidrIpv4"] for r in pods) == subnets
    elif expected == "pod-cidr":
        assert [r.inputs["cidrIpv4"] for r in pods] == [run.config["podCidr"]]
    else:  # encapsulated: the tunnel port carries pod traffic
        assert pods == []
    for r in pods:
        assert r.inputs["ipProtocol"] == "-1"
    # whatever forwards pod-CIDR sources must have the EC2 source/dest check off
    if expected == "pod-cidr":
        assert all(i.inputs["sourceDestCheck"] is False for i in run.of_type("aws:ec2/instance:Instance"))


def test_every_variant_is_covered_by_the_stack_files():
    assert {CATALOG[v].name for v in CATALOG} == set(ALL_STACKS)


def test_explicit_ssh_cidr_is_used(program):
    run = program("flannel-vxlan", {"sshIngressCidr": "203.0.113.0/28"})
    _, _, cidr = _ingress(run)
    assert {r.inputs["cidrIpv4"] for r in cidr} == {"203.0.113.0/28"}


def test_world_open_ssh_needs_the_explicit_switch(program):
    with pytest.raises(Exception, match="cnibench:sshIngressCidr"):
        program("flannel-vxlan", {"sshIngressCidr": "0.0.0.0/0"})


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_vpc_route_table_and_subnet(stack_run, stack):
    run = stack_run(stack)
    vpc = run.one("aws:ec2/vpc:Vpc")
    assert vpc.inputs["cidrBlock"] == run.config["vpcCidr"]
    igw = run.one("aws:ec2/internetGateway:InternetGateway")
    table = run.one("aws:ec2/routeTable:RouteTable")
    # routes are separate resources: flannel aws-vpc's routes are not drift to Pulumi
    assert "routes" not in table.inputs
    default = run.one("aws:ec2/route:Route")
    assert default.inputs["routeTableId"] == table.state["id"]
    assert default.inputs["destinationCidrBlock"] == "0.0.0.0/0"
    assert default.inputs["gatewayId"] == igw.state["id"]
    subnet = run.one(SUBNET)
    assert subnet.inputs["availabilityZone"] == "us-east-1a"
    assert ipaddress.IPv4Network(subnet.inputs["cidrBlock"]).subnet_of(ipaddress.IPv4Network(vpc.inputs["cidrBlock"]))
    assoc = run.one("aws:ec2/routeTableAssociation:RouteTableAssociation")
    assert (assoc.inputs["subnetId"], assoc.inputs["routeTableId"]) == (subnet.state["id"], table.state["id"])


def test_split_subnets_makes_two_subnets_in_one_zone(program):
    run = program("flannel-vxlan", {"splitSubnets": True})
    subnets = run.of_type(SUBNET)
    assert len(subnets) == 2
    assert {s.inputs["availabilityZone"] for s in subnets} == {"us-east-1a"}
    a, b = (ipaddress.IPv4Network(s.inputs["cidrBlock"]) for s in subnets)
    assert not a.overlaps(b)
    table = run.one("aws:ec2/routeTable:RouteTable")
    assocs = run.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    assert {x.inputs["subnetId"] for x in assocs} == {s.state["id"] for s in subnets}
    assert {x.inputs["routeTableId"] for x in assocs} == {table.state["id"]}


def test_existing_vpc_by_id(program):
    run = program("flannel-host-gw", {"vpcId": "vpc-0abc0abc"})
    assert run.of_type("aws:ec2/vpc:Vpc") == []
    assert run.of_type("aws:ec2/internetGateway:InternetGateway") == []
    subnet = run.one(SUBNET)
    assert subnet.inputs["vpcId"] == "vpc-0abc0abc"
    # the last /24 of the VPC, away from the blocks existing subnets usually take
    assert subnet.inputs["cidrBlock"] == "10.20.255.0/24"
    assert run.one(SG).inputs["vpcId"] == "vpc-0abc0abc"
    assert run.one("aws:ec2/route:Route").inputs["gatewayId"] == "igw-0123456789abcdef0"


def test_existing_vpc_with_another_cidr_names_the_key(program):
    with pytest.raises(Exception, match="cnibench:vpcCidr") as err:
        program("flannel-host-gw", {"vpcId": "vpc-0abc0abc", "vpcCidr": "10.30.0.0/16"})
    assert "10.20.0.0/16" in str(err.value)


# --- pure helpers -----------------------------------------------------------------------

def test_subnet_cidrs():
    assert subnet_cidrs("10.20.0.0/16", 2) == ["10.20.0.0/24", "10.20.1.0/24"]
    assert subnet_cidrs("10.20.0.0/16", 1, from_end=True) == ["10.20.255.0/24"]
    assert subnet_cidrs("10.20.0.0/24", 2) == ["10.20.0.0/25", "10.20.0.128/25"]
    with pytest.raises(ValueError):
        subnet_cidrs("10.20.0.0/28", 1)


def test_node_port_rules_deduplicate_but_keep_catalog_order():
    # Kubernetes' own ports first (KUBERNETES_PORTS above), then the CNI's, each once
    assert [r.label for r in node_port_rules(CATALOG["kube-router-overlay"])] == [
        "tcp/6443", "tcp/2379-2380", "tcp/10250", "tcp/10256", "tcp/10257", "tcp/10259",
        "tcp/30000-32767", "udp/30000-32767", "tcp/179", "ip-proto/4",
    ]


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_rule_names_are_unique(name):
    rules = ingress_rules(CATALOG[name], "203.0.113.7/32", "10.244.0.0/16", ["10.20.0.0/24"])
    keys = [r.key for r in rules]
    assert len(keys) == len(set(keys))


def test_pod_sources_by_underlay():
    subnets = ["10.20.0.0/24", "10.20.1.0/24"]
    assert pod_traffic_sources(CATALOG["flannel-vxlan"], "10.244.0.0/16", subnets) == ()
    assert pod_traffic_sources(CATALOG["flannel-host-gw"], "10.244.0.0/16", subnets) == ("10.244.0.0/16",)
    assert pod_traffic_sources(CATALOG["flannel-aws-vpc"], "10.244.0.0/16", subnets) == ("10.244.0.0/16",)
    assert pod_traffic_sources(CATALOG["cilium-eni"], "10.244.0.0/16", subnets) == tuple(subnets)
    assert pod_traffic_sources(CATALOG["ipvlan"], "10.244.0.0/16", subnets) == tuple(subnets)



def test_other_components_add_tagged_node_rules():
    """``Network.allow_between_nodes``: extra node-to-node rules (e.g. the benchmark's
    host-network servers) reference the group itself and carry the stack's tags."""
    cfg = parse_config({"variant": "flannel-vxlan"})

    def probe() -> None:
        net = Network("net", cfg, Tagging.of_stack(cfg.tags, "probe", cfg.variant, cfg.expiry_hours), "203.0.113.7/32")
        net.allow_between_nodes("bench", [PortRule("tcp", 5201, description="iperf3"), PortRule("4")])

    run = run_program("probe", config={"variant": "flannel-vxlan"}, entry=probe)
    sg = run.one(SG)
    extra = {r.name: r for r in run.of_type(INGRESS) if r.name.startswith("bench-")}
    assert set(extra) == {"bench-nodes-tcp-5201", "bench-nodes-proto4"}
    assert _as_tuple(extra["bench-nodes-tcp-5201"]) == ("tcp", 5201, 5201)
    assert _as_tuple(extra["bench-nodes-proto4"]) == ("4", None, None)
    for r in extra.values():
        assert r.inputs["referencedSecurityGroupId"] == sg.state["id"]
        assert r.inputs["tags"]["cnibench:stack"] == "probe"
