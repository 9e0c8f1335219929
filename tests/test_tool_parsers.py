"""The sockperf and wrk parsers (and iperf3 with -O / fixed UDP datagrams) on output captured on
loopback on this project's machine (tests/data/README.md says how), plus two live runs: wrk with
``wrk-report.lua`` against an nginx, and a sockperf ping-pong, each started here and stopped after.

Every expected number below was read off the capture by hand, not computed by the parser.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from cnibench import parsers

DATA = Path(__file__).parent / "data"
WRK_SCRIPT = Path(__file__).resolve().parents[1] / "cnibench" / "suite" / "runner" / "wrk-report.lua"


def read(name: str) -> str:
    return (DATA / name).read_text()


# --------------------------------------------------------------------------- sockperf

# file: (mode, protocol, runtime_s, sent, received, observations, avg, stdev, min, max, p50, p99, p99.999, dropped)
SOCKPERF_CAPTURES = {
    "sockperf-pp-tcp-m14.txt": ("ping-pong", "tcp", 0.550, 3905, 3905, 3905, 70.348, 70.823, 7.624, 3834.350, 65.925, 135.172, 3834.350, 0),
    "sockperf-pp-tcp-m1024.txt": ("ping-pong", "tcp", 0.550, 7706, 7706, 7706, 35.646, 35.568, 3.024, 975.987, 39.522, 108.581, 975.987, 0),
    "sockperf-pp-udp-m14.txt": ("ping-pong", "udp", 0.550, 4452, 4452, 4452, 61.746, 36.277, 17.568, 1758.907, 57.999, 140.467, 1758.907, 0),
    "sockperf-pp-udp-m1024.txt": ("ping-pong", "udp", 0.550, 4596, 4596, 4596, 59.780, 44.619, 7.080, 1942.120, 53.896, 122.892, 1942.120, 0),
    "sockperf-ul-tcp-mps20000.txt": ("under-load", "tcp", 0.549, 10981, 1099, 1099, 61.239, 137.814, 4.184, 1939.825, 31.564, 692.395, 1939.825, 0),
    "sockperf-ul-tcp-mps5000000.txt": ("under-load", "tcp", 0.549, 121101, 1212, 1212, 310.944, 288.024, 13.419, 1877.415, 221.765, 1274.784, 1877.415, 0),
    "sockperf-ul-udp-mpsmax.txt": ("under-load", "udp", 0.550, 247091, 23447, 23447, 28.983, 125.037, 2.884, 2698.128, 17.085, 134.285, 2698.128, 1263),
}


@pytest.mark.parametrize("name", sorted(SOCKPERF_CAPTURES))
def test_sockperf_latency_reports(name):
    mode, proto, runtime, sent, received, obs, avg, stdev, lo, hi, p50, p99, p99999, dropped = SOCKPERF_CAPTURES[name]
    text = read(name)
    assert "\x1b[" in text  # the colour escapes are in the capture; the parser strips them
    r = parsers.parse_sockperf(text)
    assert (r.mode, r.protocol) == (mode, proto)
    assert r.runtime_s == pytest.approx(runtime)
    assert (r.sent, r.received, r.observations) == (sent, received, obs)
    assert (r.avg_us, r.stdev_us, r.min_us, r.max_us) == pytest.approx((avg, stdev, lo, hi))
    assert r.percentiles_us["p50"] == pytest.approx(p50)
    assert r.percentiles_us["p99"] == pytest.approx(p99)
    assert r.percentiles_us["p99.999"] == pytest.approx(p99999)
    assert list(r.percentiles_us) == ["p99.999", "p99.99", "p99.9", "p99", "p90", "p75", "p50", "p25"]
    assert (r.dropped, r.duplicated, r.out_of_order) == (dropped, 0, 0)
    assert r.message_rate == pytest.approx(sent / runtime)
    assert r.transaction_rate == pytest.approx(received / runtime)
    assert r.full_rtt is False
    # the mode given explicitly gives the same figures
    assert parsers.parse_sockperf(text, mode=mode) == r


def test_sockperf_all_percentiles_of_one_capture():
    r = parsers.parse_sockperf(read("sockperf-pp-tcp-m14.txt"))
    assert r.percentiles_us == pytest.approx({
        "p99.999": 3834.350, "p99.99": 3834.350, "p99.9": 493.423, "p99": 135.172,
        "p90": 81.453, "p75": 72.062, "p50": 65.925, "p25": 60.645,
    })
    # ping-pong: one reply per message, 3905 round trips in 0.550 s
    assert r.transaction_rate == pytest.approx(7100.0)


@pytest.mark.parametrize("name, reply_every", [
    ("sockperf-ul-tcp-mps20000.txt", 10), ("sockperf-ul-udp-mpsmax.txt", 10), ("sockperf-ul-tcp-mps5000000.txt", 100),
])
def test_sockperf_under_load_replies_every_nth_message(name, reply_every):
    r = parsers.parse_sockperf(read(name))
    # observations + dropped replies = messages sent / --reply-every (default 100), within one
    assert abs(r.observations + r.dropped - r.sent / reply_every) <= 1


def test_sockperf_under_load_rate_reached_and_not_reached():
    reached = parsers.parse_sockperf(read("sockperf-ul-tcp-mps20000.txt"))
    assert reached.message_rate == pytest.approx(10981 / 0.549)  # 20 002 msg/s for --mps 20000
    assert reached.notes == ()
    short = parsers.parse_sockperf(read("sockperf-ul-tcp-mps5000000.txt"))
    assert short.message_rate == pytest.approx(121101 / 0.549)  # about 220 600 msg/s for --mps 5000000
    assert short.message_rate < 5_000_000 / 10
    assert short.notes == ("Info: The requested message-per-second rate is too high. Try tuning --mps or --burst arguments",)


@pytest.mark.parametrize("name, proto, sent, runtime, rate", [
    ("sockperf-tp-tcp-mpsmax.txt", "tcp", 1772274, 1.005, 1764173.0),
    ("sockperf-tp-udp-mpsmax.txt", "udp", 394519, 1.004, 393140.0),
])
def test_sockperf_throughput(name, proto, sent, runtime, rate):
    r = parsers.parse_sockperf(read(name))
    assert (r.mode, r.protocol, r.sent, r.received, r.observations) == ("throughput", proto, sent, 0, 0)
    assert r.runtime_s == pytest.approx(runtime)
    assert r.message_rate == rate  # the printed "Message Rate is", not sent / runtime
    assert r.avg_us is None and r.percentiles_us == {}
    assert r.transaction_rate == 0.0
    assert r.notes == ("NOTE: test was performed, using msg-size=14. For getting maximum throughput consider using --msg-size=1472",)
    assert parsers.parse_sockperf(read(name), mode="throughput") == r


@pytest.mark.parametrize("name, message", [
    ("sockperf-pp-tcp-refused.txt", r"Can`t connect socket \(errno=111 Connection refused\) \(is a sockperf server listening there\?\)"),
    ("sockperf-pp-udp-noserver.txt", r"no reply from the server \(127\.0\.0\.1:17009 UDP\)"),
    ("sockperf-pp-tcp-m1.txt", r"arguments refused: '-m' Invalid message size: 1 \(min: 14\)"),
])
def test_sockperf_failures_raise_with_what_sockperf_said(name, message):
    # sockperf 3.7 exits 0 in each of these cases (tests/data/README.md): only the text tells
    with pytest.raises(parsers.ParseError, match=message):
        parsers.parse_sockperf(read(name))


def test_sockperf_wrong_or_truncated_input():
    with pytest.raises(parsers.ParseError, match="empty"):
        parsers.parse_sockperf("")
    with pytest.raises(parsers.ParseError, match="not a sockperf client report"):
        parsers.parse_sockperf("Connecting to host 127.0.0.1, port 5201\n")
    with pytest.raises(parsers.ParseError, match="Valid Duration"):
        parsers.parse_sockperf(read("sockperf-tp-tcp-mpsmax.txt"), mode="ping-pong")
    with pytest.raises(parsers.ParseError, match="Total of N messages sent"):
        parsers.parse_sockperf(read("sockperf-pp-tcp-m14.txt"), mode="throughput")
    truncated = read("sockperf-pp-tcp-m14.txt").split("Summary: Latency")[0]
    with pytest.raises(parsers.ParseError, match="observations, <MAX>, <MIN>"):
        parsers.parse_sockperf(truncated)
    with pytest.raises(ValueError, match="mode"):
        parsers.parse_sockperf(read("sockperf-pp-tcp-m14.txt"), mode="pingpong")


def test_sockperf_full_rtt_wording():
    text = read("sockperf-pp-udp-m14.txt").replace("avg-latency=", "avg-rtt=").replace("Latency is", "Round trip is")
    assert parsers.parse_sockperf(text).full_rtt is True


@pytest.mark.parametrize("key, rank", [("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9), ("p99.99", 99.99), ("p99.999", 99.999), ("p25", 25.0)])
def test_percentile_rank(key, rank):
    assert parsers.percentile_rank(key) == rank


@pytest.mark.parametrize("key", ["50", "p", "P50", "p101", "max", "p99.9x"])
def test_percentile_rank_refuses_other_keys(key):
    with pytest.raises(ValueError):
        parsers.percentile_rank(key)


# --------------------------------------------------------------------------- wrk


def test_wrk_new_connection_per_request():
    r = parsers.parse_wrk(read("wrk-close-350.txt"))
    assert (r.requests, r.bytes) == (17456, 10438688)
    assert r.duration_s == pytest.approx(1.008595)
    assert r.rate == pytest.approx(17456 / 1.008595)  # wrk printed "Requests/sec:  17307.24"
    assert r.errors == {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    assert r.error_count == 0
    assert r.latency_us == pytest.approx({
        "min": 16, "mean": 30.6380775507907, "stdev": 61.1337639399655, "max": 2009,
        "p50": 25, "p90": 31, "p99": 201, "p99.9": 1040, "p99.99": 1952,
    })
    assert r.latency_samples == 17769  # > requests: wrk's coordinated-omission correction


def test_wrk_keep_alive():
    r = parsers.parse_wrk(read("wrk-keepalive-4096.txt"))
    assert (r.requests, r.bytes, r.error_count, r.latency_samples) == (55337, 240771287, 0, 57333)
    assert r.duration_s == pytest.approx(1.099646)
    assert r.latency_us == pytest.approx({
        "min": 18, "mean": 106.387019691975, "stdev": 239.217056824838, "max": 3909,
        "p50": 80, "p90": 88, "p99": 1406, "p99.9": 3191, "p99.99": 3826,
    })


def test_wrk_server_gone_mid_run_counts_write_and_read_errors():
    r = parsers.parse_wrk(read("wrk-server-stopped.txt"))
    assert r.requests == 12808
    # refused reconnections show as write errors, not connect errors (wrk 4.1.0, see parse_wrk)
    assert r.errors == {"connect": 0, "read": 1, "write": 112, "status": 0, "timeout": 0}
    assert r.error_count == 113
    assert r.latency_us["p50"] == 27 and r.latency_us["p99"] == 230


def test_wrk_every_response_an_http_error_raises():
    with pytest.raises(parsers.ParseError, match=r"every response was an HTTP error \(status > 399\): 56398 of 56398"):
        parsers.parse_wrk(read("wrk-404.txt"))


def test_wrk_closed_port_raises_with_wrks_message():
    # wrk exits 1 without calling done(): no CNIBENCH-WRK line, wrk's own words in the message
    with pytest.raises(parsers.ParseError, match="unable to connect to 127.0.0.1:17081 Connection refused"):
        parsers.parse_wrk(read("wrk-refused.txt"))


def test_wrk_server_that_never_answers_raises():
    text = read("wrk-noresponse.txt")
    # the line is there, all zeros: wrk 4.1.0 counts no timeout for a request never answered
    assert '"requests":0' in text and '"timeout":0' in text and '"latency_samples":0' in text
    with pytest.raises(parsers.ParseError, match=r"no request completed in 1\.01 s .*never answers"):
        parsers.parse_wrk(text)


def test_wrk_bad_lines():
    line = read("wrk-close-350.txt").splitlines()[-1]
    assert line.startswith("CNIBENCH-WRK {")
    doc = json.loads(line.split(" ", 1)[1])
    with pytest.raises(parsers.ParseError, match="no 'CNIBENCH-WRK' line.*no output"):
        parsers.parse_wrk("")
    with pytest.raises(parsers.ParseError, match="not JSON"):
        parsers.parse_wrk("CNIBENCH-WRK {requests: 1}")
    del doc["latency_us"]["p99.9"]
    with pytest.raises(parsers.ParseError, match=r"latency_us\.p99\.9 missing"):
        parsers.parse_wrk("CNIBENCH-WRK " + json.dumps(doc))
    none = {"requests": 0, "duration_us": 1000000, "bytes": 0,
            "errors": {"connect": 3, "read": 0, "write": 0, "status": 0, "timeout": 0},
            "latency_us": dict.fromkeys(parsers.WRK_LATENCY_KEYS, 0), "latency_samples": 0}
    with pytest.raises(parsers.ParseError, match="no request completed in 1.00 s .*connect 3"):
        parsers.parse_wrk("CNIBENCH-WRK " + json.dumps(none))


# --------------------------------------------------------------------------- iperf3 -O, UDP -l


def test_iperf3_tcp_omit_is_already_excluded_from_end():
    text = read("iperf3-tcp-omit.json")
    r = parsers.parse_iperf3(text)
    assert r.protocol == "TCP" and r.omitted_s == 1.0
    assert r.duration_s == pytest.approx(2.001044)  # -t 2 -O 1 ran 3 s; end covers the 2 measured
    assert r.bytes_received == 2808283083
    assert r.bits_per_second == pytest.approx(11227271696.1746)
    assert r.retransmits == 45
    doc = json.loads(text)
    omitted = [i["sum"] for i in doc["intervals"] if i["sum"]["omitted"]]
    kept = [i["sum"] for i in doc["intervals"] if not i["sum"]["omitted"]]
    assert [s["bytes"] for s in omitted] == [1503264768]
    assert [s["bytes"] for s in kept] == [1488977920, 1317273600]
    assert doc["end"]["sum_sent"]["bytes"] == 1488977920 + 1317273600  # the omitted second is not in it


def test_iperf3_udp_fixed_datagram_and_omit():
    r = parsers.parse_iperf3(read("iperf3-udp-fixed.json"))
    assert r.protocol == "UDP" and r.omitted_s == 1.0
    assert r.block_size == 1400
    assert r.duration_s == pytest.approx(1.000121)
    assert r.bits_per_second == pytest.approx(490691026.3858073)
    assert r.sender_bits_per_second == pytest.approx(500050599.29161)
    assert r.bytes_received == 61343800  # 43817 datagrams of 1400 bytes
    assert r.jitter_ms == pytest.approx(0.010708763874223126)
    assert r.packets == 44648
    # iperf3 3.12 printed lost_packets 2583 (5.785 %): it adds the omitted second's losses; the
    # measured second lost 44648 - 43817 = 831
    assert r.lost_packets == 831
    assert r.lost_percent == pytest.approx(100 * 831 / 44648)
    assert r.retransmits is None


@pytest.mark.parametrize("name, packets, lost, lost_percent", [
    ("iperf3-udp.json", 314830, 4947, 1.5713242067147348),
    ("iperf3-udp-500M.json", 104147, 931, 0.8939287737524845),
])
def test_iperf3_udp_without_omit_keeps_iperf3s_loss(name, packets, lost, lost_percent):
    r = parsers.parse_iperf3(read(name))
    assert (r.packets, r.lost_packets, r.lost_percent, r.omitted_s) == (packets, lost, lost_percent, 0.0)
    # the identity the -O correction relies on holds exactly without -O
    assert r.packets - r.lost_packets == r.bytes_received // r.block_size


# --------------------------------------------------------------------------- live runs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} not listening on 127.0.0.1:{port} after {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.mark.skipif(not (shutil.which("wrk") and shutil.which("nginx")), reason="needs wrk and nginx on PATH")
def test_wrk_report_lua_runs_against_nginx(tmp_path):
    port = free_port()
    www = tmp_path / "www"
    www.mkdir()
    (www / "350").write_bytes(b"a" * 350)
    (tmp_path / "tmp").mkdir()
    conf = tmp_path / "nginx.conf"
    temps = "\n".join(f"  {k}_temp_path {tmp_path / 'tmp'};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf.write_text(f"""daemon off;
