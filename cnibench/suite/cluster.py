"""``cnibench run``: the cloud suite on an existing cluster, through a kubeconfig and context.

The same runner as the Pulumi benchmark component (:mod:`cnibench.program.benchmark`): the
bundle of :mod:`cnibench.suite.bundle` (``bench.sh``, ``collect.py``, the plan, the pod
manifests) is written to a temporary directory on the operator's machine and ``bench.sh`` runs
there with the operator's ``kubectl`` (``KUBECONFIG`` and ``BENCH_KUBE_CONTEXT`` say which
cluster); its stdout goes through :func:`cnibench.suite.build.build_result` as the stack's does,
with ``origin: cluster``. The pods go to two nodes pinned by name (the user's nodes are not
labelled or changed in any way).

Before anything is created, :func:`preflight` refuses with a message that names the option,
the value and the fix: an unreachable context, missing permissions (namespaces, pods, exec,
services; :data:`RBAC_FILE` is the minimal ClusterRole), fewer than two schedulable nodes, a
namespace of that name that cnibench did not create. :func:`probe_cluster` then creates the
namespace only and checks what the API cannot answer beforehand: that admission accepts the
benchmark pods (a server-side dry-run: Pod Security and policy webhooks, which ``kubectl auth
can-i`` cannot see), and that both nodes can pull the image and reach the package mirror (or,
with ``--image``, that the image holds the tools), with one short-lived pod per node. The
namespace is deleted whatever happens (:func:`delete_namespace`, also after ``bench.sh``'s own
EXIT trap: idempotent).

No Rich and no Typer here (import contracts): progress reaches the caller as
:class:`Progress` events.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from cnibench.errors import CnibenchError, ExitCode, InputError
from cnibench.suite import build, bundle, definition
from cnibench.suite.manifests import pin_to_node
from cnibench.suite.plan import NAMESPACE, PACKAGES, SuitePlan

RBAC_FILE = files("cnibench") / "data" / "cnibench-run-clusterrole.yaml"
RBAC_HINT = ("the minimal permissions are the ClusterRole in cnibench/data/cnibench-run-clusterrole.yaml "
             "(README, 'Benchmark an existing cluster'): a cluster admin applies it and binds it to you")
CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane"  # the one taint the benchmark pods tolerate
REQUEST_TIMEOUT = "20s"  # kubectl --request-timeout of every preflight call
PROBE_TIMEOUT_S = 300  # image pull + `apt-get update` on both nodes
TOOLS = ("iperf3", "sockperf", "wrk", "nginx")  # the commands of PACKAGES
LOCAL_TOOLS = ("kubectl", "bash", "timeout", "python3")  # what bench.sh needs on the operator's machine
PROBE_PODS = {"client": "cnibench-probe-client", "server": "cnibench-probe-server"}
# the probe pod's exit codes
PROBE_NO_TOOLS, PROBE_NO_MIRROR = 3, 4

# The CNI, from the kube-system DaemonSets' names and images (the first match wins; aws-node is
# the Amazon VPC CNI's DaemonSet, kube-router's DaemonSet is kube-router).
CNI_PATTERNS: tuple[tuple[str, str], ...] = (
    ("cilium", r"cilium"), ("calico", r"calico"), ("flannel", r"flannel"), ("kube-router", r"kube-router"),
    ("aws-vpc-cni", r"aws-node|amazon-k8s-cni"), ("weave", r"weave"), ("antrea", r"antrea"),
    ("kube-ovn", r"kube-ovn"), ("canal", r"canal"), ("azure-cni", r"azure-cni|azure-vnet"),
    ("gke-dataplane", r"netd|anetd"),
)

# the probe pod: the tools of the image (--image), else the mirror the pods install from
PROBE_SCRIPT = f"""set -u
missing=""
for tool in {" ".join(TOOLS)}; do command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"; done
if [ -z "$missing" ]; then echo "cnibench-probe: tools present"; exit 0; fi
if [ "$1" = custom ]; then echo "cnibench-probe: the image lacks:$missing"; exit {PROBE_NO_TOOLS}; fi
if ! timeout 120 apt-get update -q >/tmp/apt.log 2>&1; then
    echo "cnibench-probe: apt-get update failed:"; tail -n 8 /tmp/apt.log; exit {PROBE_NO_MIRROR}
