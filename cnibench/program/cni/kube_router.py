"""kube-router as typed Kubernetes objects, equivalent to its generic all-features manifest.

Design notes and their sources: docs/cni.md (kube_router).
"""

from __future__ import annotations

import json
from typing import Any

import pulumi_kubernetes as k8s

from cnibench.program.cni.base import (
    SKIP_AWAIT,
    CniContext,
    Installed,
    detected_mtu_matches,
    fingerprint,
    service_account_rbac,
    template_metadata,
)

NAMESPACE = "kube-system"
NAME = "kube-router"
CONFIGMAP = "kube-router-cfg"
IMAGE = "docker.io/cloudnativelabs/kube-router:{version}"
# What --auto-mtu subtracts from the node MTU (nothing since v1.6.0, see above).
AUTO_MTU_OVERHEAD = 0
LABELS = {"k8s-app": "kube-router", "tier": "node"}
# args of the manifest that are not datapath choices
MANIFEST_ARGS = ("--bgp-graceful-restart=true", "--kubeconfig=/var/lib/kube-router/kubeconfig")
CNI_CONF_FILE = "/etc/cni/net.d/10-kuberouter.conflist"

# The install-cni init container of the manifest (kube-router v2.11.1
# daemonset/generic-kuberouter-all-features.yaml) copies the CNI conf and the kubeconfig to the
# host only if they are absent, then lets the image's cni-install put bridge/host-local/portmap
# into /opt/cni/bin. Here both files are always rewritten (atomically, copy then rename): with the
# manifest's "if absent", a re-run after a CNI setting changed (the MTU in the conf, the API
# server in the kubeconfig) would keep the old files, and the benchmark would measure the old
# datapath while the document reports the new one. The DaemonSet's pods are rolled when the
# ConfigMap changes (a checksum annotation in the pod template), so the init container runs again.
INSTALL_CNI = (
    "set -e -x;"
    " rm -f /etc/cni/net.d/*.conf;"
    " TMP=/etc/cni/net.d/.tmp-kuberouter-cfg;"
    " cp /etc/kube-router/cni-conf.json ${TMP};"
    " mv ${TMP} /etc/cni/net.d/10-kuberouter.conflist;"
    " TMP=/var/lib/kube-router/.tmp-kubeconfig;"
    " cp /etc/kube-router/kubeconfig ${TMP};"
    " mv ${TMP} /var/lib/kube-router/kubeconfig;"
    " if [ -x /usr/local/bin/cni-install ]; then /usr/local/bin/cni-install; fi;"
)

def router_args(datapath_args: tuple[str, ...], service_cidr: str, mtu: int | None) -> list[str]:
    """The container args: the variant's datapath flags, then the cluster's."""
    args = list(datapath_args)
    flags = {a.split("=", 1)[0] for a in args}
    for extra in (*MANIFEST_ARGS, f"--service-cluster-ip-range={service_cidr}"):
        if extra.split("=", 1)[0] not in flags:
            args.append(extra)
    if mtu is not None:
        if "--auto-mtu" in flags:
            raise ValueError("kube-router: the catalog sets --auto-mtu but the pod MTU must be explicit")
        args.append("--auto-mtu=false")
    return args


def cni_conf(mtu: int | None) -> dict:
    """The manifest's ``cni-conf.json`` (a bridge on kube-bridge, host-local IPAM that kube-router
    fills with the node's pod range), plus ``mtu`` when it is explicit."""
    bridge: dict[str, Any] = {
        "name": "kubernetes",
        "type": "bridge",
        "bridge": "kube-bridge",
        "isDefaultGateway": True,
        "hairpinMode": True,
        "ipam": {"type": "host-local"},
    }
    if mtu is not None:
        bridge["mtu"] = mtu
    return {"cniVersion": "0.3.0", "name": "mynet", "plugins": [bridge]}


def kubeconfig(api_server: str, cluster_cidr: str) -> str:
    """The manifest's kubeconfig template with %APISERVER% and %CLUSTERCIDR% filled in."""
    return "\n".join([
        "apiVersion: v1",
        "kind: Config",
        f'clusterCIDR: "{cluster_cidr}"',
        "clusters:",
        "- name: cluster",
        "  cluster:",
        "    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
        f"    server: {api_server}",
        "users:",
        "- name: kube-router",
        "  user:",
        "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token",
        "contexts:",
        "- context:",
        "    cluster: cluster",
        "    user: kube-router",
        "  name: kube-router-context",
        "current-context: kube-router-context",
        "",
    ])


