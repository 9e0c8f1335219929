"""`cnibench check`: the policy rules on the resources the real program registers under mocks."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ALL_STACKS
from test_network import CNI_PORTS
from test_node_pair import IAM_ACTIONS
from test_variants import L2_VARIANTS as L2
from typer.testing import CliRunner

from cnibench.cli import app
from cnibench.config import ConfigError
from cnibench.errors import ExitCode
from cnibench.policy_check import HEADING, run_check
from cnibench.policy_rules import RULES, Stack, evaluate
from cnibench.policy_rules.from_mocks import stack_from_registered
from cnibench.project import parse_overrides

SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
L2_VARIANTS = sorted(L2)
# the variant whose pods get VPC addresses from routes in the stack's route table (flannel aws-vpc)
VPC_ROUTES = {"flannel-aws-vpc"}
CNIBENCH = Path(sys.executable).parent / "cnibench"  # the entry point scripts/setup.sh installs


def view(run) -> Stack:
    return stack_from_registered(run.resources, run.config)


def findings(stack: Stack) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {f.rule: (f.verdict, f.messages) for f in evaluate(RULES, stack)}


def without(stack: Stack, pred) -> Stack:
    return Stack([r for r in stack.resources if not pred(r)], stack.settings)


def patched(stack: Stack, pred, **props) -> Stack:
    return Stack([replace(r, props={**r.props, **props}) if pred(r) else r for r in stack.resources], stack.settings)


# --- every shipped stack passes, and the rules really looked at its resources ----------------
@pytest.mark.parametrize("stack", ALL_STACKS)
def test_every_shipped_stack_passes(stack, stack_run):
    got = findings(view(stack_run(stack)))
    blocking = {k: v for k, v in got.items() if v[0] == "fail"}
    assert not blocking, blocking
    # the rules every stack passes, and those that apply to the variant (the literal tables of the
    # underlay needs, ports and IAM actions, each with its source, in test_variants, test_network
    # and test_node_pair)
    must_pass = {"matched-pair", "cidrs", "ssh-ingress", "imdsv2", "encrypted-volumes", "expiry-tag",
                 "kernel-minimum", "kernel-unverified", "burst-bandwidth", "kube-proxy-replacement"}
    if stack in L2:
        must_pass.add("l2-adjacency")
    if CNI_PORTS[stack]:
        must_pass.add("encapsulation-ports")
    if stack in VPC_ROUTES:
        must_pass.add("aws-vpc-routes")
    if stack in IAM_ACTIONS:
        must_pass.add("iam-actions")
    assert {k for k, v in got.items() if v[0] == "pass"} >= must_pass, got


@pytest.mark.parametrize("variant", L2_VARIANTS)
def test_split_subnets_are_refused_by_config_validation_for_every_l2_variant(variant):
    # refused before the program runs (a plain `pulumi up` without the policy pack too); the
    # policy pack's l2-adjacency rule stays, tested on built stacks in test_policy_rules
    with pytest.raises(ConfigError) as err:
        run_check(variant, {"splitSubnets": "true"})
    (problem,) = err.value.problems
    assert problem.startswith("cnibench:splitSubnets: true puts the benchmark nodes in two subnets, but "
                              f"{variant} routes pod traffic directly between nodes")
    assert "one subnet (one L2 segment)" in problem and "cnibench:splitSubnets=false" in problem


def test_split_subnets_are_fine_for_an_overlay():
    assert not [f for f in run_check("flannel-vxlan", {"cnibench:splitSubnets": "true"}) if f.blocking]


# --- the rules match the components' real resource shapes ------------------------------------
def _covers(port):
    """port: (protocol, from, to) as in test_network.CNI_PORTS."""
    protocol, first, _ = port

    def pred(r):
        if r.type != SG_INGRESS:
            return False
        proto, lo = str(r.props.get("ipProtocol")), r.props.get("fromPort")
        if protocol in ("tcp", "udp"):
            return proto == protocol and lo is not None and lo <= first <= r.props.get("toPort")
        return proto == protocol
    return pred


def _label(port) -> str:
    """How the ports rule names a port: tcp/179, udp/30000-32767, icmp, ip-proto/4."""
    protocol, first, last = port
    if protocol in ("tcp", "udp"):
        return f"{protocol}/{first}" if first == last else f"{protocol}/{first}-{last}"
    return "icmp" if protocol == "icmp" else f"ip-proto/{protocol}"


# (cilium-eni is left out: its pods live in the nodes' subnet, so the pod-to-pod all-traffic rule
# admits every port between the nodes as well)
@pytest.mark.parametrize("stack", [s for s in ALL_STACKS if CNI_PORTS[s] and s != "cilium-eni"])
def test_removing_a_tunnel_rule_fails_the_ports_rule(stack, stack_run):
    real = view(stack_run(stack))
    for port in sorted(CNI_PORTS[stack], key=str):
        verdict, messages = findings(without(real, _covers(port)))["encapsulation-ports"]
        assert verdict == "fail" and _label(port) in "\n".join(messages), (port, messages)


def test_placement_group_strategy_is_read_from_the_real_group(stack_run):
    real = view(stack_run("cilium-vxlan"))
    broken = patched(real, lambda r: r.type == "aws:ec2/placementGroup:PlacementGroup", strategy="spread")
    verdict, messages = findings(broken)["matched-pair"]
    assert verdict == "fail" and "strategy 'spread'" in messages[0]


def test_kube_proxy_replacement_on_the_real_cilium_install(stack_run):
    real = view(stack_run("cilium-native-kpr"))
    release = "kubernetes:helm.sh/v3:Release"
    [rel] = real.of_type(release)
    values = {k: v for k, v in rel.props["values"].items() if k not in ("k8sServiceHost", "k8sServicePort")}
    verdict, messages = findings(patched(real, lambda r: r.type == release, values=values))["kube-proxy-replacement"]
    assert verdict == "fail" and "k8sServiceHost" in messages[0]

    [init] = [c for c in real.of_type("command:remote:Command") if c.name.endswith("-init")]
    assert "--skip-phases=addon/kube-proxy" in init.props["create"]
    text = init.props["create"].replace("--skip-phases=addon/kube-proxy", "")
    verdict, messages = findings(patched(real, lambda r: r is init, create=text))["kube-proxy-replacement"]
    assert verdict == "fail" and "still installs it" in messages[0]


def test_kube_router_proxy_gets_the_api_server_from_its_kubeconfig(stack_run):
    real = view(stack_run("kube-router-proxy"))
    assert findings(real)["kube-proxy-replacement"][0] == "pass"
    broken = without(real, lambda r: r.type == "kubernetes:core/v1:ConfigMap")
    assert findings(broken)["kube-proxy-replacement"][0] == "fail"


def test_aws_vpc_route_quota_from_the_stack_config():
    got = {f.rule: f for f in run_check("flannel-aws-vpc", {"routeTableQuota": "4"})}
    assert got["aws-vpc-routes"].verdict == "fail"
    assert "quota of 4" in got["aws-vpc-routes"].messages[0]
    assert {f.rule: f for f in run_check("flannel-aws-vpc")}["aws-vpc-routes"].verdict == "pass"


@pytest.mark.parametrize("stack", ["flannel-aws-vpc", "cilium-eni"])
def test_iam_rule_reads_the_real_node_policy(stack, stack_run):
    real = view(stack_run(stack))
    assert findings(real)["iam-actions"][0] == "pass"
    broken = without(real, lambda r: r.type.startswith("aws:iam/") and "olicy" in r.type)
    assert findings(broken)["iam-actions"][0] == "fail"


def test_ssh_from_anywhere_only_when_allowed(program):
    run = program("cilium-vxlan", {"sshIngressCidr": "0.0.0.0/0", "allowSshFromAnywhere": "true"})
    stack = view(run)
    assert findings(stack)["ssh-ingress"][0] == "pass"
    strict = Stack(stack.resources, {**stack.settings, "allowSshFromAnywhere": False})
    verdict, messages = findings(strict)["ssh-ingress"]
    assert verdict == "fail" and "0.0.0.0/0" in messages[0]


def test_expiry_tag_on_the_real_resources(stack_run):
    real = view(stack_run("flannel-vxlan"))
    assert len([r for r in real if r.type.startswith("aws:") and "cnibench:expires-at" in r.tags]) >= 5
    subnet = lambda r: r.type == "aws:ec2/subnet:Subnet"
    # the program tags twice: the resource's tags and the aws provider's defaultTags
    assert all("cnibench:expires-at" in r.provider_props["defaultTags"] for r in real if subnet(r))
    untagged = patched(real, subnet, tags={"Name": "x"})
    assert findings(untagged)["expiry-tag"][0] == "pass"  # the provider's default tags still apply
    broken = Stack([replace(r, provider_props={}) if subnet(r) else r for r in untagged.resources], real.settings)
    verdict, messages = findings(broken)["expiry-tag"]
    assert verdict == "fail" and "Subnet" in messages[0]


def test_security_rules_on_the_real_instances(stack_run):
    real = view(stack_run("flannel-vxlan"))
    inst = lambda r: r.type == "aws:ec2/instance:Instance"
    assert findings(patched(real, inst, metadataOptions={"httpTokens": "optional"}))["imdsv2"][0] == "fail"
    assert findings(patched(real, inst, rootBlockDevice={"volumeSize": 30}))["encrypted-volumes"][0] == "fail"


# --- the command ------------------------------------------------------------------------------
def test_parse_overrides():
    assert parse_overrides(["splitSubnets=true", "cnibench:podCidr=10.1.0.0/16", "extraTags=[\"a=b\"]"]) == {
        "splitSubnets": "true", "podCidr": "10.1.0.0/16", "extraTags": '["a=b"]',
    }
    with pytest.raises(ConfigError) as err:
        parse_overrides(["nokey", "aws:region=us-east-1"])
    assert len(err.value.problems) == 2


runner = CliRunner()


def test_cli_l2_split_subnets_is_a_config_error_with_the_l2_message():
    result = runner.invoke(app, ["check", "--stack", "flannel-host-gw", "-c", "cnibench:splitSubnets=true"])
    assert result.exit_code == ExitCode.REFUSED, result.output
    assert "cnibench:splitSubnets: true puts the benchmark nodes in two subnets, but flannel-host-gw routes" \
        in " ".join(result.output.split())


def test_cli_policy_violation_exits_with_the_policy_code():
    # flannel aws-vpc writes one VPC route per node: 3 routes against a quota of 1
    result = runner.invoke(app, ["check", "--stack", "flannel-aws-vpc", "-c", "routeTableQuota=1"])
    assert result.exit_code == ExitCode.POLICY == 3, result.output
    assert HEADING in result.output
    assert "1 mandatory rule(s) violated: aws-vpc-routes" in result.output


def test_cli_passing_stack_exits_0():
    result = runner.invoke(app, ["check", "--stack", "cilium-native"])
    assert result.exit_code == 0, result.output
    assert HEADING in result.output and "no mandatory violation" in result.output
    for r in RULES:
        assert r.name in result.output


@pytest.mark.parametrize("args,needle", [
    (["--stack", "no-such-stack"], "stack 'no-such-stack'"),
    (["--stack", "cilium-native", "-c", "podCidr=10.20.0.0/16"], "cnibench:podCidr"),
    (["--stack", "cilium-native", "-c", "variant=calico"], "valid variants"),
    (["--stack", "cilium-native", "-c", "splitSubnets"], "expected key=value"),
    (["--stack", "cilium-native", "-c", "kubernetesVersion=1.2"], "cnibench:kubernetesVersion: '1.2'"),
    # raised inside the program from a look-up (the mocked VPC is 10.20.0.0/16), reported the same way
    (["--stack", "cilium-native", "-c", "vpcId=vpc-0123456789abcdef0", "-c", "vpcCidr=10.30.0.0/16"],
     "cnibench:vpcCidr: '10.30.0.0/16' is not the CIDR of cnibench:vpcId"),
])
def test_cli_config_errors_exit_2(args, needle):
    result = runner.invoke(app, ["check", *args])
    assert result.exit_code == ExitCode.REFUSED == 2, result.output
    assert "configuration error" in result.output and needle in result.output


def test_cli_program_failure_exits_internal(monkeypatch):
    import cnibench.policy_check

    def broken(stack, overrides=None, **kwargs):
        raise KeyError("a component bug")

    monkeypatch.setattr(cnibench.policy_check, "run_program", broken)
    result = runner.invoke(app, ["check", "--stack", "cilium-native"])
    assert result.exit_code == ExitCode.INTERNAL == 5, result.output
    assert "failed under Pulumi's mocks" in result.output and "a component bug" in result.output


def test_real_subprocess_from_another_directory(tmp_path):
    assert CNIBENCH.exists(), f"{CNIBENCH}: run scripts/setup.sh (it installs the entry point)"
    proc = subprocess.run(
        [str(CNIBENCH), "check", "--stack", "flannel-aws-vpc", "-c", "routeTableQuota=1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == ExitCode.POLICY, proc.stdout + proc.stderr
    assert HEADING in proc.stdout and "aws-vpc-routes" in proc.stdout
    ok = subprocess.run([str(CNIBENCH), "check", "--stack", "cilium-native"], cwd=tmp_path,
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_cidrs_are_read_from_the_real_kubeadm_config(stack_run):
    from cnibench.policy_rules import network

    real = view(stack_run("cilium-vxlan"))
    assert [c.name for c in network.kubeadm_commands(real)]
    assert network._from_commands(real, (network._POD_FLAG, network._POD_CFG)) == real.settings["podCidr"]
    assert network._from_commands(real, (network._SVC_FLAG, network._SVC_CFG)) == real.settings["serviceCidr"]
    # the kubeadm config, not the stack config, is what the rule judges
    overlapping = Stack(real.resources, {**real.settings, "podCidr": None, "serviceCidr": None})
    assert findings(overlapping)["cidrs"][0] == "pass"


@pytest.mark.parametrize("stack", ["flannel-host-gw", "cilium-native-kpr", "flannel-aws-vpc"])
def test_removing_the_pod_range_rule_fails_unencapsulated_variants(stack, stack_run):
    real = view(stack_run(stack))
    pod_rules = lambda r: r.type == SG_INGRESS and r.props.get("cidrIpv4") == real.settings["podCidr"]
    assert [r for r in real if pod_rules(r)]
    verdict, messages = findings(without(real, pod_rules))["encapsulation-ports"]
    assert verdict == "fail" and "pod addresses" in messages[0]
