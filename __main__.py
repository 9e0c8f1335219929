"""cnibench: benchmark one Kubernetes CNI variant on a matched AWS node pair.

Thin on purpose: read and validate the config, compose the components, export the outputs.
"""

import pulumi

from cnibench.config import ConfigError, from_pulumi, resolve_ssh_cidr
from components.cluster import Cluster
from components.cni import install_cni
from components.benchmark import Benchmark
from components.network import Network
from components.node_pair import NodePair
from components.tags import Tagging, aws_provider

try:
    cfg = from_pulumi()
except ConfigError as err:
    # RunError is reported by Pulumi without a stack trace: the message names the key.
    raise pulumi.RunError(str(err)) from None

variant = cfg.variant_record
stack = pulumi.get_stack()

# --- infrastructure: network -> matched node pair -> kubeadm cluster ------------------------
tags = Tagging.of_stack(cfg, stack)
on_aws = pulumi.ResourceOptions(providers=[aws_provider(cfg, tags)])
try:
    network = Network("net", cfg, tags, resolve_ssh_cidr(cfg), opts=on_aws)
    nodes = NodePair("nodes", cfg, network, tags, opts=on_aws)
    cluster = Cluster("k8s", cfg, nodes, opts=on_aws)
except ConfigError as err:
    raise pulumi.RunError(str(err)) from None

# --- CNI and benchmark (one line each: install_cni(...), Benchmark(...)) ----------------------
cni = install_cni("cni", cfg, cluster, nodes, network)
benchmark = Benchmark("bench", cfg, cluster, nodes, cni, network=network, opts=on_aws)

# --- outputs ----------------------------------------------------------------------------
ssh_key_file = f"cnibench-{stack}.key"
pulumi.export("nodes", nodes.outputs())
pulumi.export("ssh", {
    "keyFile": f"pulumi stack output --show-secrets sshPrivateKey > {ssh_key_file} && chmod 600 {ssh_key_file}",
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