fi
echo "cnibench-probe: mirror reachable"
"""


class ClusterRefused(CnibenchError):
    """A preflight check refused the run; nothing (or only the probe namespace, removed again) was created."""

    exit_code = ExitCode.REFUSED


@dataclass
class Target:
    """Which cluster: the kubeconfig file (None: ``$KUBECONFIG``, else ``~/.kube/config``) and the context."""

    kubeconfig: str | None = None
    context: str | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.kubeconfig:
            env["KUBECONFIG"] = self.kubeconfig
        return env

    def kubeconfig_label(self) -> str:
        return self.kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")

    def kubeconfig_source(self) -> tuple[str, list[str]]:
        """Where the kubeconfig comes from, as the user would name it, and its files. KUBECONFIG is
        a list of files, merged by kubectl, which skips the ones that do not exist
        (kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/, "The
        KUBECONFIG environment variable")."""
        if self.kubeconfig:
            return f"--kubeconfig {self.kubeconfig}", [self.kubeconfig]
        env = os.environ.get("KUBECONFIG")
        if env:
            return f"$KUBECONFIG ({env})", [p for p in env.split(os.pathsep) if p]
        default = str(Path.home() / ".kube" / "config")
        return f"the default kubeconfig {default} (no --kubeconfig, KUBECONFIG unset)", [default]


class Kubectl:
    """``kubectl`` against one target. Every call is ``kubectl [--context C] ARGS``."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.env = target.env()

    def argv(self, *args: str) -> list[str]:
        return ["kubectl", *(["--context", self.target.context] if self.target.context else []), *args]

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(self.argv(*args), input=stdin, capture_output=True, text=True, env=self.env,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(self.argv(*args), 124, "", f"kubectl did not answer in {timeout:g}s")


def _tail(text: str, n: int = 400) -> str:
    return " ".join((text or "").strip().split())[-n:] or "no output"


# --------------------------------------------------------------------------- nodes


@dataclass(frozen=True)
class Node:
    name: str
    problem: str | None  # why the benchmark pods cannot go there (None: schedulable)
    control_plane: bool
    kernel: str | None


def describe_nodes(nodes_json: Mapping[str, Any]) -> list[Node]:
    """Every node and whether the benchmark pods can be scheduled there: Ready, not cordoned
    (``spec.unschedulable``), and no NoSchedule/NoExecute taint but the control plane's (which
    the pods tolerate, as on the stack's own nodes)."""
    out = []
    for item in nodes_json.get("items") or []:
        meta, spec, status = item.get("metadata") or {}, item.get("spec") or {}, item.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        taints = [t for t in spec.get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")
                  and t.get("key") != CONTROL_PLANE_TAINT]
        problem = None
        if not ready:
            problem = "not Ready"
        elif spec.get("unschedulable"):
            problem = "cordoned (spec.unschedulable)"
        elif taints:
            problem = "tainted " + ", ".join(f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:"
                                             f"{t.get('effect')}" for t in taints)
        labels = meta.get("labels") or {}
        out.append(Node(name=str(meta.get("name")), problem=problem,
                        control_plane=CONTROL_PLANE_TAINT in labels or "node-role.kubernetes.io/master" in labels,
                        kernel=(status.get("nodeInfo") or {}).get("kernelVersion")))
    return sorted(out, key=lambda n: n.name)


def choose_nodes(nodes: Sequence[Node], client: str | None, server: str | None) -> tuple[str, str, str]:
    """(client, server, how they were found). A node given by name must exist and be
    schedulable; the others are the first schedulable nodes by name, workers before the
    control plane."""
    by_name = {n.name: n for n in nodes}
    for flag, name in (("--client-node", client), ("--server-node", server)):
        if name is None:
            continue
        if name not in by_name:
            raise ClusterRefused(f"{flag} {name}: no such node; the nodes: {', '.join(by_name) or 'none'}")
        if by_name[name].problem:
            raise ClusterRefused(f"{flag} {name}: the benchmark pods cannot run there: {by_name[name].problem}; "
                                 f"pick a schedulable node ({_usable_list(nodes)})")
    if client and client == server:
        raise ClusterRefused(f"--client-node and --server-node are both {client}: the benchmark measures between "
                             "two nodes; give two different nodes")
    usable = sorted((n for n in nodes if not n.problem), key=lambda n: (n.control_plane, n.name))
    if len(usable) < 2:
        others = "; ".join(f"{n.name}: {n.problem}" for n in nodes if n.problem) or "no other node"
        raise ClusterRefused(f"fewer than two schedulable nodes: {len(usable)} of {len(nodes)} "
                             f"({', '.join(n.name for n in usable) or 'none'}; {others}); the benchmark needs two")
    picked = [n.name for n in usable if n.name not in (client, server)]
    how = "given (--client-node, --server-node)" if client and server else (
        "picked by cnibench: the first schedulable nodes by name, workers first"
        + ("; " + ", ".join(f for f, v in (("--client-node", client), ("--server-node", server)) if v) + " given"
           if client or server else ""))
    client = client or picked.pop(0)
    server = server or next(n for n in picked if n != client)
    return client, server, how


def _usable_list(nodes: Sequence[Node]) -> str:
    return ", ".join(n.name for n in nodes if not n.problem) or "none is"


# --------------------------------------------------------------------------- CNI


def detect_cni(daemonsets_json: Mapping[str, Any]) -> dict[str, Any]:
    """The CNI from the kube-system DaemonSets: its name, the image's tag as its version, and
    every DaemonSet's images (the evidence)."""
    images: dict[str, list[str]] = {}
    for item in daemonsets_json.get("items") or []:
        name = str((item.get("metadata") or {}).get("name"))
        containers = ((((item.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [])
        images[name] = [str(c.get("image")) for c in containers]
    for cni, pattern in CNI_PATTERNS:
        for ds, imgs in images.items():
            hit = next((i for i in imgs if re.search(pattern, i)), None)
            if hit or re.search(pattern, ds):
                image = hit or (imgs[0] if imgs else "")
                tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
                return {"name": cni, "version": tag.split("@")[0], "daemonset": ds, "daemonset_images": images,
                        "source": "kube-system DaemonSets (name and images)"}
    return {"name": None, "version": "", "daemonset": None, "daemonset_images": images,
            "source": "kube-system DaemonSets: none is a known CNI"}


# --------------------------------------------------------------------------- preflight


@dataclass
class Preflight:
    context: str
    server_url: str
    kubernetes_version: str | None
    client_node: str
    server_node: str
    node_choice: str
    kernels: dict[str, str | None]
    cni: dict[str, Any]
    notes: list[str] = field(default_factory=list)


# (verb, resource, namespaced): what the runner does (bench.sh: apply, wait, get, exec, logs,
# delete namespace). `kubectl exec` is authorized as `create` on pods/exec over SPDY and as
# `get` over WebSockets, kubectl's default since v1.30 (kubernetes/kubernetes#133515; the
# AuthorizePodWebsocketUpgradeCreatePermission gate, KEP-4006, adds a `create` check): both.
PERMISSIONS: tuple[tuple[str, str, bool], ...] = (
    ("create", "namespaces", False), ("delete", "namespaces", False), ("get", "namespaces", False),
    ("list", "nodes", False),
    ("create", "pods", True), ("get", "pods", True), ("list", "pods", True), ("watch", "pods", True),
    ("create", "pods/exec", True), ("get", "pods/exec", True), ("get", "pods/log", True),
    ("create", "services", True), ("get", "services", True),
)
# optional (the CNI's name): `list daemonsets.apps` in kube-system, not refused when missing


def check_local_tools() -> None:
    missing = [t for t in LOCAL_TOOLS if shutil.which(t) is None]
    if missing:
        raise ClusterRefused(f"{', '.join(missing)} not found on PATH: cnibench run drives the cluster with kubectl "
                             "and runs the suite's runner (bash, GNU coreutils' timeout, python3) on this machine")


def preflight(kc: Kubectl, *, client_node: str | None = None, server_node: str | None = None) -> Preflight:
    """Every check that creates nothing (see the module's docstring). Raises :class:`ClusterRefused`."""
    check_local_tools()
    target = kc.target
    if target.kubeconfig and not Path(target.kubeconfig).is_file():
        raise ClusterRefused(f"--kubeconfig {target.kubeconfig}: no such file")
    source, files = target.kubeconfig_source()
    if not any(Path(f).is_file() for f in files):
        raise ClusterRefused(f"{source}: no such file, so no cluster to benchmark: give --kubeconfig FILE, or set "
                             "KUBECONFIG")
    contexts = kc.run("config", "get-contexts", "-o", "name")
    names = contexts.stdout.split()
    if target.context is not None and target.context not in names:
        raise ClusterRefused(f"--context {target.context}: not in {target.kubeconfig_label()}; its contexts: "
                             f"{', '.join(names) or 'none'}")
    context = target.context
    if context is None:
        current = kc.run("config", "current-context")
        context = current.stdout.strip()
        if current.returncode != 0 or not context:
            raise ClusterRefused(f"{target.kubeconfig_label()} has no current context: give --context "
                                 f"(one of: {', '.join(names) or 'none'}) or --kubeconfig")
    target.context = context  # every later call, and bench.sh's, names it: a switch of the current context elsewhere
    server_url = kc.run("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout.strip()

    version = kc.run("version", "-o", "json", f"--request-timeout={REQUEST_TIMEOUT}")
    try:
        k8s = (json.loads(version.stdout or "{}").get("serverVersion") or {}).get("gitVersion")
    except ValueError:
        k8s = None
    if version.returncode != 0 or not k8s:
        raise ClusterRefused(f"--context {context}: the API server {server_url or '(no server in the kubeconfig)'} "
                             f"does not answer: {_tail(version.stderr)}; check the context (kubectl --context "
                             f"{context} get nodes) or give another with --context / --kubeconfig")

    # `kubectl auth can-i VERB RESOURCE [-n NS]` prints yes or no (a SelfSubjectAccessReview, which
    # the system:basic-user ClusterRole grants every authenticated user: kubernetes.io/docs/
    # reference/access-authn-authz/rbac/, "API discovery roles")
    missing = []
    for verb, resource, namespaced in PERMISSIONS:
        args = ["auth", "can-i", verb, resource, *(["-n", NAMESPACE] if namespaced else []),
                f"--request-timeout={REQUEST_TIMEOUT}"]
        if kc.run(*args).stdout.strip() != "yes":
            missing.append(f"{verb} {resource}" + (f" (namespace {NAMESPACE})" if namespaced else ""))
    if missing:
        raise ClusterRefused(f"--context {context}: you may not {', '.join(missing)}; cnibench run creates the "
                             f"namespace {NAMESPACE} with its pods and service, execs the tools in them and deletes "
                             f"it; {RBAC_HINT}")

    nodes_out = kc.run("get", "nodes", "-o", "json", f"--request-timeout={REQUEST_TIMEOUT}")
    try:
        nodes = describe_nodes(json.loads(nodes_out.stdout))
    except ValueError:
        raise ClusterRefused(f"--context {context}: listing the nodes failed: {_tail(nodes_out.stderr)}") from None
    client, server, how = choose_nodes(nodes, client_node, server_node)

    existing = kc.run("get", "namespace", NAMESPACE, "-o", "json", "--ignore-not-found",
                      f"--request-timeout={REQUEST_TIMEOUT}")
    if existing.stdout.strip():
        labels = (json.loads(existing.stdout).get("metadata") or {}).get("labels") or {}
        if labels.get("app.kubernetes.io/managed-by") != "cnibench":
            raise ClusterRefused(f"the namespace {NAMESPACE} exists and was not created by cnibench (no label "
                                 "app.kubernetes.io/managed-by=cnibench): cnibench run deletes its namespace at the "
                                 "end, so it refuses to use this one; remove or rename it")

    ds = kc.run("-n", "kube-system", "get", "daemonsets", "-o", "json", f"--request-timeout={REQUEST_TIMEOUT}")
    try:
        cni = detect_cni(json.loads(ds.stdout or "{}"))
    except ValueError:
        cni = detect_cni({})
    notes = [] if ds.returncode == 0 else [f"the CNI is not known: listing kube-system DaemonSets failed "
                                           f"({_tail(ds.stderr, 200)})"]
    kernels = {n.name: n.kernel for n in nodes if n.name in (client, server)}
    return Preflight(context=context, server_url=server_url, kubernetes_version=k8s, client_node=client,
                     server_node=server, node_choice=how, kernels=kernels, cni=cni, notes=notes)


# --------------------------------------------------------------------------- probe (creates the namespace only)


def _probe_pod(plan: SuitePlan, role: str, node: str, custom_image: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "affinity": pin_to_node(node),
        "tolerations": [{"key": CONTROL_PLANE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "probe", "image": plan.image,
                        "command": ["/bin/sh", "-c", PROBE_SCRIPT, "probe", "custom" if custom_image else "default"]}],
    }
    if plan.host_reference:  # the hostNetwork pods are the ones that download (pod-setup.sh)
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = "Default"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": PROBE_PODS[role], "namespace": NAMESPACE,
                         "labels": {"app.kubernetes.io/managed-by": "cnibench"}},
            "spec": spec}


def _as_list(items: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)})


HOST_REFERENCE_HINT = ("the host-network reference needs hostNetwork pods and a hostPath volume (the privileged Pod "
                       "Security level); ask for that in namespace {ns}, or give --no-host-reference: then only the "
                       "pod network is measured, with no ratio to the host network, and the latency-under-load "
                       "and CPU tests (offered at a fraction of the host's maximum) are skipped")


def probe_cluster(kc: Kubectl, plan: SuitePlan, pre: Preflight, *, custom_image: bool,
                  timeout_s: float = PROBE_TIMEOUT_S, poll_s: float = 2.0) -> list[str]:
    """Create the namespace, dry-run the benchmark's pods through admission, and run one probe
    pod per node. Returns notes; raises :class:`ClusterRefused`. The caller deletes the namespace."""
    manifests = json.loads(bundle.bundle(plan, pre.client_node, pre.server_node, pin_by_name=True)["manifests.json"])
    ns, objects = manifests["items"][0], manifests["items"][1:]
    created = kc.run("create", "-f", "-", f"--request-timeout={REQUEST_TIMEOUT}", stdin=json.dumps(ns))
    if created.returncode != 0:
        raise ClusterRefused(f"creating the namespace {NAMESPACE} was refused: {_tail(created.stderr)}")
    # `--dry-run=server`: "submit server-side request without persisting the resource" (kubectl
    # reference, kubectl create): authorization and every admission plugin and webhook run. Pod
    # Security's baseline level forbids hostNetwork and hostPath volumes (kubernetes.io/docs/
    # concepts/security/pod-security-standards/, Baseline: "Host Namespaces", "HostPath Volumes"),
    # which `kubectl auth can-i` cannot see.
    dry = kc.run("create", "--dry-run=server", "-f", "-", f"--request-timeout={REQUEST_TIMEOUT}",
                 stdin=_as_list(objects))
    if dry.returncode != 0:
        why = _tail(dry.stderr)
        hint = (HOST_REFERENCE_HINT.format(ns=NAMESPACE) if plan.host_reference
                and re.search(r"hostNetwork|hostPath|host namespaces|PodSecurity|privileged", why, re.I)
                else "see the message; " + RBAC_HINT)
        raise ClusterRefused(f"the cluster refuses the benchmark pods (server-side dry-run): {why}; {hint}")
    probes = [_probe_pod(plan, role, node, custom_image)
              for role, node in (("client", pre.client_node), ("server", pre.server_node))]
    started = kc.run("create", "-f", "-", f"--request-timeout={REQUEST_TIMEOUT}", stdin=_as_list(probes))
    if started.returncode != 0:
        raise ClusterRefused(f"creating the probe pods was refused: {_tail(started.stderr)}")
    pending = {p["metadata"]["name"]: p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnored"
                                                                            "DuringExecution"]["nodeSelectorTerms"][0]
               ["matchFields"][0]["values"][0] for p in probes}
    deadline = time.monotonic() + timeout_s
    notes: list[str] = []
    while pending:
        for pod, node in list(pending.items()):
            got = kc.run("get", "pod", pod, "-o", "json", f"--request-timeout={REQUEST_TIMEOUT}")
            try:
                status = json.loads(got.stdout).get("status") or {}
            except ValueError:
                continue
            phase = status.get("phase")
            waiting = [((c.get("state") or {}).get("waiting") or {}) for c in status.get("containerStatuses") or []]
            pull = next((w for w in waiting if w.get("reason") in ("ErrImagePull", "ImagePullBackOff",
                                                                    "InvalidImageName")), None)
            if pull:
                raise ClusterRefused(f"node {node} cannot pull the image {plan.image} ({pull.get('reason')}: "
                                     f"{_tail(str(pull.get('message')), 300)}); give --image with an image from a "
                                     "registry the nodes reach that holds iperf3, sockperf, wrk and nginx")
            if phase == "Succeeded":
                notes.append(f"node {node}: " + _tail(kc.run("logs", pod).stdout, 200))
                del pending[pod]
            elif phase == "Failed":
                code = next((((c.get("state") or {}).get("terminated") or {}).get("exitCode")
                             for c in status.get("containerStatuses") or []), None)
                log = _tail(kc.run("logs", pod).stdout, 400)
                if code == PROBE_NO_TOOLS:
                    raise ClusterRefused(f"--image {plan.image}: {log.removeprefix('cnibench-probe: ')} (checked on "
                                         f"node {node}); the image must hold {', '.join(TOOLS)} (Debian packages "
                                         f"{', '.join(PACKAGES)})")
                if code == PROBE_NO_MIRROR:
                    raise ClusterRefused(f"node {node} cannot reach the package mirror the pods install their tools "
                                         f"from (Debian bookworm's deb.debian.org): {log}; for a cluster without "
                                         "internet egress give --image with an image that already holds iperf3, "
                                         "sockperf, wrk and nginx")
                raise ClusterRefused(f"the probe pod on node {node} failed (exit {code}): {log}")
        if pending and time.monotonic() > deadline:
            raise ClusterRefused(f"the probe pods did not finish in {timeout_s:g}s on "
                                 f"{', '.join(pending.values())} (image pull and package mirror check): "
                                 "kubectl -n cnibench-bench describe pod shows why while it runs")
        if pending:
            time.sleep(poll_s)
    return notes