def daemonset_spec(image: str, args: list[str], config_checksum: Any = None) -> dict:
    host = lambda name, path, **kw: {"name": name, "hostPath": {"path": path, **kw}}
    return {
        "selector": {"matchLabels": dict(LABELS)},
        "template": {
            "metadata": template_metadata(LABELS, config_checksum),
            "spec": {
                "priorityClassName": "system-node-critical",
                "serviceAccountName": NAME,
                "containers": [{
                    "name": "kube-router",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "args": args,
                    "env": [
                        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "KUBE_ROUTER_CNI_CONF_FILE", "value": CNI_CONF_FILE},
                    ],
                    "livenessProbe": {
                        "httpGet": {"path": "/healthz", "port": 20244},
                        "initialDelaySeconds": 10, "periodSeconds": 3,
                    },
                    "resources": {"requests": {"cpu": "250m", "memory": "250Mi"}},
                    "securityContext": {"privileged": True},
                    "volumeMounts": [
                        {"name": "lib-modules", "mountPath": "/lib/modules", "readOnly": True},
                        {"name": "cni-conf-dir", "mountPath": "/etc/cni/net.d"},
                        {"name": "kubeconfig", "mountPath": "/var/lib/kube-router", "readOnly": True},
                        {"name": "xtables-lock", "mountPath": "/run/xtables.lock", "readOnly": False},
                    ],
                }],
                "initContainers": [{
                    "name": "install-cni",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/sh", "-c", INSTALL_CNI],
                    "volumeMounts": [
                        {"name": "cni-conf-dir", "mountPath": "/etc/cni/net.d"},
                        {"name": "kube-router-cfg", "mountPath": "/etc/kube-router"},
                        {"name": "kubeconfig", "mountPath": "/var/lib/kube-router"},
                        {"name": "host-opt", "mountPath": "/opt"},
                    ],
                }],
                "hostNetwork": True,
                "hostPID": True,
                "tolerations": [
                    {"effect": "NoSchedule", "operator": "Exists"},
                    {"key": "CriticalAddonsOnly", "operator": "Exists"},
                    {"effect": "NoExecute", "operator": "Exists"},
                ],
                "volumes": [
                    host("lib-modules", "/lib/modules"),
                    host("cni-conf-dir", "/etc/cni/net.d"),
                    {"name": "kube-router-cfg", "configMap": {"name": CONFIGMAP}},
                    host("kubeconfig", "/var/lib/kube-router"),
                    host("xtables-lock", "/run/xtables.lock", type="FileOrCreate"),
                    host("host-opt", "/opt"),
                ],
            },
        },
    }


# ClusterRole rules of the manifest, as in the file.
RULES = [
    {"apiGroups": [""], "resources": ["namespaces", "pods", "services", "nodes", "endpoints"],
     "verbs": ["list", "get", "watch"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["list", "get", "watch"]},
    {"apiGroups": ["extensions"], "resources": ["networkpolicies"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
    {"apiGroups": [""], "resources": ["services/status"], "verbs": ["update"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
]


def install(ctx: CniContext) -> Installed:
    variant, cfg = ctx.variant, ctx.cfg
    mtu = None if detected_mtu_matches(variant, AUTO_MTU_OVERHEAD) else cfg.pod_mtu
    args = router_args(tuple(variant.datapath["args"]), cfg.service_cidr, mtu)
    image = IMAGE.format(version=variant.install.version)
    cni_conf_json = json.dumps(cni_conf(mtu), indent=2)
    kubeconfig_text = ctx.api_server_url.apply(lambda url: kubeconfig(url, cfg.pod_cidr))

    opts = ctx.k8s_opts()
    n = ctx.name
    config = k8s.core.v1.ConfigMap(
        f"{n}-config",
        metadata={"name": CONFIGMAP, "namespace": NAMESPACE, "labels": dict(LABELS)},
        data={"cni-conf.json": cni_conf_json, "kubeconfig": kubeconfig_text},
        opts=opts,
    )
    # the manifest also sets namespace: kube-system on the (cluster-scoped) ClusterRole, where it
    # means nothing; it is left out
    sa, role, binding = service_account_rbac(ctx, NAME, NAMESPACE, RULES)
    ds = k8s.apps.v1.DaemonSet(
        f"{n}-daemonset",
        metadata={"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS), "annotations": dict(SKIP_AWAIT)},
        spec=daemonset_spec(image, args, fingerprint(cni_conf_json, kubeconfig_text)),
        opts=ctx.k8s_opts(depends_on=[config, sa, binding]),
    )
    return Installed(
        namespace=NAMESPACE,
        workloads=(f"daemonset/{NAME}",),
        resources=(config, sa, role, binding, ds),
        fingerprint=fingerprint(variant.name, image, args, cni_conf_json, kubeconfig_text),
        summary={
            "args": args,
            "podMtu": cfg.pod_mtu,
            "podMtuSetBy": "--auto-mtu=false + bridge mtu" if mtu else "kube-router --auto-mtu (interface MTU)",
        },
    )
