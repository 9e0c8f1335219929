"""Side-by-side comparison of many result documents (schema v1) of any origin.

Cloud matrix runs, local lab runs and imported knb reports are compared in one report, each
row labelled with its origin and environment, because a figure means nothing without the
hardware it was measured on. Efficiencies are never recomputed across documents: a ratio to
the host network is only meaningful against the host measured in the same run on the same
nodes, so it is taken from each document (``test.efficiency``); knb runs have no host
reference and show none.

Output (``write_report``): ``results/<origin>-<run>.json`` (a validated copy of every input),
``comparison.md``, ``comparison.csv``, and PNG charts: ``throughput.png`` (Gbit/s and ratio to
the host), ``latency.png`` (percentiles per load level) and ``cpu.png`` (CPU per Gbit/s).
The charts are drawn by :mod:`cnibench.report.charts`; one document's own table and chart are
:mod:`cnibench.report.single`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from cnibench import results
from cnibench.report.charts import chart_cpu, chart_latency, chart_throughput
from cnibench.report.sources import CSV_FIELDS, ORIGIN_ORDER, THROUGHPUT_KINDS, Source


def load_results(paths: Iterable[str | Path]) -> list[Source]:
    """Load and validate every document (``jsonschema.ValidationError`` names the bad field)."""
    return [Source(results.load(p), Path(p)) for p in paths]


def find_results(directory: str | Path, exclude: str | Path | None = None) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every ``*.json`` under ``directory`` that is a schema-v1 result document; the others
    are returned with the reason they were skipped (``matrix.json``, broken files...)."""
    import jsonschema

    found, skipped = [], []
    ex = Path(exclude).resolve() if exclude else None
    for path in sorted(Path(directory).rglob("*.json")):
        if ex and (path.resolve() == ex or ex in path.resolve().parents):
            continue
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            skipped.append((path, f"not JSON ({exc})"))
            continue
        if not isinstance(doc, dict) or "schema_version" not in doc:
            skipped.append((path, "not a cnibench result document (no schema_version)"))
            continue
        try:
            results.validate(doc)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
            skipped.append((path, f"does not follow result schema v1 at {where}: {exc.message}"))
            continue
        found.append(path)
    return found, skipped


# --------------------------------------------------------------------------- rows


def _variant(subject: dict) -> str:
    return subject.get("variant") or subject.get("cni") or subject["name"]


def rows(sources: Sequence[Source]) -> list[dict[str, Any]]:
    """One row per (source, subject, test)."""
    out = []
    for src in sources:
        ref = src.doc.get("reference", "host")
        for s in src.doc["subjects"]:
            tests = s["tests"] or [None]
            for t in tests:
                row = {
                    "origin": src.origin, "run_id": src.run_id, "environment": src.environment,
                    "subject": s["name"], "subject_kind": s["kind"], "variant": _variant(s),
                }
                if t is None:
                    row.update(status=s["status"], note=s.get("error") or s.get("skipped_reason") or "no tests")
                    out.append(row)
                    continue
                st, cpu = t["stats"], t.get("cpu") or {}
                has_ref = any(x["name"] == ref for x in src.doc["subjects"])
                row.update(
                    test=t["name"], kind=t["kind"], path=t["path"], unit=t["unit"], status=t["status"],
                    n=st["n"], median=st["median"], min=st["min"], max=st["max"], cv=st["cv"],
                    efficiency_vs_reference=t.get("efficiency"),
                    reference=f"{ref}/{t.get('reference_test') or t['name']}" if has_ref else "none in this run",
                    cpu_busy_percent=cpu.get("busy_percent"), cpu_seconds_per_gbit=cpu.get("cpu_seconds_per_gbit"),
                    observed_mtu=t.get("observed_mtu"),
                    note=t.get("error") or t.get("skipped_reason") or (s.get("error") if s["status"] != "ok" else None)
                    or ("; ".join(t["caveats"]) if t.get("caveats") else None),
                )
                out.append(row)
    return out


def write_csv(table: Sequence[dict[str, Any]], path: Path) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in table:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_FIELDS})
    return path


def _num(value: Any, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}g}" if abs(value) >= 1000 else f"{value:.{digits}f}"


