"""The comparison's charts (issue 14), asserted on their matplotlib artists: one environment per
figure, bars sorted by result with the interval and the ratio to the host, no bar for what has no
valid figure (listed with its reason), latency as percentile profiles on a log axis."""

from __future__ import annotations

import pytest
from report_docs import knb_doc, lab_doc

from cnibench.report import charts, comparison
from cnibench.report.sources import Source

matplotlib = pytest.importorskip("matplotlib")


def _group(*docs):
    return comparison.build([Source(d) for d in docs]).groups


def _texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


def _bars(ax, prefix="bar:"):
    return [p for p in ax.patches if (p.get_gid() or "").startswith(prefix)]


def test_bars_are_sorted_with_intervals_and_ratios_and_nothing_for_invalid():
    doc = lab_doc()
    vx = next(s for s in doc["subjects"] if s["name"] == "vxlan")
    tcp = next(t for t in vx["tests"] if t["name"] == "tcp")
    tcp.update(status="invalid", validity={**tcp["validity"], "status": "invalid", "reason": "every repetition busy"})
    (g,) = _group(doc)
    metric = g.metric("tcp")
    fig = charts.figure_bars(g, metric)
    ax = fig.axes[0]
    bars = _bars(ax)
    assert sorted(p.get_gid() for p in bars) == ["bar:host", "bar:host-gw"]  # vxlan (invalid), ipip: no bar
    assert [t.get_text().split("\n")[0] for t in ax.get_yticklabels()] == ["host", "host-gw", "vxlan", "ipip"]
    widths = {p.get_gid(): p.get_width() for p in bars}
    assert widths["bar:host"] > widths["bar:host-gw"]  # sorted by result, best on top
    assert bars[0].get_hatch() == "///"  # the host network is the hatched reference
    labels = {a.get_gid(): a.get_text() for a in ax.texts}
    assert "× host [" in labels["label:host-gw"] and labels["label:host"].endswith("reference")
    assert "invalid" in labels["nobar:vxlan"] and "skipped" in labels["nobar:ipip"]
    whiskers = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(whiskers) == 2  # one interval per drawn bar
    text = _texts(fig)
    assert "vxlan: invalid: every repetition busy" in text and "CONFIG_NET_IPIP" in text
    assert g.title.split(" · ")[0] in text  # the environment is named on the figure
    assert ax.get_xscale() == "linear" and ax.get_xlim()[0] == 0


def test_cpu_bars_split_client_and_server_on_a_linear_axis():
    (g,) = _group(lab_doc())
    fig = charts.figure_bars(g, g.metric("cpu-tcp"))
    ax = fig.axes[0]
    client, server = _bars(ax, "bar:"), _bars(ax, "bar-server:")
    assert len(client) == len(server) == 3
    for c, s in zip(client, server):
        assert s.get_x() == pytest.approx(c.get_width())  # stacked: server after client
    assert ax.get_xscale() == "linear" and [t.get_text() for t in ax.get_legend().get_texts()] == ["client", "server"]


def test_latency_profiles_per_load_level_with_the_load_achieved():
    (g,) = _group(lab_doc())
    panels = charts.profile_panels(g)
    assert set(panels) == {"tcp", "udp"}
    fig = charts.figure_profiles(g, "tcp", panels["tcp"])
    axes = [a for a in fig.axes if a.get_visible()]
    assert len(axes) == 3  # ping-pong 14 B, 1024 B, constant rate at 30 %
    under_load = axes[-1]
    assert under_load.get_yscale() == "log"
    assert [t.get_text() for t in under_load.get_xticklabels()] == ["p50", "p90", "p99", "p99.9"]
    lines = [ln for ln in under_load.get_lines() if (ln.get_gid() or "").startswith("profile:")]
    assert len(lines) == 3 and all(len(ln.get_xdata()) == 4 for ln in lines)
    legend = [t.get_text() for t in under_load.get_legend().get_texts()]
    assert all("achieved" in t and "99.9 %" in t for t in legend)
    assert "target 162,851 msg/s" in under_load.get_title(loc="left")


def test_an_invalid_load_level_keeps_its_panel_without_lines():
    (g,) = _group(lab_doc(invalid_latency=True))
    fig = charts.figure_profiles(g, "tcp", charts.profile_panels(g)["tcp"])
    empty = [a for a in fig.axes if any((t.get_gid() or "").startswith("empty:") for t in a.texts)]
    assert len(empty) == 1 and not empty[0].get_lines()
    assert "load generator behind" in _texts(fig)


def test_a_knb_run_gets_its_own_figures_and_never_shares_an_axis(tmp_path):
    groups = _group(lab_doc(), knb_doc("lab-run1.json"), knb_doc("lab-run2-vxlan.json"))
    comp = comparison.Comparison(sources=[s for g in groups for s in g.sources], groups=groups)
    written = charts.write_charts(comp, tmp_path)
    assert set(written) == {g.id for g in groups}
    knb = [g for g in groups if g.origin == "knb"]
    for g in knb:
        assert set(written[g.id]) == {"throughput", "cpu"}
        figs = dict(charts.group_figures(g))
        ax = figs["throughput"].axes[0]
        assert len(_bars(ax)) == 4 and len({e.source for m in g.metrics for e in m.entries}) == 1
        # both reports have knb's idle test: the CPU figure is above idle, and the chart says so
        assert "above its share in knb's idle test" in " ".join(_texts(figs["cpu"]).split())
        assert "busy above idle" in _texts(figs["cpu"]) and "not idle-corrected" not in _texts(figs["cpu"])
    for g in groups:
        for path in written[g.id].values():
            assert path.parent.name == g.id and path.read_bytes()[:4] == b"\x89PNG"


def test_a_knb_run_without_its_idle_test_says_not_idle_corrected():
    doc = knb_doc("lab-run1.json")
    for t in doc["subjects"][0]["tests"]:
        t["cpu"] = {k: v for k, v in t["cpu"].items() if "above_idle" not in k}
        t["cpu"].update(idle_corrected=False, idle_correction="not possible: the report has no idle test")
    (g,) = _group(doc)
    figs = dict(charts.group_figures(g))
    assert "not idle-corrected" in _texts(figs["cpu"]) and "above idle" not in _texts(figs["cpu"])


def test_whisker_captions_of_different_repetition_counts_are_said_once():
    assert charts._merge_kinds({"min–max of 3 repetitions (too few for a 95 % CI)",
                                "min–max of 4 repetitions (too few for a 95 % CI)", "95 % CI of the median"}) == \
        ["95 % CI of the median", "min–max of 3–4 repetitions (too few for a 95 % CI)"]
    assert charts._merge_kinds({"min–max of 4 repetitions (too few for a 95 % CI)"}) == \
        ["min–max of 4 repetitions (too few for a 95 % CI)"]
