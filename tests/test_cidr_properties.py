"""Property-based tests of the CIDR arithmetic (hypothesis): how many public addresses a range
admits (cnibench.addresses), the special-range, overlap and pod-range checks of the config
(cnibench.config) and the node subnets the program carves from the VPC
(cnibench.program.network.subnet_cidrs).

The expected values come from the standard library's ``ipaddress`` (its address classes,
a network's first and last address) and integer arithmetic on the ranges, never from the
tables of the modules under test. ``tests/test_addresses.py`` (literal ranges, the sum of two
halves) and ``tests/test_config_properties.py`` (accepted configs are consistent) hold the rest.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv4Network

from hypothesis import given, settings
from hypothesis import strategies as st

from cnibench import addresses, config
from cnibench.config import ConfigError, parse_config
from cnibench.program.network import subnet_cidrs

# RFC 6890 registers the whole of 192.0.0.0/24 (IETF protocol assignments) as not globally
# reachable, and cnibench.addresses follows that; Python's ipaddress marks only parts of it private
# (3.11.7: 192.0.0.0/29 and 192.0.0.170/31; 3.12.4 and later: all but 192.0.0.9 and 192.0.0.10).
# The one place where the oracle below does not simply ask ipaddress.
IETF_PROTOCOL_ASSIGNMENTS = IPv4Network("192.0.0.0/24")


def _public(address: IPv4Address) -> bool:
    """Globally reachable and unicast, by the standard library's classification."""
    if address in IETF_PROTOCOL_ASSIGNMENTS:
        return False
    return address.is_global and not address.is_multicast


def _special(address: IPv4Address) -> bool:
    """Not an address a node, pod or service can have: 'this network' 0.0.0.0/8 (RFC 791: first
    octet 0), loopback, link-local, multicast and the reserved 240.0.0.0/4 (broadcast included)."""
    return (address.packed[0] == 0 or address.is_loopback or address.is_link_local or address.is_multicast
            or address.is_reserved)


def _bounds(net: IPv4Network) -> tuple[int, int]:
    return int(net.network_address), int(net.broadcast_address)


def _intersect(a: IPv4Network, b: IPv4Network) -> bool:
    (a0, a1), (b0, b1) = _bounds(a), _bounds(b)
    return a0 <= b1 and b0 <= a1


# Addresses near the edges of the special-purpose blocks (where an off-by-one would show), and anywhere.
EDGES = [int(IPv4Address(a)) for a in (
    "0.0.0.0", "1.0.0.0", "10.0.0.0", "11.0.0.0", "100.64.0.0", "100.128.0.0", "127.0.0.0", "128.0.0.0",
    "169.254.0.0", "169.255.0.0", "172.16.0.0", "172.32.0.0", "192.0.0.0", "192.0.1.0", "192.0.2.0", "192.0.3.0",
    "192.88.99.0", "192.168.0.0", "192.169.0.0", "198.18.0.0", "198.20.0.0", "198.51.100.0", "198.51.101.0",
    "203.0.113.0", "203.0.114.0", "224.0.0.0", "240.0.0.0", "255.255.255.255",
)]
ipv4 = st.one_of(
    st.integers(0, 2**32 - 1),
    st.builds(lambda edge, off: (edge + off) % 2**32, st.sampled_from(EDGES), st.integers(-4096, 4096)),
)


def networks(min_prefix: int, max_prefix: int) -> st.SearchStrategy[IPv4Network]:
    return st.builds(lambda a, p: IPv4Network((a, p), strict=False), ipv4, st.integers(min_prefix, max_prefix))


# --------------------------------------------------------------------------- addresses


@settings(max_examples=60, deadline=None)
@given(networks(22, 32), ipv4)
def test_public_addresses_of_a_small_range_count_its_global_unicast_addresses(net, host):
    expected = sum(1 for address in net if _public(address))
    assert addresses.public_addresses(net) == expected
    assert addresses.public_addresses(str(net)) == expected
    # any spelling with host bits names the same range
    inside = IPv4Address(int(net.network_address) + host % net.num_addresses)
    assert addresses.public_addresses(f"{inside}/{net.prefixlen}") == expected
    assert addresses.world_open(net) is False  # at most 1024 addresses


def test_public_addresses_across_the_edge_of_every_special_block():
    """The /23 just below and the /23 just above each edge, and the /22 across it, every time
    (hypothesis meets a given edge only now and then)."""
    for edge in EDGES:
        for start, prefix in ((edge - 512, 23), (edge, 23), (edge - 512, 22)):
            net = IPv4Network((start % 2**32, prefix), strict=False)
            assert addresses.public_addresses(net) == sum(1 for address in net if _public(address)), net


