"""The multi-result comparison report (``cnibench report``): lab, knb and cloud side by side.

Inputs are real: knb reports rendered by the real knb script from raw data measured on our lab
machine (tests/data/knb, see its README), documents assembled from recorded iperf3/hey outputs
(tests/data), and, as root, a short real lab run.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnibench import parsers, results
from cnibench.cli import app
from cnibench.report import charts as charts_module
from cnibench.report import comparison, sources
from cnibench.suite import records

DATA = Path(__file__).parent / "data"
KNB = DATA / "knb"


def knb_doc(name: str, subject: str) -> dict:
    from cnibench import knb

    return knb.import_report((KNB / name).read_text(), subject=subject)


def recorded_doc(origin: str = "cloud", run_id: str = "rec-1") -> dict:
    """A document built from recorded tool outputs: host = iperf3-tcp.json, the variant =
    iperf3-tcp-2streams.json / iperf3-udp*.json, latency = sockperf-ul-tcp-mps20000.txt (under-load,
    through the validity gate of cnibench.suite.records)."""
    env = {"kernel": "6.8.0-1015-aws", "hostname": "ip-10-20-1-10", "cpus": 32, "underlay_mtu": 9001,
           "instance_type": "c6i.8xlarge", "region": "us-east-1"}
    doc = results.new_document(origin, run_id=run_id, environment=env,
                               parameters={"duration_s": 10, "repeat": 1})
    ul = parsers.parse_sockperf((DATA / "sockperf-ul-tcp-mps20000.txt").read_text(), mode="under-load")
    plan = (("host", "reference", "iperf3-tcp.json", "iperf3-udp.json"),
            ("cilium-native", "variant", "iperf3-tcp-2streams.json", "iperf3-udp-500M.json"))
    for name, kind, tcp_file, udp_file in plan:
        subject = results.new_subject(name, kind, variant=None if kind == "reference" else name)
        for tname, tkind, f in (("tcp", "tcp", tcp_file), ("udp", "udp", udp_file)):
            r = parsers.parse_iperf3((DATA / f).read_text())
            test = results.new_test(tname, tkind, "node-to-node" if kind == "reference" else "pod-to-pod", "Gbit/s")
            busy = r.cpu_host_percent / env["cpus"]
            test["repetitions"].append({"index": 0, "value": r.gbit_per_second, "valid": True, "cpu": {
                "busy_percent": busy,
                "cpu_seconds_per_gbit": busy / 100 * env["cpus"] / r.gbit_per_second, "source": "iperf3"}})
            subject["tests"].append(test)
        for load in (0.3, 0.7):
            test = results.new_test(f"latency-tcp-{load * 100:g}pct", "latency", "pod-to-pod", "µs",
                                    higher_is_better=False, tool="sockperf")
            test["parameters"] = {"message_bytes": 14, "load_fraction": load, "statistic": "p99"}
            rec = records.under_load_record(0, ul, target_rate=20_000)
            scale = 1.0 if kind == "reference" else 1.0 + load
            rec["value"] *= scale
            rec["percentiles_us"] = {k: v * scale for k, v in rec["percentiles_us"].items()}
            test["repetitions"].append(rec)
            subject["tests"].append(test)
        doc["subjects"].append(subject)
    results.finalize(doc)
    results.validate(doc)
    return doc


def write(doc: dict, path: Path) -> Path:
    return results.write_json(doc, path)


def read_csv(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_recorded_cloud_and_knb_side_by_side(tmp_path):
    cloud = sources.Source(recorded_doc())
    veth = sources.Source(knb_doc("lab-run1.json", "lab veth (knb)"))
    vxlan = sources.Source(knb_doc("lab-run2-vxlan.txt", "lab vxlan (knb)"))
    out = comparison.write_report([cloud, veth, vxlan], tmp_path / "report")
    comp = out["comparison"]
    assert [g.origin for g in comp.groups] == ["cloud", "knb", "knb"]  # each knb import is its own environment

    rows = read_csv(out["csv"])
    by = {(r["origin"], r["subject"], r["metric"]): r for r in rows}
    variant_tcp = by[("cloud", "cilium-native", "tcp")]
    assert variant_tcp["instance_type"] == "c6i.8xlarge" and variant_tcp["kernel"] == "6.8.0-1015-aws"
    host = parsers.parse_iperf3((DATA / "iperf3-tcp.json").read_text()).gbit_per_second
    two = parsers.parse_iperf3((DATA / "iperf3-tcp-2streams.json").read_text()).gbit_per_second
    assert float(variant_tcp["value"]) == pytest.approx(two, abs=5e-4)  # rounded to iperf3's 1 Mbit/s
    assert float(variant_tcp["vs_host"]) == pytest.approx(two / host, abs=5e-4)
    knb_tcp = by[("knb", "lab veth (knb)", "tcp")]
    assert knb_tcp["vs_host"] == "" and knb_tcp["rank"] == ""  # no host in knb, nothing to rank against
    assert float(knb_tcp["value"]) > 1  # Gbit/s, converted from knb's Mbit/s
    assert by[("knb", "lab vxlan (knb)", "tcp")]["group"] != knb_tcp["group"]

    md = out["markdown"].read_text()
    assert md.index("## Summary") < md.index("## Sources") < md.index("### TCP throughput")
    assert f"{two / host:.2f}×" in md
    charts = out["charts"]
    assert set(charts) == {g.id for g in comp.groups}
    for per in charts.values():
        for png in per.values():
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # what the cloud group's TCP chart draws, read from the figure: one bar per subject, its
    # length the figure of the CSV, its label the ratio to the host the CSV gives
    import matplotlib.pyplot as plt

    cloud_group = next(g for g in comp.groups if g.origin == "cloud")
    figs = dict(charts_module.group_figures(cloud_group))
    try:
        ax = figs["tcp"].axes[0]
        drawn = sorted(round(p.get_width(), 3) for p in ax.patches if (p.get_gid() or "").startswith("bar:"))
        labels = "\n".join(t.get_text() for t in ax.texts)
    finally:
        for f in figs.values():
            plt.close(f)
    cloud_tcp = [r for r in rows if r["origin"] == "cloud" and r["metric"] == "tcp" and r["status"] == "ok"]
    assert drawn == sorted(round(float(r["value"]), 3) for r in cloud_tcp) and len(drawn) >= 2
    assert f"{two / host:.2f}× host" in labels
    copies = sorted(p.name for p in (tmp_path / "report" / "results").iterdir())
    assert copies == sorted(f"{s.id}.json" for s in comp.sources)
    for p in (tmp_path / "report" / "results").iterdir():
        results.load(p)


def test_latency_points_are_medians_of_the_repetitions_percentiles():
    test = results.new_test("latency-350B-50pct", "latency", "pod-to-pod", "ms", higher_is_better=False)
    test["repetitions"] = [
        {"index": 0, "value": 1.0, "percentiles": {"p50": 0.2, "p99": 1.0}},
        {"index": 1, "value": 3.0, "percentiles": {"p50": 0.4, "p99": 3.0}},
        {"index": 2, "value": 2.0, "percentiles": {"p50": 0.3, "p99": 2.0}},
        {"index": 3, "error": "hey failed"},
    ]
    test["samples"] = [1.0, 3.0, 2.0]
    test["stats"] = results.summarize(test["samples"])
    # a v1 test in ms is converted: the chart axis is µs
    assert comparison.latency_points(test) == {"p50": pytest.approx(300.0), "p99": 2000.0}
    assert comparison.load_and_size(test) == (350, 50.0)


def test_same_run_twice_keeps_both(tmp_path):
    doc = recorded_doc()
    out = comparison.write_report([sources.Source(doc), sources.Source(doc)], tmp_path)
    assert len(out["results"]) == 2 and len({p.name for p in out["results"]}) == 2
    assert [p.name for p in out["results"]] == ["cloud-rec-1.json", "cloud-rec-1-2.json"]


def test_report_command_finds_results_and_skips_others(tmp_path):
    write(recorded_doc(), tmp_path / "cloud" / "cilium-native.json")
    write(knb_doc("lab-run1.yaml", "lab veth"), tmp_path / "knb" / "lab-veth.json")
    (tmp_path / "matrix.json").write_text(json.dumps({"runs": []}))
    (tmp_path / "broken.json").write_text("{")
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 0, res.output
    out = tmp_path / "report"
    assert {r["origin"] for r in read_csv(out / "comparison.csv")} == {"cloud", "knb"}
    assert list((out / "charts").rglob("*.png"))
    assert "matrix.json" in res.output and "broken.json" in res.output
    first = len(read_csv(out / "comparison.csv"))
    # a second run does not read its own copies in DIR/report/results
    res2 = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res2.exit_code == 0
    assert len(read_csv(out / "comparison.csv")) == first
    assert len(list((out / "results").iterdir())) == 2


def test_report_command_with_nothing_to_compare(tmp_path):
    (tmp_path / "x.json").write_text("[]")
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2
    assert "no result documents" in res.output and res.stdout == ""
