"""Reports of a result document (schema v1): terminal table (Rich), PNG chart, JSON.

Initial version, used by the lab; the matrix runner and ``cnibench report`` reuse it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from cnibench import results

THROUGHPUT_TESTS = ("tcp", "udp", "tcp-service")


def _test(subject: dict, name: str) -> dict | None:
    return next((t for t in subject["tests"] if t["name"] == name), None)


def _fmt_cell(test: dict | None, digits: int = 2, with_eff: bool = True) -> str:
    if test is None:
        return ""
    if test["status"] == "skipped":
        return "[dim]skipped[/]"
    st = test["stats"]
    if st["median"] is None:
        return "[red]error[/]"
    text = f"{st['median']:.{digits}f}"
    if with_eff and test.get("efficiency") is not None:
        text += f" [dim]({test['efficiency']:.2f}x)[/]"
    if st.get("cv") is not None:
        text += f" [dim]cv {100 * st['cv']:.1f}%[/]"
    return text


def latency_tests(doc: dict) -> list[str]:
    names: list[str] = []
    for s in doc["subjects"]:
        for t in s["tests"]:
            if t["kind"] == "latency" and t["name"] not in names:
                names.append(t["name"])
    return names


def render_table(doc: dict[str, Any]) -> Table:
    """One row per subject: throughputs (median, ratio to the reference, CV), path MTU,
    CPU cost, p99 latencies; skipped and refused subjects show their reason."""
    lat = latency_tests(doc)
    table = Table(title=f"cnibench {doc['origin']} run {doc['run_id']} "
                        f"({doc['parameters']['repeat']} x {doc['parameters']['duration_s']:g}s; "
                        f"ratio to {doc['reference']} in parentheses)")
    table.add_column("datapath")
    table.add_column("path")
    table.add_column("TCP Gbit/s")
    table.add_column("UDP Gbit/s")
    table.add_column("svc TCP Gbit/s")
    table.add_column("MTU", justify="right")
    table.add_column("CPU s/Gbit (TCP)", justify="right")
    for name in lat:
        table.add_column(f"p99 ms {name.removeprefix('latency-')}")
    notes: list[str] = []
    for s in doc["subjects"]:
        if s["status"] != "ok":
            reason = s.get("error") or s.get("skipped_reason") or ""
            style = "yellow" if s["status"] == "skipped" else "red"
            prefix = "" if reason.startswith(s["name"]) else f"{s['name']}: "
            notes.append(f"[{style}]{prefix}{reason}[/]")
            table.add_row(s["name"], f"[{style}]{s['status']}[/]", f"[{style}]see note {len(notes)}[/]",
                          *[""] * (4 + len(lat)))
            continue
        tcp = _test(s, "tcp")
        cpu = tcp.get("cpu") if tcp else None
        table.add_row(
            s["name"],
            tcp["path"] if tcp else "",
            _fmt_cell(tcp),
            _fmt_cell(_test(s, "udp")),
            _fmt_cell(_test(s, "tcp-service")),
            str(s.get("observed_mtu") or ""),
            f"{cpu['cpu_seconds_per_gbit']:.3f}" if cpu and cpu.get("cpu_seconds_per_gbit") else "",
            *[_fmt_cell(_test(s, n)) for n in lat],
        )
    if notes:
        table.caption = "\n".join(f"{i}. {n}" for i, n in enumerate(notes, 1))
        table.caption_justify = "left"
    return table


def efficiency_rows(doc: dict) -> list[dict[str, Any]]:
    """Flat rows (subject, test, median, unit, efficiency, cv) for Markdown/CSV output."""
    rows = []
    for s in doc["subjects"]:
        for t in s["tests"]:
            rows.append({"subject": s["name"], "test": t["name"], "status": t["status"],
                         "median": t["stats"]["median"], "unit": t["unit"], "efficiency": t.get("efficiency"),
                         "cv": t["stats"].get("cv")})
    return rows


def markdown(doc: dict) -> str:
    lines = ["| subject | test | median | unit | ratio to reference | CV |", "|---|---|---|---|---|---|"]
    for r in efficiency_rows(doc):
        med = "" if r["median"] is None else f"{r['median']:.3f}"
        eff = "" if r["efficiency"] is None else f"{r['efficiency']:.3f}"
        cv = "" if r["cv"] is None else f"{100 * r['cv']:.1f}%"
        lines.append(f"| {r['subject']} | {r['test']} | {med} | {r['unit']} | {eff} | {cv} |")
    return "\n".join(lines) + "\n"


def write_chart(doc: dict[str, Any], path: str | Path) -> Path:
    """PNG: throughput per subject (median, min-max bars) and p99 latency ratio to the reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    subjects = [s for s in doc["subjects"] if s["status"] == "ok"]
    lat = latency_tests(doc)
    fig, axes = plt.subplots(1, 2 if lat else 1, figsize=(12 if lat else 7, 4.5), squeeze=False)
    ax = axes[0][0]
    width = 0.8 / len(THROUGHPUT_TESTS)
    for k, tname in enumerate(THROUGHPUT_TESTS):
        xs, meds, lo, hi = [], [], [], []
        for i, s in enumerate(subjects):
            t = _test(s, tname)
            if not t or t["stats"]["median"] is None:
                continue
            st = t["stats"]
            xs.append(i + (k - (len(THROUGHPUT_TESTS) - 1) / 2) * width)
            meds.append(st["median"])
            lo.append(st["median"] - st["min"])
            hi.append(st["max"] - st["median"])
        if xs:
            ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, label=tname)
    ax.set_xticks(range(len(subjects)), [s["name"] for s in subjects])
    ax.set_ylabel("Gbit/s (median, min-max)")
    ax.set_title("Throughput")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(THROUGHPUT_TESTS), fontsize="small")
    if lat:
        ax2 = axes[0][1]
        width = 0.8 / len(lat)
        for k, tname in enumerate(lat):
            xs, vals = [], []
            for i, s in enumerate(subjects):
                t = _test(s, tname)
                if t and t.get("efficiency") is not None:
                    xs.append(i + (k - (len(lat) - 1) / 2) * width)
                    vals.append(t["efficiency"])
            if xs:
                ax2.bar(xs, vals, width, label=tname.removeprefix("latency-"))
        ax2.axhline(1.0, color="grey", linewidth=0.8)
        ax2.set_xticks(range(len(subjects)), [s["name"] for s in subjects])
        ax2.set_ylabel(f"p99 latency / {doc['reference']} p99")
        ax2.set_title("Latency under constant load (lower is better)")
        ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=max(1, len(lat)), fontsize="small")
    fig.suptitle(f"cnibench {doc['origin']} {doc['run_id']} - {doc['environment'].get('hostname', '')} "
                 f"(Linux {doc['environment'].get('kernel', '')})")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_json(doc: dict[str, Any], path: str | Path) -> Path:
    return results.write_json(doc, path)
