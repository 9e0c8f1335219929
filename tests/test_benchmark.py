"""The cloud benchmark's pure logic: plan, pods, runner scripts, raw output -> result document.

The runner's output used here is assembled by the real ``collect.py`` from outputs really
captured on this machine: iperf3 ``-J`` runs and hey CSV (``tests/data``), reduced by the real
``hey-reduce.awk``, ``/proc`` snapshots and ``probe.sh`` run here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnibench import parsers, results
from cnibench.suite import build, bundle
from cnibench.suite import manifests as suite_manifests
from cnibench.suite import plan as suite_plan
from cnibench.suite import table as suite_table

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SCRIPTS = ROOT / "cnibench" / "suite" / "runner"
AWK = shutil.which("awk")


def small_plan(**kw) -> suite_plan.SuitePlan:
    args = dict(duration=2, repeat=2, streams=2, load_levels=(30, 70), response_sizes=(350,), timeout=600, run="7")
    args.update(kw)
    return suite_plan.plan_suite("flannel-vxlan", **args)


def reduce_hey(csv_path: Path) -> str:
    """hey CSV -> the reduction the pod sends back (the real awk program, run with this machine's awk)."""
    proc = subprocess.run([AWK, "-f", str(SCRIPTS / "hey-reduce.awk"), str(csv_path)],
                          capture_output=True, text=True, check=True)
    return proc.stdout


def proc_snapshot() -> str:
    """What bench.sh's snapshot() reads in a hostNetwork pod, read here."""
    stat = Path("/proc/stat").read_text().splitlines()[0]
    mem = [ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith(("MemTotal:", "MemAvailable:"))]
    return "\n".join([stat, *mem]) + "\n"


def probe_output() -> str:
    return subprocess.run(["sh", str(SCRIPTS / "probe.sh")], capture_output=True, text=True, check=True).stdout


def write_raw_dir(work: Path, plan: suite_plan.SuitePlan, *, fail: dict[str, str] | None = None,
                  client_node: str = "ip-10-20-1-11.ec2.internal", server_node: str = "ip-10-20-1-12.ec2.internal") -> Path:
    """The directory bench.sh leaves behind, filled with real captured outputs.

    ``fail`` maps a step id to a failure: ``refused`` (iperf3's own error document),
    ``timeout`` (exit 124, no output), ``skip`` (not run), ``http404`` (hey got 404s).
    """
    fail = fail or {}
    files = bundle.bundle(plan, client_node, server_node)
    for name, content in files.items():
        (work / name).write_text(content)
    raw = work / "raw"
    (raw / "pods").mkdir(parents=True)
    (raw / "runs").mkdir()
    (raw / "started").write_text(f"{int(time.time())}\n")
    (raw / "finished").write_text(f"{int(time.time()) + 100}\n")
    (raw / "k8s-version.json").write_text(json.dumps({"serverVersion": {"gitVersion": "v1.33.5"}}))
    (raw / "ds-images.txt").write_text("kube-flannel-ds=ghcr.io/flannel-io/flannel:v0.28.9 \n"
                                       "kube-proxy=registry.k8s.io/kube-proxy:v1.33.5 \n")
    nodes = {"items": [
        {"metadata": {"name": n, "labels": {"cnibench.io/role": role}},
         "status": {"nodeInfo": {"kernelVersion": os.uname().release, "osImage": "Ubuntu 24.04.3 LTS",
                                 "kubeletVersion": "v1.33.5", "containerRuntimeVersion": "containerd://1.7.28",
                                 "architecture": "amd64"}, "capacity": {"cpu": "2", "memory": "4000000Ki"}}}
        for n, role in ((client_node, "client"), (server_node, "server"))]}
    (raw / "nodes.json").write_text(json.dumps(nodes))
    probe = probe_output()
    for i, (name, role, _hn, _serves) in enumerate(suite_plan.PODS):
        base = raw / "pods" / name
        base.with_suffix(".ready").write_text("1\n")
        node = client_node if role == "client" else server_node
        base.with_suffix(".info").write_text(f"{node} 10.244.{i}.5")
        base.with_suffix(".probe").write_text(probe)
    (raw / "service-ip").write_text("10.96.12.34")

    hey_ok = reduce_hey(DATA / "hey-350-rate1000.csv")
    hey_404 = reduce_hey(DATA / "hey-404.csv")
    n = 0

    def add(step: suite_plan.Step, rep: int) -> None:
        nonlocal n
        n += 1
        d = raw / "runs" / f"{n:04d}"
        d.mkdir()
        meta = [f"id={step.id}", f"rep={rep}", f"tool={step.tool}", f"workers={plan.workers}"]
        how = fail.get(step.id)
        if how == "skip":
            meta.append("skipped=benchmarkTimeout (600s) reached")
            (d / "meta").write_text("\n".join(meta) + "\n")
            return
        meta.append("target=10.244.2.5")
        (d / "before.client").write_text(proc_snapshot())
        (d / "before.server").write_text(proc_snapshot())
        sum(i * i for i in range(200_000))  # some CPU time between the snapshots
        rc = 0
        if step.tool == "iperf3":
            if how == "refused":
                out, rc = (DATA / "iperf3-refused.json").read_text(), 1
            elif how == "timeout":
                out, rc = "", 124
            elif step.udp:
                out = (DATA / "iperf3-udp.json").read_text()
            elif step.streams > 1:
                out = (DATA / "iperf3-tcp-2streams.json").read_text()
            else:
                out = (DATA / "iperf3-tcp.json").read_text()
        else:
            out = hey_404 if how == "http404" else hey_ok
            if step.tool == "hey":
                meta += ["target_rate=300.000", f"qps={300 / plan.workers:.3f}"]
        if how == "timeout":
            meta.append("timed_out=1")
        meta += [f"started={int(time.time())}", f"ended={int(time.time()) + step.duration}", f"rc={rc}"]
        (d / "meta").write_text("\n".join(meta) + "\n")
        (d / "out").write_text(out)
        (d / "err").write_text("")
        (d / "after.client").write_text(proc_snapshot())
        (d / "after.server").write_text(proc_snapshot())

    for step in plan.calibrations:
        add(step, 0)
    for rep in range(plan.repeat):
        for step in plan.steps:
            add(step, rep)
    return work


def realistic_stdout(tmp_path: Path, plan: suite_plan.SuitePlan, **kw) -> str:
    """What the runner prints: the real collect.py over a raw directory of real outputs."""
    work = write_raw_dir(tmp_path, plan, **kw)
    proc = subprocess.run([sys.executable, str(work / "collect.py"), str(work)], capture_output=True, text=True,
                          check=True)
    return proc.stdout


# --------------------------------------------------------------------------- plan


def test_plan_covers_the_suite_for_host_and_variant():
    plan = suite_plan.plan_suite("cilium-vxlan", duration=30, repeat=3, streams=8, load_levels=(30, 50, 70),
                            response_sizes=(350, 4096))
    tests = {s: [t.name for t in specs] for s, specs in plan.tests().items()}
    latency = [f"latency-{size}B-{lvl}pct" for size in (350, 4096) for lvl in (30, 50, 70)]
    assert tests["host"] == ["tcp", "tcp-8streams", "udp", *latency]
    assert tests["cilium-vxlan"] == ["tcp", "tcp-8streams", "udp", "tcp-service", "udp-service", *latency]
    host_pods = {(s.client, s.target) for s in plan.steps if s.subject == "host"}
    assert host_pods == {("cnibench-cli-host", "cnibench-srv-host")}
    var_pods = {(s.client, s.target) for s in plan.steps if s.subject == "cilium-vxlan"}
    assert var_pods == {("cnibench-cli-pod", "cnibench-srv-pod"), ("cnibench-cli-pod", suite_plan.SERVICE)}
    assert [c.test for c in plan.calibrations] == ["max-rate-350B", "max-rate-4096B"]
    assert all(c.tool == "hey-max" and c.subject == "host" for c in plan.calibrations)
    multi = next(s for s in plan.steps if s.test == "tcp-8streams")
    assert multi.streams == 8 and multi.timeout == 30 + suite_plan.STEP_MARGIN_S
    specs = {t.name: t for t in plan.tests()["cilium-vxlan"]}
    assert specs["tcp-service"].reference_test == "tcp" and specs["udp-service"].reference_test == "udp"
    assert specs["latency-4096B-70pct"].parameters["load_fraction"] == 0.7


def test_plan_from_config_uses_the_benchmark_keys():
    from cnibench.config import parse_config

    cfg = parse_config({"variant": "flannel-vxlan", "benchmarkDuration": 12, "benchmarkRepeat": 5,
                        "benchmarkStreams": 1, "benchmarkLoadLevels": "[25, 90]",
                        "benchmarkResponseSizes": "[1000]", "benchmarkRun": "b", "benchmarkTimeout": 5000})
    plan = suite_plan.plan_from_config(cfg)
    assert (plan.duration, plan.repeat, plan.streams, plan.timeout, plan.run) == (12, 5, 1, 5000, "b")
    names = [t.name for t in plan.tests()["flannel-vxlan"]]
    assert "tcp-1streams" not in names and not any("streams" in n for n in names)  # one stream only
    assert [n for n in names if n.startswith("latency")] == ["latency-1000B-25pct", "latency-1000B-90pct"]
    assert plan.digest() != suite_plan.plan_from_config(parse_config({"variant": "flannel-vxlan"})).digest()


# --------------------------------------------------------------------------- pods


def test_pods_are_pinned_by_role_and_host_pods_use_the_host_network():
    manifests = suite_manifests.pod_manifests(small_plan())
    pods = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Pod"}
    assert set(pods) == {p[0] for p in suite_plan.PODS}
    for name, role, host_network, serves in suite_plan.PODS:
        spec = pods[name]["spec"]
        assert spec["nodeSelector"] == {"cnibench.io/role": role}
        assert spec.get("hostNetwork", False) is host_network
        container = spec["containers"][0]
        assert container["image"] == suite_plan.IMAGE
        assert container["command"][4] == ("server" if serves else "client")
    svc = next(m for m in manifests if m["kind"] == "Service")
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "cnibench-srv-pod"}
    assert {(p["protocol"], p["port"]) for p in svc["spec"]["ports"]} == {
        ("TCP", suite_plan.IPERF3_PORT), ("UDP", suite_plan.IPERF3_PORT), ("TCP", suite_plan.HTTP_PORT)}
    ns = manifests[0]
    assert ns["kind"] == "Namespace" and ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_image_is_pinned_to_a_dated_debian_tag():
    repo, tag = suite_plan.IMAGE.rsplit(":", 1)
    assert repo == "docker.io/library/debian"
    assert tag.startswith("bookworm-") and tag[len("bookworm-"):len("bookworm-") + 8].isdigit()


