"""The cloud suite's pure logic: plan, pods, runner scripts, raw output -> result document (schema v2).

The runner's output used here is assembled by the real ``collect.py`` from outputs really
captured on this project's machine (``tests/data``: iperf3 ``-J`` runs, sockperf reports, wrk
with ``wrk-report.lua``), ``probe.sh`` run here, and ``/proc/stat`` lines of this machine with
chosen tick increments (the guard and CPU cases need known busy shares).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from cnibench import parsers, results
from cnibench.suite import build, bundle, definition, records
from cnibench.suite import manifests as suite_manifests
from cnibench.suite import plan as suite_plan
from cnibench.suite import table as suite_table

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SCRIPTS = ROOT / "cnibench" / "suite" / "runner"
VARIANT = "flannel-vxlan"

# The names of the suite for the cloud defaults, literally: a test dropped from the definition
# or from the plan fails here.
HOST_TESTS = ["tcp", "udp", "tcp-rr-14B", "tcp-rr-1024B", "udp-rr-14B", "udp-rr-1024B", "tcp-crr", "http-350B",
              "http-4096B", "latency-tcp-30pct", "latency-tcp-50pct", "latency-udp-30pct", "latency-udp-50pct",
              "cpu-tcp", "mtu"]
VARIANT_TESTS = ["tcp", "tcp-service", *HOST_TESTS[1:]]

# what the captured under-load runs were made with (tests/data/README.md): the target bench.sh
# records for them
UNDER_LOAD_TARGET = {"tcp": 20000}
CAPTURE = {
    ("iperf3", "tcp"): "iperf3-tcp-omit.json",
    ("iperf3", "udp"): "iperf3-udp-fixed.json",
    ("iperf3", "cpu"): "iperf3-tcp-omit.json",
    ("sockperf", "throughput", "tcp"): "sockperf-tp-tcp-mpsmax.txt",
    ("sockperf", "throughput", "udp"): "sockperf-tp-udp-mpsmax.txt",
    ("sockperf", "ping-pong", "tcp", 14): "sockperf-pp-tcp-m14.txt",
    ("sockperf", "ping-pong", "tcp", 1024): "sockperf-pp-tcp-m1024.txt",
    ("sockperf", "ping-pong", "udp", 14): "sockperf-pp-udp-m14.txt",
    ("sockperf", "ping-pong", "udp", 1024): "sockperf-pp-udp-m1024.txt",
    ("sockperf", "under-load", "tcp"): "sockperf-ul-tcp-mps20000.txt",
    ("sockperf", "under-load", "udp"): "sockperf-ul-udp-mpsmax.txt",  # 5 % of the replies dropped
    ("wrk", "close"): "wrk-close-350.txt",
    ("wrk", "keepalive"): "wrk-keepalive-4096.txt",
}
NODE_CPUS = os.cpu_count() or 1  # the probe runs here: nproc of this machine


def small_settings(**kw) -> definition.SuiteSettings:
    args = dict(duration_s=2.0, rr_duration_s=2.0, repeat_min=2, repeat_max=2)
    args.update(kw)
    return replace(definition.CLOUD_DEFAULTS, **args)


def small_plan(**kw) -> suite_plan.SuitePlan:
    return suite_plan.plan_suite(VARIANT, settings=small_settings(**kw), mtus=(9001, 8951), timeout=600, run="7")


def probe_output() -> str:
    return subprocess.run(["sh", str(SCRIPTS / "probe.sh")], capture_output=True, text=True, check=True).stdout


def stat_line(base: str, busy: int, idle: int) -> str:
    """``base`` (an aggregate /proc/stat line) advanced by ``busy`` user and ``idle`` idle ticks."""
    f = base.split()
    f[1] = str(int(f[1]) + busy)
    f[4] = str(int(f[4]) + idle)
    return " ".join(f[:1] + [""] + f[1:])  # "cpu  ..." as the kernel prints it


def load_pair(base: str, busy_fraction: float, seconds: float = 1.0) -> str:
    """Two /proc/stat lines ``seconds`` apart with ``busy_fraction`` of all CPUs busy."""
    total = round(seconds * parsers.USER_HZ * NODE_CPUS)
    busy = round(busy_fraction * total)
    return base + "\n" + stat_line(base, busy, total - busy) + "\n"


def write_raw_dir(work: Path, plan: suite_plan.SuitePlan, *, fail: dict[str, str] | None = None,
                  busy: dict[tuple[int, str], float] | None = None, cpu_busy: float = 0.2,
                  targets: dict[str, float] | None = None,
                  client_node: str = "ip-10-20-1-11.ec2.internal", server_node: str = "ip-10-20-1-12.ec2.internal") -> Path:
    """The directory bench.sh leaves behind, filled with real captured outputs.

    ``fail`` maps a step id to a failure: ``refused`` (iperf3's, sockperf's or wrk's own report of
    a refused connection), ``timeout`` (exit 124, no output), ``skip`` (not run), ``http404`` (wrk
    got 404s). ``busy`` gives the guard's busy share of both nodes for (repetition, subject)
    (default 5 %), ``cpu_busy`` the nodes' busy share during cpu-tcp, ``targets`` overrides the
    recorded target rate of an under-load step.
    """
    fail, busy, targets = fail or {}, busy or {}, targets or {}
    files = bundle.bundle(plan, client_node, server_node)
    for name, content in files.items():
        (work / name).write_text(content)
    raw = work / "raw"
    for sub in ("pods", "runs", "calib", "guards"):
        (raw / sub).mkdir(parents=True)
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
    stat = Path("/proc/stat").read_text().splitlines()[0]
    n = 0
    calib: dict[str, float] = {}

    def add(step: suite_plan.Step, rep: int) -> None:
        nonlocal n
        n += 1
        d = raw / "runs" / f"{n:04d}"
        d.mkdir()
        meta = [f"id={step.id}", f"rep={rep}", f"phase={step.phase}", f"tool={step.tool}", f"mode={step.mode}"]
        how = fail.get(step.id)
        base = calib.get(step.calibration) if step.calibration != "-" else None
        if how == "skip" or (step.calibration != "-" and base is None):
            reason = ("benchmarkTimeout (600s) reached" if how == "skip"
                      else f"no reference rate: the host calibration {step.calibration} failed")
            (d / "meta").write_text("\n".join([*meta, f"skipped={reason}"]) + "\n")
            return
        if base is not None:
            meta.append(f"calibration_value={base}")
        meta.append("target=10.244.2.5")
        rc, out = 0, ""
        if step.tool == "iperf3":
            out = (DATA / CAPTURE[("iperf3", step.mode)]).read_text()
            if how == "refused":
                out, rc = (DATA / "iperf3-refused.json").read_text(), 1
            if step.mode == "cpu":
                meta.append(f"offered_mbit={max(1, round(base * step.fraction / 1e6))}")
                total = round(11 * parsers.USER_HZ * NODE_CPUS)  # the 10 s test and its start-up
                for who in ("client", "server"):
                    (d / f"idle.{who}").write_text(load_pair(stat, 0.03, step.idle))
                    (d / f"before.{who}").write_text(stat + "\n")
                    b = round(cpu_busy * total)
                    (d / f"after.{who}").write_text(stat_line(stat, b, total - b) + "\n")
        elif step.tool == "sockperf":
            key = (("sockperf", step.mode, step.proto, step.size) if step.mode == "ping-pong"
                   else ("sockperf", step.mode, step.proto))
            out = (DATA / CAPTURE[key]).read_text()
            if how == "refused":
                out = (DATA / "sockperf-pp-tcp-refused.txt").read_text()  # sockperf exits 0 even then
            if step.mode == "under-load":
                target = targets.get(step.id, UNDER_LOAD_TARGET.get(step.proto) or int(base * step.fraction))
                meta.append(f"target_rate={int(target)}")
        elif step.tool == "wrk":
            out = (DATA / CAPTURE[("wrk", step.mode)]).read_text()
            if how == "http404":
                out = (DATA / "wrk-404.txt").read_text()
            elif how == "refused":
                out, rc = (DATA / "wrk-refused.txt").read_text(), 1
        elif step.tool == "mtu":
            out = probe
        if how == "timeout":
            out, rc = "", 124
            meta.append("timed_out=1")
        meta += [f"started={int(time.time())}", f"ended={int(time.time()) + step.duration}", f"rc={rc}"]
        (d / "meta").write_text("\n".join(meta) + "\n")
        (d / "out").write_text(out)
        (d / "err").write_text("")
        if step.phase == "calibration" and rc == 0 and how is None:
            # what bench.sh's calibrated() writes (checked against its code below)
            if step.tool == "sockperf":
                calib[step.test] = parsers.parse_sockperf(out).message_rate
            else:
                calib[step.test] = parsers.parse_iperf3(out).bits_per_second
            (raw / "calib" / step.test).write_text(f"{calib[step.test]}\n")

    for step in plan.calibrations:
        add(step, 0)
    g = 0
    for rep in range(plan.repeat):
        for subject in plan.subjects:
            g += 1
            gd = raw / "guards" / f"{g:04d}"
            gd.mkdir()
            (gd / "meta").write_text(f"rep={rep}\nsubject={subject}\nseconds=1\n")
            for who in ("client", "server"):
                (gd / f"load.{who}").write_text(load_pair(stat, busy.get((rep, subject), 0.05)))
            for step in plan.steps:
                if step.subject == subject:
                    add(step, rep)
    return work


def realistic_stdout(tmp_path: Path, plan: suite_plan.SuitePlan, **kw) -> str:
    """What the runner prints: the real collect.py over a raw directory of real outputs."""
    work = write_raw_dir(tmp_path, plan, **kw)
    proc = subprocess.run([sys.executable, str(work / "collect.py"), str(work)], capture_output=True, text=True,
                          check=True)
    return proc.stdout


def by_name(doc: dict) -> dict[tuple[str, str], dict]:
    return {(s["name"], t["name"]): t for s in doc["subjects"] for t in s["tests"]}


CTX = build.RunContext(stack=VARIANT, variant=VARIANT, cni="flannel", cni_version="v0.28.9", configured_mtu=8951,
                       underlay_mtu=9001, instance_type="c6i.8xlarge", client_node="ip-10-20-1-11.ec2.internal",
                       server_node="ip-10-20-1-12.ec2.internal")


# --------------------------------------------------------------------------- plan


def test_plan_runs_the_lab_suite_for_host_and_variant():
    settings = definition.CLOUD_DEFAULTS
    plan = suite_plan.plan_suite("cilium-vxlan", settings=settings, mtus=(9001, 8951))
    tests = {s: [t.name for t in planned] for s, planned in plan.tests().items()}
    udp = settings.udp_size(8951)
    # the one definition the lab uses: same names, same order
    assert tests["host"] == [d.name for d in definition.suite_tests(settings, udp_size=udp, service=False)]
    assert tests["cilium-vxlan"] == [d.name for d in definition.suite_tests(settings, udp_size=udp, service=True)]
    assert tests["host"] == HOST_TESTS and tests["cilium-vxlan"] == VARIANT_TESTS
    # every test has exactly one step per repetition, host steps on host pods, variant steps on pod-network pods
    assert [s.test for s in plan.steps] == [*HOST_TESTS, *VARIANT_TESTS]
    assert {(s.client, s.target) for s in plan.steps if s.subject == "host"} == {("cnibench-cli-host", "cnibench-srv-host")}
    assert {(s.client, s.target) for s in plan.steps if s.subject == "cilium-vxlan"} == {
        ("cnibench-cli-pod", "cnibench-srv-pod"), ("cnibench-cli-pod", suite_plan.SERVICE)}
    assert [c.test for c in plan.calibrations] == definition.calibrations(settings) == [
        "max-msg-rate-tcp", "max-msg-rate-udp", "max-tcp"]
    assert all(c.subject == "host" and c.phase == "calibration" for c in plan.calibrations)
    steps = {s.id: s for s in plan.steps}
    assert steps["host/udp"].size == udp == 8951 - 28 and steps["host/udp"].rate == "1000M"
    assert steps["cilium-vxlan/tcp"].omit == 1 and steps["cilium-vxlan/tcp"].duration == 10
    assert steps["cilium-vxlan/tcp"].timeout == 10 + 1 + suite_plan.STEP_MARGIN_S
    ul = steps["cilium-vxlan/latency-udp-50pct"]
    assert (ul.tool, ul.mode, ul.calibration, ul.fraction, ul.reply_every, ul.size) == (
        "sockperf", "under-load", "max-msg-rate-udp", 0.5, 10, 14)
    cpu = steps["host/cpu-tcp"]
    assert (cpu.calibration, cpu.fraction, cpu.omit, cpu.idle) == ("max-tcp", 0.25, 0, 1.0)
    assert steps["host/tcp-crr"].mode == "close" and steps["host/tcp-crr"].connections == 1
    assert steps["host/http-4096B"].mode == "keepalive" and steps["host/http-4096B"].connections == 4
    planned = {t.name: t for t in plan.tests()["cilium-vxlan"]}
    assert planned["tcp-service"].path == "pod-to-service" and planned["tcp-service"].definition.reference_test == "tcp"
    assert planned["tcp"].path == "pod-to-pod" and plan.tests()["host"][0].path == "node-to-node"
    assert plan.served_sizes == (350, 4096)


def test_plan_from_config_uses_the_benchmark_keys():
    from cnibench.config import parse_config

    cfg = parse_config({"variant": VARIANT, "benchmarkDuration": 12, "benchmarkRepeat": 4,
                        "benchmarkStreams": 2, "benchmarkLoadLevels": "[25, 90]",
                        "benchmarkResponseSizes": "[1000]", "benchmarkRun": "b", "benchmarkTimeout": 5000})
    plan = suite_plan.plan_from_config(cfg)
    s = plan.settings
    assert (s.duration_s, s.rr_duration_s, s.repeat_min, s.repeat_max, s.streams) == (12, 12, 4, 4, 2)
    assert (plan.repeat, plan.timeout, plan.run) == (4, 5000, "b")
    assert s.load_fractions == (0.25, 0.9) and s.http_sizes == (1000,)
    assert (s.omit_s, s.rr_sizes, s.udp_rate_mbit) == (1, (14, 1024), 1000)  # the rest: CLOUD_DEFAULTS
    names = [t.name for t in plan.tests()[VARIANT]]
    assert [n for n in names if n.startswith(("latency", "http"))] == [
        "http-1000B", "latency-tcp-25pct", "latency-tcp-90pct", "latency-udp-25pct", "latency-udp-90pct"]
    assert not any("streams" in n for n in names)  # the tcp test itself runs -P 2
    assert next(st for st in plan.steps if st.id == f"{VARIANT}/tcp").streams == 2
    # UDP datagrams fit the smaller of the node MTU and the variant's pod MTU
    assert plan.udp_size == min(cfg.underlay_mtu, cfg.pod_mtu) - 28 == 8951 - 28
    assert plan.served_sizes == (350, 1000)  # tcp-crr's 350 B response too
    assert plan.digest() != suite_plan.plan_from_config(parse_config({"variant": VARIANT})).digest()


def test_default_plan_fits_the_default_timeout_in_practice():
    from cnibench.config import parse_config

    plan = suite_plan.plan_from_config(parse_config({"variant": VARIANT}))
    assert plan.repeat == 5 and plan.settings.duration_s == 10
    measured = sum(s.duration + s.omit + s.idle for s in (*plan.calibrations, *plan.steps)) * plan.repeat
    assert measured < plan.timeout  # the tools' own time; max_runtime_s() adds every margin
    assert plan.max_runtime_s() > measured


def test_steps_tsv_has_one_field_per_column_and_bench_sh_reads_them_all():
    plan = small_plan()
    text = bundle.steps_tsv(plan)
    header, *rows = text.splitlines()
    assert header == "# " + "\t".join(suite_plan.TSV_COLUMNS)
    for row in rows:
        fields = row.split("\t")
        # bash's read collapses empty tab-separated fields: none may be empty
        assert len(fields) == len(suite_plan.TSV_COLUMNS) and all(fields), row
    read = re.search(r"while IFS=\$'\\t' read -r -u 3 (.*?); do", (SCRIPTS / "bench.sh").read_text(), re.S).group(1)
    assert len(read.replace("\\\n", " ").split()) == len(suite_plan.TSV_COLUMNS)


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
        assert container["command"][7:10] == [str(suite_plan.IPERF3_PORT), str(suite_plan.SOCKPERF_PORT),
                                              str(suite_plan.HTTP_PORT)]
        assert container["command"][10:] == ["350", "4096"]
    svc = next(m for m in manifests if m["kind"] == "Service")
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "cnibench-srv-pod"}
    assert {(p["protocol"], p["port"]) for p in svc["spec"]["ports"]} == {
        ("TCP", suite_plan.IPERF3_PORT), ("UDP", suite_plan.IPERF3_PORT), ("TCP", suite_plan.HTTP_PORT)}
    ns = manifests[0]
    assert ns["kind"] == "Namespace" and ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_pods_install_the_suite_tools_and_serve_sockperf():
    text = (SCRIPTS / "pod-setup.sh").read_text()
    assert 'packages="iperf3 sockperf wrk nginx-light"' in text
    assert suite_plan.PACKAGES == ("iperf3", "sockperf", "wrk", "nginx-light")
    assert 'sockperf server --tcp -p "$sockperf_port"' in text and 'sockperf server -p "$sockperf_port"' in text
    assert not re.search(r"\bhey\b", text)


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
    assert "wrk-report.lua" in files and "hey-reduce.awk" not in files
    assert files["wrk-report.lua"] == (SCRIPTS / "wrk-report.lua").read_text()
    assert not (SCRIPTS / "hey-reduce.awk").exists()
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
    assert env["BENCH_SUBJECTS"] == f"'host {VARIANT}'" and env["BENCH_SOCKPERF_PORT"] == "11111"
    assert env["BENCH_GUARD_SECONDS"] == "1"
    rows = [r.split("\t") for r in files["steps.tsv"].splitlines() if not r.startswith("#")]
    assert len(rows) == len(plan.calibrations) + len(plan.steps)
    assert rows[0][:4] == ["host/max-msg-rate-tcp", "calibration", "sockperf", "throughput"]


def test_runner_script_cleans_up_bounds_every_step_and_guards_every_block():
    text = (SCRIPTS / "bench.sh").read_text()
    assert "trap finish EXIT" in text and "delete namespace" in text
    assert 'timeout -k 5 "$to"' in text and 'timeout -k 10 "$((to + 15))"' in text
    assert "deadline" in text and "BENCH_TIMEOUT" in text
    assert "wrk-report.lua" in text and not re.search(r"\bhey\b", text)
    # interleaved: for each repetition, for each subject, the guard and then that subject's steps
    loop = text[text.index("for ((rep = 0"):]
    assert loop.index("for subject in $BENCH_SUBJECTS") < loop.index('guard "$rep" "$subject"') < \
        loop.index('run_steps "$rep" test "$subject"')
    assert text.index("run_steps 0 calibration") < text.index("for ((rep = 0")


def run_bash_function(name: str, script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run one function of bench.sh (its text, cut out of the script) with stub helpers."""
    text = (SCRIPTS / "bench.sh").read_text()
    body = re.search(rf"^{name}\(\) {{\n.*?^}}\n", text, re.S | re.M).group(0)
    prelude = 'log() { :; }\nnote_error() { printf "%s\\n" "$*" >>"$R/errors"; }\n'
    return subprocess.run(["bash", "-c", prelude + body + script], capture_output=True, text=True,
                          env={**os.environ, **env}, check=True)


