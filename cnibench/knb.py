"""knb reports (github.com/InfraBuilder/k8s-bench-suite, script ``knb``, v1.5.0): parsers and
conversion into the cnibench result document (``origin: knb``).

Design notes and their sources: docs/knb.md (knb).
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping

from cnibench import results
from cnibench.errors import InputError, ParseError

KNB_DEFAULT_DURATION_S = 10  # knb v1.5.0: BENCHMARK_DURATION="10"
# A knb report is 1-4 KB (tests/data/knb), its text form with knb's log lines a few KB more;
# 1 MiB bounds what an import reads and parses, whatever the input.
MAX_REPORT_BYTES = 1024 * 1024
MAX_DURATION_S = 86400  # knb passes -d to iperf3 -t, which refuses more (MAX_TIME in iperf3's src/iperf.h)
# and iperf3 reads -t with atoi (src/iperf_api.c, iperf_parse_arguments): whole seconds, 0 = no limit
MIN_DURATION_S = 1
# Receiver bandwidth of one iperf3 stream, Mbit/s: 10 Tbit/s, ten times the fastest Ethernet standard
# (IEEE 802.3dj, 1.6 Tbit/s) rounded up; a larger figure is not one iperf3 measured
MAX_BANDWIDTH_MBIT_S = 10_000_000
MAX_RAM_MB = 64 * 1024 * 1024  # 64 TiB in MB: above any single machine's memory
MAX_CPUS = 4096  # CPUs of one node: Linux's NR_CPUS maximum on x86_64 is 8192; no cloud node has more than 896
MAX_DEPTH = 16  # knb's JSON/YAML nests 5 levels (data.pod2pod.tcp.client.cpu.total)
KNB_CPU_FIELDS = ("user", "nice", "system", "iowait", "steal")

# Test sections of a knb report: (JSON path, text section, text protocol) -> cnibench test.
# The names follow cnibench's cloud suite so that an imported knb run sits beside a cloud run.
_SECTIONS: dict[tuple[str, str], dict[str, str]] = {
    ("pod2pod", "tcp"): {"name": "tcp", "kind": "tcp", "path": "pod-to-pod", "reference_test": "tcp"},
    ("pod2pod", "udp"): {"name": "udp", "kind": "udp", "path": "pod-to-pod", "reference_test": "udp"},
    ("pod2svc", "tcp"): {"name": "tcp-service", "kind": "tcp", "path": "pod-to-service", "reference_test": "tcp"},
    ("pod2svc", "udp"): {"name": "udp-service", "kind": "udp", "path": "pod-to-service", "reference_test": "udp"},
}
_TEXT_GROUPS = {"Idle": "idle", "Pod to pod": "pod2pod", "Pod to Service": "pod2svc"}


@dataclass(frozen=True)
class KnbNodeUsage:
    """Average CPU (percent of the node) and used RAM (MB) of one node during one knb test."""

    cpu_total: float | None = None
    cpu: Mapping[str, float | None] = field(default_factory=dict)  # user, nice, system, iowait, steal
    ram_mb: float | None = None

    @property
    def empty(self) -> bool:
        return self.cpu_total is None and self.ram_mb is None and not any(v is not None for v in self.cpu.values())


@dataclass(frozen=True)
class KnbTest:
    section: str  # "idle", "pod2pod", "pod2svc"
    protocol: str | None  # "tcp", "udp"; None for idle
    bandwidth_mbit_s: float | None
    client: KnbNodeUsage
    server: KnbNodeUsage


@dataclass(frozen=True)
class KnbReport:
    format: str  # "json", "text" or "yaml"
    metadata: Mapping[str, str]  # name, generator, version, date, server-node, client-node, socket-buffer-size
    cpu_model: str | None
    kernel: str | None
    k8s_version: str | None
    mtu: str | None  # as printed: one MTU per UP interface of the server pod, space separated
    tests: tuple[KnbTest, ...]

    @property
    def name(self) -> str:
        return self.metadata.get("name") or "knb"

    @property
    def version(self) -> str | None:
        return self.metadata.get("version")

    @property
    def mtus(self) -> list[int]:
        # each is an IPv4 MTU: both parsers refuse any other token (_checked_mtu)
        return [int(m) for m in (self.mtu or "").split()]

    def test(self, section: str, protocol: str | None = None) -> KnbTest | None:
        return next((t for t in self.tests if t.section == section and t.protocol == protocol), None)


# --------------------------------------------------------------------------- parsing


_MAX_TEXT = 1000  # characters of one text field (a CPU model, a node name); knb's are < 100


def _too_long_to_print(value: Any) -> bool:
    """An integer Python refuses to turn into text (more digits than sys.get_int_max_str_digits():
    4300 by default), which YAML's hex, octal and binary integers can build at any length."""
    limit = sys.get_int_max_str_digits()
    return isinstance(value, int) and limit > 0 and value.bit_length() > limit * 3.3


