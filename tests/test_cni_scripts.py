"""The readiness gate's script, run by bash against a recorded stand-in for kubectl.

The stand-in replays what a real kubectl prints for the calls the script makes (and records
the calls), so the script's own logic is exercised: which calls, in which order, and the
failure message that names the variant and the pods that are not ready. For the connectivity
check it answers ``kubectl exec`` with what busybox's wget, nslookup and nc print in the client
pod; ``FAIL`` names the checks whose answer is a failure, ``FLAKY`` those that fail only once.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from cnibench.program.cni.base import SCRIPTS
from cnibench.program.cni.ipvlan import MASTER_TOKEN, conflist

GATE = SCRIPTS / "cni-ready.sh"

# what `kubectl get pods -A -o jsonpath=...` prints with the script's template:
# namespace/name, phase, node, container readiness
PODS = "\n".join([
    "kube-flannel/kube-flannel-ds-abcde\tRunning\tip-10-20-0-20\ttrue",
    "kube-flannel/kube-flannel-ds-fghij\tRunning\tip-10-20-0-30\tfalse",
    "kube-system/coredns-1\tPending\t\t",
    "kube-system/job-done\tSucceeded\tip-10-20-0-20\tfalse",
    "kube-system/etcd-cp\tRunning\tip-10-20-0-10\ttrue true",
])

# what the API server holds for the check's pods and Service
POD_IP, NODE_IP, SERVICE_IP = "10.244.1.5", "10.20.0.30", "10.96.7.8"
SERVICE_NAME = "server.cnibench-check.svc.cluster.local"

KUBECTL = r"""#!/usr/bin/env bash
echo "$*" >> "$KUBECTL_LOG"
# failing CHECK: true when CHECK is in FAIL, or in FLAKY and not yet failed once
failing() {
    case " ${FAIL:-} " in *" $1 "*) return 0 ;; esac
    case " ${FLAKY:-} " in *" $1 "*) [ -e "$KUBECTL_LOG.$1" ] || { : > "$KUBECTL_LOG.$1"; return 0; } ;; esac
    return 1
}
case "$*" in
    *"rollout status"*) exit "${ROLLOUT_RC:-0}" ;;
    "-n kube-system wait --for=condition=Available deployment/coredns --timeout="*)
        failing coredns && { echo "error: timed out waiting for the condition on deployments/coredns" >&2; exit 1; } ;;
    "-n cnibench-check wait --for=condition=Ready pod/server pod/client --timeout="*)
        [ -z "${PODS_SLEEP:-}" ] || { echo $$ > "$KUBECTL_LOG.pid"; exec sleep "$PODS_SLEEP"; }
        failing pods && { echo "error: timed out waiting for the condition on pods/server"; exit 1; }
        echo "pod/server condition met"; echo "pod/client condition met" ;;
    *"wait --for=condition=Ready"*) exit "${WAIT_RC:-0}" ;;
    "get node "*) exit "${NODE_RC:-0}" ;;
    "apply -f -") cat > "$MANIFEST"; echo "pod/server created" ;;
    "-n cnibench-check get pod server -o jsonpath={.status.podIP}") printf %s "$POD_IP" ;;
    "-n cnibench-check get pod server -o jsonpath={.status.hostIP}") printf %s "$NODE_IP" ;;
    "-n cnibench-check get service server -o jsonpath={.spec.clusterIP}") printf %s "$SERVICE_IP" ;;
    "-n cnibench-check exec client -- wget -q -T 5 -O - http://$POD_IP:8080/")
        failing pod-to-pod && { echo "wget: can't connect to remote host ($POD_IP): No route to host" >&2; exit 1; }
        echo cnibench-check-ok ;;
    "-n cnibench-check exec client -- wget -q -T 5 -O - http://$SERVICE_IP:8080/")
        failing pod-to-service && { echo "wget: download timed out" >&2; exit 1; }
        echo cnibench-check-ok ;;
    "-n cnibench-check exec client -- nslookup -type=a $SERVICE_NAME")
        printf 'Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\n'
        failing dns && { echo "** server can't find $SERVICE_NAME: NXDOMAIN"; exit 1; }
        printf 'Name:\t%s\nAddress: %s\n\n' "$SERVICE_NAME" "${DNS_ANSWER:-$SERVICE_IP}" ;;
    "-n cnibench-check exec client -- nc -z -v -v -n -w 5 $NODE_IP 10250")
        failing pod-to-node && { printf 'nc: %s (%s:10250): Connection timed out\nsent 0, rcvd 0\n' "$NODE_IP" "$NODE_IP" >&2; exit 1; }
        printf '%s (%s:10250) open\nsent 0, rcvd 0\n' "$NODE_IP" "$NODE_IP" >&2 ;;
    "-n cnibench-check exec client -- wget -q -T 5 -O - http://169.254.169.254/latest/meta-data/")
        # METADATA: v2 (IMDSv2 required: 401 without a token), v1 (IMDSv1 answers), blocked
        # (the node drops pod packets to it), broken (kubectl itself fails)
        case ${METADATA:-v2} in
            v1) printf 'ami-id\nami-launch-index\nhostname\niam/\ninstance-id\n' ;;
            blocked) echo "wget: download timed out" >&2; exit 1 ;;
            broken) echo "error: unable to upgrade connection: container not found (\"client\")" >&2; exit 1 ;;
            *) echo "wget: server returned error: HTTP/1.1 401 Unauthorized" >&2; exit 1 ;;
        esac ;;
    *" exec "*) echo "stand-in kubectl: unexpected exec: $*" >&2; exit 99 ;;
    *"get pods"*) printf '%s\n' "$PODS" ;;
    *"get nodes -o wide"*) echo "NAME STATUS"; echo "ip-10-20-0-30 NotReady" ;;
    "-n cnibench-check get events"*) echo "Warning FailedCreatePodSandBox pod/server" ;;
    *"get events"*) echo "Warning BackOff pod/kube-flannel-ds-fghij" ;;