@pytest.mark.parametrize("name, tool", [("max-msg-rate-tcp", "sockperf"), ("max-msg-rate-udp", "sockperf"),
                                        ("max-tcp", "iperf3")])
def test_bench_sh_calibration_values_match_the_parsers(tmp_path, name, tool):
    """bench.sh's calibrated() reads the host's maxima from the real captures as the parsers do."""
    capture = {"max-msg-rate-tcp": "sockperf-tp-tcp-mpsmax.txt", "max-msg-rate-udp": "sockperf-tp-udp-mpsmax.txt",
               "max-tcp": "iperf3-tcp-omit.json"}[name]
    (tmp_path / "calib").mkdir()
    run_bash_function("calibrated", f'calibrated {name} {tool} "{DATA / capture}"\n', {"R": str(tmp_path)})
    value = float((tmp_path / "calib" / name).read_text())
    text = (DATA / capture).read_text()
    expected = (parsers.parse_sockperf(text, mode="throughput").message_rate if tool == "sockperf"
                else parsers.parse_iperf3(text).bits_per_second)
    assert value == pytest.approx(expected, rel=1e-9)
    # an output without a rate leaves no value and records the error
    (tmp_path / "bad" / "calib").mkdir(parents=True)
    run_bash_function("calibrated", f'calibrated {name} {tool} "{DATA / "sockperf-pp-tcp-refused.txt"}"\n',
                      {"R": str(tmp_path / "bad")})
    assert not (tmp_path / "bad" / "calib" / name).exists()
    assert "failed" in (tmp_path / "bad" / "errors").read_text()


