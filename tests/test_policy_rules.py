"""Every policy rule rejects a violating resource set and accepts the corrected one.

The resource sets are synthetic but shaped like the program's resources (cnibench/program): instances
tagged cnibench:role/variant/expires-at, vpc.SecurityGroupIngressRule, the kubeadm init
remote Command, the cilium helm.v3.Release, IAM role policies, route tables.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from cnibench.policy_rules import RULES, UNKNOWN, Res, Stack, cluster, evaluate, network, rule, security
from cnibench.policy_rules.model import Ref
from cnibench.variants import CATALOG, get_variant

P = "urn:pulumi:test::cnibench::"
EXPIRES = "2026-11-22T14:00:00Z"

# Every rule of the pack, in the pack's order, with its enforcement level, written out (not read from
# RULES). The levels are the design of the policy pack (issue 6: "cnibench check" and
# `pulumi preview --policy-pack policy` refuse a mandatory violation, exit 3): every rule blocks,
# except the two that only warn, since they judge what cannot be known for sure before the stack
# runs: the kernel of an AMI that is not in the kernel table, and a credit-based ("up to")
# bandwidth size, which still deploys and measures.
RULE_LEVELS = {
    "l2-adjacency": "mandatory",
    "aws-vpc-routes": "mandatory",
    "iam-actions": "mandatory",
    "iam-scope": "mandatory",
    "encapsulation-ports": "mandatory",
    "kernel-minimum": "mandatory",
    "kernel-unverified": "advisory",
    "kube-proxy-replacement": "mandatory",
    "matched-pair": "mandatory",
    "burst-bandwidth": "advisory",
    "cidrs": "mandatory",
    "ssh-ingress": "mandatory",
    "imdsv2": "mandatory",
    "encrypted-volumes": "mandatory",
    "expiry-tag": "mandatory",
}
# what the rule model reports for a violation of each level (a mandatory one blocks)
VERDICT_OF_A_VIOLATION = {"mandatory": "fail", "advisory": "warn"}


def _urn(typ: str, name: str) -> str:
    return f"{P}{typ}::{name}"


class Builder:
    """A correct stack for ``variant``; tests break one thing at a time."""

    def __init__(self, variant: str, *, split: bool = False) -> None:
        self.variant = get_variant(variant)
        self.res: list[Res] = []
        tags = {"cnibench:stack": variant, "cnibench:variant": variant, "cnibench:expires-at": EXPIRES}
        self.tags = tags
        self.vpc = self.add("aws:ec2/vpc:Vpc", "vpc", {"cidrBlock": "10.20.0.0/16", "tags": tags})
        self.subnets = [
            self.add("aws:ec2/subnet:Subnet", f"bench-{i}", {
                "vpcId": self.vpc.ids[0], "cidrBlock": f"10.20.{i}.0/24", "availabilityZone": "us-east-1a", "tags": tags,
            }, deps={"vpcId": [self.vpc]})
            for i in range(2 if split else 1)
        ]
        self.rt = self.add("aws:ec2/routeTable:RouteTable", "rt", {"vpcId": self.vpc.ids[0], "tags": tags}, deps={"vpcId": [self.vpc]})
        self.sg = self.add("aws:ec2/securityGroup:SecurityGroup", "nodes", {"vpcId": self.vpc.ids[0], "tags": tags}, deps={"vpcId": [self.vpc]})
        self.add("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "ssh", {
            "securityGroupId": self.sg.ids[0], "ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
            "cidrIpv4": "192.0.2.10/32", "tags": tags,
        }, deps={"securityGroupId": [self.sg]})
        for i, port in enumerate(self.variant.ports):
            props: dict[str, Any] = {
                "securityGroupId": self.sg.ids[0], "ipProtocol": port.protocol,
                "referencedSecurityGroupId": self.sg.ids[0], "tags": tags,
            }
            if port.protocol in ("tcp", "udp"):
                props.update(fromPort=port.from_port, toPort=port.to_port)
            elif port.protocol == "icmp":
                props.update(fromPort=-1, toPort=-1)
            self.add("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", f"cni-{i}", props,
                     deps={"securityGroupId": [self.sg], "referencedSecurityGroupId": [self.sg]})
        if network.routes_pod_addresses(self.variant):
            self.add("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "pods-all", {
                "securityGroupId": self.sg.ids[0], "ipProtocol": "-1", "cidrIpv4": "10.244.0.0/16", "tags": tags,
            }, deps={"securityGroupId": [self.sg]})
        self.pg = self.add("aws:ec2/placementGroup:PlacementGroup", "pair", {"strategy": "cluster", "tags": tags})
        wide = [a for a in self.variant.iam_actions if a not in self.variant.iam_scopes]
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": wide or ["ec2:DescribeInstances"], "Resource": "*"},
        ] + ([{"Effect": "Allow", "Action": sorted(self.variant.iam_scopes),
               "Resource": "arn:aws:ec2:us-east-1:123456789012:route-table/rtb-0123456789abcdef0"}]
             if self.variant.iam_scopes else [])}
        self.add("aws:iam/rolePolicy:RolePolicy", "node-cni", {"role": "node", "policy": json.dumps(policy)})
        self.nodes = {}
        for role, subnet in (("control-plane", self.subnets[0]), ("client", self.subnets[0]), ("server", self.subnets[-1])):
            self.nodes[role] = self.add("aws:ec2/instance:Instance", role, {
                "instanceType": "t3.medium" if role == "control-plane" else "c6i.8xlarge",
                "ami": "ami-0123456789abcdef0", "availabilityZone": "us-east-1a",
                "subnetId": subnet.ids[0], "vpcSecurityGroupIds": [self.sg.ids[0]],
                "placementGroup": None if role == "control-plane" else self.pg.ids[0],
                "sourceDestCheck": not self.variant.source_dest_check_off,
                "metadataOptions": {"httpTokens": "required", "httpEndpoint": "enabled"},
                "rootBlockDevice": {"encrypted": True, "volumeSize": 30},
                "tags": {**tags, "cnibench:role": role},
            }, deps={"subnetId": [subnet], "vpcSecurityGroupIds": [self.sg],
                     **({"placementGroup": [self.pg]} if role != "control-plane" else {})})
        skip = " --skip-phases=addon/kube-proxy" if self.variant.replaces_kube_proxy else ""
        self.init = self.add("command:remote:Command", "kubeadm-init", {
            "create": "set -eu\nsudo kubeadm init --pod-network-cidr=10.244.0.0/16 --service-cidr=10.96.0.0/12"
                      f"{skip} --apiserver-advertise-address=10.20.0.5\n",
        })
        if self.variant.cni == "cilium":
            values = json.loads(json.dumps(dict(self.variant.datapath["values"]), default=dict))
            values["ipam"] = {**values.get("ipam", {}), "operator": {"clusterPoolIPv4PodCIDRList": ["10.244.0.0/16"]}} \
                if values.get("ipam", {}).get("mode") != "eni" else values["ipam"]
            if values.get("routingMode") == "native" and values["ipam"].get("mode") != "eni":
                values["ipv4NativeRoutingCIDR"] = "10.244.0.0/16"
            if self.variant.replaces_kube_proxy:
                values.update(k8sServiceHost="10.20.0.5", k8sServicePort=6443)
            self.release = self.add("kubernetes:helm.sh/v3:Release", "cilium", {"chart": "cilium", "values": values})
        if self.variant.cni == "kube-router":
            args = list(self.variant.datapath["args"]) + ["--kubeconfig=/var/lib/kube-router/kubeconfig"]
            if self.variant.replaces_kube_proxy:
                args.append("--master=https://10.20.0.5:6443")
            self.ds = self.add("kubernetes:apps/v1:DaemonSet", "kube-router", {
                "spec": {"template": {"spec": {"containers": [{"name": "kube-router", "args": args}]}}},
            })

    def add(self, typ: str, name: str, props: dict[str, Any], deps: dict[str, list[Res]] | None = None) -> Res:
        short = typ.rsplit(":", 1)[-1].lower()
        res = Res(typ, name, _urn(typ, name), props,
                  property_dependencies={k: tuple(d.urn for d in v) for k, v in (deps or {}).items()},
                  ids=(f"{short}-{name}",))
        self.res.append(res)
        return res

    def patch(self, res: Res, **props: Any) -> None:
        new = replace(res, props={**res.props, **props})
        self.res[self.res.index(res)] = new
        for attr in ("vpc", "rt", "sg", "pg", "init", "release", "ds"):
            if getattr(self, attr, None) is res:
                setattr(self, attr, new)
        for role, node in self.nodes.items():
            if node is res:
                self.nodes[role] = new

    def remove(self, res: Res) -> None:
        self.res.remove(res)

    def of_type(self, typ: str) -> list[Res]:
        return [r for r in self.res if r.type == typ]

    def stack(self, **settings: Any) -> Stack:
        base = {"variant": self.variant.name, "amiId": "", "routeTableQuota": 50}
        return Stack(list(self.res), {**base, **settings})


def verdict(name: str, stack: Stack) -> tuple[str, tuple[str, ...]]:
    [finding] = evaluate([rule(name)], stack)
    return finding.verdict, finding.messages


def assert_pass(name: str, stack: Stack) -> None:
    got, messages = verdict(name, stack)
    assert got == "pass", messages


def assert_fails(name: str, stack: Stack, *needles: str) -> str:
    got, messages = verdict(name, stack)
    expected = VERDICT_OF_A_VIOLATION[RULE_LEVELS[name]]
    assert got == expected, (got, messages)
    text = "\n".join(messages)
    for needle in needles:
        assert needle in text, text
    return text


# --- the rules and their levels -----------------------------------------------------------
def test_the_pack_has_exactly_these_rules_at_these_levels():
    assert [(r.name, r.level.value) for r in RULES] == list(RULE_LEVELS.items())


def test_a_violation_of_an_advisory_rule_warns_and_does_not_block():
    b = Builder("cilium-vxlan")
    for role in ("client", "server"):
        b.patch(b.nodes[role], instanceType="c6i.4xlarge")  # an "up to" bandwidth size
    [finding] = evaluate([rule("burst-bandwidth")], b.stack())
    assert (finding.verdict, finding.blocking) == ("warn", False)


# --- every variant's correct stack passes every mandatory rule --------------------------
@pytest.mark.parametrize("variant", sorted(CATALOG))
def test_correct_stack_passes_every_mandatory_rule(variant):
    findings = evaluate(RULES, Builder(variant).stack())
    assert not [f for f in findings if f.blocking], [(f.rule, f.messages) for f in findings if f.blocking]
    assert {f.rule for f in findings if f.verdict == "pass"} >= {
        "matched-pair", "cidrs", "ssh-ingress", "imdsv2", "encrypted-volumes", "expiry-tag", "kernel-minimum",
        "kube-proxy-replacement",
    }


# --- L2 adjacency ---------------------------------------------------------------------------
L2_VARIANTS = ["flannel-host-gw", "kube-router-native", "kube-router-proxy", "cilium-native", "cilium-native-kpr", "ipvlan"]


@pytest.mark.parametrize("variant", L2_VARIANTS)
def test_l2_rejects_split_subnets_and_accepts_one_subnet(variant):
    text = assert_fails("l2-adjacency", Builder(variant, split=True).stack(), "one subnet", "splitSubnets=false")
    assert variant in text
    assert_pass("l2-adjacency", Builder(variant).stack())


def test_l2_is_not_applicable_to_encapsulated_variants():
    assert verdict("l2-adjacency", Builder("flannel-vxlan", split=True).stack())[0] == "n/a"


@pytest.mark.parametrize("variant", ["flannel-host-gw", "cilium-native"])
def test_l2_rejects_source_dest_check_on(variant):
    b = Builder(variant)
    b.patch(b.nodes["server"], sourceDestCheck=True)
    assert_fails("l2-adjacency", b.stack(), "source/destination check", "source_dest_check=False")
    b.patch(b.nodes["server"], sourceDestCheck=False)
    assert_pass("l2-adjacency", b.stack())


def test_l2_uses_resource_origins_when_subnet_ids_are_unknown_at_preview():
    """At preview the subnet ids are unknown: the subnets the values came from decide."""

    def preview(b: Builder) -> Stack:
        stack = b.stack()
        stack.resources = [
            replace(r, props={**r.props, "subnetId": UNKNOWN}, ids=()) if r.type == "aws:ec2/instance:Instance" else replace(r, ids=())
            for r in stack.resources
        ]
        return stack

    assert_fails("l2-adjacency", preview(Builder("cilium-native", split=True)), "different subnets", "unknown at preview")
    assert_pass("l2-adjacency", preview(Builder("cilium-native")))


# --- aws-vpc --------------------------------------------------------------------------------
def test_aws_vpc_rejects_routes_over_quota_and_accepts_a_larger_quota():
    b = Builder("flannel-aws-vpc")
    for i in range(47):  # 1 local + 47 + 3 nodes = 51 > 50
        b.add("aws:ec2/route:Route", f"r{i}", {"routeTableId": b.rt.ids[0], "destinationCidrBlock": f"10.{i}.0.0/16"},
              deps={"routeTableId": [b.rt]})
    assert_fails("aws-vpc-routes", b.stack(), "51", "quota of 50", "cnibench:routeTableQuota")
    assert_pass("aws-vpc-routes", b.stack(routeTableQuota=100))
    b.remove(b.of_type("aws:ec2/route:Route")[0])
    assert_pass("aws-vpc-routes", b.stack())


def test_aws_vpc_counts_only_routes_of_that_table():
    b = Builder("flannel-aws-vpc")
    other = b.add("aws:ec2/routeTable:RouteTable", "other", {"tags": b.tags})
    for i in range(60):
        b.add("aws:ec2/route:Route", f"r{i}", {"routeTableId": other.ids[0]}, deps={"routeTableId": [other]})
    text = assert_fails("aws-vpc-routes", b.stack(), "RouteTable 'other'")
    assert "RouteTable 'rt'" not in text


def test_aws_vpc_rejects_source_dest_check_on():
    b = Builder("flannel-aws-vpc")
    b.patch(b.nodes["control-plane"], sourceDestCheck=None)
    assert_fails("aws-vpc-routes", b.stack(), "control-plane", "source/destination check")


def test_iam_rejects_missing_actions_and_accepts_wildcards():
    b = Builder("flannel-aws-vpc")
    [pol] = b.of_type("aws:iam/rolePolicy:RolePolicy")
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ec2:Describe*"], "Resource": "*"}]}
    b.patch(pol, policy=json.dumps(doc))
    text = assert_fails("iam-actions", b.stack(), "ec2:CreateRoute", "ec2:DeleteRoute")
    assert "DescribeRouteTables" not in text  # covered by ec2:Describe*
    doc["Statement"].append({"Effect": "Allow", "Action": ["ec2:*Route"], "Resource": "arn:aws:ec2:*:*:route-table/*"})
    b.patch(b.of_type("aws:iam/rolePolicy:RolePolicy")[0], policy=json.dumps(doc))
    assert_pass("iam-actions", b.stack())


@pytest.mark.parametrize("variant,actions,named", [
    ("flannel-aws-vpc", ["ec2:CreateRoute", "ec2:DeleteRoute"], "ec2:CreateRoute, ec2:DeleteRoute"),
    ("flannel-aws-vpc", ["ec2:*"], "ec2:CreateRoute, ec2:DeleteRoute"),
    ("cilium-eni", ["ec2:CreateTags"], "ec2:CreateTags"),
])
def test_iam_scope_refuses_scoped_actions_on_every_resource(variant, actions, named):
    b = Builder(variant)
    [pol] = b.of_type("aws:iam/rolePolicy:RolePolicy")
    assert_pass("iam-scope", b.stack())  # the program's own policy is scoped
    doc = json.loads(pol.props["policy"])
    doc["Statement"].append({"Effect": "Allow", "Action": actions, "Resource": "*"})
    b.patch(pol, policy=json.dumps(doc))
    assert_fails("iam-scope", b.stack(), named, "every resource")


def test_iam_scope_does_not_apply_without_scoped_actions():
    assert verdict("iam-scope", Builder("flannel-vxlan").stack())[0] == "n/a"


def test_iam_deny_statements_do_not_grant():
    b = Builder("cilium-eni")
    [pol] = b.of_type("aws:iam/rolePolicy:RolePolicy")
    b.patch(pol, policy=json.dumps({"Statement": [{"Effect": "Deny", "Action": "ec2:*", "Resource": "*"}]}))
    assert_fails("iam-actions", b.stack(), "ec2:CreateNetworkInterface")


# --- encapsulation ports --------------------------------------------------------------------
@pytest.mark.parametrize("variant,label", [
    ("flannel-vxlan", "udp/8472"), ("flannel-wireguard", "udp/51820"), ("flannel-ipip", "ip-proto/4"),
    ("cilium-geneve", "udp/6081"), ("kube-router-overlay", "tcp/179"),
])
def test_ports_reject_a_missing_tunnel_rule_and_accept_it(variant, label):
    b = Builder(variant)
    rules = [r for r in b.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") if r.name.startswith("cni-")]
    port = next(p for p in b.variant.ports if p.label == label)
    victim = next(r for r in rules if r.props["ipProtocol"] == port.protocol and r.props.get("fromPort") in (port.from_port, None, -1))
    b.remove(victim)
    assert_fails("encapsulation-ports", b.stack(), label, "SecurityGroupIngressRule")
    b.res.append(victim)
    assert_pass("encapsulation-ports", b.stack())


def test_ports_accept_a_vpc_cidr_rule_and_reject_a_wrong_port():
    b = Builder("cilium-vxlan")
    vx = next(r for r in b.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") if r.props.get("fromPort") == 8472)
    b.patch(vx, fromPort=4789, toPort=4789)
    fixed = next(r for r in b.res if r.name == vx.name)
    assert_fails("encapsulation-ports", b.stack(), "udp/8472")
    b.patch(fixed, fromPort=8000, toPort=9000, referencedSecurityGroupId=None, cidrIpv4="10.20.0.0/16")
    assert_pass("encapsulation-ports", b.stack())


def test_ports_reject_a_rule_on_another_security_group():
    b = Builder("flannel-vxlan")
    other = b.add("aws:ec2/securityGroup:SecurityGroup", "other", {"tags": b.tags})
    vx = next(r for r in b.res if r.name == "cni-0")
    b.patch(vx, securityGroupId=other.ids[0])
    assert_fails("encapsulation-ports", b.stack(), "udp/8472")


def test_ports_inline_security_group_rules_count():
    b = Builder("flannel-ipip")
    b.remove(next(r for r in b.res if r.name == "cni-0"))
    assert_fails("encapsulation-ports", b.stack(), "ip-proto/4")
    b.patch(b.sg, ingress=[{"protocol": "4", "fromPort": 0, "toPort": 0, "self": True}])
    assert_pass("encapsulation-ports", b.stack())


@pytest.mark.parametrize("variant", ["flannel-host-gw", "cilium-native", "kube-router-native", "flannel-aws-vpc"])
def test_unencapsulated_pod_traffic_needs_the_pod_range_admitted(variant):
    b = Builder(variant)
    pods = next(r for r in b.res if r.name == "pods-all")
    b.remove(pods)
    assert_fails("encapsulation-ports", b.stack(), "pod addresses (10.244.0.0/16)", "cidr_ipv4")
    b.res.append(pods)
    assert_pass("encapsulation-ports", b.stack())


def test_ipvlan_pods_use_vpc_addresses_so_no_pod_range_rule():
    assert not network.routes_pod_addresses(get_variant("ipvlan"))
    assert verdict("encapsulation-ports", Builder("ipvlan").stack())[0] == "n/a"


# --- kernel ---------------------------------------------------------------------------------
def test_kernel_rejects_an_old_ami_and_accepts_the_default():
    b = Builder("cilium-vxlan")  # cilium 1.18 needs 5.10
    for _role, node in list(b.nodes.items()):
        b.patch(node, tags={**node.tags, "cnibench:ami-name": "ubuntu/images/hvm-ssd/ubuntu-focal-20.04-amd64-server-20240101"})
    assert_fails("kernel-minimum", b.stack(amiId="ami-focal"), ">= 5.10", "5.4")
    for _role, node in list(b.nodes.items()):
        b.patch(node, tags={**node.tags, "cnibench:ami-name": "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240101"})
    assert_pass("kernel-minimum", b.stack(amiId="ami-jammy"))
    assert_pass("kernel-minimum", Builder("cilium-vxlan").stack())


def test_kernel_is_advisory_when_the_ami_cannot_be_known():
    b = Builder("cilium-vxlan")
    stack = b.stack(amiId="ami-0badc0ffee")  # a custom AMI id: its kernel is unknown at preview
    assert verdict("kernel-minimum", stack)[0] == "pass"
    assert_fails("kernel-unverified", stack, ">= 5.10", "cnibench:ami-name")
    assert_pass("kernel-unverified", b.stack())  # default AMI: Ubuntu 24.04, kernel 6.8


def test_kernel_table():
    b = Builder("cilium-vxlan")
    node = b.nodes["client"]
    tagged = replace(node, props={**node.props, "tags": {**node.tags, "cnibench:kernel": "6.1.0-13-cloud-amd64"}})
    assert cluster.kernel_of(b.stack(amiId="x"), tagged)[0] == (6, 1)
    other = replace(node, props={**node.props, "tags": {**node.tags, "cnibench:ami-name": "al2023-ami-2023.6-x86_64"}})
    assert cluster.kernel_of(b.stack(amiId="x"), other) is None  # not in the table: unknown
    assert cluster.kernel_of(b.stack(), node)[0] == (6, 8)
    assert cluster.kernel_of(b.stack(amiId="ami-x"), node) is None


# --- kube-proxy replacement -----------------------------------------------------------------
@pytest.mark.parametrize("variant", ["cilium-native-kpr", "kube-router-proxy"])
def test_kpr_rejects_kube_proxy_installed_and_accepts_skip_phases(variant):
    b = Builder(variant)
    good = b.init.props["create"]
    b.patch(b.init, create=good.replace(" --skip-phases=addon/kube-proxy", ""))
    assert_fails("kube-proxy-replacement", b.stack(), "--skip-phases=addon/kube-proxy")
    b.patch(b.init, create=good)
    assert_pass("kube-proxy-replacement", b.stack())


def test_kpr_accepts_skip_phases_in_a_kubeadm_config():
    b = Builder("cilium-native-kpr")
    b.patch(b.init, create="cat >/etc/kubeadm.yaml <<EOF\nkind: InitConfiguration\nskipPhases:\n  - addon/kube-proxy\n"
                           "---\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.244.0.0/16\nEOF\n"
                           "kubeadm init --config /etc/kubeadm.yaml\n")
    assert_pass("kube-proxy-replacement", b.stack())


def test_kpr_rejects_a_cni_without_the_api_server_address():
    b = Builder("cilium-native-kpr")
    values = {k: v for k, v in b.release.props["values"].items() if k not in ("k8sServiceHost", "k8sServicePort")}
    b.patch(b.release, values=values)
    assert_fails("kube-proxy-replacement", b.stack(), "k8sServiceHost")
    b.patch(next(r for r in b.res if r.name == "cilium"), values={**values, "k8sServiceHost": "10.20.0.5", "k8sServicePort": "6443"})
    assert_pass("kube-proxy-replacement", b.stack())

    k = Builder("kube-router-proxy")
    args = [a for a in k.ds.props["spec"]["template"]["spec"]["containers"][0]["args"] if not a.startswith("--master")]
    k.patch(k.ds, spec={"template": {"spec": {"containers": [{"name": "kube-router", "args": args}]}}})
    assert_fails("kube-proxy-replacement", k.stack(), "--master")
    k.add("kubernetes:core/v1:ConfigMap", "kube-router-cfg", {"data": {"kubeconfig": "clusters:\n- cluster:\n    server: https://10.20.0.5:6443\n"}})
    assert_pass("kube-proxy-replacement", k.stack())


def test_kube_proxy_skipped_for_a_variant_that_needs_it_is_rejected():
    b = Builder("cilium-native")
    b.patch(b.init, create=b.init.props["create"] + " --skip-phases=addon/kube-proxy")
    assert_fails("kube-proxy-replacement", b.stack(), "does not replace")


# --- matched pair ---------------------------------------------------------------------------
@pytest.mark.parametrize("prop,value,needle", [
    ("instanceType", "c6i.4xlarge", "instance type"), ("ami", "ami-other", "AMI"),
    ("availabilityZone", "us-east-1b", "availability zone"), ("placementGroup", None, "placement group"),
])
def test_matched_pair_rejects_a_difference_and_accepts_identical_nodes(prop, value, needle):
    b = Builder("flannel-vxlan")
    good = b.nodes["server"].props[prop]
    b.patch(b.nodes["server"], **{prop: value})
    assert_fails("matched-pair", b.stack(), needle)
    b.patch(b.nodes["server"], **{prop: good})
    assert_pass("matched-pair", b.stack())


def test_matched_pair_rejects_a_spread_placement_group():
    b = Builder("flannel-vxlan")
    b.patch(b.pg, strategy="spread")
    assert_fails("matched-pair", b.stack(), "strategy 'spread'")


def test_burst_bandwidth_is_advisory():
    b = Builder("cilium-vxlan")
    for role in ("client", "server"):
        b.patch(b.nodes[role], instanceType="c6i.4xlarge")
    assert_fails("burst-bandwidth", b.stack(), "c6i.4xlarge", "credit")
    for role in ("client", "server"):
        b.patch(b.nodes[role], instanceType="c6i.8xlarge")
    assert_pass("burst-bandwidth", b.stack())  # the t3.medium control plane is not benchmarked


@pytest.mark.parametrize("itype,burst", [
    ("t3.2xlarge", True), ("t4g.micro", True), ("c5n.4xlarge", True), ("c5n.9xlarge", False),
    ("m6i.large", True), ("m6i.8xlarge", False), ("c7gn.16xlarge", False), ("c6i.metal", False),
])
def test_burst_table(itype, burst):
    assert cluster.burst_bandwidth_type(itype) is burst


# --- CIDRs ----------------------------------------------------------------------------------
def test_cidrs_reject_overlapping_ranges_and_accept_disjoint_ones():
    b = Builder("flannel-vxlan")
    good = b.init.props["create"]
    b.patch(b.init, create=good.replace("10.244.0.0/16", "10.20.128.0/17"))
    assert_fails("cidrs", b.stack(), "pod CIDR 10.20.128.0/17 overlaps the VPC CIDR 10.20.0.0/16")
    b.patch(b.init, create=good.replace("--service-cidr=10.96.0.0/12", "--service-cidr=10.244.0.0/20"))
    assert_fails("cidrs", b.stack(), "overlaps the service CIDR")
    b.patch(b.init, create=good)
    assert_pass("cidrs", b.stack())


def test_cidrs_reject_a_native_routing_cidr_that_misses_the_pod_cidr():
    b = Builder("cilium-native")
    values = dict(b.release.props["values"])
    b.patch(b.release, values={**values, "ipv4NativeRoutingCIDR": "10.20.0.0/16"})
    assert_fails("cidrs", b.stack(), "does not cover the pod CIDR 10.244.0.0/16")
    b.patch(next(r for r in b.res if r.name == "cilium"), values={k: v for k, v in values.items() if k != "ipv4NativeRoutingCIDR"})
    assert_fails("cidrs", b.stack(), "without ipv4NativeRoutingCIDR")
    b.patch(next(r for r in b.res if r.name == "cilium"), values={**values, "ipv4NativeRoutingCIDR": "10.244.0.0/15"})
    assert_pass("cidrs", b.stack())


def test_cidrs_reject_cilium_default_cluster_pool_overlapping_the_vpc():
    b = Builder("cilium-vxlan")
    values = dict(b.release.props["values"])
    values.pop("ipam")  # chart default: cluster-pool 10.0.0.0/8
    b.patch(b.release, values=values)
    assert_fails("cidrs", b.stack(), "cluster-pool range 10.0.0.0/8", "VPC CIDR")
    b.patch(next(r for r in b.res if r.name == "cilium"),
            values={**values, "ipam": {"operator": {"clusterPoolIPv4PodCIDRList": ["10.244.0.0/16"]}}})
    assert_pass("cidrs", b.stack())


# --- security -------------------------------------------------------------------------------
def test_ssh_from_anywhere_rejected_unless_allowed():
    b = Builder("flannel-vxlan")
    ssh = next(r for r in b.res if r.name == "ssh")
    b.patch(ssh, cidrIpv4="0.0.0.0/0")
    assert_fails("ssh-ingress", b.stack(), "0.0.0.0/0", "allowSshFromAnywhere")
    assert_pass("ssh-ingress", b.stack(allowSshFromAnywhere=True))
    b.patch(next(r for r in b.res if r.name == "ssh"), cidrIpv4="198.51.100.7/32")
    assert_pass("ssh-ingress", b.stack())


def test_world_open_is_judged_by_public_coverage_and_names_each_port():
    b = Builder("flannel-vxlan")
    b.patch(next(r for r in b.res if r.name == "ssh"), cidrIpv4="0.0.0.0/1")
    assert_fails("ssh-ingress", b.stack(), "opens tcp/22 (SSH) to 0.0.0.0/1 (2,092,957,696 public addresses)")
    b.patch(next(r for r in b.res if r.name == "ssh"), cidrIpv4="10.0.0.0/8")  # private: nobody on the internet
    assert_pass("ssh-ingress", b.stack())
    # the Kubernetes API port from a world-open range counts as much as SSH
    b.add("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "api", {
        "securityGroupId": b.sg.ids[0], "ipProtocol": "tcp", "fromPort": 6443, "toPort": 6443,
        "cidrIpv4": "128.0.0.0/1",
    }, deps={"securityGroupId": [b.sg]})
    text = assert_fails("ssh-ingress", b.stack(), "opens tcp/6443 (the Kubernetes API) to 128.0.0.0/1")
    assert "tcp/22" not in text.split("Fix")[0]
    assert_pass("ssh-ingress", b.stack(allowSshFromAnywhere=True))


def test_ssh_rule_shapes_all_traffic_and_legacy_rules():
    b = Builder("flannel-vxlan")
    b.add("aws:ec2/securityGroupRule:SecurityGroupRule", "legacy", {
        "type": "ingress", "securityGroupId": b.sg.ids[0], "protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"],
    })
    assert_fails("ssh-ingress", b.stack(), "SecurityGroupRule 'legacy'")
    b.remove(next(r for r in b.res if r.name == "legacy"))
    b.patch(b.sg, ingress=[{"protocol": "tcp", "fromPort": 20, "toPort": 30, "ipv6CidrBlocks": ["::/0"]}])
    assert_fails("ssh-ingress", b.stack(), "::/0")


def test_imdsv2_rejected_when_optional():
    b = Builder("flannel-vxlan")
    b.patch(b.nodes["client"], metadataOptions={"httpTokens": "optional"})
    assert_fails("imdsv2", b.stack(), "client", "http_tokens")
    b.patch(b.nodes["client"], metadataOptions={"httpTokens": "required"})
    assert_pass("imdsv2", b.stack())


def test_imdsv1_accepted_only_where_the_catalog_needs_it():
    b = Builder("flannel-aws-vpc")
    for node in b.nodes.values():
        b.patch(node, metadataOptions={"httpTokens": "optional"})
    assert_pass("imdsv2", b.stack())
    b.patch(b.nodes["client"], metadataOptions={"httpTokens": "disabled"})
    assert_fails("imdsv2", b.stack(), "client")


def test_unencrypted_volumes_rejected():
    b = Builder("flannel-vxlan")
    b.patch(b.nodes["server"], rootBlockDevice={"volumeSize": 30})
    assert_fails("encrypted-volumes", b.stack(), "root volume", "server")
    b.patch(b.nodes["server"], rootBlockDevice={"volumeSize": 30, "encrypted": True},
            ebsBlockDevices=[{"deviceName": "/dev/sdf", "encrypted": False}])
    assert_fails("encrypted-volumes", b.stack(), "/dev/sdf")
    b.patch(b.nodes["server"], ebsBlockDevices=[{"deviceName": "/dev/sdf", "encrypted": True}])
    assert_pass("encrypted-volumes", b.stack())


def test_expiry_tag_on_every_taggable_resource():
    b = Builder("flannel-vxlan")
    b.patch(b.pg, tags={"cnibench:stack": "x"})
    assert_fails("expiry-tag", b.stack(), "PlacementGroup 'pair'", "cnibench:expires-at")
    b.patch(b.pg, tags=None)  # no tags input at all on a resource that takes tags
    assert_fails("expiry-tag", b.stack(), "PlacementGroup 'pair'")
    b.patch(b.pg, tags=dict(b.tags))
    assert_pass("expiry-tag", b.stack())


def test_expiry_tag_accepts_provider_default_tags_and_skips_untaggable_types():
    b = Builder("flannel-vxlan")
    b.patch(b.pg, tags=None)
    b.res[b.res.index(b.pg)] = replace(b.pg, provider_props={"defaultTags": json.dumps({"tags": b.tags})})
    assert_pass("expiry-tag", b.stack())
    assert security.aws_supports_tags("aws:iam/rolePolicy:RolePolicy") is False  # the builder's policy has no tags
    assert security.aws_supports_tags("aws:ec2/instance:Instance") is True
    assert security.aws_supports_tags("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") is True


# --- the model ------------------------------------------------------------------------------
def test_variant_comes_from_instance_tags_before_config():
    b = Builder("flannel-host-gw")
    assert b.stack(variant="cilium-vxlan").variant.name == "flannel-host-gw"
    assert Stack([], {"variant": "cilium-vxlan"}).variant.name == "cilium-vxlan"
    assert evaluate([rule("l2-adjacency")], Stack([], {}))[0].verdict == "n/a"


def test_ref_compares_ids_then_origins():
    a = Ref(frozenset({"subnet-1"}), frozenset({"u1"}))
    assert a.same(Ref(frozenset({"subnet-1"}), frozenset({"u2"}))) is True
    assert a.same(Ref(frozenset(), frozenset({"u1"}))) is True
    assert a.same(Ref(frozenset(), frozenset({"u2"}))) is False
    assert a.same(Ref(frozenset(), frozenset())) is None


def test_kpr_ignores_flags_quoted_in_script_comments():
    b = Builder("cilium-native-kpr")
    b.patch(b.init, create="sudo env bash -s -- <<'EOF'\n#   \"$@\" extra flags, e.g. --skip-phases=addon/kube-proxy\n"
                           "kubeadm init --config /etc/kubeadm.yaml \"$@\"\nEOF\n")
    assert_fails("kube-proxy-replacement", b.stack(), "still installs it")


def test_kpr_is_not_applicable_when_the_init_script_is_unknown_at_preview():
    b = Builder("cilium-native-kpr")
    b.patch(b.init, create=UNKNOWN)
    got, messages = verdict("kube-proxy-replacement", b.stack())
    assert got == "n/a" and "unknown at preview" in messages[0]


def test_kpr_accepts_api_server_values_unknown_at_preview():
    b = Builder("cilium-native-kpr")
    b.patch(b.release, values={**b.release.props["values"], "k8sServiceHost": UNKNOWN})
    assert_pass("kube-proxy-replacement", b.stack())
