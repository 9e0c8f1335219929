"""Property-based tests (hypothesis) of every reader of external output: the tool parsers of
cnibench.parsers (iperf3 -J, sockperf, wrk's report line, /proc/stat and /proc/meminfo), the SSH
host key on a console (cnibench.hostkeys), the price table (cnibench.matrix.pricing), result
documents (cnibench.results), the runner's output (cnibench.suite.build.parse_raw), kubeadm's join
command, kernel releases, stack names and ARNs.

Three kinds of property: whatever the input, a reader returns or raises its documented error
(ParseError for the tool parsers, the callers catch nothing else); the captures in tests/data parse
to the same figures when changed in ways the format does not care about (line ends, blank lines,
trailing blanks, colour escapes, JSON layout); and output generated here from drawn figures parses
back to those figures, the expected values computed here from the drawn numbers.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnibench import hostkeys, parsers, results
from cnibench.errors import ParseError
from cnibench.matrix import names, pricing, sweep
from cnibench.program.cluster import parse_join_command
from cnibench.suite.build import RawOutputError, parse_raw
from cnibench.suite.plan import RAW_FORMAT
from cnibench.variants import parse_kernel

DATA = Path(__file__).resolve().parent / "data"
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LOWER, HEX = "abcdefghijklmnopqrstuvwxyz", "0123456789abcdef"

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=6))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=10)
# text a reader may meet: anything, and the pathological: deep nesting, integers of over 4300 digits
hostile = st.one_of(
    st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.integers(1, 3000).map(lambda n: "[" * n), st.integers(4290, 5000).map(lambda n: '{"a": ' + "7" * n + "}"),
)


def _read(name: str) -> str:
    return (DATA / name).read_text()


# --------------------------------------------------------------------------- text mutations the formats ignore

ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # what a terminal colour escape is (ECMA-48 SGR and co.)
escapes = st.builds(lambda params, final: f"\x1b[{params}{final}",
                    st.sampled_from(["", "0", "1", "2;35", "01;31", "38;5;208", ";"]), st.sampled_from("mKHJA"))


@st.composite
def reflowed(draw, text: str, *, colour: bool = False, leading: bool = False) -> str:
    """``text`` with blank lines added, blanks at line ends, CRLF line ends (a pty or a serial
    console) and, if asked, colour escapes anywhere and blanks at line starts."""
    lines = text.split("\n")
    out = []
    for line in lines:
        if draw(st.integers(0, 5)) == 0:
            out.append(draw(st.sampled_from(["", " ", "\t"])))
        if colour:
            cut = draw(st.integers(0, len(line)))
            line = line[:cut] + draw(escapes) + line[cut:]
        if leading:
            line = draw(st.sampled_from(["", " ", "  ", "\t"])) + line
        out.append(line + draw(st.sampled_from(["", "", " ", "  ", "\t"])))
    return ("\r\n" if draw(st.booleans()) else "\n").join(out)


# --------------------------------------------------------------------------- iperf3

IPERF3_CAPTURES = ["iperf3-tcp.json", "iperf3-tcp-2streams.json", "iperf3-tcp-omit.json", "iperf3-udp.json",
                   "iperf3-udp-500M.json", "iperf3-udp-fixed.json"]
rates = st.floats(min_value=1e3, max_value=4e11)  # bit/s
counts = st.integers(0, 2**53)


def _iperf3_doc(protocol, streams, omit, blksize, seconds, received, sent, nbytes, retransmits, packets,
                lost, lost_percent, jitter, mss, cpu):
    """An iperf3 -J client document with these figures, laid out as iperf3 3.12 writes it."""
    test_start = {"protocol": protocol, "num_streams": streams, "blksize": blksize, "omit": omit, "duration": 10,
                  "bytes": 0, "blocks": 0, "reverse": 0, "tos": 0, "target_bitrate": 0}
    total = {"start": 0, "end": seconds, "seconds": seconds, "bytes": nbytes}
    end: dict = {"streams": [{}] * streams,
                 "cpu_utilization_percent": {"host_total": cpu[0], "host_user": 1.0, "remote_total": cpu[1]}}
    if protocol == "TCP":
        end["sum_sent"] = {**total, "bits_per_second": sent, "retransmits": retransmits, "sender": True}
        end["sum_received"] = {**total, "bits_per_second": received, "sender": False}
    else:
        udp = {"jitter_ms": jitter, "lost_packets": lost, "packets": packets, "lost_percent": lost_percent}
        end["sum"] = {**total, "bits_per_second": sent, **udp, "sender": True}
        end["sum_sent"] = {**total, "bits_per_second": sent, "jitter_ms": 0, "lost_packets": 0, "packets": packets,
                           "lost_percent": 0, "sender": True}
        end["sum_received"] = {**total, "bits_per_second": received, **udp, "sender": False}
    return {"start": {"version": "iperf 3.12", "tcp_mss_default": mss, "test_start": test_start},
            "intervals": [], "end": end}


@SETTINGS
@given(st.sampled_from(["TCP", "UDP"]), st.integers(1, 128), st.sampled_from([0, 0, 1, 2]), st.integers(1, 65507),
       st.floats(min_value=0.5, max_value=3600.0), rates, rates, counts, st.integers(0, 10**7),
       st.integers(1, 10**9), st.data(), st.integers(500, 9000),
       st.tuples(st.floats(0.0, 100.0), st.floats(0.0, 100.0)), st.sampled_from(["str", "bytes", "dict", "utf-16"]))
def test_iperf3_figures_round_trip(protocol, streams, omit, blksize, seconds, received, sent, nbytes, retransmits,
                                   packets, data, mss, cpu, form):
    lost = data.draw(st.integers(0, packets))
    lost_percent, jitter = 100.0 * lost / packets, data.draw(st.floats(0.0, 50.0))
    doc = _iperf3_doc(protocol, streams, omit, blksize, seconds, received, sent, nbytes, retransmits, packets,
                      lost, lost_percent, jitter, mss, cpu)
    text = json.dumps(doc, indent="\t", separators=(",", ":\t"))  # iperf3's own layout
    given_as = {"str": text, "bytes": text.encode(), "dict": doc, "utf-16": text.encode("utf-16")}[form]
    r = parsers.parse_iperf3(given_as)
    assert (r.protocol, r.streams, r.duration_s, r.bytes_received) == (protocol, streams, seconds, nbytes)
    assert r.bits_per_second == received and r.gbit_per_second == received / 1e9 and r.sender_bits_per_second == sent
    assert (r.block_size, r.tcp_mss, r.omitted_s) == (blksize, mss, float(omit))
    assert (r.cpu_host_percent, r.cpu_remote_percent) == cpu
    if protocol == "TCP":
        assert (r.retransmits, r.lost_percent, r.jitter_ms, r.packets) == (retransmits, None, None, None)
    elif omit:  # the loss is recomputed from the received bytes: lost = packets - bytes // blksize
        expected_lost = max(0, packets - nbytes // blksize)
        assert (r.packets, r.lost_packets, r.jitter_ms) == (packets, expected_lost, jitter)
        assert r.lost_percent == pytest.approx(100.0 * expected_lost / packets, rel=1e-12)
    else:
        assert (r.packets, r.lost_packets, r.lost_percent, r.jitter_ms) == (packets, lost, lost_percent, jitter)


@SETTINGS
@given(st.sampled_from(IPERF3_CAPTURES), st.sampled_from([None, 0, 1, 2, "\t", "   "]), st.booleans(), st.booleans(),
       st.dictionaries(st.text(min_size=1, max_size=8).map(lambda k: "x-" + k), json_values, max_size=3),
       st.sampled_from(["", "\n", "\r\n", "  \n\n"]))
def test_iperf3_captures_ignore_layout_and_unknown_members(name, indent, sort_keys, drop_intervals, extra, around):
    """The figures come from ``start`` and ``end``: layout, key order, the per-second ``intervals``
    and members iperf3 may add in another release change nothing."""
    text = _read(name)
    doc = json.loads(text)
    if drop_intervals:
        doc["intervals"] = []
    for where in (doc, doc["start"], doc["end"], doc["end"]["sum_received"]):
        where.update(extra)
    mutated = around + json.dumps(doc, indent=indent, sort_keys=sort_keys) + around
    assert parsers.parse_iperf3(mutated) == parsers.parse_iperf3(text)


@SETTINGS
@given(st.text(min_size=1, max_size=60), json_values)
def test_iperf3_error_documents_raise_with_iperf3s_message(message, rest):
    doc = {"start": {"connected": []}, "intervals": rest, "end": {}, "error": message}
    with pytest.raises(ParseError) as info:
        parsers.parse_iperf3(json.dumps(doc))
    assert str(info.value) == f"iperf3: {message}"


iperf3_keys = st.sampled_from(["start", "end", "test_start", "sum_received", "sum_sent", "sum", "bits_per_second",
                               "protocol", "omit", "blksize", "packets", "bytes", "seconds", "num_streams",
                               "cpu_utilization_percent", "tcp_mss_default", "jitter_ms", "streams", "error"])
iperf3_like = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                           st.dictionaries(iperf3_keys, inner, max_size=5)),
                           max_leaves=16)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(iperf3_like, st.dictionaries(iperf3_keys, iperf3_like, max_size=4)), hostile)
def test_iperf3_any_input_is_a_result_or_a_parse_error(doc, text):
    for given_as in ([doc] if isinstance(doc, dict) else []) + [json.dumps(doc), text, text.encode("utf-8", "surrogatepass")]:
        try:
            r = parsers.parse_iperf3(given_as)
        except ParseError as exc:
            assert str(exc).startswith("iperf3: ")
        else:
            assert isinstance(r.bits_per_second, float) and r.protocol


# --------------------------------------------------------------------------- sockperf

SOCKPERF_CAPTURES = sorted(p.name for p in DATA.glob("sockperf-*.txt"))


def _sockperf(text: str, mode: str | None = None):
    """The parse of ``text``, or the ParseError's message: mutations must leave either the same."""
    try:
        return parsers.parse_sockperf(text, mode)
    except ParseError as exc:
        return f"ParseError: {exc}"