esac
exit 0
"""


@pytest.fixture
def gate_env(tmp_path: Path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    kubectl = bindir / "kubectl"
    kubectl.write_text(KUBECTL)
    kubectl.chmod(0o755)
    log = tmp_path / "kubectl.log"
    env = {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "KUBECTL_LOG": str(log),
        "PODS": PODS,
        "CNIBENCH_VARIANT": "flannel-vxlan",
        "CNI_NAMESPACE": "kube-flannel",
        "CNI_WORKLOADS": "daemonset/kube-flannel-ds",
        "CNI_NODES": "ip-10-20-0-20 ip-10-20-0-30",
        "CNI_TIMEOUT": "60",
        "MANIFEST": str(tmp_path / "manifest.yaml"),
        "POD_IP": POD_IP,
        "NODE_IP": NODE_IP,
        "SERVICE_IP": SERVICE_IP,
        "SERVICE_NAME": SERVICE_NAME,
    }

    def run(**overrides: str) -> tuple[subprocess.CompletedProcess, list[str]]:
        result = subprocess.run(
            ["bash", str(GATE)], env={**env, **overrides}, capture_output=True, text=True, timeout=60
        )
        calls = log.read_text().splitlines() if log.exists() else []
        return result, calls

    run.env, run.log, run.manifest = env, log, tmp_path / "manifest.yaml"  # type: ignore[attr-defined]
    return run


def test_gate_passes_when_rolled_out_and_ready(gate_env):
    result, calls = gate_env()
    assert result.returncode == 0, result.stderr
    assert "flannel-vxlan ready" in result.stdout
    rollout = [c for c in calls if "rollout status" in c]
    assert rollout and rollout[0].startswith("-n kube-flannel rollout status daemonset/kube-flannel-ds --timeout=")
    waits = [c for c in calls if c.startswith("wait --for=condition=Ready")]
    assert [w.split()[2] for w in waits] == ["node/ip-10-20-0-20", "node/ip-10-20-0-30"]
    assert calls.index(rollout[0]) < calls.index(waits[0])


def test_gate_timeout_names_the_variant_and_the_pods_not_ready(gate_env):
    result, _ = gate_env(ROLLOUT_RC="1")
    assert result.returncode == 1
    err = result.stderr
    assert "CNI variant flannel-vxlan is not ready after 60s" in err
    assert "kube-flannel/daemonset/kube-flannel-ds is not rolled out" in err
    assert "kube-flannel/kube-flannel-ds-fghij phase=Running node=ip-10-20-0-30 ready=false" in err
    assert "kube-system/coredns-1 phase=Pending node=<none> ready=<none>" in err
    assert "kube-flannel-ds-abcde" not in err  # ready
    assert "job-done" not in err and "etcd-cp" not in err  # finished / ready
    assert "ip-10-20-0-30 NotReady" in err


def test_gate_fails_on_a_node_that_stays_not_ready(gate_env):
    result, calls = gate_env(WAIT_RC="1", CNI_WORKLOADS="")
    assert result.returncode == 1
    assert "node ip-10-20-0-20 is not Ready" in result.stderr
    assert not any("rollout status" in c for c in calls)  # node-config variants have no workload


def test_gate_fails_when_a_node_never_registers(gate_env):
    result, _ = gate_env(NODE_RC="1", CNI_TIMEOUT="0")
    assert result.returncode == 1
    assert "node ip-10-20-0-20 has not registered" in result.stderr


def test_gate_requires_its_inputs(gate_env):
    result, calls = gate_env(CNIBENCH_VARIANT="")
    assert result.returncode != 0 and "CNIBENCH_VARIANT" in result.stderr
    assert calls == []


# --- the gate's cluster checks: CoreDNS, pod-to-pod, pod-to-service, DNS, pod-to-node ---------
CHECK_NS = "cnibench-check"
DELETE_NS = f"delete namespace {CHECK_NS} --ignore-not-found --timeout="
EXECS = {  # check -> the command line the client pod runs
    "pod-to-pod": f"-n {CHECK_NS} exec client -- wget -q -T 5 -O - http://{POD_IP}:8080/",
    "pod-to-service": f"-n {CHECK_NS} exec client -- wget -q -T 5 -O - http://{SERVICE_IP}:8080/",
    "dns": f"-n {CHECK_NS} exec client -- nslookup -type=a {SERVICE_NAME}",
    "pod-to-node": f"-n {CHECK_NS} exec client -- nc -z -v -v -n -w 5 {NODE_IP} 10250",
    "pod-to-metadata": f"-n {CHECK_NS} exec client -- wget -q -T 5 -O - http://169.254.169.254/latest/meta-data/",
}
COREDNS_WAIT = "-n kube-system wait --for=condition=Available deployment/coredns --timeout="
IPVLAN_REASON = "ipvlan l2 pods bypass the node's netfilter hooks (Linux ipvlan.rst): pod-to-service is not measured"


def _deleted_last(calls: list[str]) -> bool:
    """The check's namespace is deleted after everything else the script did with it."""
    deletes = [i for i, c in enumerate(calls) if c.startswith(DELETE_NS)]
    used = [i for i, c in enumerate(calls) if f"-n {CHECK_NS} " in c and "get events" not in c
            and "get pods -o wide" not in c]
    return len(deletes) == 2 and deletes[0] < min(used) and deletes[1] > max(used)


