"""``cnibench run`` (cnibench/suite/cluster.py, cnibench/cli/run.py) against a recording
stand-in for kubectl (tests/kubectl-standin.sh), as the readiness gate is tested
(tests/test_cni_scripts.py): no real cluster is involved anywhere here.

The stand-in answers the preflight's queries from a scenario directory, records every call,
and runs every ``exec`` on this machine, so the real bench.sh and collect.py run the real
iperf3 (against a server on 127.0.0.1) and probe.sh. Checked: the node choice, each preflight
refusal with nothing created, the namespace deleted on success, on a failed test and on
SIGINT/SIGTERM mid-run, partial results when a step fails, the document (origin cluster) and
its place in the report, the RBAC ClusterRole and the pods pinned by node name.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from cnibench import results
from cnibench.report import comparison
from cnibench.report.sources import Source
from cnibench.suite import bundle, cluster, definition, table
from cnibench.suite import plan as suite_plan

ROOT = Path(__file__).resolve().parent.parent
STANDIN = ROOT / "tests" / "kubectl-standin.sh"
CP, CLIENT, SERVER = "cp-1", "worker-a", "worker-d"


def node(name: str, *, ready: bool = True, cordoned: bool = False, taints: list | None = None,
         control_plane: bool = False) -> dict:
    labels = {"kubernetes.io/hostname": name, **({"node-role.kubernetes.io/control-plane": ""} if control_plane else {})}
    return {"metadata": {"name": name, "labels": labels},
            "spec": {**({"unschedulable": True} if cordoned else {}), **({"taints": taints} if taints else {})},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "nodeInfo": {"kernelVersion": f"6.8.0-{name}", "architecture": "amd64"},
                       "capacity": {"cpu": "4"}}}


NODES = {"items": [
    node(CP, control_plane=True, taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
    node("worker-e", ready=False),
    node("worker-b", cordoned=True),
    node("worker-c", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
    node(SERVER),
    node(CLIENT),
]}
DAEMONSETS = {"items": [
    {"metadata": {"name": "kube-proxy"}, "spec": {"template": {"spec": {"containers": [
        {"image": "registry.k8s.io/kube-proxy:v1.33.5"}]}}}},
    {"metadata": {"name": "kube-flannel-ds"}, "spec": {"template": {"spec": {"containers": [
        {"image": "ghcr.io/flannel-io/flannel:v0.28.9"}]}}}},
]}


class Scenario:
    """A scenario directory for the stand-in, and the environment that puts it first on PATH."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "standin"
        self.dir.mkdir()
        bindir = tmp / "bin"
        bindir.mkdir()
        (bindir / "kubectl").symlink_to(STANDIN)
        kubeconfig = self.dir / "kubeconfig"  # read by the stand-in's callers' checks only: it answers itself
        kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
        self.env = {"PATH": f"{bindir}:{os.environ['PATH']}", "STANDIN": str(self.dir), "KUBECONFIG": str(kubeconfig),
                    "STANDIN_CLIENT_NODE": CLIENT, "STANDIN_SERVER_NODE": SERVER}
        self.write("nodes.json", json.dumps(NODES))
        self.write("ds.json", json.dumps(DAEMONSETS))

    def write(self, name: str, text: str = "") -> None:
        (self.dir / name).write_text(text)

    def calls(self) -> list[str]:
        path = self.dir / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def created(self) -> list[str]:
        return [c for c in self.calls() if c.split("--context kind-a ")[-1].startswith(("create", "apply", "label",
                                                                                        "annotate", "patch"))
                and "--dry-run" not in c]

    def objects(self) -> list[dict]:
        """What was created or applied, in order."""
        path = self.dir / "objects"
        text = path.read_text() if path.exists() else ""
        return [json.loads(chunk) for chunk in text.split("\n---\n") if chunk.strip()]

    def deletions(self) -> list[str]:
        return [c for c in self.calls() if "delete namespace cnibench-bench" in c]


@pytest.fixture
def scen(tmp_path, monkeypatch):
    s = Scenario(tmp_path)
    for k, v in s.env.items():
        monkeypatch.setenv(k, v)
    return s


