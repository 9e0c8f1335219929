"""knb report parsers and ``cnibench import knb``, on reports rendered by the real knb v1.5.0
script from raw data measured on our lab machine by tests/data/knb/make_fixtures.sh (provenance:
tests/data/knb/README.md)."""

from __future__ import annotations

import gzip
import json
import os
import re
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnibench import knb, parsers, results
from cnibench.cli import app
from cnibench.errors import ExitCode, InputError

DATA = Path(__file__).resolve().parent / "data" / "knb"


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_knb_json_is_not_strict_json_as_knb_writes_it():
    """The quirk the parser exists for: knb leaves a carriage return inside two strings."""
    with pytest.raises(json.JSONDecodeError):
        json.loads(read("lab-run1.json"))
    assert b"AMD EPYC\r\"" in read("lab-run1.json") and b"6.18.44-fc-v657\r\"" in read("lab-run1.json")


def test_lab_run1_json_report():
    r = knb.parse_knb_json(read("lab-run1.json"))
    assert r.format == "json" and r.version == "1.5.0"
    assert r.name == "cnibench-lab veth - MTU 1500 - Run 1"
    assert r.metadata["client-node"] == "lab-node-1" and r.metadata["server-node"] == "lab-node-2"
    assert r.metadata["socket-buffer-size"] == "auto" and r.metadata["date"] == "2026-11-22 07:14:20"
    assert r.cpu_model == "AMD EPYC"  # no trailing \r
    assert r.kernel == "6.18.44-fc-v657" and r.mtus == [1500]
    assert r.k8s_version == "none (cnibench-lab network namespaces, no Kubernetes)"
    bw = {(t.section, t.protocol): t.bandwidth_mbit_s for t in r.tests}
    assert bw == {("idle", None): 0, ("pod2pod", "tcp"): 13648, ("pod2pod", "udp"): 1784,
                  ("pod2svc", "tcp"): 11417, ("pod2svc", "udp"): 1431}
    tcp = r.test("pod2pod", "tcp")
    assert tcp.client.cpu_total == 65.02 and tcp.client.cpu["system"] == 63.68 and tcp.client.ram_mb == 338
    assert tcp.server.cpu_total == 65.01 and tcp.server.cpu["user"] == 1.15 and tcp.server.cpu["iowait"] == 0


@pytest.mark.parametrize("run", ["lab-run1", "lab-run2-vxlan", "lab-run3-only-p2ptcp", "lab-run4-udp-svc-broken"])
def test_text_and_json_renderings_of_one_run_agree(run):
    from_json = knb.parse_knb(read(f"{run}.json"))
    from_text = knb.parse_knb(read(f"{run}.txt"))
    assert (from_json.format, from_text.format) == ("json", "text")
    assert from_text.tests == from_json.tests
    assert (from_text.cpu_model, from_text.kernel, from_text.k8s_version, from_text.mtu) == (
        from_json.cpu_model, from_json.kernel, from_json.k8s_version, from_json.mtu)
    assert dict(from_text.metadata) == dict(from_json.metadata)


def test_yaml_rendering_agrees_with_json():
    from_yaml = knb.parse_knb(read("lab-run1.yaml"))
    from_json = knb.parse_knb(read("lab-run1.json"))
    assert from_yaml.format == "yaml" and from_yaml.tests == from_json.tests
    assert (from_yaml.cpu_model, from_yaml.kernel) == ("AMD EPYC", "6.18.44-fc-v657")


def test_vxlan_run_figures():
    r = knb.parse_knb(read("lab-run2-vxlan.txt"))
    assert r.mtus == [1450, 1500]  # two UP interfaces in the server namespace: the VXLAN device and its veth
    assert r.metadata["socket-buffer-size"] == "256K"
    assert r.test("pod2pod", "tcp").bandwidth_mbit_s == 10624
    assert r.test("pod2pod", "udp").bandwidth_mbit_s == 1277
    assert r.test("pod2svc", "udp").server.ram_mb == 329
    assert knb.import_report(read("lab-run2-vxlan.json"))["subjects"][0]["configured_mtu"] == 1450


