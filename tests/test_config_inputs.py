"""Issue 15, "Bad input": every bad stack-config value is refused with a message naming the key,
the value and what is valid (exit 2 from ``cnibench check``), before anything is created."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnibench import config, mocks, tags
from cnibench.cli import app
from cnibench.config import ConfigError, parse_config
from cnibench.errors import ExitCode
from cnibench.program import preflight
from cnibench.suite import plan as suite_plan

GOOD = {"variant": "flannel-vxlan"}
runner = CliRunner()


def problems(**raw) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config({**GOOD, **raw})
    return err.value.problems


def one_problem(**raw) -> str:
    found = problems(**raw)
    assert len(found) == 1, found
    return found[0]


# --- refused by parse_config (no look-up needed) -------------------------------------------
# (config, the key named, words of what is valid)
STATIC = [
    ({"region": "xx-nowhere-9"}, "region", ["us-east-1", "eu-west-1"]),
    ({"region": "cn-north-1"}, "region", ["commercial partition"]),
    ({"availabilityZone": "us-east-10a"}, "availabilityZone", ["us-east-1a", "one letter"]),
    ({"availabilityZone": "us-east-1-bogus"}, "availabilityZone", ["us-east-1a"]),
    ({"availabilityZone": "us-east-1aa"}, "availabilityZone", ["one letter"]),
    ({"instanceType": ""}, "instanceType", ["(empty)", "<family>.<size>", "c6i.8xlarge"]),
    ({"controlPlaneInstanceType": ""}, "controlPlaneInstanceType", ["(empty)", "t3.medium"]),
    ({"instanceType": "c6i 8xlarge"}, "instanceType", ["<family>.<size>"]),
    ({"kubernetesVersion": "1.99"}, "kubernetesVersion", ["1.24 to 1.37", "pkgs.k8s.io"]),
    ({"kubernetesVersion": "1.23"}, "kubernetesVersion", ["1.24 to 1.37"]),
    ({"kubernetesVersion": "2.0"}, "kubernetesVersion", ["1.24 to 1.37", "(major.minor, e.g. 1.33)"]),
    ({"vpcCidr": "10.20.0.0/28"}, "vpcCidr", ["/16 to /23", "node subnet"]),
    ({"vpcCidr": "10.20.0.0/24"}, "vpcCidr", ["/16 to /23"]),
    ({"vpcCidr": "10.20.0.0/29"}, "vpcCidr", ["AWS accepts VPC CIDRs from /16 to /28", "/16 to /23"]),
    ({"vpcCidr": "172.16.0.0/15"}, "vpcCidr", ["/16 to /28"]),
    ({"podCidr": "224.0.0.0/16"}, "podCidr", ["multicast", "RFC 1918"]),
    ({"podCidr": "239.255.0.0/16"}, "podCidr", ["multicast"]),
    ({"podCidr": "240.0.0.0/16"}, "podCidr", ["reserved"]),
    ({"podCidr": "127.0.0.0/16"}, "podCidr", ["loopback"]),
    ({"podCidr": "169.254.0.0/16"}, "podCidr", ["link-local"]),
    ({"podCidr": "0.0.0.0/16"}, "podCidr", ["this network"]),
    ({"serviceCidr": "224.96.0.0/16"}, "serviceCidr", ["multicast"]),
    ({"vpcCidr": "169.254.0.0/16"}, "vpcCidr", ["link-local"]),
    ({"serviceCidr": "172.32.0.0/11"}, "serviceCidr", ["kube-apiserver", "/12 to /28"]),
    ({"serviceCidr": "10.96.0.0/29"}, "serviceCidr", ["kubernetes service", "10th", "/12 to /28"]),
    ({"serviceCidr": "10.96.0.0/32"}, "serviceCidr", ["/12 to /28"]),
    ({"benchmarkStreams": 100000}, "benchmarkStreams", ["1..128", "MAX_STREAMS"]),
    ({"expiryHours": 1000000}, "expiryHours", ["1..720"]),
    ({"expiryHours": 999999999}, "expiryHours", ["1..720"]),
    ({"benchmarkTimeout": 10**9}, "benchmarkTimeout", ["1..604800"]),
    ({"benchmarkResponseSizes": [10**12]}, "benchmarkResponseSizes", ["1..16777216"]),
    ({"amiId": "ami-123"}, "amiId", ["8 or 17", "ami-0123456789abcdef0"]),
    ({"amiId": "ubuntu"}, "amiId", ["8 or 17"]),
    ({"amiId": "ami-0123456789ABCDEF0"}, "amiId", ["lowercase"]),
    ({"vpcId": "vpc-0abc"}, "vpcId", ["8 or 17", "vpc-0123456789abcdef0"]),
    ({"vpcId": "subnet-0123456789abcdef0"}, "vpcId", ["vpc-"]),
    ({"extraTags": ["aws:owner=me"]}, "extraTags", ["reserved for AWS"]),
    ({"extraTags": ["AWS:owner=me"]}, "extraTags", ["reserved for AWS"]),
    ({"extraTags": ["owner=aws:me"]}, "extraTags", ["reserved for AWS", "value"]),
    ({"extraTags": ["k" * 129 + "=v"]}, "extraTags", ["1..128"]),
    ({"extraTags": ["k=" + "v" * 257]}, "extraTags", ["0..256"]),
    ({"extraTags": ["=v"]}, "extraTags", ["key=value"]),
    ({"extraTags": ["a=1", "a=2"]}, "extraTags", ["twice"]),
    ({"extraTags": [f"k{i}=v" for i in range(45)]}, "extraTags", ["50 per resource", "at most 44"]),
]


@pytest.mark.parametrize("raw, key, valid", STATIC, ids=[json.dumps(r)[:60] for r, _, _ in STATIC])
def test_static_refusals_name_key_value_and_what_is_valid(raw, key, valid):
    found = [p for p in problems(**raw) if p.startswith(f"cnibench:{key}:")]
    assert len(found) == 1, problems(**raw)
    msg = found[0]
    value = raw[key]
    values = [str(v)[:20] for v in value] if isinstance(value, list) else [str(value)]
    assert any(v in msg for v in values) or "(empty)" in msg or f"{len(value)} tags" in msg, msg
    for word in valid:
        assert word in msg, (word, msg)


@pytest.mark.parametrize("raw", [
    {"region": "eu-west-1"}, {"region": "ap-south-2", "availabilityZone": "ap-south-2c"},
    {"availabilityZone": "us-east-1f"}, {"kubernetesVersion": "1.24"}, {"kubernetesVersion": "1.37"},
    {"vpcCidr": "10.20.0.0/23"}, {"vpcCidr": "10.20.0.0/16"}, {"serviceCidr": "10.96.0.0/28"},
    {"serviceCidr": "10.96.0.0/12"}, {"podCidr": "100.64.0.0/16"}, {"expiryHours": 720},
    {"amiId": "ami-0123abcd"}, {"amiId": "ami-0123456789abcdef0"}, {"vpcId": "vpc-0123abcd"},
    {"extraTags": [f"k{i}=v" for i in range(44)]}, {"extraTags": ["team=" + "v" * 256, "k" * 128 + "="]},
])
def test_valid_edges_are_accepted(raw):
    parse_config({**GOOD, **raw})


def test_project_tag_count_matches_the_most_tagged_resource():
    """The budget for extraTags counts the tags cnibench puts on its most-tagged resource."""
    run = mocks.run_program("flannel-vxlan", {"controlPlaneOnBenchmarkNode": True})
    most = max(len(r.inputs.get("tags") or {}) for r in run.resources)
    assert most == tags.MAX_PROJECT_TAGS_PER_RESOURCE
    assert config.MAX_TAGS_PER_RESOURCE == 50


def test_the_region_list_is_botocore_s_commercial_partition():
    botocore = pytest.importorskip("botocore")
    data = json.loads((Path(botocore.__file__).parent / "data" / "endpoints.json").read_text())
    (aws,) = [p for p in data["partitions"] if p["partition"] == "aws"]
    assert set(aws["regions"]) == config.AWS_REGIONS


# The regions of AWS's commercial partition, written out: the "regions" of partition "aws" in
# botocore 1.44.8, botocore/data/endpoints.json (34 regions; the test above keeps the installed
# botocore's list equal to the module's, this one the module's equal to the list as it was read).
AWS_COMMERCIAL_REGIONS = {
    "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
    "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
    "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1",
    "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3",
    "il-central-1", "me-central-1", "me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2",
    "us-west-1", "us-west-2",
}


def test_the_region_list_is_the_commercial_partition_written_out():
    assert len(AWS_COMMERCIAL_REGIONS) == 34
    assert config.AWS_REGIONS == AWS_COMMERCIAL_REGIONS
    # each one is a region the parser takes (with its zone a)
    for region in sorted(AWS_COMMERCIAL_REGIONS):
        assert parse_config({**GOOD, "region": region}).az == f"{region}a"


def test_kubernetes_versions_come_from_one_place():
    assert config.KUBERNETES_MINORS[0] == config.OLDEST_KUBERNETES_MINOR == 24
    assert config.KUBERNETES_MINORS[-1] == config.NEWEST_KUBERNETES_MINOR
    assert config.kubernetes_minor("1.33") == 33 and config.kubernetes_minor("1.99") is None


# --- refused by the program's look-ups and the suite plan (under the mocks) ------------------

def test_the_mocked_zone_lookup_answers_per_region_and_fails_for_an_unknown_one():
    us = mocks._availability_zones({"region": "us-east-1"})
    assert us["names"] == [f"us-east-1{x}" for x in "abcdef"] and us["zoneIds"][0] == "use1-az1"
    assert mocks._availability_zones({"region": "us-west-1"})["names"] == ["us-west-1a", "us-west-1c"]
    assert mocks._availability_zones({"region": "eu-north-1"})["zoneIds"][0] == "eun1-az1"
    with pytest.raises(mocks.MockLookupError, match="xx-nowhere-9"):
        mocks._availability_zones({"region": "xx-nowhere-9"})


def test_the_mocked_type_lookup_knows_real_types_only():
    assert mocks._instance_type({"instanceType": "c6i.8xlarge"})["instanceType"] == "c6i.8xlarge"
    assert "m7i.48xlarge" in (mocks.ec2_instance_types() or set())
    with pytest.raises(mocks.MockLookupError, match="InvalidInstanceType"):
        mocks._instance_type({"instanceType": "c6i.9xlarge"})


@pytest.mark.parametrize("raw, key, needles", [
    ({"availabilityZone": "us-east-1g"}, "availabilityZone", ["us-east-1a, us-east-1b", "zone lookup"]),
    ({"region": "us-west-1", "availabilityZone": "us-west-1b"}, "availabilityZone", ["us-west-1a, us-west-1c"]),
    ({"instanceType": "c6i.9xlarge"}, "instanceType", ["'c6i.9xlarge'", "DescribeInstanceTypes"]),
    ({"controlPlaneInstanceType": "t3.giant"}, "controlPlaneInstanceType", ["'t3.giant'", "t3.medium"]),
    ({"benchmarkRepeat": 100}, "benchmarkTimeout", ["benchmarkRepeat=100", "at least", ">="]),
    ({"benchmarkDuration": 600, "benchmarkTimeout": 3600}, "benchmarkTimeout", ["benchmarkDuration=600"]),
])
def test_program_refusals_are_config_errors_before_any_aws_resource(raw, key, needles):
    with pytest.raises(ConfigError) as err:
        mocks.run_program("flannel-vxlan", raw)
    (msg,) = [p for p in err.value.problems if p.startswith(f"cnibench:{key}:")]
    for needle in needles:
        assert needle in msg, (needle, msg)


@pytest.mark.parametrize("overrides,key", [
    ({"benchmarkRepeat": 100}, "benchmarkTimeout"),
    ({"instanceType": "c6i.9xlarge"}, "instanceType"),
    ({"controlPlaneInstanceType": "t3.giant"}, "controlPlaneInstanceType"),
    ({"availabilityZone": "us-east-1g"}, "availabilityZone"),
])
def test_refused_program_run_registers_no_aws_resource(overrides, key):
    """The program runs the preflight (zone and instance-type lookups, plan) before its first AWS
    resource: a refusal declares nothing in AWS."""
    captured: dict = {}
    real = mocks._mocks_and_monitor

    def keep():
        out = real()
        captured["registered"] = out[2]
        return out

    mp = pytest.MonkeyPatch()
    mp.setattr(mocks, "_mocks_and_monitor", keep)
    try:
        with pytest.raises(ConfigError) as err:
            mocks.run_program("flannel-vxlan", overrides)
    finally:
        mp.undo()
    aws = [r for r in captured["registered"] if r.type.startswith("aws:")]
    assert aws == [], aws
    assert any(p.startswith(f"cnibench:{key}:") for p in err.value.problems), err.value.problems


def test_default_plans_fit_the_default_timeout():
    for variant in ("flannel-vxlan", "ipvlan", "cilium-native-kpr"):
        cfg = parse_config({"variant": variant})
        assert preflight.plan_problems(cfg) == []
        least = preflight.least_benchmark_seconds(suite_plan.plan_from_config(cfg))
        assert 0 < least < cfg.benchmark_timeout


def test_the_plan_check_counts_every_test_not_one():
    cfg = parse_config({**GOOD, "benchmarkRepeat": 10, "benchmarkDuration": 20, "benchmarkTimeout": 1000})
    plan = suite_plan.plan_from_config(cfg)
    # one test (20 s) fits 1000 s, and even 10 repetitions of one do: the plan as a whole does not
    assert cfg.benchmark_repeat * cfg.benchmark_duration < cfg.benchmark_timeout
    assert preflight.least_benchmark_seconds(plan) > cfg.benchmark_timeout
    (msg,) = preflight.plan_problems(cfg)
    assert f"{len(plan.steps)} tests" in msg


# --- through the CLI: exit 2 and the message ------------------------------------------------

@pytest.mark.parametrize("override, needle", [
    ("availabilityZone=us-east-10a", "cnibench:availabilityZone: 'us-east-10a'"),
    ("availabilityZone=us-east-1-bogus", "cnibench:availabilityZone: 'us-east-1-bogus'"),
    ("region=xx-nowhere-9", "cnibench:region: 'xx-nowhere-9'"),
    ("instanceType=", "cnibench:instanceType: (empty)"),
    ("instanceType=c6i.9xlarge", "cnibench:instanceType: 'c6i.9xlarge'"),
    ("controlPlaneInstanceType=nope.large", "cnibench:controlPlaneInstanceType: 'nope.large'"),
    ("kubernetesVersion=1.99", "cnibench:kubernetesVersion: '1.99'"),
    ("vpcCidr=10.20.0.0/28", "cnibench:vpcCidr: 10.20.0.0/28"),
    ("podCidr=224.10.0.0/16", "cnibench:podCidr: 224.10.0.0/16"),
    ("serviceCidr=10.0.0.0/8", "cnibench:serviceCidr: 10.0.0.0/8"),
    ("serviceCidr=10.96.0.0/30", "cnibench:serviceCidr: 10.96.0.0/30"),
    ("benchmarkStreams=100000", "cnibench:benchmarkStreams: 100000"),
    ("benchmarkRepeat=100", "cnibench:benchmarkTimeout: 3600s"),
    ("expiryHours=1000000", "cnibench:expiryHours: 1000000"),
    ("expiryHours=999999999", "cnibench:expiryHours: 999999999"),
    ("benchmarkResponseSizes=[1000000000000]", "cnibench:benchmarkResponseSizes: 1000000000000"),
    ("amiId=ami-xyz", "cnibench:amiId: 'ami-xyz'"),
    ("vpcId=vpc-12", "cnibench:vpcId: 'vpc-12'"),
    ('extraTags=["aws:team=x"]', "cnibench:extraTags: 'aws:team=x'"),
])
def test_cli_check_refuses_with_exit_2(override, needle):
    result = runner.invoke(app, ["check", "--stack", "flannel-vxlan", "-c", override])
    assert result.exit_code == ExitCode.REFUSED == 2, result.output
    text = " ".join(result.output.split())  # rich folds long lines
    assert "configuration error" in text and needle in text, text
    assert "Traceback" not in text and "failed under Pulumi's mocks" not in text


def test_no_config_error_escapes_as_another_exception_type():
    """The old failure mode: ValueError from the network helpers (vpcCidr) or OverflowError
    (expiryHours) surfaced as 'program failed under mocks'."""
    for raw in ({"vpcCidr": "10.20.0.0/28"}, {"expiryHours": 999999999}, {"vpcCidr": "10.20.0.0/25"}):
        with pytest.raises(ConfigError):
            mocks.run_program("flannel-vxlan", raw)


def test_network_helper_names_the_key_when_called_directly():
    from cnibench.program import network

    with pytest.raises(ConfigError, match="cnibench:vpcCidr"):
        network._node_subnets("10.20.0.0/28", 1)


@pytest.mark.parametrize("overrides,key,needles", [
    ({"vpcId": "vpc-0123456789abcdef0\n"}, "vpcId", ["not an EC2 vpc id"]),
    ({"amiId": "ami-0123456789abcdef0 "}, "amiId", ["not an EC2 ami id"]),
    ({"kubernetesVersion": "1.\uff13\uff13"}, "kubernetesVersion", ["1.24 to 1.37"]),
    ({"routeTableQuota": 1000000}, "routeTableQuota", ["1..1000"]),
    ({"extraTags": ["a#b=c"]}, "extraTags", ["'#'", "+ - = . _ : / @"]),
    ({"extraTags": ["team=net;drop"]}, "extraTags", ["';'", "value"]),
    ({"extraTags": ["cnibench:stack=other"]}, "extraTags", ["cnibench sets the tag 'cnibench:stack' itself"]),
    ({"benchmarkLoadLevels": "[" * 5000 + "]" * 5000}, "benchmarkLoadLevels", ["is not a JSON list"]),
])
def test_attack_rows_are_refused_with_the_key(overrides, key, needles):
    with pytest.raises(ConfigError) as err:
        parse_config({**GOOD, **overrides})
    (msg,) = [p for p in err.value.problems if p.startswith(f"cnibench:{key}:")]
    for needle in needles:
        assert needle in msg, (needle, msg)


# The tag keys cnibench sets itself (an extraTags entry with one of them would be overridden), the
# README's "cnibench's own 6" ("Variants and stacks"): "Every resource carries `cnibench:stack`,
# `cnibench:variant` and `cnibench:expires-at` tags" ("The cloud path (AWS)"), plus the nodes' role
# (cnibench:role), the mark of the benchmark node that also runs the control plane
# (cnibench:control-plane, controlPlaneOnBenchmarkNode) and the AWS console's Name.
PROJECT_TAG_KEYS = {"cnibench:stack", "cnibench:variant", "cnibench:expires-at", "cnibench:role",
                    "cnibench:control-plane", "Name"}


@pytest.mark.parametrize("tag_key", sorted(PROJECT_TAG_KEYS))
def test_an_extra_tag_with_a_project_key_is_refused_listing_every_project_key(tag_key):
    (msg,) = [p for p in problems(extraTags=[f"{tag_key}=mine"]) if p.startswith("cnibench:extraTags:")]
    assert f"{tag_key}=mine" in msg and f"cnibench sets the tag {tag_key!r} itself" in msg
    listed = msg.split("choose a key other than ", 1)[1]
    assert set(listed.split(", ")) == PROJECT_TAG_KEYS, msg


def test_a_tag_with_several_bad_characters_names_each_of_them_once():
    # ! and # are outside AWS's tag characters (letters, digits, spaces and + - = . _ : / @; EC2
    # User Guide, tag restrictions); the message lists the bad ones, sorted, each once
    msg = one_problem(extraTags=["team=a#b!c#"])
    assert msg == ("cnibench:extraTags: 'team=a#b!c#': the tag value holds '!#'; AWS tags (IAM's included) "
                   "allow letters, digits, spaces and + - = . _ : / @ only")


def test_a_plan_over_the_timeout_names_the_load_levels():
    cfg = parse_config({**GOOD, "benchmarkLoadLevels": list(range(1, 101))})
    (msg,) = preflight.plan_problems(cfg)
    assert "cnibench:benchmarkLoadLevels level: 100" in msg


# --- issue 18: the parser's remaining bounds, each end tested -------------------------------
# The bounds are written here as literals with where they come from, not read from cnibench.config:
# a changed bound in the code must change a test too.

def refusal(key: str, **raw) -> str:
    """The one problem of ``raw`` (over GOOD), which must be about ``key``."""
    msg = one_problem(**raw)
    assert msg.startswith(f"cnibench:{key}: "), msg
    return msg


# nodePodMaskSize, kubeadm's --node-cidr-mask-size for kube-controller-manager (cnibench/program/
# cluster.py): 16 to 28, the range cnibench's parser states in its message. cnibench/config.py
# cites no upstream source for it; Kubernetes' default is /24 ("--node-cidr-mask-size ... Default
# is 24 for IPv4", kube-controller-manager reference). A /16 node range needs a pod CIDR of /14 or
# wider for the 3 nodes (the podCidr capacity check), hence the podCidr beside 16.
NODE_MASK_LOWEST, NODE_MASK_HIGHEST = 16, 28


@pytest.mark.parametrize("mask", [NODE_MASK_LOWEST - 1, NODE_MASK_HIGHEST + 1, 0, 32])
def test_node_pod_mask_size_outside_16_to_28_is_refused_naming_key_and_value(mask):
    msg = refusal("nodePodMaskSize", nodePodMaskSize=mask)
    assert msg == f"cnibench:nodePodMaskSize: {mask} must be between 16 and 28"


@pytest.mark.parametrize("mask, pod_cidr", [(NODE_MASK_LOWEST, "10.0.0.0/14"), (NODE_MASK_HIGHEST, "10.244.0.0/16")])
def test_node_pod_mask_size_ends_are_accepted(mask, pod_cidr):
    cfg = parse_config({**GOOD, "nodePodMaskSize": mask, "podCidr": pod_cidr})
    assert cfg.node_pod_mask_size == mask


# routeTableQuota: "Routes per route table (non-propagated routes)", 50 by default, adjustable up to
# 1,000 (Amazon VPC User Guide, "Amazon VPC quotas"): a count of routes, so at least 1.
@pytest.mark.parametrize("quota", [0, -1, -50])
def test_route_table_quota_of_zero_or_less_is_refused_naming_key_and_value(quota):
    msg = refusal("routeTableQuota", routeTableQuota=quota)
    assert msg == f"cnibench:routeTableQuota: {quota} must be a positive whole number"


@pytest.mark.parametrize("quota", [1, 1000])  # 1,000: the most AWS grants (same page)
def test_route_table_quota_ends_are_accepted_by_the_parser(quota):
    assert parse_config({**GOOD, "routeTableQuota": quota}).route_table_quota == quota


def test_route_table_quota_above_the_aws_maximum_is_refused():
    msg = refusal("routeTableQuota", routeTableQuota=1001)
    assert msg.startswith("cnibench:routeTableQuota: 1001 is too large; valid: 1..1000"), msg


def test_benchmark_timeout_shorter_than_one_test_is_refused_naming_both_keys_and_values():
    msg = refusal("benchmarkTimeout", benchmarkDuration=60, benchmarkTimeout=59)
    assert msg == "cnibench:benchmarkTimeout: 59s is shorter than one test (cnibench:benchmarkDuration=60s)"


def test_benchmark_timeout_of_exactly_one_test_passes_the_parser_and_fails_the_plan_check():
    """The parser refuses only a timeout below one test; the plan check (the program's preflight,
    before any resource) then compares the whole plan with it."""
    cfg = parse_config({**GOOD, "benchmarkDuration": 60, "benchmarkTimeout": 60})
    assert (cfg.benchmark_duration, cfg.benchmark_timeout) == (60, 60)
    (msg,) = preflight.plan_problems(cfg)
    assert msg.startswith("cnibench:benchmarkTimeout: 60s"), msg


@pytest.mark.parametrize("blank", ["", " ", "\t\n"])
def test_blank_benchmark_run_is_refused_naming_the_key(blank):
    msg = refusal("benchmarkRun", benchmarkRun=blank)
    assert "must not be empty" in msg, msg


@pytest.mark.parametrize("blank", ["", " "])
def test_blank_benchmark_run_refusal_names_the_value(blank):
    assert repr(blank) in refusal("benchmarkRun", benchmarkRun=blank)


def test_a_benchmark_run_with_surrounding_blanks_is_accepted():
    assert parse_config({**GOOD, "benchmarkRun": " 2 "}).benchmark_run == " 2 "


@pytest.mark.parametrize("service, vpc", [
    ("10.20.0.0/20", "10.20.0.0/16"),   # the service range inside the VPC
    ("10.16.0.0/12", "10.20.0.0/16"),   # the VPC inside the service range
    ("10.20.255.240/28", "10.20.0.0/16"),  # the VPC's last 16 addresses
])
def test_service_cidr_overlapping_the_vpc_is_refused_naming_both_ranges(service, vpc):
    msg = refusal("serviceCidr", serviceCidr=service, vpcCidr=vpc)
    assert msg.startswith(f"cnibench:serviceCidr: {service} overlaps cnibench:vpcCidr {vpc}; "), msg
    assert "must be disjoint" in msg


def test_service_cidr_adjacent_to_the_vpc_is_accepted():
    cfg = parse_config({**GOOD, "serviceCidr": "10.21.0.0/16", "vpcCidr": "10.20.0.0/16"})
    assert cfg.service_cidr == "10.21.0.0/16"


# underlayMtu: 9001 is the largest MTU of an EC2 instance ("jumbo frames (9001 MTU)", EC2 User
# Guide, "Network maximum transmission unit (MTU) for your EC2 instance"); 1280 is the smallest the
# parser accepts, the minimum link MTU of IPv6 (RFC 8200, section 5: "every link in the Internet
# have an MTU of 1280 octets or greater"; cnibench/config.py states the bound without a source).
# cilium-native adds no encapsulation, so only the parser's bounds are judged here.
MTU_LOWEST, MTU_HIGHEST = 1280, 9001
NO_ENCAP = {"variant": "cilium-native"}


@pytest.mark.parametrize("mtu", [MTU_LOWEST, MTU_HIGHEST])
def test_underlay_mtu_ends_are_accepted(mtu):
    cfg = parse_config({**NO_ENCAP, "underlayMtu": mtu})
    assert cfg.underlay_mtu == cfg.pod_mtu == mtu


@pytest.mark.parametrize("mtu", [MTU_LOWEST - 1, MTU_HIGHEST + 1])
def test_underlay_mtu_just_outside_is_refused_naming_key_and_value(mtu):
    msg = refusal("underlayMtu", **NO_ENCAP, underlayMtu=mtu)
    assert msg == f"cnibench:underlayMtu: {mtu} must be between 1280 and 9001"


def test_an_underlay_mtu_too_small_for_the_encapsulation_is_a_problem_not_an_exception(monkeypatch):
    """No catalog variant adds enough (at most 80 bytes) for 1280 to leave under 576 for pods, so a
    variant that adds 800 bytes is put in the catalog here: the check reports it with the rest."""
    import dataclasses

    from cnibench import variants

    fat = dataclasses.replace(variants.CATALOG["flannel-vxlan"], name="fat-tunnel", encap_overhead=800)
    catalog = {**variants.CATALOG, "fat-tunnel": fat}
    monkeypatch.setattr(variants, "CATALOG", catalog)
    monkeypatch.setattr(config, "CATALOG", catalog)
    # 576: the smallest pod MTU the catalog allows (the IPv4 minimum datagram, RFC 791)
    msg = refusal("underlayMtu", variant="fat-tunnel", underlayMtu=MTU_LOWEST)
    assert msg == ("cnibench:underlayMtu: fat-tunnel: underlay MTU 1280 leaves 480 bytes for pods after 800 bytes "
                   "of encapsulation (minimum 576)")


def test_underlay_mtu_lowest_leaves_room_for_an_encapsulating_variant():
    # flannel-vxlan's VXLAN overhead, 50 bytes (outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8, RFC 7348
    # section 5), comes off the underlay: 1280 still gives a valid pod MTU
    cfg = parse_config({"variant": "flannel-vxlan", "underlayMtu": MTU_LOWEST})
    assert cfg.pod_mtu == MTU_LOWEST - 50
