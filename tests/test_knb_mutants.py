"""What the knb importer keeps of a knb report, pinned field by field (issue 18: the mutants of
cnibench/knb.py the other knb tests left alive). The reports are the real knb v1.5.0 renderings in
tests/data/knb (provenance: tests/data/knb/README.md), or copies of them changed in the test."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cnibench import knb
from cnibench.errors import InputError, ParseError

DATA = Path(__file__).resolve().parent / "data" / "knb"


def read(name: str) -> str:
    """A report as knb wrote it (read_text would turn its \\r into \\n)."""
    return (DATA / name).read_bytes().decode()


def lab_run1() -> dict:
    """lab-run1.json as a dict (knb leaves a \\r inside two strings: strict JSON refuses it)."""
    return json.loads(read("lab-run1.json").replace("\r", ""))


def by_name(doc: dict) -> dict:
    return {t["name"]: t for t in doc["subjects"][0]["tests"]}


# knb v1.5.0 (github.com/InfraBuilder/k8s-bench-suite, file knb, sha256 b5b75c2c...882d2c), the
# metadata of its reports: the key compute-json-result and compute-yaml-result write
# (`echo "    \"client-node\": \"$CLIENT_NODE\""`, `echo "  client-node: \"$CLIENT_NODE\""`),
# the label compute-text-result writes (`echo " Client          : $CLIENT_NODE"`), the value in
# lab-run1, and where the result document keeps it.
KNB_METADATA = [
    ("name", "Name", "cnibench-lab veth - MTU 1500 - Run 1", ("environment", "extra", "knb", "name")),
    ("version", "Version", "1.5.0", ("environment", "extra", "knb", "version")),
    ("date", "Date", "2026-11-22 07:14:20", ("environment", "extra", "knb", "date_utc")),
    ("server-node", "Server", "lab-node-2", ("environment", "extra", "server_node")),
    ("server-node", "Server", "lab-node-2", ("environment", "hostname")),
    ("client-node", "Client", "lab-node-1", ("environment", "extra", "client_node")),
    ("socket-buffer-size", "UDP Socket size", "auto", ("environment", "extra", "knb", "udp_socket_buffer_size")),
]


@pytest.mark.parametrize("fmt", ["json", "yaml", "txt"])
@pytest.mark.parametrize("key, label, value, where", KNB_METADATA, ids=lambda v: "/".join(v) if isinstance(v, tuple) else None)
def test_knbs_metadata_lands_in_the_document(fmt, key, label, value, where):
    text = read(f"lab-run1.{fmt}")
    written = {"json": f'    "{key}": "{value}"', "yaml": f'  {key}: "{value}"'}
    if fmt == "txt":  # the text report pads its labels and ends the date with " UTC"
        assert re.search(rf"^ {re.escape(label)} *: {re.escape(value)}( UTC)?$", text, re.MULTILINE)
    else:
        assert written[fmt] in text.splitlines() or written[fmt] + "," in text.splitlines()
    node = knb.import_report(text)
    for step in where:
        node = node[step]
    assert node == value


def test_the_socket_buffer_size_of_a_run_that_set_one():
    doc = knb.import_report(read("lab-run2-vxlan.json"))
    assert doc["environment"]["extra"]["knb"]["udp_socket_buffer_size"] == "256K"  # knb -sbs 256K
    assert doc["environment"]["extra"]["client_node"] == "lab-node-1"


def test_the_parameters_are_knbs_iperf3_command():
    """knb v1.5.0 runs one iperf3 client per test, without -P (one stream): ``iperf3 -c $TARGET
    -O 1 -f m -t $BENCHMARK_DURATION``, UDP ``iperf3 -u -b 0 ...``; -t defaults to 10."""
    doc = knb.import_report(read("lab-run1.json"))
    assert doc["parameters"] == {
        "duration_s": 10.0,
        "repeat": 1,
        "streams": 1,
        "extra": {"duration_source": "not in the knb report: knb's default -d 10 assumed",
                  "tool": "iperf3 -f m (receiver figure)", "udp_bandwidth": "unlimited (-b 0)"},
    }
    assert {name: t["parameters"] for name, t in by_name(doc).items()} == {
        "tcp": {"knb_section": "pod2pod.tcp", "streams": 1},
        "udp": {"knb_section": "pod2pod.udp", "streams": 1},
        "tcp-service": {"knb_section": "pod2svc.tcp", "streams": 1},
        "udp-service": {"knb_section": "pod2svc.udp", "streams": 1},
    }


@pytest.mark.parametrize("name", ["lab-run1.json", "lab-run1.txt"])
def test_the_idle_test_of_both_nodes_is_kept(name):
    """lab-run1.txt: "client cpu = total 0.97% (user 0.09%, nice 0.00%, system 0.78%, iowait 0.05%,
    steal 0.05%)", "server cpu = total 1.06% (user 0.14%, ...)", both "ram = 344 MB"."""
    extra = knb.import_report(read(name))["subjects"][0]["extra"]
    assert extra["idle"] == {
        "client": {"cpu_total_percent": 0.97, "cpu_user_percent": 0.09, "cpu_nice_percent": 0.0,
                   "cpu_system_percent": 0.78, "cpu_iowait_percent": 0.05, "cpu_steal_percent": 0.05,
                   "ram_used_mb": 344.0},
        "server": {"cpu_total_percent": 1.06, "cpu_user_percent": 0.14, "cpu_nice_percent": 0.0,
                   "cpu_system_percent": 0.82, "cpu_iowait_percent": 0.05, "cpu_steal_percent": 0.05,
                   "ram_used_mb": 344.0},
    }