def kubectl() -> cluster.Kubectl:
    return cluster.Kubectl(cluster.Target())


def small_plan(*, host_reference: bool = True, image: str = suite_plan.IMAGE) -> suite_plan.SuitePlan:
    """tcp and mtu on both subjects, one repetition of 1 s: the control flow, not the figures."""
    settings = replace(definition.CLOUD_DEFAULTS, duration_s=1.0, rr_duration_s=1.0, omit_s=0, repeat_min=1,
                       repeat_max=1, udp=False, service=False, latency=False, cpu=False)
    return suite_plan.plan_suite("flannel", settings=settings, mtus=(1450,), timeout=300, run="t",
                                 host_reference=host_reference, image=image)


# --------------------------------------------------------------------------- nodes


def test_the_command_picks_two_schedulable_workers_and_says_so():
    nodes = cluster.describe_nodes(NODES)
    problems = {n.name: n.problem for n in nodes}
    assert problems == {CP: None, "worker-a": None, "worker-b": "cordoned (spec.unschedulable)",
                        "worker-c": "tainted dedicated=gpu:NoSchedule", "worker-d": None, "worker-e": "not Ready"}
    client, server, how = cluster.choose_nodes(nodes, None, None)
    assert (client, server) == (CLIENT, SERVER)  # workers before the control plane, by name
    assert how.startswith("picked by cnibench")
    # one given: the other picked among the rest; the control plane's own taint is tolerated
    assert cluster.choose_nodes(nodes, None, CLIENT)[:2] == (SERVER, CLIENT)
    assert cluster.choose_nodes(nodes, CP, SERVER) == (CP, SERVER, "given (--client-node, --server-node)")


@pytest.mark.parametrize("client, server, message", [
    ("worker-b", None, "--client-node worker-b: the benchmark pods cannot run there: cordoned"),
    (None, "worker-c", "--server-node worker-c: the benchmark pods cannot run there: tainted dedicated=gpu"),
    ("nope", None, "--client-node nope: no such node; the nodes: cp-1, worker-a"),
    (CLIENT, CLIENT, "--client-node and --server-node are both worker-a"),
])
def test_a_bad_node_choice_names_the_option_the_value_and_the_choices(client, server, message):
    with pytest.raises(cluster.ClusterRefused, match="^" + message.replace("(", r"\(")):
        cluster.choose_nodes(cluster.describe_nodes(NODES), client, server)


def test_the_cni_is_detected_from_the_kube_system_daemonsets():
    found = cluster.detect_cni(DAEMONSETS)
    assert (found["name"], found["version"], found["daemonset"]) == ("flannel", "v0.28.9", "kube-flannel-ds")
    aws = cluster.detect_cni({"items": [{"metadata": {"name": "aws-node"}, "spec": {"template": {"spec": {
        "containers": [{"image": "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.19.2"}]}}}}]})
    assert (aws["name"], aws["version"]) == ("aws-vpc-cni", "v1.19.2")
    assert cluster.detect_cni({"items": []})["name"] is None


# --------------------------------------------------------------------------- preflight refusals


def test_preflight_passes_and_creates_nothing(scen):
    pre = cluster.preflight(kubectl())
    assert (pre.context, pre.client_node, pre.server_node) == ("kind-a", CLIENT, SERVER)
    assert pre.kubernetes_version == "v1.33.5" and pre.cni["name"] == "flannel"
    assert pre.kernels == {CLIENT: "6.8.0-worker-a", SERVER: "6.8.0-worker-d"}
    assert not scen.created() and not scen.deletions()
    calls = scen.calls()
    can_i = [c for c in calls if " auth can-i " in c]
    assert len(can_i) == len(cluster.PERMISSIONS)
    # the context is resolved once and named in every call after
    assert all(c.startswith("--context kind-a ") for c in calls[calls.index("config current-context") + 1:])