@pytest.mark.skipif(shutil.which("sudo") is None, reason="sudo is not installed (apt-get install sudo)")
def test_runner_without_a_cluster_reports_the_failure_as_a_document(tmp_path):
    """The real wrapper + bench.sh + collect.py, on a machine with no cluster: the API server
    does not answer, so the run stops, cleans up, prints one document and exits 0."""
    cmd = bundle.remote_command(bundle.bundle(small_plan()))
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    raw = build.parse_raw(proc.stdout)
    assert raw["fatal"] and ("does not answer" in raw["fatal"] or "not found" in raw["fatal"])
    doc = build.build_result(proc.stdout, small_plan())
    results.validate(doc)
    assert doc["extra"]["status"] == "failed"
    assert all(s["status"] == "error" and raw["fatal"] in s["error"] for s in doc["subjects"])
    assert not list(Path("/tmp").glob("cnibench-bench.*/plan.env")), "the work directory was not removed"


# --------------------------------------------------------------------------- CPU and memory


def test_node_usage_from_proc_snapshots():
    before = "cpu  100 0 50 800 50 0 0 0 0 0\nMemTotal:       4000000 kB\nMemAvailable:   3000000 kB\n"
    after = "cpu  300 0 150 1400 50 0 0 0 0 0\nMemTotal:       4000000 kB\nMemAvailable:   2900000 kB\n"
    u = parsers.node_usage(before, after)
    assert u["busy_percent"] == pytest.approx(100 * 300 / 900)
    assert u["cpu_seconds"] == pytest.approx(3.0)
    assert u["mem_used_mb"] == pytest.approx(1_100_000 / 1024)
    assert parsers.node_usage("", after) is None