def test_only_tests_subset():
    r = knb.parse_knb(read("lab-run3-only-p2ptcp.json"))
    assert [(t.section, t.protocol) for t in r.tests] == [("pod2pod", "tcp")]
    assert r.test("pod2pod", "tcp").bandwidth_mbit_s == 13630
    doc = knb.import_report(read("lab-run3-only-p2ptcp.txt"))
    assert [t["name"] for t in doc["subjects"][0]["tests"]] == ["tcp"]
    assert "idle" not in doc["subjects"][0]["extra"]


def test_empty_bandwidth_becomes_an_error_not_a_zero():
    assert b'"bandwidth": ,' in read("lab-run4-udp-svc-broken.json")
    assert b"bandwidth =  Mbit/s" in read("lab-run4-udp-svc-broken.txt")
    r = knb.parse_knb(read("lab-run4-udp-svc-broken.json"))
    assert r.test("pod2svc", "udp").bandwidth_mbit_s is None
    assert r.test("pod2svc", "udp").client.cpu_total == 1.50  # the monitors still ran
    doc = knb.import_report(read("lab-run4-udp-svc-broken.json"))
    tests = {t["name"]: t for t in doc["subjects"][0]["tests"]}
    assert tests["udp-service"]["status"] == "error" and "no bandwidth" in tests["udp-service"]["error"]
    assert tests["udp-service"]["samples"] == []
    assert tests["tcp"]["status"] == "ok" and tests["tcp"]["samples"] == [pytest.approx(12.482)]


def test_report_without_monitor_figures():
    """A run whose monitors produced no samples: knb prints its CPU and RAM figures empty."""
    text = read("lab-run5-no-monitor.txt")
    assert b"      client cpu = \n" in text and b"      server ram =  MB\n" in text
    r = knb.parse_knb(text)
    assert r.version == "1.5.0" and r.mtus == [1500]
    assert r.k8s_version == "none (cnibench-lab network namespaces, no Kubernetes)"
    assert r.metadata["server-node"] == "lab-node-2"
    tcp = r.test("pod2pod", "tcp")
    assert tcp.bandwidth_mbit_s == 11866 and tcp.client.empty and tcp.server.empty
    assert all(t.client.empty and t.server.empty for t in r.tests)
    doc = knb.import_report(text)
    tests = {t["name"]: t for t in doc["subjects"][0]["tests"]}
    assert tests["tcp"]["cpu"] is None and "cpu" not in tests["tcp"]["repetitions"][0]
    assert tests["udp-service"]["stats"]["median"] == pytest.approx(1.771)


def test_result_document():
    doc = knb.import_report(read("lab-run1.json"), subject="lab-veth")
    results.validate(doc)
    assert doc["origin"] == "knb" and doc["parameters"]["repeat"] == 1
    assert doc["parameters"]["duration_s"] == knb.KNB_DEFAULT_DURATION_S
    assert "assumed" in doc["parameters"]["extra"]["duration_source"]
    (subject,) = doc["subjects"]
    assert subject["name"] == "lab-veth" and subject["kind"] == "knb" and subject["configured_mtu"] == 1500
    tests = {t["name"]: t for t in subject["tests"]}
    assert set(tests) == {"tcp", "udp", "tcp-service", "udp-service"}
    assert tests["tcp"]["unit"] == "Gbit/s" and tests["tcp"]["stats"]["median"] == pytest.approx(13.648)
    assert tests["tcp-service"]["path"] == "pod-to-service" and tests["udp"]["kind"] == "udp"
    assert all(t["efficiency"] is None for t in tests.values())  # knb measures no host reference
    cpu = tests["udp"]["cpu"]
    assert cpu["client_busy_percent"] == 80.17 and cpu["server_busy_percent"] == 80.18
    assert cpu["busy_percent"] == pytest.approx((80.17 + 80.18) / 2)
    assert cpu["client_mem_used_mb"] == 340
    assert subject["extra"]["idle"]["client"]["cpu_total_percent"] == 0.97
    env = doc["environment"]
    assert env["kernel"] == "6.18.44-fc-v657" and env["hostname"] == "lab-node-2"
    assert env["extra"]["cpu_model"] == "AMD EPYC"
    assert env["extra"]["kubernetes_version"] == "none (cnibench-lab network namespaces, no Kubernetes)"
    assert env["extra"]["knb"]["version"] == "1.5.0"
    with_duration = knb.import_report(read("lab-run1.json"), duration_s=60)
    assert with_duration["parameters"]["duration_s"] == 60


