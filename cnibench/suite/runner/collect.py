"""Assemble the raw results of bench.sh into one JSON document on stdout (format
cnibench-bench-raw/2, read by cnibench.suite.build.build_result).

Runs on the control plane with the system python3 (standard library only). Keeps the runner's
stdout small: iperf3 documents lose their per-second ``intervals``, sockperf and wrk reports
(about 1 kB each) lose their colour escapes and are capped, node descriptions keep a few fields.

The document: ``runs`` (one per step execution: its meta, its output, for the CPU test the
/proc/stat snapshots of both nodes: idle baseline pair, before, after), ``guards`` (the
background-load sample before each subject's repetition: /proc/stat of both nodes,
BENCH_GUARD_SECONDS apart), ``calibration`` (the host's maxima as bench.sh computed them and
used them for the offered rates), pods, nodes and cluster facts.

Usage: python3 collect.py WORKDIR
"""

import json
import os
import re
import sys

FORMAT = "cnibench-bench-raw/2"
TAIL = 2000  # characters kept of error outputs
REPORT_MAX = 8000  # characters kept of a sockperf/wrk report (the head and the tail)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def read(path, default=""):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return default


def keyvalues(text):
    out = {}
    for line in text.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def plan_env(workdir):
    env = {}
    for line in read(os.path.join(workdir, "plan.env")).splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            env[key] = value.strip("'")
    return env


def slim_iperf3(text):
    """iperf3 -J output without the per-interval records (the end summary is what is used)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text[-TAIL:]
    if isinstance(doc, dict):
        doc.pop("intervals", None)
        return json.dumps(doc, separators=(",", ":"))
    return text[-TAIL:]


def slim_report(text):
    """A sockperf or wrk report without colour escapes, at most REPORT_MAX characters (sockperf
    names its peer at the top and summarizes at the bottom; wrk's CNIBENCH-WRK line is last)."""
    text = ANSI.sub("", text)
    if len(text) <= REPORT_MAX:
        return text
    half = REPORT_MAX // 2
    return text[:half] + "\n[... cut by collect.py ...]\n" + text[-half:]


def nodes(raw_dir):
    try:
        doc = json.loads(read(os.path.join(raw_dir, "nodes.json"), "{}") or "{}")
    except ValueError:
        return {}
    out = {}
    for item in doc.get("items") or []:
        meta = item.get("metadata") or {}
        labels = meta.get("labels") or {}
        info = (item.get("status") or {}).get("nodeInfo") or {}
        cap = (item.get("status") or {}).get("capacity") or {}
        out[meta.get("name", "?")] = {
            "role": labels.get("cnibench.io/role"),
            "instance_type": labels.get("node.kubernetes.io/instance-type"),
            "kernel": info.get("kernelVersion"),
            "os_image": info.get("osImage"),
            "kubelet": info.get("kubeletVersion"),
            "runtime": info.get("containerRuntimeVersion"),
            "architecture": info.get("architecture"),
            "cpu_capacity": cap.get("cpu"),
            "memory_capacity": cap.get("memory"),
        }
    return out


def snapshots(d, prefix):
    """PREFIX.client and PREFIX.server of a run or guard directory (absent: not taken)."""
    out = {}
    for who in ("client", "server"):
        text = read(os.path.join(d, prefix + "." + who))
        if text.strip():
            out[who] = text
    return out


def run_record(d):
    meta = keyvalues(read(os.path.join(d, "meta")))
    out = read(os.path.join(d, "out"))
    tool = meta.get("tool")
    if tool == "iperf3" and out.strip():
        out = slim_iperf3(out)
    elif tool in ("sockperf", "wrk"):
        out = slim_report(out)
    rec = {
        "id": meta.get("id"),
        "rep": int(meta.get("rep") or 0),
        "phase": meta.get("phase"),
        "tool": tool,
        "mode": meta.get("mode"),
        "target": meta.get("target"),
        "rc": int(meta["rc"]) if meta.get("rc", "").lstrip("-").isdigit() else None,
        "timed_out": meta.get("timed_out") == "1",
        "skipped": meta.get("skipped"),
        "started": meta.get("started"),
        "ended": meta.get("ended"),
        "calibration_value": meta.get("calibration_value"),
        "target_rate": meta.get("target_rate"),
        "offered_mbit": meta.get("offered_mbit"),
        "output": out,
        "stderr": ANSI.sub("", read(os.path.join(d, "err")))[-TAIL:],
    }
    if meta.get("mode") == "cpu":
        rec["cpu"] = {k: snapshots(d, k) for k in ("idle", "before", "after")}
    return rec


def guard_record(d):
    meta = keyvalues(read(os.path.join(d, "meta")))
    return {
        "rep": int(meta.get("rep") or 0),
        "subject": meta.get("subject"),
        "seconds": meta.get("seconds"),
        "skipped": meta.get("skipped"),
        "load": snapshots(d, "load"),
    }


def entries(path):
    return [os.path.join(path, e) for e in sorted(os.listdir(path))] if os.path.isdir(path) else []


def main(workdir):
    raw_dir = os.path.join(workdir, "raw")
    env = plan_env(workdir)
    doc = {
        "format": FORMAT,
        "run": env.get("BENCH_RUN"),
        "plan_digest": env.get("BENCH_PLAN_DIGEST"),
        "started": read(os.path.join(raw_dir, "started")).strip() or None,
        "finished": read(os.path.join(raw_dir, "finished")).strip() or None,
        "fatal": read(os.path.join(raw_dir, "fatal")).strip() or None,
        "errors": [e for e in read(os.path.join(raw_dir, "errors")).splitlines() if e.strip()],
        "nodes": nodes(raw_dir),
        "service_ip": read(os.path.join(raw_dir, "service-ip")).strip() or None,
    }
    try:
        version = json.loads(read(os.path.join(raw_dir, "k8s-version.json"), "{}") or "{}")
        doc["kubernetes"] = {"server_version": (version.get("serverVersion") or {}).get("gitVersion")}
    except ValueError:
        doc["kubernetes"] = {}
    images = {}
    for line in read(os.path.join(raw_dir, "ds-images.txt")).splitlines():
        if "=" in line:
            name, imgs = line.split("=", 1)
            images[name] = imgs.split()
    doc["cni_images"] = images

    pods = {}
    for name in env.get("BENCH_PODS", "").split():
        base = os.path.join(raw_dir, "pods", name)
        info = read(base + ".info").split()
        pods[name] = {
            "ready": read(base + ".ready").strip() == "1",
            "node": info[0] if info else None,
            "ip": info[1] if len(info) > 1 else None,
            "error": read(base + ".error")[-TAIL:] or None,
            "probe": keyvalues(read(base + ".probe")),
        }
    doc["pods"] = pods
    doc["calibration"] = {os.path.basename(p): read(p).strip() for p in entries(os.path.join(raw_dir, "calib"))}
    doc["guards"] = [guard_record(d) for d in entries(os.path.join(raw_dir, "guards"))]
    doc["runs"] = [run_record(d) for d in entries(os.path.join(raw_dir, "runs"))]
    json.dump(doc, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
