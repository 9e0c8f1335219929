"""Settings of the AWS resources that no other test asserted (issue 18, item 5), read from the
inputs each resource was registered with under Pulumi's mocks (tests/conftest.py, cnibench/mocks.py).

Every test counts what it inspected: a resource declared inside an ``apply`` on an unknown
output is never registered (the ``apply`` never runs), an input set from one stays unknown, and a
loop over no resources asserts nothing. The expected values are
written here with their source, not read from the program's modules.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_variants import NEEDS_IMDSV1

from cnibench import mocks
from cnibench.tags import ROLE_TAG
from cnibench.variants import CATALOG
from tests.conftest import ALL_STACKS

INSTANCE = "aws:ec2/instance:Instance"
SUBNET = "aws:ec2/subnet:Subnet"
VPC = "aws:ec2/vpc:Vpc"
ROLE = "aws:iam/role:Role"
GET_AMI = "aws:ec2/getAmi:getAmi"

# Canonical's AWS account, the owner of the official Ubuntu images, and the name of its Ubuntu
# 24.04 LTS (noble) server images on gp3 root volumes ("Find Ubuntu images on AWS", Ubuntu on AWS
# documentation: owner 099720109477, names ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-<arch>-server-<date>).
CANONICAL = "099720109477"
NOBLE = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-*"
# The AMI the mocked lookup answers (cnibench/mocks.py CALLS): the instances must boot what it found.
MOCK_AMI = "ami-0123456789abcdef0"


def lookups(monkeypatch) -> list[dict[str, Any]]:
    """Records the arguments of every ``aws.ec2.get_ami`` call (the mock itself ignores them)."""
    seen: list[dict[str, Any]] = []
    answer = mocks.CALLS[GET_AMI]

    def recording(args):
        seen.append(json.loads(json.dumps(dict(args))))  # plain lists and dicts
        return answer(args)

    monkeypatch.setitem(mocks.CALLS, GET_AMI, recording)
    return seen


def node_count(run) -> int:
    return 2 if str(run.config.get("controlPlaneOnBenchmarkNode", "false")).lower() == "true" else 3


# --------------------------------------------------------------------------- network

@pytest.mark.parametrize("stack", ALL_STACKS)
def test_the_vpc_resolves_dns_and_names_hosts(stack_run, stack):
    """enableDnsSupport (the Amazon-provided DNS server at the VPC base +2) and enableDnsHostnames
    (DNS hostnames for instances) are both needed for the ip-...ec2.internal names the nodes
    register with Kubernetes (Amazon VPC User Guide, "DNS attributes for your VPC": instances get
    DNS hostnames only when both attributes are true). A VPC created through the API has
    enableDnsHostnames=false unless asked (same page), so both must be set explicitly."""
    run = stack_run(stack)
    (vpc,) = run.of_type(VPC)
    assert vpc.inputs["enableDnsSupport"] is True
    assert vpc.inputs["enableDnsHostnames"] is True
    assert vpc.inputs["cidrBlock"] == run.config.get("vpcCidr", "10.20.0.0/16")


@pytest.mark.parametrize("overrides, subnets", [({}, 1), ({"splitSubnets": True}, 2)])
def test_subnets_map_no_public_address_the_instances_ask_for_one(program, overrides, subnets):
    """mapPublicIpOnLaunch=false: nothing launched into the subnets gets a public address by default
    (Amazon VPC User Guide, "IP addressing for your VPCs and subnets"); each node asks for one
    itself (associatePublicIpAddress), so the setting is explicit on both sides."""
    run = program("flannel-vxlan", overrides)
    found = run.of_type(SUBNET)
    assert len(found) == subnets
    for subnet in found:
        assert subnet.inputs["mapPublicIpOnLaunch"] is False, subnet.name
    nodes = run.of_type(INSTANCE)
    assert len(nodes) == 3
    assert [i.inputs["associatePublicIpAddress"] for i in nodes] == [True] * 3


def test_an_existing_vpc_gets_subnets_without_public_addresses_and_no_vpc_resource(program):
    run = program("flannel-vxlan", {"vpcId": "vpc-0123456789abcdef0"})
    assert run.of_type(VPC) == []
    (subnet,) = run.of_type(SUBNET)
    assert subnet.inputs["vpcId"] == "vpc-0123456789abcdef0"
    assert subnet.inputs["mapPublicIpOnLaunch"] is False


# --------------------------------------------------------------------------- instances

@pytest.mark.parametrize("stack", ALL_STACKS)
def test_instance_metadata_takes_tokens_and_one_hop(stack_run, stack):
    """IMDSv2 only (httpTokens=required: every metadata request needs a session token; EC2 User
    Guide, "Configure the instance metadata options"), except where the CNI's metadata client
    predates tokens (test_variants.NEEDS_IMDSV1, with its source); a PUT response hop limit of 1, so
    a token reaches the node's own network namespace only, not a pod one hop further (the same page
    recommends 2 where containers must reach IMDS; cnibench's agents that read it run in the host
    network)."""
    run = stack_run(stack)
    needs_v1 = stack in NEEDS_IMDSV1
    inspected = 0
    for inst in run.of_type(INSTANCE):
        meta = inst.inputs["metadataOptions"]
        assert meta["httpEndpoint"] == "enabled", inst.name
        assert meta["httpTokens"] == ("optional" if needs_v1 else "required"), inst.name
        assert meta["httpPutResponseHopLimit"] == 1, inst.name
        inspected += 1
    assert inspected == node_count(run)


def test_most_variants_get_imdsv2_only():
    """The "required" branch above is what most stacks check: IMDSv1 stays the exception."""
    v1 = [s for s in ALL_STACKS if s in NEEDS_IMDSV1]
    assert len(ALL_STACKS) - len(v1) > len(v1), v1


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_root_volumes_are_gp3_encrypted_and_go_with_the_instance(stack_run, stack):
    """gp3 (the "General Purpose SSD gp3" type, the default of the noble images named hvm-ssd-gp3),
    encrypted, 40 GiB (the size cnibench/config.py's response-size bound counts on), and deleted
    with the instance: a destroyed stack leaves no volume behind (EC2 User Guide, "Preserve data
    when an instance is terminated": DeleteOnTermination)."""
    run = stack_run(stack)
    inspected = 0
    for inst in run.of_type(INSTANCE):
        root = inst.inputs["rootBlockDevice"]
        assert root["volumeType"] == "gp3", inst.name
        assert root["deleteOnTermination"] is True, inst.name
        assert root["encrypted"] is True, inst.name
        assert root["volumeSize"] == 40, inst.name
        inspected += 1
    assert inspected == node_count(run)


def test_a_combined_control_plane_node_has_the_same_settings(program):
    run = program("cilium-native", {"controlPlaneOnBenchmarkNode": True})
    found = run.of_type(INSTANCE)
    assert sorted(i.inputs["tags"][ROLE_TAG] for i in found) == ["client", "server"]
    for inst in found:
        assert inst.inputs["metadataOptions"]["httpTokens"] == "required"
        assert inst.inputs["metadataOptions"]["httpPutResponseHopLimit"] == 1
        assert inst.inputs["rootBlockDevice"]["deleteOnTermination"] is True


# --------------------------------------------------------------------------- IAM

IAM_STACKS = [s for s in ALL_STACKS if CATALOG[s].iam_actions]


def test_some_stacks_have_an_iam_role():
    assert IAM_STACKS, "no stack with IAM actions: the trust-policy test below would check nothing"


@pytest.mark.parametrize("stack", IAM_STACKS)
def test_the_role_trusts_ec2_only(stack_run, stack):
    """Exactly one statement: Allow, the EC2 service principal, sts:AssumeRole (IAM User Guide,
    "Use an IAM role to grant permissions to applications running on Amazon EC2 instances": the
    trust policy names "Service": "ec2.amazonaws.com"); no other principal, no Deny to misread."""
    run = stack_run(stack)
    (role,) = run.of_type(ROLE)
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }


# --------------------------------------------------------------------------- AMI lookup

@pytest.mark.parametrize("overrides, arch", [
    ({}, "amd64"),
    ({"instanceType": "c7g.8xlarge", "controlPlaneInstanceType": "t4g.medium"}, "arm64"),
])
def test_the_ami_lookup_asks_canonical_for_the_latest_noble_of_the_architecture(monkeypatch, overrides, arch):
    seen = lookups(monkeypatch)
    run = mocks.run_program("cilium-native", overrides)
    assert len(seen) == 1, seen  # one lookup for all nodes: they boot one image
    (args,) = seen
    assert args["owners"] == [CANONICAL]
    assert args["mostRecent"] is True
    assert {f["name"]: f["values"] for f in args["filters"]} == {
        "name": [NOBLE.format(arch=arch)],
        "virtualization-type": ["hvm"],
        "root-device-type": ["ebs"],
    }
    amis = [i.inputs["ami"] for i in run.of_type(INSTANCE)]
    assert amis == [MOCK_AMI] * 3


def test_an_explicit_ami_is_not_looked_up(monkeypatch):
    seen = lookups(monkeypatch)
    run = mocks.run_program("cilium-native", {"amiId": "ami-0fedcba9876543210"})
    assert seen == []
    amis = [i.inputs["ami"] for i in run.of_type(INSTANCE)]
    assert amis == ["ami-0fedcba9876543210"] * 3