@pytest.mark.parametrize("data, needle", [
    (b"", "empty"),
    ((Path(__file__).parent / "data" / "iperf3-tcp.json").read_bytes(), "data"),
    # mtime=0: gzip writes the time into its header, and a parameter that differs from one
    # collection to the next breaks pytest-xdist (its workers must collect the same tests)
    (gzip.compress(b"./env\0", mtime=0), "tar"),
    (b"hello world", "not a knb report"),
], ids=["empty", "iperf3-json", "gzip", "text"])
def test_other_inputs_are_refused_with_a_reason(data, needle):
    with pytest.raises(parsers.ParseError) as err:
        knb.parse_knb(data)
    assert needle in str(err.value)


runner = CliRunner()


def test_cli_import_knb_prints_the_document():
    out = runner.invoke(app, ["import", "knb", str(DATA / "lab-run2-vxlan.json")])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    results.validate(doc)
    # named after the file, which a reader can tell apart (knb's run name stays in the environment)
    assert doc["subjects"][0]["name"] == "lab-run2-vxlan"
    assert doc["environment"]["extra"]["knb"]["name"] == "cnibench-lab vxlan - MTU 1450 - Run 2"


def test_cli_import_knb_stdin_keeps_knbs_run_name():
    out = runner.invoke(app, ["import", "knb", "-"], input=read("lab-run2-vxlan.txt"))
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["subjects"][0]["name"] == "cnibench-lab vxlan - MTU 1450 - Run 2"


def test_cli_import_knb_options_and_stdin(tmp_path):
    target = tmp_path / "vxlan.json"
    out = runner.invoke(app, ["import", "knb", "-", "--subject", "vxlan", "--duration", "30", "--output", str(target)],
                        input=read("lab-run2-vxlan.txt"))
    assert out.exit_code == 0, out.output
    doc = json.loads(target.read_text())
    assert doc["subjects"][0]["name"] == "vxlan" and doc["parameters"]["duration_s"] == 30


