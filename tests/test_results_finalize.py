"""finalize and summarize_node_usage in their corners: the reference subject against itself,
repetitions recorded without a verdict, the CPU summary of version 1 documents (the real
`cnibench lab` document of tests/data re-finalized), and the per-node CPU and memory medians.

Every expected figure is a literal or computed here from the test's own input."""

from __future__ import annotations

import copy
import json
import statistics
from pathlib import Path

import pytest

from cnibench import results

DATA = Path(__file__).resolve().parent / "data"


def _v2_doc(host_tests: list[dict], other_tests: list[dict] | None = None) -> dict:
    doc = results.new_document("lab", run_id="cafe01", environment=results.collect_environment(1500),
                               parameters={"duration_s": 1.0, "repeat": 3})
    host = results.new_subject("host", "reference")
    host["tests"] = host_tests
    doc["subjects"].append(host)
    if other_tests is not None:
        vxlan = results.new_subject("vxlan", "datapath")
        vxlan["tests"] = other_tests
        doc["subjects"].append(vxlan)
    return doc


def _test(name: str, values: list[float | None], **rep_extra) -> dict:
    test = results.new_test(name, "tcp", "node-to-node", "Gbit/s")
    test["repetitions"] = [{"index": i, "value": v, **rep_extra} for i, v in enumerate(values)]
    return test


# --------------------------------------------------------------------------- the reference against itself


def test_the_reference_subject_is_one_by_definition_and_a_failed_reference_test_is_none():
    ok = _test("tcp", [10.0, 12.0, 11.0])
    failed = results.new_test("udp", "udp", "node-to-node", "Gbit/s")
    failed["repetitions"] = [{"index": 0, "error": "iperf3: unable to connect"}]
    skipped = results.new_test("latency", "latency", "node-to-node", "us", higher_is_better=False)
    skipped["status"] = "skipped"
    doc = results.finalize(_v2_doc([ok, failed, skipped], [_test("tcp", [5.0, 6.0, 5.5])]))
    host = {t["name"]: t for t in doc["subjects"][0]["tests"]}
    assert host["tcp"]["status"] == "ok"
    assert (host["tcp"]["efficiency"], host["tcp"]["ratio"]) == (1.0, None)  # no interval against itself
    assert host["udp"]["status"] == "error"
    assert (host["udp"]["efficiency"], host["udp"]["ratio"]) == (None, None)
    assert (host["latency"]["efficiency"], host["latency"]["ratio"]) == (None, None)
    vxlan = doc["subjects"][1]["tests"][0]
    assert vxlan["efficiency"] == pytest.approx(5.5 / 11.0)


# --------------------------------------------------------------------------- repetitions without a verdict


def test_a_repetition_without_a_value_and_without_an_error_is_invalid():
    test = _test("tcp", [None, 4.0])
    del test["repetitions"][0]["value"]
    test["repetitions"].append({"index": 2, "value": None})
    results.finalize(_v2_doc([test]))
    first, second, third = test["repetitions"]
    assert (first["valid"], first["value"], first["invalid_reason"]) == (False, None, "error: no value")
    assert (third["valid"], third["value"], third["invalid_reason"]) == (False, None, "error: no value")
    assert (second["valid"], second["invalid_reason"]) == (True, None)
    assert test["samples"] == [4.0]
    assert test["validity"]["valid_repetitions"] == 1 and test["validity"]["repetitions"] == 3
    assert test["validity"]["invalid_reasons"] == ["error: no value"]


def test_a_repetition_with_an_error_is_invalid_even_with_a_value():
    test = _test("tcp", [7.0, 4.0])
    test["repetitions"][0]["error"] = "iperf3: the server has terminated"
    results.finalize(_v2_doc([test]))
    first, second = test["repetitions"]
    assert (first["valid"], first["value"]) == (False, None)
    assert first["invalid_reason"] == "error: iperf3: the server has terminated"
    assert second["valid"] is True
    assert test["samples"] == [4.0] and test["stats"]["median"] == 4.0
    assert test["validity"]["reason"] == "1 of 2 repetitions not used: error: iperf3: the server has terminated"


# --------------------------------------------------------------------------- version 1: the CPU summary