def test_manifests_are_valid_kubernetes_objects():
    import kubernetes_validate

    for m in suite_manifests.pod_manifests(small_plan()):
        kubernetes_validate.validate(m, "1.33", strict=True)


# --------------------------------------------------------------------------- runner files


def test_bundle_and_command_carry_every_file_verbatim(tmp_path):
    plan = small_plan()
    files = bundle.bundle(plan, "node-a", "node-b")
    assert set(files) == {*bundle.BUNDLED_SCRIPTS, "plan.env", "steps.tsv", "manifests.json"}
    cmd = bundle.remote_command(files)
    # execute only the file-writing part (everything before the runner starts)
    head = cmd.split('sudo -n bash "$W/bench.sh"')[0] + 'printf %s "$W"\n'
    work = Path(subprocess.run(["bash", "-c", head], capture_output=True, text=True, check=True).stdout)
    try:
        for name, content in files.items():
            assert (work / name).read_text() == content
    finally:
        shutil.rmtree(work)
    env = dict(line.split("=", 1) for line in files["plan.env"].splitlines())
    assert env["BENCH_CLIENT_NODE"] == "node-a" and env["BENCH_SERVER_NODE"] == "node-b"
    assert env["BENCH_REPEAT"] == "2" and env["BENCH_TIMEOUT"] == "600"
    rows = [r.split("\t") for r in files["steps.tsv"].splitlines() if not r.startswith("#")]
    assert len(rows) == len(plan.calibrations) + len(plan.steps)
    assert rows[0][:2] == ["host/max-rate-350B", "hey-max"]


