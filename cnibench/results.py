"""The result document shared by the lab, the cloud suite and imported knb reports:
statistics over repetitions, ratios to the reference subject of the same run with their
confidence intervals, validity verdicts, building, validating, reading and writing.
Tool-output parsers are in :mod:`cnibench.parsers`.

Schema v2 (``cnibench/schemas/result-v2.schema.json``) is what the lab and the cloud suite
write. Version 1 documents (hey latency at 0.1 ms resolution, no intervals, no validity)
still load, against ``result-v1.schema.json``, and :func:`schema_label` says what they lack.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import socket
import stat
import statistics
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable

from cnibench import stats as _stats
from cnibench.errors import InputError

SCHEMA_VERSION = "2.0"
SCHEMA_MAJORS = (1, 2)
# cluster: `cnibench run` on an existing cluster through a kube context (cnibench/suite/cluster.py)
ORIGINS = ("lab", "cloud", "cluster", "knb")
KINDS = ("tcp", "udp", "rr", "crr", "http", "latency", "mtu", "cpu", "rate")
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
    tool: str = "",
    statistic: str | None = None,
    closed_loop: bool | None = None,
) -> dict[str, Any]:
    """A test entry; repetitions are appended per repetition, then :func:`finalize` fills the
    samples (valid, uncontaminated repetitions), the stats, the validity and the ratio."""
    extra: dict[str, Any] = {"tool": tool, "validity": {"status": "not-measured", "reason": "not run yet"},
                             "ratio": None}
    if statistic:
        extra["statistic"] = statistic
    if closed_loop is not None:
        extra["closed_loop"] = closed_loop
    return {**extra,
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


def schema_major(doc: dict[str, Any]) -> int:
    try:
        return int(str(doc.get("schema_version", "1")).split(".")[0])
    except ValueError:
        return 0


def schema_label(doc: dict[str, Any]) -> str:
    """How a report labels the document's schema: v1 documents lack what makes v2 figures
    defensible, and their readers must be told."""
    if schema_major(doc) >= 2:
        return f"schema v{doc['schema_version']}"
    return (f"schema v{doc.get('schema_version', '1')} (legacy: latency from hey at 0.1 ms resolution and closed-loop, "
            "no confidence intervals, no validity verdicts)")


def _rep_valid(rep: dict[str, Any]) -> bool:
    if "valid" in rep:
        return bool(rep["valid"]) and not rep.get("contaminated")
    return rep.get("value") is not None and "error" not in rep


def _normalize_repetition(rep: dict[str, Any]) -> None:
    """A repetition built without a verdict (an error, or a plain value) gets the explicit one."""
    if "valid" in rep:
        return
    if rep.get("error") or rep.get("value") is None:
        rep.update(valid=False, value=None, invalid_reason=f"error: {rep.get('error') or 'no value'}")
    else:
        rep.update(valid=True, invalid_reason=None)


def _finalize_v2(test: dict[str, Any]) -> None:
    reps = test.get("repetitions", [])
    for rep in reps:
        _normalize_repetition(rep)
    good = [r for r in reps if _rep_valid(r)]
    test["samples"] = [float(r["value"]) for r in good]
    test["stats"] = summarize(test["samples"])
    lo_hi = _stats.median_interval(test["samples"])
    test["median_interval"] = list(lo_hi) if lo_hi[0] is not None else None
    contaminated = sum(1 for r in reps if r.get("contaminated"))
    reasons = sorted({str(r["invalid_reason"]) for r in reps if not r.get("valid") and r.get("invalid_reason")})
    validity: dict[str, Any] = {"status": "valid", "reason": None, "valid_repetitions": len(good),
                                "repetitions": len(reps), "contaminated_repetitions": contaminated,
                                "invalid_reasons": reasons}
    if not reps:
        validity.update(status="not-measured", reason=test.get("error") or "not run")
        if test["status"] == "ok":
            test["status"] = "error"
            test.setdefault("error", "not run")
    elif not good:
        errors = [r for r in reps if r.get("error")]
        validity["status"] = "invalid"
        if len(errors) == len(reps):
            validity["reason"] = f"every repetition failed: {errors[0]['error']}"
            test["status"] = "error"
            test.setdefault("error", str(errors[0]["error"]))
        elif reasons:
            validity["reason"] = "no valid repetition: " + "; ".join(reasons[:3])
            test["status"] = "invalid"
        else:
            validity["reason"] = (f"every repetition ran while the machine was busy with other work "
                                  f"({contaminated} contaminated)")
            test["status"] = "invalid"
    elif len(good) < len(reps):
        validity["reason"] = (f"{len(reps) - len(good)} of {len(reps)} repetitions not used"
                              + (f" ({contaminated} contaminated)" if contaminated else "")
                              + (": " + "; ".join(reasons[:3]) if reasons else ""))
    test["validity"] = validity
    pcts = [r.get("percentiles_us") or {} for r in good if r.get("percentiles_us")]
    if pcts:
        keys = [k for k in pcts[0] if all(k in p for p in pcts)]
        test["percentiles_us"] = {k: statistics.median(p[k] for p in pcts) for k in keys}
    mtus = [r["observed_mtu"] for r in good if r.get("observed_mtu")]
    if mtus and test.get("observed_mtu") is None:
        test["observed_mtu"] = int(statistics.median_low(mtus))
    cpu_reps = [r["cpu"] for r in good if r.get("cpu")]
    if cpu_reps:
        keys = [k for k, v in cpu_reps[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        test["cpu"] = {k: summarize(c.get(k) for c in cpu_reps)["median"] for k in keys}
        test["cpu"]["source"] = str(cpu_reps[0].get("source", ""))


def _paired(test: dict[str, Any]) -> dict[int, float]:
    return {int(r["index"]): float(r["value"]) for r in test.get("repetitions", []) if _rep_valid(r)}


def ratio_interval(test: dict[str, Any], reference: dict[str, Any]) -> _stats.RatioInterval:
    """The ratio of ``test`` to the reference test over the repetitions both have valid and
    uncontaminated, paired by repetition index (the lab's adaptive stop uses it mid-run)."""
    mine, theirs = _paired(test), _paired(reference)
    idx = sorted(set(mine) & set(theirs))
    return _stats.paired_ratio_interval([mine[i] for i in idx], [theirs[i] for i in idx])


def finalize(doc: dict[str, Any]) -> dict[str, Any]:
    """Compute per-test statistics, validity, CPU summaries and the ratio to the reference.

    Schema v2: samples are the valid, uncontaminated repetitions; the ratio to the reference
    test is the paired t-interval on log ratios of the repetitions with the same index
    (:func:`cnibench.stats.paired_ratio_interval`) and ``efficiency`` is its estimate."""
    if schema_major(doc) >= 2:
        for subject in doc["subjects"]:
            for test in subject["tests"]:
                if test["status"] != "skipped":
                    _finalize_v2(test)
                elif test.get("skipped_reason"):  # not "not run yet": it never will be, and why
                    test["validity"] = {"status": "not-measured", "reason": test["skipped_reason"]}
        ref = next((s for s in doc["subjects"] if s["name"] == doc.get("reference")), None)
        ref_tests = {t["name"]: t for t in ref["tests"]} if ref else {}
        for subject in doc["subjects"]:
            if ref is not None and subject is ref:
                for test in subject["tests"]:  # the reference against itself: 1 by definition, no interval
                    test["ratio"], test["efficiency"] = None, (1.0 if test["status"] == "ok" else None)
                continue
            for test in subject["tests"]:
                r = ref_tests.get(test.get("reference_test") or test["name"])
                if r is None or test["status"] != "ok" or r["status"] != "ok":
                    test["ratio"], test["efficiency"] = None, None
                    continue
                iv = ratio_interval(test, r)
                test["ratio"] = iv.as_dict() if iv.n else None
                test["efficiency"] = iv.estimate if iv.n else None
        return doc
    return _finalize_v1(doc)


def _finalize_v1(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 1 documents (knb imports): per-test statistics and median / median efficiency.

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


def schema(major: int = 2) -> dict[str, Any]:
    if major not in SCHEMA_MAJORS:
        raise ValueError(f"unknown result schema version {major}; known: {', '.join(map(str, SCHEMA_MAJORS))}")
    text = resources.files("cnibench").joinpath(f"schemas/result-v{major}.schema.json").read_text()
    return json.loads(text)


def validate(doc: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``doc`` does not follow the schema of its own
    ``schema_version`` (v1 or v2)."""
    import jsonschema

    major = schema_major(doc)
    if major not in SCHEMA_MAJORS:
        raise jsonschema.ValidationError(
            f"schema_version {doc.get('schema_version')!r}: cnibench reads versions {SCHEMA_MAJORS}")
    jsonschema.validate(doc, schema(major), cls=jsonschema.Draft202012Validator)


def write_json(doc: dict[str, Any], path: str | Path) -> Path:
    validate(doc)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return path


MAX_DOCUMENT_BYTES = 64 * 1024 * 1024  # a lab run of every datapath at 100 repetitions is ~10 MB


class DocumentError(InputError):
    """A result document that cannot be read: not a regular file, too large, not JSON, a
    non-finite number, or not following its schema. The message names the file and the place."""

    def __init__(self, path: str | Path, problem: str, where: str | None = None) -> None:
        self.path, self.where, self.problem = Path(path), where, problem
        super().__init__(f"{path}: {f'at {where}: ' if where else ''}{problem}")


def read_regular_file(path: str | Path, *, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``, else :class:`InputError`
    (never blocks: a FIFO or a device named ``*.json`` is refused, not read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(f"{path}: cannot open the {what}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # before fdopen, which refuses a directory with IsADirectoryError
            raise InputError(f"{path}: not a regular file (a {_file_type(st.st_mode)}); the {what} must be one")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fh:
        if st.st_size > max_bytes:
            raise InputError(f"{path}: {st.st_size} bytes, larger than the {max_bytes} a {what} may have")
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise InputError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise InputError(f"{path}: larger than the {max_bytes} bytes a {what} may have")
    return data


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


def json_path(parts: Iterable[str | int]) -> str:
    """``subjects/0/tests/1/stats/median``: the place in a document, as schema errors name it."""
    return "/".join(str(p) for p in parts) or "(top)"


def first_non_finite(value: Any) -> tuple[list[str | int], float] | None:
    """The path and value of the first NaN or infinite number in a parsed JSON value (iterative:
    any nesting depth), or None. JSON has no NaN or Infinity; Python's json module reads them."""
    stack: list[tuple[list[str | int], Any]] = [([], value)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return where, v
        if isinstance(v, dict):
            stack.extend((where + [k], x) for k, x in reversed(list(v.items())))
        elif isinstance(v, list):
            stack.extend((where + [i], x) for i, x in reversed(list(enumerate(v))))
    return None


def parse_document(data: bytes | str, path: str | Path = "<document>", *, check_schema: bool = True,
                   precheck: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Parse and check one result document: JSON, finite numbers only, an object, ``precheck``
    (a caller's own checks, e.g. bounds that spare validating a huge document) and (with
    ``check_schema``) the schema of its ``schema_version``. Errors: :class:`DocumentError`."""
    import jsonschema

    try:
        doc = json.loads(data)
    except RecursionError:
        raise DocumentError(path, "not a result document: JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of more than 4300 digits
        raise DocumentError(path, f"not JSON ({exc})") from None
    bad = first_non_finite(doc)
    if bad is not None:
        raise DocumentError(path, f"{bad[1]!r} is not a finite number (a result document holds no NaN or "
                                  "Infinity)", json_path(bad[0]))
    if not isinstance(doc, dict) or "schema_version" not in doc:
        raise DocumentError(path, "not a cnibench result document (no schema_version)")
    if precheck is not None:
        precheck(doc)
    if check_schema:
        try:
            validate(doc)
        except jsonschema.ValidationError as exc:
            raise DocumentError(path, f"does not follow result schema v{schema_major(doc)}: {exc.message}",
                                json_path(exc.absolute_path)) from None
        except RecursionError:
            raise DocumentError(path, "not a result document: nested too deeply") from None
    return doc


def read_document(path: str | Path, *, precheck: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Read and check one result document file (:func:`parse_document`); only a regular file of
    at most :data:`MAX_DOCUMENT_BYTES` is read. Errors: :class:`DocumentError`."""
    try:
        data = read_regular_file(path, max_bytes=MAX_DOCUMENT_BYTES, what="result document")
    except DocumentError:
        raise
    except InputError as exc:
        raise DocumentError(path, str(exc).removeprefix(f"{path}: ")) from None
    return parse_document(data, path, precheck=precheck)


def load(path: str | Path) -> dict[str, Any]:
    """:func:`read_document` (kept for callers that load one known document)."""
    return read_document(path)


def failures(doc: dict[str, Any]) -> list[str]:
    """What failed in a finished document, one entry per failed subject (``host-gw: set-up
    failed ...``) or per subject's failed measurements (``vxlan: tcp, udp`` or ``vxlan: every
    test``). Empty when nothing failed: ``invalid`` (a validity gate refused the figure, a busy
    machine) and ``skipped`` are verdicts on a measurement, not failures of the work."""
    out = []
    for subject in doc.get("subjects", []):
        if subject.get("status") == "error":
            out.append(f"{subject['name']}: {subject.get('error') or 'failed'}")
            continue
        tests = [t for t in subject.get("tests", []) if t.get("status") != "skipped"]
        failed = [t["name"] for t in tests if t.get("status") == "error"]
        if failed:
            out.append(f"{subject['name']}: {'every test' if len(failed) == len(tests) > 1 else ', '.join(failed)}")
    return out


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
