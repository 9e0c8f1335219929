"""Property-based tests of the knb importers (issue 15): whatever the input, JSON, YAML or text,
``knb.import_report`` returns a document that follows the schema and holds only finite numbers,
or raises the project's input error (``InputError``: exit 2 with a message), never anything else."""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnibench import knb, results
from cnibench.errors import InputError

DATA = Path(__file__).resolve().parent / "data" / "knb"
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
                    st.sampled_from(["", "nan", "inf", "-1", "1e999", "0.00", "12.5", "1500 1450", "\r", "²"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


def _usage():
    cpu = st.fixed_dictionaries({}, optional={k: values for k in ("total", *knb.KNB_CPU_FIELDS)})
    return st.fixed_dictionaries({}, optional={"cpu": st.one_of(cpu, values), "ram": values})


def _test():
    return st.fixed_dictionaries({}, optional={"bandwidth": values, "client": st.one_of(_usage(), values),
                                               "server": st.one_of(_usage(), values)})


def _group():
    return st.fixed_dictionaries({}, optional={"tcp": st.one_of(_test(), values), "udp": st.one_of(_test(), values)})


# knb-shaped documents with arbitrary values in every place, and arbitrary documents
knb_like = st.fixed_dictionaries(
    {"data": st.fixed_dictionaries({}, optional={
        "cpu": values, "kernel": values, "k8s-version": values, "mtu": values,
        "idle": st.one_of(_test(), values), "pod2pod": st.one_of(_group(), values),
        "pod2svc": st.one_of(_group(), values)})},
    optional={"metadata": st.one_of(st.dictionaries(st.sampled_from(["name", "generator", "version", "date",
                                                                    "server-node", "client-node"]), values),
                                    values)})
documents = st.one_of(knb_like, values, st.dictionaries(st.text(max_size=8), values))


def _check(data: bytes | str, **kwargs) -> None:
    try:
        doc = knb.import_report(data, **kwargs)
    except InputError as exc:
        assert str(exc)  # a message, never an empty error
        return
    results.validate(doc)
    assert results.first_non_finite(doc) is None
    json.dumps(doc, allow_nan=False)


@SETTINGS
@given(documents)
def test_any_json_is_a_document_or_an_input_error(doc):
    _check(json.dumps(doc))  # json.dumps writes NaN/Infinity, which Python's json reads back


@SETTINGS
@given(documents)
def test_any_yaml_is_a_document_or_an_input_error(doc):
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        return
    _check("metadata:\n  generator: knb\n" + text if not text.startswith("metadata:") else text)
    _check(text)


@SETTINGS
@given(st.binary(max_size=400))
def test_any_bytes_are_a_document_or_an_input_error(data):
    _check(data)
    _check(b"{" + data)
    _check(b"metadata:\n" + data)
    _check(b"Benchmark Results\n" + data)


_LINES = st.sampled_from([
    " Name : {v}", " Version : {v}", " Generator : {v}", "  Discovered MTU : {v}", "  Discovered CPU : {v}",
    "  Idle :", "  Pod to pod :", "  Pod to Service :", "   TCP :", "   UDP :",
    "     bandwidth = {v} Mbit/s", "     client cpu = total {v}% (user {v}%, system {v}%)",
    "     server cpu = total {v}%", "     client ram = {v} MB", "     server ram = {v} MB", "{v}",
])


@SETTINGS
@given(st.lists(st.tuples(_LINES, st.one_of(st.text(max_size=12), st.from_regex(r"[0-9.]{1,8}", fullmatch=True),
                                            st.sampled_from(["nan", "inf", "1e999", "-3", ".", "1.2.3", "101"]))),
                max_size=30))
def test_any_text_report_is_a_document_or_an_input_error(lines):
    text = "=========================================================\n Benchmark Results\n" + "\n".join(
        line.format(v=v) for line, v in lines)
    _check(text)


@SETTINGS
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_duration_is_a_document_or_an_input_error(duration):
    _check((DATA / "lab-run1.json").read_bytes(), duration_s=duration)


def test_real_reports_still_import():
    for name in ("lab-run1.json", "lab-run1.yaml", "lab-run1.txt", "lab-run4-udp-svc-broken.json"):
        doc = knb.import_report((DATA / name).read_bytes())
        results.validate(doc)
        assert not any(isinstance(v, float) and not math.isfinite(v) for v in [doc["parameters"]["duration_s"]])