# --------------------------------------------------------------------------- result document


def test_result_from_a_realistic_run(tmp_path):
    plan = small_plan()
    stdout = realistic_stdout(tmp_path, plan)
    assert len(stdout) < 200_000  # the stack output stays small
    raw = build.parse_raw(stdout)
    assert all("intervals" not in json.loads(r["output"]) for r in raw["runs"] if r["tool"] == "iperf3")
    assert all("\x1b[" not in r["output"] for r in raw["runs"] if r["tool"] == "sockperf")
    doc = build.build_result(stdout, plan, CTX)
    results.validate(doc)
    assert doc["origin"] == "cloud" and doc["reference"] == "host" and doc["schema_version"].startswith("2.")
    subjects = {s["name"]: s for s in doc["subjects"]}
    assert [t["name"] for t in subjects["host"]["tests"]] == HOST_TESTS
    assert [t["name"] for t in subjects[VARIANT]["tests"]] == VARIANT_TESTS
    tests = by_name(doc)

    # what the nodes ran, from probe.sh run for real on this machine (its default-route NIC)
    iface = next(line.split()[0] for line in Path("/proc/net/route").read_text().splitlines()[1:]
                 if line.split()[1] == "00000000")
    driver = Path(f"/sys/class/net/{iface}/device/driver").resolve().name
    node = doc["environment"]["extra"]["nodes"]["server"]
    assert node["interface"] == iface and node["nic_driver"] == driver
    assert node["nic_queues"]["rx"] == len(list(Path(f"/sys/class/net/{iface}/queues").glob("rx-*")))

    # throughput: iperf3 -O 1, the receiver's rate; same capture on both sides: ratio 1
    tcp = parsers.parse_iperf3((DATA / "iperf3-tcp-omit.json").read_text()).gbit_per_second
    t = tests[(VARIANT, "tcp")]
    assert t["samples"] == pytest.approx([tcp, tcp]) and t["unit"] == "Gbit/s" and t["tool"].startswith("iperf3 ")
    assert t["ratio"]["estimate"] == pytest.approx(1.0) and t["ratio"]["n"] == 2
    assert tests[(VARIANT, "tcp-service")]["path"] == "pod-to-service"
    assert tests[(VARIANT, "tcp-service")]["reference_test"] == "tcp"
    udp = tests[(VARIANT, "udp")]["repetitions"][0]["details"]
    assert udp["lost_percent"] == pytest.approx(1.8612, rel=1e-3) and udp["offered_mbit"] == 1000

    # request/response: sockperf p50 in µs, percentiles kept
    pp = parsers.parse_sockperf((DATA / "sockperf-pp-udp-m1024.txt").read_text())
    rr = tests[(VARIANT, "udp-rr-1024B")]
    assert rr["unit"] == "µs" and rr["higher_is_better"] is False and rr["status"] == "ok"
    assert rr["stats"]["median"] == pytest.approx(pp.percentiles_us["p50"])
    assert rr["percentiles_us"]["p99"] == pytest.approx(pp.percentiles_us["p99"])

    # connection rate and HTTP: wrk, closed loop
    close = parsers.parse_wrk((DATA / "wrk-close-350.txt").read_text())
    crr = tests[("host", "tcp-crr")]
    assert crr["stats"]["median"] == pytest.approx(close.rate) and crr["closed_loop"] is True
    assert tests[(VARIANT, "http-4096B")]["unit"] == "requests/s"

    # under load: the TCP capture reached its 20 000 msg/s target, so it passes the gate
    ul = parsers.parse_sockperf((DATA / "sockperf-ul-tcp-mps20000.txt").read_text(), mode="under-load")
    lat = tests[(VARIANT, "latency-tcp-30pct")]
    assert lat["status"] == "ok" and lat["stats"]["median"] == pytest.approx(ul.percentiles_us["p99"])
    assert lat["repetitions"][0]["details"]["target_rate"] == 20000
    assert "p99.9" in lat["percentiles_us"] and "p99.99" not in lat["percentiles_us"]  # 1099 observations
    # the UDP capture (--mps max) lost 5 % of its replies: the gate refuses it, on host and variant
    for subject in ("host", VARIANT):
        bad = tests[(subject, "latency-udp-50pct")]
        assert bad["status"] == "invalid" and bad["samples"] == [] and bad["stats"]["median"] is None
        assert all(r["value"] is None and "replies missing" in r["invalid_reason"] for r in bad["repetitions"])
        assert "replies missing" in bad["validity"]["reason"]

    # CPU: both nodes' busy time minus the idle baseline, per Gbit actually carried
    cpu = tests[(VARIANT, "cpu-tcp")]
    rep = cpu["repetitions"][0]
    total = round(11 * parsers.USER_HZ * NODE_CPUS)
    busy_s = 2 * round(0.2 * total) / parsers.USER_HZ
    baseline_s = 2 * (round(0.03 * parsers.USER_HZ * NODE_CPUS) / (parsers.USER_HZ * NODE_CPUS)) * total / parsers.USER_HZ
    gbits = parsers.parse_iperf3((DATA / "iperf3-tcp-omit.json").read_text())
    assert cpu["status"] == "ok" and cpu["unit"] == "CPU s/Gbit"
    assert rep["value"] == pytest.approx((busy_s - baseline_s) / (gbits.gbit_per_second * gbits.duration_s), rel=1e-6)
    assert rep["cpu"]["busy_percent"] == pytest.approx(20, abs=0.1)
    assert rep["cpu"]["client_cpu_seconds_per_gbit"] + rep["cpu"]["server_cpu_seconds_per_gbit"] == pytest.approx(
        rep["value"], rel=1e-6)
    calib = doc["parameters"]["extra"]["calibration"]
    assert rep["details"]["target_gbit_per_second"] == pytest.approx(
        round(calib["max-tcp"]["value"] * 1e3 * 0.25) / 1e3)
    assert calib["max-msg-rate-tcp"]["value"] == pytest.approx(
        parsers.parse_sockperf((DATA / "sockperf-tp-tcp-mpsmax.txt").read_text()).message_rate)
    assert calib["max-tcp"]["runner_value"] == pytest.approx(calib["max-tcp"]["value"])

    # mtu: the client pod's interface, as probe.sh reads it
    mtu = int(dict(ln.split("=", 1) for ln in probe_output().splitlines())["mtu"])
    assert tests[(VARIANT, "mtu")]["stats"]["median"] == mtu and subjects[VARIANT]["observed_mtu"] == mtu
    assert tests[(VARIANT, "mtu")]["parameters"]["path_mtu_probed"] is False

    # guard, repetitions, parameters, run-level verdicts
    assert all(r["guard"]["busy_fraction"] == pytest.approx(0.05, abs=0.01) and r["contaminated"] is False
               for t in tests.values() for r in t["repetitions"])
    params = doc["parameters"]
    assert params["repetitions"] == {"min": 2, "max": 2, "target_half_width": 0.05, "done": 2,
                                     "stopped": "not-adaptive"}
    assert params["suite"]["udp_datagram_bytes"] == 8923 and params["suite"]["omit_s"] == 1
    assert doc["extra"]["status"] == "partial" and doc["extra"]["tests_total"] == len(HOST_TESTS) + len(VARIANT_TESTS)
    assert doc["extra"]["tests_ok"] == doc["extra"]["tests_total"] - 4  # the four latency-udp tests
    assert doc["extra"]["contamination"]["contaminated"] == 0 and doc["extra"]["contamination"]["repetitions"] == 4
    assert doc["extra"]["ranking"] == {"allowed": True, "reason": None}
    env = doc["environment"]
    assert env["kernel"] == os.uname().release and env["cpus"] == os.cpu_count()
    assert env["extra"]["tools"]["sockperf"] and env["extra"]["tools"]["wrk"]
    assert env["extra"]["kubernetes_version"] == "v1.33.5"
    assert subjects[VARIANT]["configured_mtu"] == 8951

    text = suite_table.format_table(doc)
    assert "latency-tcp-30pct" in text and "µs" in text and "no contamination" in text
    ratio = t["ratio"]
    assert f"{ratio['estimate']:.3f} [{ratio['low']:.3f}-{ratio['high']:.3f}]" in text
    line = next(ln for ln in text.splitlines() if " latency-udp-50pct " in ln and ln.startswith(VARIANT))
    assert "invalid: no valid repetition" in line and " µs" not in line  # no figure for an invalid test


