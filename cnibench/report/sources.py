"""A result document being compared (:class:`Source`), and the names every report part shares."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from cnibench import results

THROUGHPUT_KINDS = ("tcp", "udp")
PERCENTILES = ("p50", "p90", "p99", "p99.9")
ORIGIN_ORDER = {"cloud": 0, "lab": 1, "knb": 2}
LATENCY_NAME = re.compile(r"latency-(?P<size>\d+)B-(?P<load>[\d.]+)pct")
CSV_FIELDS = (
    "origin", "run_id", "environment", "subject", "subject_kind", "variant", "test", "kind", "path", "unit",
    "status", "n", "median", "min", "max", "cv", "efficiency_vs_reference", "reference",
    "cpu_busy_percent", "cpu_seconds_per_gbit", "observed_mtu", "note",
)


@dataclass(frozen=True)
class Source:
    """One result document and where it came from."""

    doc: dict[str, Any]
    path: Path | None = None

    @property
    def origin(self) -> str:
        return self.doc["origin"]

    @property
    def run_id(self) -> str:
        return self.doc["run_id"]

    @property
    def key(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{self.origin}-{self.run_id}")

    @property
    def environment(self) -> str:
        return environment_label(self.doc)


def environment_label(doc: dict[str, Any]) -> str:
    """``c6i.8xlarge us-east-1, Linux 6.8, 32 CPUs, MTU 9001`` / ``lab host1, Linux 6.1, ...``."""
    env = doc.get("environment") or {}
    extra = env.get("extra") or {}
    if env.get("instance_type"):
        parts = [" ".join(p for p in (env.get("instance_type"), env.get("region")) if p)]
    elif doc.get("origin") == "knb":
        parts = ["knb" + (f" k8s {extra['kubernetes_version']}" if extra.get("kubernetes_version") else "")]
    else:
        parts = [f"{doc.get('origin', '?')} {env.get('hostname', '?')}"]
    if env.get("kernel") and env["kernel"] != "unknown":
        parts.append(f"Linux {env['kernel']}")
    if env.get("cpus"):
        parts.append(f"{env['cpus']} CPUs")
    if extra.get("cpu_model"):
        parts.append(str(extra["cpu_model"]))
    if env.get("underlay_mtu"):
        parts.append(f"MTU {env['underlay_mtu']}")
    return ", ".join(parts)


def _short_env(doc: dict[str, Any]) -> str:
    env = doc.get("environment") or {}
    if env.get("instance_type"):
        return env["instance_type"]
    if doc.get("origin") == "knb":
        k8s = (env.get("extra") or {}).get("kubernetes_version")
        return f"k8s {k8s}" if k8s else env.get("kernel", "?")
    return env.get("hostname", "?")


def subject_labels(sources: Sequence[Source]) -> dict[tuple[str, str], str]:
    """A unique chart label per (source key, subject name): ``name [origin: env]``, with the
    run id added when two sources would otherwise look the same."""
    base = {}
    for src in sources:
        for s in src.doc["subjects"]:
            base[(src.key, s["name"])] = f"{s['name']}\n[{src.origin}: {_short_env(src.doc)}]"
    counts: dict[str, int] = {}
    for label in base.values():
        counts[label] = counts.get(label, 0) + 1
    return {k: (v if counts[v] == 1 else f"{v[:-1]} {k[0].split('-', 1)[-1][:12]}]") for k, v in base.items()}


# --------------------------------------------------------------------------- loading


def find_results(directory: str | Path, exclude: str | Path | None = None) -> tuple[list[Source], list[tuple[Path, str]]]:
    """Every result document under ``directory`` (``*.json``, recursively), read once and
    checked (:func:`cnibench.results.read_document`: regular files only, finite numbers, its
    schema), and the files skipped with the reason (``matrix.json``, a FIFO, NaN, broken JSON...).
    ``exclude`` (the report's own directory) is not searched."""
    found: list[Source] = []
    skipped: list[tuple[Path, str]] = []
    ex = Path(exclude).resolve() if exclude else None
    for path in sorted(Path(directory).rglob("*.json")):
        if ex and (path.resolve() == ex or ex in path.resolve().parents):
            continue
        try:
            doc = results.read_document(path)
        except results.DocumentError as exc:
            skipped.append((path, f"at {exc.where}: {exc.problem}" if exc.where else exc.problem))
            continue
        found.append(Source(doc, path))
    return found, skipped
