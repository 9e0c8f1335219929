"""The comparison's charts (matplotlib), one per metric and environment group, never two groups
on one axis:

* throughput, request/response, connection and HTTP rates: horizontal bars sorted by result
  (best on top), the value's interval as whiskers, the value and the ratio to the host network
  (with its 95 % interval) printed at each bar; the host network hatched;
* CPU per Gbit/s: the same on a linear axis, split into client and server where the document
  has the split;
* latency: percentile profiles (p50 to p99.9, log axis) per subject, one panel per load level,
  each subject labelled with the load it achieved.

What has no valid figure (invalid, failed, skipped) has no bar or line: it is listed, with its
reason, in the figure's notes. The ``figure_*`` functions return the matplotlib figure (for
tests), :func:`write_charts` writes them all as PNG.
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence, TypeAlias

from cnibench.report.sources import PERCENTILES, fmt_number, status_note

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The model's classes (cnibench.report.comparison, which imports this module to draw them):
# named here for the reader, not imported (no import cycle between the two).
Comparison: TypeAlias = Any
Entry: TypeAlias = Any
Group: TypeAlias = Any
Metric: TypeAlias = Any

#: a light style that prints well in grey: dark text, thin grey grid, no top/right frame
STYLE = {
    "figure.facecolor": "white", "axes.facecolor": "white", "savefig.facecolor": "white",
    "font.family": "DejaVu Sans", "font.size": 10, "axes.titlesize": 11, "axes.titleweight": "bold",
    "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 10, "legend.fontsize": 8.5,
    "axes.edgecolor": "#444444", "axes.linewidth": 0.8, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "axes.axisbelow": True, "grid.color": "#d0d0d0", "grid.linewidth": 0.6,
    "grid.linestyle": "-", "text.color": "#1a1a1a", "axes.labelcolor": "#1a1a1a",
    # every text is literal: a name or reason from a document holding "$...$" is not mathtext
    # (which would render it as a formula, or fail on it)
    "text.parse_math": False,
}
BAR = "#6b8fb8"      # a variant
BEST = "#274b73"     # the best variant (darker: tells apart in grey too)
HOST = "#e3e3e3"     # the host network (light grey, hatched)
SERVER = "#b9cde3"   # the server's share of a CPU bar
LINES = ("#1a1a1a", "#1f5a96", "#c0570a", "#3f8a2f", "#8a3b8f", "#7a7a7a", "#b8860b", "#008b8b")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<")
DASHES = ("-", "--", "-.", ":", "-", "--", "-.", ":")
DPI = 150
WIDTH = 10.0


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _wrap(text: str, width: int = 120) -> str:
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def _merge_kinds(kinds: set[str]) -> list[str]:
    """'min–max of 3 repetitions (...)' and '... of 4 ...' as one 'min–max of 3–4 repetitions (...)'."""
    counts: dict[tuple[str, str], list[int]] = {}
    other: list[str] = []
    for k in kinds:
        m = re.fullmatch(r"(.*? of )(\d+)( repetitions.*)", k)
        if m:
            counts.setdefault((m.group(1), m.group(3)), []).append(int(m.group(2)))
        else:
            other.append(k)
    merged = [f"{head}{min(n)}{'' if min(n) == max(n) else f'–{max(n)}'}{tail}" for (head, tail), n in counts.items()]
    return sorted(merged + other)


def _notes(group: Group, entries: Sequence[Entry]) -> list[str]:
    """What the chart does not draw, with why: invalid, failed, skipped subjects."""
    by: dict[tuple[str, str], list[str]] = {}
    for e in entries:
        if not e.valid:
            word = {"no-figure": "no figure", "error": "failed"}.get(e.status, e.status)
            by.setdefault((word, str(e.reason)), []).append(e.subject)
    return [status_note(", ".join(dict.fromkeys(who)), word, reason) for (word, reason), who in by.items()]


def _footer(fig: Figure, notes: Sequence[str], caption: str | None = None) -> float:
    """Write the notes below the axes; returns the height (inches) they take."""
    lines: list[str] = []
    width = int(fig.get_figwidth() * 12.5)
    if notes:
        lines += _wrap("Not drawn: " + notes[0], width).split("\n")
        for n in notes[1:]:
            lines += _wrap("  " + n, width).split("\n")
    if caption:
        lines += _wrap(caption, width).split("\n")
    if not lines:
        return 0.0
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=8, va="bottom", ha="left", color="#333333", linespacing=1.3)
    return 0.16 * len(lines) + 0.15


def _layout(fig: Figure, footer_in: float, top_in: float = 0.0) -> None:
    h = fig.get_figheight()
    fig.tight_layout(rect=(0, min(0.6, footer_in / h), 1, 1 - min(0.3, top_in / h)))


def _short(text: str, width: int = 32) -> str:
    """``text`` cut in the middle to ``width`` characters (``cilium-…-2``: both ends tell
    names apart): a label longer than that would squeeze the axes off the figure; the tables
    hold the whole name."""
    return text if len(text) <= width else text[:width - width // 2 - 1] + "…" + text[-(width // 2):]


def _label(e: Entry, multi: bool) -> str:
    name = _short(e.subject) + ("\n(host network)" if e.reference and e.subject == "host" else
                                "\n(reference)" if e.reference else "")
    if multi and e.source:
        name += f"\n[{_short(e.source)}]"
    return name


def _ratio_text(e: Entry) -> str:
    r = e.vs_host
    if e.reference:
        return "reference"
    if r is None:
        return "no host reference"
    text = f"{r.estimate:.2f}× host"
    if r.low is not None and r.high is not None:
        text += f" [{r.low:.2f}–{r.high:.2f}]"
    return text


def _title(fig: Figure, ax: Any, group: Group, title: str) -> None:
    ax.set_title(_wrap(title, 90), loc="left", pad=10)
    fig.suptitle(_wrap(group.title, int(fig.get_figwidth() * 13)), x=0.01, ha="left", fontsize=8.5, color="#555555", y=0.995)


def figure_bars(group: Group, metric: Metric) -> Figure | None:
    """Horizontal bars for one metric of one group; None when no entry has a figure."""
    valid = [e for e in metric.entries if e.valid]
    if not valid:
        return None
    plt = _plt()
    with plt.rc_context(STYLE):
        return _bars(plt, group, metric, valid, cpu=metric.chart == "cpu")


def _bars(plt: Any, group: Group, metric: Metric, valid: list[Entry], cpu: bool) -> Figure:
    order = sorted(valid, key=lambda e: e.value or 0.0, reverse=metric.higher_is_better)
    invalid = [e for e in metric.entries if not e.valid]
    rows = order + invalid
    multi = len(group.sources) > 1
    notes = _notes(group, invalid)
    kinds = _merge_kinds({e.interval_kind for e in valid if e.interval and e.interval_kind})
    split = cpu and any((e.details.get("cpu") or {}).get("client_cpu_seconds_per_gbit") is not None for e in valid)
    label_lines = max(len(_label(e, multi).split("\n")) for e in rows)
    height = 1.5 + len(rows) * (0.3 + 0.16 * label_lines)
    fig, ax = plt.subplots(figsize=(WIDTH, height + 0.16 * (len(notes) + len(kinds) + 1) + 0.4))
    ys = list(range(len(rows)))
    best = metric.best
    xmax = 0.0
    for y, e in zip(ys, order):
        value = e.value or 0.0
        colour = HOST if e.reference else BEST if e is best else BAR
        hatch = "///" if e.reference else None
        c = e.details.get("cpu") or {}
        if split and c.get("client_cpu_seconds_per_gbit") is not None and c.get("server_cpu_seconds_per_gbit") is not None:
            client, server = float(c["client_cpu_seconds_per_gbit"]), float(c["server_cpu_seconds_per_gbit"])
            ax.barh(y, client, height=0.62, color=colour, hatch=hatch, edgecolor="#555555", linewidth=0.6, label="_client",
                    gid=f"bar:{e.subject}")
            ax.barh(y, server, left=client, height=0.62, color=HOST if e.reference else SERVER, hatch=hatch, edgecolor="#555555",
                    linewidth=0.6, label="_server", gid=f"bar-server:{e.subject}")
        else:
            ax.barh(y, value, height=0.62, color=colour, hatch=hatch, edgecolor="#555555", linewidth=0.6, gid=f"bar:{e.subject}")
        end = value
        if e.interval:
            lo, hi = e.interval
            ax.errorbar(value, y, xerr=[[max(0.0, value - lo)], [max(0.0, hi - value)]], fmt="none", ecolor="#111111",
                        elinewidth=1.1, capsize=4, gid=f"interval:{e.subject}")
            end = max(end, hi)
        xmax = max(xmax, end)
        text = f"{fmt_number(value, metric.unit)}   {_ratio_text(e)}"
        if e.rank:
            text = f"#{e.rank}  " + text
        if e.warning:
            text += "  ⚠"
        ax.annotate(text, (end, y), xytext=(6, 0), textcoords="offset points", va="center", ha="left", fontsize=9,
                    gid=f"label:{e.subject}")
    for y, e in zip(ys[len(order):], invalid):
        mark = {"invalid": "⚠ invalid", "error": "✗ failed", "skipped": "– skipped"}.get(e.status, "✗ no figure")
        ax.annotate(f"{mark} (no figure; see the notes below)", (0, y), xytext=(4, 0), textcoords="offset points",
                    va="center", ha="left", fontsize=9, color="#8a1c1c" if e.status != "skipped" else "#555555",
                    gid=f"nobar:{e.subject}")
    ax.set_yticks(ys, [_label(e, multi) for e in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # best on top; the rows without a figure inside the axes
    ax.set_xlim(0, (xmax or 1.0) * 1.5)
    ax.grid(axis="y", visible=False)
    better = "higher is better" if metric.higher_is_better else "lower is better"
    ax.set_xlabel(f"{metric.unit} ({better}; linear axis)")
    if split:
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(facecolor=BAR, edgecolor="#555555", label="client"),
                           Patch(facecolor=SERVER, edgecolor="#555555", label="server")],
                  loc="lower right", frameon=False)
    _title(fig, ax, group, metric.title + ("" if group.ranking_allowed else "  (no ranking: see the notes)"))
    caption = []
    if kinds:
        caption.append("Whiskers: " + "; ".join(kinds) + ". Ratios to the host network of the same run, "
                                                          "95 % interval of paired repetitions in brackets.")
    if cpu:
        idle = [e for e in valid if (e.details.get("cpu") or {}).get("idle_corrected")]
        caption.append("CPU: " + ("idle-corrected (busy CPU minus the idle baseline)" if idle else
                                  str((valid[0].details.get("cpu") or {}).get("source") or "as the document measured")))
    if not group.ranking_allowed:
        caption.append(f"No ranking: {group.ranking_note}")
    footer = _footer(fig, notes, " ".join(caption)[:600] or None)
    _layout(fig, footer, 0.1)
    return fig


# --------------------------------------------------------------------------- latency profiles


def _protocol(metric: Metric) -> str:
    return "udp" if "udp" in metric.test.split("-") else "tcp"


def _tick(v: float, _pos: Any = None) -> str:
    return f"{v:,.0f}" if v >= 10 else f"{v:g}"


def profile_panels(group: Group) -> dict[str, list[Metric]]:
    """The latency metrics of a group per protocol: request/response (one in flight) first, then
    the constant-rate levels by load."""
    out: dict[str, list[Metric]] = {}
    for m in group.metrics:
        if m.derived or m.kind not in ("rr", "latency"):
            continue
        if not any(e.details.get("percentiles_us") for e in m.entries if e.valid) and m.kind == "rr":
            continue
        out.setdefault(_protocol(m), []).append(m)

    def key(m: Metric) -> tuple:
        d: dict[str, Any] = next((e.details for e in m.entries if e.valid), {})
        return (m.kind != "rr", d.get("load_percent_of_host_max") or 0.0, d.get("message_bytes") or 0)

    return {p: sorted(ms, key=key) for p, ms in out.items()}


def _panel_title(m: Metric) -> str:
    d: dict[str, Any] = next((e.details for e in m.entries if e.valid), {})
    size = d.get("message_bytes")
    proto = _protocol(m).upper()
    if m.kind == "rr":
        return f"{proto}, {size} B, one message in flight (ping-pong)"
    load = d.get("load_percent_of_host_max")
    target = d.get("target_rate_per_s")
    text = f"{proto}, {size} B, at {load:g} % of the host's max rate" if load is not None else m.title
    if target:
        text += f"\ntarget {fmt_number(target, 'msg/s')} msg/s"
    return text


def _achieved(m: Metric, e: Entry) -> str:
    d = e.details
    if m.kind == "rr":
        rate = d.get("achieved_rate_per_s")
        return f"{fmt_number(rate, 'msg/s')} transactions/s" if rate else ""
    if d.get("achieved_percent_of_target") is not None:
        return f"achieved {fmt_number(d['achieved_rate_per_s'], 'msg/s')}/s ({fmt_number(d['achieved_percent_of_target'])} %)"
    return ""


def figure_profiles(group: Group, protocol: str, metrics: Sequence[Metric]) -> Figure | None:
    """Percentile profiles of one protocol: one panel per load level, one line per subject."""
    if not any(e.valid and e.details.get("percentiles_us") for m in metrics for e in m.entries):
        return None
    drawn = list(metrics)  # a level without a valid figure keeps its panel, saying so
    plt = _plt()
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    with plt.rc_context(STYLE):
        subjects = list(dict.fromkeys((e.source, e.subject) for m in drawn for e in m.entries if e.valid))
        style = {k: i for i, k in enumerate(subjects)}
        ncols = 1 if len(drawn) == 1 else 2
        nrows = math.ceil(len(drawn) / ncols)
        skipped = {(e.subject, e.reason) for m in metrics for e in m.entries if e.status == "skipped" and not e.source}
        notes = [status_note(s, "skipped", str(r)) for s, r in sorted(skipped, key=str)]
        for m in metrics:
            notes += [f"{m.test}: {n}" for n in _notes(group, [e for e in m.entries if e.source or e.valid])]
        notes = list(dict.fromkeys(notes))
        fig_h = 3.9 * nrows + 1.0 + 0.16 * len(notes) + 0.5
        fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH if ncols == 2 else 7.5, fig_h), squeeze=False)
        multi = len(group.sources) > 1
        for ax, m in zip(axes.flat, drawn):
            entries = [e for e in m.entries if e.valid and e.details.get("percentiles_us")]
            pcts = [p for p in PERCENTILES if any(p in e.details["percentiles_us"] for e in entries)]
            for j, e in enumerate(entries):
                i = style[(e.source, e.subject)]
                pts = e.details["percentiles_us"]
                dodge = (j - (len(entries) - 1) / 2) * 0.05
                xs = [k + dodge for k, p in enumerate(pcts) if p in pts]
                ys = [pts[p] for p in pcts if p in pts]
                name = _short(e.subject) + (f" [{_short(e.source)}]" if multi else "")
                extra = _achieved(m, e)
                colour = "#111111" if e.reference else LINES[(i + 1) % len(LINES)]
                ax.plot(xs, ys, linestyle="--" if e.reference else DASHES[i % len(DASHES)],
                        marker=MARKERS[i % len(MARKERS)], markersize=6, linewidth=1.6, color=colour,
                        markerfacecolor="white" if e.reference else colour, markeredgewidth=1.2,
                        label=name + (f" — {extra}" if extra else ""), gid=f"profile:{m.id}:{e.subject}")
            if not entries:
                pcts = list(PERCENTILES)
                ax.text(0.5, 0.5, "no valid figure at this level\n(see the notes below)", transform=ax.transAxes,
                        ha="center", va="center", color="#8a1c1c", fontsize=10, gid=f"empty:{m.id}")
            ax.set_xticks(range(len(pcts)), pcts)
            ax.set_xlim(-0.35, len(pcts) - 0.65)
            ax.set_title(_panel_title(m), fontsize=9.5, loc="left")
            if not entries:
                ax.set_yticks([])
                ax.grid(False)
                continue
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(_tick))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.grid(True, which="major", axis="both")
            ax.set_ylabel("round trip, µs (log)")
            ax.legend(loc="upper left", frameon=True, framealpha=0.9, edgecolor="#cccccc")
        for ax in list(axes.flat)[len(drawn):]:
            ax.set_visible(False)
        fig.suptitle(_wrap(f"{protocol.upper()} latency percentiles per load level — {group.title}",
                           int(fig.get_figwidth() * 11)), x=0.01,
                     ha="left", fontsize=10, fontweight="bold", y=0.995)
        caption = ("Each line: one subject's median over its valid repetitions of each percentile; the host network "
                   "dashed with open markers. Load levels are fractions of the host's max message rate, "
                   "calibrated once per run.")
        footer = _footer(fig, notes, caption)
        _layout(fig, footer, 0.45)
        return fig


# --------------------------------------------------------------------------- writing


def _file_name(metric_id: str, taken: set[str] | None = None) -> str:
    """``tcp/cpu`` -> ``tcp-cpu.png``: letters, digits, ``.``, ``_`` and ``-`` only, at most 100
    characters, never hidden or a path; ``-2``, ``-3``... when ``taken`` (lower case: one folder
    on a case-insensitive file system too) already holds the name."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", metric_id)[:100].strip("-.") or "chart"
    name, n = base, 1
    while taken is not None and name.lower() in taken:
        n += 1
        name = f"{base}-{n}"
    if taken is not None:
        taken.add(name.lower())
    return name + ".png"


