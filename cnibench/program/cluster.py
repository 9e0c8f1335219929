"""kubeadm over SSH (pulumi-command): a Kubernetes cluster on the NodePair's machines.

Steps, each a ``command:remote:Command`` running a script from ``cnibench/program/scripts``:

1. ``<role>-boot``     wait-for-boot.sh: the first SSH dial is retried without limit (sshd is not
                       up when the instance is), bounded by a create timeout.
2. ``<role>-prereqs``  node-prereqs.sh: swap, modules, sysctls, containerd, kubelet/kubeadm/kubectl.
3. ``init``            kubeadm-init.sh on the control plane, ``--skip-phases=addon/kube-proxy``
                       for variants that replace kube-proxy.
4. ``kubeconfig`` / ``join-command``: read on the control plane; stdout is secret and not logged.
5. ``<role>-join``     kubeadm-join.sh on the other machines.
6. ``<role>-label``    label-node.sh: ``cnibench.io/role=client|server``.

Nothing secret goes into user data (pulumi-aws v7 stores it in clear text): the join token
reaches a node only inside the SSH session of its join step.
"""

from __future__ import annotations

import re
import shlex
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s
import yaml
from pulumi_command import remote

from cnibench.config import ConfigError, StackConfig, key_of
from cnibench.config import kubernetes_minor as config_kubernetes_minor
from cnibench.program.network import API_SERVER_PORT
from cnibench.program.nodes import Node, NodePair
from cnibench.tags import CLIENT, CONTROL_PLANE, ROLE_LABEL, SERVER

SCRIPTS = files("cnibench.program") / "scripts"  # package data
SKIP_KUBE_PROXY = "--skip-phases=addon/kube-proxy"
KUBECONFIG_COMMAND = "sudo cat /etc/kubernetes/admin.conf"
JOIN_COMMAND = "sudo kubeadm token create --print-join-command --ttl 2h"
# kubeadm prints: kubeadm join <host:port> --token <id.secret> --discovery-token-ca-cert-hash sha256:<hex>
_JOIN = re.compile(
    r"kubeadm join (?P<endpoint>\S+) --token (?P<token>[a-z0-9]{6}\.[a-z0-9]{16})\s+"
    r"--discovery-token-ca-cert-hash (?P<hash>sha256:[0-9a-f]{64})"
)
# kubeadm config API v1beta4 since Kubernetes 1.31 (extraArgs become name/value lists);
# kubernetes/kubernetes cmd/kubeadm/app/apis/kubeadm/v1beta4/doc.go
V1BETA4_SINCE = 31
BOOT_TIMEOUT = "20m"
SSH_DIAL_TIMEOUT = 15  # seconds per dial attempt


def script(name: str, scripts_dir: Traversable | None = None) -> str:
    return ((scripts_dir or SCRIPTS) / name).read_text()


def remote_script(
    name: str, env: Mapping[str, str] | None = None, args: Sequence[str] = (),
    scripts_dir: Traversable | None = None,
) -> str:
    """The ``create`` text that runs ``<scripts_dir>/<name>`` (default ``cnibench/program/scripts``)
    as root through ``bash -s``.

    The script travels in a quoted here-document (no expansion); inputs are ``env`` assignments
    (``sudo env K=V``, so they do not depend on sshd's AcceptEnv) and ``args``.
    """
    body = script(name, scripts_dir)
    marker = "CNIBENCH_SCRIPT_EOF"
    if f"\n{marker}\n" in f"\n{body}\n":  # pragma: no cover - guards the scripts directory
        raise ValueError(f"{name} contains the here-document marker {marker}")
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    argv = " ".join(shlex.quote(a) for a in args)
    head = " ".join(p for p in ("sudo env", assignments, "bash -s --", argv) if p)
    return f"{head} <<'{marker}'\n{body.rstrip()}\n{marker}\n"


