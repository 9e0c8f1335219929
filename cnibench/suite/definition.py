"""The one suite definition: which tests a run makes, with which tool, what the figure is and
how it is judged. The local lab (``cnibench.lab.runner``) and the cloud suite
(``cnibench.suite.plan`` -> ``bench.sh``) both build their steps from :func:`suite_tests`, so
the two run the same tests and produce the same result document (schema v2).

Why these tests (see ``docs/measurements.md``):

* **Request/response latency** (``tcp-rr-*``, ``udp-rr-*``): one transaction in flight,
  ``sockperf ping-pong``, percentiles at microsecond resolution. It answers the question
  netperf's TCP_RR answers in k8s-netperf, ``cilium connectivity perf`` and
  kubernetes/perf-tests. The figure is the median round trip (p50, µs); p90..p99.9 are kept.
* **Connection rate** (``tcp-crr``): TCP_CRR's question, a new TCP connection per
  transaction, with ``wrk`` and ``Connection: close`` against nginx, one connection at a
  time. The figure is transactions per second.
* **Latency under constant load** (``latency-tcp-*``, ``latency-udp-*``): an open-loop sender
  (``sockperf under-load --mps``) at fixed fractions of the message rate the host network
  reached in the same run (the method of the "Comparison of Networking Solutions for
  Kubernetes" study). Judged by the validity gate of :mod:`cnibench.suite.records`.
* **Throughput** (``tcp``, ``tcp-service``, ``udp``): iperf3 with the first second(s)
  omitted; UDP at one fixed datagram size that fits the smallest pod MTU of the run and a
  fixed offered rate, with the loss reported beside the rate.
* **HTTP** (``http-*``): nginx responses of 350 B and 4 KiB, wrk with keep-alive: a
  closed-loop, application-level figure (requests per second), labelled as such.
* **CPU cost** (``cpu-tcp``): CPU seconds per Gbit at a fixed offered rate (a fraction of
  the host's TCP maximum), minus the idle baseline taken just before; ``invalid`` when the
  machine was saturated.
* **Path MTU** (``mtu``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

# sockperf's smallest message is its own 14-byte header: sockperf 3.7 refuses `-m 13` with
# "'-m' Invalid message size: 13 (min: 14)" (run on this machine; its usage text: "minimum default 14")
SOCKPERF_MIN_MESSAGE = 14
IPV4_UDP_HEADERS = 20 + 8  # RFC 791 minimal IPv4 header + RFC 768 UDP header


@dataclass(frozen=True)
class SuiteSettings:
    """Lengths, sizes and rates of one run; the lab and the cloud differ only in defaults."""

    duration_s: float = 10.0  # iperf3 tests (measured part)
    omit_s: int = 1  # iperf3 -O: seconds of slow start not counted (the references skip the first second)
    rr_duration_s: float = 10.0  # sockperf and wrk tests
    streams: int = 1  # iperf3 -P of the `tcp` test
    rr_sizes: tuple[int, ...] = (SOCKPERF_MIN_MESSAGE, 1024)  # minimal and 1 KiB messages
    http_sizes: tuple[int, ...] = (350, 4096)  # the MZ study's response sizes
    http_connections: int = 4  # wrk -c for the closed-loop HTTP tests
    crr_size: int = 350  # response size of the connection-rate test
    load_fractions: tuple[float, ...] = (0.3, 0.5)  # of the host's maximum message rate
    reply_every: int = 10  # sockperf under-load: one reply (latency observation) per N messages
    udp_rate_mbit: int = 1000  # fixed offered UDP rate
    cpu_rate_fraction: float = 0.25  # cpu-tcp: offered rate as a fraction of the host's TCP maximum
    idle_baseline_s: float = 1.0  # idle CPU sampled just before the cpu-tcp test
    repeat_min: int = 3
    repeat_max: int = 5
    target_half_width: float = 0.05  # adaptive repetitions stop when every primary interval is within +-5 %
    # the tests whose ratio intervals decide the adaptive stop
    primary_tests: tuple[str, ...] = ("tcp", f"tcp-rr-{SOCKPERF_MIN_MESSAGE}B")
    udp: bool = True
    service: bool = True
    latency: bool = True  # request/response, connection rate, under-load and HTTP tests
    cpu: bool = True
    both_ways: bool = False  # the lab's --both-ways: iperf3 -R twins of the throughput tests, and udp-service
    ipvs: bool = False  # the lab's --ipvs: the service tests again through IPVS (kube-router's proxy)

    def udp_size(self, smallest_mtu: int) -> int:
        """The one UDP payload size of the run: the largest that fits the smallest pod MTU
        without fragmentation (the same size for every datapath)."""
        return smallest_mtu - IPV4_UDP_HEADERS

    def as_parameters(self) -> dict:
        """The settings as the result document records them (``parameters.suite``)."""
        return {
            "duration_s": self.duration_s, "omit_s": self.omit_s, "rr_duration_s": self.rr_duration_s,
            "streams": self.streams, "rr_sizes_bytes": list(self.rr_sizes), "http_sizes_bytes": list(self.http_sizes),
            "http_connections": self.http_connections, "crr_size_bytes": self.crr_size,
            "load_fractions": list(self.load_fractions), "reply_every": self.reply_every,
            "udp_rate_mbit": self.udp_rate_mbit, "cpu_rate_fraction": self.cpu_rate_fraction,
            "idle_baseline_s": self.idle_baseline_s,
            "repetitions": {"min": self.repeat_min, "max": self.repeat_max,
                            "target_half_width": self.target_half_width, "primary_tests": list(self.primary_tests)},
        }


# The lab's defaults: short tests and one load level, so that a default run of three datapaths
# stays within a few minutes on 2 cores (docs/measurements.md has the time budget). Its adaptive
# repetitions follow the request/response medians only: on a shared 2-core VM the throughput of
# one repetition varies by 5-15 % (CV), so its interval reaches +-5 % only after tens of
# repetitions and, as a primary, it sent every default run to the cap; it is still reported
# with its interval.
LAB_DEFAULTS = SuiteSettings(duration_s=1.0, omit_s=1, rr_duration_s=1.0, load_fractions=(0.3,),
                             udp_rate_mbit=500, idle_baseline_s=0.5, repeat_min=3, repeat_max=4,
                             primary_tests=(f"tcp-rr-{SOCKPERF_MIN_MESSAGE}B", f"udp-rr-{SOCKPERF_MIN_MESSAGE}B"))
# The cloud's defaults: the references' 10 s with 1 s omitted.
CLOUD_DEFAULTS = SuiteSettings()


@dataclass(frozen=True)
class TestDef:
    """One test of the suite."""

    name: str
    kind: str  # schema kind: tcp, udp, rr, crr, http, latency, cpu, mtu
    tool: str  # iperf3, sockperf, wrk, icmp
    unit: str
    higher_is_better: bool
    statistic: str  # what the test's figure is
    protocol: str = "tcp"
    size: int = 0  # message, datagram or response size in bytes
    load_fraction: float = 0.0  # latency under load: of the host's maximum message rate
    service: bool = False  # to the ClusterIP instead of the server pod (not on the host reference)
    ipvs: bool = False  # the ClusterIP through IPVS (kube-router) rather than kube-proxy's DNAT
    reverse: bool = False  # iperf3 -R: the server sends, the client receives
    closed_loop: bool = False  # the generator waits for each response: a rate, not a latency at fixed load
    primary: bool = False  # drives the adaptive repetitions
    parameters: dict = field(default_factory=dict)
    skipped_reason: str | None = None  # planned, but not measurable on this subject (the reason)

    @property
    def reference_test(self) -> str:
        """The host test this test's ratio is taken against: a service test's is the host's
        test of its protocol and direction (``udp-service-reverse`` -> ``udp-reverse``)."""
        if self.service and self.kind in ("tcp", "udp"):
            return self.kind + ("-reverse" if self.reverse else "")
        return self.name


def suite_tests(settings: SuiteSettings, *, udp_size: int, service: bool = True,
                no_service_path: str | None = None) -> list[TestDef]:
    """The tests of one subject, in run order (``service`` is False for the host reference).
    ``no_service_path`` is the reason a datapath cannot reach services: its service test is
    then kept, as skipped with that reason."""
    s = settings
    tcp = TestDef("tcp", "tcp", "iperf3", "Gbit/s", True, "receiver throughput",
                  parameters={"streams": s.streams, "omit_s": s.omit_s, "duration_s": s.duration_s})
    tests = _throughput(s, tcp, service and s.service, no_service_path=no_service_path)
    if s.udp:
        udp = TestDef("udp", "udp", "iperf3", "Gbit/s", True, "receiver throughput at a fixed offered rate",
                      protocol="udp", size=udp_size,
                      parameters={"offered_mbit": s.udp_rate_mbit, "datagram_bytes": udp_size,
                                  "omit_s": s.omit_s, "duration_s": s.duration_s})
        # udp-service only with --both-ways: the cloud suite (and a lab run without it) keeps its tests
        tests += _throughput(s, udp, service and s.service and s.both_ways, no_service_path=no_service_path)
    if s.latency:
        for proto in ("tcp", "udp"):
            for size in s.rr_sizes:
                tests.append(TestDef(f"{proto}-rr-{size}B", "rr", "sockperf", "µs", False,
                                     "p50 round trip (sockperf --full-rtt), one transaction in flight", protocol=proto, size=size,
                                     parameters={"message_bytes": size, "duration_s": s.rr_duration_s,
                                                 "mode": "ping-pong"}))
        tests.append(TestDef("tcp-crr", "crr", "wrk", "transactions/s", True,
                             "new TCP connection per HTTP transaction, one at a time", size=s.crr_size,
                             closed_loop=True,
                             parameters={"response_bytes": s.crr_size, "connections": 1,
                                         "duration_s": s.rr_duration_s, "header": "Connection: close"}))
        for size in s.http_sizes:
            tests.append(TestDef(f"http-{size}B", "http", "wrk", "requests/s", True,
                                 "HTTP keep-alive requests per second (closed loop)", size=size, closed_loop=True,
                                 parameters={"response_bytes": size, "connections": s.http_connections,
                                             "duration_s": s.rr_duration_s}))
        for proto in ("tcp", "udp"):
            for frac in s.load_fractions:
                tests.append(TestDef(f"latency-{proto}-{frac * 100:g}pct", "latency", "sockperf", "µs", False,
                                     "p99 round trip at a constant offered message rate", protocol=proto,
                                     size=s.rr_sizes[0], load_fraction=frac,
                                     parameters={"message_bytes": s.rr_sizes[0], "load_fraction": frac,
                                                 "reply_every": s.reply_every, "duration_s": s.rr_duration_s,
                                                 "mode": "under-load"}))
    if s.cpu:
        tests.append(TestDef("cpu-tcp", "cpu", "iperf3", "CPU s/Gbit", False,
                             "idle-corrected CPU seconds per Gbit at a fixed offered TCP rate",
                             parameters={"rate_fraction_of_host_max": s.cpu_rate_fraction,
                                         "idle_baseline_s": s.idle_baseline_s, "omit_s": 0,
                                         "duration_s": s.duration_s}))
    tests.append(TestDef("mtu", "mtu", "icmp", "bytes", True, "largest IPv4 packet with DF set"))
    # without any of the primary tests (e.g. the latency tests turned off) TCP throughput decides
    primaries = set(s.primary_tests) & {t.name for t in tests} or {"tcp"}
    return [replace(t, primary=True) if t.name in primaries else t for t in tests]


def _throughput(s: SuiteSettings, base: TestDef, service: bool, *, no_service_path: str | None) -> list[TestDef]:
    """``base`` (tcp or udp), its service tests (DNAT, then IPVS with ``s.ipvs``) and, with
    ``s.both_ways``, each one's reverse twin (iperf3 -R) right after it. The TCP service test
    runs one stream (as it always did), the UDP one keeps the datagram size and offered rate."""
    variants = [base]
    if service:
        params = {**base.parameters, "streams": 1} if base.kind == "tcp" else dict(base.parameters)
        svc = replace(base, name=f"{base.name}-service", service=True, parameters=params,
                      skipped_reason=no_service_path)
        variants.append(svc)
        if s.ipvs:
            variants.append(replace(svc, name=f"{svc.name}-ipvs", ipvs=True, parameters=dict(params)))
    out: list[TestDef] = []
    for t in variants:
        out.append(t)
        if s.both_ways:
            out.append(replace(t, name=f"{t.name}-reverse", reverse=True,
                               statistic=f"{t.statistic}, server to client (iperf3 -R)",
                               parameters={**t.parameters, "reverse": True}))
    return out


def calibrations(settings: SuiteSettings) -> list[str]:
    """What the host reference measures once, before the repetitions, to fix the offered rates
    of the other tests: the host's maximum message rates (under-load targets) and its TCP
    maximum (the cpu-tcp rate)."""
    out: list[str] = []
    if settings.latency and settings.load_fractions:
        out += ["max-msg-rate-tcp", "max-msg-rate-udp"]
    if settings.cpu:
        out.append("max-tcp")
    return out


def smallest_mtu(mtus: Sequence[int]) -> int:
    if not mtus:
        raise ValueError("no MTU to size the UDP datagrams from")
    return min(mtus)


# Background-load guard: a repetition is contaminated when, just before it, work other than the
# benchmark kept more than this share of all cores busy (lab: the whole machine; cloud: either node).
BUSY_THRESHOLD = 0.25
GUARD_SECONDS = 1.0


def contaminated(busy_fraction: float | None, threshold: float = BUSY_THRESHOLD) -> bool:
    return busy_fraction is not None and busy_fraction > threshold
