"""cnibench: benchmark one Kubernetes CNI variant on a matched AWS node pair.

Thin on purpose: read and validate the config, compose the components, export the outputs.
"""

import pulumi

from cnibench.config import ConfigError, from_pulumi

try:
    cfg = from_pulumi()
except ConfigError as err:
    # RunError is reported by Pulumi without a stack trace: the message names the key.
    raise pulumi.RunError(str(err)) from None

variant = cfg.variant_record

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
