from __future__ import annotations

from pathlib import Path

import pulumi
import pydantic
import pytest
import yaml

import cnibench.program
from cnibench import mocks
from cnibench.config import (
    SSH_AUTO,
    ConfigError,
    StackConfig,
    config_keys,
    parse_config,
)
from cnibench.program.operator import ssh_ingress_cidr
from cnibench.variants import CATALOG

ROOT = Path(__file__).resolve().parent.parent
GOOD = {"variant": "cilium-native"}


def problems(**raw) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config({**GOOD, **raw})
    return err.value.problems


def one_problem(**raw) -> str:
    found = problems(**raw)
    assert len(found) == 1, found
    return found[0]


# --- Pulumi.yaml declares every key, with the same defaults the code carries -----------
PULUMI_TYPES = {"str": "string", "int": "integer", "bool": "boolean"}


def test_pulumi_yaml_declares_every_key_with_type_description_default():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "cnibench"
    assert project["stackConfigDir"] == "stacks"
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"]
    declared = project["config"]
    assert set(declared) == set(config_keys())
    for key, info in config_keys().items():
        decl = declared[key]
        assert decl["description"] == info.description, key
        expected_type = PULUMI_TYPES.get(getattr(info.annotation, "__name__", ""), "array")
        assert decl["type"] == expected_type, key
        default = info.default
        assert decl["default"] == (list(default) if isinstance(default, tuple) else default), key
        if expected_type == "array":
            assert decl["items"]["type"] in {"integer", "string"}


def test_defaults_parse():
    cfg = parse_config(GOOD)
    assert cfg.az == "us-east-1a"
    assert cfg.node_count == 3
    assert cfg.pod_mtu == 9001
    # the suite definition's cloud defaults (cnibench.suite.definition.CLOUD_DEFAULTS)
    assert (cfg.benchmark_duration, cfg.benchmark_repeat, cfg.benchmark_streams) == (10, 5, 1)
    assert cfg.benchmark_load_levels == (30, 50)
    assert cfg.benchmark_response_sizes == (350, 4096)
    assert cfg.ssh_ingress_cidr == SSH_AUTO


def test_strings_as_pulumi_hands_them_over():
    cfg = parse_config({
        "variant": "flannel-vxlan", "benchmarkRepeat": "5", "splitSubnets": "true",
        "benchmarkLoadLevels": "[20, 40]", "extraTags": '["team=net", "cost-center=42"]',
    })
    assert cfg.benchmark_repeat == 5 and cfg.split_subnets is True
    assert cfg.benchmark_load_levels == (20, 40)
    assert cfg.tags == {"team": "net", "cost-center": "42"}
    assert cfg.pod_mtu == 8951


# --- each bad-config case names the key, the value and the valid choices ---------------
def test_unknown_variant_lists_valid_variants():
    msg = one_problem(variant="calico-bgp")
    assert msg.startswith("cnibench:variant:") and "'calico-bgp'" in msg
    for name in CATALOG:
        assert name in msg


def test_missing_variant():
    with pytest.raises(ConfigError) as err:
        parse_config({})
    assert "cnibench:variant: unknown variant (not set)" in str(err.value)


@pytest.mark.parametrize("key", ["vpcCidr", "podCidr", "serviceCidr", "sshIngressCidr"])
@pytest.mark.parametrize("bad", ["10.0.0.0/33", "10.1.2.3/16", "banana"])
def test_malformed_cidr(key, bad):
    msg = one_problem(**{key: bad})
    assert msg.startswith(f"cnibench:{key}:") and repr(bad) in msg and "e.g. 10.244.0.0/16" in msg


def test_overlapping_cidrs():
    msg = one_problem(podCidr="10.20.0.0/16")
    assert "cnibench:podCidr" in msg and "overlaps cnibench:vpcCidr" in msg
    msg = one_problem(serviceCidr="10.244.128.0/20")
    assert "cnibench:podCidr" in msg and "cnibench:serviceCidr" in msg


