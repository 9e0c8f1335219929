"""Parsers, statistics and the v1 result schema, on outputs captured from the real tools.

tests/data holds outputs of iperf3 3.12 and hey 0.1.4 run between two network namespaces
on the development machine (see tests/data/README.md), and a result document written by
a real `cnibench lab` run.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import jsonschema
import pytest

from cnibench import parsers, results
from cnibench.report import single as report

DATA = Path(__file__).parent / "data"


def read(name: str) -> str:
    return (DATA / name).read_text()


# --------------------------------------------------------------------------- iperf3


def test_iperf3_tcp_single_stream():
    r = parsers.parse_iperf3(read("iperf3-tcp.json"))
    doc = json.loads(read("iperf3-tcp.json"))
    assert r.protocol == "TCP"
    assert r.streams == 1
    assert r.bits_per_second == doc["end"]["sum_received"]["bits_per_second"]
    assert r.gbit_per_second == pytest.approx(r.bits_per_second / 1e9)
    assert r.retransmits == doc["end"]["sum_sent"]["retransmits"]
    assert r.tcp_mss == 1448  # 1500-byte veth MTU
    assert r.lost_percent is None
    assert 0 < r.cpu_host_percent <= 100


def test_iperf3_tcp_two_streams_uses_the_sum():
    r = parsers.parse_iperf3(read("iperf3-tcp-2streams.json"))
    doc = json.loads(read("iperf3-tcp-2streams.json"))
    assert r.streams == 2
    per_stream = [s["receiver"]["bits_per_second"] for s in doc["end"]["streams"]]
    assert r.bits_per_second == pytest.approx(sum(per_stream), rel=1e-6)


@pytest.mark.parametrize("name", ["iperf3-udp.json", "iperf3-udp-500M.json"])
def test_iperf3_udp_reports_the_receiver_side(name):
    r = parsers.parse_iperf3(read(name))
    doc = json.loads(read(name))
    assert r.protocol == "UDP"
    assert r.bits_per_second == doc["end"]["sum_received"]["bits_per_second"]
    # datagrams were lost: the sender rate is higher than what arrived
    assert r.sender_bits_per_second >= r.bits_per_second
    assert r.lost_percent == doc["end"]["sum_received"]["lost_percent"]
    assert r.jitter_ms is not None
    assert r.retransmits is None


def test_iperf3_udp_block_size_recorded():
    assert parsers.parse_iperf3(read("iperf3-udp-500M.json")).block_size == 1200
    assert parsers.parse_iperf3(read("iperf3-udp.json")).block_size == 1448


def test_iperf3_error_document_raises_with_iperf3_message():
    with pytest.raises(parsers.ParseError, match="Connection refused"):
        parsers.parse_iperf3(read("iperf3-refused.json"))


@pytest.mark.parametrize("text", ["", "iperf3: error - unable to connect", "[]", '{"start": {}, "end": {}}'])
def test_iperf3_garbage_raises_parse_error(text):
    with pytest.raises(parsers.ParseError):
        parsers.parse_iperf3(text)


# --------------------------------------------------------------------------- statistics


def test_summarize():
    s = results.summarize([2.0, 4.0, 6.0, None])
    assert s["n"] == 3 and s["median"] == 4.0 and s["min"] == 2.0 and s["max"] == 6.0
    assert s["cv"] == pytest.approx(2.0 / 4.0)
    one = results.summarize([3.0])
    assert one["cv"] is None and one["median"] == 3.0
    assert results.summarize([])["median"] is None


def test_efficiency():
    assert results.efficiency(5.0, 10.0) == 0.5
    assert results.efficiency(None, 10.0) is None
    assert results.efficiency(5.0, 0) is None


# --------------------------------------------------------------------------- document and schema


def _doc() -> dict:
    doc = results.new_document("lab", run_id="abc123", environment=results.collect_environment(1500),
                               parameters={"duration_s": 1.0, "repeat": 3})
    host = results.new_subject("host", "reference")
    dp = results.new_subject("vxlan", "datapath", underlay_need="l3", encap_overhead=50)
    for subject, values, mtu in ((host, [10.0, 12.0, 11.0], 1500), (dp, [5.0, 6.0, 5.5], 1450)):
        tcp = results.new_test("tcp", "tcp", "node-to-node" if subject is host else "pod-to-pod", "Gbit/s")
        for i, v in enumerate(values):
            tcp["samples"].append(v)
            tcp["repetitions"].append({"index": i, "value": v, "cpu": {"busy_percent": 50.0,
                                                                        "cpu_seconds_per_gbit": 0.2}})
        m = results.new_test("mtu", "mtu", tcp["path"], "bytes")
        m["samples"] = [mtu]
        m["repetitions"] = [{"index": 0, "value": mtu, "observed_mtu": mtu}]
        subject["tests"] += [tcp, m]
        doc["subjects"].append(subject)
    svc = results.new_test("tcp-service", "tcp", "pod-to-service", "Gbit/s", reference_test="tcp")
    svc["repetitions"] = [{"index": 0, "value": 4.4}]
    dp["tests"].append(svc)
    failed = results.new_test("udp", "udp", "pod-to-pod", "Gbit/s")
    failed["repetitions"] = [{"index": 0, "error": "iperf3: unable to connect"}]
    failed["error"] = "iperf3: unable to connect"
    dp["tests"].append(failed)
    doc["subjects"].append(results.new_subject("ipip", "datapath", status="skipped"))
    doc["subjects"][-1].update(status="skipped", skipped_reason="no ipip in this kernel")
    return results.finalize(doc)


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(results.schema())
    assert results.schema()["$schema"].endswith("2020-12/schema")


def test_finalize_statistics_efficiency_and_errors():
    doc = _doc()
    results.validate(doc)
    host, vx, ipip = doc["subjects"]
    tcp = next(t for t in vx["tests"] if t["name"] == "tcp")
    assert tcp["stats"]["median"] == 5.5
    assert tcp["efficiency"] == pytest.approx(5.5 / 11.0)
    assert tcp["cpu"]["cpu_seconds_per_gbit"] == 0.2
    svc = next(t for t in vx["tests"] if t["name"] == "tcp-service")
    # against the host's tcp of the same repetition (index 0: 10.0), one pair: no interval
    assert svc["efficiency"] == pytest.approx(4.4 / 10.0)
    assert svc["ratio"]["n"] == 1 and svc["ratio"]["low"] is None
    assert tcp["ratio"]["n"] == 3 and tcp["ratio"]["low"] == pytest.approx(0.5)  # 0.5 in every pair
    mtu = next(t for t in vx["tests"] if t["name"] == "mtu")
    assert mtu["observed_mtu"] == 1450
    udp = next(t for t in vx["tests"] if t["name"] == "udp")
    assert udp["status"] == "error" and "unable to connect" in udp["error"]
    assert ipip["status"] == "skipped"


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(origin="laptop"), "laptop"),
    (lambda d: d.update(schema_version="3.0"), "3.0"),
    (lambda d: d["subjects"][1]["tests"][0].update(status="error"), "error"),
    (lambda d: d["subjects"][2].pop("skipped_reason"), "skipped_reason"),
    (lambda d: d["subjects"][0]["tests"][0].update(kind="bogus"), "bogus"),
    (lambda d: d["environment"].pop("kernel"), "kernel"),
])
def test_schema_rejects_invalid_documents(mutate, message):
    doc = copy.deepcopy(_doc())
    mutate(doc)
    with pytest.raises(jsonschema.ValidationError, match=message):
        results.validate(doc)


@pytest.mark.parametrize("origin", ["cloud", "knb"])
def test_schema_serves_cloud_and_knb(origin):
    doc = _doc()
    doc["origin"] = origin
    doc["environment"].update(instance_type="c6in.xlarge", region="eu-west-1")
    doc["subjects"][1].update(kind="variant", variant="flannel-vxlan", cni="flannel")
    results.validate(doc)


def test_real_lab_result_document(tmp_path):
    """A document written by `cnibench lab` on this machine validates and renders."""
    doc = results.load(DATA / "lab-result.json")
    assert doc["origin"] == "lab"
    host = next(s for s in doc["subjects"] if s["name"] == "host")
    assert all(t["efficiency"] == pytest.approx(1.0) for t in host["tests"] if t["stats"]["median"])
    names = {s["name"]: s for s in doc["subjects"]}
    assert names["vxlan"]["observed_mtu"] == names["host-gw"]["observed_mtu"] - 50
    png = report.write_chart(doc, tmp_path / "chart.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "vxlan" in report.markdown(doc)
    from rich.console import Console

    console = Console(width=160, record=True)
    console.print(report.render_table(doc))
    text = console.export_text()
    assert "host-gw" in text and "skipped" in text


def test_write_json_validates(tmp_path):
    doc = _doc()
    path = results.write_json(doc, tmp_path / "r.json")
    assert results.load(path)["run_id"] == "abc123"
    bad = copy.deepcopy(doc)
    bad["subjects"][0]["tests"][0]["samples"] = ["fast"]
    with pytest.raises(jsonschema.ValidationError):
        results.write_json(bad, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()
    assert not math.isnan(doc["subjects"][0]["tests"][0]["stats"]["median"])


def test_lab_chart_speaks_the_tables_vocabulary():
    """The lab's own chart: beside each ratio the absolute median with its unit, under each test
    the reference's figure, and every subject or test it does not draw with the reason."""
    import matplotlib.pyplot as plt

    doc = results.load(DATA / "lab-result-v2.json")
    fig = report.figure_chart(doc)
    try:
        ax = fig.axes[0]
        ticks = [t.get_text() for t in ax.get_yticklabels()]
        notes = " ".join(t.get_text() for t in fig.texts)
        points = [t.get_text() for t in ax.texts]
    finally:
        plt.close(fig)
    host = {t["name"]: t for t in next(s for s in doc["subjects"] if s["name"] == "host")["tests"]}
    tcp = host["tcp"]
    assert f"tcp\nhost {report._num(tcp['stats']['median'], tcp['unit'])} Gbit/s" in ticks
    drawn = [(s, t) for s in doc["subjects"] if s["name"] != "host" and s["status"] == "ok" for t in s["tests"]
             if t["name"] != "mtu" and t["status"] == "ok" and (t.get("ratio") or {}).get("estimate") is not None]
    assert drawn and len(points) == len(drawn)
    assert all(f"{report._num(t['stats']['median'], t['unit'])} {t['unit']}" in points for _, t in drawn)
    for s in doc["subjects"]:
        if s["status"] == "skipped":
            assert f"{s['name']}: skipped (" in notes and s["skipped_reason"].split(" (")[0][:40] in notes
    assert "host-gw latency-tcp-30pct: invalid (no valid repetition: load generator behind" in notes