@settings(max_examples=25, deadline=None)
@given(networks(13, 24), ipv4)
def test_public_addresses_of_a_larger_range_count_its_global_24s(net, host):
    """Every block the standard library (or RFC 6890) sets apart is a /24 or larger except inside
    192.0.0.0/24 and 240.0.0.0/4, which are wholly non-public: each /24 is all public or none, so
    its first and last address tell (the test checks that they agree)."""
    expected = 0
    for chunk in net.subnets(new_prefix=24):
        first, last = chunk.network_address, chunk.broadcast_address
        assert _public(first) == _public(last), chunk
        expected += 256 if _public(first) else 0
    assert addresses.public_addresses(net) == expected
    inside = IPv4Address(int(net.network_address) + host % net.num_addresses)
    spelled = f"{inside}/{net.prefixlen}"
    assert addresses.world_open(spelled) is addresses.world_open(net) is (expected > 2**16)


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.text(max_size=24), st.from_regex(r"\A[0-9a-f:./ ]{1,24}\Z"),
                 st.builds(lambda a, p: f"{IPv4Address(a)}/{p}", ipv4, st.integers(-1, 40))))
def test_world_open_judges_any_text_without_raising(text):
    verdict = addresses.world_open(text)
    assert isinstance(verdict, bool)
    try:
        net = IPv4Network(text, strict=False)
    except ValueError:  # not an IPv4 CIDR: only ::/0 is judged (world-open)
        assert verdict is (text.strip() == "::/0")
    else:
        assert verdict is (addresses.public_addresses(net) > addresses.WORLD_OPEN_PUBLIC_ADDRESSES)


@given(st.integers(0, 2**128 - 1), st.integers(1, 128))
def test_ipv6_ranges_other_than_everything_are_not_judged(address, prefix):
    net = ipaddress.IPv6Network((address, prefix), strict=False)
    assert addresses.world_open(str(net)) is False
    assert addresses.world_open("::/0") is True
    assert addresses.public_addresses("::/0") == addresses.public_addresses("0.0.0.0/0")


# --------------------------------------------------------------------------- config: special ranges


@settings(max_examples=60, deadline=None)
@given(networks(6, 32))
def test_not_unicast_is_overlapping_a_special_range(net):
    """Every special block is a /16 or larger, aligned: a /16 is all special or none, so the
    first address of each /16 of the range (or the range's own, when smaller) tells."""
    if net.prefixlen >= 16:
        expected = _special(net.network_address)
    else:
        expected = any(_special(chunk.network_address) for chunk in net.subnets(new_prefix=16))
    found = config.not_unicast(net)
    assert (found is not None) is expected
    if found is not None:  # it names a block the range does overlap
        block = IPv4Network(found.split()[0])
        assert _intersect(block, net) and all(_special(a) for a in (block.network_address, block.broadcast_address))


# --------------------------------------------------------------------------- config: the network plan