@pytest.mark.parametrize("setup, kwargs, message", [
    (lambda s: s.write("unreachable"), {},
     r"--context kind-a: the API server https://10\.9\.0\.1:6443 does not answer: The connection to the server"),
    (lambda s: None, {"context": "prod"}, r"--context prod: not in .*; its contexts: kind-a, kind-b"),
    (lambda s: s.write("denied", "create namespaces\ncreate pods/exec\n"), {},
     r"you may not create namespaces, create pods/exec \(namespace cnibench-bench\);.*cnibench-run-clusterrole"),
    (lambda s: s.write("nodes.json", json.dumps({"items": NODES["items"][:4]})), {},
     r"fewer than two schedulable nodes: 1 of 4 \(cp-1; worker-b: cordoned .*worker-e: not Ready\); the benchmark "
     "needs two"),
    (lambda s: s.write("namespace.json", json.dumps({"metadata": {"name": "cnibench-bench", "labels": {}}})), {},
     r"the namespace cnibench-bench exists and was not created by cnibench"),
])
def test_each_preflight_refusal_is_clear_and_nothing_is_created(scen, setup, kwargs, message):
    scen.write("contexts", "kind-a\nkind-b\n")
    setup(scen)
    with pytest.raises(cluster.ClusterRefused, match=message):
        cluster.preflight(cluster.Kubectl(cluster.Target(context=kwargs.get("context"))))
    assert not scen.created() and not scen.deletions()


def test_a_missing_kubeconfig_file_is_named(scen, tmp_path):
    with pytest.raises(cluster.ClusterRefused, match=r"^--kubeconfig .*/none: no such file$"):
        cluster.preflight(cluster.Kubectl(cluster.Target(kubeconfig=str(tmp_path / "none"))))
    assert not scen.calls()


def test_no_kubeconfig_at_all_is_named_by_where_it_was_looked_for(scen, tmp_path, monkeypatch):
    missing = f"{tmp_path / 'a'}:{tmp_path / 'b'}"
    monkeypatch.setenv("KUBECONFIG", missing)
    with pytest.raises(cluster.ClusterRefused) as err:
        cluster.preflight(kubectl())
    assert str(err.value) == (f"$KUBECONFIG ({missing}): no such file, so no cluster to benchmark: give "
                              "--kubeconfig FILE, or set KUBECONFIG")
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(cluster.ClusterRefused) as err:
        cluster.preflight(kubectl())
    assert str(err.value).startswith(f"the default kubeconfig {tmp_path}/.kube/config (no --kubeconfig, KUBECONFIG "
                                     "unset): no such file")
    assert not scen.calls()
    # one existing file of the list is enough (kubectl skips the missing ones)
    (tmp_path / "b").write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECONFIG", missing)
    assert cluster.preflight(kubectl()).context == "kind-a"


# --------------------------------------------------------------------------- probe (namespace only, removed again)


def probe(scen, plan=None, custom_image=False):
    pre = cluster.preflight(kubectl())
    kc = kubectl()
    kc.target.context = pre.context
    return cluster.checked_probe(kc, plan or small_plan(), pre, custom_image=custom_image, timeout_s=20, poll_s=0.05)