def test_the_gate_refuses_an_under_load_run_at_half_its_target(tmp_path):
    """The validity gate through build_result: the TCP capture achieved 20 002 msg/s; with a
    target of 40 000 it reached 50 %: invalid, with the reason, never a value."""
    plan = small_plan()
    step = f"{VARIANT}/latency-tcp-50pct"
    doc = build.build_result(realistic_stdout(tmp_path, plan, targets={step: 40000}), plan, CTX)
    results.validate(doc)
    t = by_name(doc)[(VARIANT, "latency-tcp-50pct")]
    assert t["status"] == "invalid" and t["samples"] == [] and t["ratio"] is None
    for r in t["repetitions"]:
        assert r["valid"] is False and r["value"] is None and "percentiles_us" not in r
        assert "load generator behind" in r["invalid_reason"] and "(50.0 %" in r["invalid_reason"]
        assert r["details"]["target_rate"] == 40000
    # the same capture at its own target passes: the gate judges the rate, not the capture
    assert by_name(doc)[(VARIANT, "latency-tcp-30pct")]["status"] == "ok"
    line = next(ln for ln in suite_table.format_table(doc).splitlines()
                if ln.startswith(VARIANT) and " latency-tcp-50pct " in ln)
    assert "invalid: no valid repetition: load generator behind" in line