def kubernetes_minor(cfg: StackConfig) -> int:
    """The configured minor (``parse_config`` has validated it)."""
    minor = config_kubernetes_minor(cfg.kubernetes_version)
    if minor is None:  # a StackConfig not made by parse_config
        raise ConfigError([f"{key_of('kubernetes_version')}: {cfg.kubernetes_version!r} is not a valid minor version"])
    return minor


def _extra_args(minor: int, args: Mapping[str, str]) -> Any:
    if minor >= V1BETA4_SINCE:
        return [{"name": k, "value": v} for k, v in args.items()]
    return dict(args)


def kubeadm_config(
    *,
    minor: int,
    node_name: str,
    advertise_address: str,
    public_ip: str,
    pod_cidr: str,
    service_cidr: str,
    node_pod_mask_size: int,
    schedulable: bool,
    kube_proxy: Mapping[str, Any] | None = None,
) -> str:
    """The kubeadm InitConfiguration + ClusterConfiguration documents (YAML), and a
    KubeProxyConfiguration when ``kube_proxy`` holds settings for it (kubeadm passes that
    document to the kube-proxy addon: kubeadm's config file "may contain" one per component,
    kubernetes.io/docs/reference/config-api/kubeadm-config.v1beta4).

    ``kubernetesVersion`` is ``@KUBERNETES_VERSION@``: kubeadm-init.sh puts the installed
    kubeadm's own version there (kubeadm would otherwise look up "stable-1" on the internet).
    """
    api = "kubeadm.k8s.io/v1beta4" if minor >= V1BETA4_SINCE else "kubeadm.k8s.io/v1beta3"
    registration: dict[str, Any] = {"name": node_name, "criSocket": "unix:///run/containerd/containerd.sock"}
    if schedulable:
        registration["taints"] = []  # the control plane is a benchmark node: run pods on it
    init = {
        "apiVersion": api,
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": advertise_address, "bindPort": API_SERVER_PORT},
        "nodeRegistration": registration,
    }
    cluster = {
        "apiVersion": api,
        "kind": "ClusterConfiguration",
        "kubernetesVersion": "@KUBERNETES_VERSION@",
        "controlPlaneEndpoint": f"{advertise_address}:{API_SERVER_PORT}",
        # the stack's kubeconfig reaches the API server on the public address
        "apiServer": {"certSANs": [public_ip, advertise_address, node_name]},
        "networking": {"podSubnet": pod_cidr, "serviceSubnet": service_cidr},
        "controllerManager": {
            "extraArgs": _extra_args(minor, {"node-cidr-mask-size": str(node_pod_mask_size)}),
        },
    }
    docs: list[dict[str, Any]] = [init, cluster]
    if kube_proxy:
        docs.append({"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
                     **kube_proxy})
    return yaml.safe_dump_all(docs, sort_keys=False)


def kube_proxy_settings(variant: Any) -> dict[str, Any] | None:
    """KubeProxyConfiguration fields a variant needs, None for kube-proxy's defaults.

    kube-proxy treats traffic as coming from inside the cluster when its source is in
    ``clusterCIDR`` (the default ``detectLocalMode: ClusterCIDR``; kubeadm sets clusterCIDR to
    ``podSubnet``) and masquerades the rest of the pod-to-ClusterIP traffic. Pods with VPC
    addresses (cilium ENI IPAM) are outside ``podSubnet``: every one of their service flows
    would be SNATed to the node, a step no other variant pays. Detecting local traffic by the
    pods' host-side interface fixes that: kube-proxy v1alpha1 ``detectLocalMode:
    InterfaceNamePrefix`` with ``detectLocal.interfaceNamePrefix`` (k8s.io/kube-proxy
    config/v1alpha1/types.go, DetectLocalConfiguration), and cilium names every endpoint's
    host-side interface ``lxc...`` (cilium pkg/datapath/connector, HostInterfacePrefix = "lxc").
    """
    if variant.replaces_kube_proxy:
        return None
    prefix = variant.pod_host_interface_prefix
    if variant.pod_addressing.value == "vpc" and prefix:
        return {"detectLocalMode": "InterfaceNamePrefix", "detectLocal": {"interfaceNamePrefix": prefix}}
    return None