PRIVATE_BLOCKS = [IPv4Network(b) for b in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")]


def _sizes(valid: tuple[int, int], edge: tuple[int, int], wild: tuple[int, int]) -> st.SearchStrategy[int]:
    """Mostly valid sizes (so that plans are accepted as well as refused), then the bounds and beyond."""
    return st.one_of(st.integers(*valid), st.integers(*valid), st.integers(*edge), st.integers(*wild))


PREFIXES = {"vpc_cidr": _sizes((16, 23), (15, 24), (8, 30)), "pod_cidr": _sizes((12, 20), (12, 26), (8, 30)),
            "service_cidr": _sizes((12, 28), (11, 29), (8, 30))}
masks = _sizes((20, 28), (15, 29), (0, 40))


@st.composite
def plans(draw) -> dict[str, IPv4Network]:
    """VPC, pod and service ranges in the RFC 1918 and RFC 6598 blocks: each in a block of its
    own, or (half the time) two of them in one block, near each other, where they may overlap."""
    blocks = dict(zip(PREFIXES, draw(st.permutations(PRIVATE_BLOCKS))))
    offsets = {role: draw(st.integers(0, 2**24 - 1)) for role in PREFIXES}
    shared = draw(st.sampled_from([None, None, None, ("pod_cidr", "vpc_cidr"), ("pod_cidr", "service_cidr"),
                                   ("service_cidr", "vpc_cidr")]))
    if shared is not None:
        a, b = shared
        blocks[a] = blocks[b]
        offsets[a] = offsets[b] + draw(st.integers(-2**20, 2**20))
    return {role: IPv4Network((int(blocks[role].network_address) + offsets[role] % blocks[role].num_addresses,
                               max(draw(PREFIXES[role]), blocks[role].prefixlen)), strict=False)
            for role in PREFIXES}


KEYS = {"vpc_cidr": "vpcCidr", "pod_cidr": "podCidr", "service_cidr": "serviceCidr"}
PAIRS = (("pod_cidr", "service_cidr"), ("pod_cidr", "vpc_cidr"), ("service_cidr", "vpc_cidr"))


def _line(field: str) -> str:
    return f"{config.NAMESPACE}:{KEYS[field]}:"


@settings(max_examples=120, deadline=None)
@given(plans(), masks, st.booleans(), st.booleans())
def test_the_network_plan_is_refused_exactly_when_it_does_not_fit(nets, mask, shared_node, split):
    vpc, pod, svc = nets["vpc_cidr"], nets["pod_cidr"], nets["service_cidr"]
    raw = {"variant": "flannel-vxlan", "vpcCidr": str(vpc), "podCidr": str(pod), "serviceCidr": str(svc),
           "nodePodMaskSize": mask, "controlPlaneOnBenchmarkNode": shared_node, "splitSubnets": split}
    nodes = 2 if shared_node else 3
    overlapping = {(a, b) for a, b in PAIRS if _intersect(nets[a], nets[b])}
    mask_ok = 16 <= mask <= 28
    capacity = 2 ** (mask - pod.prefixlen) if pod.prefixlen <= mask else 0
    fits = (not overlapping and 16 <= vpc.prefixlen <= 23 and 12 <= svc.prefixlen <= 28 and mask_ok
            and capacity >= nodes)
    try:
        cfg = parse_config(raw)
    except ConfigError as err:
        assert not fits, err.problems
        lines = err.problems
        for a, b in PAIRS:
            said = any(ln.startswith(_line(a)) and f"overlaps {config.NAMESPACE}:{KEYS[b]} " in ln for ln in lines)
            assert said is ((a, b) in overlapping), (a, b, lines)
        # the size of each range: a VPC of /16 to /23 (AWS, and room for /24 node subnets), services /12 to /28
        assert any(ln.startswith(_line("vpc_cidr")) for ln in lines) is not (16 <= vpc.prefixlen <= 23)
        svc_size = any(ln.startswith(_line("service_cidr")) and "overlaps" not in ln for ln in lines)
        assert svc_size is not (12 <= svc.prefixlen <= 28)
        assert any(ln.startswith(f"{config.NAMESPACE}:nodePodMaskSize:") for ln in lines) is not mask_ok
        pod_range = any(ln.startswith(_line("pod_cidr")) and "node range" in ln for ln in lines)
        assert pod_range is (mask_ok and capacity < nodes), lines
        if pod_range:
            assert f"holds {capacity} node range(s) of /{mask}" in " ".join(lines)
        return
    assert fits, raw
    # accepted: pairwise disjoint, and the node subnets lie in the VPC, clear of pods and services
    assert not any(_intersect(nets[a], nets[b]) for a, b in PAIRS)
    for from_end in (False, True):
        for cidr in subnet_cidrs(cfg.vpc_cidr, 2 if split else 1, from_end):
            sub = IPv4Network(cidr)
            (s0, s1), (v0, v1) = _bounds(sub), _bounds(vpc)
            assert v0 <= s0 <= s1 <= v1 and not _intersect(sub, pod) and not _intersect(sub, svc)


@settings(max_examples=60, deadline=None)
@given(networks(14, 32), st.integers(1, 4), st.booleans())
def test_node_subnets_are_the_first_or_last_blocks_of_the_vpc(vpc, count, from_end):
    """/24 blocks of the VPC (halves of a VPC of /24 to /27), counted from its start or its end."""
    prefix = max(24, vpc.prefixlen + 1)
    size = 2 ** (32 - prefix)
    start, end = _bounds(vpc)
    blocks = (end + 1 - start) // size
    if prefix > 28 or count > blocks:
        try:
            subnet_cidrs(str(vpc), count, from_end)
        except ValueError as exc:
            assert str(vpc) in str(exc)
        else:
            raise AssertionError(f"{vpc} cannot hold {count} /{prefix} subnet(s)")
        return
    first = end + 1 - count * size if from_end else start
    expected = [str(IPv4Network((first + i * size, prefix))) for i in range(count)]
    assert subnet_cidrs(str(vpc), count, from_end) == expected