@SETTINGS
@given(st.sampled_from(SOCKPERF_CAPTURES), st.data())
def test_sockperf_captures_ignore_line_ends_blank_lines_and_colour(name, data):
    text = _read(name)
    plain = ESCAPE.sub("", text)  # the capture without its colour escapes
    mutated = data.draw(reflowed(plain, colour=True))
    assert _sockperf(mutated) == _sockperf(plain) == _sockperf(text)


@SETTINGS
@given(st.sampled_from([n for n in SOCKPERF_CAPTURES if "-pp-" in n or "-ul-" in n or "-tp-" in n]), st.data())
def test_sockperf_any_number_in_a_report_gives_a_result_or_a_parse_error(name, data):
    """Every number of a real report replaced by other digits (up to 5000 of them): a result or
    ParseError, never int()'s ValueError for a number of more than 4300 digits."""
    numbers = st.one_of(st.from_regex(r"\A[0-9]{1,12}\Z"), st.integers(4290, 5000).map(lambda n: "9" * n),
                        st.sampled_from(["0", "0.000", "1"]))
    text = _read(name)
    spans = [m.span() for m in re.finditer(r"[0-9]+", text)]
    chosen = data.draw(st.lists(st.sampled_from(spans), min_size=1, max_size=6, unique=True))
    mutated = text
    for start, end in sorted(chosen, reverse=True):
        mutated = mutated[:start] + data.draw(numbers) + mutated[end:]
    for mode in (None, *parsers.SOCKPERF_MODES):
        result = _sockperf(mutated, mode)
        assert isinstance(result, (parsers.SockperfResult, str))


