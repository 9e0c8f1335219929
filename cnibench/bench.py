"""The cloud benchmark suite, as plain data: the plan, the pods, the files shipped to the control
plane, and the transformation of the runner's raw output into the result document (schema v1).

How a run works (``components/benchmark.py`` wires it into Pulumi):

1. :func:`plan_suite` turns the stack config into steps: for the host-network reference
   (``host``, hostNetwork pods) and for the variant (pods on the CNI's network), TCP with one
   stream and with ``benchmarkStreams`` streams, UDP, and constant-load HTTP latency for every
   ``benchmarkResponseSizes`` x ``benchmarkLoadLevels``; pod-to-service TCP and UDP for the
   variant; one calibration per size (hey without a rate limit on the host network) whose
   rate is the 100 % of the load levels.
2. :func:`bundle` renders the files the runner needs (``components/bench_scripts/bench.sh``,
   the plan as shell variables, the steps as TSV, the pod manifests as JSON, the helpers) and
   :func:`remote_command` wraps them into one ``bash`` command run on the control plane.
3. ``bench.sh`` creates the pods (client pods on the node labelled ``cnibench.io/role=client``,
   servers on ``server``), runs every step R times interleaved, with a timeout each, samples
   ``/proc/stat`` and ``/proc/meminfo`` of both nodes before and after each step, records
   errors instead of stopping, always deletes its namespace, and prints one JSON document of raw
   outputs (``collect.py``).
4. :func:`build_result` parses that document with the shared parsers of
   :mod:`cnibench.results` (iperf3) and :func:`parse_hey_histogram` (hey, reduced on the pod by
   ``hey-reduce.awk``), and builds the validated result document; :func:`format_table` is the
   human-readable table written to the update's log.

The cloud document (``origin: cloud``) uses schema v1 as the lab does, plus:

* ``extra``: ``status`` (``complete``, ``partial``, ``failed``, or ``no-output`` when the command
  printed nothing: preview, mocks), ``errors`` (run-level problems: pods not ready, pods on the
  wrong node, a failed calibration, clean-up), ``tests_ok``/``tests_total``, ``pods`` (node and
  address of each benchmark pod), ``started``/``finished`` (epoch seconds on the control plane);
* ``environment.extra``: ``nodes.client``/``nodes.server`` (kernel, CPUs, CPU model, memory, the
  default-route interface and its MTU, the pod interface MTU, kubelet, runtime, OS image),
  ``kubernetes_version``, ``cni`` (catalog name and version, images of the kube-system
  DaemonSets as deployed), ``tools`` (iperf3, hey, nginx versions and the image);
* per repetition: ``cpu`` with ``client_busy_percent``/``server_busy_percent`` (percent of the
  node's CPUs, from ``/proc/stat`` before and after the test) and
  ``client_mem_used_mb``/``server_mem_used_mb`` (MemTotal - MemAvailable, the larger of the two
  samples); ``busy_percent`` is their mean and ``cpu_seconds_per_gbit`` the CPU seconds of both
  nodes per Gbit received; the test's ``cpu`` holds the medians;
* latency tests: ``value`` is p99 (ms), ``percentiles`` p50/p90/p99/p99.9, ``details`` the rate
  achieved, the target rate, hey's errors (non-2xx/3xx) and the shortfall against the target
  (hey's CSV lists completed requests only: connection errors show as a shortfall).

Tools: iperf3 3.12, hey 0.1.4 and nginx 1.22 from Debian 12 (bookworm), the very packages the
local lab uses on its Debian machine, installed at pod start on the official Debian image
pinned by its dated tag (docker-library/official-images, ``library/debian``:
``bookworm-20260202-slim``). fortio was not chosen: its output could not be captured here to
test a parser on, and using hey in both places keeps lab and cloud figures comparable.
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from cnibench import results

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "components" / "bench_scripts"
RAW_FORMAT = "cnibench-bench-raw/1"

# docker-library/official-images, library/debian: "Tags: bookworm-slim, bookworm-20260202-slim,
# 12.13-slim, 12-slim" (Debian 12.13). The dated tag never moves.
IMAGE = "docker.io/library/debian:bookworm-20260202-slim"
PACKAGES = ("iperf3", "hey", "nginx-light")  # Debian bookworm: iperf3 3.12, hey 0.1.4, nginx 1.22.1

NAMESPACE = "cnibench-bench"
SERVICE = "cnibench-srv"
ROLE_LABEL = "cnibench.io/role"  # set on the nodes by the cluster component
IPERF3_PORT = 5201
HTTP_PORT = 8080
HEY_WORKERS = 32  # concurrent hey workers; -q is per worker, so the rate is split among them
POD_READY_TIMEOUT_S = 600  # image pull + apt-get install
STEP_MARGIN_S = 30  # per-step timeout = duration + margin
HEY_REQUEST_TIMEOUT_S = 10

# The four pods: (name, node role, hostNetwork, serves)
PODS: tuple[tuple[str, str, bool, bool], ...] = (
    ("cnibench-srv-host", "server", True, True),
    ("cnibench-cli-host", "client", True, False),
    ("cnibench-srv-pod", "server", False, True),
    ("cnibench-cli-pod", "client", False, False),
)
HOST = "host"  # name of the reference subject
DEBS_HOST_PATH = "/var/cache/cnibench-debs"  # on the nodes: the packages of the current run
RUN_TOKEN = "@RUN_TOKEN@"  # replaced by bench.sh with a token unique to each execution


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Step:
    """One measurement, run once per repetition (calibrations once in all)."""

    subject: str  # "host" or the variant's name
    test: str  # test name in the result document
    tool: str  # "iperf3", "hey" (rate-limited) or "hey-max" (calibration)
    client: str  # client pod
    target: str  # server pod, or SERVICE for pod-to-service
    duration: int
    streams: int = 1
    udp: bool = False
    size: int = 0  # HTTP response size (hey)
    level: int = 0  # percent of the host's maximum rate (hey)

    @property
    def id(self) -> str:
        return f"{self.subject}/{self.test}"

    @property
    def timeout(self) -> int:
        return self.duration + STEP_MARGIN_S

    @property
    def path(self) -> str:
        if self.subject == HOST:
            return "node-to-node"
        return "pod-to-service" if self.target == SERVICE else "pod-to-pod"

    def tsv(self) -> str:
        fields = (self.id, self.tool, self.client, self.target, self.duration, self.timeout, self.streams,
                  "udp" if self.udp else "tcp", self.size, self.level)
        return "\t".join(str(f) for f in fields)


@dataclass(frozen=True)
class TestSpec:
    name: str
    kind: str
    unit: str
    higher_is_better: bool
    reference_test: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SuitePlan:
    variant: str
    duration: int
    repeat: int
    streams: int
    load_levels: tuple[int, ...]
    response_sizes: tuple[int, ...]
    timeout: int
    run: str
    workers: int = HEY_WORKERS
    calibrations: tuple[Step, ...] = ()
    steps: tuple[Step, ...] = ()

    @property
    def subjects(self) -> tuple[str, str]:
        return (HOST, self.variant)

    def tests(self) -> dict[str, list[TestSpec]]:
        """Test definitions per subject, in suite order."""
        out: dict[str, list[TestSpec]] = {s: [] for s in self.subjects}
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                continue
            seen.add(step.id)
            out[step.subject].append(_spec(step, self.workers))
        return out

    def digest(self) -> str:
        text = json.dumps({"steps": [s.tsv() for s in (*self.calibrations, *self.steps)],
                           "repeat": self.repeat, "timeout": self.timeout, "image": IMAGE}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def max_runtime_s(self) -> int:
        """Upper bound of the measurement time (pod start-up and clean-up excluded)."""
        return sum(s.timeout for s in self.calibrations) + self.repeat * sum(s.timeout for s in self.steps)


def _spec(step: Step, workers: int) -> TestSpec:
    if step.tool == "iperf3":
        base = "udp" if step.udp else "tcp"
        params: dict[str, Any] = {"streams": step.streams, "tool": "iperf3"}
        if step.udp:
            params["udp_bandwidth"] = "unlimited (-b 0)"
        ref = base if step.streams == 1 else f"tcp-{step.streams}streams"
        return TestSpec(step.test, base, "Gbit/s", True, ref, params)
    params = {"size_bytes": step.size, "load_percent": step.level, "load_fraction": step.level / 100,
              "workers": workers, "statistic": "p99", "tool": "hey"}
    return TestSpec(step.test, "latency", "ms", False, step.test, params)


def plan_suite(
    variant: str,
    *,
    duration: int = 30,
    repeat: int = 3,
    streams: int = 8,
    load_levels: Sequence[int] = (30, 50, 70),
    response_sizes: Sequence[int] = (350, 4096),
    timeout: int = 3600,
    run: str = "1",
    workers: int = HEY_WORKERS,
) -> SuitePlan:
    """The suite for ``variant`` (defaults are the config defaults)."""
    steps: list[Step] = []
    calibrations = tuple(
        Step(HOST, f"max-rate-{size}B", "hey-max", "cnibench-cli-host", "cnibench-srv-host", duration, size=size)
        for size in response_sizes
    )
    for subject, client, server in ((HOST, "cnibench-cli-host", "cnibench-srv-host"),
                                    (variant, "cnibench-cli-pod", "cnibench-srv-pod")):
        steps.append(Step(subject, "tcp", "iperf3", client, server, duration))
        if streams > 1:
            steps.append(Step(subject, f"tcp-{streams}streams", "iperf3", client, server, duration, streams=streams))
        steps.append(Step(subject, "udp", "iperf3", client, server, duration, udp=True))
        if subject != HOST:
            steps.append(Step(subject, "tcp-service", "iperf3", client, SERVICE, duration))
            steps.append(Step(subject, "udp-service", "iperf3", client, SERVICE, duration, udp=True))
        for size in response_sizes:
            for level in load_levels:
                steps.append(Step(subject, f"latency-{size}B-{level}pct", "hey", client, server, duration,
                                  size=size, level=level))
    return SuitePlan(variant=variant, duration=duration, repeat=repeat, streams=streams,
                     load_levels=tuple(load_levels), response_sizes=tuple(response_sizes), timeout=timeout,
                     run=run, workers=workers, calibrations=calibrations, steps=tuple(steps))


def plan_from_config(cfg: Any) -> SuitePlan:
    """:func:`plan_suite` for a :class:`cnibench.config.StackConfig`."""
    return plan_suite(
        cfg.variant, duration=cfg.benchmark_duration, repeat=cfg.benchmark_repeat, streams=cfg.benchmark_streams,
        load_levels=cfg.benchmark_load_levels, response_sizes=cfg.benchmark_response_sizes,
        timeout=cfg.benchmark_timeout, run=cfg.benchmark_run,
    )


# --------------------------------------------------------------------------- pods


def _script(name: str) -> str:
    return (SCRIPTS_DIR / name).read_text()


def pod_manifests(plan: SuitePlan) -> list[dict[str, Any]]:
    """Namespace, the four benchmark pods and the service in front of the variant's server pod.

    Every pod is pinned with a nodeSelector on the role label the cluster component puts on the
    nodes; the hostNetwork pod of each node downloads the tools (Debian packages) into a hostPath
    directory from which the pod-network pod of that node installs them; it tolerates the control-plane taint (with ``controlPlaneOnBenchmarkNode`` the client
    node is the control plane). hostNetwork pods use the node's resolver (the CNI plays no part
    in the reference).
    """
    setup = _script("pod-setup.sh")
    sizes = [str(s) for s in plan.response_sizes]
    manifests: list[dict[str, Any]] = [{
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {
            "app.kubernetes.io/managed-by": "cnibench",
            # hostNetwork pods need the privileged Pod Security level
            "pod-security.kubernetes.io/enforce": "privileged",
        }},
    }]
    for name, role, host_network, serves in PODS:
        spec: dict[str, Any] = {
            "nodeSelector": {ROLE_LABEL: role},
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                             "effect": "NoSchedule"}],
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "bench",
                "image": IMAGE,
                "command": ["/bin/sh", "-c", setup, "pod-setup", "server" if serves else "client",
                            "host" if host_network else "pod", RUN_TOKEN, str(IPERF3_PORT), str(HTTP_PORT),
                            *sizes],
                "volumeMounts": [{"name": "debs", "mountPath": "/cnibench-debs"}],
                "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/cnibench-ready"]},
                                   "periodSeconds": 2, "failureThreshold": 1},
            }],
            # the hostNetwork pod of a node downloads the tools and leaves them here for the
            # pod-network pod of the same node (see pod-setup.sh)
            "volumes": [{"name": "debs", "hostPath": {"path": DEBS_HOST_PATH, "type": "DirectoryOrCreate"}}],
        }
        if host_network:
            spec["hostNetwork"] = True
            spec["dnsPolicy"] = "Default"
        manifests.append({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "cnibench",
                                    "cnibench.io/bench-role": role}},
            "spec": spec,
        })
    manifests.append({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": "cnibench-srv-pod"},
            "ports": [
                {"name": "iperf3-tcp", "protocol": "TCP", "port": IPERF3_PORT, "targetPort": IPERF3_PORT},
                {"name": "iperf3-udp", "protocol": "UDP", "port": IPERF3_PORT, "targetPort": IPERF3_PORT},
                {"name": "http", "protocol": "TCP", "port": HTTP_PORT, "targetPort": HTTP_PORT},
            ],
        },
    })
    return manifests


# --------------------------------------------------------------------------- files and command


def plan_env(plan: SuitePlan, client_node: str = "", server_node: str = "") -> str:
    values = {
        "BENCH_RAW_FORMAT": RAW_FORMAT,
        "BENCH_RUN": plan.run,
        "BENCH_PLAN_DIGEST": plan.digest(),
        "BENCH_NAMESPACE": NAMESPACE,
        "BENCH_SERVICE": SERVICE,
        "BENCH_PODS": " ".join(p[0] for p in PODS),
        "BENCH_CLIENT_HOST_POD": "cnibench-cli-host",
        "BENCH_SERVER_HOST_POD": "cnibench-srv-host",
        "BENCH_REPEAT": plan.repeat,
        "BENCH_TIMEOUT": plan.timeout,
        "BENCH_POD_TIMEOUT": POD_READY_TIMEOUT_S,
        "BENCH_IPERF3_PORT": IPERF3_PORT,
        "BENCH_HTTP_PORT": HTTP_PORT,
        "BENCH_HEY_WORKERS": plan.workers,
        "BENCH_HEY_REQUEST_TIMEOUT": HEY_REQUEST_TIMEOUT_S,
        "BENCH_CLIENT_NODE": client_node,
        "BENCH_SERVER_NODE": server_node,
    }
    return "".join(f"{k}={shlex.quote(str(v))}\n" for k, v in values.items())


def steps_tsv(plan: SuitePlan) -> str:
    header = "# id\ttool\tclient\ttarget\tduration\ttimeout\tstreams\tproto\tsize\tlevel\n"
    return header + "".join(s.tsv() + "\n" for s in (*plan.calibrations, *plan.steps))


BUNDLED_SCRIPTS = ("bench.sh", "collect.py", "probe.sh", "hey-reduce.awk")


def bundle(plan: SuitePlan, client_node: str = "", server_node: str = "") -> dict[str, str]:
    """Every file the runner reads, by name."""
    files = {name: _script(name) for name in BUNDLED_SCRIPTS}
    files["plan.env"] = plan_env(plan, client_node, server_node)
    files["steps.tsv"] = steps_tsv(plan)
    files["manifests.json"] = json.dumps({"apiVersion": "v1", "kind": "List", "items": pod_manifests(plan)},
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


# --------------------------------------------------------------------------- raw output parsing


def parse_hey_histogram(text: str, duration_s: float | None = None) -> results.LatencyResult:
    """Parse hey's CSV as reduced on the pod by ``hey-reduce.awk``: one row per distinct
    ``(response-time, status-code)`` with its count, then ``# key value`` lines.

    hey prints response times with 4 decimals (0.1 ms), so the reduction loses nothing: the
    figures equal :func:`cnibench.results.parse_hey_csv` on the full CSV (same percentile
    definition, same treatment of non-2xx/3xx rows as errors).
    """
    rows: list[tuple[float, int]] = []
    codes: dict[str, int] = {}
    meta: dict[str, str] = {}
    errors = 0
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise results.ParseError("hey: empty output (no header, no requests)")
    if lines[0].split(",")[:3] != ["response-time", "status-code", "count"]:
        raise results.ParseError(f"hey: not the reduced CSV of hey-reduce.awk (header {lines[0][:60]!r})")
    for line in lines[1:]:
        if line.startswith("#"):
            parts = line[1:].split(None, 1)
            if len(parts) == 2:
                meta[parts[0]] = parts[1]
            continue
        try:
            rt_s, code, count_s = line.split(",")
            rt, count = float(rt_s), int(count_s)
        except ValueError:
            continue
        code = code.strip()
        codes[code] = codes.get(code, 0) + count
        if not code.isdigit() or not 200 <= int(code) < 400:
            errors += count
            continue
        rows.append((rt * 1000.0, count))
    if not rows:
        raise results.ParseError(f"hey: no successful request (status codes {codes or 'none'})")
    rows.sort()
    n = sum(c for _, c in rows)
    cum: list[int] = []
    total = 0
    for _, c in rows:
        total += c
        cum.append(total)

    def at(index: int) -> float:  # value of the index-th smallest latency
        lo, hi = 0, len(cum) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if cum[mid] > index:
                hi = mid
            else:
                lo = mid + 1
        return rows[lo][0]

    def pct(q: float) -> float:  # same definition as results.percentile (linear between ranks)
        if n == 1:
            return rows[0][0]
        pos = (n - 1) * q / 100.0
        lo, hi = math.floor(pos), math.ceil(pos)
        a, b = at(lo), at(hi)
        return float(a + (b - a) * (pos - lo))

    try:
        end = float(meta.get("end-max", "0"))
    except ValueError:
        end = 0.0
    span = duration_s if duration_s else (end or 1.0)
    return results.LatencyResult(
        requests=n, errors=errors, duration_s=span, rate=n / span,
        p50_ms=pct(50), p90_ms=pct(90), p99_ms=pct(99), p999_ms=pct(99.9),
        max_ms=rows[-1][0], mean_ms=sum(v * c for v, c in rows) / n, status_codes=codes,
    )


USER_HZ = 100  # /proc/stat counts in USER_HZ, 100 on every Linux architecture cnibench targets


def parse_usage_snapshot(text: str) -> dict[str, float] | None:
    """``head -n1 /proc/stat`` + MemTotal/MemAvailable lines -> busy/total jiffies and memory."""
    out: dict[str, float] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu" and len(parts) >= 5:
            fields = [int(x) for x in parts[1:9]]
            idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
            out["total"] = float(sum(fields))  # user..steal (guest is counted in user)
            out["busy"] = out["total"] - idle
        elif parts and parts[0] in ("MemTotal:", "MemAvailable:") and len(parts) >= 2:
            out[parts[0][:-1]] = float(parts[1])  # kB
    return out if "total" in out else None


def node_usage(before: str, after: str) -> dict[str, float | None] | None:
    """CPU busy share (percent of the node's CPUs) and used memory (MB) between two snapshots."""
    b, a = parse_usage_snapshot(before), parse_usage_snapshot(after)
    if not b or not a:
        return None
    total = a["total"] - b["total"]
    busy = a["busy"] - b["busy"]
    used = [s["MemTotal"] - s["MemAvailable"] for s in (b, a) if "MemTotal" in s and "MemAvailable" in s]
    return {
        "busy_percent": 100.0 * busy / total if total > 0 else None,
        "cpu_seconds": busy / USER_HZ,
        "mem_used_mb": max(used) / 1024.0 if used else None,
    }


def summarize_node_usage(doc: dict[str, Any]) -> dict[str, Any]:
    """Add the per-node CPU and memory medians of the repetitions to each test's ``cpu``
    (:func:`cnibench.results.finalize` keeps only ``busy_percent`` and ``cpu_seconds_per_gbit``)."""
    keys = ("client_busy_percent", "server_busy_percent", "client_mem_used_mb", "server_mem_used_mb")
    for subject in doc["subjects"]:
        for test in subject["tests"]:
            reps = [r["cpu"] for r in test.get("repetitions", []) if r.get("cpu")]
            if not reps or test.get("cpu") is None:
                continue
            for key in keys:
                test["cpu"][key] = results.summarize(r.get(key) for r in reps)["median"]
    return doc


# --------------------------------------------------------------------------- result document


@dataclass
class RunContext:
    """What the Pulumi program knows that the runner's output does not say."""

    stack: str = ""
    variant: str = ""
    cni: str = ""
    cni_version: str = ""
    underlay_need: str | None = None
    encap_overhead: int | None = None
    configured_mtu: int | None = None
    underlay_mtu: int | None = None
    instance_type: str | None = None
    region: str | None = None
    client_node: str = ""
    server_node: str = ""

    @classmethod
    def from_config(cls, cfg: Any, stack: str = "") -> "RunContext":
        v = cfg.variant_record
        return cls(stack=stack, variant=v.name, cni=v.cni, cni_version=v.cni_version,
                   underlay_need=v.underlay.value, encap_overhead=v.encap_overhead, configured_mtu=cfg.pod_mtu,
                   underlay_mtu=cfg.underlay_mtu, instance_type=cfg.instance_type, region=cfg.region)


class RawOutputError(ValueError):
    pass


def parse_raw(stdout: str) -> dict[str, Any]:
    """The runner's stdout (one JSON document from collect.py)."""
    text = (stdout or "").strip()
    if not text:
        raise RawOutputError("the benchmark command printed nothing")
    # anything printed before the document (e.g. a stray warning) is ignored
    start = text.find("{")
    try:
        raw = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError as exc:
        raise RawOutputError(f"the benchmark command's output is not JSON ({exc}): {text[:200]!r}") from exc
    if not isinstance(raw, dict) or raw.get("format") != RAW_FORMAT:
        raise RawOutputError(f"the benchmark command's output is not a {RAW_FORMAT} document")
    return raw


def _probe(raw: Mapping[str, Any], pod: str) -> dict[str, str]:
    return dict((raw.get("pods") or {}).get(pod, {}).get("probe") or {})


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _environment(raw: Mapping[str, Any], plan: SuitePlan, ctx: RunContext) -> dict[str, Any]:
    client, server = _probe(raw, "cnibench-cli-host"), _probe(raw, "cnibench-srv-host")
    nodes_raw = raw.get("nodes") or {}

    def node(role: str, probe: Mapping[str, str], pod_probe: Mapping[str, str], name: str) -> dict[str, Any]:
        info = nodes_raw.get(name) or {}
        return {
            "name": name or None,
            "kernel": probe.get("kernel") or info.get("kernel"),
            "cpus": _int(probe.get("cpus")) or _int(info.get("cpu_capacity")),
            "cpu_model": probe.get("cpu_model"),
            "mem_total_mb": (_int(probe.get("mem_total_kb")) or 0) / 1024 or None,
            "interface": probe.get("iface"),
            "node_mtu": _int(probe.get("mtu")),
            "pod_interface_mtu": _int(pod_probe.get("mtu")),
            "os_image": info.get("os_image"),
            "kubelet": info.get("kubelet"),
            "container_runtime": info.get("runtime"),
            "instance_type": info.get("instance_type"),
        }

    placed = (raw.get("pods") or {})
    client_name = ctx.client_node or (placed.get("cnibench-cli-host") or {}).get("node", "")
    server_name = ctx.server_node or (placed.get("cnibench-srv-host") or {}).get("node", "")
    n_client = node("client", client, _probe(raw, "cnibench-cli-pod"), client_name)
    n_server = node("server", server, _probe(raw, "cnibench-srv-pod"), server_name)
    tools = {k: (client.get(k) or server.get(k)) for k in ("iperf3", "hey", "nginx")}
    return {
        "kernel": n_server["kernel"] or n_client["kernel"] or "unknown",
        "hostname": server_name or "unknown",
        "cpus": n_server["cpus"] or n_client["cpus"] or None,
        "machine": next((i.get("architecture") for i in nodes_raw.values() if i.get("architecture")), None)
        or "unknown",
        "underlay_mtu": n_server["node_mtu"] or ctx.underlay_mtu,
        **({"instance_type": ctx.instance_type} if ctx.instance_type else {}),
        **({"region": ctx.region} if ctx.region else {}),
        "extra": {
            "stack": ctx.stack,
            "nodes": {"client": n_client, "server": n_server},
            "kubernetes_version": (raw.get("kubernetes") or {}).get("server_version"),
            "cni": {"name": ctx.cni, "version": ctx.cni_version, "daemonset_images": raw.get("cni_images") or {}},
            "tools": {**tools, "image": IMAGE},
            "configured_underlay_mtu": ctx.underlay_mtu,
        },
    }


def _run_record(run: Mapping[str, Any], step: Step, plan: SuitePlan) -> dict[str, Any]:
    """One repetition of a step, as the schema's repetition object."""
    rec: dict[str, Any] = {"index": int(run.get("rep") or 0)}
    usage = {who: node_usage((run.get("usage") or {}).get(who, {}).get("before", ""),
                             (run.get("usage") or {}).get(who, {}).get("after", ""))
             for who in ("client", "server")}
    try:
        if run.get("skipped"):
            raise RuntimeError(f"not run: {run['skipped']}")
        if run.get("timed_out"):
            raise RuntimeError(f"timed out after {step.timeout}s: {_tail(run.get('stderr'))}")
        if step.tool == "iperf3":
            gbits = _iperf3_into(rec, run)
        else:
            gbits = None
            _hey_into(rec, run, step)
    except (RuntimeError, results.ParseError) as exc:
        rec["error"] = str(exc)
        gbits = None
    if usage["client"] or usage["server"]:
        busy = [u["busy_percent"] for u in usage.values() if u and u["busy_percent"] is not None]
        seconds = sum(u["cpu_seconds"] for u in usage.values() if u)
        rec["cpu"] = {
            "busy_percent": statistics.fmean(busy) if busy else None,
            "cpu_seconds_per_gbit": seconds / gbits if gbits else None,
            "client_busy_percent": usage["client"]["busy_percent"] if usage["client"] else None,
            "server_busy_percent": usage["server"]["busy_percent"] if usage["server"] else None,
            "client_mem_used_mb": usage["client"]["mem_used_mb"] if usage["client"] else None,
            "server_mem_used_mb": usage["server"]["mem_used_mb"] if usage["server"] else None,
            "source": "/proc/stat and /proc/meminfo of both nodes, before and after the test",
        }
    return rec


def _tail(text: Any, n: int = 300) -> str:
    return str(text or "").strip()[-n:] or "no output"


def _iperf3_into(rec: dict[str, Any], run: Mapping[str, Any]) -> float:
    out = run.get("output") or ""
    if not str(out).strip():
        raise RuntimeError(f"iperf3 printed nothing (exit {run.get('rc')}): {_tail(run.get('stderr'))}")
    res = results.parse_iperf3(out)
    rec["value"] = res.gbit_per_second
    details: dict[str, Any] = {"sender_gbit_per_second": res.sender_bits_per_second / 1e9,
                               "streams": res.streams, "block_size": res.block_size,
                               "iperf3_cpu_host_percent": res.cpu_host_percent,
                               "iperf3_cpu_remote_percent": res.cpu_remote_percent, "target": run.get("target")}
    if res.protocol == "UDP":
        details.update(lost_percent=res.lost_percent, jitter_ms=res.jitter_ms)
    else:
        details.update(retransmits=res.retransmits, tcp_mss=res.tcp_mss)
    rec["details"] = details
    return res.gbit_per_second * res.duration_s


def _hey_into(rec: dict[str, Any], run: Mapping[str, Any], step: Step) -> None:
    out = run.get("output") or ""
    if not str(out).strip():
        raise RuntimeError(f"hey printed nothing (exit {run.get('rc')}): {_tail(run.get('stderr'))}")
    res = parse_hey_histogram(out, step.duration)
    rec["value"] = res.p99_ms
    rec["percentiles"] = res.percentiles()
    target = _float(run.get("target_rate"))
    rec["details"] = {"rate": res.rate, "target_rate": target, "requests": res.requests, "errors": res.errors,
                      "max_ms": res.max_ms, "mean_ms": res.mean_ms, "status_codes": res.status_codes,
                      "qps_per_worker": _float(run.get("qps")), "workers": plan_workers(run),
                      "target": run.get("target")}
    if target:
        rec["details"]["rate_shortfall_percent"] = max(0.0, 100.0 * (1 - res.rate / target))
    if int(run.get("rc") or 0) != 0:
        raise RuntimeError(f"hey exited with {run.get('rc')}: {_tail(run.get('stderr'))}")
    if res.requests and res.errors > (res.requests + res.errors) * 0.01:
        raise RuntimeError(f"{res.errors} of {res.requests + res.errors} requests failed ({res.status_codes})")


def plan_workers(run: Mapping[str, Any]) -> int | None:
    return _int(run.get("workers"))


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _subjects_skeleton(plan: SuitePlan, ctx: RunContext) -> dict[str, dict[str, Any]]:
    host = results.new_subject(HOST, "reference", description="host network (hostNetwork pods on the same nodes)")
    var = results.new_subject(
        plan.variant, "variant", description=f"{ctx.cni or plan.variant} {ctx.cni_version}".strip(),
        underlay_need=ctx.underlay_need, encap_overhead=ctx.encap_overhead, configured_mtu=ctx.configured_mtu,
        cni=ctx.cni or None, variant=plan.variant,
    )
    return {HOST: host, plan.variant: var}


def _new_document(plan: SuitePlan, ctx: RunContext, environment: dict[str, Any]) -> dict[str, Any]:
    params = {
        "duration_s": plan.duration,
        "repeat": plan.repeat,
        "streams": plan.streams,
        "latency_duration_s": plan.duration,
        "latency_sizes": list(plan.response_sizes),
        "latency_loads": [lvl / 100 for lvl in plan.load_levels],
        "extra": {"benchmark_run": plan.run, "benchmark_timeout_s": plan.timeout, "latency_workers": plan.workers,
                  "udp_bandwidth": "unlimited (-b 0)", "plan_digest": plan.digest(),
                  "load_levels_percent": list(plan.load_levels)},
    }
    run_id = f"{ctx.stack or plan.variant}-run-{plan.run}"
    return results.new_document("cloud", run_id=run_id, environment=environment, parameters=params, reference=HOST)


def empty_result(plan: SuitePlan, ctx: RunContext, reason: str, status: str = "no-output") -> dict[str, Any]:
    """A valid document that says why there are no figures (no run yet, or the runner failed
    before measuring)."""
    env = {"kernel": "unknown", "hostname": ctx.server_node or "unknown", "cpus": None, "machine": "unknown",
           "underlay_mtu": ctx.underlay_mtu,
           **({"instance_type": ctx.instance_type} if ctx.instance_type else {}),
           **({"region": ctx.region} if ctx.region else {}), "extra": {"stack": ctx.stack}}
    doc = _new_document(plan, ctx, env)
    for subject in _subjects_skeleton(plan, ctx).values():
        if status == "no-output":
            subject.update(status="skipped", skipped_reason=reason)
        else:
            subject.update(status="error", error=reason)
        doc["subjects"].append(subject)
    doc["extra"] = {"status": status, "message": reason, "errors": [reason] if status != "no-output" else []}
    return doc


def build_result(stdout: str, plan: SuitePlan, ctx: RunContext | None = None) -> dict[str, Any]:
    """The result document of one run, from the runner's stdout. Never raises for a bad run:
    a failed test, a failed pod or an unusable output is recorded in the document."""
    ctx = ctx or RunContext(variant=plan.variant)
    try:
        raw = parse_raw(stdout)
    except RawOutputError as exc:
        empty = not (stdout or "").strip()
        reason = ("no benchmark output yet: the benchmark command has not produced any (preview, mocks, "
                  "or a run that printed nothing)" if empty else str(exc))
        return empty_result(plan, ctx, reason, status="no-output" if empty else "failed")
    if raw.get("fatal"):
        doc = empty_result(plan, ctx, f"the benchmark could not run: {raw['fatal']}", status="failed")
        doc["extra"]["errors"] = [str(raw["fatal"]), *map(str, raw.get("errors") or [])]
        return doc

    doc = _new_document(plan, ctx, _environment(raw, plan, ctx))
    subjects = _subjects_skeleton(plan, ctx)
    doc["subjects"] = list(subjects.values())
    env_nodes = doc["environment"]["extra"]["nodes"]
    subjects[HOST]["extra"] = {"node_interface_mtu": {r: env_nodes[r]["node_mtu"] for r in ("client", "server")}}
    subjects[plan.variant]["extra"] = {
        "pod_interface_mtu": {r: env_nodes[r]["pod_interface_mtu"] for r in ("client", "server")},
        "node_interface_mtu": {r: env_nodes[r]["node_mtu"] for r in ("client", "server")},
    }
    pod_mtu = env_nodes["client"]["pod_interface_mtu"] or env_nodes["server"]["pod_interface_mtu"]
    if pod_mtu:
        subjects[plan.variant]["observed_mtu"] = pod_mtu  # the MTU in effect on the pod interface

    errors = [str(e) for e in raw.get("errors") or []]
    pods = raw.get("pods") or {}
    placement = _placement_problems(pods, ctx)
    errors += placement
    for name, _role, _hn, _serves in PODS:
        p = pods.get(name) or {}
        if not p.get("ready"):
            errors.append(f"pod {name} was not ready: {_tail(p.get('error'))}")

    # calibration: the host's maximum rate per size (the 100 % of the load levels)
    max_rates: dict[str, Any] = {}
    by_id = {s.id: s for s in (*plan.calibrations, *plan.steps)}
    runs = raw.get("runs") or []
    for run in runs:
        step = by_id.get(str(run.get("id")))
        if step is None or step.tool != "hey-max":
            continue
        try:
            if run.get("skipped"):
                raise RuntimeError(f"not run: {run['skipped']}")
            res = parse_hey_histogram(run.get("output") or "", step.duration)
            max_rates[str(step.size)] = {"rate": res.rate, "p99_ms": res.p99_ms, "requests": res.requests,
                                         "errors": res.errors}
        except (RuntimeError, results.ParseError) as exc:
            max_rates[str(step.size)] = {"rate": None, "error": str(exc)}
            errors.append(f"calibration of the host's maximum rate for {step.size} B failed: {exc}")
    doc["parameters"]["extra"]["latency_max_rate_on_host"] = max_rates

    tests: dict[str, dict[str, Any]] = {}
    for subject_name, specs in plan.tests().items():
        for spec in specs:
            test = results.new_test(spec.name, spec.kind, _path_of(plan, subject_name, spec.name), spec.unit,
                                    higher_is_better=spec.higher_is_better, reference_test=spec.reference_test)
            test["parameters"] = dict(spec.parameters)
            subjects[subject_name]["tests"].append(test)
            tests[f"{subject_name}/{spec.name}"] = test
    for run in runs:
        step = by_id.get(str(run.get("id")))
        if step is None or step.tool == "hey-max":
            continue
        test = tests[step.id]
        rec = _run_record(run, step, plan)
        test["repetitions"].append(rec)
        if rec.get("value") is not None and "error" not in rec:
            test["samples"].append(rec["value"])
        elif rec.get("error"):
            test["error"] = rec["error"]
            if rec.get("value") is not None:  # measured but rejected (e.g. too many HTTP errors)
                rec.pop("value")
    for test in tests.values():
        if not test["repetitions"]:
            test.update(status="error", error="not run (the runner stopped before this test)")
    results.finalize(doc)
    summarize_node_usage(doc)
    for subject in doc["subjects"]:
        if subject["tests"] and all(t["status"] == "error" for t in subject["tests"]):
            first = next((t.get("error") for t in subject["tests"] if t.get("error")), "every test failed")
            subject.update(status="error", error=f"every test failed; first error: {first}")
    n_ok = sum(1 for s in doc["subjects"] for t in s["tests"] if t["status"] == "ok")
    n_all = sum(len(s["tests"]) for s in doc["subjects"])
    status = "complete" if n_ok == n_all and not errors else ("failed" if n_ok == 0 else "partial")
    doc["extra"] = {
        "status": status,
        "tests_ok": n_ok,
        "tests_total": n_all,
        "errors": errors,
        "started": raw.get("started"),
        "finished": raw.get("finished"),
        "pods": {name: {"node": (pods.get(name) or {}).get("node"), "ip": (pods.get(name) or {}).get("ip"),
                        "ready": bool((pods.get(name) or {}).get("ready"))} for name, *_ in PODS},
        "service_ip": raw.get("service_ip"),
    }
    return doc


def _path_of(plan: SuitePlan, subject: str, test: str) -> str:
    return next(s.path for s in plan.steps if s.subject == subject and s.test == test)


def _placement_problems(pods: Mapping[str, Any], ctx: RunContext) -> list[str]:
    expected = {"client": ctx.client_node, "server": ctx.server_node}
    out = []
    for name, role, _hn, _serves in PODS:
        node = (pods.get(name) or {}).get("node")
        # the node name may be the short host name or the private DNS name: compare the host part
        if node and expected[role] and node.split(".")[0] != expected[role].split(".")[0]:
            out.append(f"pod {name} ran on node {node}, not on the {role} node {expected[role]}")
    return out


# --------------------------------------------------------------------------- table


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def format_table(doc: Mapping[str, Any]) -> str:
    """A plain-text table of the result document (for the update's log)."""
    extra = doc.get("extra") or {}
    env = doc.get("environment") or {}
    head = [f"cnibench benchmark {doc.get('run_id')}: status {extra.get('status', '?')}"
            + (f" ({extra.get('tests_ok')}/{extra.get('tests_total')} tests ok)" if "tests_total" in extra else ""),
            f"kernel {env.get('kernel')}, {env.get('cpus') or '?'} CPUs, instance {env.get('instance_type', '?')}, "
            f"underlay MTU {env.get('underlay_mtu')}"]
    rows = [("subject", "test", "path", "median", "min", "max", "CV", "eff.", "CPU cli/srv %", "detail")]
    for subject in doc.get("subjects") or []:
        if subject.get("status") != "ok" and not subject.get("tests"):
            rows.append((subject["name"], "-", "-", "-", "-", "-", "-", "-", "-",
                         subject.get("error") or subject.get("skipped_reason") or subject.get("status")))
        for t in subject.get("tests") or []:
            st = t.get("stats") or {}
            cpu = t.get("cpu") or {}
            detail = ""
            if t["kind"] == "latency":
                pcts = [r.get("percentiles") or {} for r in t.get("repetitions", []) if r.get("percentiles")]
                if pcts:
                    med = {k: statistics.median(p[k] for p in pcts if k in p) for k in ("p50", "p90", "p99", "p99.9")}
                    detail = " ".join(f"{k} {v:.2f}" for k, v in med.items()) + " ms"
                short = [r["details"].get("rate_shortfall_percent") for r in t.get("repetitions", [])
                         if (r.get("details") or {}).get("rate_shortfall_percent") is not None]
                if short and max(short) > 5:
                    detail += f"; rate up to {max(short):.0f}% below target"
            if t["status"] != "ok":
                detail = f"{t['status']}: {t.get('error') or t.get('skipped_reason')}"
            else:
                failed = sum(1 for r in t.get("repetitions", []) if r.get("error"))
                if failed:
                    detail = f"{failed}/{len(t['repetitions'])} repetitions failed: {t.get('error')}; {detail}"
            cpu_txt = "-"
            if cpu.get("client_busy_percent") is not None or cpu.get("server_busy_percent") is not None:
                cpu_txt = f"{_fmt(cpu.get('client_busy_percent'), 1)}/{_fmt(cpu.get('server_busy_percent'), 1)}"
            rows.append((
                subject["name"], t["name"], t["path"],
                f"{_fmt(st.get('median'))} {t['unit']}" if st.get("median") is not None else "-",
                _fmt(st.get("min")), _fmt(st.get("max")),
                f"{st['cv'] * 100:.1f}%" if st.get("cv") is not None else "-",
                f"{t['efficiency']:.2f}" if t.get("efficiency") is not None else "-",
                cpu_txt, detail[:120],
            ))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    errs = extra.get("errors") or []
    tail = [f"error: {e}" for e in errs[:20]]
    return "\n".join(head + lines + tail)


def iter_tests(doc: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    for subject in doc.get("subjects") or []:
        for t in subject.get("tests") or []:
            yield subject["name"], t