def test_a_contaminated_block_is_flagged_and_left_out(tmp_path):
    plan = small_plan()
    stdout = realistic_stdout(tmp_path, plan, busy={(1, VARIANT): 0.9})
    doc = build.build_result(stdout, plan, CTX)
    results.validate(doc)
    tests = by_name(doc)
    for (subject, _name), t in tests.items():
        for r in t["repetitions"]:
            assert r["contaminated"] is (subject == VARIANT and r["index"] == 1)
            assert r["guard"]["busy_fraction"] == pytest.approx(0.9 if r["contaminated"] else 0.05, abs=0.01)
    tcp = tests[(VARIANT, "tcp")]
    assert tcp["stats"]["n"] == 1 and tcp["validity"]["contaminated_repetitions"] == 1
    assert tcp["ratio"]["n"] == 1  # only the clean repetition is paired with the host's
    assert tests[("host", "tcp")]["stats"]["n"] == 2
    c = doc["extra"]["contamination"]
    assert (c["repetitions"], c["contaminated"], c["retried"]) == (4, 1, 0)
    assert c["threshold_busy_fraction"] == definition.BUSY_THRESHOLD and "1 of 4" in c["verdict"]
    assert doc["extra"]["ranking"]["allowed"] is False and "contaminated" in doc["extra"]["ranking"]["reason"]
    assert "1 of 4 subject repetitions" in suite_table.format_table(doc)


def test_the_guard_threshold_is_the_run_contexts(tmp_path):
    plan = small_plan()
    stdout = realistic_stdout(tmp_path, plan, busy={(1, VARIANT): 0.9})
    doc = build.build_result(stdout, plan, replace(CTX, busy_threshold=0.95))
    c = doc["extra"]["contamination"]
    assert (c["contaminated"], c["threshold_busy_fraction"]) == (0, 0.95)
    assert doc["parameters"]["extra"]["busy_threshold"] == 0.95
    assert by_name(doc)[(VARIANT, "tcp")]["stats"]["n"] == 2


@pytest.mark.parametrize("busy", [0.97, 1.0])
def test_cpu_is_invalid_when_the_nodes_were_saturated(tmp_path, busy):
    plan = small_plan()
    doc = build.build_result(realistic_stdout(tmp_path, plan, cpu_busy=busy), plan, CTX)
    results.validate(doc)
    for subject in ("host", VARIANT):
        t = by_name(doc)[(subject, "cpu-tcp")]
        assert t["status"] == "invalid" and t["samples"] == []
        assert all(r["value"] is None and "saturated" in r["invalid_reason"] for r in t["repetitions"])
        assert all("cpu_seconds_per_gbit" not in r["cpu"] for r in t["repetitions"])


def test_one_saturated_node_invalidates_the_cpu_figure(tmp_path):
    """Both nodes together were 60 % busy, but the client node was at 100 %."""
    plan = small_plan()
    raw = build.parse_raw(realistic_stdout(tmp_path, plan))
    for run in raw["runs"]:
        if run["mode"] == "cpu":
            before = run["cpu"]["before"]["client"].strip()
            total = round(11 * parsers.USER_HZ * NODE_CPUS)
            run["cpu"]["after"]["client"] = stat_line(before, total, 0) + "\n"
    doc = build.build_result(json.dumps(raw), plan, CTX)
    results.validate(doc)
    reasons = [r["invalid_reason"] for r in by_name(doc)[(VARIANT, "cpu-tcp")]["repetitions"]]
    assert reasons and all("client node was saturated (100 % busy)" in r for r in reasons)
    assert records.SATURATION_FRACTION < 1.0


def test_failures_are_recorded_and_the_rest_still_counts(tmp_path):
    plan = small_plan()
    stdout = realistic_stdout(tmp_path, plan, fail={
        f"{VARIANT}/udp": "refused", f"{VARIANT}/tcp-service": "timeout", "host/tcp-rr-14B": "skip",
        f"{VARIANT}/http-350B": "http404", f"{VARIANT}/tcp-rr-1024B": "refused", f"{VARIANT}/tcp-crr": "refused",
        "host/max-msg-rate-tcp": "timeout"})
    doc = build.build_result(stdout, plan)
    results.validate(doc)
    assert doc["extra"]["status"] == "partial"
    tests = by_name(doc)
    assert "Connection refused" in tests[(VARIANT, "udp")]["error"]
    assert "timed out" in tests[(VARIANT, "tcp-service")]["error"]
    assert "benchmarkTimeout" in tests[("host", "tcp-rr-14B")]["error"]
    assert "HTTP error" in tests[(VARIANT, "http-350B")]["error"]
    assert "Connection refused" in tests[(VARIANT, "tcp-rr-1024B")]["error"]  # sockperf exits 0 even then
    assert "Connection refused" in tests[(VARIANT, "tcp-crr")]["error"]  # wrk did not start
    # a failed calibration leaves the tests it sets the rate of without a target, recorded
    for subject in ("host", VARIANT):
        t = tests[(subject, "latency-tcp-30pct")]
        assert t["status"] == "error" and "host calibration max-msg-rate-tcp failed" in t["error"]
        assert tests[(subject, "latency-udp-30pct")]["repetitions"]  # the UDP calibration worked
    assert any("calibration max-msg-rate-tcp" in e for e in doc["extra"]["errors"])
    assert doc["parameters"]["extra"]["calibration"]["max-msg-rate-tcp"]["value"] is None
    assert tests[(VARIANT, "tcp")]["status"] == "ok"
    # a failed reference gives no ratio, a good one still does
    assert tests[(VARIANT, "tcp-rr-14B")]["ratio"] is None and tests[(VARIANT, "tcp-rr-14B")]["status"] == "ok"
    assert tests[(VARIANT, "tcp")]["ratio"]["estimate"] == pytest.approx(1.0)
    assert "Connection refused" in suite_table.format_table(doc)


def test_one_failed_repetition_keeps_the_test(tmp_path):
    plan = small_plan()
    raw = build.parse_raw(realistic_stdout(tmp_path, plan))
    first = next(r for r in raw["runs"] if r["id"] == f"{VARIANT}/tcp")
    first.update(output=(DATA / "iperf3-refused.json").read_text(), rc=1)
    doc = build.build_result(json.dumps(raw), plan)
    results.validate(doc)
    tcp = by_name(doc)[(VARIANT, "tcp")]
    assert tcp["status"] == "ok" and tcp["stats"]["n"] == 1
    assert "1 of 2 repetitions not used" in tcp["validity"]["reason"]
    assert "Connection refused" in tcp["validity"]["reason"]
    assert "1 of 2 repetitions not used" in suite_table.format_table(doc)


def test_pods_on_the_wrong_node_are_reported(tmp_path):
    plan = small_plan()
    stdout = realistic_stdout(tmp_path, plan)
    ctx = build.RunContext(variant=VARIANT, client_node="ip-10-20-1-12", server_node="ip-10-20-1-12")
    doc = build.build_result(stdout, plan, ctx)
    assert any("not on the client node" in e for e in doc["extra"]["errors"])
    assert doc["extra"]["status"] == "partial"


