"""Assemble the raw results of bench.sh into one JSON document on stdout (format
cnibench-bench-raw/1, read by cnibench.bench.build_result).

Runs on the control plane with the system python3 (standard library only). Keeps the runner's
stdout small: iperf3 documents lose their per-second ``intervals``, hey's CSV arrives already
reduced by hey-reduce.awk, node descriptions keep a few fields.

Usage: python3 collect.py WORKDIR
"""

import json
import os
import sys

FORMAT = "cnibench-bench-raw/1"
TAIL = 2000  # characters kept of error outputs


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

    runs = []
    runs_dir = os.path.join(raw_dir, "runs")
    for entry in sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []:
        d = os.path.join(runs_dir, entry)
        meta = keyvalues(read(os.path.join(d, "meta")))
        out = read(os.path.join(d, "out"))
        if meta.get("tool") == "iperf3" and out.strip():
            out = slim_iperf3(out)
        runs.append({
            "id": meta.get("id"),
            "rep": int(meta.get("rep") or 0),
            "tool": meta.get("tool"),
            "target": meta.get("target"),
            "rc": int(meta["rc"]) if meta.get("rc", "").lstrip("-").isdigit() else None,
            "timed_out": meta.get("timed_out") == "1",
            "skipped": meta.get("skipped"),
            "started": meta.get("started"),
            "ended": meta.get("ended"),
            "workers": meta.get("workers"),
            "qps": meta.get("qps"),
            "target_rate": meta.get("target_rate"),
            "output": out,
            "stderr": read(os.path.join(d, "err"))[-TAIL:],
            "usage": {
                who: {"before": read(os.path.join(d, "before." + who)), "after": read(os.path.join(d, "after." + who))}
                for who in ("client", "server")
            },
        })
    doc["runs"] = runs
    json.dump(doc, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