def test_pod_cidr_too_small_for_the_nodes():
    msg = one_problem(podCidr="10.244.0.0/23")  # two /24 node ranges, three nodes
    assert "cnibench:podCidr" in msg and "3 nodes" in msg and "/22" in msg
    # two nodes fit when the control plane runs on a benchmark node
    parse_config({**GOOD, "podCidr": "10.244.0.0/23", "controlPlaneOnBenchmarkNode": True})
    msg = one_problem(podCidr="10.244.0.0/25")
    assert "holds 0 node range" in msg


def test_ssh_from_anywhere_needs_explicit_consent():
    msg = one_problem(sshIngressCidr="0.0.0.0/0")
    assert "cnibench:sshIngressCidr" in msg and "allowSshFromAnywhere" in msg
    # world-open however it is spelled: judged by the public addresses admitted, and both ports named
    for wide in ("0.0.0.0/1", "128.0.0.0/1", "64.0.0.0/2", "8.0.0.0/15"):
        msg = one_problem(sshIngressCidr=wide)
        assert msg.startswith(f"cnibench:sshIngressCidr: {wide} admits ") and "public addresses" in msg
        assert "tcp/22 (SSH) and tcp/6443 (the Kubernetes API)" in msg and "allowSshFromAnywhere=true" in msg
    for narrow in ("10.0.0.0/8", "8.8.0.0/16", "198.51.100.7/32"):
        assert parse_config({**GOOD, "sshIngressCidr": narrow}).ssh_ingress_cidr == narrow
    cfg = parse_config({**GOOD, "sshIngressCidr": "0.0.0.0/0", "allowSshFromAnywhere": True})
    assert cfg.ssh_ingress_cidr == "0.0.0.0/0"


@pytest.mark.parametrize("key", ["benchmarkDuration", "benchmarkRepeat", "benchmarkStreams",
                                 "benchmarkTimeout", "expiryHours"])
@pytest.mark.parametrize("value", [0, -3])
def test_non_positive_durations_and_repetitions(key, value):
    found = problems(**{key: value})
    assert any(p.startswith(f"cnibench:{key}: {value} must be a positive") for p in found), found


def test_load_levels_and_sizes():
    assert "1..100" in one_problem(benchmarkLoadLevels=[50, 120])
    assert "at least one" in one_problem(benchmarkLoadLevels=[])
    assert "positive byte count" in one_problem(benchmarkResponseSizes=[0])
    assert "JSON list" in one_problem(benchmarkLoadLevels="30,50")
    assert "repeats a level" in one_problem(benchmarkLoadLevels=[30, 30])
    assert "repeats a size" in one_problem(benchmarkResponseSizes=[350, 350])
    assert "1..16777216" in one_problem(benchmarkResponseSizes=[10**9])


@pytest.mark.parametrize("key, value, high", [("benchmarkDuration", 3601, 3600), ("benchmarkRepeat", 101, 100),
                                              ("benchmarkStreams", 129, 128)])
def test_benchmark_upper_bounds_name_key_value_and_range(key, value, high):
    msg = one_problem(**{key: value, "benchmarkTimeout": 10_000})
    assert msg.startswith(f"cnibench:{key}: {value} is too large; valid: 1..{high}"), msg


def test_wrong_type_names_the_expected_type_and_default():
    msg = one_problem(benchmarkRepeat="three")
    assert msg.startswith("cnibench:benchmarkRepeat: 'three' is invalid") and "whole number" in msg
    assert "default 5" in msg


def test_unknown_key_lists_the_valid_keys():
    msg = one_problem(instancetype="c6i.large")
    assert msg.startswith("cnibench:instancetype: unknown config key") and "instanceType" in msg


