"""``cnibench report`` end to end (issue 14): files and directories, two knb imports plus a lab
run, run twice into one folder, never reading its own outputs, unique ids, --json."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from report_docs import KNB, lab_doc
from typer.testing import CliRunner

from cnibench import results
from cnibench.cli import app
from cnibench.report import sources

runner = CliRunner()
SCIENTIFIC = re.compile(r"\b\d(?:\.\d+)?e[+-]?\d+\b", re.IGNORECASE)


def _import(name: str, out: Path) -> Path:
    res = runner.invoke(app, ["import", "knb", str(KNB / name), "--output", str(out)])
    assert res.exit_code == 0, res.output
    return out


def _rows(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_two_knb_imports_and_a_lab_run_twice_into_one_folder(tmp_path):
    inp = tmp_path / "in"
    (inp / "knb").mkdir(parents=True)
    k1 = _import("lab-run1.json", inp / "knb" / "run1.json")
    _import("lab-run2-vxlan.json", inp / "knb" / "run2.json")
    lab = results.write_json(lab_doc(), tmp_path / "lab-r4rep01.json")
    out = tmp_path / "rep"
    args = ["report", str(inp), str(lab), "--out", str(out)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    rows1 = _rows(out / "comparison.csv")
    data = json.loads((out / "comparison.json").read_text())

    knb_groups = [g for g in data["groups"] if g["origin"] == "knb"]
    assert len(knb_groups) == 2 and len(data["groups"]) == 3  # two knb environments (+ the lab run)
    assert sorted(g["facts"]["pod_mtu"] for g in knb_groups) == [1450, 1500]
    assert all(g["facts"]["ram_total_mb"] or g["facts"]["ram_used_mb"] for g in knb_groups)
    assert {r["pod_mtu_bytes"] for r in rows1 if r["origin"] == "knb"} == {"1450", "1500"}
    cpu = [r for r in rows1 if r["origin"] == "knb" and r["metric"].startswith("tcp/cpu")]
    assert len(cpu) == 2 and all(r["client_busy_percent"] and r["server_busy_percent"] for r in cpu)
    # both knb reports have their idle test: the CPU per Gbit/s is above idle, and says so
    assert all(r["cpu_idle_corrected"] == "yes" and r["busy_above_idle_percent"] for r in cpu)
    md = (out / "comparison.md").read_text()
    assert "| pod MTU (knb: server pod) | 1450 |" in md and "| pod MTU (knb: server pod) | 1500 |" in md
    assert "| RAM |" in md
    for text in (md, (out / "comparison.csv").read_text(), (out / "comparison.json").read_text(), first.stdout):
        assert not SCIENTIFIC.search(text)
    # every source has its own id and copy, no stutter
    ids = [s["id"] for s in data["sources"]]
    assert len(set(ids)) == 3 and not any("knb-knb" in i for i in ids)
    assert sorted(p.name for p in (out / "results").iterdir()) == sorted(f"{i}.json" for i in ids)
    # where everything went, on stderr
    for kind in ("markdown", "csv", "json"):
        assert f"{kind}: {out / ('comparison.' + {'markdown': 'md'}.get(kind, kind))}" in first.stderr
    charts = sorted(out.rglob("*.png"))
    assert charts and all(f"{p}" in first.stderr for p in charts)
    assert first.stdout.startswith("# cnibench comparison")

    # the second run into the same folder reads neither the copies nor the report itself
    second = runner.invoke(app, args + ["--json"])
    assert second.exit_code == 0, second.output
    assert _rows(out / "comparison.csv") == rows1
    assert len(list((out / "results").iterdir())) == 3
    again = json.loads(second.stdout)
    assert [s["id"] for s in again["sources"]] == ids
    # and a report over the parent directory (which holds the report folder) does not either
    third = runner.invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "rep2"), "--format", "json"])
    assert third.exit_code == 0, third.output
    assert len(json.loads(third.stdout)["sources"]) == 3
    assert "an earlier cnibench report wrote" in third.stderr
    # a file named explicitly is read; a copy of one already read is not read twice
    fourth = runner.invoke(app, ["report", str(k1), str(out / "results" / f"{ids[1]}.json"), str(k1), "-o",
                                 str(tmp_path / "rep3"), "--json"])
    assert fourth.exit_code == 0, fourth.output
    assert len(json.loads(fourth.stdout)["sources"]) == 1 and "the same document as" in fourth.stderr


def test_a_report_folder_of_an_older_version_is_not_read(tmp_path):
    """Before the marker, a report folder held comparison.md, comparison.csv and results/."""
    lab = results.write_json(lab_doc(), tmp_path / "in" / "lab.json")
    old = tmp_path / "in" / "report"
    (old / "results").mkdir(parents=True)
    (old / "comparison.md").write_text("# old\n")
    (old / "comparison.csv").write_text("origin\n")
    results.write_json(lab_doc(run_id="old-copy"), old / "results" / "lab-old-copy.json")
    res = runner.invoke(app, ["report", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--json"])
    assert res.exit_code == 0, res.output
    assert [s["path"] for s in json.loads(res.stdout)["sources"]] == [str(lab)]


def test_stale_outputs_of_an_earlier_report_in_the_folder_are_removed(tmp_path):
    a = results.write_json(lab_doc(run_id="aaa"), tmp_path / "a.json")
    b = results.write_json(lab_doc(run_id="bbb"), tmp_path / "b.json")
    out = tmp_path / "rep"
    assert runner.invoke(app, ["report", str(a), str(b), "-o", str(out)]).exit_code == 0
    assert (out / "charts" / "lab-vm-bbb" / "tcp.png").is_file() and (out / "results" / "lab-bbb.json").is_file()
    mine = out / "notes.txt"
    mine.write_text("the user's own file")
    assert runner.invoke(app, ["report", str(a), "-o", str(out)]).exit_code == 0
    assert not (out / "charts" / "lab-vm-bbb" / "tcp.png").exists() and not (out / "results" / "lab-bbb.json").exists()
    assert mine.read_text() == "the user's own file"
    marker = json.loads((out / sources.MARKER).read_text())
    assert "comparison.md" in marker["outputs"] and "results/" in marker["outputs"]


def test_errors_go_to_stderr(tmp_path):
    (tmp_path / "x.json").write_text('{"x": 1}')
    res = runner.invoke(app, ["report", str(tmp_path / "x.json"), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and res.stdout == ""
    assert "no result documents" in res.stderr and "not a cnibench result document" in res.stderr
    bad = runner.invoke(app, ["report", str(results.write_json(lab_doc(), tmp_path / "l.json")), "-o",
                              str(tmp_path / "o"), "--comparable", "nope"])
    assert bad.exit_code == 2 and "no source with the id nope" in bad.stderr and bad.stdout == ""
