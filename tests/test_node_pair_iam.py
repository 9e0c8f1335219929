"""The nodes' IAM documents, statement by statement, as the mocked resources received them (issue 18).

Every expected document is written out here with its sources; nothing is read from
cnibench/program/nodes.py or the catalog. Each test runs the program afresh (``program``, not the
session-cached ``stack_run``): the lines a cached run executes are recorded, in the coverage run of
scripts/mutation-score.py, under whichever test ran that stack first, so a test reading a cached run
is not selected for the mutants of those lines.

Sources:
  - flannel v0.19.2 backend/awsvpc/awsvpc.go: ``findENI`` calls DescribeInstances,
    ``detectRouteTableID``/``checkMatchingRoutes``/``cleanupBlackholeRoutes`` DescribeRouteTables,
    ``RegisterNetwork`` DeleteRoute and ``createRoute`` CreateRoute with the instance's ENI as
    ``NetworkInterfaceId`` (the route's target); ``disableSrcDestCheck``
    (ModifyNetworkInterfaceAttribute) only logs a warning when it fails: not granted.
  - Service Authorization Reference, "Actions, resources, and condition keys for Amazon EC2":
    resource types ``route-table`` (``arn:${Partition}:ec2:${Region}:${Account}:route-table/${RouteTableId}``)
    and ``network-interface`` (``arn:${Partition}:ec2:${Region}:${Account}:network-interface/${NetworkInterfaceId}``),
    both with the condition key ``ec2:ResourceTag/${TagKey}``; CreateRoute/DeleteRoute act on
    ``route-table*`` (required) and CreateRoute also on the target ``network-interface``.
  - IAM User Guide, "Controlling access to AWS resources using tags" (the ``ResourceTag/<key>``
    condition with ``StringEquals``) and "IAM JSON policy elements": ``Version`` "2012-10-17" (the
    current policy language), ``Sid`` letters and digits only, unique within an IAM policy.
  - AWS managed policy AmazonEKS_CNI_Policy (v5, AWS Managed Policy Reference): its statement
    ``AmazonEKSCNIPolicyENITag`` grants ec2:CreateTags on ``arn:aws:ec2:*:*:network-interface/*`` only,
    everything else of the ENI IPAM calls on ``*``.
  - cilium Documentation/network/concepts/ipam/eni.rst, "Required Privileges" (the operator's
    calls; the same set as tests/test_cni.py CILIUM_ENI_IAM, written out here).
  - IAM User Guide, "Use an IAM role to grant permissions to applications running on Amazon EC2
    instances": the role's trust policy lets the service principal ``ec2.amazonaws.com`` call
    ``sts:AssumeRole``.
"""

from __future__ import annotations

import json
import re

import pytest

ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE = "aws:iam/role:Role"

# the stack's tag (README: every resource carries cnibench:stack; its value is the stack's name,
# tests/test_node_pair.py test_every_aws_resource_is_tagged), which the condition names
STACK_TAG_CONDITION = "ec2:ResourceTag/cnibench:stack"

# region -> the inline policy of the flannel-aws-vpc nodes (partition "aws": the mocked
# aws.get_partition answers it, cnibench/mocks.py CALLS)
FLANNEL_AWS_VPC_POLICY = {
    region: {
        "Version": "2012-10-17",
        "Statement": [
            # EC2's Describe* calls support no resource-level permissions: "*"
            {"Sid": "Unscoped", "Effect": "Allow",
             "Action": ["ec2:DescribeInstances", "ec2:DescribeRouteTables"],
             "Resource": "*"},
            # the route writes, on route tables tagged with this stack only
            {"Sid": "RouteTableOfTheStack", "Effect": "Allow",
             "Action": ["ec2:CreateRoute", "ec2:DeleteRoute"],
             "Resource": f"arn:aws:ec2:{region}:*:route-table/*",
             "Condition": {"StringEquals": {STACK_TAG_CONDITION: "flannel-aws-vpc"}}},
            # the route's target ENI (untagged: RunInstances creates the primary ENI)
            {"Sid": "RouteTableTargets", "Effect": "Allow",
             "Action": ["ec2:CreateRoute", "ec2:DeleteRoute"],
             "Resource": f"arn:aws:ec2:{region}:*:network-interface/*"},
        ],
    }
    for region in ("us-east-1", "eu-west-1")
}

