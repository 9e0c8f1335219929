#!/usr/bin/env python3
"""Run the default lab N times and say how stable its answers are (a benchmark, not a test).

For every metric: the median of each datapath in each run, the CV of those medians across
runs, the ratio to host with its 95 % interval per run, and whether the ordering of the
datapaths held in every run. The acceptance question of issue 12 is printed last: did every
run order the TCP request/response p50 as host < host-gw < vxlan with every ratio interval
excluding 1.0?

Usage (root): .venv/bin/python scripts/lab-stability.py [--runs 3] [--out DIR] [-- extra lab args]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ORDER = ("host", "host-gw", "vxlan")
KEY_METRIC = "tcp-rr-14B"


def run_lab(out: Path, extra: list[str]) -> dict:
    before = set(out.glob("lab-*.json"))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "cnibench.cli", "lab", "--out", str(out), "--no-chart", *extra],
                          capture_output=True, text=True)
    new = sorted(set(out.glob("lab-*.json")) - before)
    if not new:
        sys.exit(f"lab run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    doc = json.loads(new[-1].read_text())
    doc["_wall_s"] = time.monotonic() - t0
    doc["_exit"] = proc.returncode
    return doc


def tests_of(doc: dict) -> dict[str, dict[str, dict]]:
    return {s["name"]: {t["name"]: t for t in s["tests"]} for s in doc["subjects"] if s["status"] == "ok"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("results/stability"))
    ap.add_argument("extra", nargs="*", help="extra `cnibench lab` arguments (after --)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    docs = []
    for i in range(args.runs):
        doc = run_lab(args.out, args.extra)
        cont = (doc.get("extra") or {}).get("contamination") or {}
        print(f"run {i + 1}/{args.runs}: {doc['run_id']} in {doc['_wall_s']:.0f} s, exit {doc['_exit']}, "
              f"{doc['parameters']['repetitions']['done']} repetitions ({doc['parameters']['repetitions']['stopped']}), "
              f"{cont.get('contaminated', '?')}/{cont.get('repetitions', '?')} contaminated", flush=True)
        docs.append(doc)
    per_run = [tests_of(d) for d in docs]
    names = [n for n in per_run[0].get("host", {})]
    print()
    print(f"{'metric':22s} {'datapath':9s} {'medians per run':34s} {'CV':>6s}  ratio to host [95 % interval] per run")
    held_all = {}
    for name in names:
        first = per_run[0]["host"][name]
        orders = []
        for dp in ORDER:
            meds = [r.get(dp, {}).get(name, {}).get("stats", {}).get("median") for r in per_run]
            good = [m for m in meds if m is not None]
            cv = statistics.stdev(good) / statistics.fmean(good) if len(good) > 1 and statistics.fmean(good) else None
            ratios = []
            for r in per_run:
                t = r.get(dp, {}).get(name) or {}
                iv = t.get("ratio") or {}
                if t.get("status") != "ok":
                    ratios.append(t.get("status", "-"))
                elif iv.get("low") is not None:
                    ratios.append(f"{iv['estimate']:.2f} [{iv['low']:.2f}-{iv['high']:.2f}]")
                elif dp == "host":
                    ratios.append("ref")
                else:
                    ratios.append("no interval")
            med_txt = ", ".join("invalid" if m is None else (f"{m:,.0f}" if abs(m) >= 1000 else f"{m:.4g}") for m in meds)
            cv_txt = f"{100 * cv:.1f}%" if cv is not None else "-"
            print(f"{name:22s} {dp:9s} {med_txt:34s} {cv_txt:>6s}  {'; '.join(ratios)}")
        for r in per_run:
            vals = [r.get(dp, {}).get(name, {}).get("stats", {}).get("median") for dp in ORDER]
            if any(v is None for v in vals):
                orders.append(None)
                continue
            better_first = sorted(ORDER, key=lambda dp: r[dp][name]["stats"]["median"],
                                  reverse=first.get("higher_is_better", True))
            orders.append(tuple(better_first) == ORDER)
        held = "held in every run" if all(o is True for o in orders) else \
            f"held in {sum(1 for o in orders if o)}/{len(orders)} runs" + \
            (f" ({sum(1 for o in orders if o is None)} without a figure)" if None in orders else "")
        held_all[name] = all(o is True for o in orders)
        print(f"{'':22s} ordering {' > '.join(ORDER)} (best first): {held}")
    print()
    ok = True
    for r in per_run:
        for dp in ORDER[1:]:
            iv = (r.get(dp, {}).get(KEY_METRIC) or {}).get("ratio") or {}
            if iv.get("low") is None or not (iv["low"] > 1.0 or iv["high"] < 1.0):
                ok = False
    verdict = "YES" if ok and held_all.get(KEY_METRIC) else "NO"
    print(f"acceptance: {KEY_METRIC} p50 ordered host < host-gw < vxlan in every run with every interval "
          f"excluding 1.0: {verdict}")
    return 0 if verdict == "YES" else 1


if __name__ == "__main__":
    sys.exit(main())