def _single_subject(group: Group) -> bool:
    return len({(e.source, e.subject) for m in group.metrics for e in m.entries if e.valid}) == 1


def figure_overview(group: Group, metrics: Sequence[Metric], title: str) -> Figure | None:
    """A group with one subject (a knb run): its figures of one unit, one bar per metric (the
    environment's own figures side by side; nothing from elsewhere on the axis)."""
    rows = [(m, e) for m in metrics for e in m.entries if e.valid]
    invalid = [(m, e) for m in metrics for e in m.entries if not e.valid]
    if not rows:
        return None
    plt = _plt()
    with plt.rc_context(STYLE):
        unit = rows[0][0].unit
        notes = list(dict.fromkeys(f"{m.test}: {n}" for m, e in invalid for n in _notes(group, [e])))
        fig, ax = plt.subplots(figsize=(WIDTH, 2.2 + 0.55 * (len(rows) + len(invalid)) + 0.16 * len(notes)))
        xmax = max(e.value or 0.0 for _, e in rows)
        for y, (m, e) in enumerate(rows):
            ax.barh(y, e.value or 0.0, height=0.62, color=BAR, edgecolor="#555555", linewidth=0.6, gid=f"bar:{m.id}")
            text = fmt_number(e.value, unit)
            cpu = e.details.get("cpu") or {}
            if m.chart == "cpu" and cpu.get("idle_corrected") and cpu.get("client_busy_above_idle_percent") is not None:
                text += (f"   client {fmt_number(cpu['client_busy_above_idle_percent'])} %, server "
                         f"{fmt_number(cpu.get('server_busy_above_idle_percent'))} % busy above idle")
            elif m.chart == "cpu" and cpu.get("client_busy_percent") is not None:
                text += (f"   client {fmt_number(cpu['client_busy_percent'])} %, server "
                         f"{fmt_number(cpu.get('server_busy_percent'))} % busy (not idle-corrected)")
            ax.annotate(text, (e.value or 0.0, y), xytext=(6, 0), textcoords="offset points", va="center", fontsize=9)
        for y, (m, e) in enumerate(invalid, len(rows)):
            ax.annotate(f"{e.status} (no figure; see the notes below)", (0, y), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=9, color="#8a1c1c", gid=f"nobar:{m.id}")
        labels = [f"{m.test}\n({next((x.path for x in m.entries if x.path), '')})" for m, _ in rows + invalid]
        ax.set_yticks(range(len(rows) + len(invalid)), labels)
        ax.set_ylim(len(rows) + len(invalid) - 0.5, -0.5)
        ax.set_xlim(0, (xmax or 1.0) * 1.6)
        ax.grid(axis="y", visible=False)
        better = "higher is better" if rows[0][0].higher_is_better else "lower is better"
        ax.set_xlabel(f"{unit} ({better}; linear axis)")
        subject = _short(rows[0][1].subject, 60)
        _title(fig, ax, group, f"{title}: {subject}")
        caption = "One run, one repetition per test: no interval; no host-network reference in this run."
        if rows[0][0].chart == "cpu":
            idle = any((e.details.get("cpu") or {}).get("idle_corrected") for _, e in rows)
            caption += (" CPU: busy share of each node above its share in knb's idle test, per Gbit/s." if idle else
                        " CPU: busy share of each node as knb sampled it (not idle-corrected).")
        _layout(fig, _footer(fig, notes, caption), 0.1)
        return fig


