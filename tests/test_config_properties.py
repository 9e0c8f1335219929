"""Property-based tests of config parsing (hypothesis): whatever a user writes into a stack file or
passes with ``-c``, ``parse_config`` either returns a config whose networks and plan are consistent,
or raises the project's ConfigError with one line per key, never another exception type."""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnibench import config
from cnibench.config import ConfigError, config_keys, parse_config
from cnibench.program import expiry, network
from cnibench.suite import plan as suite_plan
from cnibench.variants import CATALOG

KEYS = list(config_keys())


def cidrs() -> st.SearchStrategy[str]:
    """Network addresses of any prefix (strict), host-bit ones, and garbage."""
    strict = st.builds(
        lambda addr, prefix: str(ipaddress.IPv4Network((addr, prefix), strict=False)),
        st.integers(0, 2**32 - 1), st.integers(0, 32),
    )
    loose = st.builds(lambda addr, prefix: f"{ipaddress.IPv4Address(addr)}/{prefix}",
                      st.integers(0, 2**32 - 1), st.integers(0, 40))
    private = st.sampled_from(["10.20.0.0/16", "10.244.0.0/16", "10.96.0.0/12", "192.168.0.0/16",
                               "172.16.0.0/16", "100.64.0.0/10", "10.0.0.0/23", "10.96.0.0/28"])
    return st.one_of(strict, loose, private, st.text(max_size=20))


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True), st.text(max_size=30),
    st.sampled_from(["", "0", "1", "-1", "1e9", "nan", "inf", "true", "[]", "[1, 2]", '["a=b"]', "{}", "1.33"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=5))

# per-key values that are often valid, so that accepted configs are generated too
PLAUSIBLE = {
    "variant": st.sampled_from(sorted(CATALOG) + ["", "calico"]),
    "region": st.sampled_from(sorted(config.AWS_REGIONS) + ["xx-nowhere-9", "US-EAST-1", ""]),
    "availabilityZone": st.sampled_from(["", "us-east-1a", "us-east-1f", "us-east-10a", "us-east-1-bogus", "eu-west-1b"]),
    "instanceType": st.sampled_from(["c6i.8xlarge", "t3.large", "", "c6i", "m5.large"]),
    "kubernetesVersion": st.one_of(st.sampled_from(["1.24", "1.33", "1.37", "1.99", "1.2", "v1.33"]),
                                   st.builds(lambda m: f"1.{m}", st.integers(0, 200))),
    "vpcCidr": cidrs(), "podCidr": cidrs(), "serviceCidr": cidrs(),
    "nodePodMaskSize": st.integers(10, 32),
    "benchmarkDuration": st.integers(-5, 5000), "benchmarkRepeat": st.integers(-1, 200),
    "benchmarkStreams": st.integers(-1, 200000), "benchmarkTimeout": st.integers(-1, 10**7),
    "expiryHours": st.integers(-1, 10**10),
    "benchmarkLoadLevels": st.lists(st.integers(-10, 200), max_size=4),
    "benchmarkResponseSizes": st.lists(st.integers(-10, 2 * 10**12), max_size=4),
    "amiId": st.sampled_from(["", "ami-0123abcd", "ami-0123456789abcdef0", "ami-xyz", "ami-0123456789abcdef"]),
    "vpcId": st.sampled_from(["", "vpc-0123abcd", "vpc-12", "igw-0123abcd"]),
    "extraTags": st.lists(st.one_of(st.text(max_size=300), st.sampled_from(["a=b", "aws:x=y", "k=aws:v", "=v"])),
                          max_size=60),
}
configs = st.fixed_dictionaries(
    {"variant": PLAUSIBLE["variant"]},
    optional={key: PLAUSIBLE.get(key, values) for key in KEYS if key != "variant"},
)
wild = st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=12)), values, max_size=6)