SOCKPERF_REPORT = """\
sockperf: \x1b[2;35m== version #3.7-no.git == \x1b[0m
sockperf[CLIENT] send on:sockperf: using recvfrom() to block on socket(s)

[ 0] IP = {ip}       PORT = {port} # {proto}
sockperf: Warmup stage (sending a few dummy messages)...
sockperf: Starting test...
sockperf: Test end (interrupted by timer)
sockperf: Test ended
sockperf: [Total Run] RunTime=1.001 sec; Warm up time=400 msec; SentMessages={sent}; ReceivedMessages={received}
sockperf: ========= Printing statistics for Server No: 0
sockperf: [Valid Duration] RunTime={runtime} sec; SentMessages={sent}; ReceivedMessages={received}
sockperf: \x1b[2;35m====> avg-{kind}={avg} (std-dev={stdev})\x1b[0m
sockperf: # dropped messages = {dropped}; # duplicated messages = {duplicated}; # out-of-order messages = {ooo}
sockperf: Summary: Latency is {avg} usec
sockperf: \x1b[2;35mTotal {observations} observations\x1b[0m; each percentile contains 39.05 observations
sockperf: ---> <MAX> observation = {max}
sockperf: ---> percentile 99.999 = {p99_999}
sockperf: ---> percentile 99.990 = {p99_99}
sockperf: ---> percentile 99.900 = {p99_9}
sockperf: ---> percentile 99.000 = {p99}
sockperf: ---> percentile 90.000 = {p90}
sockperf: ---> percentile 75.000 = {p75}
sockperf: ---> percentile 50.000 = {p50}
sockperf: ---> percentile 25.000 = {p25}
sockperf: ---> <MIN> observation = {min}
"""
PERCENTILE_FIELDS = {"p99.999": "p99_999", "p99.99": "p99_99", "p99.9": "p99_9", "p99": "p99", "p90": "p90",
                     "p75": "p75", "p50": "p50", "p25": "p25"}
millis = st.integers(0, 10**9).map(lambda k: (k / 1000, f"{k / 1000:.3f}"))  # sockperf prints %.3f


@SETTINGS
@given(st.integers(1, 10**9), st.data(), st.sampled_from(["TCP", "UDP"]), st.booleans(),
       st.integers(1, 10**6), st.lists(millis, min_size=12, max_size=12), st.ip_addresses(v=4),
       st.integers(1, 65535), st.sampled_from([None, "ping-pong", "under-load"]))
def test_sockperf_latency_report_round_trip(sent, data, proto, full_rtt, runtime_ms, latencies, ip, port, mode):
    received = data.draw(st.integers(0, sent))
    observations, dropped = data.draw(st.integers(1, 10**9)), data.draw(st.integers(0, 10**6))
    duplicated, ooo = data.draw(st.integers(0, 10**6)), data.draw(st.integers(0, 10**6))
    runtime = runtime_ms / 1000
    fields = dict(zip(["avg", "stdev", "max", "min", *PERCENTILE_FIELDS.values()], latencies))
    text = SOCKPERF_REPORT.format(
        ip=ip, port=port, proto=proto, sent=sent, received=received, runtime=f"{runtime:.3f}", dropped=dropped,
        duplicated=duplicated, ooo=ooo, observations=observations, kind="rtt" if full_rtt else "latency",
        **{k: printed for k, (_, printed) in fields.items()})
    r = parsers.parse_sockperf(text, mode)
    expected_mode = mode or ("under-load" if 2 * received <= sent else "ping-pong")
    assert (r.mode, r.protocol, r.runtime_s, r.sent, r.received) == (expected_mode, proto.lower(), runtime, sent, received)
    assert (r.observations, r.dropped, r.duplicated, r.out_of_order) == (observations, dropped, duplicated, ooo)
    assert (r.avg_us, r.stdev_us, r.min_us, r.max_us) == tuple(fields[k][0] for k in ("avg", "stdev", "min", "max"))
    assert r.percentiles_us == {key: fields[f][0] for key, f in PERCENTILE_FIELDS.items()}
    assert r.full_rtt is full_rtt and r.notes == ()
    assert r.message_rate == sent / runtime and r.transaction_rate == received / runtime
    # the percentile keys read back as their ranks
    assert sorted(parsers.percentile_rank(k) for k in r.percentiles_us) == [25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99,
                                                                            99.999]


@SETTINGS
@given(hostile, st.sampled_from([None, *parsers.SOCKPERF_MODES]), st.lists(st.sampled_from(SOCKPERF_REPORT.splitlines()),
                                                                           max_size=30))
def test_sockperf_any_text_is_a_result_or_a_parse_error(text, mode, lines):
    for candidate in (text, "\n".join(lines) + text, "\n".join(lines).replace("{", "1").replace("}", "")):
        try:
            parsers.parse_sockperf(candidate, mode)
        except ParseError as exc:
            assert str(exc).startswith("sockperf: ")


# --------------------------------------------------------------------------- escapes and percentile keys