def group_figures(group: Group) -> Iterator[tuple[str, Figure]]:
    """(name, figure) of every chart of one group (name: the metric id, ``throughput`` and
    ``cpu`` for a group of one subject, or ``latency-profile-<protocol>``)."""
    single = _single_subject(group)
    if single:
        for name, title, keep in (
                ("throughput", "Throughput", lambda m: m.chart == "bars" and m.unit == "Gbit/s"),
                ("cpu", "CPU per Gbit/s (busy % of each node per Gbit/s where the CPU count is unknown)",
                 lambda m: m.chart == "cpu")):
            chosen = [m for m in group.metrics if keep(m)]
            units = list(dict.fromkeys(m.unit for m in chosen))
            for unit in units:
                fig = figure_overview(group, [m for m in chosen if m.unit == unit], title)
                if fig is not None:
                    yield name if len(units) == 1 else f"{name}-{unit.replace('/', '-').replace(' ', '')}", fig
    for m in group.metrics:
        if single and ((m.chart == "bars" and m.unit == "Gbit/s") or m.chart == "cpu"):
            continue
        if m.chart in ("bars", "cpu"):
            fig = figure_bars(group, m)
            if fig is not None:
                yield m.id, fig
    for protocol, metrics in profile_panels(group).items():
        fig = figure_profiles(group, protocol, metrics)
        if fig is not None:
            yield f"latency-profile-{protocol}", fig


def write_charts(comp: Comparison, directory: Path) -> dict[str, dict[str, Path]]:
    """Every chart as PNG in ``directory/<group id>/``; returns {group id: {name: path}}."""
    plt = _plt()
    out: dict[str, dict[str, Path]] = {}
    for g in comp.groups:
        taken: set[str] = set()
        for name, fig in group_figures(g):
            path = directory / g.id / _file_name(name, taken)
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=DPI)
            plt.close(fig)
            out.setdefault(g.id, {})[name] = path
    return out