def test_runner_script_cleans_up_and_bounds_every_step():
    text = (SCRIPTS / "bench.sh").read_text()
    assert "trap finish EXIT" in text and "delete namespace" in text
    assert 'timeout -k 5 "$to"' in text and 'timeout -k 10 "$((to + 15))"' in text
    assert "deadline" in text and "BENCH_TIMEOUT" in text
    assert "hey-reduce.awk" in text and "/proc/stat" in text and "/proc/meminfo" in text


@pytest.mark.skipif(shutil.which("sudo") is None, reason="sudo is not installed (apt-get install sudo)")
def test_runner_without_a_cluster_reports_the_failure_as_a_document(tmp_path):
    """The real wrapper + bench.sh + collect.py, on a machine with no cluster: the API server
    does not answer, so the run stops, cleans up, prints one document and exits 0."""
    cmd = bundle.remote_command(bundle.bundle(small_plan()))
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}
    if shutil.which("kubectl") is None:
        env["PATH"] = os.environ["PATH"]  # the runner then stops at "kubectl not found"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    raw = build.parse_raw(proc.stdout)
    assert raw["fatal"] and ("does not answer" in raw["fatal"] or "not found" in raw["fatal"])
    doc = build.build_result(proc.stdout, small_plan())
    results.validate(doc)
    assert doc["extra"]["status"] == "failed"
    assert all(s["status"] == "error" and raw["fatal"] in s["error"] for s in doc["subjects"])
    assert not list(Path("/tmp").glob("cnibench-bench.*/plan.env")), "the work directory was not removed"


