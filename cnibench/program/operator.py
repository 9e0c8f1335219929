"""The program's edge: what is looked up on the operator's machine at deploy time.

``sshIngressCidr: auto`` stands for this machine's public address; ``pulumi up`` asks
:data:`PUBLIC_IP_URL` for it, the mocks harness passes a documentation address instead.
"""

from __future__ import annotations

import ipaddress
import urllib.request
from typing import Callable

from cnibench.config import SSH_AUTO, ConfigError, StackConfig, key_of

PUBLIC_IP_URL = "https://checkip.amazonaws.com"


def lookup_public_ip() -> str:
    """This machine's public IPv4 address as AWS sees it (one HTTPS request, 10 s timeout)."""
    with urllib.request.urlopen(PUBLIC_IP_URL, timeout=10) as resp:
        return str(resp.read().decode())


def ssh_ingress_cidr(cfg: StackConfig, public_ip: Callable[[], str]) -> str:
    """The CIDR allowed to SSH to the nodes: the configured one, or for ``auto`` the operator's
    public address /32 (``public_ip`` is asked only then). A failed look-up is a config error
    naming the key to set instead."""
    if cfg.ssh_ingress_cidr != SSH_AUTO:
        return cfg.ssh_ingress_cidr
    try:
        address = ipaddress.IPv4Address(public_ip().strip())
    except (OSError, ValueError) as exc:
        raise ConfigError([
            f"{key_of('ssh_ingress_cidr')}: 'auto' could not find this machine's public address "
            f"({exc}); set it explicitly, e.g. pulumi config set cnibench:sshIngressCidr 203.0.113.7/32"
        ]) from None
    return f"{address}/32"
