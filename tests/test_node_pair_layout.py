"""Where the nodes sit and what they carry (issue 18): root volume, address plan, the subnet each
node's output names, and the warning for an instance type without a per-interface figure.

The expected values are written here with their source, not read from cnibench/program/nodes.py.
The tests run the program afresh (``program``, not the session-cached ``stack_run``), so that the
coverage run of scripts/mutation-score.py records the program's lines under these tests; every
value asserted is asserted present (a value behind an ``apply`` on an unknown output would be
missing, not wrong).
"""

from __future__ import annotations

import logging

import pytest

from cnibench.program.nodes import address_plan

INSTANCE = "aws:ec2/instance:Instance"
SUBNET = "aws:ec2/subnet:Subnet"

# The root volume of every node: 40 GiB. No reason for the figure is recorded beyond the program's
# own documentation: cnibench/config.py (MAX_RESPONSE_BYTES) counts on "the node's 40 GiB root
# volume" for the HTTP response files the server pod writes, and tests/test_resource_settings.py
# names the same size. A different size is a deliberate change of the program's setting.
ROOT_VOLUME_GIB = 40

# The node subnets: the first /24 blocks of the VPC (vpcCidr default 10.20.0.0/16, Pulumi.yaml;
# "the node subnets are /24s", README), the server in the second one with splitSubnets ("Put the
# two benchmark nodes in two subnets", Pulumi.yaml).
SUBNET_OF = {
    False: {"control-plane": "10.20.0.0/24", "client": "10.20.0.0/24", "server": "10.20.0.0/24"},
    True: {"control-plane": "10.20.0.0/24", "client": "10.20.0.0/24", "server": "10.20.1.0/24"},
}

# The address plan inside each node subnet, as shipped: AWS reserves the first four addresses and
# the last one of every subnet (Amazon VPC User Guide, "Subnet CIDR blocks"), so every offset is
# above .3; each role's secondary range (at most 32 addresses) starts at its own offset, so the
# ranges of two roles never overlap. The plan is pinned: the private addresses are instance
# inputs, so a changed offset replaces every node of a running stack.
# role -> (primary offset, first secondary offset)
OFFSETS = {"control-plane": (10, 40), "client": (20, 80), "server": (30, 120)}
# ipvlan: 8 secondary addresses per benchmark node, none on the control plane (README, variant table)
IPVLAN_SECONDARIES = {"control-plane": 0, "client": 8, "server": 8}


def by_role(run) -> dict[str, object]:
    return {i.inputs["tags"]["cnibench:role"]: i for i in run.of_type(INSTANCE)}


def test_every_root_volume_is_40_gib(program):
    for stack, overrides, count in (("flannel-vxlan", None, 3), ("cilium-native", {"controlPlaneOnBenchmarkNode": True}, 2)):
        found = program(stack, overrides).of_type(INSTANCE)
        assert len(found) == count, stack
        for inst in found:
            root = inst.inputs.get("rootBlockDevice") or {}
            assert root.get("volumeSize") == ROOT_VOLUME_GIB, (stack, inst.name, root)


def test_the_address_plan_offsets_of_every_role():
    """The plan itself, for every role with secondary addresses (the program gives the control
    plane none, but the plan reserves its range all the same)."""
    cidr = "10.20.0.0/24"
    plan = address_plan(dict.fromkeys(OFFSETS, cidr), dict.fromkeys(OFFSETS, 3))
    assert set(plan) == set(OFFSETS)
    for role, (primary, first) in OFFSETS.items():
        assert plan[role].private_ip == f"10.20.0.{primary}", role
        assert plan[role].secondary_ips == tuple(f"10.20.0.{first + i}" for i in range(3)), role
    # the largest plan still fits a /24 without touching another role's range
    full = address_plan(dict.fromkeys(OFFSETS, cidr), dict.fromkeys(OFFSETS, 32))
    assert full["control-plane"].secondary_ips[-1] == "10.20.0.71"
    assert full["client"].secondary_ips[-1] == "10.20.0.111"
    assert full["server"].secondary_ips[-1] == "10.20.0.151"


def test_the_ipvlan_nodes_get_the_planned_addresses(program):
    run = program("ipvlan")
    nodes = by_role(run)
    assert set(nodes) == set(OFFSETS)
    outputs = run.outputs["nodes"]
    for role, (primary, first) in OFFSETS.items():
        inputs = nodes[role].inputs
        assert inputs["privateIp"] == f"10.20.0.{primary}", role
        expected = [f"10.20.0.{first + i}" for i in range(IPVLAN_SECONDARIES[role])]
        assert (inputs.get("secondaryPrivateIps") or []) == expected, role
        assert outputs[role]["privateIp"] == f"10.20.0.{primary}", role
        assert outputs[role]["secondaryPrivateIps"] == expected, role


@pytest.mark.parametrize("split", [False, True])
def test_each_node_output_names_the_subnet_of_its_interface(program, split):
    run = program("flannel-vxlan", {"splitSubnets": split})
    subnet_ids = {s.inputs["cidrBlock"]: s.state["id"] for s in run.of_type(SUBNET)}
    assert set(subnet_ids) == set(SUBNET_OF[split].values())
    assert "nodes" not in run.unknown_outputs
    nodes = by_role(run)
    outputs = run.outputs["nodes"]
    assert set(outputs) == set(SUBNET_OF[split])
    for role, cidr in SUBNET_OF[split].items():
        assert nodes[role].inputs["subnetId"] == subnet_ids[cidr], role
        assert "subnetId" in outputs[role], (role, sorted(outputs[role]))
        assert outputs[role]["subnetId"] == subnet_ids[cidr], role


def test_a_type_without_a_per_interface_figure_is_warned_about_not_refused(program, caplog):
    """c6i.2xlarge is a real type (the botocore EC2 model knows it) the mocks give no
    per-interface figure, as when AWS reports none (cnibench/mocks.py IPV4_PER_INTERFACE): the
    program cannot check the 8 secondary addresses ipvlan needs and says so, once, on Pulumi's
    warning channel (the mocks' engine logs it at WARNING)."""
    with caplog.at_level(logging.WARNING):
        run = program("ipvlan", {"instanceType": "c6i.2xlarge"})
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = ("cnibench:instanceType 'c6i.2xlarge': AWS reported no per-interface IPv4 limit; "
                "ipvlan needs 8 secondary addresses per benchmark node (not checked)")
    assert warned.count(expected) == 1, warned
    # and the nodes are declared as planned
    assert {len(i.inputs.get("secondaryPrivateIps") or []) for i in run.of_type(INSTANCE)} == {0, 8}
