"""How much of the public internet an IPv4 range admits: the judge of "open to the world".

A CIDR is world-open when it covers more public addresses than :data:`WORLD_OPEN_PUBLIC_ADDRESSES`
(a /16's worth), whatever its spelling: ``0.0.0.0/0``, ``0.0.0.0/1`` and ``128.0.0.0/2`` all
are; ``10.0.0.0/8`` (private) and an office's ``203.0.113.0/24`` are not. Config validation
and the policy pack both ask here, so the two cannot disagree.
"""

from __future__ import annotations

import ipaddress

# IPv4 blocks that are not globally reachable: the IANA IPv4 Special-Purpose Address Registry
# (RFC 6890 and its updates; "Globally Reachable: False"), plus multicast (RFC 5771) and the
# reserved 240.0.0.0/4 (RFC 1112), which no unicast client comes from. Disjoint, so their
# overlaps with a range add up.
NOT_PUBLIC = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8",        # "this network" (RFC 791)
    "10.0.0.0/8",       # private use (RFC 1918)
    "100.64.0.0/10",    # shared address space, carrier-grade NAT (RFC 6598)
    "127.0.0.0/8",      # loopback (RFC 1122)
    "169.254.0.0/16",   # link local (RFC 3927)
    "172.16.0.0/12",    # private use (RFC 1918)
    "192.0.0.0/24",     # IETF protocol assignments (RFC 6890)
    "192.0.2.0/24",     # documentation TEST-NET-1 (RFC 5737)
    "192.168.0.0/16",   # private use (RFC 1918)
    "198.18.0.0/15",    # benchmarking (RFC 2544)
    "198.51.100.0/24",  # documentation TEST-NET-2 (RFC 5737)
    "203.0.113.0/24",   # documentation TEST-NET-3 (RFC 5737)
    "224.0.0.0/4",      # multicast (RFC 5771)
    "240.0.0.0/4",      # reserved (RFC 1112), 255.255.255.255 included
))

# More public addresses than a /16 holds: a range that admits this many is no longer "my
# office" or "my VPN" but a sizeable part of the internet.
WORLD_OPEN_PUBLIC_ADDRESSES = 2 ** 16


def public_addresses(cidr: str | ipaddress.IPv4Network) -> int:
    """How many globally reachable IPv4 addresses ``cidr`` covers (``"::/0"``: all of them)."""
    if isinstance(cidr, str) and cidr.strip() == "::/0":
        return 2 ** 32 - sum(n.num_addresses for n in NOT_PUBLIC)
    net = ipaddress.IPv4Network(cidr, strict=False) if isinstance(cidr, str) else cidr
    hidden = 0
    for block in NOT_PUBLIC:
        if net.subnet_of(block):
            return 0
        if block.subnet_of(net):
            hidden += block.num_addresses
    return net.num_addresses - hidden


def world_open(cidr: str | ipaddress.IPv4Network) -> bool:
    """True if ``cidr`` admits more than :data:`WORLD_OPEN_PUBLIC_ADDRESSES` public addresses.
    Anything that is not an IPv4 CIDR (or ``::/0``) is not judged here: False."""
    try:
        return public_addresses(cidr) > WORLD_OPEN_PUBLIC_ADDRESSES
    except ValueError:
        return False


# What sshIngressCidr opens on the nodes' security group (cnibench/program/network.py builds
# exactly these rules from it): SSH for the remote bootstrap steps and the Kubernetes API for the
# stack's kubeconfig and the Kubernetes provider.
SSH_PORT = 22
API_SERVER_PORT = 6443
OPERATOR_PORTS = ((SSH_PORT, "SSH"), (API_SERVER_PORT, "the Kubernetes API"))


def operator_ports_text() -> str:
    """``"tcp/22 (SSH) and tcp/6443 (the Kubernetes API)"``."""
    return " and ".join(f"tcp/{port} ({what})" for port, what in OPERATOR_PORTS)