@pytest.mark.parametrize("stdout, status", [
    ("", "no-output"),
    ("   \n", "no-output"),
    ("Warning: something\nnot json at all", "failed"),
    (json.dumps({"format": "something-else"}), "failed"),
    (json.dumps({"format": "cnibench-bench-raw/1", "runs": []}), "failed"),  # the hey-era runner
    (json.dumps({"format": suite_plan.RAW_FORMAT, "fatal": "kubectl not found on the control plane"}), "failed"),
])
def test_unusable_outputs_still_give_a_valid_document(stdout, status):
    doc = build.build_result(stdout, small_plan())
    results.validate(doc)
    assert doc["extra"]["status"] == status
    assert [s["name"] for s in doc["subjects"]] == ["host", VARIANT]
    assert all(s["tests"] == [] for s in doc["subjects"])
    assert doc["parameters"]["repetitions"]["stopped"] == "not-adaptive"
    assert suite_table.format_table(doc)


def test_a_runner_that_stopped_early_marks_the_missing_tests(tmp_path):
    plan = small_plan()
    raw = build.parse_raw(realistic_stdout(tmp_path, plan))
    raw["runs"] = raw["runs"][:6]
    doc = build.build_result(json.dumps(raw), plan)
    results.validate(doc)
    missing = [t for s in doc["subjects"] for t in s["tests"] if not t["repetitions"]]
    assert missing and all(t["status"] == "error" and "not run" in t["error"] for t in missing)
    assert all(t["validity"]["status"] == "not-measured" for t in missing)


# --------------------------------------------------------------------------- runner pieces, run here


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (Debian package nginx-light)")
def test_server_pod_nginx_config_serves_each_size(tmp_path):
    """The nginx configuration pod-setup.sh writes, started here on loopback."""
    import socket
    import tempfile
    import urllib.request

    text = (SCRIPTS / "pod-setup.sh").read_text()
    conf = re.search(r"<<CONF\n(.*?)\nCONF\n", text, re.S).group(1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
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


# --------------------------------------------------------------------------- bench.sh end to end, here

FAKE_KUBECTL = r'''#!/usr/bin/env bash
# A stand-in for kubectl: every pod is this machine (address 127.0.0.1), `exec` runs the command here.
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --request-timeout=*) shift ;;
        -n) shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
set -- "${args[@]}"
echo "$*" >>"$FAKE_KUBECTL_LOG"
case $1 in
    version) echo '{"serverVersion": {"gitVersion": "v1.33.5"}}' ;;
    get)
        case "$*" in
            *nodes*) echo '{"items": []}' ;;
            *daemonsets*) echo "kube-proxy=registry.k8s.io/kube-proxy:v1.33.5 " ;;
            *service*) printf 127.0.0.1 ;;
            *conditions*) printf True ;;
            *nodeName*) printf 'node-here 127.0.0.1' ;;
        esac ;;
    exec)
        shift
        [ "$1" = -i ] && shift
        shift  # the pod
        [ "$1" = -- ] && shift
        [ "$1" = rm ] && exit 0
        exec "$@" ;;
esac
exit 0
'''


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(any(shutil.which(t) is None for t in ("iperf3", "sockperf", "wrk", "nginx", "timeout")),
                    reason="needs iperf3, sockperf, wrk and nginx (scripts/setup.sh installs them)")
def test_bench_sh_runs_the_suite_end_to_end_with_a_stand_in_kubectl(tmp_path):
    """The real bench.sh and collect.py, with a kubectl that runs every `exec` on this machine
    against iperf3, sockperf and nginx servers on 127.0.0.1: the calibrations, the guard before
    each subject's block, every step with its tool's real arguments, the idle baseline of the CPU
    test; then build_result on what it printed."""
    # the shortest run of every step (iperf3 counts from its first second: what is checked is the
    # steps' arguments and records, not the figures)
    settings = small_settings(duration_s=1.0, rr_duration_s=1.0, repeat_min=1, repeat_max=1, load_fractions=(0.3,),
                              http_sizes=(4096,), udp_rate_mbit=200, omit_s=0, idle_baseline_s=0.5)
    plan = suite_plan.plan_suite(VARIANT, settings=settings, mtus=(1500,), timeout=900, run="e2e")
    work = tmp_path / "work"
    work.mkdir()
    ports = {"BENCH_IPERF3_PORT": _free_port(), "BENCH_SOCKPERF_PORT": _free_port(), "BENCH_HTTP_PORT": _free_port()}
    wrk_script = tmp_path / "wrk-report.lua"
    for name, content in bundle.bundle(plan).items():
        if name == "plan.env":
            env_lines = [ln for ln in content.splitlines() if ln.split("=", 1)[0] not in {*ports, "BENCH_WRK_SCRIPT"}]
            content = "\n".join([*env_lines, *(f"{k}={v}" for k, v in ports.items()),
                                 f"BENCH_WRK_SCRIPT={wrk_script}"]) + "\n"
        (work / name).write_text(content)
    fake = tmp_path / "bin" / "kubectl"
    fake.parent.mkdir()
    fake.write_text(FAKE_KUBECTL)
    fake.chmod(0o755)
    import tempfile

    # nginx workers drop root (to www-data or nobody), as in the pod: the files must be world-readable
    www = Path(tempfile.mkdtemp(prefix="cnibench-www-", dir="/tmp"))
    www.chmod(0o755)
    for size in plan.served_sizes:
        (www / str(size)).write_bytes(b"x" * size)
        (www / str(size)).chmod(0o644)
    conf = re.search(r"<<CONF\n(.*?)\nCONF\n", (SCRIPTS / "pod-setup.sh").read_text(), re.S).group(1)
    conf = (conf.replace("$http_port", f"127.0.0.1:{ports['BENCH_HTTP_PORT']}").replace("/srv/cnibench", str(www))
            .replace("/tmp/nginx.pid", str(tmp_path / "nginx.pid")))
    (tmp_path / "nginx.conf").write_text(conf)
    sp = str(ports["BENCH_SOCKPERF_PORT"])
    servers = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for argv in (
        ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(ports["BENCH_IPERF3_PORT"])],
        ["sockperf", "server", "--tcp", "-i", "127.0.0.1", "-p", sp],
        ["sockperf", "server", "-i", "127.0.0.1", "-p", sp],
        [shutil.which("nginx"), "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path), "-g", "daemon off;"],
    )]
    try:
        time.sleep(1)
        env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}",
               "FAKE_KUBECTL_LOG": str(tmp_path / "kubectl.log")}
        proc = subprocess.run(["bash", str(work / "bench.sh"), str(work)], capture_output=True, text=True, env=env,
                              timeout=600)
    finally:
        for p in servers:
            p.terminate()
        for p in servers:
            p.wait(timeout=10)
        shutil.rmtree(www)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1  # one JSON document, progress on stderr
    raw = build.parse_raw(proc.stdout)
    assert not raw["fatal"] and not raw["errors"], (raw["errors"], proc.stderr[-3000:])
    # the order: the calibrations, then per repetition per subject a guard and that subject's steps
    assert [r["id"] for r in raw["runs"]] == [s.id for s in (*plan.calibrations, *plan.steps)]
    assert [(g["rep"], g["subject"]) for g in raw["guards"]] == [(0, "host"), (0, VARIANT)]
    assert all(len(g["load"][who].splitlines()) == 2 for g in raw["guards"] for who in ("client", "server"))
    assert wrk_script.read_text() == (SCRIPTS / "wrk-report.lua").read_text()
    log = (tmp_path / "kubectl.log").read_text()
    assert "exec cnibench-cli-pod -- timeout -k 5 31 sockperf under-load -i 127.0.0.1" in log
    assert "-H Connection: close http://127.0.0.1" in log and f"-s {wrk_script}" in log
    calib = {k: float(v) for k, v in raw["calibration"].items()}
    assert set(calib) == {"max-msg-rate-tcp", "max-msg-rate-udp", "max-tcp"} and all(v > 0 for v in calib.values())
    runs = {r["id"]: r for r in raw["runs"]}
    assert int(runs["host/latency-tcp-30pct"]["target_rate"]) == int(calib["max-msg-rate-tcp"] * 0.3)
    assert int(runs[f"{VARIANT}/cpu-tcp"]["offered_mbit"]) == max(1, round(calib["max-tcp"] * 0.25 / 1e6))
    assert all(len(runs[f"{VARIANT}/cpu-tcp"]["cpu"][k]) == 2 for k in ("idle", "before", "after"))

    # the guard is off (threshold 1.0): its "nodes" are this machine, which the suite's other
    # worker keeps busy; the guard's verdicts are tested on recorded samples (contaminated block)
    doc = build.build_result(proc.stdout, plan, build.RunContext(variant=VARIANT, busy_threshold=1.0))
    results.validate(doc)
    assert doc["parameters"]["extra"]["busy_threshold"] == 1.0 and doc["extra"]["contamination"]["contaminated"] == 0
    tests = by_name(doc)
    assert set(tests) == {(s, t) for s, names in (("host", [d.name for d in plan.host_tests]),
                                                    (VARIANT, [d.name for d in plan.variant_tests])) for t in names}
    # nothing failed to run; only the validity gate may refuse a figure on a busy 2-core machine
    assert not [(k, t.get("error")) for k, t in tests.items() if t["status"] == "error"]
    for name in ("tcp", "tcp-service", "udp", "tcp-rr-14B", "udp-rr-1024B", "tcp-crr", "http-4096B", "mtu"):
        t = tests[(VARIANT, name)]
        assert t["status"] == "ok" and t["stats"]["n"] == 1, (name, t["validity"])
    assert all(r.get("guard", {}).get("busy_fraction") is not None for t in tests.values() for r in t["repetitions"])
    assert doc["parameters"]["extra"]["calibration"]["max-tcp"]["value"] == pytest.approx(calib["max-tcp"] / 1e9)


