"""`cnibench report` on the session's real lab run (tests/labutil.py quick_run) beside an imported
knb report: the comparison of tests/test_compare.py on figures the lab measured here."""

from __future__ import annotations

import pytest
from test_compare import knb_doc, read_csv, write
from typer.testing import CliRunner

from cnibench.cli import app

pytestmark = pytest.mark.lab


def test_report_from_a_real_lab_run_and_imported_knb(lab_quick_run, tmp_path):
    # the session's full quick run of the lab (tests/labutil.py), beside a knb import
    assert lab_quick_run["proc"].returncode == 0, lab_quick_run["proc"].stderr[-3000:]
    lab_doc = lab_quick_run["doc"]
    write(lab_doc, tmp_path / "lab" / "lab.json")
    write(knb_doc("lab-run1.json", "lab veth (knb)"), tmp_path / "knb" / "lab-veth.json")
    res = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    rows = read_csv(tmp_path / "report" / "comparison.csv")
    lab_tcp = next(r for r in rows if r["origin"] == "lab" and r["subject"] == "vxlan" and r["metric"] == "tcp")
    assert lab_tcp["status"] == "ok", lab_tcp
    assert float(lab_tcp["value"]) > 0 and float(lab_tcp["vs_host"]) > 0
    assert any(r["origin"] == "knb" and r["test"] == "tcp" for r in rows)
    # every latency test of the run is a row, with the run's own verdict: a figure where the gate
    # passed it, none where it refused (10x the host's maximum rate is refused in every subject)
    lat = {(r["subject"], r["test"]): r for r in rows if r["origin"] == "lab" and r["kind"] == "latency"}
    in_doc = {(s["name"], t["name"]): t for s in lab_doc["subjects"] if s["status"] == "ok"
              for t in s["tests"] if t["kind"] == "latency"}
    assert set(lat) == set(in_doc) and len(in_doc) >= 2 * 3
    for key, t in in_doc.items():
        assert lat[key]["status"] == t["status"], (key, lat[key])
        assert (lat[key]["value"] != "") == (t["status"] == "ok"), (key, lat[key])
    assert lat[("vxlan", "latency-tcp-1000pct")]["status"] == "invalid"
    assert list((tmp_path / "report" / "charts").rglob("tcp.png"))
    assert list((tmp_path / "report" / "charts").rglob("latency-profile-tcp.png"))