def _shown(value: Any) -> str:
    """``value`` quoted for an error message, cut to 40 characters."""
    if _too_long_to_print(value):
        return f"an integer of {value.bit_length()} bits"
    return repr(value)[:40]


def _clean(value: Any, where: str) -> str | None:
    """A text field: a string or a number as knb prints it; a list or a mapping is not one."""
    if value is None:
        return None
    if _too_long_to_print(value):
        raise ParseError(f"{where}: {_shown(value)}, more than the {_MAX_TEXT} characters a knb field has")
    if isinstance(value, (Mapping, list, tuple, set, bytes)):
        raise ParseError(f"{where}: expected text, got a {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ParseError(f"{where}: {value!r} is not a finite number")
    text = str(value).replace("\r", "").strip()
    if len(text) > _MAX_TEXT:
        raise ParseError(f"{where}: {len(text)} characters, more than the {_MAX_TEXT} a knb field has")
    return text or None


def _number(value: Any, where: str, *, high: float = math.inf) -> float | None:
    """A figure knb printed: None when it printed none (empty, or not a number at all); a
    number that is not finite, negative or above ``high`` is refused, naming ``where``."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (Mapping, list, tuple, set)):
        raise ParseError(f"{where}: expected a number, got a {type(value).__name__}")
    try:
        number = float(value) if isinstance(value, (int, float)) else float(str(value).replace("\r", "").strip())
    except OverflowError:
        number = math.inf
    except ValueError:
        if str(value).replace("\r", "").strip():
            # knb prints a figure or nothing (an empty field when a tool gave no output)
            raise ParseError(f"{where}: {str(value)[:40]!r} is not a figure knb prints (a number, or nothing)") \
                from None
        return None
    if not (math.isfinite(number) and 0 <= number <= high):
        bound = f"[0, {high:.15g}]" if math.isfinite(high) else ">= 0"  # 67108864, never 6.71089e+07
        raise ParseError(f"{where}: {_shown(value)} is not a figure knb prints (a finite number {bound})")
    return number


def _usage_from_mapping(node: Any, where: str) -> KnbNodeUsage:
    if not isinstance(node, Mapping):
        return KnbNodeUsage()
    raw_cpu = node.get("cpu")
    cpu: Mapping[str, Any] = raw_cpu if isinstance(raw_cpu, Mapping) else {}
    parts = {k: _number(cpu.get(k), f"{where}.cpu.{k}", high=100) for k in KNB_CPU_FIELDS}
    total = _number(cpu.get("total"), f"{where}.cpu.total", high=100)
    if all(v is None for v in parts.values()):
        # knb prints "total" with printf "%.2f" of an empty line: 0.00 when the monitor had no samples
        total = None
    return KnbNodeUsage(cpu_total=total, cpu=parts, ram_mb=_number(node.get("ram"), f"{where}.ram", high=MAX_RAM_MB))


def _checked_mtu(mtu: str | None, where: str) -> str | None:
    """knb's MTU field: one MTU per UP interface of the server pod, space separated (``ip link |
    grep -oE "mtu [0-9]*"``); each must be an IPv4 MTU, 68..65535 (RFC 791)."""
    for token in (mtu or "").split():
        if not (token.isascii() and token.isdigit() and len(token) <= 5 and 68 <= int(token) <= 65535):
            raise ParseError(f"{where}: {token[:20]!r} is not an MTU (an integer in 68..65535, RFC 791)")
    return mtu


def _depth_at_most(value: Any, limit: int) -> bool:
    """Whether ``value`` nests at most ``limit`` containers deep (iterative: any input)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (Mapping, list)):
            if depth > limit:
                return False
            stack.extend((x, depth + 1) for x in (v.values() if isinstance(v, Mapping) else v))
    return True