CILIUM_ENI_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "Unscoped", "Effect": "Allow",
         "Action": [
             "ec2:AssignPrivateIpAddresses", "ec2:AttachNetworkInterface", "ec2:CreateNetworkInterface",
             "ec2:DeleteNetworkInterface", "ec2:DescribeInstanceTypes", "ec2:DescribeInstances",
             "ec2:DescribeNetworkInterfaces", "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups",
             "ec2:DescribeSubnets", "ec2:DescribeTags", "ec2:DescribeVpcs",
             "ec2:ModifyNetworkInterfaceAttribute", "ec2:UnassignPrivateIpAddresses",
         ],
         "Resource": "*"},
        # as AmazonEKS_CNI_Policy's AmazonEKSCNIPolicyENITag, in the stack's region
        {"Sid": "NetworkInterfaces", "Effect": "Allow", "Action": ["ec2:CreateTags"],
         "Resource": "arn:aws:ec2:us-east-1:*:network-interface/*"},
    ],
}

EC2_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"},
    ],
}

STATEMENT_KEYS = ("Sid", "Effect", "Action", "Resource", "Condition")


def the_policy(run) -> dict:
    """The one inline policy's document, as the RolePolicy resource received it (a JSON string:
    known at registration, never an unknown output)."""
    (policy,) = run.of_type(ROLE_POLICY)
    assert isinstance(policy.inputs.get("policy"), str), policy.inputs
    assert policy.inputs["role"] == run.one(ROLE).state["id"]
    return json.loads(policy.inputs["policy"])


def assert_statements(doc: dict, expected: dict) -> None:
    assert doc["Version"] == expected["Version"]
    got, want = doc["Statement"], expected["Statement"]
    assert [st.get("Sid") for st in got] == [st["Sid"] for st in want]
    for st, exp in zip(got, want):
        sid = exp["Sid"]
        for key in STATEMENT_KEYS:
            # a key the expected statement lacks must be absent too (no stray Condition)
            assert (key in st) is (key in exp), (sid, key)
            assert st.get(key) == exp.get(key), (sid, key)
        assert set(st) <= set(STATEMENT_KEYS), (sid, sorted(st))
        assert re.fullmatch(r"[A-Za-z0-9]+", st["Sid"]), sid
    assert len({st["Sid"] for st in got}) == len(got), "Sids must be unique within the policy"
    assert doc == expected


@pytest.mark.parametrize("region", sorted(FLANNEL_AWS_VPC_POLICY))
def test_flannel_aws_vpc_route_writes_reach_only_the_stacks_route_tables(program, region):
    run = program("flannel-aws-vpc", {"region": region})
    assert_statements(the_policy(run), FLANNEL_AWS_VPC_POLICY[region])
    # the table the condition names carries the stack's tag, and it is the table flannel writes
    table = run.one("aws:ec2/routeTable:RouteTable")
    assert table.inputs["tags"]["cnibench:stack"] == "flannel-aws-vpc"


def test_cilium_eni_tags_network_interfaces_only(program):
    assert_statements(the_policy(program("cilium-eni")), CILIUM_ENI_POLICY)


@pytest.mark.parametrize("stack", ["flannel-aws-vpc", "cilium-eni"])
def test_the_node_role_trusts_ec2_only(program, stack):
    role = program(stack).one(ROLE)
    assert isinstance(role.inputs.get("assumeRolePolicy"), str), role.inputs
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust == EC2_TRUST_POLICY
    (statement,) = trust["Statement"]
    assert statement["Effect"] == "Allow"