def test_the_probe_dry_runs_the_pods_and_checks_both_nodes_then_deletes_its_namespace(scen):
    notes = probe(scen)
    assert notes == [f"node {CLIENT}: cnibench-probe: mirror reachable", f"node {SERVER}: cnibench-probe: mirror reachable"]
    calls = scen.calls()
    dry = next(i for i, c in enumerate(calls) if "--dry-run=server" in c)
    created = [i for i, c in enumerate(calls) if " create -f -" in c]
    assert created[0] < dry < created[1]  # the namespace, the dry-run of the pods, then the probe pods
    assert scen.deletions() and calls.index(scen.deletions()[-1]) > created[1]
    objs = scen.objects()
    assert objs[0]["kind"] == "Namespace"
    probes = objs[1]["items"]
    assert [p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchFields"][0]["values"] for p in probes] == [[CLIENT], [SERVER]]
    assert all(p["spec"]["hostNetwork"] is True for p in probes)  # where the host reference downloads


@pytest.mark.parametrize("setup, custom, message", [
    (lambda s: s.write("dryrun-refuse", 'Error from server (Forbidden): pods "cnibench-srv-host" is forbidden: '
                                         'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)'),
     False, r"refuses the benchmark pods .*hostNetwork=true.*give --no-host-reference: then only the pod network"),
    (lambda s: (s.write("probe-phase", "Pending"), s.write("probe-waiting", "ErrImagePull")), False,
     r"node worker-a cannot pull the image docker.io/library/debian:.*give --image"),
    (lambda s: (s.write("probe-phase", "Failed"), s.write("probe-exit", "4"),
                s.write("probe-log", "cnibench-probe: apt-get update failed: Could not resolve 'deb.debian.org'")),
     False, r"node worker-a cannot reach the package mirror .*deb\.debian\.org.*without internet egress give --image"),
    (lambda s: (s.write("probe-phase", "Failed"), s.write("probe-exit", "3"),
                s.write("probe-log", "cnibench-probe: the image lacks: sockperf wrk")), True,
     r"^--image registry.example/tools:1: the image lacks: sockperf wrk \(checked on node worker-a\)"),
])
def test_each_probe_refusal_is_clear_and_the_namespace_is_deleted(scen, setup, custom, message):
    setup(scen)
    plan = small_plan(image="registry.example/tools:1") if custom else small_plan()
    with pytest.raises(cluster.ClusterRefused, match=message):
        probe(scen, plan, custom_image=custom)
    assert scen.deletions(), "the namespace was not deleted after the refusal"
    assert not [c for c in scen.calls() if " apply " in c]  # bench.sh never started


@pytest.mark.parametrize("custom, path_has_tools, code, text", [
    (True, True, 0, "tools present"),
    (True, False, cluster.PROBE_NO_TOOLS, "the image lacks: iperf3 sockperf wrk nginx"),
])
def test_the_probe_script_checks_the_tools(tmp_path, custom, path_has_tools, code, text):
    if path_has_tools and any(shutil.which(t) is None for t in cluster.TOOLS):
        pytest.skip("needs iperf3, sockperf, wrk and nginx (scripts/setup.sh installs them)")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("timeout", "tail", "apt-get"):
        if shutil.which(tool):
            (bindir / tool).symlink_to(shutil.which(tool))
    path = os.environ["PATH"] if path_has_tools else str(bindir)
    proc = subprocess.run(["/bin/sh", "-c", cluster.PROBE_SCRIPT, "probe", "custom" if custom else "default"],
                          capture_output=True, text=True, env={"PATH": path}, timeout=30)
    assert proc.returncode == code and text in proc.stdout, proc


# --------------------------------------------------------------------------- the run (the shared bench.sh)


@pytest.fixture
def iperf3_server():
    if any(shutil.which(t) is None for t in ("iperf3", "timeout")):
        pytest.skip("needs iperf3 (scripts/setup.sh installs it)")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def run_small(scen, monkeypatch, port, **plan_kw):
    monkeypatch.setenv("STANDIN_IPERF3_PORT", str(port))
    kc = kubectl()
    pre = cluster.preflight(kc)
    events: list[cluster.Progress] = []
    # the guard is off (threshold 1.0): the "nodes" are this machine, which other work keeps busy
    outcome = cluster.run_suite(kc, small_plan(**plan_kw), pre, on_progress=events.append, busy_threshold=1.0)
    return outcome, events


def test_a_run_measures_pins_the_pods_by_name_and_deletes_the_namespace(scen, monkeypatch, iperf3_server):
    outcome, events = run_small(scen, monkeypatch, iperf3_server)
    doc = outcome.doc
    results.validate(doc)
    assert not outcome.interrupted and outcome.cleanup_error is None
    assert doc["origin"] == "cluster" and doc["extra"]["status"] == "complete", doc["extra"]
    env = doc["environment"]
    assert env["extra"]["kubernetes_version"] == "v1.33.5"
    assert env["extra"]["cni"]["name"] == "flannel" and env["extra"]["cni"]["version"] == "v0.28.9"
    assert env["extra"]["nodes"]["client"]["name"] == CLIENT and env["extra"]["nodes"]["server"]["name"] == SERVER
    assert env["extra"]["cluster"]["context"] == "kind-a" and env["extra"]["cluster"]["node_kernels"] == {
        CLIENT: "6.8.0-worker-a", SERVER: "6.8.0-worker-d"}
    assert "aws_flows" not in env["extra"] and "stack" not in env["extra"]
    tcp = {(s["name"], t["name"]): t for s in doc["subjects"] for t in s["tests"]}
    assert tcp[("flannel", "tcp")]["status"] == "ok" and tcp[("flannel", "tcp")]["ratio"]["n"] == 1
    # progress: one event per step, in order, with the total
    steps = [e.step for e in events if e.step]
    assert steps == ["host/tcp", "host/mtu", "flannel/tcp", "flannel/mtu"] and events[-1].total == 4
    # bench.sh ran with the context; the pods were pinned by node name; no node was touched
    calls = scen.calls()
    bench = calls[calls.index(next(c for c in calls if " apply -f " in c)) - 3:]
    assert all(c.startswith("--context kind-a ") for c in bench)
    assert not [c for c in calls if " label " in c or " taint " in c or " cordon" in c]
    (applied,) = scen.objects()
    pods = [o for o in applied["items"] if o["kind"] == "Pod"]
    assert {p["metadata"]["name"]: p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuring"
            "Execution"]["nodeSelectorTerms"][0]["matchFields"][0]["values"][0] for p in pods} == {
        "cnibench-srv-host": SERVER, "cnibench-cli-host": CLIENT, "cnibench-srv-pod": SERVER,
        "cnibench-cli-pod": CLIENT}
    assert all("nodeSelector" not in p["spec"] for p in pods)
    # deleted by bench.sh's trap, and once more (idempotent) by cnibench
    assert len(scen.deletions()) >= 3 and all("--ignore-not-found" in c for c in scen.deletions())
    assert "context kind-a, nodes worker-a -> worker-d, CNI flannel" in table.format_table(doc)