@SETTINGS
@given(st.text(alphabet=st.characters(blacklist_characters="\x1b"), max_size=80), st.data())
def test_strip_escapes_removes_exactly_the_escapes(text, data):
    assert parsers.strip_escapes(text) == text
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    coloured, last = "", 0
    for cut in cuts:
        coloured += text[last:cut] + data.draw(escapes)
        last = cut
    coloured += text[last:]
    assert parsers.strip_escapes(coloured) == text
    assert parsers.strip_escapes(None) == ""


@SETTINGS
@given(st.integers(0, 100), st.from_regex(r"\A[0-9]{0,4}\Z"), st.text(max_size=10))
def test_percentile_rank_reads_p_and_a_number_up_to_100(whole, decimals, junk):
    key = f"p{whole}.{decimals}" if decimals else f"p{whole}"
    value = float(key[1:])
    if value <= 100:
        assert parsers.percentile_rank(key) == value
    else:
        with pytest.raises(ValueError):
            parsers.percentile_rank(key)
    if not re.fullmatch(r"p\d+(\.\d+)?", junk):
        with pytest.raises(ValueError, match="percentile key"):
            parsers.percentile_rank(junk)


# --------------------------------------------------------------------------- wrk

WRK_CAPTURES = sorted(p.name for p in DATA.glob("wrk-*.txt"))
WRK_NOISE = ["Running 1s test @ http://10.0.0.2:8080/350", "  1 threads and 1 connections",
             "  Thread Stats   Avg      Stdev     Max   +/- Stdev", "    Latency    30.64us   61.13us   2.01ms   97.76%",
             "  17456 requests in 1.01s, 9.96MB read", "Requests/sec:  17307.24", "Transfer/sec:      9.87MB",
             "  Socket errors: connect 0, read 3, write 0, timeout 0", "  Non-2xx or 3xx responses: 12"]


def _lua_number(x: float) -> str:
    """How wrk-report.lua writes a number: %.0f for an integer below 2^53, %.15g otherwise."""
    return f"{x:.0f}" if x == math.floor(x) and abs(x) < 2**53 else f"{x:.15g}"


@SETTINGS
@given(st.integers(1, 10**12), st.integers(1, 10**12), st.integers(0, 10**15), st.data(),
       st.one_of(st.none(), st.integers(1, 10**12)), st.lists(st.sampled_from(WRK_NOISE), max_size=8))
def test_wrk_report_line_round_trip(requests, duration_us, nbytes, data, samples, noise):
    errors = {k: data.draw(st.integers(0, 10**6)) for k in parsers.WRK_ERROR_KINDS}
    errors["status"] = data.draw(st.integers(0, requests - 1))
    latency = {k: data.draw(st.one_of(st.integers(0, 10**7), st.floats(0.0, 1e7))) for k in parsers.WRK_LATENCY_KEYS}
    obj = lambda pairs: "{" + ",".join(f'"{k}":{v}' for k, v in pairs) + "}"
    line = parsers.WRK_MARKER + obj([
        ("requests", requests), ("duration_us", duration_us), ("bytes", nbytes),
        ("errors", obj(errors.items())), ("latency_us", obj((k, _lua_number(v)) for k, v in latency.items())),
        ("latency_samples", "null" if samples is None else samples)])
    at = data.draw(st.integers(0, len(noise)))
    text = data.draw(reflowed("\n".join([*noise[:at], line, *noise[at:]]), leading=True))
    r = parsers.parse_wrk(text)
    assert (r.requests, r.duration_s, r.bytes, r.errors, r.latency_samples) == (
        requests, duration_us / 1e6, nbytes, errors, samples)
    assert r.latency_us == {k: float(_lua_number(v)) for k, v in latency.items()}
    assert r.rate == requests / (duration_us / 1e6) and r.error_count == sum(errors.values())


@SETTINGS
@given(st.integers(0, 10**6), st.integers(0, 10**6), st.one_of(st.none(), st.integers(0, 10**6)))
def test_wrk_refuses_no_request_all_errors_and_no_sample(requests, status, samples):
    errors = {k: 0 for k in parsers.WRK_ERROR_KINDS} | {"status": status}
    latency = {k: 1 for k in parsers.WRK_LATENCY_KEYS}
    doc = {"requests": requests, "duration_us": 10**6, "bytes": 0, "errors": errors, "latency_us": latency,
           "latency_samples": samples}
    text = parsers.WRK_MARKER + json.dumps(doc)
    refused = requests == 0 or status >= requests or samples == 0
    if refused:
        with pytest.raises(ParseError, match="no request completed|every response was an HTTP error|no latency sample"):
            parsers.parse_wrk(text)
    else:
        assert parsers.parse_wrk(text).requests == requests


@SETTINGS
@given(st.sampled_from(WRK_CAPTURES), st.data())
def test_wrk_captures_ignore_line_ends_blank_lines_and_blanks(name, data):
    text = _read(name)

    def outcome(t):
        try:
            return parsers.parse_wrk(t)
        except ParseError as exc:
            return f"ParseError: {exc}"
    assert outcome(data.draw(reflowed(text, leading=True))) == outcome(text)


wrk_like = st.fixed_dictionaries({}, optional={
    "requests": json_values, "duration_us": json_values, "bytes": json_values, "latency_samples": json_values,
    "errors": st.one_of(json_values, st.fixed_dictionaries({}, optional={k: json_values for k in parsers.WRK_ERROR_KINDS})),
    "latency_us": st.one_of(json_values, st.fixed_dictionaries(
        {}, optional={k: st.one_of(json_values, st.floats()) for k in parsers.WRK_LATENCY_KEYS})),
})