@pytest.mark.parametrize("node, affected", [
    (("pod2pod", "tcp", "server"), {"tcp"}),  # this test's server printed no CPU figure
    (("idle", "client"), {"tcp", "udp", "tcp-service", "udp-service"}),  # the idle test's client did not
])
def test_a_missing_cpu_figure_is_not_idle_corrected_and_it_says_why(node, affected):
    data = lab_run1()
    usage = data["data"]
    for key in node:
        usage = usage[key]
    usage["cpu"] = {k: None for k in usage["cpu"]}  # knb prints every CPU field empty: "user": ,
    tests = by_name(knb.import_report(json.dumps(data)))
    for name in affected:
        for cpu in (tests[name]["cpu"], tests[name]["repetitions"][0]["cpu"]):
            assert cpu["idle_corrected"] is False
            assert cpu["idle_correction"] == "not possible: the idle test or this test has no CPU figure for a node"
            assert "busy_above_idle_percent" not in cpu
    for name in set(tests) - affected:
        assert tests[name]["cpu"]["idle_corrected"] is True


MAX_RAM_MB = 67108864  # 64 TiB in MB (64 * 1024 * 1024): the most RAM a knb "ram" (free -m used) may say


def test_ram_up_to_64_tib_is_kept():
    data = lab_run1()
    data["data"]["pod2pod"]["tcp"]["client"]["ram"] = MAX_RAM_MB
    assert by_name(knb.import_report(json.dumps(data)))["tcp"]["cpu"]["client_mem_used_mb"] == MAX_RAM_MB
    text = read("lab-run1.txt").replace("client ram = 338 MB", f"client ram = {MAX_RAM_MB} MB", 1)
    assert knb.parse_knb_text(text).test("pod2pod", "tcp").client.ram_mb == MAX_RAM_MB


def test_ram_above_64_tib_is_refused_naming_the_field():
    data = lab_run1()
    data["data"]["pod2pod"]["tcp"]["client"]["ram"] = MAX_RAM_MB + 1
    with pytest.raises(ParseError, match=re.escape("knb json: data.pod2pod.tcp.client.ram: 67108865 is not a figure "
                                                   "knb prints (a finite number [0, ")):
        knb.import_report(json.dumps(data))


def test_the_ram_bound_is_printed_whole():
    data = lab_run1()
    data["data"]["pod2pod"]["tcp"]["client"]["ram"] = MAX_RAM_MB + 1
    with pytest.raises(ParseError, match=re.escape("(a finite number [0, 67108864])")):
        knb.import_report(json.dumps(data))


@pytest.mark.parametrize("fmt, value, kind", [
    ("json", '{"Mbit/s": 13648}', "dict"),
    ("json", "[13648]", "list"),
    ("yaml", "!!set {13648: null}", "set"),  # SafeLoader builds a Python set from YAML's !!set
])
def test_a_container_for_a_figure_is_refused_naming_its_type(fmt, value, kind):
    if fmt == "json":
        text = read("lab-run1.json").replace('"bandwidth": 13648,', f'"bandwidth": {value},', 1)
    else:
        text = read("lab-run1.yaml").replace("bandwidth: 13648", f"bandwidth: {value}", 1)
    assert value in text
    with pytest.raises(ParseError) as err:
        knb.import_report(text)
    assert str(err.value) == f"knb {fmt}: data.pod2pod.tcp.bandwidth: expected a number, got a {kind}"


def test_a_tuple_for_a_figure_is_refused_naming_its_type():
    """No parser builds a tuple (JSON, YAML's SafeLoader), but _number's contract covers one."""
    with pytest.raises(ParseError) as err:
        knb._number((13648,), "bandwidth")
    assert str(err.value) == "bandwidth: expected a number, got a tuple"