def test_gate_checks_the_cluster_and_deletes_its_namespace(gate_env):
    result, calls = gate_env()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert ("flannel-vxlan ready: daemonset/kube-flannel-ds on nodes ip-10-20-0-20 ip-10-20-0-30; "
            "checks passed: coredns pod-to-pod pod-to-service dns pod-to-node pod-to-metadata") in out
    assert "SKIPPED" not in out and "skipped" not in out
    # CoreDNS after the nodes, the pods after CoreDNS, each check once, in order
    node_waits = [i for i, c in enumerate(calls) if c.startswith("wait --for=condition=Ready node/")]
    coredns = [i for i, c in enumerate(calls) if c.startswith(COREDNS_WAIT)]
    assert len(coredns) == 1 and coredns[0] > max(node_waits)
    assert calls.index("apply -f -") > coredns[0]
    assert [c for c in calls if " exec " in c] == list(EXECS.values())
    assert f"create namespace {CHECK_NS}" in calls
    assert _deleted_last(calls)
    for path in ("pod-to-pod (client on node ip-10-20-0-20 -> pod cnibench-check/server 10.244.1.5:8080 on node ip-10-20-0-30) ok",
                 "pod-to-service (client on node ip-10-20-0-20 -> Service cnibench-check/server 10.96.7.8:8080) ok",
                 f"dns (client on node ip-10-20-0-20 -> cluster DNS: {SERVICE_NAME} A 10.96.7.8) ok",
                 "pod-to-node (client on node ip-10-20-0-20 -> node ip-10-20-0-30 10.20.0.30:10250, the kubelet) ok"):
        assert f"cnibench: CNI variant flannel-vxlan: {path}" in out