def _from_mapping(doc: Any, fmt: str) -> KnbReport:
    if not _depth_at_most(doc, MAX_DEPTH):
        raise ParseError(f"knb {fmt}: nested deeper than {MAX_DEPTH} levels (a knb report has 5)")
    if not isinstance(doc, Mapping) or not isinstance(doc.get("data"), Mapping):
        raise ParseError(f"knb {fmt}: no 'data' section (is this a knb report?)")
    raw_meta = doc.get("metadata")
    if raw_meta is not None and not isinstance(raw_meta, Mapping):
        raise ParseError(f"knb {fmt}: metadata: expected a mapping, got a {type(raw_meta).__name__}")
    meta = {str(k): _clean(v, f"knb {fmt}: metadata.{k}") or "" for k, v in (raw_meta or {}).items()}
    if meta.get("generator") not in (None, "", "knb"):
        raise ParseError(f"knb {fmt}: generator is {meta['generator']!r}, not knb")
    data = doc["data"]
    tests: list[KnbTest] = []
    where = f"knb {fmt}: data"
    if isinstance(data.get("idle"), Mapping):
        idle = data["idle"]
        tests.append(KnbTest("idle", None, _number(idle.get("bandwidth"), f"{where}.idle.bandwidth",
                                                     high=MAX_BANDWIDTH_MBIT_S),
                             _usage_from_mapping(idle.get("client"), f"{where}.idle.client"),
                             _usage_from_mapping(idle.get("server"), f"{where}.idle.server")))
    for section in ("pod2pod", "pod2svc"):
        group = data.get(section)
        if not isinstance(group, Mapping):
            continue
        for proto in ("tcp", "udp"):
            t = group.get(proto)
            if isinstance(t, Mapping):
                at = f"{where}.{section}.{proto}"
                tests.append(KnbTest(section, proto, _number(t.get("bandwidth"), f"{at}.bandwidth", high=MAX_BANDWIDTH_MBIT_S),
                                     _usage_from_mapping(t.get("client"), f"{at}.client"),
                                     _usage_from_mapping(t.get("server"), f"{at}.server")))
    return KnbReport(
        format=fmt,
        metadata=meta,
        cpu_model=_clean(data.get("cpu"), f"{where}.cpu"),
        kernel=_clean(data.get("kernel"), f"{where}.kernel"),
        k8s_version=_clean(data.get("k8s-version"), f"{where}.k8s-version"),
        mtu=_checked_mtu(_clean(data.get("mtu"), f"{where}.mtu"), f"{where}.mtu"),
        tests=tuple(tests),
    )


# A value knb left empty: `"key": ,` or `"key": ` at the end of a line or before a `}`.
_EMPTY_JSON_VALUE = re.compile(r'("[A-Za-z0-9_-]+"\s*:)[ \t]*(?=,|\r?\n|\})')