def checked_probe(kc: Kubectl, plan: SuitePlan, pre: Preflight, *, custom_image: bool,
                  timeout_s: float = PROBE_TIMEOUT_S, poll_s: float = 2.0) -> list[str]:
    """:func:`probe_cluster`, and the namespace deleted again whatever happens."""
    try:
        return probe_cluster(kc, plan, pre, custom_image=custom_image, timeout_s=timeout_s, poll_s=poll_s)
    finally:
        delete_namespace(kc)


def delete_namespace(kc: Kubectl, wait: bool = True) -> subprocess.CompletedProcess:
    """Idempotent: ``--ignore-not-found``."""
    return kc.run("delete", "namespace", NAMESPACE, "--ignore-not-found", f"--wait={'true' if wait else 'false'}",
                  "--timeout=300s", timeout=360)


# --------------------------------------------------------------------------- the run


@dataclass
class Progress:
    """One line of the runner's progress: ``done`` of ``total`` steps started (or skipped)."""

    done: int
    total: int
    text: str
    step: str | None = None


STEP_LINE = re.compile(r"cnibench-bench: (run|skip) (\S+) \(rep (\d+)\)")


def total_steps(plan: SuitePlan) -> int:
    return len(plan.calibrations) + plan.repeat * len(plan.steps)


