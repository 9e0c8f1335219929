"""NodePair: a matched, fair pair of benchmark instances and a control plane (under mocks)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from test_cni import CILIUM_ENI_IAM, SOURCE_DEST_CHECK_OFF
from test_variants import NEEDS_IMDSV1

from cnibench.config import ConfigError
from cnibench.program.nodes import address_plan, iam_roles
from cnibench.tags import EXPIRES_TAG, REQUIRED_TAGS, ROLE_TAG, STACK_TAG, VARIANT_TAG
from cnibench.variants import CATALOG
from tests.conftest import ALL_STACKS, public_ip

INSTANCE = "aws:ec2/instance:Instance"
# AWS resource types that take no tags at all (checked against pulumi-aws v7: no `tags` argument)
UNTAGGABLE = {
    "aws:iam/rolePolicy:RolePolicy",
    "aws:ec2/route:Route",
    "aws:ec2/routeTableAssociation:RouteTableAssociation",
}


# The EC2 actions each variant's nodes are granted, written out (not read from the catalog):
# flannel v0.19.2 backend/awsvpc/awsvpc.go calls DescribeInstances, DescribeRouteTables,
# DeleteRoute and CreateRoute (ModifyNetworkInterfaceAttribute only warns on failure: not granted);
# cilium's operator the eni.rst "Required Privileges" (test_cni.CILIUM_ENI_IAM); every other CNI
# calls no AWS API. Who holds the role: every node runs flannel, only the control plane cilium's
# operator.
IAM_ACTIONS = {
    "flannel-aws-vpc": {"ec2:DescribeInstances", "ec2:DescribeRouteTables", "ec2:DeleteRoute", "ec2:CreateRoute"},
    "cilium-eni": CILIUM_ENI_IAM,
}
IAM_HOLDERS = {"flannel-aws-vpc": {"control-plane", "client", "server"}, "cilium-eni": {"control-plane"}}


def instances(run) -> dict[str, object]:
    return {i.inputs["tags"][ROLE_TAG]: i for i in run.of_type(INSTANCE)}


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_benchmark_nodes_are_matched(stack_run, stack):
    run = stack_run(stack)
    by_role = instances(run)
    assert set(by_role) == {"control-plane", "client", "server"}
    client, server = by_role["client"].inputs, by_role["server"].inputs
    for key in ("instanceType", "ami", "availabilityZone", "placementGroup", "subnetId"):
        assert client[key] == server[key], key
        assert client[key], key
    assert client["instanceType"] == run.config["instanceType"]
    group = run.one("aws:ec2/placementGroup:PlacementGroup")
    assert group.inputs["strategy"] == "cluster"
    assert client["placementGroup"] == group.state["name"]
    # the control plane is separate and smaller, outside the placement group, same AZ and AMI
    cp = by_role["control-plane"].inputs
    assert cp["instanceType"] == run.config["controlPlaneInstanceType"]
    assert "placementGroup" not in cp
    assert cp["ami"] == client["ami"] and cp["availabilityZone"] == client["availabilityZone"]


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_l2_variants_share_a_subnet(stack_run, stack):
    run = stack_run(stack)
    by_role = instances(run)
    subnet = run.one("aws:ec2/subnet:Subnet")  # one subnet unless splitSubnets
    assert by_role["client"].inputs["subnetId"] == by_role["server"].inputs["subnetId"] == subnet.state["id"]
    net = ipaddress.IPv4Network(subnet.inputs["cidrBlock"])
    for inst in by_role.values():
        assert ipaddress.IPv4Address(inst.inputs["privateIp"]) in net


def test_split_subnets_are_refused_for_an_l2_variant_before_any_resource(program):
    with pytest.raises(ConfigError, match="cnibench:splitSubnets: true puts the benchmark nodes in two subnets") as err:
        program("flannel-host-gw", {"splitSubnets": True})
    assert len(err.value.problems) == 1 and "flannel-host-gw" in err.value.problems[0]


@pytest.mark.parametrize("stack", ["flannel-vxlan", "cilium-geneve"])
def test_split_subnets_puts_the_pair_in_two(program, stack):
    run = program(stack, {"splitSubnets": True})
    by_role = instances(run)
    client, server = by_role["client"].inputs, by_role["server"].inputs
    assert client["subnetId"] != server["subnetId"]
    subnets = {s.state["id"]: ipaddress.IPv4Network(s.inputs["cidrBlock"]) for s in run.of_type("aws:ec2/subnet:Subnet")}
    assert ipaddress.IPv4Address(client["privateIp"]) in subnets[client["subnetId"]]
    assert ipaddress.IPv4Address(server["privateIp"]) in subnets[server["subnetId"]]
    # everything else still matched
    for key in ("instanceType", "ami", "availabilityZone", "placementGroup"):
        assert client[key] == server[key]


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_source_dest_check_imds_and_encryption(stack_run, stack):
    run = stack_run(stack)
    for inst in run.of_type(INSTANCE):
        i = inst.inputs
        assert i["sourceDestCheck"] is (stack not in SOURCE_DEST_CHECK_OFF), inst.name
        # IMDSv2 everywhere but where the CNI's metadata client predates tokens
        assert i["metadataOptions"]["httpTokens"] == ("optional" if stack in NEEDS_IMDSV1 else "required")
        assert i["metadataOptions"]["httpEndpoint"] == "enabled"
        assert i["rootBlockDevice"]["encrypted"] is True
        assert i["associatePublicIpAddress"] is True
        assert i["vpcSecurityGroupIds"] == [run.one("aws:ec2/securityGroup:SecurityGroup").state["id"]]
        # nothing for cloud-init: user data would be stored in clear text
        assert "userData" not in i and "userDataBase64" not in i


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_iam_is_exactly_what_the_cni_calls(stack_run, stack):
    run = stack_run(stack)
    assert set(CATALOG[stack].iam_actions) == IAM_ACTIONS.get(stack, set())
    policies = run.of_type("aws:iam/rolePolicy:RolePolicy")
    profiles = run.of_type("aws:iam/instanceProfile:InstanceProfile")
    by_role = instances(run)
    if stack not in IAM_ACTIONS:
        assert policies == [] and profiles == [] and run.of_type("aws:iam/role:Role") == []
        assert all("iamInstanceProfile" not in i.inputs for i in by_role.values())
        return
    (policy,) = policies
    doc = json.loads(policy.inputs["policy"])
    actions = {a for st in doc["Statement"] for a in st["Action"]}
    assert actions == IAM_ACTIONS[stack]
    assert all(st["Effect"] == "Allow" for st in doc["Statement"])
    role = run.one("aws:iam/role:Role")
    assert policy.inputs["role"] == role.state["id"]
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    (profile,) = profiles
    assert profile.inputs["role"] == role.state["name"]
    with_profile = {r for r, i in by_role.items() if i.inputs.get("iamInstanceProfile") == profile.state["name"]}
    expected = IAM_HOLDERS[stack]
    assert with_profile == expected
    assert {r for r, i in by_role.items() if "iamInstanceProfile" in i.inputs} == expected


def test_aws_vpc_gets_its_route_table_and_iam(stack_run):
    run = stack_run("flannel-aws-vpc")
    table = run.one("aws:ec2/routeTable:RouteTable")
    assoc = run.one("aws:ec2/routeTableAssociation:RouteTableAssociation")
    assert assoc.inputs["routeTableId"] == table.state["id"]
    # flannel v0.19.2 backend/awsvpc/awsvpc.go: DescribeInstances, DescribeRouteTables,
    # DeleteRoute, CreateRoute (ModifyNetworkInterfaceAttribute only warns on failure, and the
    # instances' source/dest check is off from creation: not granted). The route writes reach only
    # route tables tagged with this stack, and ENIs as their targets.
    assert json.loads(run.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Unscoped", "Effect": "Allow", "Action": ["ec2:DescribeInstances", "ec2:DescribeRouteTables"],
             "Resource": "*"},
            {"Sid": "RouteTableOfTheStack", "Effect": "Allow", "Action": ["ec2:CreateRoute", "ec2:DeleteRoute"],
             "Resource": "arn:aws:ec2:us-east-1:*:route-table/*",
             "Condition": {"StringEquals": {"ec2:ResourceTag/cnibench:stack": "flannel-aws-vpc"}}},
            {"Sid": "RouteTableTargets", "Effect": "Allow", "Action": ["ec2:CreateRoute", "ec2:DeleteRoute"],
             "Resource": "arn:aws:ec2:us-east-1:*:network-interface/*"},
        ],
    }
    # the route table the condition names carries the stack's tag
    assert table.inputs["tags"]["cnibench:stack"] == "flannel-aws-vpc"
    assert all(i.inputs["sourceDestCheck"] is False for i in run.of_type(INSTANCE))


def test_cilium_eni_tags_only_network_interfaces(stack_run):
    doc = json.loads(stack_run("cilium-eni").one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    assert set(by_sid) == {"Unscoped", "NetworkInterfaces"}
    assert by_sid["NetworkInterfaces"] == {
        "Sid": "NetworkInterfaces", "Effect": "Allow", "Action": ["ec2:CreateTags"],
        "Resource": "arn:aws:ec2:us-east-1:*:network-interface/*",
    }
    # cilium Documentation/network/concepts/ipam/eni.rst "Required Privileges" (+ DescribeTags,
    # UnassignPrivateIpAddresses, DescribeInstances), written out here, not read from the catalog
    assert by_sid["Unscoped"]["Resource"] == "*"
    assert set(by_sid["Unscoped"]["Action"]) == {
        "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DescribeVpcs", "ec2:DescribeRouteTables",
        "ec2:DescribeSecurityGroups", "ec2:DescribeInstanceTypes", "ec2:CreateNetworkInterface",
        "ec2:AttachNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:ModifyNetworkInterfaceAttribute",
        "ec2:AssignPrivateIpAddresses", "ec2:DescribeTags", "ec2:UnassignPrivateIpAddresses", "ec2:DescribeInstances",
    }


def test_control_plane_on_a_benchmark_node(program):
    run = program("cilium-eni", {"controlPlaneOnBenchmarkNode": True})
    by_role = instances(run)
    assert set(by_role) == {"client", "server"}
    assert by_role["client"].inputs["tags"]["cnibench:control-plane"] == "true"
    # the operator's instance profile follows the control plane onto the client node
    assert "iamInstanceProfile" in by_role["client"].inputs
    assert "iamInstanceProfile" not in by_role["server"].inputs
    nodes = run.outputs["nodes"]
    assert nodes["control-plane"]["instanceId"] == nodes["client"]["instanceId"]
    assert nodes["control-plane"]["role"] == "control-plane"


def test_secondary_addresses_for_vpc_addressed_pods(stack_run):
    run = stack_run("ipvlan")
    count = CATALOG["ipvlan"].node_secondary_ips
    subnet = ipaddress.IPv4Network(run.one("aws:ec2/subnet:Subnet").inputs["cidrBlock"])
    seen: set[str] = set()
    by_role = instances(run)
    # the control plane runs no ipvlan pod: no secondary address (a t3.medium holds 5 at most)
    assert "secondaryPrivateIps" not in by_role.pop("control-plane").inputs
    assert "secondaryPrivateIps" not in run.outputs["nodes"]["control-plane"] or \
        run.outputs["nodes"]["control-plane"]["secondaryPrivateIps"] == []
    for role, inst in by_role.items():
        ips = inst.inputs["secondaryPrivateIps"]
        assert len(ips) == count == 8
        assert all(ipaddress.IPv4Address(ip) in subnet for ip in ips)
        assert inst.inputs["privateIp"] not in ips
        assert not seen & set(ips), "two nodes share a secondary address"
        seen |= set(ips)
        assert run.outputs["nodes"][role]["secondaryPrivateIps"] == ips
    for stack in ("flannel-vxlan", "cilium-eni"):
        assert all("secondaryPrivateIps" not in i.inputs for i in stack_run(stack).of_type(INSTANCE))


def test_fixed_addresses_replace_delete_first(stack_run):
    for inst in stack_run("flannel-vxlan").of_type(INSTANCE):
        assert inst.options["deleteBeforeReplace"] is True


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_every_aws_resource_is_tagged(stack_run, stack):
    run = stack_run(stack)
    created = run.one("command:local:Command", "created-at")
    assert created.inputs["create"] == "date -u +%s" and "triggers" not in created.inputs
    born = datetime.fromtimestamp(int(created.state["stdout"]), tz=timezone.utc)
    assert abs(datetime.now(timezone.utc) - born) < timedelta(hours=1)
    expected_expiry = (born + timedelta(hours=run.config["expiryHours"])).strftime("%Y-%m-%dT%H:%M:%SZ")
    checked = 0
    for res in run.resources:
        if not res.type.startswith("aws:") or res.type in UNTAGGABLE:
            continue
        tags = res.inputs.get("tags")
        assert tags, (
            f"{res.type} {res.name} has no tags: pass tags=Tagging.for_(name) (cnibench/tags.py), "
            "or create node-to-node rules with Network.allow_between_nodes, which tags them"
        )
        assert set(REQUIRED_TAGS) <= set(tags), f"{res.name}: {tags}"
        assert tags[STACK_TAG] == stack and tags[VARIANT_TAG] == run.config["variant"]
        # the stack's creation time (the created-at command's stdout) + expiryHours
        assert tags[EXPIRES_TAG] == expected_expiry, res.name
        checked += 1
    assert checked >= 10
    provider = run.one("pulumi:providers:aws")
    assert provider.inputs["region"] == run.config["region"]
    # provider config arrives as JSON text
    assert set(REQUIRED_TAGS) <= set(json.loads(provider.inputs["defaultTags"])["tags"])
    # the root volumes too
    for inst in run.of_type(INSTANCE):
        assert set(REQUIRED_TAGS) <= set(inst.inputs["rootBlockDevice"]["tags"])


def test_extra_tags_are_added(program):
    run = program("flannel-vxlan", {"extraTags": ["team=netperf", "cost-center=net/42"]})
    for inst in run.of_type(INSTANCE):
        assert inst.inputs["tags"]["team"] == "netperf"
        assert inst.inputs["tags"]["cost-center"] == "net/42"
        assert inst.inputs["tags"][STACK_TAG] == "flannel-vxlan"
    # a key cnibench sets itself is refused, not silently replaced
    with pytest.raises(ConfigError, match="cnibench sets the tag 'cnibench:stack' itself"):
        program("flannel-vxlan", {"extraTags": ["cnibench:stack=spoofed"]})


def test_ssh_key_is_a_secret_and_only_the_public_half_reaches_aws(stack_run):
    run = stack_run("flannel-vxlan")
    key = run.one("tls:index/privateKey:PrivateKey")
    assert key.inputs["algorithm"] == "ED25519"
    pair = run.one("aws:ec2/keyPair:KeyPair")
    assert pair.inputs["publicKey"].startswith("ssh-ed25519 ")
    assert "sshPrivateKey" in run.secret_outputs
    assert "PRIVATE KEY" in run.outputs["sshPrivateKey"]
    for inst in run.of_type(INSTANCE):
        assert inst.inputs["keyName"] == pair.state["keyName"]
        assert "PRIVATE KEY" not in json.dumps(inst.inputs)
    for res in run.resources:
        if res.type.startswith("aws:"):
            assert "PRIVATE KEY" not in json.dumps(res.inputs, default=str), res.name


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_node_and_ssh_outputs(stack_run, stack):
    run = stack_run(stack)
    by_role = instances(run)
    nodes = run.outputs["nodes"]
    assert set(nodes) == {"control-plane", "client", "server"}
    for role, out in nodes.items():
        inst = by_role[role]
        assert out["role"] == role
        assert out["instanceType"] == inst.inputs["instanceType"]
        assert out["ami"] == inst.inputs["ami"]
        assert out["availabilityZone"] == inst.inputs["availabilityZone"]
        assert out["subnetId"] == inst.inputs["subnetId"]
        assert out["privateIp"] == inst.state["privateIp"]
        # the control plane's address is its Elastic IP (a stable API endpoint), the others their own
        assert out["publicIp"] == public_ip(run, role)
        assert (out["publicIp"] == inst.state["publicIp"]) is (role != "control-plane")
        assert out["name"] == inst.state["privateDns"]
        assert run.outputs["ssh"][role].endswith(f"ubuntu@{public_ip(run, role)}")
    assert "sshPrivateKey" in run.outputs["ssh"]["keyFile"]


def test_the_key_file_command_creates_the_file_private_before_writing(stack_run, tmp_path):
    """The README's key-file line, run by sh with a recording stand-in for ``pulumi stack output``
    that notes the file's mode when it starts writing: 600 from the start, also over an existing
    world-readable file, and never chmod-ed afterwards."""
    line = stack_run("flannel-vxlan").outputs["ssh"]["keyFile"]
    assert "chmod" not in line
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pulumi").write_text('#!/bin/sh\nstat -c %a cnibench-flannel-vxlan.key > mode-seen\necho KEY\n')
    (bindir / "pulumi").chmod(0o755)
    key = tmp_path / "cnibench-flannel-vxlan.key"
    key.write_text("old")
    key.chmod(0o644)
    subprocess.run(["sh", "-c", line], cwd=tmp_path, env={"PATH": f"{bindir}:/usr/bin:/bin"}, check=True)
    assert (tmp_path / "mode-seen").read_text().strip() == "600"
    assert key.stat().st_mode & 0o777 == 0o600 and key.read_text() == "KEY\n"


def test_ami_override_and_architecture_checks(program):
    run = program("flannel-vxlan", {"amiId": "ami-0fedcba9876543210"})
    assert {i.inputs["ami"] for i in run.of_type(INSTANCE)} == {"ami-0fedcba9876543210"}
    with pytest.raises(ConfigError, match="cnibench:controlPlaneInstanceType: 't3.medium' is x86_64 but "
                                          "cnibench:instanceType 'c7g.8xlarge' is arm64"):
        program("flannel-vxlan", {"instanceType": "c7g.8xlarge"})  # arm64 vs t3.medium (x86_64)
    run = program("flannel-vxlan", {"instanceType": "c7g.8xlarge", "controlPlaneInstanceType": "t4g.medium"})
    assert {i.inputs["instanceType"] for i in run.of_type(INSTANCE)} == {"c7g.8xlarge", "t4g.medium"}


# --- pure helpers -----------------------------------------------------------------------

def test_address_plan():
    plan = address_plan({"control-plane": "10.20.0.0/24", "client": "10.20.0.0/24", "server": "10.20.1.0/24"},
                        {"client": 3, "server": 3})
    assert plan["control-plane"].private_ip == "10.20.0.10" and plan["control-plane"].secondary_ips == ()
    assert plan["client"].private_ip == "10.20.0.20"
    assert plan["server"].private_ip == "10.20.1.30"
    assert plan["client"].secondary_ips == ("10.20.0.80", "10.20.0.81", "10.20.0.82")
    assert plan["server"].secondary_ips == ("10.20.1.120", "10.20.1.121", "10.20.1.122")
    with pytest.raises(ValueError, match="too small"):
        address_plan({"server": "10.20.0.0/26"}, {"server": 8})
    with pytest.raises(ValueError, match="at most 32"):
        address_plan({"client": "10.20.0.0/24"}, {"client": 33})


def test_ipvlan_secondary_addresses_must_fit_one_interface_of_the_type(program):
    # t3.large: 12 IPv4 addresses per interface (EC2 User Guide) -> 8 secondaries fit
    run = program("ipvlan", {"instanceType": "t3.large", "controlPlaneInstanceType": "t3.medium"})
    assert {len(i.inputs.get("secondaryPrivateIps") or []) for i in run.of_type(INSTANCE)} == {0, 8}
    # t3.medium: 6 per interface = 1 primary + 5 secondary < 8
    with pytest.raises(ConfigError, match=r"cnibench:instanceType: 't3\.medium' allows 6 IPv4 addresses") as err:
        program("ipvlan", {"instanceType": "t3.medium"})
    text = str(err.value)
    assert "cnibench:instanceType: 't3.medium' allows 6 IPv4 addresses per network interface (1 primary + 5 " \
           "secondary); ipvlan gives each benchmark node 8 secondary addresses" in text
    assert "at least 9 addresses per interface" in text
    # variants without secondary addresses do not care
    assert program("flannel-vxlan", {"instanceType": "t3.medium"}).of_type(INSTANCE)


def test_iam_roles_per_cni():
    assert iam_roles(CATALOG["flannel-aws-vpc"]) == ("control-plane", "client", "server")
    assert iam_roles(CATALOG["cilium-eni"]) == ("control-plane",)
    assert iam_roles(CATALOG["cilium-native"]) == ()


def test_the_expiry_is_fixed_when_the_stack_is_created(program):
    """The expiry derives from one local command whose inputs do not depend on the clock or on
    benchmarkRun: Pulumi runs nothing for it on later updates, so its stdout (kept in the
    state) and every expiry tag stay as they were at creation."""
    first = program("flannel-vxlan", {"benchmarkRun": "1"})
    second = program("flannel-vxlan", {"benchmarkRun": "2", "expiryHours": 8})
    a, b = (r.one("command:local:Command", "created-at") for r in (first, second))
    assert a.inputs == b.inputs == {"create": "date -u +%s", "update": 'printf "%s" "$PULUMI_COMMAND_STDOUT"'}
    # the tags are built from its output, not from the program's clock
    for run, cmd in ((first, a), (second, b)):
        provider = run.one("pulumi:providers:aws")
        tags = json.loads(provider.inputs["defaultTags"])["tags"] if isinstance(provider.inputs["defaultTags"], str) \
            else provider.inputs["defaultTags"]["tags"]
        born = datetime.fromtimestamp(int(cmd.state["stdout"]), tz=timezone.utc)
        assert tags[EXPIRES_TAG] == (born + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
