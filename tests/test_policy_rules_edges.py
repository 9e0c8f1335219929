"""Edges of the policy rules the main rule tests (tests/test_policy_rules.py) do not take.

Each test breaks or reshapes one resource of the builder's correct stack: rules in the legacy
and inline security-group shapes, port numbers that are unknown at preview or unreadable, the
ICMP types a rule admits, rules for exactly the nodes' subnets, inline routes, the API server
values cilium reads without kube-proxy, instance sizes with "up to" bandwidth, and the text
of messages (what is wrong, on which resource, and the fix).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_policy_rules import Builder, assert_fails, assert_pass

from cnibench.policy_rules import UNKNOWN, Finding, Res, Stack, cluster, evaluate, rule, security

SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"


def named(b: Builder, name: str) -> Res:
    return next(r for r in b.res if r.name == name)


def finding(name: str, stack: Stack) -> Finding:
    [found] = evaluate([rule(name)], stack)
    return found


# --- the three shapes of a security-group rule ------------------------------------------------
def test_a_legacy_security_group_rule_of_the_nodes_group_admits_the_tunnel():
    """aws.ec2.SecurityGroupRule(type='ingress', self=True) on the nodes' group counts like a
    vpc.SecurityGroupIngressRule; the same rule on another group does not."""
    b = Builder("flannel-vxlan")
    b.remove(named(b, "cni-0"))  # the udp/8472 SecurityGroupIngressRule
    assert_fails("encapsulation-ports", b.stack(), "udp/8472")
    b.add(SG_RULE, "legacy-vxlan", {
        "type": "ingress", "securityGroupId": b.sg.ids[0], "protocol": "udp", "fromPort": 8472, "toPort": 8472,
        "self": True,
    }, deps={"securityGroupId": [b.sg]})
    assert_pass("encapsulation-ports", b.stack())
    other = b.add("aws:ec2/securityGroup:SecurityGroup", "other", {"tags": b.tags})
    legacy = named(b, "legacy-vxlan")
    b.res[b.res.index(legacy)] = replace(
        legacy, props={**legacy.props, "securityGroupId": other.ids[0]},
        property_dependencies={"securityGroupId": (other.urn,)},
    )
    assert_fails("encapsulation-ports", b.stack(), "udp/8472")


def test_an_inline_rule_after_an_entry_unknown_at_preview_still_counts():
    """A security group's inline ``ingress`` list may hold entries the preview cannot know yet;
    the rules after them are read all the same."""
    b = Builder("flannel-ipip")
    b.remove(named(b, "cni-0"))  # the ip-proto/4 SecurityGroupIngressRule
    b.patch(b.sg, ingress=[UNKNOWN, {"protocol": "4", "fromPort": 0, "toPort": 0, "self": True}])
    assert_pass("encapsulation-ports", b.stack())
    b.patch(b.sg, ingress=[UNKNOWN])
    assert_fails("encapsulation-ports", b.stack(), "ip-proto/4")


# --- port numbers that are unknown at preview, or cannot be read --------------------------------
def test_tunnel_ports_unknown_at_preview_are_not_refused():
    """At preview a port computed from values still to be created is unknown: the preview cannot
    show the tunnel port closed, so it does not refuse (``cnibench check`` sees the real value)."""
    b = Builder("flannel-vxlan")
    b.patch(named(b, "cni-0"), fromPort=UNKNOWN, toPort=UNKNOWN)
    assert_pass("encapsulation-ports", b.stack())


@pytest.mark.parametrize("ports", [UNKNOWN, "ssh"], ids=["unknown-at-preview", "not-a-number"])
def test_a_world_open_tcp_rule_whose_ports_cannot_be_read_is_refused(ports):
    """A tcp rule open to the internet whose port range is unknown, or is no number, may hold
    tcp/22: the SSH rule cannot show it does not, so it refuses."""
    b = Builder("flannel-vxlan")
    b.patch(named(b, "ssh"), cidrIpv4="0.0.0.0/0", fromPort=ports, toPort=ports)
    assert_fails("ssh-ingress", b.stack(), "SecurityGroupIngressRule 'ssh' opens tcp/22 (SSH) to 0.0.0.0/0")


# --- which ICMP types admit cilium-health's echo requests ---------------------------------------
# RFC 792: ICMP type 8 is "echo" (the request ping and cilium-health send), type 3 is "destination
# unreachable", and its code 4 "fragmentation needed and DF set" (RFC 1191) is the one path MTU
# discovery needs (EC2 User Guide, "Path MTU Discovery": a rule for "Destination Unreachable:
# fragmentation needed"). In an EC2 security-group rule for ICMP, from_port is the ICMP type and
# to_port the code; -1 means all types (from_port) and all codes (to_port) (EC2 API, IpPermission
# FromPort/ToPort).
ICMP_RULES = [
    ("all types", -1, -1, True),
    ("echo request (type 8, code 0)", 8, 0, True),
    ("echo request (type 8, every code)", 8, -1, True),
    ("type unknown at preview", UNKNOWN, UNKNOWN, True),
    ("fragmentation needed only (type 3, code 4)", 3, 4, False),
    ("echo reply only (type 0)", 0, -1, False),
]


@pytest.mark.parametrize("what,from_port,to_port,admits", ICMP_RULES, ids=[r[0] for r in ICMP_RULES])
def test_the_icmp_rule_must_admit_echo_requests(what, from_port, to_port, admits):
    b = Builder("cilium-vxlan")
    [icmp] = [r for r in b.of_type(SG_INGRESS) if r.props.get("ipProtocol") == "icmp"]
    b.patch(icmp, fromPort=from_port, toPort=to_port)
    if admits:
        assert_pass("encapsulation-ports", b.stack())
    else:
        text = assert_fails("encapsulation-ports", b.stack(), "needs icmp")
        assert "udp/8472" not in text and "tcp/4240" not in text


# --- a rule for exactly the nodes' subnets --------------------------------------------------
def test_a_rule_for_the_nodes_subnet_admits_them_and_one_for_another_subnet_does_not():
    """The traffic between nodes comes from their subnets (here 10.20.0.0/24 and, split,
    10.20.1.0/24, both inside the VPC's 10.20.0.0/16): a rule for the subnet the nodes are in is
    enough; a rule for only one of two subnets is not."""
    b = Builder("flannel-vxlan")
    b.patch(named(b, "cni-0"), referencedSecurityGroupId=None, cidrIpv4="10.20.0.0/24")
    assert_pass("encapsulation-ports", b.stack())
    b.patch(named(b, "cni-0"), cidrIpv4="10.20.1.0/24")
    assert_fails("encapsulation-ports", b.stack(), "udp/8472")

    split = Builder("flannel-vxlan", split=True)
    split.patch(named(split, "cni-0"), referencedSecurityGroupId=None, cidrIpv4="10.20.0.0/24")
    assert_fails("encapsulation-ports", split.stack(), "udp/8472")
    split.patch(named(split, "cni-0"), cidrIpv4="10.20.0.0/23")  # both subnets
    assert_pass("encapsulation-ports", split.stack())


# --- inline routes take route-table entries too ------------------------------------------------
def test_inline_routes_count_toward_the_route_table_quota():
    """A RouteTable's inline ``routes`` fill the table like Route resources (Amazon VPC quotas:
    50 routes per route table by default, the local route included)."""
    b = Builder("flannel-aws-vpc")  # 3 nodes, so 3 routes flannel will add
    inline = [{"cidrBlock": f"10.{i}.0.0/16", "gatewayId": "igw-0123456789abcdef0"} for i in range(47)]
    b.patch(b.rt, routes=inline)  # 1 local + 47 + 3 = 51
    assert_fails("aws-vpc-routes", b.stack(), "3 node(s) + 48 route(s) already in RouteTable 'rt' = 51", "quota of 50")
    b.patch(b.rt, routes=inline[:46])  # 1 + 46 + 3 = 50
    assert_pass("aws-vpc-routes", b.stack())


# --- the API server address cilium needs without kube-proxy --------------------------------
# cilium's chart (install/kubernetes/cilium/templates/_helpers.tpl, "k8sServiceHost"):
# k8sServiceHost "auto" is resolved only at install, by a Helm lookup of the ConfigMap
# kube-public/cluster-info in the live cluster; otherwise the value is used as it is. So "auto",
# like an empty or missing value, gives the agents no address before the cluster exists.
API_SERVER_VALUES = [
    ("host and port", "10.20.0.5", 6443, True),
    ("host, port as text", "10.20.0.5", "6443", True),
    ("no host", None, 6443, False),
    ("empty host", "", 6443, False),
    ("host 'auto'", "auto", 6443, False),
    ("no port", "10.20.0.5", None, False),
    ("empty port", "10.20.0.5", "", False),
]


@pytest.mark.parametrize("what,host,port,given", API_SERVER_VALUES, ids=[v[0] for v in API_SERVER_VALUES])
def test_cilium_without_kube_proxy_needs_both_api_server_host_and_port(what, host, port, given):
    b = Builder("cilium-native-kpr")
    values = {k: v for k, v in b.release.props["values"].items() if k not in ("k8sServiceHost", "k8sServicePort")}
    values.update({k: v for k, v in (("k8sServiceHost", host), ("k8sServicePort", port)) if v is not None})
    b.patch(b.release, values=values)
    if given:
        assert_pass("kube-proxy-replacement", b.stack())
    else:
        assert_fails("kube-proxy-replacement", b.stack(), "k8sServiceHost/k8sServicePort")


# --- instance sizes with "up to" bandwidth -------------------------------------------------
# docs.aws.amazon.com/ec2/latest/instancetypes/co.html, "Network specifications" (and
# `aws ec2 describe-instance-types` NetworkInfo.NetworkPerformance): c5.large .. c5.4xlarge
# "Up to 10 Gigabit", c5.9xlarge "10 Gigabit"; c6g.medium .. c6g.4xlarge "Up to 10 Gigabit",
# c6g.8xlarge "12 Gigabit"; c6i.xlarge and c6i.2xlarge "Up to 12.5 Gigabit"; r6i.xlarge
# "Up to 12.5 Gigabit" (memory-optimized, mo.html).
UP_TO_BANDWIDTH = [
    ("c6g.medium", True), ("c5.xlarge", True), ("c5.2xlarge", True), ("c5.4xlarge", True),
    ("c6i.xlarge", True), ("c6i.2xlarge", True), ("r6i.xlarge", True),
    ("c5.9xlarge", False), ("c6g.8xlarge", False),
]


@pytest.mark.parametrize("itype,burst", UP_TO_BANDWIDTH)
def test_up_to_bandwidth_sizes(itype, burst):
    assert cluster.burst_bandwidth_type(itype) is burst


# --- messages: what is wrong, on which resource, and the fix ----------------------------------
def test_the_placement_group_strategy_message():
    b = Builder("flannel-vxlan")
    b.patch(b.pg, strategy="spread")
    found = finding("matched-pair", b.stack())
    assert found.verdict == "fail"
    [message] = found.messages
    assert "PlacementGroup 'pair' has strategy 'spread'" in message  # what is wrong
    # the fix and why (EC2 User Guide, "Placement strategies": a cluster placement group packs
    # instances close together inside an Availability Zone, for low-latency network performance)
    assert "use 'cluster' so the pair shares a low-latency network segment." in message
    assert found.urns == (b.pg.urn,)


def test_the_unencrypted_root_volume_message():
    b = Builder("flannel-vxlan")
    b.patch(b.nodes["server"], rootBlockDevice={"volumeSize": 30})
    found = finding("encrypted-volumes", b.stack())
    assert found.verdict == "fail"
    [message] = found.messages
    assert "the root volume of Instance 'server' is not encrypted" in message  # what is wrong
    assert message.endswith("Fix: root_block_device={'encrypted': True, ...}.")  # the fix
    assert found.urns == (b.nodes["server"].urn,)


# --- resource types the installed pulumi-aws does not know --------------------------------------
@pytest.mark.parametrize("type_token", [
    "aws:cnibenchnosuchmodule/widget:Widget",  # a module this pulumi-aws does not have
    "aws:ec2/cnibenchNoSuchResource:CnibenchNoSuchResource",  # a class ec2 does not have
])
def test_an_aws_type_the_sdk_does_not_know_is_judged_by_its_tags_input(type_token):
    """Whether such a type takes tags cannot be told from the SDK: a resource of it that passes
    tags must carry the expiry tag, one that passes none is left alone."""
    assert security.aws_supports_tags(type_token) is None
    b = Builder("flannel-vxlan")
    b.add(type_token, "newer", {"tags": {"cnibench:stack": "flannel-vxlan"}})
    text = assert_fails("expiry-tag", b.stack(), "'newer'", "cnibench:expires-at")
    assert type_token in text
    newer = named(b, "newer")
    b.res[b.res.index(newer)] = replace(newer, props={"name": "newer"})  # no tags input at all
    assert_pass("expiry-tag", b.stack())