def test_gate_check_pods_are_pinned_throwaway_busybox_pods(gate_env):
    result, _ = gate_env()
    assert result.returncode == 0, result.stderr
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(gate_env.manifest.read_text())}
    assert set(docs) == {("Pod", "server"), ("Pod", "client"), ("Service", "server")}
    assert all(d["metadata"]["namespace"] == CHECK_NS for d in docs.values())
    server, client, service = docs["Pod", "server"]["spec"], docs["Pod", "client"]["spec"], docs["Service", "server"]["spec"]
    # one pod on each benchmark node: the client on the first (client) node, the server on the other
    assert client["nodeName"] == "ip-10-20-0-20" and server["nodeName"] == "ip-10-20-0-30"
    for spec in (server, client):
        (container,) = spec["containers"]
        assert container["image"] == "docker.io/library/busybox:1.36.1"
        assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] == 60 + 60
    assert "exec httpd -f -v -p 8080 -h /www" in server["containers"][0]["command"][2]
    assert "echo cnibench-check-ok > /www/index.html" in server["containers"][0]["command"][2]
    assert service["type"] == "ClusterIP" and service["ports"][0]["port"] == service["ports"][0]["targetPort"] == 8080
    assert service["selector"].items() <= docs["Pod", "server"]["metadata"]["labels"].items()
    assert not service["selector"].items() <= docs["Pod", "client"]["metadata"]["labels"].items()


@pytest.mark.parametrize("metadata,answer", [
    ("v2", "wget: server returned error: HTTP/1.1 401 Unauthorized"),
    ("blocked", "wget: download timed out"),
])
def test_gate_passes_when_a_pod_cannot_read_the_instance_metadata(gate_env, metadata, answer):
    result, _ = gate_env(METADATA=metadata)
    assert result.returncode == 0, result.stderr
    assert ("cnibench: CNI variant flannel-vxlan: pod-to-metadata (client on node ip-10-20-0-20 -> instance "
            f"metadata http://169.254.169.254/latest/meta-data/) refused, as it must be: {answer}") in result.stdout


def test_gate_fails_when_a_pod_reads_the_instance_metadata(gate_env):
    result, calls = gate_env(METADATA="v1")
    assert result.returncode == 1
    head = result.stderr.splitlines()[0]
    assert head.startswith("cnibench: CNI variant flannel-vxlan: pod-to-metadata (client on node ip-10-20-0-20 "
                           "-> instance metadata http://169.254.169.254/latest/meta-data/) failed: the pod read it")
    assert "ami-id | ami-launch-index" in head
    assert [c for c in calls if " exec " in c].count(EXECS["pod-to-metadata"]) == 1  # one try, no retry
    assert _deleted_last(calls)


def test_gate_does_not_count_a_kubectl_error_as_refused(gate_env):
    result, _ = gate_env(METADATA="broken")
    assert result.returncode == 1
    assert "pod-to-metadata" in result.stderr.splitlines()[0]
    assert "could not tell whether the pod reaches it: error: unable to upgrade connection" in result.stderr
    assert "ready:" not in result.stdout