def test_a_datapath_without_a_service_path_records_its_service_test_as_skipped(tmp_path):
    # ipvlan (catalog no_service_path): the service test stays in the document, skipped with the
    # reason, and no step is planned for it; the run is still complete
    reason = "ipvlan l2 pods bypass the node's netfilter hooks"
    plan = suite_plan.plan_suite(VARIANT, settings=small_settings(), mtus=(9001, 8951), timeout=600, run="7",
                                 no_service_path=reason)
    assert "tcp-service" in [t.name for t in plan.variant_tests]
    assert not [s for s in plan.steps if s.test == "tcp-service"]
    doc = build.build_result(realistic_stdout(tmp_path, plan), plan, CTX)
    results.validate(doc)
    service = by_name(doc)[(VARIANT, "tcp-service")]
    assert service["status"] == "skipped" and service["skipped_reason"] == reason
    assert "error" not in service and service["repetitions"] == []
    assert doc["extra"]["tests_total"] == len(VARIANT_TESTS) - 1 + len(HOST_TESTS)


def test_ipvlan_is_the_datapath_without_a_service_path():
    from cnibench.config import parse_config
    from cnibench.variants import CATALOG

    assert [n for n, v in sorted(CATALOG.items()) if v.no_service_path] == ["ipvlan"]
    plan = suite_plan.plan_from_config(parse_config({"variant": "ipvlan"}))
    (service,) = [t for t in plan.variant_tests if t.name == "tcp-service"]
    assert "only l3s mode passes netfilter/conntrack" in service.definition.skipped_reason


def test_a_one_flow_tunnel_flags_its_multi_stream_tcp_ratio(tmp_path):
    # flannel-ipip / kube-router-overlay / flannel-wireguard: AWS limits one flow to 10 Gbit/s in a
    # cluster placement group (EC2 User Guide); their multi-stream tcp ratio carries that caveat
    plan = small_plan(streams=4)
    ctx = replace(CTX, encap_one_flow=True)
    doc = build.build_result(realistic_stdout(tmp_path, plan), plan, ctx)
    results.validate(doc)
    tcp = by_name(doc)[(VARIANT, "tcp")]
    (caveat,) = tcp["caveats"]
    assert "carries all 4 streams as one flow" in caveat and "10 Gbit/s in a cluster placement group" in caveat
    assert "caveats" not in by_name(doc)[("host", "tcp")] and "caveats" not in by_name(doc)[(VARIANT, "tcp-service")]
    assert doc["environment"]["extra"]["aws_flows"]["encapsulation_is_one_flow"] is True
    assert f"caveat ({VARIANT} tcp): {caveat}" in suite_table.format_table(doc)
    # one stream, or a tunnel that spreads flows: no caveat
    (tmp_path / "one").mkdir()
    (tmp_path / "spread").mkdir()
    one = build.build_result(realistic_stdout(tmp_path / "one", small_plan()), small_plan(), ctx)
    assert "caveats" not in by_name(one)[(VARIANT, "tcp")]
    spread = build.build_result(realistic_stdout(tmp_path / "spread", plan), plan, CTX)
    assert "caveats" not in by_name(spread)[(VARIANT, "tcp")]


def test_the_one_flow_tunnels_are_ipip_and_wireguard():
    from cnibench.variants import CATALOG

    assert sorted(n for n, v in CATALOG.items() if v.encap_one_flow) == [
        "flannel-ipip", "flannel-wireguard", "kube-router-overlay"]