def parse_knb_json(text: str | bytes) -> KnbReport:
    """Parse the output of ``knb -o json``, as knb writes it (see the module docstring)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    _check_size(text)
    repaired = _EMPTY_JSON_VALUE.sub(r"\1 null", text)
    try:
        doc = json.loads(repaired, strict=False)  # strict=False: knb leaves \r inside strings
    except RecursionError:
        raise ParseError(f"knb json: nested deeper than {MAX_DEPTH} levels (a knb report has 5)") from None
    except ValueError as exc:  # JSONDecodeError; an integer of more than 4300 digits
        raise ParseError(f"knb json: not a knb JSON report ({exc})") from None
    return _from_mapping(doc, "json")


@functools.cache
def _yaml_loader() -> type:
    """PyYAML's SafeLoader without anchors and aliases: knb's YAML (a printf template in the knb
    script, e.g. tests/data/knb/lab-run1.yaml) has none, and aliases are what makes a 2 KB
    document expand to gigabytes (each alias of a list of aliases multiplies the size)."""
    import yaml

    class KnbYamlLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise ParseError(f"knb yaml: line {line}: anchors and aliases (&, *) are refused: "
                                 "knb writes none")
            return super().compose_node(parent, index)

    return KnbYamlLoader


def parse_knb_yaml(text: str | bytes) -> KnbReport:
    """Parse the output of ``knb -o yaml`` (same structure as the JSON report)."""
    import yaml

    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    _check_size(text)
    try:
        doc = yaml.load(text.replace("\r", ""), Loader=_yaml_loader())
    except ParseError:
        raise
    except RecursionError:
        raise ParseError(f"knb yaml: nested deeper than {MAX_DEPTH} levels (a knb report has 5)") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        # ValueError/OverflowError: a date or a number SafeLoader cannot build (2024-13-45, 1e999999)
        raise ParseError(f"knb yaml: not a knb YAML report ({exc})") from None
    return _from_mapping(doc, "yaml")


def _check_size(text: str) -> None:
    if len(text) > MAX_REPORT_BYTES:
        raise ParseError(f"knb: {len(text)} characters, more than the {MAX_REPORT_BYTES} an import reads "
                         "(a knb report has a few thousand)")


_TEXT_HEADER = re.compile(r"^ (Name|Date|Generator|Version|Server|Client|UDP Socket size)\s*:\s?(.*)$")
_TEXT_DISCOVERED = re.compile(r"^\s+Discovered (CPU|Kernel|k8s version|MTU)\s*:\s?(.*)$")
_TEXT_GROUP = re.compile(r"^\s+(Idle|Pod to pod|Pod to Service) :\s*$")
_TEXT_PROTO = re.compile(r"^\s+(TCP|UDP) :\s*$")
_TEXT_BANDWIDTH = re.compile(r"^\s+bandwidth = ?(\S*) Mbit/s\s*$")
_TEXT_CPU = re.compile(r"^\s+(client|server) cpu =(.*)$")
_TEXT_RAM = re.compile(r"^\s+(client|server) ram = ?(\S*) MB\s*$")
_TEXT_CPU_TOTAL = re.compile(r"total ([0-9.]+)%")
_TEXT_CPU_PART = re.compile(r"(user|nice|system|iowait|steal) ([0-9.]+)%")
_HEADER_KEYS = {"Name": "name", "Date": "date", "Generator": "generator", "Version": "version",
                "Server": "server-node", "Client": "client-node", "UDP Socket size": "socket-buffer-size"}


def parse_knb_text(text: str | bytes) -> KnbReport:
    """Parse the default report of knb (``-o text``), including lines knb logs around it."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    _check_size(text)
    if "Benchmark Results" not in text:
        raise ParseError("knb text: no 'Benchmark Results' banner (is this a knb text report?)")
    meta: dict[str, str] = {}
    discovered: dict[str, str | None] = {}
    tests: dict[tuple[str, str | None], dict[str, Any]] = {}
    group: str | None = None
    current: dict[str, Any] | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.replace("\r", "").rstrip()
        if m := _TEXT_HEADER.match(line):
            meta[_HEADER_KEYS[m.group(1)]] = _clean(m.group(2), f"knb text: line {lineno}: {m.group(1)}") or ""
            if m.group(1) == "Date" and meta["date"].endswith(" UTC"):
                meta["date"] = meta["date"][: -len(" UTC")]
        elif m := _TEXT_DISCOVERED.match(line):
            discovered[m.group(1)] = _clean(m.group(2), f"knb text: line {lineno}: Discovered {m.group(1)}")
        elif m := _TEXT_GROUP.match(line):
            group = _TEXT_GROUPS[m.group(1)]
            current = tests.setdefault((group, None), {}) if group == "idle" else None
        elif (m := _TEXT_PROTO.match(line)) and group in ("pod2pod", "pod2svc"):
            current = tests.setdefault((group, m.group(1).lower()), {})
        elif current is None:
            continue
        elif m := _TEXT_BANDWIDTH.match(line):
            current["bandwidth"] = _number(m.group(1), f"knb text: line {lineno}: bandwidth",
                                           high=MAX_BANDWIDTH_MBIT_S)
        elif m := _TEXT_CPU.match(line):
            body, at = m.group(2), f"knb text: line {lineno}: {m.group(1)} cpu"
            total = _TEXT_CPU_TOTAL.search(body)
            current[f"{m.group(1)}_cpu"] = (
                _number(total.group(1), f"{at} total", high=100) if total else None,
                {k: _number(v, f"{at} {k}", high=100) for k, v in _TEXT_CPU_PART.findall(body)},
            )
        elif m := _TEXT_RAM.match(line):
            current[f"{m.group(1)}_ram"] = _number(m.group(2), f"knb text: line {lineno}: {m.group(1)} ram",
                                                   high=MAX_RAM_MB)
    if not tests:
        raise ParseError("knb text: no test section (Idle, Pod to pod, Pod to Service) in the report")

    def usage(t: dict[str, Any], who: str) -> KnbNodeUsage:
        cpu_record: tuple[float | None, dict[str, Any]] = t.get(f"{who}_cpu") or (None, {})
        total, parts = cpu_record
        return KnbNodeUsage(cpu_total=total, cpu={k: parts.get(k) for k in KNB_CPU_FIELDS},
                            ram_mb=t.get(f"{who}_ram"))

    order = [("idle", None), ("pod2pod", "tcp"), ("pod2pod", "udp"), ("pod2svc", "tcp"), ("pod2svc", "udp")]
    return KnbReport(
        format="text",
        metadata=meta,
        cpu_model=discovered.get("CPU"),
        kernel=discovered.get("Kernel"),
        k8s_version=discovered.get("k8s version"),
        mtu=_checked_mtu(discovered.get("MTU"), "knb text: Discovered MTU"),
        tests=tuple(KnbTest(s, p, tests[(s, p)].get("bandwidth"), usage(tests[(s, p)], "client"),
                            usage(tests[(s, p)], "server")) for s, p in order if (s, p) in tests),
    )