def test_cli_import_knb_errors(tmp_path):
    missing = runner.invoke(app, ["import", "knb", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    bad = tmp_path / "bad.txt"
    bad.write_text("not a report")
    refused = runner.invoke(app, ["import", "knb", str(bad)])
    assert refused.exit_code == ExitCode.REFUSED and "not a knb report" in refused.output


def test_results_module_reaches_the_knb_parser():
    assert knb.parse_knb(read("lab-run2-vxlan.json")) == knb.parse_knb(read("lab-run2-vxlan.json"))


# ----------------------------------------------------------------- issue 14, item 4: knb facts


def test_created_is_knbs_run_date_and_the_import_time_is_kept():
    doc = knb.import_report(read("lab-run1.json"))
    assert doc["created"] == "2026-11-22T07:14:20+00:00"  # " Date : 2026-11-22 07:14:20 UTC" in lab-run1.txt
    assert doc["environment"]["extra"]["knb"]["imported_utc"] != doc["created"]
    assert knb.import_report(read("lab-run1.txt"))["created"] == doc["created"]
    assert knb.knb_date_iso("2026-13-45 07:14:20") is None and knb.knb_date_iso(None) is None


def test_cpu_is_idle_corrected_per_node():
    """lab-run1.json: pod2pod tcp client 65.02 %, server 65.01 %; idle 0.97 % / 1.06 %; 13648 Mbit/s."""
    tcp = next(t for t in knb.import_report(read("lab-run1.json"))["subjects"][0]["tests"] if t["name"] == "tcp")
    cpu = tcp["cpu"]
    assert cpu["idle_corrected"] is True
    assert cpu["client_busy_above_idle_percent"] == pytest.approx(65.02 - 0.97)
    assert cpu["server_busy_above_idle_percent"] == pytest.approx(65.01 - 1.06)
    assert cpu["busy_above_idle_percent"] == pytest.approx((64.05 + 63.95) / 2)
    assert cpu["busy_percent"] == pytest.approx((65.02 + 65.01) / 2)  # the raw share stays as knb sampled it
    assert cpu["cpu_seconds_per_gbit"] is None  # no CPU count in a knb report


def test_cpu_seconds_per_gbit_with_the_cpu_count_given():
    doc = knb.import_report(read("lab-run1.json"), cpus=2)
    assert doc["environment"]["cpus"] == 2
    cpu = next(t for t in doc["subjects"][0]["tests"] if t["name"] == "tcp")["cpu"]
    # (64.05 % + 63.95 %) of 2 CPUs = 2.56 CPU s per second, at 13.648 Gbit/s
    assert cpu["cpu_seconds_per_gbit"] == pytest.approx(1.28 * 2 / 13.648)
    assert cpu["client_cpu_seconds_per_gbit"] == pytest.approx(0.6405 * 2 / 13.648)
    with pytest.raises(InputError, match="cpus 0"):
        knb.import_report(read("lab-run1.json"), cpus=0)


def test_no_idle_test_no_correction_and_it_says_why():
    data = json.loads(_repaired("lab-run1.json"))
    del data["data"]["idle"]
    tcp = next(t for t in knb.import_report(json.dumps(data), cpus=2)["subjects"][0]["tests"] if t["name"] == "tcp")
    assert tcp["cpu"]["idle_corrected"] is False and "no idle test" in tcp["cpu"]["idle_correction"]
    assert tcp["cpu"]["cpu_seconds_per_gbit"] is None and "busy_above_idle_percent" not in tcp["cpu"]


def test_below_idle_is_not_corrected_into_a_negative_cost():
    data = json.loads(_repaired("lab-run1.json"))
    data["data"]["idle"]["client"]["cpu"]["total"] = 99.0
    tcp = next(t for t in knb.import_report(json.dumps(data))["subjects"][0]["tests"] if t["name"] == "tcp")
    assert tcp["cpu"]["idle_corrected"] is False and "client was no busier than at idle" in tcp["cpu"]["idle_correction"]


def _repaired(name: str) -> str:
    """lab-run1.json as strict JSON (knb leaves \\r inside strings)."""
    return read(name).decode().replace("\r", "")


def test_cli_several_files_into_a_directory(tmp_path):
    out = tmp_path / "docs"
    res = runner.invoke(app, ["import", "knb", str(DATA / "lab-run1.json"), str(DATA / "lab-run2-vxlan.txt"),
                              "--cpus", "2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["lab-run1.json", "lab-run2-vxlan.json"]
    docs = {p.stem: json.loads(p.read_text()) for p in out.iterdir()}
    assert {d["subjects"][0]["name"] for d in docs.values()} == {"lab-run1", "lab-run2-vxlan"}
    assert all(d["environment"]["cpus"] == 2 for d in docs.values())
    assert f"wrote {out / 'lab-run1.json'}" in res.stderr


@pytest.mark.parametrize("argv, needle", [
    (["A", "B"], "2 files and no --out"),
    (["A", "B", "--subject", "x", "-o", "{T}/d"], "--subject 'x' with 2 files"),
    (["A", "A2", "-o", "{T}/d"], "would both be written as"),
    (["A", "NOPE", "-o", "{T}/d"], "cannot read"),
    (["A", "BAD", "-o", "{T}/d"], "no 'data' section"),
    (["A", "B", "-o", "{T}/file"], "is not a directory"),
    (["-", "-", "-o", "{T}/d"], "stdin) given more than once"),
    (["A", "--cpus", "0"], "--cpus 0"),
    (["A", "--out", "{T}/a.json", "--output", "{T}/b.json"], "give it once"),
])
def test_cli_several_files_refusals_write_nothing(tmp_path, argv, needle):
    (tmp_path / "in").mkdir()
    files = {"A": DATA / "lab-run1.json", "B": DATA / "lab-run2-vxlan.json", "A2": DATA / "lab-run1.txt",
             "NOPE": tmp_path / "nope.json", "BAD": tmp_path / "in" / "bad.json"}
    files["BAD"].write_text("{}")
    (tmp_path / "file").write_text("x")
    args = [str(files[a]) if a in files else a.replace("{T}", str(tmp_path)) for a in argv]
    res = runner.invoke(app, ["import", "knb", *args])
    assert res.exit_code == ExitCode.REFUSED and needle in res.stderr, res.output
    assert res.stdout == "" and not (tmp_path / "d").exists() and (tmp_path / "file").read_text() == "x"


def test_cli_out_cannot_overwrite_its_input(tmp_path):
    src = tmp_path / "run.json"
    src.write_bytes(read("lab-run1.json"))
    res = runner.invoke(app, ["import", "knb", str(src), "-o", str(src)])
    assert res.exit_code == ExitCode.REFUSED and "is the input" in res.stderr
    assert src.read_bytes() == read("lab-run1.json")


def test_cli_output_is_the_old_name_of_out(tmp_path):
    res = runner.invoke(app, ["import", "knb", str(DATA / "lab-run1.json"), "--output", str(tmp_path / "a.json")])
    assert res.exit_code == 0 and json.loads((tmp_path / "a.json").read_text())["origin"] == "knb"


@pytest.mark.parametrize("path, value, needle", [
    ("data.pod2pod.tcp.bandwidth", "fast", "'fast' is not a figure knb prints"),
    ("data.pod2pod.tcp.bandwidth", 1e300, "data.pod2pod.tcp.bandwidth"),
    ("data.mtu", "9" * 400, "is not an MTU"),
    ("data.mtu", "0", "'0' is not an MTU (an integer in 68..65535"),
    ("data.mtu", "1450 abc", "'abc' is not an MTU"),
    ("data.idle.client.ram", 1e12, "data.idle.client.ram"),
])
def test_figures_knb_cannot_print_are_refused(path, value, needle):
    data = json.loads(_repaired("lab-run1.json"))
    node = data
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    with pytest.raises(parsers.ParseError, match=re.escape(needle)):
        knb.import_report(json.dumps(data))


def test_an_empty_bandwidth_is_a_failed_test_not_a_refusal():
    """knb prints nothing when iperf3 gave no receiver line (lab-run4-udp-svc-broken.txt)."""
    doc = knb.import_report(read("lab-run4-udp-svc-broken.txt"))
    broken = next(t for t in doc["subjects"][0]["tests"] if t["name"] == "udp-service")
    assert broken["status"] == "error" and "no bandwidth" in broken["error"]


def test_text_report_with_a_word_for_a_bandwidth_is_refused():
    text = read("lab-run1.txt").decode().replace("bandwidth = 13648 Mbit/s", "bandwidth = lots Mbit/s", 1)
    assert "lots" in text
    with pytest.raises(parsers.ParseError, match="line [0-9]+: bandwidth: 'lots'"):
        knb.import_report(text)


def test_a_report_without_tests_is_refused():
    data = json.loads(_repaired("lab-run1.json"))
    data["data"] = {"idle": data["data"]["idle"]}
    with pytest.raises(parsers.ParseError, match="no pod-to-pod or pod-to-service test"):
        knb.import_report(json.dumps(data))


@pytest.mark.parametrize("value", ["0.5", "0.0001", "1.5", "0", "86401", "nan", "inf"])
def test_duration_is_whole_seconds_as_iperf3_reads_them(value):
    res = runner.invoke(app, ["import", "knb", str(DATA / "lab-run1.json"), "--duration", value])
    assert res.exit_code == ExitCode.REFUSED and f"--duration {float(value)!r}" in res.stderr, res.output
    assert "whole seconds in 1..86400" in res.stderr


def test_a_fifo_nobody_writes_to_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    res = runner.invoke(app, ["import", "knb", str(fifo)])
    assert res.exit_code == ExitCode.REFUSED and "a pipe that gave no data" in res.stderr


def test_a_pipe_with_a_writer_is_read(tmp_path):
    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)  # a writer that is there before the reader (Linux: never blocks)
    os.write(writer, read("lab-run1.json"))  # 4 KB: fits the pipe's buffer
    closer = threading.Timer(0.5, os.close, (writer,))  # then its end: the reader sees EOF
    closer.start()
    try:
        res = runner.invoke(app, ["import", "knb", str(fifo)])
    finally:
        closer.join()
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["subjects"][0]["name"] == "report"
