"""The comparison report's PNG charts: throughput (Gbit/s and ratio to the host), latency, CPU."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Sequence, TypeGuard

from cnibench.report.sources import LATENCY_NAME, PERCENTILES, THROUGHPUT_KINDS, Source, subject_labels


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ok(test: dict | None) -> TypeGuard[dict]:
    return test is not None and bool(test) and test["status"] == "ok" and test["stats"]["median"] is not None


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
    size = params.get("size_bytes", params.get("message_bytes"))
    load = params.get("load_fraction")
    load = 100.0 * load if load is not None else params.get("load_percent")
    m = LATENCY_NAME.search(test["name"])
    if m:
        size = size if size is not None else int(m["size"])
        load = load if load is not None else float(m["load"])
    return size, load


def latency_points(test: dict) -> dict[str, float]:
    """Median over valid repetitions of each percentile, in µs (schema v1's hey figures were ms
    and are converted); a test without per-repetition percentiles contributes its own statistic
    (``parameters.statistic``, default p99)."""
    per: dict[str, list[float]] = {}
    scale = 1000.0 if test.get("unit") == "ms" else 1.0
    for rep in test.get("repetitions") or []:
        if rep.get("value") is None or rep.get("valid") is False or rep.get("contaminated"):
            continue
        for key, value in (rep.get("percentiles_us") or rep.get("percentiles") or {}).items():
            per.setdefault(key, []).append(float(value) * scale)
    if not per and test["stats"]["median"] is not None:
        per[(test.get("parameters") or {}).get("statistic", "p99")] = [test["stats"]["median"] * scale]
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
                ax.set_ylabel("latency, µs (log)")
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