def test_a_failed_test_gives_partial_results_and_the_namespace_is_deleted(scen, monkeypatch, iperf3_server):
    monkeypatch.setenv("STANDIN_FAIL_POD", "cnibench-cli-pod")
    outcome, _events = run_small(scen, monkeypatch, iperf3_server)
    doc = outcome.doc
    results.validate(doc)
    tests = {(s["name"], t["name"]): t for s in doc["subjects"] for t in s["tests"]}
    assert doc["extra"]["status"] == "partial"
    assert tests[("host", "tcp")]["status"] == "ok" and tests[("host", "mtu")]["status"] == "ok"
    assert tests[("flannel", "tcp")]["status"] == "error"
    assert "iperf3 printed nothing" in tests[("flannel", "tcp")]["error"] or tests[("flannel", "tcp")]["error"]
    assert scen.deletions()[-1].endswith("--timeout=300s")


def test_without_the_host_reference_there_are_no_hostnetwork_pods_and_no_ratios(scen, monkeypatch, iperf3_server):
    outcome, _events = run_small(scen, monkeypatch, iperf3_server, host_reference=False)
    doc = outcome.doc
    results.validate(doc)
    host = next(s for s in doc["subjects"] if s["name"] == "host")
    assert host["status"] == "skipped" and "--no-host-reference" in host["skipped_reason"]
    var = next(s for s in doc["subjects"] if s["name"] == "flannel")
    assert [t["status"] for t in var["tests"]] == ["ok", "ok"] and all(t["ratio"] is None for t in var["tests"])
    (applied,) = scen.objects()
    pods = [o for o in applied["items"] if o["kind"] == "Pod"]
    assert sorted(p["metadata"]["name"] for p in pods) == ["cnibench-cli-pod", "cnibench-srv-pod"]
    assert all("hostNetwork" not in p["spec"] and "volumes" not in p["spec"] for p in pods)
    assert "pod-security.kubernetes.io/enforce" not in applied["items"][0]["metadata"]["labels"]
    assert "skipped: not measured: --no-host-reference" in table.format_table(doc)