def _check_accepted(cfg: config.StackConfig) -> None:
    vpc = ipaddress.IPv4Network(cfg.vpc_cidr)
    pod = ipaddress.IPv4Network(cfg.pod_cidr)
    svc = ipaddress.IPv4Network(cfg.service_cidr)
    # disjoint, unicast, within AWS's and kube-apiserver's bounds
    assert not (vpc.overlaps(pod) or vpc.overlaps(svc) or pod.overlaps(svc))
    assert not any(config.not_unicast(n) for n in (vpc, pod, svc))
    assert config.AWS_VPC_PREFIXES[0] <= vpc.prefixlen <= config.NODE_SUBNET_PREFIX - 1
    assert config.SERVICE_PREFIXES[0] <= svc.prefixlen <= config.SERVICE_PREFIXES[1]
    assert svc.num_addresses > config.KUBEADM_DNS_SERVICE_INDEX
    assert 2 ** (cfg.node_pod_mask_size - pod.prefixlen) >= cfg.node_count
    # the node subnets the program carves fit in the VPC and are /24s
    count = 2 if cfg.split_subnets else 1
    for from_end in (False, True):
        subnets = [ipaddress.IPv4Network(c) for c in network.subnet_cidrs(cfg.vpc_cidr, count, from_end)]
        assert len(subnets) == count and all(s.subnet_of(vpc) and s.prefixlen == 24 for s in subnets)
    # the expiry tag is a date, not an OverflowError
    assert expiry.format_expiry("1767225600", cfg.expiry_hours).endswith("Z")
    # the AMI/VPC ids, the region, the zone and the Kubernetes minor are of the accepted forms
    assert cfg.region in config.AWS_REGIONS and cfg.az.startswith(cfg.region) and len(cfg.az) == len(cfg.region) + 1
    assert config.kubernetes_minor(cfg.kubernetes_version) in config.KUBERNETES_MINORS
    assert len(cfg.tags) <= config.MAX_TAGS_PER_RESOURCE
    assert not any(k.lower().startswith("aws:") for k in cfg.tags)
    # the suite plan builds
    plan = suite_plan.plan_from_config(cfg)
    assert plan.repeat == cfg.benchmark_repeat and plan.steps


def _check_refused(err: ConfigError) -> None:
    assert err.problems
    for line in err.problems:
        assert line.startswith(f"{config.NAMESPACE}:"), line
        key = line.split(":", 2)[1]
        assert key in config_keys() or "unknown config key" in line, line


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_plausible_configs_are_accepted_consistently_or_refused_as_config_errors(raw):
    try:
        cfg = parse_config(raw)
    except ConfigError as err:
        _check_refused(err)
    else:
        _check_accepted(cfg)


@settings(max_examples=400, deadline=None)
@given(wild)
def test_arbitrary_input_raises_nothing_but_config_error(raw):
    try:
        cfg = parse_config({"variant": "flannel-vxlan", **raw})
    except ConfigError as err:
        _check_refused(err)
    else:
        _check_accepted(cfg)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_string_override_is_parsed_or_refused(text):
    """What `-c key=value` hands the program: a string, for every key."""
    for key in KEYS:
        try:
            parse_config({"variant": "flannel-vxlan", key: text})
        except ConfigError as err:
            _check_refused(err)


def private_cidrs() -> st.SearchStrategy[str]:
    """Aligned ranges inside the RFC 1918 and RFC 6598 blocks: most are acceptable."""
    blocks = [ipaddress.IPv4Network(b) for b in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")]
    return st.builds(
        lambda block, offset, prefix: str(ipaddress.IPv4Network(
            (int(block.network_address) + offset % block.num_addresses, max(prefix, block.prefixlen)), strict=False)),
        st.sampled_from(blocks), st.integers(0, 2**24), st.integers(8, 30),
    )


@settings(max_examples=400, deadline=None)
@given(st.fixed_dictionaries({"variant": st.sampled_from(sorted(CATALOG))}, optional={
    "vpcCidr": private_cidrs(), "podCidr": private_cidrs(), "serviceCidr": private_cidrs(),
    "nodePodMaskSize": st.integers(16, 28), "splitSubnets": st.booleans(),
    "controlPlaneOnBenchmarkNode": st.booleans(),
}))
def test_any_accepted_network_plan_is_consistent(raw):
    try:
        cfg = parse_config(raw)
    except ConfigError as err:
        _check_refused(err)
    else:
        _check_accepted(cfg)
