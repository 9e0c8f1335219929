"""The Pulumi program: ``run()`` is what ``__main__.py`` calls under ``pulumi up``; ``main(cfg,
public_ip)`` composes the components for a validated config and is what the mocks harness calls.

network -> matched nodes -> kubeadm cluster -> CNI -> benchmark -> stack outputs.
"""

from __future__ import annotations

from typing import Any, Callable

import pulumi
from pulumi.runtime import config as runtime_config

from cnibench.config import ConfigError, StackConfig, parse_config
from cnibench.program import preflight
from cnibench.program.benchmark import Benchmark
from cnibench.program.cluster import Cluster
from cnibench.program.cni import install_cni
from cnibench.program.expiry import expires_at
from cnibench.program.network import Network
from cnibench.program.nodes import NodePair
from cnibench.program.operator import lookup_public_ip, ssh_ingress_cidr
from cnibench.program.provider import aws_provider
from cnibench.project import strip_namespace
from cnibench.tags import Tagging


def raw_config() -> dict[str, Any]:
    """Every ``cnibench:*`` value the running Pulumi program was given (CLI or mocks)."""
    merged = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    return strip_namespace(merged)


def run() -> None:
    """Entry point of ``pulumi up``: read and validate the stack's config, then :func:`main`.

    A config error becomes a ``RunError``, which Pulumi reports without a stack trace."""
    try:
        main(parse_config(raw_config()), lookup_public_ip)
    except ConfigError as err:
        raise pulumi.RunError(str(err)) from None


def main(cfg: StackConfig, public_ip: Callable[[], str]) -> None:
    """Declare every resource of the stack for ``cfg`` and export its outputs.

    ``public_ip`` returns the operator's public address; it is asked only for
    ``sshIngressCidr: auto``. Config errors found while declaring (e.g. a ``vpcId`` whose CIDR is
    not ``vpcCidr``) are raised as :class:`ConfigError`."""
    stack = pulumi.get_stack()
    tags = Tagging.of_stack(cfg.tags, stack, cfg.variant, expires_at(cfg.expiry_hours))
    provider = aws_provider(cfg.region, tags)
    # zones, instance types and the benchmark plan, before the first AWS resource
    instance_types = preflight.check(cfg, provider)
    on_aws = pulumi.ResourceOptions(providers=[provider])
    network = Network("net", cfg, tags, ssh_ingress_cidr(cfg, public_ip), opts=on_aws)
    nodes = NodePair("nodes", cfg, network, tags, instance_types, opts=on_aws)
    cluster = Cluster("k8s", cfg, nodes, opts=on_aws)
    cni = install_cni("cni", cfg, cluster, nodes, network)
    benchmark = Benchmark("bench", cfg, cluster, nodes, cni, network=network, opts=on_aws)
    _export(cfg, stack, nodes, cluster, cni, benchmark)


def _export(cfg: StackConfig, stack: str, nodes: NodePair, cluster: Cluster, cni: Any, benchmark: Benchmark) -> None:
    variant = cfg.variant_record
    ssh_key_file = f"cnibench-{stack}.key"
    pulumi.export("nodes", nodes.outputs())
    pulumi.export("ssh", {
        # the file is created mode 600 (install replaces an existing one) before the key is written
        "keyFile": f"install -m 600 /dev/null {ssh_key_file} && "
                   f"pulumi stack output --show-secrets sshPrivateKey > {ssh_key_file}",
        **nodes.ssh_commands(ssh_key_file),
    })
    pulumi.export("sshPrivateKey", nodes.private_key)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("cni", cni.outputs())
    pulumi.export("benchmark", benchmark.result)
    pulumi.export("variant", {
        "name": variant.name,
        "cni": variant.cni,
        "cniVersion": variant.cni_version,
        "install": variant.install.method.value,
        "underlay": variant.underlay.value,
        "encapOverhead": variant.encap_overhead,
        "podMtu": cfg.pod_mtu,
        "underlayMtu": cfg.underlay_mtu,
        "ports": [p.label for p in variant.ports],
        "minKernel": variant.min_kernel_label,
        "replacesKubeProxy": variant.replaces_kube_proxy,
    })
