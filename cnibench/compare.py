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
One document's own table and chart stay in :mod:`cnibench.report`.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from cnibench import results

THROUGHPUT_KINDS = ("tcp", "udp")
PERCENTILES = ("p50", "p90", "p99", "p99.9")
ORIGIN_ORDER = {"cloud": 0, "lab": 1, "knb": 2}
_LAT_NAME = re.compile(r"latency-(?P<size>\d+)B-(?P<load>[\d.]+)pct")
CSV_FIELDS = (
    "origin", "run_id", "environment", "subject", "subject_kind", "variant", "test", "kind", "path", "unit",
    "status", "n", "median", "min", "max", "cv", "efficiency_vs_reference", "reference",
    "cpu_busy_percent", "cpu_seconds_per_gbit", "observed_mtu", "note",
)


@dataclass(frozen=True)
class Source:
    """One result document and where it came from."""

    doc: dict[str, Any]
    path: Path | None = None

    @property
    def origin(self) -> str:
        return self.doc["origin"]

    @property
    def run_id(self) -> str:
        return self.doc["run_id"]

    @property
    def key(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{self.origin}-{self.run_id}")

    @property
    def environment(self) -> str:
        return environment_label(self.doc)


def environment_label(doc: dict[str, Any]) -> str:
    """``c6i.8xlarge us-east-1, Linux 6.8, 32 CPUs, MTU 9001`` / ``lab host1, Linux 6.1, ...``."""
    env = doc.get("environment") or {}
    extra = env.get("extra") or {}
    if env.get("instance_type"):
        parts = [" ".join(p for p in (env.get("instance_type"), env.get("region")) if p)]
    elif doc.get("origin") == "knb":
        parts = ["knb" + (f" k8s {extra['kubernetes_version']}" if extra.get("kubernetes_version") else "")]
    else:
        parts = [f"{doc.get('origin', '?')} {env.get('hostname', '?')}"]
    if env.get("kernel") and env["kernel"] != "unknown":
        parts.append(f"Linux {env['kernel']}")
    if env.get("cpus"):
        parts.append(f"{env['cpus']} CPUs")
    if extra.get("cpu_model"):
        parts.append(str(extra["cpu_model"]))
    if env.get("underlay_mtu"):
        parts.append(f"MTU {env['underlay_mtu']}")
    return ", ".join(parts)


def _short_env(doc: dict[str, Any]) -> str:
    env = doc.get("environment") or {}
    if env.get("instance_type"):
        return env["instance_type"]
    if doc.get("origin") == "knb":
        k8s = (env.get("extra") or {}).get("kubernetes_version")
        return f"k8s {k8s}" if k8s else env.get("kernel", "?")
    return env.get("hostname", "?")


def subject_labels(sources: Sequence[Source]) -> dict[tuple[str, str], str]:
    """A unique chart label per (source key, subject name): ``name [origin: env]``, with the
    run id added when two sources would otherwise look the same."""
    base = {}
    for src in sources:
        for s in src.doc["subjects"]:
            base[(src.key, s["name"])] = f"{s['name']}\n[{src.origin}: {_short_env(src.doc)}]"
    counts: dict[str, int] = {}
    for label in base.values():
        counts[label] = counts.get(label, 0) + 1
    return {k: (v if counts[v] == 1 else f"{v[:-1]} {k[0].split('-', 1)[-1][:12]}]") for k, v in base.items()}


# --------------------------------------------------------------------------- loading


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
                    note=t.get("error") or t.get("skipped_reason") or (s.get("error") if s["status"] != "ok" else None),
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


# --------------------------------------------------------------------------- charts


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ok(test: dict | None) -> bool:
    return bool(test) and test["status"] == "ok" and test["stats"]["median"] is not None


def _throughput_tests(sources: Sequence[Source]) -> list[str]:
    names: list[str] = []
    for src in sources:
        for s in src.doc["subjects"]:
            for t in s["tests"]:
                if t["kind"] in THROUGHPUT_KINDS and t["unit"] == "Gbit/s" and t["name"] not in names:
                    names.append(t["name"])
    return names


def _subjects(sources: Sequence[Source]) -> list[tuple[Source, dict]]:
    return [(src, s) for src in sources for s in src.doc["subjects"]]


def chart_throughput(sources: Sequence[Source], path: Path) -> Path | None:
    """Two panels: Gbit/s (median, min-max whiskers) and the ratio to the same run's host."""
    names = _throughput_tests(sources)
    subjects = [(src, s) for src, s in _subjects(sources)
                if any(_ok(t) for t in s["tests"] if t["name"] in names)]
    if not subjects:
        return None
    plt = _plt()
    labels = subject_labels(sources)
    n = len(subjects)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(max(8.0, 1.25 * n + 2), 8.5), sharex=True)
    width = 0.8 / max(1, len(names))
    for k, tname in enumerate(names):
        xs, med, lo, hi, ex, eff = [], [], [], [], [], []
        for i, (src, s) in enumerate(subjects):
            t = next((t for t in s["tests"] if t["name"] == tname), None)
            if not _ok(t):
                continue
            st = t["stats"]
            x = i + (k - (len(names) - 1) / 2) * width
            xs.append(x)
            med.append(st["median"])
            lo.append(st["median"] - (st["min"] if st["min"] is not None else st["median"]))
            hi.append((st["max"] if st["max"] is not None else st["median"]) - st["median"])
            if t.get("efficiency") is not None and s["name"] != src.doc.get("reference"):
                ex.append(x)
                eff.append(t["efficiency"])
        colour = f"C{k}"
        ax.bar(xs, med, width, yerr=[lo, hi], capsize=3, label=tname, color=colour)
        bars = ax2.bar(ex, eff, width, label=tname, color=colour)
        ax2.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_ylabel("Gbit/s (median; whiskers min-max)")
    ax.set_title("Throughput")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax2.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax2.set_ylabel("ratio to the host network\n(same run, same nodes)")
    ax2.set_title("Efficiency against the host network (no bar: no host reference in that run, e.g. knb)")
    ax2.grid(axis="y", alpha=0.3)
    ax2.set_xticks(range(n), [labels[(src.key, s["name"])] for src, s in subjects], fontsize=8)
    plt.setp(ax2.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _load_and_size(test: dict) -> tuple[int | None, float | None]:
    params = test.get("parameters") or {}
    size = params.get("size_bytes")
    load = params.get("load_fraction")
    load = 100.0 * load if load is not None else params.get("load_percent")
    m = _LAT_NAME.search(test["name"])
    if m:
        size = size if size is not None else int(m["size"])
        load = load if load is not None else float(m["load"])
    return size, load


def latency_points(test: dict) -> dict[str, float]:
    """Median over repetitions of each percentile (ms); a test without per-repetition
    percentiles contributes its own statistic (``parameters.statistic``, default p99)."""
    per: dict[str, list[float]] = {}
    for rep in test.get("repetitions") or []:
        if rep.get("value") is None:
            continue
        for key, value in (rep.get("percentiles") or {}).items():
            per.setdefault(key, []).append(float(value))
    if not per and test["stats"]["median"] is not None:
        per[(test.get("parameters") or {}).get("statistic", "p99")] = [test["stats"]["median"]]
    return {k: statistics.median(v) for k, v in per.items()}


def chart_latency(sources: Sequence[Source], path: Path) -> Path | None:
    """Latency percentiles against the load level: one row of panels per response size, one
    panel per percentile (log scale), one line per subject."""
    series: dict[int | None, dict[tuple[str, str], list[tuple[float, dict[str, float]]]]] = {}
    for src, s in _subjects(sources):
        for t in s["tests"]:
            if t["kind"] != "latency" or not _ok(t):
                continue
            size, load = _load_and_size(t)
            if load is None:
                continue
            series.setdefault(size, {}).setdefault((src.key, s["name"]), []).append((load, latency_points(t)))
    if not series:
        return None
    plt = _plt()
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    labels = subject_labels(sources)
    keys = list(dict.fromkeys(k for per in series.values() for k in per))
    colour = {k: f"C{i % 10}" for i, k in enumerate(keys)}
    present = {p for per in series.values() for pts in per.values() for _, vals in pts for p in vals}
    pcts = [p for p in PERCENTILES if p in present] + sorted(present - set(PERCENTILES))
    sizes = sorted(series, key=lambda x: (x is None, x or 0))
    fig, axes = plt.subplots(len(sizes), len(pcts), figsize=(3.6 * len(pcts) + 1, 3.4 * len(sizes) + 1.4),
                             squeeze=False)
    for row, size in enumerate(sizes):
        for col, pct in enumerate(pcts):
            ax = axes[row][col]
            for key, pts in series[size].items():
                pts.sort(key=lambda p: p[0])
                xs = [load for load, vals in pts if pct in vals]
                ys = [vals[pct] for load, vals in pts if pct in vals]
                if ys:
                    ax.plot(xs, ys, "-o", markersize=4, color=colour[key], label=labels[key].replace("\n", " "))
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.grid(alpha=0.3, which="both")
            ax.set_title(f"{pct}" + (f", {size} B responses" if size else ""), fontsize=10)
            if row == len(sizes) - 1:
                ax.set_xlabel("load, % of host max rate")
            if col == 0:
                ax.set_ylabel("response time, ms (log)")
    handles, names = {}, []
    for ax in axes.flat:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in handles:
                handles[n] = h
                names.append(n)
    ncol = min(3, len(names))
    fig.legend([handles[n] for n in names], names, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle("Latency percentiles per load level (load relative to the same run's host network)")
    legend_rows = -(-len(names) // ncol)
    fig.tight_layout(rect=(0, min(0.45, (0.22 * legend_rows + 0.1) / fig.get_figheight()), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _compact(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2g}"


def chart_cpu(sources: Sequence[Source], path: Path) -> Path | None:
    """CPU per Gbit/s of each throughput test: CPU-seconds per Gbit (where the CPU count is
    known) and busy share of all CPUs per Gbit/s (available from every origin that samples CPU)."""
    names = _throughput_tests(sources)
    entries = []
    for src, s in _subjects(sources):
        for t in s["tests"]:
            if t["name"] not in names or not _ok(t) or not t.get("cpu"):
                continue
            cpu, med = t["cpu"], t["stats"]["median"]
            busy = cpu.get("busy_percent")
            entries.append((src, s, t["name"], cpu.get("cpu_seconds_per_gbit"),
                            busy / med if busy is not None and med else None))
    if not any(e[3] is not None or e[4] is not None for e in entries):
        return None
    plt = _plt()
    labels = subject_labels(sources)
    subjects = list(dict.fromkeys((src.key, s["name"]) for src, s, *_ in entries))
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(max(8.0, 1.25 * len(subjects) + 2), 8.5), sharex=True)
    width = 0.8 / max(1, len(names))
    for k, tname in enumerate(names):
        for axis, idx in ((ax, 3), (ax2, 4)):
            xs, ys = [], []
            for src, s, name, *vals in entries:
                value = (src, s, name, *vals)[idx]
                if name == tname and value is not None:
                    xs.append(subjects.index((src.key, s["name"])) + (k - (len(names) - 1) / 2) * width)
                    ys.append(value)
            if ys:
                bars = axis.bar(xs, ys, width, label=tname, color=f"C{k}")
                axis.bar_label(bars, fmt=_compact, fontsize=7, padding=1)
    ax.set_ylabel("CPU-seconds per Gbit (log)")
    ax.set_title("CPU cost of throughput (lower is better; no bar: CPU count not reported, e.g. knb)")
    ax2.set_ylabel("busy % of all CPUs per Gbit/s (log)")
    ax2.set_title("Busy share of the CPUs per Gbit/s (comparable only between equal machines)")
    for axis in (ax, ax2):
        # figures span orders of magnitude (a rate-limited UDP test costs far more per Gbit)
        axis.set_yscale("log")
        axis.grid(axis="y", alpha=0.3, which="both")
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    ax2.set_xticks(range(len(subjects)), [labels[k] for k in subjects], fontsize=8)
    plt.setp(ax2.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