def _v1_doc() -> dict:
    doc = json.loads((DATA / "lab-result.json").read_text())
    assert doc["schema_version"].startswith("1.")
    for subject in doc["subjects"]:
        for test in subject["tests"]:
            test["cpu"] = None  # what finalize computes, forgotten
    return doc


def _expected_v1_cpu(test: dict, source: str) -> dict | None:
    reps = [r["cpu"] for r in test.get("repetitions", []) if r.get("cpu")]
    if not reps:
        return None

    def median(key: str) -> float | None:
        values = [c[key] for c in reps if c.get(key) is not None]
        return statistics.median(values) if values else None
    return {"busy_percent": median("busy_percent"), "cpu_seconds_per_gbit": median("cpu_seconds_per_gbit"),
            "source": source}


def test_v1_cpu_summary_is_the_median_of_the_repetitions_with_their_source():
    original = _v1_doc()
    doc = results.finalize(copy.deepcopy(original))
    checked = 0
    for subject, before in zip(doc["subjects"], original["subjects"]):
        for test, raw in zip(subject["tests"], before["tests"]):
            if raw["status"] == "skipped":
                continue
            reps = [r["cpu"] for r in raw.get("repetitions", []) if r.get("cpu")]
            expected = _expected_v1_cpu(raw, reps[0]["source"]) if reps else None
            assert test["cpu"] == expected, (subject["name"], test["name"])
            checked += expected is not None
    assert checked >= 3
    # the capture's source is not the default: it must be the one the repetitions name
    tcp = next(t for t in doc["subjects"][0]["tests"] if t["name"] == "tcp")
    assert tcp["cpu"]["source"] == "/proc/stat (whole machine)"
    assert tcp["cpu"]["busy_percent"] == statistics.median(
        r["cpu"]["busy_percent"] for r in tcp["repetitions"])


def test_v1_cpu_summary_of_repetitions_naming_no_source_says_proc_stat():
    doc = _v1_doc()
    for subject in doc["subjects"]:
        for test in subject["tests"]:
            for rep in test.get("repetitions", []):
                if rep.get("cpu"):
                    rep["cpu"].pop("source", None)
    raw = copy.deepcopy(doc)
    results.finalize(doc)
    tcp, raw_tcp = doc["subjects"][0]["tests"][0], raw["subjects"][0]["tests"][0]
    assert tcp["name"] == "tcp"
    assert tcp["cpu"] == _expected_v1_cpu(raw_tcp, "/proc/stat")
    assert tcp["cpu"]["source"] == "/proc/stat"


# --------------------------------------------------------------------------- per-node usage


def test_node_usage_is_the_median_of_each_figure_over_the_repetitions():
    figures = {  # per repetition: client busy %, server busy %, client MB, server MB
        "client_busy_percent": [80.17, 40.5, 60.25],
        "server_busy_percent": [20.0, 35.5, 30.0],
        "client_mem_used_mb": [340.0, 360.0, 350.5],
        "server_mem_used_mb": [512.0, 498.0, 505.0],
    }
    test = results.new_test("tcp", "tcp", "pod-to-pod", "Gbit/s")
    test["cpu"] = {"busy_percent": 50.0, "source": "knb"}
    test["repetitions"] = [{"index": i, "value": 1.0, "cpu": {k: v[i] for k, v in figures.items()}}
                           for i in range(3)]
    test["repetitions"][1]["cpu"].pop("server_mem_used_mb")  # a node the monitor missed once
    no_cpu = results.new_test("udp", "udp", "pod-to-pod", "Gbit/s")
    no_cpu["repetitions"] = [{"index": 0, "value": 1.0, "cpu": {"client_busy_percent": 9.0}}]
    doc = {"subjects": [{"name": "flannel", "tests": [test, no_cpu]}]}
    results.summarize_node_usage(doc)
    assert test["cpu"] == {
        "busy_percent": 50.0, "source": "knb",
        "client_busy_percent": 60.25, "server_busy_percent": 30.0,
        "client_mem_used_mb": 350.5, "server_mem_used_mb": (512.0 + 505.0) / 2,
    }
    assert no_cpu["cpu"] is None  # finalize gave it no CPU summary: nothing to add to
