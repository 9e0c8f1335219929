"""Reports of one result document: terminal table (Rich), Markdown, PNG chart.

Used by the lab; the matrix runner and ``cnibench report`` reuse it. Every figure is shown
with its unit; a ratio to the reference with its 95 % confidence interval; an invalid test
as ``invalid`` with its reason, never as a number. Version 1 documents are labelled as such.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from rich.table import Table

from cnibench import results

THROUGHPUT_TESTS = ("tcp", "udp", "tcp-service")
AXIS_LIMIT = 8.0  # the chart's ratio axis spans 1/8 to 8


def _test(subject: dict, name: str) -> dict | None:
    return next((t for t in subject["tests"] if t["name"] == name), None)


def test_names(doc: dict) -> list[str]:
    names: list[str] = []
    for s in doc["subjects"]:
        for t in s["tests"]:
            if t["name"] not in names:
                names.append(t["name"])
    return names


def latency_tests(doc: dict) -> list[str]:
    return [n for n in test_names(doc) if any((_test(s, n) or {}).get("kind") == "latency" for s in doc["subjects"])]


def _num(value: float, unit: str = "") -> str:
    if unit == "bytes" or abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio_text(test: dict) -> str:
    """``1.48x [1.41-1.55]`` (the interval is 95 %), ``1.48x (n=1, no interval)`` or ``""``."""
    r = test.get("ratio")
    if not r or r.get("estimate") is None:
        eff = test.get("efficiency")
        return f"{eff:.2f}x (no interval)" if eff is not None else ""
    if r.get("low") is None:
        return f"{r['estimate']:.2f}x (n={r['n']}, no interval)"
    return f"{r['estimate']:.2f}x [{r['low']:.2f}-{r['high']:.2f}]"


def cell(test: dict | None, notes: list[str], *, rich: bool = True, reference: bool = False) -> str:
    """One test of one subject: median with unit, ratio with interval, or the reason it has none."""
    if test is None:
        return ""
    dim, red, yellow, end = ("[dim]", "[red]", "[yellow]", "[/]") if rich else ("", "", "", "")

    def note(text: str) -> int:
        if text not in notes:
            notes.append(text)
        return notes.index(text) + 1

    if test["status"] == "skipped":
        return f"{dim}skipped ({note(test.get('skipped_reason') or '')}){end}"
    if test["status"] in ("error", "invalid"):
        reason = (test.get("validity") or {}).get("reason") or test.get("error") or test["status"]
        return f"{red if test['status'] == 'error' else yellow}{test['status']} ({note(reason)}){end}"
    st = test["stats"]
    if st["median"] is None:
        return f"{red}no figure{end}"
    text = f"{_num(st['median'], test['unit'])}"
    ratio = "" if reference else ratio_text(test)
    if ratio:
        text += f" {dim}{ratio}{end}"
    partial = (test.get("validity") or {}).get("reason")
    if partial:
        text += f" {yellow}({note(partial)}){end}"
    for caveat in test.get("caveats") or ():  # what else the figure measures (e.g. a per-flow limit)
        text += f" {yellow}({note(caveat)}){end}"
    return text


def render_table(doc: dict[str, Any]) -> Table:
    """Rows are tests (with unit and what the figure is), columns are subjects: the median,
    then the ratio to the reference with its 95 % interval; notes explain every gap."""
    params = doc["parameters"]
    reps = params.get("repetitions") or {}
    done = reps.get("done", params.get("repeat"))
    how = {"converged": "intervals within target", "cap": "repetition cap reached",
           "not-adaptive": "fixed"}.get(reps.get("stopped", ""), reps.get("stopped", ""))
    table = Table(title=f"cnibench {doc['origin']} run {doc['run_id']}: {done} repetitions ({how}); "
                        f"median, ratio to {doc['reference']} [95 % interval]; {results.schema_label(doc)}")
    subjects = doc["subjects"]
    table.add_column("test")
    table.add_column("unit")
    for s in subjects:
        table.add_column(s["name"] if s["status"] == "ok" else f"{s['name']} ({s['status']})")
    notes: list[str] = []
    for s in subjects:
        if s["status"] != "ok":
            reason = s.get("error") or s.get("skipped_reason") or s["status"]
            notes.append(f"{s['name']}: {reason}")
    for name in test_names(doc):
        first = next(t for s in subjects if (t := _test(s, name)))
        label = name + (" (closed loop)" if first.get("closed_loop") else "")
        table.add_row(label, first["unit"], *[cell(_test(s, name), notes, reference=s["name"] == doc["reference"])
                                              for s in subjects])
    extra = doc.get("extra") or {}
    caption = [f"{i}. {n}" for i, n in enumerate(notes, 1)]
    cont = extra.get("contamination")
    if cont:
        caption.append(("[yellow]" if cont.get("contaminated") else "[green]") + cont["verdict"] + "[/]")
    ranking = extra.get("ranking")
    if ranking and not ranking.get("allowed"):
        caption.append(f"[bold red]no ranking: {ranking.get('reason')}[/]")
    if caption:
        table.caption = "\n".join(caption)
        table.caption_justify = "left"
    return table


def markdown(doc: dict) -> str:
    """The same table as Markdown (for design reviews)."""
    subjects = doc["subjects"]
    notes: list[str] = []
    lines = [f"cnibench {doc['origin']} run `{doc['run_id']}` ({results.schema_label(doc)}): median, "
             f"ratio to {doc['reference']} with its 95 % confidence interval.", "",
             "| test | unit | " + " | ".join(s["name"] for s in subjects) + " |",
             "|---|---|" + "---|" * len(subjects)]
    for name in test_names(doc):
        first = next(t for s in subjects if (t := _test(s, name)))
        cells = [cell(_test(s, name), notes, rich=False, reference=s["name"] == doc["reference"]) for s in subjects]
        lines.append(f"| {name} | {first['unit']} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"{i}. {n}" for i, n in enumerate(notes, 1)]
    cont = (doc.get("extra") or {}).get("contamination")
    if cont:
        lines.append(f"\n{cont['verdict']}")
    return "\n".join(lines) + "\n"


def _short_reason(reason: str | None) -> str:
    """The first clause of a reason (the table's notes have it whole)."""
    text = str(reason or "")
    for sep in ("; ", " (Linux", " (errno"):
        text = text.split(sep)[0]
    return textwrap.shorten(text, 110, placeholder=" ...")


def write_chart(doc: dict[str, Any], path: str | Path) -> Path:
    """PNG of :func:`figure_chart`."""
    import matplotlib.pyplot as plt

    fig = figure_chart(doc)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def figure_chart(doc: dict[str, Any]) -> Any:
    """Every test's ratio to the reference, per subject, with its 95 % interval (log axis;
    right of 1 is better), the absolute median beside each point and the reference's under
    each test name. Tests and subjects without a valid ratio are listed with why, not drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = doc.get("reference")
    subjects = [s for s in doc["subjects"] if s["status"] == "ok" and s["name"] != ref]
    ref_subject = next((s for s in doc["subjects"] if s["name"] == ref), None)
    names = [n for n in test_names(doc) if n != "mtu"]
    fig, ax = plt.subplots(figsize=(10, 0.62 * len(names) + 3.2))
    markers = "osD^v<>"
    missing: list[str] = []
    for k, s in enumerate(subjects):
        ys, xs, lo, hi = [], [], [], []
        for i, name in enumerate(names):
            t = _test(s, name)
            r = (t or {}).get("ratio") or {}
            if not t or t["status"] != "ok" or r.get("estimate") is None:
                if t is not None:
                    why = (t.get("validity") or {}).get("reason") or t.get("error") or t.get("skipped_reason")
                    missing.append(f"{s['name']} {name}: {t['status'] if t['status'] != 'ok' else 'no ratio'}"
                                   + (f" ({_short_reason(why)})" if why else ""))
                continue
            # oriented so that right of 1 is better: invert lower-is-better ratios
            flip = not t.get("higher_is_better", True)
            est = 1 / r["estimate"] if flip else r["estimate"]
            low = r.get("low")
            high = r.get("high")
            if low is not None and high is not None:
                low, high = (1 / high, 1 / low) if flip else (low, high)
            ys.append(i + (k - (len(subjects) - 1) / 2) * 0.25)
            est = min(max(est, 1 / AXIS_LIMIT), AXIS_LIMIT)
            xs.append(est)
            # an interval wider than the axis is drawn to its edge (the table has the numbers)
            lo.append(est - max(low, 1 / AXIS_LIMIT) if low is not None else 0)
            hi.append(min(high, AXIS_LIMIT) - est if high is not None else 0)
            # the absolute figure beside its ratio: one vocabulary with the table and the report
            ax.annotate(f"{_num(t['stats']['median'], t['unit'])} {t['unit']}", (est, ys[-1]), xytext=(0, 4.5),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7, color="#333333")
        if xs:
            ax.errorbar(xs, ys, xerr=[lo, hi], fmt=markers[k % len(markers)], capsize=3, label=s["name"])
    ax.axvline(1.0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlim(1 / AXIS_LIMIT / 1.2, AXIS_LIMIT * 1.2)
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ticks = [0.125, 0.25, 0.5, 0.8, 1.0, 1.25, 2.0, 4.0, 8.0]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticklabels([f"{t:g}x" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(axis="x", alpha=0.3)
    def tick(name: str) -> str:
        t = _test(ref_subject, name) if ref_subject else None
        if not t:
            return name
        if t["status"] == "ok" and (t.get("stats") or {}).get("median") is not None:
            return f"{name}\n{ref} {_num(t['stats']['median'], t['unit'])} {t['unit']}"
        return f"{name}\n{ref}: {t['status']}"

    ax.set_yticks(range(len(names)), [tick(n) for n in names], fontsize=8.5)
    ax.invert_yaxis()
    ax.set_xlabel(f"relative to {ref} (right of 1 = better; latency ratios inverted); 95 % interval, "
                  f"clipped at 1/{AXIS_LIMIT:g} and {AXIS_LIMIT:g}")
    ax.legend(loc="lower right", fontsize="small")
    reps = (doc["parameters"].get("repetitions") or {}).get("done", doc["parameters"].get("repeat"))
    title = (f"cnibench {doc['origin']} {doc['run_id']} - {doc['environment'].get('hostname', '')} "
             f"(Linux {doc['environment'].get('kernel', '')}), {reps} paired repetitions")
    ranking = (doc.get("extra") or {}).get("ranking") or {}
    if ranking and not ranking.get("allowed"):
        title += "\nNO RANKING: " + str(ranking.get("reason"))
    ax.set_title("\n".join(textwrap.fill(line, 110) for line in title.split("\n")), fontsize="medium")
    skipped = [f"{s['name']}: {s['status']}"
               + (f" ({_short_reason(s.get('skipped_reason') or s.get('error'))})"
                  if s.get("skipped_reason") or s.get("error") else "")
               for s in doc["subjects"] if s["status"] != "ok"]
    lines = skipped + list(dict.fromkeys(missing))
    if len(lines) > 10:
        lines = lines[:9] + [f"... and {len(lines) - 9} more (see the table)"]
    foot = "\n".join(textwrap.fill(line, 150, subsequent_indent="    ") for line in ["not drawn:", *lines]) \
        if lines else ""
    if foot:
        fig.text(0.01, 0.01, foot, fontsize=7.5, va="bottom", ha="left")
    foot_in = (foot.count("\n") + 1) * 0.16 + 0.2 if foot else 0.0
    fig.set_figheight(fig.get_figheight() + foot_in)
    fig.tight_layout(rect=(0, foot_in / fig.get_figheight(), 1, 1))
    return fig


def write_json(doc: dict[str, Any], path: str | Path) -> Path:
    return results.write_json(doc, path)
