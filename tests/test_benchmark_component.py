"""The Benchmark component under Pulumi's mocks, through the real ``__main__.py``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ALL_STACKS, public_ip
from test_benchmark import VARIANT_TESTS, realistic_stdout

from cnibench import mocks, results
from cnibench.config import parse_config
from cnibench.suite import bundle
from cnibench.suite import plan as suite_plan

RUN = "command:remote:Command"
INSTANCE = "aws:ec2/instance:Instance"
SG_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def bench_command(run):
    return run.one(RUN, "bench-run")


def unwrap(value):
    """Secret-wrapped values come back from the mock monitor as {sig: ..., value: ...}."""
    if isinstance(value, dict) and "value" in value and len(value) == 2:
        return value["value"]
    return value


def shipped_files(create: str, tmp_path: Path) -> dict[str, str]:
    """Run the file-writing half of the create command: what lands on the control plane."""
    head = create.split('sudo -n bash "$W/bench.sh"')[0] + 'printf %s "$W"\n'
    work = Path(subprocess.run(["bash", "-c", head], capture_output=True, text=True, check=True).stdout)
    try:
        return {p.name: p.read_text() for p in work.iterdir()}
    finally:
        shutil.rmtree(work)


def node_name(run, role: str) -> str:
    """The Kubernetes node name (the instance's private DNS name) of the node of ``role``."""
    by_role = {}
    for inst in run.of_type(INSTANCE):
        tags = unwrap(inst.inputs.get("tags")) or {}
        by_role.setdefault(tags.get("cnibench:role"), inst)
    inst = by_role.get(role) or by_role["control-plane"]  # controlPlaneOnBenchmarkNode: client = control plane
    return inst.state["privateDns"]


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_benchmark_output_exported_and_valid(stack, stack_run):
    run = stack_run(stack)
    assert "benchmark" in run.outputs and "benchmark" not in run.unknown_outputs
    doc = run.outputs["benchmark"]
    results.validate(doc)
    assert doc["origin"] == "cloud" and doc["extra"]["status"] == "no-output"  # mocks: stdout is ""
    assert [s["name"] for s in doc["subjects"]] == ["host", run.config["variant"]]
    assert all(s["status"] == "skipped" and "no benchmark output" in s["skipped_reason"] for s in doc["subjects"])


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_benchmark_runs_after_cni_readiness_on_the_control_plane(stack, stack_run):
    run = stack_run(stack)
    cmd = bench_command(run)
    gate = run.one(RUN, "cni-ready")
    assert run.depends_on(cmd, gate)
    for label in (r for r in run.of_type(RUN) if r.name.endswith("-label")):
        assert run.depends_on(cmd, label), label.name
    init = run.one(RUN, "k8s-init")  # kubeadm init runs on the control plane
    assert unwrap(cmd.inputs["connection"])["host"] == unwrap(init.inputs["connection"])["host"]


@pytest.mark.parametrize("stack", ["flannel-vxlan", "cilium-native-kpr", "ipvlan"])
def test_each_test_runs_on_the_right_nodes(stack, stack_run, tmp_path):
    run = stack_run(stack)
    files = shipped_files(bench_command(run).inputs["create"], tmp_path)
    assert set(files) == {*bundle.BUNDLED_SCRIPTS, "plan.env", "steps.tsv", "manifests.json"}
    assert "wrk-report.lua" in files and "hey-reduce.awk" not in files
    env = dict(line.split("=", 1) for line in files["plan.env"].splitlines())
    assert env["BENCH_CLIENT_NODE"] == node_name(run, "client")
    assert env["BENCH_SERVER_NODE"] == node_name(run, "server")
    assert env["BENCH_CLIENT_NODE"] != env["BENCH_SERVER_NODE"]
    pods = {m["metadata"]["name"]: m["spec"] for m in json.loads(files["manifests.json"])["items"] if m["kind"] == "Pod"}
    from cnibench.program.cluster import ROLE_LABEL

    assert pods["cnibench-cli-host"]["nodeSelector"] == {ROLE_LABEL: "client"}
    assert pods["cnibench-cli-pod"]["nodeSelector"] == {ROLE_LABEL: "client"}
    assert pods["cnibench-srv-host"]["nodeSelector"] == {ROLE_LABEL: "server"}
    assert pods["cnibench-srv-pod"]["nodeSelector"] == {ROLE_LABEL: "server"}
    assert pods["cnibench-srv-host"]["hostNetwork"] and "hostNetwork" not in pods["cnibench-srv-pod"]
    # every step's client runs on the client node and its server on the server node
    role = {name: spec["nodeSelector"][ROLE_LABEL] for name, spec in pods.items()}
    plan = suite_plan.plan_from_config(parse_config(run.config))
    assert files["steps.tsv"] == bundle.steps_tsv(plan)
    columns = suite_plan.TSV_COLUMNS
    assert files["steps.tsv"].splitlines()[0] == "# " + "\t".join(columns)
    for row in files["steps.tsv"].splitlines()[1:]:
        fields = dict(zip(columns, row.split("\t")))
        step_id, client, target = fields["id"], fields["client"], fields["target"]
        assert role[client] == "client", step_id
        assert target == suite_plan.SERVICE or role[target] == "server", step_id
        host = step_id.startswith("host/")
        assert pods[client].get("hostNetwork", False) is host, step_id


def test_control_plane_on_the_client_node(program, tmp_path):
    run = program("flannel-vxlan", {"controlPlaneOnBenchmarkNode": True})
    files = shipped_files(bench_command(run).inputs["create"], tmp_path)
    env = dict(line.split("=", 1) for line in files["plan.env"].splitlines())
    assert env["BENCH_CLIENT_NODE"] == node_name(run, "client") != env["BENCH_SERVER_NODE"]
    assert len(run.of_type(INSTANCE)) == 2
    assert run.one(INSTANCE, "nodes-client").state["publicIp"] != public_ip(run, "client")  # the Elastic IP
    assert unwrap(bench_command(run).inputs["connection"])["host"] == public_ip(run, "client")
    pods = [m for m in json.loads(files["manifests.json"])["items"] if m["kind"] == "Pod"]
    # the control plane's NoSchedule taint must not keep the client pods away
    assert all({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
               in p["spec"]["tolerations"] for p in pods)


def test_command_settings(stack_run):
    run = stack_run("flannel-vxlan")
    cmd = bench_command(run)
    plan = suite_plan.plan_from_config(parse_config(run.config))
    gate = run.one(RUN, "cni-ready")
    assert cmd.inputs["triggers"] == [run.config["benchmarkRun"], plan.digest(), gate.state["id"]]
    assert cmd.inputs["addPreviousOutputInEnv"] is False
    assert cmd.inputs["logging"] == "stderr"
    assert "delete namespace cnibench-bench" in cmd.inputs["delete"]
    assert cmd.options["deleteBeforeReplace"] is True
    assert 'sudo -n bash "$W/bench.sh" "$W"' in cmd.inputs["create"]


def test_host_network_ports_are_open_between_the_nodes(stack_run):
    run = stack_run("flannel-vxlan")
    rules = [r for r in run.of_type(SG_RULE) if r.name.startswith("bench-host-")]
    # every server of the hostNetwork pod: iperf3 (TCP, UDP), sockperf (TCP, UDP), nginx
    assert len(rules) == 5
    assert {(r.inputs["ipProtocol"], r.inputs["fromPort"]) for r in rules} == {
        ("tcp", suite_plan.IPERF3_PORT), ("udp", suite_plan.IPERF3_PORT), ("tcp", suite_plan.HTTP_PORT),
        ("tcp", suite_plan.SOCKPERF_PORT), ("udp", suite_plan.SOCKPERF_PORT)}
    component = run.one("cnibench:index:Benchmark")
    for r in rules:
        assert r.parent == component.urn
        assert r.inputs["securityGroupId"] == r.inputs["referencedSecurityGroupId"]
        assert r.inputs["toPort"] == r.inputs["fromPort"]
    cmd = bench_command(run)
    assert all(run.depends_on(cmd, r) for r in rules)


def test_changing_benchmark_run_reruns_only_the_benchmark(program, stack_run):
    first = stack_run("flannel-vxlan")
    second = program("flannel-vxlan", {"benchmarkRun": "rerun-2"})
    a, b = bench_command(first), bench_command(second)
    assert a.inputs["triggers"][0] != b.inputs["triggers"][0] == "rerun-2"
    assert "triggers[*]" in b.options["replaceOnChanges"]
    # the cluster is untouched: same instances, same kubeadm steps
    for typ in (INSTANCE, RUN):
        for r in first.of_type(typ):
            if r.name == "bench-run":
                continue
            other = second.one(typ, r.name)
            assert untagged(r.inputs) == untagged(other.inputs), r.name


def untagged(value):
    """``value`` without tags: the expiry tag moves with the clock between two runs."""
    if isinstance(value, dict):
        return {k: untagged(v) for k, v in value.items() if k not in ("tags", "tagsAll", "volumeTags")}
    if isinstance(value, list):
        return [untagged(v) for v in value]
    return value


def test_realistic_stdout_becomes_the_benchmark_output(monkeypatch, stack_run, program, tmp_path):
    """Feed the mocks a runner output built from real captured tool outputs: the transformation
    path of the component runs and the exported document carries the figures."""
    base = stack_run("flannel-vxlan")
    cfg = parse_config(base.config)
    plan = suite_plan.plan_from_config(cfg)
    stdout = realistic_stdout(tmp_path, plan, client_node=node_name(base, "client"),
                              server_node=node_name(base, "server"))
    monkeypatch.setattr(mocks, "REMOTE_STDOUT", [*mocks.REMOTE_STDOUT, ("/tmp/cnibench-bench.XXXXXX", stdout)])
    run = program("flannel-vxlan")
    doc = run.outputs["benchmark"]
    results.validate(doc)
    assert doc["schema_version"].startswith("2.") and doc["origin"] == "cloud"
    # every test but the UDP under-load ones: their capture (--mps max) lost 5 % of its replies
    assert doc["extra"]["status"] == "partial", doc["extra"]["errors"]
    assert doc["environment"]["instance_type"] == cfg.instance_type
    variant = next(s for s in doc["subjects"] if s["name"] == "flannel-vxlan")
    assert variant["configured_mtu"] == cfg.pod_mtu and variant["cni"] == "flannel"
    tests = {t["name"]: t for t in variant["tests"]}
    assert list(tests) == VARIANT_TESTS  # the suite definition's names, in its order
    invalid = {n for n, t in tests.items() if t["status"] != "ok"}
    assert invalid == {"latency-udp-30pct", "latency-udp-50pct"}
    assert all("replies missing" in tests[n]["validity"]["reason"] for n in invalid)
    assert all(t["stats"]["n"] == cfg.benchmark_repeat for n, t in tests.items() if n not in invalid)
    assert tests["tcp"]["ratio"]["estimate"] == pytest.approx(1.0) and tests["tcp"]["ratio"]["n"] == cfg.benchmark_repeat
    assert doc["parameters"]["repetitions"]["stopped"] == "not-adaptive"
    assert doc["parameters"]["suite"]["udp_datagram_bytes"] == cfg.pod_mtu - 28
    assert doc["extra"]["ranking"]["allowed"] is True
    assert doc["environment"]["extra"]["cni"]["version"] == cfg.variant_record.cni_version