@dataclass
class RunOutcome:
    doc: dict[str, Any]
    interrupted: bool
    stderr_tail: str
    cleanup_error: str | None = None


def run_context(plan: SuitePlan, pre: Preflight, target: Target,
                busy_threshold: float = definition.BUSY_THRESHOLD) -> build.RunContext:
    cni = pre.cni
    return build.RunContext(
        busy_threshold=busy_threshold,
        stack="", variant=plan.variant, cni=cni.get("name") or "", cni_version=cni.get("version") or "",
        client_node=pre.client_node, server_node=pre.server_node, origin="cluster",
        cluster={"context": pre.context, "server": pre.server_url, "kubeconfig": target.kubeconfig_label(),
                 "kubernetes_version": pre.kubernetes_version, "node_choice": pre.node_choice,
                 "node_kernels": pre.kernels, "cni_detection": {k: v for k, v in cni.items()
                                                                if k != "daemonset_images"},
                 "notes": pre.notes})


def run_suite(kc: Kubectl, plan: SuitePlan, pre: Preflight, *,
              on_progress: Callable[[Progress], None] | None = None,
              busy_threshold: float = definition.BUSY_THRESHOLD) -> RunOutcome:
    """Run bench.sh on this machine against the target and build the document. On
    KeyboardInterrupt (the CLI turns SIGTERM into one too): bench.sh gets SIGTERM (its trap
    deletes the namespace and prints what it measured), and the namespace is deleted here again
    in any case (idempotent)."""
    total = total_steps(plan)
    files_ = bundle.bundle(plan, pre.client_node, pre.server_node, pin_by_name=True, kube_context=pre.context)
    work = Path(tempfile.mkdtemp(prefix="cnibench-run-"))
    interrupted = False
    err_lines: list[str] = []
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    out_chunks: list[str] = []
    cleanup_error = None
    done = 0

    def drain() -> None:
        nonlocal done
        while True:
            try:
                line = lines.get_nowait()
            except queue.Empty:
                return
            err_lines.append(line)
            m = STEP_LINE.search(line)
            done += 1 if m else 0
            if on_progress:
                on_progress(Progress(done, total, line.split("cnibench-bench: ", 1)[-1], m.group(2) if m else None))

    try:
        for name, content in files_.items():
            (work / name).write_text(content)
        env = {**kc.env, "BENCH_KUBE_CONTEXT": pre.context}
        # its own session: a Ctrl-C reaches this process only, which stops bench.sh in order
        proc = subprocess.Popen(["bash", str(work / "bench.sh"), str(work)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
        out, err = proc.stdout, proc.stderr
        assert out is not None and err is not None
        def read_err() -> None:
            for ln in err:
                lines.put(ln.rstrip("\n"))

        readers = [threading.Thread(target=lambda: out_chunks.append(out.read()), daemon=True),
                   threading.Thread(target=read_err, daemon=True)]
        for r in readers:
            r.start()
        try:
            while proc.poll() is None:
                drain()
                try:
                    proc.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if proc.poll() is None:
                _stop(proc)
            for r in readers:
                r.join(timeout=30)
            drain()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        gone = delete_namespace(kc)
        if gone.returncode != 0:
            cleanup_error = (f"the namespace {NAMESPACE} may still exist: {_tail(gone.stderr)}; delete it with "
                             f"kubectl --context {pre.context} delete namespace {NAMESPACE}")
    doc = build.build_result("".join(out_chunks), plan, run_context(plan, pre, kc.target, busy_threshold))
    if cleanup_error:
        doc.setdefault("extra", {}).setdefault("errors", []).append(cleanup_error)
    return RunOutcome(doc=doc, interrupted=interrupted, stderr_tail="\n".join(err_lines[-20:]),
                      cleanup_error=cleanup_error)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to bench.sh and its children (a running step's kubectl and timeout): bash runs
    its trap once the foreground child is gone. Then up to 6 minutes for the clean-up
    (``delete namespace --timeout=300s``) before SIGKILL. A second Ctrl-C meanwhile is ignored."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 360
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:
            continue
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def check_image(image: str) -> None:
    if not image or any(c.isspace() for c in image):
        raise InputError(f"--image {image!r}: an image reference such as registry.example.com/cnibench-tools:1 "
                         "(no spaces)")


__all__ = ["ClusterRefused", "Kubectl", "Node", "Preflight", "Progress", "RBAC_FILE", "RunOutcome",
           "Target", "check_image", "checked_probe", "choose_nodes", "delete_namespace", "describe_nodes", "detect_cni", "preflight",
           "probe_cluster", "run_suite", "total_steps"]
