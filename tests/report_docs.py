"""Result documents for the report tests (not a test module).

``lab_doc`` builds a schema-v2 lab document the way the lab runner does (``results.new_test``,
one record per repetition, ``results.finalize``), with the figures of a real run on the
project's 2-core VM (``cnibench lab``, run e9c4ef: host 16.5 Gbit/s TCP, vxlan 12.4, p50
round trip 15.6 / 27.5 µs, CPU 0.076 / 0.101 s/Gbit) spread over four repetitions.
"""

from __future__ import annotations

import random
from pathlib import Path

from cnibench import knb, results

DATA = Path(__file__).parent / "data"
KNB = DATA / "knb"

#: subject -> scale of each figure against the host (throughput: x; latency/CPU: x)
SUBJECTS = {"host": (1.0, 1.0, 1.0), "host-gw": (0.93, 1.12, 1.07), "vxlan": (0.75, 1.77, 1.33)}
HOST = {"tcp": 16.52, "udp": 0.497, "tcp-service": 16.52, "tcp-rr-14B": 15.573, "tcp-rr-1024B": 15.733,
        "udp-rr-14B": 14.401, "tcp-crr": 11682.2, "http-350B": 46127.9, "latency-tcp-30pct": 41.2,
        "latency-udp-30pct": 38.5, "cpu-tcp": 0.0760, "mtu": 1500}
TARGET = {"tcp": 162851.1, "udp": 38833.5}


def _rep(i: int, value: float, **extra) -> dict:
    return {"index": i, "value": value, "valid": True, "invalid_reason": None, "contaminated": False, **extra}


def knb_doc(name: str, **kw) -> dict:
    return knb.import_report((KNB / name).read_text(), **kw)


def lab_doc(*, run_id: str = "r4rep01", reps: int = 4, invalid_latency: bool = False, seed: int = 1,
            skipped: bool = True) -> dict:
    """``invalid_latency``: every repetition of both constant-rate latency tests missed its target
    rate (the validity gate refused all of them, as in issue 14's real run)."""
    rnd = random.Random(seed)
    env = results.collect_environment(1500, underlay="one L2 segment (bridge)")
    env.update(kernel="6.18.44-fc-v1098", hostname="vm", cpus=2, machine="x86_64")
    doc = results.new_document("lab", run_id=run_id, environment=env, parameters={
        "duration_s": 1.0, "repeat": reps, "streams": 1,
        "repetitions": {"min": reps, "max": reps, "done": reps, "stopped": "not-adaptive"}})
    doc["created"] = "2026-12-03T00:45:18+00:00"
    for name, (tp, lat, cpu) in SUBJECTS.items():
        kind = "reference" if name == "host" else "datapath"
        subject = results.new_subject(name, kind, configured_mtu=1450 if name == "vxlan" else 1500)
        path = "node-to-node" if kind == "reference" else "pod-to-pod"
        for test_name, base in HOST.items():
            if test_name == "tcp-service" and kind == "reference":
                continue
            tkind = {"tcp": "tcp", "udp": "udp", "tcp-service": "tcp", "tcp-crr": "crr", "http-350B": "http",
                     "cpu-tcp": "cpu", "mtu": "mtu"}.get(test_name, "rr" if "-rr-" in test_name else "latency")
            unit = {"tcp": "Gbit/s", "udp": "Gbit/s", "crr": "transactions/s", "http": "requests/s",
                    "cpu": "CPU s/Gbit", "mtu": "bytes"}.get(tkind, "µs")
            lower = tkind in ("rr", "latency", "cpu")
            test = results.new_test(test_name, tkind, "pod-to-service" if "service" in test_name else path, unit,
                                    higher_is_better=not lower, tool="test")
            proto = "udp" if "udp" in test_name.split("-") else "tcp"
            if tkind == "latency":
                test["parameters"] = {"message_bytes": 14, "load_fraction": 0.3, "mode": "under-load"}
            if tkind == "rr":
                test["parameters"] = {"message_bytes": int(test_name.split("-")[-1][:-1]), "mode": "ping-pong"}
            scale = tp if not lower else (lat if tkind != "cpu" else cpu)
            for i in range(reps):
                noise = 1 + rnd.uniform(-0.03, 0.03)
                v = base * scale * noise
                if tkind == "mtu":
                    rec = _rep(i, 1450 if name == "vxlan" else 1500, observed_mtu=1450 if name == "vxlan" else 1500)
                elif tkind == "tcp":
                    rec = _rep(i, v, details={"retransmits": 3 + i, "tool": "iperf3"})
                elif tkind == "udp":
                    rec = _rep(i, v, details={"lost_percent": 0.25 * scale, "tool": "iperf3"})
                elif tkind == "cpu":
                    rec = _rep(i, v, cpu={"cpu_seconds_per_gbit": v, "client_cpu_seconds_per_gbit": 0.55 * v,
                                          "server_cpu_seconds_per_gbit": 0.45 * v, "busy_percent": 20.0})
                elif tkind in ("rr", "latency"):
                    pct = ({"p50": v * 0.45, "p90": v * 0.6, "p99": v, "p99.9": v * 2.2} if tkind == "latency" else
                           {"p50": v, "p90": v * 1.15, "p99": v * 1.9, "p99.9": v * 4.1})
                    rec = _rep(i, pct["p99"] if tkind == "latency" else pct["p50"], percentiles_us=pct)
                    if tkind == "latency":
                        target = TARGET[proto]
                        achieved = target * (0.62 if invalid_latency else 0.999)
                        rec["details"] = {"target_rate": target, "achieved_rate": achieved, "missing_replies": 0}
                        if invalid_latency:
                            rec.update(valid=False, value=None, invalid_reason=(
                                f"load generator behind: achieved {achieved:,.0f} of {target:,.0f} msg/s "
                                f"({100 * achieved / target:.1f} %, the gate needs >= 99 %)"))
                    else:
                        rec["details"] = {"transactions_per_s": 1e6 / v / 2}
                else:
                    rec = _rep(i, v)
                test["repetitions"].append(rec)
            subject["tests"].append(test)
        doc["subjects"].append(subject)
    if skipped:
        doc["subjects"].append(results.new_subject(
            "ipip", "datapath", status="skipped",
            skipped_reason="ipip skipped: the kernel cannot create 'ipip' devices; it needs CONFIG_NET_IPIP"))
        doc["subjects"][-1]["status"] = "skipped"
    results.finalize(doc)
    doc["extra"] = {"ranking": {"allowed": True, "reason": None}}
    results.validate(doc)
    return doc