def parse_knb(text: str | bytes) -> KnbReport:
    """Parse any knb report (``-o json``, ``-o yaml`` or the default text), detecting the format."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    _check_size(text)
    head = text.lstrip()
    if head.startswith("{"):
        return parse_knb_json(text)
    if head.startswith("metadata:"):
        return parse_knb_yaml(text)
    if "Benchmark Results" in text:
        return parse_knb_text(text)
    if not head:
        raise ParseError("knb: empty report")
    raise ParseError(
        "knb: not a knb report (expected the JSON of 'knb -o json', the YAML of '-o yaml' or the "
        "text report); note that '-o data' files are tar archives: render them first with "
        "'knb -fd FILE -o json'"
    )


# --------------------------------------------------------------------------- result document


def _usage_record(u: KnbNodeUsage) -> dict[str, Any]:
    return {"cpu_total_percent": u.cpu_total, **{f"cpu_{k}_percent": v for k, v in u.cpu.items()},
            "ram_used_mb": u.ram_mb}


def _above_idle(busy: float | None, idle: float | None) -> float | None:
    """The busy share above the node's idle baseline, None when either is unknown."""
    return None if busy is None or idle is None else busy - idle


def _repetition_cpu(t: KnbTest, idle: KnbTest | None, cpus: int | None) -> dict[str, Any] | None:
    """The CPU record of one knb test: the busy shares knb sampled and, when the report has its
    idle test, the shares above that idle baseline (``idle_corrected``). knb's figures are
    percent of the whole node and it does not report the node's CPU count: CPU seconds per
    Gbit/s need ``cpus`` (given on import), else only the busy share per Gbit/s is published."""
    if t.client.empty and t.server.empty:
        return None
    busy = [v for v in (t.client.cpu_total, t.server.cpu_total) if v is not None]
    cpu: dict[str, Any] = {
        # both nodes: the mean of their busy shares is the busy share of the pair's CPUs when the
        # two nodes are the same size, which knb assumes (it compares two nodes of one cluster)
        "busy_percent": statistics.fmean(busy) if busy else None,
        "cpu_seconds_per_gbit": None,
        "client_busy_percent": t.client.cpu_total,
        "server_busy_percent": t.server.cpu_total,
        "client_mem_used_mb": t.client.ram_mb,
        "server_mem_used_mb": t.server.ram_mb,
        "source": "knb monitor (sar 1 1 and free -m on each node, averaged over the test)",
        "idle_corrected": False,
    }
    sides = {"client": _above_idle(t.client.cpu_total, idle.client.cpu_total if idle else None),
             "server": _above_idle(t.server.cpu_total, idle.server.cpu_total if idle else None)}
    if idle is None or any(v is None for v in sides.values()):
        cpu["idle_correction"] = ("not possible: the report has no idle test" if idle is None else
                                  "not possible: the idle test or this test has no CPU figure for a node")
        return cpu
    above = {k: v for k, v in sides.items() if v is not None}  # both: the return above saw to it
    if any(v <= 0 for v in above.values()):
        low = ", ".join(k for k, v in above.items() if v <= 0)
        cpu["idle_correction"] = f"not possible: the {low} was no busier than at idle (sampling noise)"
        return cpu
    cpu.update(idle_corrected=True, idle_correction="the idle test's busy share subtracted per node",
               busy_above_idle_percent=statistics.fmean(above.values()),
               client_busy_above_idle_percent=above["client"], server_busy_above_idle_percent=above["server"])
    gbit_s = (t.bandwidth_mbit_s or 0) / 1000.0
    if cpus and gbit_s > 0:
        # percent of a node of `cpus` CPUs -> CPU seconds per second; per Gbit/s -> CPU s per Gbit
        per_side = {k: v / 100 * cpus / gbit_s for k, v in above.items()}
        cpu.update(cpu_seconds_per_gbit=sum(per_side.values()),
                   client_cpu_seconds_per_gbit=per_side["client"], server_cpu_seconds_per_gbit=per_side["server"],
                   basis=f"both nodes' busy share above idle x {cpus} CPUs (given on import) / Gbit/s")
    return cpu