@settings(max_examples=60, deadline=None)
@given(st.one_of(wrk_like, json_values), hostile)
def test_wrk_any_input_is_a_result_or_a_parse_error(doc, text):
    for candidate in (parsers.WRK_MARKER + json.dumps(doc), text, parsers.WRK_MARKER + text):
        try:
            r = parsers.parse_wrk(candidate)
        except ParseError as exc:
            assert str(exc).startswith("wrk: ")
        else:  # finite figures only: the result document holds no NaN or infinity
            assert all(math.isfinite(v) for v in (r.duration_s, *r.latency_us.values()))
            assert isinstance(r.requests, int) and all(isinstance(v, int) for v in r.errors.values())


# --------------------------------------------------------------------------- /proc/stat and /proc/meminfo

ticks = st.integers(0, 2**63)
blanks = st.sampled_from([" ", "  ", "\t", " \t "])


@SETTINGS
@given(st.lists(ticks, min_size=4, max_size=10), st.data())
def test_proc_stat_cpu_line_round_trip(fields, data):
    """user nice system idle iowait irq softirq steal guest guest_nice (proc(5)): busy is all of
    user..steal but idle and iowait; guest time is already in user."""
    line = "cpu" + "".join(data.draw(blanks) + str(f) for f in fields) + data.draw(st.sampled_from(["", "\n", " "]))
    total = sum(fields[:8])
    busy = total - fields[3] - (fields[4] if len(fields) > 4 else 0)
    assert parsers.proc_stat_cpu(line) == (busy, total)


@SETTINGS
@given(st.text(max_size=60), hostile, st.lists(st.one_of(st.integers(-(2**70), 2**70).map(str), st.integers(300, 5000).map(
    lambda n: "9" * n)), min_size=4, max_size=10))
def test_proc_stat_any_line_is_ticks_or_a_parse_error(tail, text, numbers):
    for line in ("cpu " + tail, "cpu0 " + tail, text, "cpu 1 2 3 " + tail, "cpu " + " ".join(numbers)):
        try:
            busy, total = parsers.proc_stat_cpu(line)
            snapshot = parsers.parse_usage_snapshot(line)
        except ParseError as exc:
            assert str(exc).startswith("/proc/stat: ")
        else:  # the kernel's counters: unsigned 64-bit
            assert line.split()[0] == "cpu" and 0 <= busy <= total < 8 * 2**64
            if len(line.splitlines()) == 1:  # (a snapshot is read line by line)
                assert snapshot == {"total": float(total), "busy": float(busy)}


def _snapshot(draw, stat: list[int], mem: tuple[int, int] | None) -> str:
    lines = ["cpu  " + " ".join(map(str, stat))]
    lines += [f"cpu{i} " + " ".join(str(draw(ticks)) for _ in range(10)) for i in range(draw(st.integers(0, 3)))]
    if mem is not None:
        lines += [f"MemTotal:       {mem[0]} kB", f"MemFree:        {draw(ticks)} kB", f"MemAvailable:   {mem[1]} kB",
                  f"Buffers:        {draw(ticks)} kB"]
    return "\n".join(draw(st.permutations(lines)))


@SETTINGS
@given(st.lists(st.integers(0, 2**40), min_size=8, max_size=8), st.lists(st.integers(0, 2**40), min_size=8, max_size=8),
       st.one_of(st.none(), st.tuples(st.integers(0, 2**40), st.integers(0, 2**40))),
       st.one_of(st.none(), st.tuples(st.integers(0, 2**40), st.integers(0, 2**40))), st.data())
def test_node_usage_between_two_snapshots(before, grow, mem_before, mem_after, data):
    after = [b + g for b, g in zip(before, grow)]
    b_text, a_text = _snapshot(data.draw, before, mem_before), _snapshot(data.draw, after, mem_after)
    snap = parsers.parse_usage_snapshot(a_text)
    assert snap is not None and (snap["total"], snap["busy"]) == (sum(after), sum(after) - after[3] - after[4])
    if mem_after is not None:
        assert (snap["MemTotal"], snap["MemAvailable"]) == (float(mem_after[0]), float(mem_after[1]))
    u = parsers.node_usage(b_text, a_text)
    total, busy = sum(grow), sum(grow) - grow[3] - grow[4]
    assert u is not None
    assert u["busy_percent"] == (100.0 * busy / total if total > 0 else None)
    assert u["cpu_seconds"] == busy / 100  # USER_HZ: 100 on every Linux architecture
    used = [m[0] - m[1] for m in (mem_before, mem_after) if m is not None]
    assert u["mem_used_mb"] == (max(used) / 1024.0 if used else None)
    assert parsers.node_usage("MemTotal: 1 kB", a_text) is None and parsers.node_usage(b_text, "") is None


@SETTINGS
@given(hostile, st.text(max_size=30))
def test_usage_snapshots_of_any_text_are_figures_none_or_a_parse_error(text, value):
    for candidate in (text, f"cpu 1 2 3 4 5\nMemTotal: {value}", f"cpu {value}\nMemAvailable: 7 kB"):
        try:
            snap = parsers.parse_usage_snapshot(candidate)
            usage = parsers.node_usage(candidate, candidate)
        except ParseError:
            continue
        assert snap is None or ("total" in snap and "busy" in snap)
        assert (usage is None) is (snap is None)


# --------------------------------------------------------------------------- SSH host keys on the console

KEY_TYPE = "ssh-ed25519"


def _blob(key_type: str, key: bytes) -> str:
    """An OpenSSH public key blob (RFC 4253 6.6, RFC 8709): string type, string key."""
    t = key_type.encode()
    return base64.b64encode(len(t).to_bytes(4, "big") + t + len(key).to_bytes(4, "big") + key).decode()