@pytest.mark.parametrize("check,path,output", [
    ("pod-to-pod",
     "pod-to-pod (client on node ip-10-20-0-20 -> pod cnibench-check/server 10.244.1.5:8080 on node ip-10-20-0-30)",
     "wget: can't connect to remote host (10.244.1.5): No route to host"),
    ("pod-to-service",
     "pod-to-service (client on node ip-10-20-0-20 -> Service cnibench-check/server 10.96.7.8:8080)",
     "wget: download timed out"),
    ("dns",
     f"dns (client on node ip-10-20-0-20 -> cluster DNS: {SERVICE_NAME} A 10.96.7.8)",
     f"** server can't find {SERVICE_NAME}: NXDOMAIN"),
    ("pod-to-node",
     "pod-to-node (client on node ip-10-20-0-20 -> node ip-10-20-0-30 10.20.0.30:10250, the kubelet)",
     "nc: 10.20.0.30 (10.20.0.30:10250): Connection timed out | sent 0, rcvd 0"),
])
def test_gate_names_the_variant_and_the_path_that_failed(gate_env, check, path, output):
    result, calls = gate_env(FAIL=check, CNI_TIMEOUT="0")  # no time left: one attempt
    assert result.returncode == 1
    err = result.stderr
    # one line: the variant, the path, the tool's output (its lines joined) and its exit code
    head = err.splitlines()[0]
    assert head.startswith(f"cnibench: CNI variant flannel-vxlan: {path} failed: ")
    assert output in head and head.endswith(" (exit 1)")
    # the existing diagnostics, and the check's own pods and events
    assert "kube-flannel/kube-flannel-ds-fghij phase=Running node=ip-10-20-0-30 ready=false" in err
    assert "ip-10-20-0-30 NotReady" in err
    assert "latest events in cnibench-check:" in err and "FailedCreatePodSandBox pod/server" in err
    # the checks after the failed one did not run, and the namespace is deleted all the same
    execs = [c for c in calls if " exec " in c]
    assert execs == list(EXECS.values())[:list(EXECS).index(check) + 1]
    assert _deleted_last(calls)


def test_gate_fails_when_coredns_is_not_available(gate_env):
    result, calls = gate_env(FAIL="coredns")
    assert result.returncode == 1
    assert ("cnibench: CNI variant flannel-vxlan is not ready after 60s: "
            "coredns: kube-system/deployment/coredns is not Available") in result.stderr
    assert "kube-system/coredns-1 phase=Pending node=<none> ready=<none>" in result.stderr
    assert not any(CHECK_NS in c for c in calls)  # no check pods before CoreDNS is there


def test_gate_fails_when_the_check_pods_do_not_start(gate_env):
    result, calls = gate_env(FAIL="pods", CNI_TIMEOUT="0")
    assert result.returncode == 1
    assert ("cnibench: CNI variant flannel-vxlan: pod startup (client on node ip-10-20-0-20, server on node "
            "ip-10-20-0-30, image docker.io/library/busybox:1.36.1) failed: "
            "error: timed out waiting for the condition on pods/server") in result.stderr
    assert not any(" exec " in c for c in calls)
    assert _deleted_last(calls)


def test_gate_dns_needs_the_services_address_in_the_answer(gate_env):
    # nslookup exits 0 on an answer without the A record (busybox nslookup.c: "No answer" does
    # not set the exit code): the check reads the answer, not the exit code alone
    result, _ = gate_env(DNS_ANSWER="10.96.0.99", CNI_TIMEOUT="0")
    assert result.returncode == 1
    assert (f"dns (client on node ip-10-20-0-20 -> cluster DNS: {SERVICE_NAME} A 10.96.7.8) failed: "
            'exit 0 without "Address: 10.96.7.8" in:') in result.stderr
    assert "Address: 10.96.0.99" in result.stderr


def test_gate_retries_a_check_within_the_deadline(gate_env):
    # a fresh Service's rules, a new pod's routes: a first attempt may fail, a later one passes
    result, calls = gate_env(FLAKY="pod-to-pod pod-to-node")
    assert result.returncode == 0, result.stderr
    execs = [c for c in calls if " exec " in c]
    assert execs.count(EXECS["pod-to-pod"]) == 2 and execs.count(EXECS["pod-to-node"]) == 2
    assert execs.count(EXECS["dns"]) == 1
    assert "checks passed: coredns pod-to-pod pod-to-service dns pod-to-node" in result.stdout


def test_gate_prints_skipped_checks_with_their_reason_and_does_not_run_them(gate_env):
    result, calls = gate_env(CNIBENCH_VARIANT="ipvlan", CNI_WORKLOADS="",
                             CNI_SKIP_CHECKS="coredns pod-to-service dns", CNI_SKIP_REASON=IPVLAN_REASON)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for check in ("coredns", "pod-to-service", "dns"):
        assert f"cnibench: CNI variant ipvlan: check {check} SKIPPED (not run, not passed): {IPVLAN_REASON}" in out
    assert ("ipvlan ready: node configuration on nodes ip-10-20-0-20 ip-10-20-0-30; "
            f"checks passed: pod-to-pod pod-to-node pod-to-metadata; skipped (not run): coredns pod-to-service dns "
            f"({IPVLAN_REASON})") in out
    assert "pod-to-service (client" not in out and "dns (client" not in out  # no "ok" line for a skipped check
    assert not any(c.startswith(COREDNS_WAIT) for c in calls)
    assert [c for c in calls if " exec " in c] == [EXECS["pod-to-pod"], EXECS["pod-to-node"], EXECS["pod-to-metadata"]]
    assert _deleted_last(calls)