def test_a_long_word_for_a_figure_is_quoted_by_its_first_40_characters():
    """The message quotes what knb could not have printed, shortened so that it stays one line."""
    data = lab_run1()
    data["data"]["pod2pod"]["tcp"]["bandwidth"] = "fast" * 100
    with pytest.raises(ParseError) as err:
        knb.import_report(json.dumps(data))
    assert str(err.value) == ("knb json: data.pod2pod.tcp.bandwidth: '" + "fast" * 10 + "' is not a figure knb prints "
                              "(a number, or nothing)")


@pytest.mark.parametrize("name", ["lab-run1.json", "lab-run1.yaml"])
def test_a_text_import_of_another_format_says_it_is_not_a_text_report(name):
    with pytest.raises(ParseError) as err:
        knb.parse_knb_text(read(name))
    assert str(err.value) == "knb text: no 'Benchmark Results' banner (is this a knb text report?)"


def test_a_yaml_integer_too_long_to_print_is_refused_as_input():
    # YAML's hex integers have no length limit, and Python refuses to print one of more than
    # 4300 digits (sys.int_max_str_digits): the refusal names its size instead
    text = read("lab-run1.yaml").replace("ram: 338", "ram: 0x" + "f" * 4000, 1)
    with pytest.raises(InputError, match=r"ram: an integer of 16000 bits is not a figure knb prints"):
        knb.import_report(text)
    text = read("lab-run1.yaml").replace('mtu: "1500"', "mtu: 0x" + "f" * 4000, 1)
    with pytest.raises(InputError, match=r"an integer of 16000 bits, more than the"):
        knb.import_report(text)


@pytest.mark.parametrize("value, kind", [
    ("!!binary aGVsbG8=", "bytes"),  # SafeLoader builds bytes from YAML's !!binary
    ("!!set {lab-node-1: null}", "set"),  # and a set from !!set
    ("[lab-node-1]", "list"),
    ("{node: lab-node-1}", "dict"),
])
def test_text_of_bytes_a_set_or_a_container_is_refused_naming_its_type(value, kind):
    text = read("lab-run1.yaml").replace('client-node: "lab-node-1"', f"client-node: {value}", 1)
    assert value in text
    with pytest.raises(ParseError) as err:
        knb.import_report(text)
    assert str(err.value) == f"knb yaml: metadata.client-node: expected text, got a {kind}"


def test_a_tuple_for_text_is_refused_naming_its_type():
    """No parser builds a tuple (JSON, YAML's SafeLoader), but _clean's contract covers one."""
    with pytest.raises(ParseError) as err:
        knb._clean(("lab-node-1",), "client-node")
    assert str(err.value) == "client-node: expected text, got a tuple"


def nested(levels: int) -> object:
    """``levels`` lists, one inside the other."""
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_a_report_nested_up_to_16_levels_is_read_and_deeper_is_refused():
    # the document (1) and its data section (2) hold a key knb does not write: 14 more levels
    # make 16, the bound (MAX_DEPTH); knb's own reports nest 6 (data.pod2pod.tcp.client.cpu)
    data = lab_run1()
    data["data"]["unknown"] = nested(14)
    assert by_name(knb.import_report(json.dumps(data)))["tcp"]["stats"]["median"] == pytest.approx(13.648)
    data["data"]["unknown"] = nested(15)
    with pytest.raises(ParseError) as err:
        knb.import_report(json.dumps(data))
    assert str(err.value) == "knb json: nested deeper than 16 levels (a knb report has 5)"


def test_a_cpu_share_of_100_percent_is_kept_and_above_it_refused_in_a_text_report():
    line = "client cpu = total 65.02% (user 1.20%, nice 0.00%, system 63.68%, iowait 0.00%, steal 0.14%)"
    text = read("lab-run1.txt")
    lineno = text.splitlines().index("      " + line) + 1
    full = text.replace(line, line.replace("system 63.68%", "system 100.00%"), 1)
    assert knb.parse_knb_text(full).test("pod2pod", "tcp").client.cpu["system"] == 100.0
    over = text.replace(line, line.replace("system 63.68%", "system 100.01%"), 1)
    with pytest.raises(ParseError) as err:
        knb.parse_knb_text(over)
    assert str(err.value) == (f"knb text: line {lineno}: client cpu system: '100.01' is not a figure knb prints "
                              "(a finite number [0, 100])")


def test_ram_above_64_tib_in_a_text_report_is_refused_naming_the_line_and_node():
    text = read("lab-run1.txt")
    lineno = text.splitlines().index("      server ram = 338 MB") + 1
    over = text.replace("      server ram = 338 MB", f"      server ram = {MAX_RAM_MB + 1} MB", 1)
    with pytest.raises(ParseError) as err:
        knb.parse_knb_text(over)
    assert str(err.value) == (f"knb text: line {lineno}: server ram: '67108865' is not a figure knb prints "
                              "(a finite number [0, 67108864])")
