"""The result document (schema v1, ``cnibench/schemas/result-v1.schema.json``) shared by the
lab, the cloud suite and imported knb reports: statistics over repetitions, efficiency against
the reference subject of the same run, building, validating, reading and writing. Tool-output
parsers are in :mod:`cnibench.parsers`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import socket
import statistics
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

SCHEMA_VERSION = "1.0"
ORIGINS = ("lab", "cloud", "knb")
KINDS = ("tcp", "udp", "latency", "mtu", "cpu", "rate")
PATHS = ("node-to-node", "pod-to-pod", "pod-to-service", "node-to-service")


# --------------------------------------------------------------------------- statistics


def summarize(samples: Iterable[float | None]) -> dict[str, Any]:
    """Median, min, max, mean, sample standard deviation and coefficient of variation.

    ``None`` samples (failed repetitions) are ignored. ``cv`` is stdev/mean and is
    ``None`` with fewer than two samples or a zero mean.
    """
    values = [float(v) for v in samples if v is not None and not math.isnan(float(v))]
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None, "mean": None, "stdev": None, "cv": None}
    mean = statistics.fmean(values)
    stdev = statistics.stdev(values) if len(values) > 1 else None
    cv = (stdev / mean) if (stdev is not None and mean) else None
    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "mean": mean,
        "stdev": stdev,
        "cv": cv,
    }


def efficiency(value: float | None, reference: float | None) -> float | None:
    """``value / reference`` (for throughput: 1.0 = as fast as the reference)."""
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


# --------------------------------------------------------------------------- document


def new_test(
    name: str,
    kind: str,
    path: str,
    unit: str,
    *,
    higher_is_better: bool = True,
    reference_test: str | None = None,
) -> dict[str, Any]:
    """A test entry; samples are appended per repetition, then :func:`finalize` fills stats."""
    return {
        "name": name,
        "kind": kind,
        "path": path,
        "unit": unit,
        "higher_is_better": higher_is_better,
        "reference_test": reference_test or name,
        "status": "ok",
        "samples": [],
        "stats": summarize([]),
        "efficiency": None,
        "observed_mtu": None,
        "cpu": None,
        "repetitions": [],
    }


def new_subject(name: str, kind: str, **extra: Any) -> dict[str, Any]:
    subject = {"name": name, "kind": kind, "status": "ok", "tests": []}
    subject.update({k: v for k, v in extra.items() if v is not None})
    return subject


def collect_environment(underlay_mtu: int | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "kernel": platform.release(),
        "hostname": socket.gethostname(),
        "cpus": os.cpu_count() or 1,
        "machine": platform.machine(),
        "underlay_mtu": underlay_mtu,
        "extra": extra,
    }


def new_document(origin: str, *, run_id: str, environment: dict, parameters: dict, reference: str = "host") -> dict[str, Any]:
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}, not {origin!r}")
    from cnibench import __version__

    return {
        "schema_version": SCHEMA_VERSION,
        "origin": origin,
        "run_id": run_id,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tool": {"name": "cnibench", "version": __version__},
        "environment": environment,
        "parameters": parameters,
        "reference": reference,
        "subjects": [],
    }


def finalize(doc: dict[str, Any]) -> dict[str, Any]:
    """Compute per-test statistics, CPU summaries and efficiency against the reference.

    Efficiency is the median of a test divided by the median of the reference subject's
    test named by ``reference_test`` in the same document. A test with no successful
    sample and an error keeps ``status: error``.
    """
    for subject in doc["subjects"]:
        for test in subject["tests"]:
            if test["status"] == "skipped":
                continue
            test["stats"] = summarize(test["samples"])
            if test["stats"]["n"] == 0 and test["status"] == "ok":
                test["status"] = "error"
                test.setdefault("error", "no successful repetition")
            cpu_reps = [r.get("cpu") for r in test.get("repetitions", []) if r.get("cpu")]
            if cpu_reps:
                test["cpu"] = {
                    "busy_percent": summarize(c.get("busy_percent") for c in cpu_reps)["median"],
                    "cpu_seconds_per_gbit": summarize(c.get("cpu_seconds_per_gbit") for c in cpu_reps)["median"],
                    "source": cpu_reps[0].get("source", "/proc/stat"),
                }
            mtus = [r.get("observed_mtu") for r in test.get("repetitions", []) if r.get("observed_mtu")]
            if mtus and test.get("observed_mtu") is None:
                test["observed_mtu"] = int(statistics.median_low(mtus))
    ref = next((s for s in doc["subjects"] if s["name"] == doc.get("reference")), None)
    ref_tests = {t["name"]: t for t in ref["tests"]} if ref else {}
    for subject in doc["subjects"]:
        for test in subject["tests"]:
            r = ref_tests.get(test.get("reference_test") or test["name"])
            if r is None or test["status"] == "skipped":
                continue
            test["efficiency"] = efficiency(test["stats"]["median"], r["stats"]["median"])
    return doc


def schema() -> dict[str, Any]:
    text = resources.files("cnibench").joinpath("schemas/result-v1.schema.json").read_text()
    return json.loads(text)


def validate(doc: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``doc`` does not follow schema v1."""
    import jsonschema

    jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)


def write_json(doc: dict[str, Any], path: str | Path) -> Path:
    validate(doc)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return path


def load(path: str | Path) -> dict[str, Any]:
    doc = json.loads(Path(path).read_text())
    validate(doc)
    return doc


def summarize_node_usage(doc: dict[str, Any]) -> dict[str, Any]:
    """Add the per-node CPU and memory medians of the repetitions to each test's ``cpu``
    (:func:`cnibench.results.finalize` keeps only ``busy_percent`` and ``cpu_seconds_per_gbit``)."""
    keys = ("client_busy_percent", "server_busy_percent", "client_mem_used_mb", "server_mem_used_mb")
    for subject in doc["subjects"]:
        for test in subject["tests"]:
            reps = [r["cpu"] for r in test.get("repetitions", []) if r.get("cpu")]
            if not reps or test.get("cpu") is None:
                continue
            for key in keys:
                test["cpu"][key] = summarize(r.get(key) for r in reps)["median"]
    return doc
