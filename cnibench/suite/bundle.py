"""The files shipped to the control plane (bench.sh and helpers, the plan as shell variables and TSV,
the pod manifests) and the one command that runs them."""

from __future__ import annotations

import hashlib
import json
import shlex
from typing import Mapping

from cnibench.suite import definition
from cnibench.suite.manifests import _script, pod_manifests
from cnibench.suite.plan import (
    HTTP_PORT,
    IPERF3_PORT,
    NAMESPACE,
    POD_READY_TIMEOUT_S,
    RAW_FORMAT,
    SERVICE,
    SOCKPERF_PORT,
    TSV_COLUMNS,
    WRK_REQUEST_TIMEOUT,
    WRK_SCRIPT,
    SuitePlan,
)


def plan_env(plan: SuitePlan, client_node: str = "", server_node: str = "", kube_context: str = "") -> str:
    """The plan as shell variables. ``kube_context``: ``kubectl --context`` of every call
    (``cnibench run``); empty, the kubeconfig's current context (the control plane's admin.conf)."""
    values = {
        "BENCH_RAW_FORMAT": RAW_FORMAT,
        "BENCH_RUN": plan.run,
        "BENCH_PLAN_DIGEST": plan.digest(),
        "BENCH_NAMESPACE": NAMESPACE,
        "BENCH_SERVICE": SERVICE,
        "BENCH_PODS": " ".join(p[0] for p in plan.pods),
        "BENCH_CLIENT_PODS": " ".join(p[0] for p in plan.pods if p[1] == "client"),
        "BENCH_CLIENT_HOST_POD": "cnibench-cli-host",
        "BENCH_SERVER_HOST_POD": "cnibench-srv-host",
        # the order of the subjects within a repetition (host first, as in the lab)
        "BENCH_SUBJECTS": " ".join(plan.subjects),
        "BENCH_REPEAT": plan.repeat,
        "BENCH_TIMEOUT": plan.timeout,
        "BENCH_POD_TIMEOUT": POD_READY_TIMEOUT_S,
        "BENCH_GUARD_SECONDS": f"{definition.GUARD_SECONDS:g}",
        "BENCH_IPERF3_PORT": IPERF3_PORT,
        "BENCH_SOCKPERF_PORT": SOCKPERF_PORT,
        "BENCH_HTTP_PORT": HTTP_PORT,
        "BENCH_WRK_SCRIPT": WRK_SCRIPT,
        "BENCH_WRK_TIMEOUT": WRK_REQUEST_TIMEOUT,
        "BENCH_CLIENT_NODE": client_node,
        "BENCH_SERVER_NODE": server_node,
        **({"BENCH_KUBE_CONTEXT": kube_context} if kube_context else {}),
    }
    return "".join(f"{k}={shlex.quote(str(v))}\n" for k, v in values.items())


def steps_tsv(plan: SuitePlan) -> str:
    """The calibrations, then every step of both subjects (bench.sh picks them by phase and subject)."""
    header = "# " + "\t".join(TSV_COLUMNS) + "\n"
    return header + "".join(s.tsv() + "\n" for s in (*plan.calibrations, *plan.steps))


BUNDLED_SCRIPTS = ("bench.sh", "collect.py", "probe.sh", "wrk-report.lua")


def bundle(plan: SuitePlan, client_node: str = "", server_node: str = "", *, pin_by_name: bool = False,
           kube_context: str = "") -> dict[str, str]:
    """Every file the runner reads, by name. ``pin_by_name`` (``cnibench run``): the pods go to
    the nodes named ``client_node`` and ``server_node`` (the stack's own nodes are found by their
    role label)."""
    files = {name: _script(name) for name in BUNDLED_SCRIPTS}
    files["plan.env"] = plan_env(plan, client_node, server_node, kube_context)
    files["steps.tsv"] = steps_tsv(plan)
    nodes = {"client": client_node, "server": server_node} if pin_by_name else None
    files["manifests.json"] = json.dumps({"apiVersion": "v1", "kind": "List", "items": pod_manifests(plan, nodes)},
                                         indent=1) + "\n"
    return files


def remote_command(files: Mapping[str, str]) -> str:
    """One bash command that writes ``files`` into a fresh directory on the control plane, runs
    ``bench.sh`` there as root (``/etc/kubernetes/admin.conf`` is root's) and removes it."""
    lines = ["set -u", 'W="$(mktemp -d /tmp/cnibench-bench.XXXXXX)"']
    for name, content in files.items():
        marker = "CNIBENCH_EOF_" + hashlib.sha256(name.encode()).hexdigest()[:8].upper()
        if marker in content:
            raise ValueError(f"{name} contains the heredoc marker {marker}")
        if not content.endswith("\n"):
            content += "\n"
        lines.append(f"cat > \"$W/{name}\" <<'{marker}'\n{content}{marker}")
    lines += ['sudo -n bash "$W/bench.sh" "$W"', "rc=$?", 'sudo -n rm -rf "$W"', "exit $rc"]
    return "\n".join(lines) + "\n"


DELETE_COMMAND = (
    f"sudo -n env KUBECONFIG=/etc/kubernetes/admin.conf kubectl delete namespace {NAMESPACE} "
    "--ignore-not-found --wait=true --timeout=300s || true\n"
)

