"""knb report parsers and ``cnibench import knb``, on reports rendered by the real knb v1.5.0
script from raw data measured on our lab machine by tests/data/knb/make_fixtures.sh (provenance:
tests/data/knb/README.md)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnibench import knb, parsers, results
from cnibench.cli import app
from cnibench.errors import ExitCode

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
    (gzip.compress(b"./env\0"), "tar"),
    (b"hello world", "not a knb report"),
])
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
    assert doc["subjects"][0]["name"] == "cnibench-lab vxlan - MTU 1450 - Run 2"


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