def test_gate_creates_no_pods_when_every_pod_check_is_skipped(gate_env):
    skips = "pod-to-pod pod-to-service dns pod-to-node pod-to-metadata"
    result, calls = gate_env(CNI_SKIP_CHECKS=skips, CNI_SKIP_REASON="why")
    assert result.returncode == 0, result.stderr
    assert not any(CHECK_NS in c for c in calls)
    assert f"checks passed: coredns; skipped (not run): {skips} (why)" in result.stdout


@pytest.mark.parametrize("skips,reason,message", [
    ("dns pod-to-servce", "why", "CNI_SKIP_CHECKS names an unknown check 'pod-to-servce' "
                                 "(known: coredns pod-to-pod pod-to-service dns pod-to-node pod-to-metadata)"),
    ("dns", "", "CNI_SKIP_CHECKS='dns' without a CNI_SKIP_REASON"),
])
def test_gate_refuses_a_bad_skip_list_before_calling_kubectl(gate_env, skips, reason, message):
    result, calls = gate_env(CNI_SKIP_CHECKS=skips, CNI_SKIP_REASON=reason)
    assert result.returncode == 2
    assert f"cnibench: CNI variant flannel-vxlan: {message}" in result.stderr
    assert calls == []


def test_gate_deletes_its_namespace_when_it_is_stopped(gate_env):
    # a hangup while the check pods start (the gate, its kubectl and their children: one group)
    # SIGHUP back to its default in the child: a suite started under nohup would hand the gate an
    # ignored SIGHUP, which bash can then neither trap nor reset (bash(1), SIGNALS)
    proc = subprocess.Popen(["bash", str(GATE)], env={**gate_env.env, "PODS_SLEEP": "30"}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    pid_file = Path(f"{gate_env.log}.pid")
    try:
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            time.sleep(0.05)
        else:
            pytest.fail("the gate never waited for its pods")
        os.killpg(proc.pid, signal.SIGHUP)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    calls = gate_env.log.read_text().splitlines()
    assert proc.returncode == 129, (proc.returncode, calls[-4:])  # exit 128 + SIGHUP, through its trap
    assert calls[-2].startswith(f"-n {CHECK_NS} wait --for=condition=Ready pod/server pod/client")
    assert calls[-1].startswith(DELETE_NS)


# --- ipvlan node script ------------------------------------------------------------------------
NODE = SCRIPTS / "ipvlan-node.sh"
VERSION = "v1.9.1"

# what `ip` prints on an AWS node with DHCP on ens5 (subnet 10.20.0.0/24); 10.20.0.81 is a pod
# address that cloud-init put on the interface
IP = r"""#!/usr/bin/env bash
echo "$*" >> "$IP_LOG"
case "$*" in
    "-4 route show default") echo "default via 10.20.0.1 dev ens5 proto dhcp src 10.20.0.20 metric 100" ;;
    "-4 route show dev ens5 proto kernel scope link") echo "10.20.0.0/24 proto kernel scope link src 10.20.0.20 metric 100" ;;
    "-4 -o addr show dev ens5")
        echo "2: ens5    inet 10.20.0.20/24 metric 100 brd 10.20.0.255 scope global dynamic ens5"
        echo "2: ens5    inet 10.20.0.81/24 brd 10.20.0.255 scope global secondary ens5" ;;
esac
exit 0
"""
# serves the release tarball and its .sha256 from $RELEASE_DIR by file name
CURL = r"""#!/usr/bin/env bash
out=""; url=""
while [ $# -gt 0 ]; do
    case "$1" in -o) out=$2; shift 2 ;; -*) [ "$1" = --retry ] || [ "$1" = --retry-delay ] && shift; shift ;; *) url=$1; shift ;; esac
done
echo "$url" >> "$CURL_LOG"
cp "$RELEASE_DIR/${url##*/}" "$out"
"""


def _release(tmp_path: Path, corrupt: bool = False) -> Path:
    """The plugin release as GitHub serves it: the tarball and its .sha256."""
    release = tmp_path / "release"
    release.mkdir(exist_ok=True)
    name = f"cni-plugins-linux-amd64-{VERSION}.tgz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for plugin in ("ipvlan", "host-local", "loopback", "bridge"):
            body = f"#!/bin/sh\necho 'CNI {plugin} plugin {VERSION}'\n".encode()
            info = tarfile.TarInfo(f"./{plugin}")
            info.size, info.mode = len(body), 0o755
            tar.addfile(info, io.BytesIO(body))
    data = buf.getvalue()
    (release / name).write_bytes(data)
    digest = hashlib.sha256(b"other" if corrupt else data).hexdigest()
    (release / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    return release


@pytest.fixture
def node_env(tmp_path: Path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in (("ip", IP), ("curl", CURL)):
        (bindir / name).write_text(body)
        (bindir / name).chmod(0o755)
    ips = ["10.20.0.80", "10.20.0.81"]
    conf = conflist({"plugin": "ipvlan", "mode": "l2", "ipam": "host-local"}, ips,
                    ipaddress.ip_network("10.20.0.0/24"), None)
    env = {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "IP_LOG": str(tmp_path / "ip.log"),
        "CURL_LOG": str(tmp_path / "curl.log"),
        "CNI_BIN_DIR": str(tmp_path / "opt-cni-bin"),
        "CNI_PLUGINS_URL": f"https://example.invalid/{VERSION}/cni-plugins-linux-amd64-{VERSION}.tgz",
        "CNI_PLUGINS_VERSION": VERSION,
        "CNI_CONFLIST": json.dumps(conf, sort_keys=True),
        "CNI_MASTER_TOKEN": MASTER_TOKEN,
        "CNI_CONF_FILE": str(tmp_path / "net.d" / "10-ipvlan.conflist"),
        "CNI_POD_IPS": " ".join(ips),
    }

    def run(corrupt: bool = False, **overrides: str) -> subprocess.CompletedProcess:
        env["RELEASE_DIR"] = str(_release(tmp_path, corrupt))
        return subprocess.run(["bash", str(NODE)], env={**env, **overrides}, capture_output=True, text=True, timeout=60)

    return run, tmp_path


def test_ipvlan_node_script_installs_plugins_and_writes_the_conflist(node_env):
    run, tmp = node_env
    result = run()
    assert result.returncode == 0, result.stderr
    assert (tmp / "opt-cni-bin" / "ipvlan").exists()
    conf = json.loads((tmp / "net.d" / "10-ipvlan.conflist").read_text())
    plugin = conf["plugins"][0]
    assert plugin["master"] == "ens5"  # the default route's interface
    assert [r["rangeStart"] for r in plugin["ipam"]["ranges"][0]] == ["10.20.0.80", "10.20.0.81"]
    # the pod address cloud-init had put on the host interface is taken off it; the other is not there
    ip_calls = (tmp / "ip.log").read_text().splitlines()
    assert "addr del 10.20.0.81/24 dev ens5" in ip_calls
    assert not any(c.startswith("addr del 10.20.0.80") for c in ip_calls)
    # a second run finds the pinned version installed and downloads nothing
    downloads = len((tmp / "curl.log").read_text().splitlines())
    assert run().returncode == 0
    assert len((tmp / "curl.log").read_text().splitlines()) == downloads == 2


def test_ipvlan_node_script_refuses_a_bad_checksum(node_env):
    run, tmp = node_env
    result = run(corrupt=True)
    assert result.returncode == 1 and "checksum mismatch" in result.stderr
    assert not (tmp / "net.d" / "10-ipvlan.conflist").exists()


def test_ipvlan_node_script_refuses_a_conflist_for_another_subnet(node_env):
    run, tmp = node_env
    other = json.dumps({"plugins": [{"ipam": {"ranges": [[{"subnet": "10.20.1.0/24"}]]}}]})
    result = run(CNI_CONFLIST=other)
    assert result.returncode == 1 and "differs from ens5's subnet 10.20.0.0/24" in result.stderr
    assert not (tmp / "net.d" / "10-ipvlan.conflist").exists()
