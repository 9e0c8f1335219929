"""The world-open judge (cnibench.addresses), shared by config validation and the policy pack."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnibench import addresses


@pytest.mark.parametrize("cidr,public", [
    # all of IPv4 minus the 14 non-public blocks: 4,294,967,296 - 592,708,608
    ("0.0.0.0/0", 3_702_258_688),
    # the lower half minus 0/8, 10/8, 100.64/10 and 127/8
    ("0.0.0.0/1", 2_147_483_648 - 3 * 16_777_216 - 4_194_304),
    ("128.0.0.0/1", 2_147_483_648 - 65_536 - 1_048_576 - 256 - 256 - 65_536 - 131_072 - 256 - 256
     - 2 * 268_435_456),
    ("10.0.0.0/8", 0), ("10.1.0.0/16", 0), ("172.20.0.0/16", 0), ("192.168.1.0/24", 0),
    ("100.64.0.0/10", 0), ("224.0.0.0/4", 0), ("203.0.113.0/24", 0),
    ("8.8.8.8/32", 1), ("8.8.0.0/16", 65_536), ("8.8.0.0/15", 131_072),
    ("192.0.0.0/16", 65_536 - 256 - 256),  # holds 192.0.0.0/24 and TEST-NET-1
])
def test_public_addresses(cidr, public):
    assert addresses.public_addresses(cidr) == public


@pytest.mark.parametrize("cidr,wide", [
    ("0.0.0.0/0", True), ("0.0.0.0/1", True), ("128.0.0.0/2", True), ("8.0.0.0/15", True), ("::/0", True),
    ("8.8.0.0/16", False),  # exactly a /16: still someone's network
    ("10.0.0.0/8", False), ("198.51.100.7/32", False), ("not-a-cidr", False), ("2001:db8::/32", False),
])
def test_world_open(cidr, wide):
    assert addresses.world_open(cidr) is wide


def test_the_non_public_blocks_are_disjoint():
    blocks = addresses.NOT_PUBLIC
    for i, a in enumerate(blocks):
        for b in blocks[i + 1:]:
            assert not a.overlaps(b), (a, b)


@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=0, max_value=31))
def test_a_range_is_the_sum_of_its_halves(address, prefix):
    net = ipaddress.IPv4Network((address, prefix), strict=False)
    low, high = net.subnets(prefixlen_diff=1)
    assert addresses.public_addresses(net) == addresses.public_addresses(low) + addresses.public_addresses(high)
    assert 0 <= addresses.public_addresses(net) <= net.num_addresses


def test_the_operator_ports_are_ssh_and_the_api():
    assert addresses.operator_ports_text() == "tcp/22 (SSH) and tcp/6443 (the Kubernetes API)"