# --------------------------------------------------------------------------- hey reduction


@pytest.mark.parametrize("name", ["hey-350-rate1000.csv", "hey-404.csv"])
def test_hey_reduction_loses_nothing(name):
    """The reduced CSV (real awk on real hey output) gives exactly the figures of the full CSV."""
    csv_text = (DATA / name).read_text()
    reduced = reduce_hey(DATA / name)
    assert len(reduced) < len(csv_text)
    rows = sum(1 for ln in csv_text.splitlines()[1:] if ln.strip())
    assert f"# rows {rows}" in reduced
    try:
        full = parsers.parse_hey_csv(csv_text, 10.0)
    except parsers.ParseError as exc:
        with pytest.raises(parsers.ParseError) as again:
            parsers.parse_hey_histogram(reduced, 10.0)
        assert "no successful request" in str(exc) and "no successful request" in str(again.value)
        return
    mine = parsers.parse_hey_histogram(reduced, 10.0)
    for attr in ("requests", "errors", "rate", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"):
        assert getattr(mine, attr) == pytest.approx(getattr(full, attr), rel=1e-12), attr
    assert mine.mean_ms == pytest.approx(full.mean_ms, rel=1e-9)
    assert mine.status_codes == full.status_codes


def test_hey_reduction_rejects_other_input():
    with pytest.raises(parsers.ParseError):
        parsers.parse_hey_histogram("", 1)
    with pytest.raises(parsers.ParseError):
        parsers.parse_hey_histogram((DATA / "hey-350-rate1000.csv").read_text(), 1)  # not reduced


# --------------------------------------------------------------------------- CPU and memory


def test_node_usage_from_proc_snapshots():
    before = "cpu  100 0 50 800 50 0 0 0 0 0\nMemTotal:       4000000 kB\nMemAvailable:   3000000 kB\n"
    after = "cpu  300 0 150 1400 50 0 0 0 0 0\nMemTotal:       4000000 kB\nMemAvailable:   2900000 kB\n"
    u = parsers.node_usage(before, after)
    assert u["busy_percent"] == pytest.approx(100 * 300 / 900)
    assert u["cpu_seconds"] == pytest.approx(3.0)
    assert u["mem_used_mb"] == pytest.approx(1_100_000 / 1024)
    assert parsers.node_usage("", after) is None


def test_node_usage_on_this_machine():
    before = proc_snapshot()
    sum(i * i for i in range(300_000))
    u = parsers.node_usage(before, proc_snapshot())
    assert u is not None and 0 <= u["busy_percent"] <= 100 and u["mem_used_mb"] > 0


# --------------------------------------------------------------------------- result document


def test_result_from_a_realistic_run(tmp_path):
    plan = small_plan()
    stdout = realistic_stdout(tmp_path, plan)
    raw = build.parse_raw(stdout)
    assert all("intervals" not in json.loads(r["output"]) for r in raw["runs"] if r["tool"] == "iperf3")
    ctx = build.RunContext(stack="flannel-vxlan", variant="flannel-vxlan", cni="flannel", cni_version="v0.28.9",
                           configured_mtu=8951, underlay_mtu=9001, instance_type="c6i.8xlarge",
                           client_node="ip-10-20-1-11.ec2.internal", server_node="ip-10-20-1-12.ec2.internal")
    doc = build.build_result(stdout, plan, ctx)
    results.validate(doc)
    assert doc["origin"] == "cloud" and doc["reference"] == "host"
    assert doc["extra"]["status"] == "complete", doc["extra"]["errors"]
    subjects = {s["name"]: s for s in doc["subjects"]}
    assert subjects["host"]["kind"] == "reference" and subjects["flannel-vxlan"]["kind"] == "variant"
    tcp = parsers.parse_iperf3((DATA / "iperf3-tcp.json").read_text()).gbit_per_second
    tests = {t["name"]: t for t in subjects["flannel-vxlan"]["tests"]}
    assert tests["tcp"]["samples"] == pytest.approx([tcp, tcp])
    assert tests["tcp"]["stats"]["median"] == pytest.approx(tcp) and tests["tcp"]["stats"]["cv"] == 0
    assert tests["tcp"]["efficiency"] == pytest.approx(1.0)  # same capture for host and variant
    assert tests["tcp-service"]["path"] == "pod-to-service" and tests["tcp-service"]["reference_test"] == "tcp"
    udp = tests["udp"]["repetitions"][0]["details"]
    assert udp["lost_percent"] is not None and udp["jitter_ms"] is not None
    hey = parsers.parse_hey_csv((DATA / "hey-350-rate1000.csv").read_text(), plan.duration)
    lat = tests["latency-350B-70pct"]
    assert lat["unit"] == "ms" and lat["higher_is_better"] is False
    assert lat["stats"]["median"] == pytest.approx(hey.p99_ms)
    assert lat["repetitions"][0]["percentiles"]["p99.9"] == pytest.approx(hey.p999_ms)
    assert lat["repetitions"][0]["details"]["target_rate"] == 300.0
    cpu = tests["tcp"]["cpu"]
    assert cpu["client_busy_percent"] is not None and cpu["server_mem_used_mb"] > 0
    assert cpu["cpu_seconds_per_gbit"] is not None
    rates = doc["parameters"]["extra"]["latency_max_rate_on_host"]
    assert rates["350"]["rate"] == pytest.approx(hey.rate)
    env = doc["environment"]
    assert env["kernel"] == os.uname().release and env["cpus"] == os.cpu_count()
    assert env["extra"]["nodes"]["client"]["node_mtu"] and env["extra"]["cni"]["version"] == "v0.28.9"
    assert env["extra"]["kubernetes_version"] == "v1.33.5"
    assert env["extra"]["cni"]["daemonset_images"]["kube-flannel-ds"] == ["ghcr.io/flannel-io/flannel:v0.28.9"]
    assert subjects["flannel-vxlan"]["configured_mtu"] == 8951
    table = suite_table.format_table(doc)
    assert "flannel-vxlan" in table and "latency-350B-70pct" in table and "p99.9" in table


def test_failures_are_recorded_and_the_rest_still_counts(tmp_path):
    plan = small_plan()
    stdout = realistic_stdout(tmp_path, plan, fail={
        "flannel-vxlan/udp-service": "refused", "flannel-vxlan/tcp-service": "timeout",
        "host/latency-350B-30pct": "skip", "flannel-vxlan/latency-350B-70pct": "http404"})
    doc = build.build_result(stdout, plan)
    results.validate(doc)
    assert doc["extra"]["status"] == "partial"
    tests = {(s["name"], t["name"]): t for s in doc["subjects"] for t in s["tests"]}
    assert tests[("flannel-vxlan", "udp-service")]["status"] == "error"
    assert "Connection refused" in tests[("flannel-vxlan", "udp-service")]["error"]
    assert "timed out" in tests[("flannel-vxlan", "tcp-service")]["error"]
    assert "benchmarkTimeout" in tests[("host", "latency-350B-30pct")]["error"]
    assert "no successful request" in tests[("flannel-vxlan", "latency-350B-70pct")]["error"]
    assert tests[("flannel-vxlan", "tcp")]["status"] == "ok"
    assert tests[("flannel-vxlan", "latency-350B-30pct")]["status"] == "ok"
    # a failed reference gives no efficiency, a good one still does
    assert tests[("flannel-vxlan", "latency-350B-30pct")]["efficiency"] is None
    assert tests[("flannel-vxlan", "tcp")]["efficiency"] == pytest.approx(1.0)
    assert "Connection refused" in suite_table.format_table(doc)


def test_one_failed_repetition_keeps_the_test(tmp_path):
    plan = small_plan()
    raw = build.parse_raw(realistic_stdout(tmp_path, plan))
    first = next(r for r in raw["runs"] if r["id"] == "flannel-vxlan/tcp")
    first.update(output=(DATA / "iperf3-refused.json").read_text(), rc=1)
    doc = build.build_result(json.dumps(raw), plan)
    results.validate(doc)
    tcp = next(t for s in doc["subjects"] if s["name"] == "flannel-vxlan" for t in s["tests"] if t["name"] == "tcp")
    assert tcp["status"] == "ok" and tcp["stats"]["n"] == 1 and "Connection refused" in tcp["error"]
    assert "1/2 repetitions failed" in suite_table.format_table(doc)


def test_pods_on_the_wrong_node_are_reported(tmp_path):
    plan = small_plan()
    stdout = realistic_stdout(tmp_path, plan)
    ctx = build.RunContext(variant="flannel-vxlan", client_node="ip-10-20-1-12", server_node="ip-10-20-1-12")
    doc = build.build_result(stdout, plan, ctx)
    assert any("not on the client node" in e for e in doc["extra"]["errors"])
    assert doc["extra"]["status"] == "partial"


@pytest.mark.parametrize("stdout, status", [
    ("", "no-output"),
    ("   \n", "no-output"),
    ("Warning: something\nnot json at all", "failed"),
    (json.dumps({"format": "something-else"}), "failed"),
    (json.dumps({"format": suite_plan.RAW_FORMAT, "fatal": "kubectl not found on the control plane"}), "failed"),
])
def test_unusable_outputs_still_give_a_valid_document(stdout, status):
    doc = build.build_result(stdout, small_plan())
    results.validate(doc)
    assert doc["extra"]["status"] == status
    assert [s["name"] for s in doc["subjects"]] == ["host", "flannel-vxlan"]
    assert all(s["tests"] == [] for s in doc["subjects"])
    assert suite_table.format_table(doc)


def test_a_runner_that_stopped_early_marks_the_missing_tests(tmp_path):
    plan = small_plan()
    raw = build.parse_raw(realistic_stdout(tmp_path, plan))
    raw["runs"] = raw["runs"][:3]
    doc = build.build_result(json.dumps(raw), plan)
    results.validate(doc)
    missing = [t for s in doc["subjects"] for t in s["tests"] if not t["repetitions"]]
    assert missing and all(t["status"] == "error" and "not run" in t["error"] for t in missing)


# --------------------------------------------------------------------------- runner pieces, run here


def test_calibration_rate_of_bench_sh_matches_the_parser():
    """bench.sh turns the host's unthrottled hey run into the rate the load levels scale."""
    import re

    prog = re.search(r"awk -F, -v d=\"\$dur\" '([^']+)'", (SCRIPTS / "bench.sh").read_text()).group(1)
    reduced = reduce_hey(DATA / "hey-350-rate1000.csv")
    out = subprocess.run([AWK, "-F,", "-v", "d=2", prog], input=reduced, capture_output=True, text=True, check=True)
    assert float(out.stdout) == pytest.approx(parsers.parse_hey_histogram(reduced, 2).rate, abs=1e-3)


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (Debian package nginx-light)")
def test_server_pod_nginx_config_serves_each_size(tmp_path):
    """The nginx configuration pod-setup.sh writes, started here on loopback."""
    import re
    import socket
    import urllib.request

    text = (SCRIPTS / "pod-setup.sh").read_text()
    conf = re.search(r"<<CONF\n(.*?)\nCONF\n", text, re.S).group(1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import tempfile

    # nginx workers drop root (to www-data or nobody), as in the pod: the files must be world-readable
    www = Path(tempfile.mkdtemp(prefix="cnibench-www-", dir="/tmp"))
    www.chmod(0o755)
    for size in (350, 4096):
        (www / str(size)).write_bytes(b"x" * size)
        (www / str(size)).chmod(0o644)
    conf = (conf.replace("$http_port", f"127.0.0.1:{port}").replace("/srv/cnibench", str(www))
            .replace("/tmp/nginx.pid", str(tmp_path / "nginx.pid")))
    (tmp_path / "nginx.conf").write_text(conf)
    proc = subprocess.Popen([shutil.which("nginx"), "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path),
                             "-g", "daemon off;"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                bodies = {size: urllib.request.urlopen(f"http://127.0.0.1:{port}/{size}", timeout=2).read()
                          for size in (350, 4096)}
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "nginx did not answer"
                time.sleep(0.1)
        assert {k: len(v) for k, v in bodies.items()} == {350: 350, 4096: 4096}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(www)


def test_schema_documents_the_cloud_run_status(tmp_path):
    import jsonschema

    doc = build.build_result("", small_plan())
    assert results.schema()["properties"]["extra"]["properties"]["status"]["enum"] == [
        "complete", "partial", "failed", "no-output"]
    doc["extra"]["status"] = "fine"
    with pytest.raises(jsonschema.ValidationError):
        results.validate(doc)