master_process off;
worker_processes 1;
pid {tmp_path / 'nginx.pid'};
error_log {tmp_path / 'error.log'};
events {{ worker_connections 64; }}
http {{
  access_log off;
{temps}
  server {{
    listen 127.0.0.1:{port};
    root {www};
  }}
}}
""")
    nginx = subprocess.Popen(["nginx", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(port, nginx, "nginx")
        out = subprocess.run(["wrk", "-t1", "-c2", "-d1s", "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}/350"],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        assert sum(ln.startswith("CNIBENCH-WRK ") for ln in out.stdout.splitlines()) == 1
        r = parsers.parse_wrk(out.stdout)
        assert r.requests > 0
        assert r.bytes >= 350 * r.requests
        assert 0 < r.latency_us["p50"] <= r.latency_us["p99"] <= r.latency_us["max"]
        assert r.latency_us["min"] <= r.latency_us["p50"]
        assert r.errors["status"] == 0
        # wrk-report.lua counts the histogram only while that is cheap and writes null otherwise
        # (a busy machine: thousands of distinct latencies over a wide range); the counted case
        # is pinned on the captured outputs above
        assert r.latency_samples is None or r.latency_samples >= r.requests
    finally:
        stop(nginx)


@pytest.mark.skipif(not shutil.which("sockperf"), reason="needs sockperf on PATH")
def test_sockperf_ping_pong_live():
    port = free_port()
    server = subprocess.Popen(["sockperf", "server", "--tcp", "-i", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, server, "sockperf server")
        out = subprocess.run(["sockperf", "ping-pong", "--tcp", "-i", "127.0.0.1", "-p", str(port), "-t", "1", "-m", "14"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=20)
        r = parsers.parse_sockperf(out.stdout)
        assert (r.mode, r.protocol) == ("ping-pong", "tcp")
        assert r.observations > 0 and r.received == r.observations
        assert 0 < r.percentiles_us["p50"] <= r.percentiles_us["p99"] <= r.max_us
        assert 0.4 < r.runtime_s < 1.0  # -t 1 less sockperf's 400 ms warm-up and 50 ms cool-down
    finally:
        stop(server)