def _md_cell(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


SECTIONS = (
    ("Throughput (higher is better)", lambda r: r.get("kind") in THROUGHPUT_KINDS),
    ("Latency under constant load (lower is better)", lambda r: r.get("kind") == "latency"),
    ("Path MTU", lambda r: r.get("kind") == "mtu"),
    ("Other tests", lambda r: r.get("kind") not in (*THROUGHPUT_KINDS, "latency", "mtu") and r.get("test")),
    ("Subjects without tests", lambda r: not r.get("test")),
)


def markdown(sources: Sequence[Source], table: Sequence[dict[str, Any]], charts: dict[str, Path] | None = None) -> str:
    lines = ["# cnibench comparison", ""]
    lines += ["Each figure is the median over the run's repetitions; CV is the coefficient of variation across "
              "them. *vs host* is the ratio to the host network measured in the same run on the same machines "
              "(for latency, above 1 is slower); runs without a host reference (knb) show none, and figures "
              "from different environments are not ratios of each other.", ""]
    lines += ["## Sources", "", "| origin | run | environment | created | repetitions x duration | file |",
              "|---|---|---|---|---|---|"]
    for src in sources:
        p = src.doc["parameters"]
        lines.append(f"| {src.origin} | {_md_cell(src.run_id)} | {_md_cell(src.environment)} | "
                     f"{src.doc['created']} | {p['repeat']} x {p['duration_s']:g} s | "
                     f"results/{src.key}.json |")
    header = ("| origin | environment | subject | test | path | median | unit | CV | vs host | CPU busy % | "
              "CPU s/Gbit | note |")
    for title, keep in SECTIONS:
        part = [r for r in table if keep(r)]
        if not part:
            continue
        lines += ["", f"## {title}", "", header, "|" + "---|" * 12]
        order = {src.run_id: i for i, src in enumerate(sources)}  # sources come sorted by origin
        for r in sorted(part, key=lambda r: (r.get("test") or "", order.get(r["run_id"], 0))):
            cv = "" if r.get("cv") is None else f"{100 * r['cv']:.1f}%"
            eff = "" if r.get("efficiency_vs_reference") is None else f"{r['efficiency_vs_reference']:.2f}x"
            note = r.get("note") or ("" if r.get("status") in (None, "ok") else r["status"])
            lines.append(
                f"| {r['origin']} | {_md_cell(r['environment'])} | {_md_cell(r['subject'])} | "
                f"{_md_cell(r.get('test'))} | {r.get('path') or ''} | {_num(r.get('median'))} | {r.get('unit') or ''} | "
                f"{cv} | {eff} | {_num(r.get('cpu_busy_percent'), 1)} | {_num(r.get('cpu_seconds_per_gbit'))} | "
                f"{_md_cell(note)} |")
    if charts:
        lines += ["", "## Charts", ""]
        for name, path in charts.items():
            lines.append(f"![{name}]({path.name})")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- report


def write_report(sources: Sequence[Source], out_dir: str | Path) -> dict[str, Any]:
    """Write the comparison of ``sources`` into ``out_dir``; returns the written paths."""
    if not sources:
        raise ValueError("no result documents to compare")
    out = Path(out_dir)
    (out / "results").mkdir(parents=True, exist_ok=True)
    # cloud first, then lab, then imported knb; each in the order it was measured
    sources = sorted(sources, key=lambda src: (ORIGIN_ORDER.get(src.origin, 9), src.doc.get("created", "")))
    copies = []
    seen: dict[str, int] = {}
    unique = []
    for src in sources:
        n = seen[src.key] = seen.get(src.key, 0) + 1
        if n > 1:  # the same run id twice (two copies of one run): keep both, distinctly named
            src = Source({**src.doc, "run_id": f"{src.run_id}#{n}"}, src.path)
        unique.append(src)
        copies.append(results.write_json(src.doc, out / "results" / f"{src.key}.json"))
    table = rows(unique)
    charts = {}
    for name, fn in (("throughput", chart_throughput), ("latency", chart_latency), ("cpu", chart_cpu)):
        written = fn(unique, out / f"{name}.png")
        if written:
            charts[name] = written
    csv_path = write_csv(table, out / "comparison.csv")
    md_path = out / "comparison.md"
    md_path.write_text(markdown(unique, table, charts))
    return {"markdown": md_path, "csv": csv_path, "charts": charts, "results": copies}