@pytest.mark.parametrize(
    ("python_name", "key"), [("vpc_cidr", "vpcCidr"), ("instance_type", "instanceType")]
)
def test_a_python_field_name_is_not_a_config_key(python_name, key):
    # Found by hypothesis: the model's populate_by_name accepted `vpc_cidr` beside `vpcCidr`.
    msg = one_problem(**{python_name: "10.0.0.0/16"})
    assert msg.startswith(f"cnibench:{python_name}: unknown config key; did you mean cnibench:{key}?"), msg
    with pytest.raises(ConfigError):
        parse_config({"variant": "flannel-vxlan", "vpc_cidr": "10.1.0.0/16"})


def test_region_zone_mtu_and_tags():
    assert "us-east-1" in one_problem(region="useast")
    assert "not a zone of region" in one_problem(availabilityZone="eu-west-1a")
    assert "between 1280 and 9001" in one_problem(underlayMtu=9500)
    assert "key=value" in one_problem(extraTags=["no-equals-sign"])


def test_every_problem_is_reported_at_once():
    found = problems(variant="x", podCidr="10.96.0.0/16", benchmarkRepeat=0, sshIngressCidr="0.0.0.0/0")
    keys = {p.split(":")[1] for p in found}
    assert {"variant", "podCidr", "benchmarkRepeat", "sshIngressCidr"} <= keys


def test_ssh_auto_resolution():
    cfg = parse_config(GOOD)
    assert ssh_ingress_cidr(cfg, lambda: "203.0.113.7\n") == "203.0.113.7/32"
    with pytest.raises(ConfigError, match="set it explicitly"):
        ssh_ingress_cidr(cfg, lambda: "<html>proxy error</html>")
    explicit = parse_config({**GOOD, "sshIngressCidr": "198.51.100.0/24"})
    assert ssh_ingress_cidr(explicit, lambda: pytest.fail("must not look up")) == "198.51.100.0/24"


def test_kubernetes_version_is_validated_with_the_rest():
    """kubernetesVersion was checked only inside the cluster component: the matrix's validation missed it."""
    found = problems(kubernetesVersion="1.20", podCidr="10.96.0.0/16")
    assert any(p.startswith("cnibench:kubernetesVersion: '1.20'") and "1.24 to 1.37" in p for p in found)
    assert any(p.startswith("cnibench:podCidr") for p in found)
    assert parse_config({**GOOD, "kubernetesVersion": "1.33"}).kubernetes_version == "1.33"


def test_model_is_frozen():
    cfg = parse_config(GOOD)
    # pydantic's frozen model (ConfigDict(frozen=True)): "Instance is frozen [type=frozen_instance, ...]"
    with pytest.raises(pydantic.ValidationError, match=r"variant\n  Instance is frozen \[type=frozen_instance"):
        cfg.variant = "flannel-vxlan"  # type: ignore[misc]
    assert cfg.variant == "cilium-native" and isinstance(cfg, StackConfig)


# --- the program itself refuses bad config before declaring anything ------------------
def test_program_with_unknown_variant_fails_listing_valid_variants():
    """Under ``pulumi up`` (``program.run``) a config error is a RunError: reported without a trace."""
    with pytest.raises(pulumi.RunError) as err:
        mocks.run_program("cilium-native", {"variant": "weave-net"}, entry=cnibench.program.run)
    text = str(err.value)
    assert "cnibench:variant: unknown variant 'weave-net'" in text
    assert all(name in text for name in CATALOG)


def test_program_with_bad_config_declares_no_resource():
    seen = []
    original = mocks._mocks_and_monitor

    def spy():
        recording, monitor, registered, outs = original()
        seen.append(registered)
        return recording, monitor, registered, outs

    mocks._mocks_and_monitor = spy  # type: ignore[method-assign]
    try:
        with pytest.raises(pulumi.RunError, match="cnibench:podCidr"):
            mocks.run_program("flannel-vxlan", {"podCidr": "10.20.0.0/16"}, entry=cnibench.program.run)
    finally:
        mocks._mocks_and_monitor = original
    assert seen and seen[0] == []