def test_the_plan_without_a_host_reference_skips_the_calibrated_tests():
    plan = suite_plan.plan_suite("x", settings=definition.CLOUD_DEFAULTS, host_reference=False)
    assert plan.subjects == ("x",) and not plan.calibrations and not plan.host_tests
    skipped = {t.name for t in plan.variant_tests if t.definition.skipped_reason}
    assert skipped == {"latency-tcp-30pct", "latency-tcp-50pct", "latency-udp-30pct", "latency-udp-50pct", "cpu-tcp"}
    assert all(s.calibration == "-" for s in plan.steps)
    # the stacks' plans keep their digest (their Pulumi trigger)
    assert suite_plan.plan_suite("x").digest() == suite_plan.plan_suite("x", host_reference=True).digest()


# --------------------------------------------------------------------------- signals, through the command


def cli(scen, tmp_path, port, *extra):
    env = {**os.environ, **scen.env, "STANDIN_IPERF3_PORT": str(port), "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "cnibench.cli", "run", "--duration", "1", "--repeat", "1",
                             "--run", "sig", "--out", str(tmp_path / "out"), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_run_deletes_the_namespace_and_keeps_what_was_measured(scen, tmp_path, iperf3_server, sig):
    scen.write("marker-on", "sockperf throughput")  # the first calibration step: it hangs until the signal
    proc = cli(scen, tmp_path, iperf3_server)
    marker = scen.dir / "marker"
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached its first step"
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    calls = scen.calls()
    first_step = next(i for i, c in enumerate(calls) if "sockperf throughput" in c)
    assert [c for c in calls[first_step:] if "delete namespace cnibench-bench" in c], "no deletion after the signal"
    doc = json.loads((tmp_path / "out" / "cluster-flannel-run-sig.json").read_text())
    results.validate(doc)
    assert doc["origin"] == "cluster" and "interrupted by a signal" in doc["extra"]["errors"]
    assert doc["extra"]["status"] in ("partial", "failed")


def test_the_command_refuses_before_creating_anything(scen, tmp_path):
    scen.write("denied", "create pods\n")
    proc = cli(scen, tmp_path, 5201)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "you may not create pods (namespace cnibench-bench)" in " ".join(err.split())
    assert not scen.created() and not scen.deletions()


# --------------------------------------------------------------------------- RBAC, manifests, report


def rbac_rules() -> set[tuple[str, str, str]]:
    doc = yaml.safe_load(Path(str(cluster.RBAC_FILE)).read_text())
    return {(group, verb, resource) for rule in doc["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def test_the_rbac_clusterrole_is_valid_and_grants_exactly_what_the_preflight_checks():
    import kubernetes_validate

    doc = yaml.safe_load(Path(str(cluster.RBAC_FILE)).read_text())
    kubernetes_validate.validate(doc, "1.33", strict=True)
    assert doc["kind"] == "ClusterRole" and doc["metadata"]["name"] == "cnibench-run"
    checked = {("", verb, resource) for verb, resource, _ns in cluster.PERMISSIONS}
    assert rbac_rules() == checked | {("apps", "list", "daemonsets")}  # the CNI's detection: optional
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("## Benchmark an existing cluster", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(shown) == doc  # the README shows the file's ClusterRole


@pytest.mark.parametrize("host_reference", [True, False])
def test_pods_pinned_by_name_are_valid_kubernetes_objects(host_reference):
    import kubernetes_validate

    plan = small_plan(host_reference=host_reference)
    files = bundle.bundle(plan, CLIENT, SERVER, pin_by_name=True, kube_context="kind-a")
    for m in json.loads(files["manifests.json"])["items"]:
        kubernetes_validate.validate(m, "1.33", strict=True)
    assert "BENCH_KUBE_CONTEXT=kind-a" in files["plan.env"]
    for role in ("client", "server"):
        kubernetes_validate.validate(cluster._probe_pod(plan, role, CLIENT, False), "1.33", strict=True)


def test_the_report_groups_cluster_documents_apart_from_cloud_and_lab_ones(scen, monkeypatch, iperf3_server):
    outcome, _events = run_small(scen, monkeypatch, iperf3_server)
    doc = outcome.doc
    second = copy.deepcopy(doc)
    second["run_id"] = "flannel-run-u"
    cloud = copy.deepcopy(doc)
    cloud.update(origin="cloud", run_id="cloud-run")
    cloud["environment"]["instance_type"] = "c6i.large"
    other = copy.deepcopy(doc)
    other["run_id"] = "elsewhere"
    other["environment"]["extra"]["cluster"]["server"] = "https://other:6443"
    srcs = [Source(d, None, f"s{i}") for i, d in enumerate((doc, second, cloud, other))]
    comp = comparison.build(srcs)
    groups = {g.id: sorted(s.id for s in g.sources) for g in comp.groups}
    assert sorted(groups.values()) == [["s0", "s1"], ["s2"], ["s3"]]
    by_origin = {g.origin: g for g in comp.groups if g.origin == "cloud"}
    assert set(by_origin) == {"cloud"}
    cluster_group = next(g for g in comp.groups if len(g.sources) == 2)
    assert cluster_group.origin == "cluster" and cluster_group.basis == "separate-runs"
    assert cluster_group.id.startswith("cluster-kind-a") and "cluster kind-a k8s v1.33.5" in cluster_group.title
    assert any("separate runs on one cluster" in w for w in cluster_group.warnings)


@pytest.mark.parametrize("tools, expected", [
    (True, "nothing to install"),  # --image with the tools: no apt-get at all
    (False, "apt-get install -y -q --no-install-recommends iperf3 sockperf wrk nginx-light"),  # net "self"
])
def test_pod_setup_installs_nothing_from_a_ready_image_and_by_itself_without_a_host_pod(tmp_path, tools, expected):
    """pod-setup.sh as a client pod without a hostNetwork pod (``self``), its paths moved into
    tmp_path (the ready file, policy-rc.d) and its final sleep cut; apt-get is a recorder."""
    script = (ROOT / "cnibench" / "suite" / "runner" / "pod-setup.sh").read_text()
    script = (script.replace("/usr/sbin/policy-rc.d", str(tmp_path / "policy-rc.d"))
              .replace("/tmp/cnibench-ready", str(tmp_path / "ready")).replace("exec sleep infinity", "exit 0")
              .replace("/tmp/apt.log", str(tmp_path / "apt.log")))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $*" >>{tmp_path / "apt-calls"}\n')
    (bindir / "apt-get").chmod(0o755)
    for tool in ("chmod", "tail", "touch", "cat"):
        (bindir / tool).symlink_to(shutil.which(tool))
    for tool in cluster.TOOLS if tools else ():
        (bindir / tool).write_text("#!/bin/sh\n")
        (bindir / tool).chmod(0o755)
    proc = subprocess.run(["/bin/sh", "-c", script, "pod-setup", "client", "self", "tok", "5201", "11111", "8080"],
                          capture_output=True, text=True, env={"PATH": str(bindir)}, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "ready").exists()
    calls = (tmp_path / "apt-calls").read_text() if (tmp_path / "apt-calls").exists() else ""
    if tools:
        assert expected in proc.stderr and not calls
    else:
        assert calls.splitlines() == ["apt-get update -q", expected]


@pytest.mark.parametrize("args, message", [
    (["--duration", "0"], "--duration: 0 must be a positive whole number"),
    (["--repeat", "101"], "--repeat: 101 is too large; valid: 1..100"),
    (["--load-levels", "30,x"], "--load-levels '30,x': expected comma-separated whole numbers"),
    (["--name", "Bad Name"], "--name 'Bad Name': lowercase letters, digits"),
    (["--mtu", "100"], "--mtu 100: an MTU in 576..65535"),
    (["--image", "a b"], "--image 'a b': an image reference"),
])
def test_bad_options_are_refused_by_name_before_kubectl_is_called(scen, tmp_path, args, message):
    from typer.testing import CliRunner

    from cnibench.cli import app

    res = CliRunner().invoke(app, ["run", "--out", str(tmp_path / "out"), *args])
    assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output
    assert not scen.calls()