keys = st.binary(min_size=32, max_size=32).map(lambda k: f"{KEY_TYPE} {_blob(KEY_TYPE, k)}")
console_noise = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="\r\n"), max_size=40).filter(lambda t: not t.strip().startswith(KEY_TYPE)),
    st.sampled_from(["<14>Dec  3 00:28:29 cloud-init: #####################################################",
                     "[   12.345678] cloud-init[812]: Cloud-init v. 22.4.2 finished", "ec2: ", "",
                     "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI root@vm",
                     f"{KEY_TYPE} {_blob('ssh-rsa', bytes(32))} root@vm",  # an ed25519 label on an RSA blob
                     f"{KEY_TYPE} not-base64!", f"{KEY_TYPE}"]),
).filter(lambda line: line.strip() not in (hostkeys.BEGIN, hostkeys.END))


@st.composite
def consoles(draw, blocks: list[str | None], *, last_complete: bool = True) -> str:
    """A console output with a key block per entry of ``blocks`` (its ed25519 key, or none),
    noise between and inside, CRLF, CR or LF line ends and blanks around every line."""
    lines: list[str] = draw(st.lists(console_noise, max_size=4))
    for i, key in enumerate(blocks):
        body = draw(st.lists(console_noise, max_size=4))
        if key is not None:
            body.insert(draw(st.integers(0, len(body))), key + draw(st.sampled_from(["", " root@vm", " "])))
        closed = last_complete or i < len(blocks) - 1
        lines += [hostkeys.BEGIN, *body, *([hostkeys.END] if closed else []), *draw(st.lists(console_noise, max_size=3))]
    lines = [draw(st.sampled_from(["", " ", "\t"])) + ln + draw(st.sampled_from(["", " ", "  "])) for ln in lines]
    return draw(st.sampled_from(["\n", "\r\n", "\r"])).join(lines)


@FEW
@given(keys, keys, st.data())
def test_host_key_is_the_ed25519_key_of_the_last_complete_block(first, second, data):
    assert hostkeys.host_key_from_console(data.draw(consoles([first]))) == first
    assert hostkeys.host_key_from_console(data.draw(consoles([first, second]))) == second
    assert hostkeys.host_key_from_console(data.draw(consoles([first, None]))) == first  # a block without one
    # a block still being written (no END yet) does not count
    assert hostkeys.host_key_from_console(data.draw(consoles([first, second], last_complete=False))) == first
    assert hostkeys.host_key_from_console(data.draw(consoles([None]))) is None
    assert hostkeys.host_key_from_console(data.draw(consoles([first], last_complete=False))) is None


@SETTINGS
@given(keys, keys, st.data())
def test_two_different_ed25519_keys_in_one_block_are_refused(first, second, data):
    assume(first != second)
    block = [hostkeys.BEGIN, first, *data.draw(st.lists(console_noise, max_size=2)), second, hostkeys.END]
    with pytest.raises(hostkeys.HostKeyError, match="two different"):
        hostkeys.host_key_from_console("\n".join(block))
    assert hostkeys.host_key_from_console("\n".join([hostkeys.BEGIN, first, first + " again", hostkeys.END])) == first


CAPTURED_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOmg6qQIR6nlp079GeH8152G8z3tvWNFD34rO4wRfeh8"  # read off the capture


@FEW
@given(st.data())
def test_host_key_of_the_cloud_init_capture_survives_a_serial_console(data):
    text = _read("cloud-init/keys-to-console-22.4.2.txt")
    assert hostkeys.host_key_from_console(text) == CAPTURED_KEY
    noisy = "\n".join(ln + "\n" + data.draw(console_noise) for ln in text.split("\n"))  # interleaved kernel lines
    assert hostkeys.host_key_from_console(data.draw(reflowed(noisy, leading=True))) == CAPTURED_KEY


@SETTINGS
@given(hostile, st.lists(st.sampled_from([hostkeys.BEGIN, hostkeys.END, CAPTURED_KEY, f"{KEY_TYPE} AAAA"]), max_size=8))
def test_host_key_of_any_console_is_a_key_none_or_a_host_key_error(text, lines):
    for candidate in (text, "\n".join(lines) + text, text + "\n".join(lines)):
        try:
            key = hostkeys.host_key_from_console(candidate)
        except hostkeys.HostKeyError:
            continue
        assert key is None or (key.startswith(KEY_TYPE + " ") and len(key.split()) == 2)


# --------------------------------------------------------------------------- the price table

labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=14)
prices = st.one_of(st.floats(0.0, pricing.MAX_PRICE_PER_HOUR), st.integers(0, int(pricing.MAX_PRICE_PER_HOUR)))


def _load(data: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "prices.yaml"
        path.write_bytes(data)
        return pricing.load_table(path)


@SETTINGS
@given(st.dictionaries(labels, st.dictionaries(labels, prices, min_size=1, max_size=4), min_size=1, max_size=4),
       st.one_of(st.none(), st.text(alphabet="abcdefghij .:/", min_size=1, max_size=20).filter(str.strip)),
       st.sampled_from([None, "USD", "EUR"]))
def test_price_table_round_trip(regions, source, currency):
    doc: dict = {"regions": regions, **({"source": source} if source else {}), **({"currency": currency} if currency else {})}
    table = _load(yaml.safe_dump(doc, allow_unicode=True).encode())
    assert table.regions == {r: {t: float(p) for t, p in types.items()} for r, types in regions.items()}
    assert table.currency == (currency or "USD") and (source is None or table.source == source)
    for r, types in regions.items():
        for t, p in types.items():
            assert table.price(r, t) == float(p)


@SETTINGS
@given(labels, labels, st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=pricing.MAX_PRICE_PER_HOUR * (1 + 1e-9)),
                                 st.just(math.inf), st.just(math.nan), st.booleans(), st.text(max_size=5), st.none(),
                                 st.lists(st.integers(), max_size=2)))