def parse_join_command(stdout: str) -> dict[str, str]:
    """``kubeadm token create --print-join-command`` output -> endpoint, token, CA hash."""
    m = _JOIN.search(stdout or "")
    if not m:
        raise ValueError(
            "could not read the output of 'kubeadm token create --print-join-command' on the "
            "control plane (expected 'kubeadm join <endpoint> --token <token> "
            "--discovery-token-ca-cert-hash sha256:<hash>')"
        )
    return {"endpoint": m["endpoint"], "token": m["token"], "hash": m["hash"]}


def external_kubeconfig(admin_conf: str, public_ip: str) -> str:
    """admin.conf with its server pointing at the control plane's public address."""
    doc = yaml.safe_load(admin_conf)
    if not isinstance(doc, dict) or not doc.get("clusters"):
        raise ValueError("/etc/kubernetes/admin.conf on the control plane is not a kubeconfig")
    for entry in doc["clusters"]:
        entry["cluster"]["server"] = f"https://{public_ip}:{API_SERVER_PORT}"
    return yaml.safe_dump(doc, sort_keys=False)


class Cluster(pulumi.ComponentResource):
    """A kubeadm cluster on ``nodes``; contract: ``provider``, ``kubeconfig`` (secret),
    ``api_server_host``, ``api_server_port``, ``ready``, ``connection(role)``,
    ``kube_proxy_skipped``."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        nodes: NodePair,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cnibench:index:Cluster", name, None, opts)
        variant = cfg.variant_record
        minor = kubernetes_minor(cfg)
        self._nodes = nodes
        self.kube_proxy_skipped: bool = variant.replaces_kube_proxy
        self.api_server_port: int = API_SERVER_PORT
        cp = nodes.nodes[CONTROL_PLANE]
        self.api_server_host: pulumi.Output[str] = cp.private_ip

        def cmd(res: str, node: Node, create: pulumi.Input[str], deps: Sequence[pulumi.Resource],
                boot: bool = False, **kw: Any) -> remote.Command:
            timeouts = pulumi.CustomTimeouts(create=BOOT_TIMEOUT) if boot else None
            # a replaced machine runs its steps again: the control plane's public address is an
            # Elastic IP that stays the same, so the connection alone would not tell
            triggers = [node.instance.id, *kw.pop("triggers", [])]
            return remote.Command(
                f"{name}-{res}",
                connection=self._connection(node, boot=boot),
                create=create,
                triggers=triggers,
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(deps), custom_timeouts=timeouts),
                **kw,
            )

        # 1-2: every machine boots and gets the node prerequisites
        prepared: dict[int, remote.Command] = {}
        for node in nodes.machines:
            boot = cmd(f"{node.role}-boot", node, remote_script("wait-for-boot.sh"), [node.instance], boot=True)
            prepared[id(node.instance)] = cmd(
                f"{node.role}-prereqs", node,
                node.private_ip.apply(lambda ip: remote_script(
                    "node-prereqs.sh", {"KUBERNETES_MINOR": f"1.{minor}", "NODE_IP": ip})),
                [boot],
            )

        # 3: kubeadm init on the control plane
        config = pulumi.Output.all(cp.node_name, cp.private_ip, cp.public_ip).apply(
            lambda v: kubeadm_config(
                minor=minor, node_name=v[0], advertise_address=v[1], public_ip=v[2],
                pod_cidr=cfg.pod_cidr, service_cidr=cfg.service_cidr,
                node_pod_mask_size=cfg.node_pod_mask_size,
                schedulable=cp.benchmark_role is not None,
                kube_proxy=kube_proxy_settings(variant),
            )
        )
        self.kubeadm_config = config
        init_args = [SKIP_KUBE_PROXY] if self.kube_proxy_skipped else []
        self.init = cmd(
            "init", cp,
            config.apply(lambda c: remote_script("kubeadm-init.sh", {"KUBEADM_CONFIG": c}, init_args)),
            [prepared[id(cp.instance)]],
        )

        # 4: the admin kubeconfig and a join command, both secret and never logged
        secret_stdout = dict(
            logging=remote.Logging.NONE,
            add_previous_output_in_env=False,
        )
        admin_conf = remote.Command(
            f"{name}-kubeconfig",
            connection=self._connection(cp),
            create=KUBECONFIG_COMMAND,
            triggers=[cp.instance.id],  # a replaced control plane has a new admin.conf
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.init], additional_secret_outputs=["stdout"],
            ),
            **secret_stdout,
        )
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(admin_conf.stdout, cp.public_ip).apply(lambda v: external_kubeconfig(v[0], v[1]))
        )
        workers = [n for n in nodes.machines if n.instance is not cp.instance]
        join_cmd = remote.Command(
            f"{name}-join-command",
            connection=self._connection(cp),
            create=JOIN_COMMAND,
            # a fresh token whenever a worker or the control plane is replaced (the old token may
            # have expired, or belong to the old cluster)
            triggers=[cp.instance.id, *(w.instance.id for w in workers)],
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.init], additional_secret_outputs=["stdout"],
            ),
            **secret_stdout,
        )
        join = pulumi.Output.secret(join_cmd.stdout.apply(parse_join_command))

        # 5: the other machines join
        joined: dict[int, pulumi.Resource] = {id(cp.instance): self.init}
        for node in workers:
            create = pulumi.Output.all(join, node.node_name).apply(lambda v: remote_script(
                "kubeadm-join.sh",
                {"API_ENDPOINT": v[0]["endpoint"], "JOIN_TOKEN": v[0]["token"],
                 "CA_CERT_HASH": v[0]["hash"], "NODE_NAME": v[1]},
            ))
            # a replaced control plane is a new cluster: every worker joins it again
            joined[id(node.instance)] = cmd(
                f"{node.role}-join", node, pulumi.Output.secret(create),
                [prepared[id(node.instance)], join_cmd], logging=remote.Logging.STDERR,
                triggers=[cp.instance.id],
            )

        # 6: label the benchmark nodes (on the control plane, with the admin kubeconfig)
        self.ready: list[pulumi.Resource] = []
        for role in (CLIENT, SERVER):
            node = nodes.nodes[role]

            def label_script(n: str, r: str = role) -> str:
                return remote_script("label-node.sh", {"NODE_NAME": n, "NODE_LABELS": f"{ROLE_LABEL}={r}"})

            label = cmd(
                f"{role}-label", cp,
                node.node_name.apply(label_script),
                [joined[id(node.instance)]],
                triggers=[node.instance.id],  # a replaced node (same name: fixed address) is labelled again
            )
            self.ready.append(label)
        self.joined = list(joined.values())

        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.ready),
        )
        self.register_outputs({"apiServerHost": self.api_server_host})

    def _connection(self, node: Node, boot: bool = False) -> remote.ConnectionArgs:
        if node.host_key is None:
            raise ValueError(f"node {node.role} has no SSH host key: every connection verifies one")
        return remote.ConnectionArgs(
            host=node.public_ip,
            user=self._nodes.ssh_user,
            private_key=self._nodes.private_key,
            # the instance's own host key, from its console output (cnibench/hostkeys.py):
            # pulumi-command v1.2.1 provider/pkg/provider/remote/connection.go verifies it with
            # ssh.FixedHostKey (and offers only its type); without host_key it would accept any
            # server, so the kubeconfig and join token would go to whoever answers at the address
            host_key=node.host_key,
            # a fresh instance refuses SSH for a while: dial until the step's create timeout.
            # The provider retries failed dials with pulumi's retry.Until (growing delay).
            dial_error_limit=-1 if boot else 30,
            per_dial_timeout=SSH_DIAL_TIMEOUT,
        )

    def connection(self, role: str) -> remote.ConnectionArgs:
        """SSH connection to the node of ``role`` (control-plane, client, server)."""
        if role not in self._nodes.nodes:
            raise KeyError(f"no node with role {role!r}; roles: {', '.join(self._nodes.nodes)}")
        return self._connection(self._nodes.nodes[role])
