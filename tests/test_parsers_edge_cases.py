"""The iperf3, sockperf and wrk parsers on modified copies of the real captures in tests/data
(tests/data/README.md says how they were made): members of the wrong JSON type, a protocol
other than TCP, carriage returns a terminal leaves in sockperf's output, the tail of wrk's
output quoted when its report line is missing.

Every expected value is a literal or computed here from the test's own input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from cnibench import parsers
from cnibench.errors import ParseError

DATA = Path(__file__).resolve().parent / "data"


def read(name: str) -> str:
    return (DATA / name).read_text()


# --------------------------------------------------------------------------- iperf3: members of the wrong type


def _set_test_start(doc: dict, value: Any) -> None:
    doc["start"]["test_start"] = value


def _set_received(doc: dict, key: str, value: Any) -> None:
    doc["end"]["sum_received"][key] = value


@pytest.mark.parametrize("name, mutate, error", [
    # an object where iperf3 writes an object, replaced by a string: .get on a str
    ("iperf3-tcp.json", lambda d: _set_test_start(d, "TCP"), "AttributeError"),
    # a list for a number: float([..])
    ("iperf3-tcp.json", lambda d: _set_received(d, "bits_per_second", [1.0]), "TypeError"),
    # a number where iperf3 writes an object: `"bits_per_second" in 5`
    ("iperf3-udp.json", lambda d: d["end"].update(sum_received=5), "TypeError"),
    # a string that is not a number: float("fast")
    ("iperf3-tcp.json", lambda d: _set_received(d, "bits_per_second", "fast"), "ValueError"),
    ("iperf3-udp-500M.json", lambda d: d["start"]["test_start"].update(num_streams="two"), "ValueError"),
    # an integer beyond a float's range (JSON integers are unbounded): float(10**400)
    ("iperf3-tcp.json", lambda d: _set_received(d, "bits_per_second", 10**400), "OverflowError"),
    # infinity in a count: int(float("inf")); Python's json reads 1e999 as inf
    ("iperf3-udp.json", lambda d: _set_received(d, "bytes", float("inf")), "OverflowError"),
])
def test_iperf3_members_of_the_wrong_type_raise_a_parse_error_naming_the_python_error(
        name: str, mutate: Callable[[dict], None], error: str):
    doc = json.loads(read(name))
    mutate(doc)
    text = json.dumps(doc)
    for given_as in (text, doc):
        with pytest.raises(ParseError) as info:
            parsers.parse_iperf3(given_as)
        assert str(info.value).startswith(f"iperf3: not the JSON of iperf3 -J ({error}: ")


def test_iperf3_retransmits_are_tcps_only():
    """Retransmits are a TCP figure (Iperf3Result: "TCP only"): another protocol's document gets
    none even when sum_sent holds the member. iperf3 --sctp names its protocol "SCTP" in
    start.test_start (which sorts before "TCP"); here the TCP capture relabelled."""
    text = read("iperf3-tcp.json")
    tcp = parsers.parse_iperf3(text)
    doc = json.loads(text)
    assert tcp.retransmits == doc["end"]["sum_sent"]["retransmits"]
    for protocol in ("SCTP", "QUIC"):
        other = json.loads(text)
        other["start"]["test_start"]["protocol"] = protocol
        r = parsers.parse_iperf3(other)
        assert r.protocol == protocol
        assert "retransmits" in other["end"]["sum_sent"]
        assert (r.retransmits, r.jitter_ms, r.lost_percent) == (None, None, None)
        assert r.bits_per_second == doc["end"]["sum_received"]["bits_per_second"]


# --------------------------------------------------------------------------- sockperf: carriage returns


@pytest.mark.parametrize("name, line_has, message", [
    ("sockperf-pp-tcp-refused.txt", "ERROR:",
     "sockperf: Can`t connect socket (errno=111 Connection refused) (is a sockperf server listening there?)"),
    ("sockperf-pp-tcp-m1.txt", "Invalid message size",
     "sockperf: arguments refused: '-m' Invalid message size: 1 (min: 14)"),
])
def test_sockperf_carriage_returns_never_reach_the_message(name: str, line_has: str, message: str):
    """Over a terminal each line ends in CRLF, and a line redrawn leaves a carriage return inside
    it. Neither reaches the message: a CR in it would put the cursor back at the start of the
    error line the user reads, and the next characters overwrite it."""
    text = read(name)
    with pytest.raises(ParseError) as plain:
        parsers.parse_sockperf(text)
    assert str(plain.value) == message
    lines = text.split("\n")
    at = next(i for i, ln in enumerate(lines) if line_has in ln)
    word = lines[at].index(line_has) + len(line_has) + 4  # inside the words sockperf said
    lines[at] = lines[at][:word] + "\r" + lines[at][word:]
    for ends in ("\n", "\r\n"):
        with pytest.raises(ParseError) as terminal:
            parsers.parse_sockperf(ends.join(lines))
        assert str(terminal.value) == message


# --------------------------------------------------------------------------- wrk: the tail of what it said


def test_wrk_without_the_report_line_quotes_the_last_four_lines_it_printed():
    """wrk run without -s wrk-report.lua (or stopped before done()): the message quotes the last
    four non-blank lines of its output, stripped, and no more."""
    lines = [ln for ln in read("wrk-server-stopped.txt").splitlines() if not ln.startswith("CNIBENCH-WRK")]
    assert len([ln for ln in lines if ln.strip()]) > 5
    with pytest.raises(ParseError) as info:
        parsers.parse_wrk("\n".join(lines) + "\n\n")
    assert str(info.value) == (
        "wrk: no 'CNIBENCH-WRK' line (was wrk run with -s wrk-report.lua?); wrk said: "
        "12808 requests in 2.00s, 7.30MB read | Socket errors: connect 0, read 1, write 112, timeout 0 | "
        "Requests/sec:   6399.98 | Transfer/sec:      3.65MB")