def test_a_price_that_is_not_a_price_is_refused_naming_its_place(region, itype, price):
    assume(itype != "ok.type")
    with pytest.raises(pricing.PriceError) as info:
        _load(yaml.safe_dump({"regions": {region: {itype: price, "ok.type": 1.0}}}).encode())
    assert f"regions.{region}.{itype}" in str(info.value)


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                 json_values.map(lambda v: yaml.safe_dump(v).encode()),
                 st.dictionaries(st.just("regions"), json_values).map(lambda v: yaml.safe_dump(v).encode())))
def test_any_price_file_is_a_table_or_a_price_error(data):
    try:
        table = _load(data)
    except pricing.PriceError as exc:
        assert str(exc)
    else:
        assert table.regions and all(0 <= p <= pricing.MAX_PRICE_PER_HOUR for t in table.regions.values() for p in t.values())


# --------------------------------------------------------------------------- result documents

RESULT_DOCUMENTS = {name: (DATA / name).read_bytes() for name in ("lab-result.json", "lab-result-v2.json")}


def _places(value, path=()):
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _places(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _places(v, (*path, i))


PLACES = {name: list(_places(json.loads(data))) for name, data in RESULT_DOCUMENTS.items()}


@FEW
@given(st.sampled_from(sorted(RESULT_DOCUMENTS)), st.sampled_from([None, 0, 1, 4, "\t"]), st.booleans(), st.booleans(),
       st.sampled_from(["", "\n", " \r\n"]))
def test_result_documents_ignore_the_json_layout(name, indent, sort_keys, ascii_only, around):
    original = results.parse_document(RESULT_DOCUMENTS[name], name, check_schema=False)
    text = around + json.dumps(original, indent=indent, sort_keys=sort_keys, ensure_ascii=ascii_only) + around
    assert results.parse_document(text.encode(), name, check_schema=False) == original


def test_result_documents_follow_their_schema_whatever_the_layout():
    for name, data in RESULT_DOCUMENTS.items():
        doc = results.parse_document(data, name, check_schema=False)
        assert results.parse_document(json.dumps(doc, indent=1, sort_keys=True), name) == doc


@SETTINGS
@given(st.sampled_from(sorted(RESULT_DOCUMENTS)), st.data(), st.sampled_from([math.nan, math.inf, -math.inf]))
def test_a_non_finite_number_anywhere_is_refused_naming_its_place(name, data, bad):
    path = data.draw(st.sampled_from(PLACES[name]))
    doc = json.loads(RESULT_DOCUMENTS[name])
    if not path:
        doc = bad
    else:
        holder = doc
        for part in path[:-1]:
            holder = holder[part]
        holder[path[-1]] = bad
    with pytest.raises(results.DocumentError, match="not a finite number") as info:
        results.parse_document(json.dumps(doc), name)
    assert info.value.where == ("/".join(str(p) for p in path) or "(top)")


@settings(max_examples=25, deadline=None)
@given(st.one_of(hostile, json_values.map(json.dumps),
                 st.dictionaries(st.text(max_size=8), json_values).map(lambda d: json.dumps({"schema_version": "2.0", **d})),
                 st.dictionaries(st.text(max_size=8), json_values).map(lambda d: json.dumps({**d, "schema_version": 1}))),
       st.booleans())
def test_any_result_document_is_a_document_or_a_document_error(text, as_bytes):
    for data in [text.encode("utf-8", "surrogatepass") if as_bytes else text]:
        try:
            doc = results.parse_document(data, "doc.json")
        except results.DocumentError as exc:
            assert str(exc).startswith("doc.json: ")
        else:
            assert isinstance(doc, dict) and "schema_version" in doc and results.first_non_finite(doc) is None


# --------------------------------------------------------------------------- the runner's output, kubeadm, uname, names

finite_json = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.floats(allow_nan=False,
                           allow_infinity=False), st.text(max_size=6)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner,
                                                                                                   max_size=3)),
                           max_leaves=10)


@SETTINGS
@given(st.dictionaries(st.text(max_size=8).filter(lambda k: k != "format"), finite_json, max_size=4),
       st.text(alphabet=st.characters(blacklist_characters="{"), max_size=80), st.sampled_from(["", "\n", "  \n\n"]))
def test_runner_output_round_trip(extra, before, after):
    """A stray warning before the document (anything without a '{') and blanks after it are ignored."""
    doc = {"format": RAW_FORMAT, **extra}
    assert parse_raw(before + "\n" + json.dumps(doc) + after) == doc


@SETTINGS
@given(st.one_of(hostile, finite_json.map(json.dumps), st.dictionaries(st.text(max_size=6), finite_json).map(
    lambda d: json.dumps({"format": "cnibench-bench-raw/1", **d}))))
def test_runner_output_of_any_text_is_a_document_or_a_raw_output_error(text):
    try:
        raw = parse_raw(text)
    except RawOutputError as exc:
        assert str(exc).startswith("the benchmark command")
    else:
        assert raw["format"] == RAW_FORMAT


hosts = st.one_of(st.ip_addresses(v=4).map(str), st.lists(st.text(LOWER + "0123456789-", min_size=1, max_size=10), min_size=1,
                                                          max_size=4).map(lambda labels: "a" + ".".join(labels)))