def is_knb_duration(seconds: float) -> bool:
    """Whether ``seconds`` is a ``-d`` knb can have run with: whole seconds, 1..86400."""
    return math.isfinite(seconds) and seconds == int(seconds) and MIN_DURATION_S <= seconds <= MAX_DURATION_S


def knb_date_iso(date: str | None) -> str | None:
    """knb's run date (``date -u "+%Y-%m-%d %H:%M:%S"``; the text report adds " UTC") as an
    RFC 3339 UTC timestamp, or None when it is not one."""
    try:
        parsed = _dt.datetime.strptime((date or "").strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return parsed.replace(tzinfo=_dt.timezone.utc).isoformat(timespec="seconds")


def to_document(
    report: KnbReport,
    *,
    subject: str | None = None,
    duration_s: float | None = None,
    cpus: int | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The result document (schema v1, ``origin: knb``) of one knb report.

    One subject (kind ``knb``) named ``subject`` (default: the run name knb printed); no host
    reference (knb measures none), so efficiencies stay null. ``duration_s`` is the ``-d`` the
    run used: it is not in the report, knb's default (10 s) is assumed and said so otherwise.
    ``cpus`` is the CPU count of each node (not in the report either): with it, the
    idle-corrected CPU cost is published as CPU seconds per Gbit/s. ``created`` is knb's run
    date when the report has one (the import time is kept in ``environment.extra.knb``).
    """
    if duration_s is not None and not is_knb_duration(duration_s):
        raise InputError(f"duration {duration_s!r}: the seconds per test of the knb run (its -d), whole seconds "
                         f"in {MIN_DURATION_S}..{MAX_DURATION_S} (iperf3 -t reads whole seconds)")
    if cpus is not None and not (isinstance(cpus, int) and 1 <= cpus <= MAX_CPUS):
        raise InputError(f"cpus {cpus!r}: the CPU count of each node of the knb run, an integer in 1..{MAX_CPUS}")
    name = subject or report.name
    mtus = report.mtus
    environment = {
        "kernel": report.kernel or "unknown",
        "hostname": report.metadata.get("server-node") or "unknown",
        "cpus": cpus,  # knb reports the CPU model, not the count: given on import, else unknown
        "underlay_mtu": None,
        "extra": {
            "cpu_model": report.cpu_model,
            "kubernetes_version": report.k8s_version,
            "client_node": report.metadata.get("client-node"),
            "server_node": report.metadata.get("server-node"),
            "knb": {"version": report.version, "report_format": report.format,
                    "date_utc": report.metadata.get("date"), "name": report.name,
                    "udp_socket_buffer_size": report.metadata.get("socket-buffer-size")},
        },
    }
    duration_note = "given on import" if duration_s else "not in the knb report: knb's default -d 10 assumed"
    parameters = {
        "duration_s": float(duration_s or KNB_DEFAULT_DURATION_S),
        "repeat": 1,
        "streams": 1,
        "extra": {"duration_source": duration_note, "tool": "iperf3 -f m (receiver figure)",
                  "udp_bandwidth": "unlimited (-b 0)"},
    }
    doc = results.new_document("knb", run_id=run_id or f"knb:{report.name}", environment=environment,
                               parameters=parameters, reference="host")
    knb_meta: dict[str, Any] = doc["environment"]["extra"]["knb"]
    knb_meta["imported_utc"] = doc["created"]
    knb_meta["cpus_source"] = "given on import" if cpus else "unknown (not in a knb report)"
    if (run_date := knb_date_iso(report.metadata.get("date"))) is not None:
        doc["created"] = run_date
    subj = results.new_subject(
        name, "knb", description=f"knb {report.version or '?'} report '{report.name}'",
        configured_mtu=mtus[0] if mtus else None,
    )
    idle = report.test("idle")
    subj["extra"] = {"discovered_mtu": report.mtu, "mtu_source": "knb: the server pod's UP interfaces (pod MTU)"}
    if idle is not None:
        subj["extra"]["idle"] = {"client": _usage_record(idle.client), "server": _usage_record(idle.server)}
    for (section, proto), spec in _SECTIONS.items():
        t = report.test(section, proto)
        if t is None:
            continue
        test = results.new_test(spec["name"], spec["kind"], spec["path"], "Gbit/s",
                                reference_test=spec["reference_test"], tool=f"knb {report.version or '?'} (iperf3)",
                                statistic="receiver throughput, one knb run (imported; no interval)")
        test["parameters"] = {"knb_section": f"{section}.{proto}", "streams": 1}
        rep: dict[str, Any] = {"index": 0, "valid": True, "invalid_reason": None}
        cpu = _repetition_cpu(t, idle, cpus)
        if cpu:
            rep["cpu"] = cpu
        rep["details"] = {"client": _usage_record(t.client), "server": _usage_record(t.server)}
        if t.bandwidth_mbit_s is None:
            rep["error"] = f"knb printed no bandwidth for {section}/{proto} (iperf3 gave no receiver line)"
            rep.update(valid=False, value=None, invalid_reason=f"error: {rep['error']}")
            test.update(status="error", error=rep["error"])
        else:
            rep["value"] = t.bandwidth_mbit_s / 1000.0
        test["repetitions"].append(rep)
        subj["tests"].append(test)
    if not subj["tests"]:
        raise ParseError("the knb report holds no pod-to-pod or pod-to-service test (data.pod2pod, data.pod2svc): "
                         "nothing to import")
    doc["subjects"].append(subj)
    results.finalize(doc)
    for test in subj["tests"]:
        # one repetition per test: its CPU record is the test's (finalize keeps a few keys only,
        # each the median of that one repetition: the same figure; so do the per-node medians of
        # results.summarize_node_usage, which the copy makes unnecessary here)
        rep_cpu = test["repetitions"][0].get("cpu") if test["repetitions"] else None
        if rep_cpu and test.get("cpu") is not None:
            test["cpu"] = dict(rep_cpu)
    return doc


def import_report(text: str | bytes, **kwargs: Any) -> dict[str, Any]:
    """Parse a knb report (any format) and return the validated result document."""
    doc = to_document(parse_knb(text), **kwargs)
    results.validate(doc)
    return doc