@SETTINGS
@given(hosts, st.integers(1, 65535),
       st.builds("{}.{}".format, st.text(LOWER + "0123456789", min_size=6, max_size=6),
                 st.text(LOWER + "0123456789", min_size=16, max_size=16)),
       st.text(HEX, min_size=64, max_size=64),
       st.sampled_from([" ", "  ", "\t"]), st.text(alphabet=st.characters(blacklist_characters="k"), max_size=40))
def test_kubeadm_join_command_round_trip(host, port, token, digest, gap, noise):
    stdout = (f"{noise}\nkubeadm join {host}:{port} --token {token}{gap}--discovery-token-ca-cert-hash "
              f"sha256:{digest} \n")
    assert parse_join_command(stdout) == {"endpoint": f"{host}:{port}", "token": token, "hash": f"sha256:{digest}"}


@SETTINGS
@given(hostile)
def test_kubeadm_output_of_any_text_is_a_join_command_or_a_value_error(text):
    try:
        join = parse_join_command(text)
    except ValueError as exc:
        assert "kubeadm" in str(exc)
    else:
        assert set(join) == {"endpoint", "token", "hash"}


@SETTINGS
@given(st.integers(0, 999), st.integers(0, 999), st.integers(0, 999),
       st.sampled_from(["", "-13-cloud-amd64", "-1045-aws", "-rc2", "+", ".el8.x86_64", "-fc-v657", "-generic"]),
       st.sampled_from(["", " ", "\n"]))
def test_kernel_release_round_trip(major, minor, patch, suffix, around):
    """What ``uname -r`` prints: VERSION.PATCHLEVEL.SUBLEVEL and the distribution's EXTRAVERSION."""
    assert parse_kernel(f"{around}{major}.{minor}.{patch}{suffix}{around}") == (major, minor)
    assert parse_kernel((major, minor)) == (major, minor)


@SETTINGS
@given(hostile)
def test_kernel_release_of_any_text_is_a_version_or_a_value_error(text):
    try:
        version = parse_kernel(text)
    except ValueError as exc:
        assert "kernel version" in str(exc)
    else:
        assert all(isinstance(v, int) for v in version) and len(version) == 2


variants = st.builds(str.__add__, st.sampled_from(LOWER + "0123456789"), st.text(LOWER + "0123456789-", max_size=24))


@SETTINGS
@given(variants, st.datetimes(min_value=dt.datetime(1001, 1, 2), max_value=dt.datetime(9999, 12, 30)),
       st.timedeltas(min_value=dt.timedelta(hours=-14), max_value=dt.timedelta(hours=14)),
       st.text(HEX, min_size=4, max_size=4), st.sampled_from(["", "organization/cnibench/", "me/p/"]))
def test_stack_names_round_trip(variant, when, offset, rand, project):
    now = when.replace(tzinfo=dt.timezone(offset))
    parsed = names.parse_stack_name(project + names.stack_name(variant, now, rand))
    utc = now.astimezone(dt.timezone.utc)
    assert parsed == names.ParsedName(variant, utc.replace(second=0, microsecond=0))


@SETTINGS
@given(st.text("0123456789", min_size=8, max_size=8), st.text("0123456789", min_size=4, max_size=4), variants,
       st.text(max_size=40))
def test_stack_names_of_any_text_are_a_matrix_stack_or_none(date, clock, variant, text):
    """A name of the matrix's shape whose stamp is no date (month 13, 25:61) is not one of its
    stacks: None, as for any other name (``--cleanup`` lists every stack of the backend)."""
    try:
        expected = dt.datetime(int(date[:4]), int(date[4:6]), int(date[6:]), int(clock[:2]), int(clock[2:]),
                               tzinfo=dt.timezone.utc)
    except ValueError:
        expected = None
    parsed = names.parse_stack_name(f"cnibench-{variant}-{date}t{clock}z-abcd")
    assert parsed == (None if expected is None else names.ParsedName(variant, expected))
    assert names.parse_stack_name(text) is None or text.rsplit("/", 1)[-1].startswith(names.STACK_PREFIX)


arn_words = st.text(LOWER + "0123456789-", min_size=1, max_size=12)
arn_ids = st.text(LOWER + LOWER.upper() + "0123456789_.-", min_size=1, max_size=20)


@SETTINGS
@given(st.sampled_from(["aws", "aws-cn", "aws-us-gov"]), arn_words, st.one_of(st.just(""), arn_words),
       st.text("0123456789", max_size=12), arn_words, arn_ids, st.sampled_from(["/", ":"]),
       st.lists(arn_ids, max_size=3))
def test_arns_round_trip(partition, service, region, account, rtype, rid, sep, path):
    """arn:partition:service:region:account:type/id (or type:id); an IAM name after its path."""
    resource_id = "/".join([*path, rid]) if service == "iam" and sep == "/" else rid
    arn = f"arn:{partition}:{service}:{region}:{account}:{rtype}{sep}{resource_id}"
    assert sweep.parse_arn(arn) == (f"{service}:{rtype}", region or "global", rid)
    bare = f"arn:{partition}:{service}:{region}:{account}:{rid}"  # a resource without a type (an S3 bucket)
    assert sweep.parse_arn(bare) == (f"{service}:{rid}", region or "global", rid)


@SETTINGS
@given(st.text(max_size=60))
def test_arns_of_any_text_are_three_texts(text):
    kind, region, rid = sweep.parse_arn(text)
    assert all(isinstance(v, str) for v in (kind, region, rid))
    if text.count(":") < 5:
        assert (kind, region, rid) == ("?", "", text)
