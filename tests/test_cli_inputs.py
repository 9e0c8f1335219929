"""Bad input to ``cnibench lab``, ``cnibench report`` and ``cnibench import knb`` (issue 15): each is
refused with exit 2 and a message naming the flag, key or file and what is valid, before anything
is created; nothing is written or left behind. The lab cases need no root and build nothing:
validation happens before the preflight, and no namespace or state directory of the run appears."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnibench import results
from cnibench.cli import app
from cnibench.errors import ExitCode, InputError

DATA = Path(__file__).resolve().parent / "data"
KNB = DATA / "knb"
runner = CliRunner()


def listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# --------------------------------------------------------------------------- lab


def run_namespaces(run_id: str) -> list[str]:
    try:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    except FileNotFoundError:
        return []
    return [line for line in out.splitlines() if line.startswith(f"cnb-{run_id}-")]


LAB_CASES = [
    # (arguments, what the message must say)
    (["--loads", "abc"], ["--loads 'abc'", "(0, 10]"]),
    (["--loads", "0.3,nan"], ["--loads 0.3,nan", "(0, 10]"]),
    (["--loads", "0.3,0.30"], ["--loads 0.3,0.3", "at most once"]),
    (["--loads", "11"], ["--loads 11", "(0, 10]"]),
    (["--duration", "nan"], ["--duration nan", "[1, 3600]"]),
    (["--duration", "inf"], ["--duration inf", "[1, 3600]"]),
    (["--duration", "0.4"], ["--duration 0.4", "whole number of seconds", "-t 0.4 as 0"]),
    (["--duration", "1.5"], ["--duration 1.5", "whole number of seconds"]),
    (["--duration", "0"], ["--duration 0", "[1, 3600]"]),
    (["--duration", "100000"], ["--duration 100000", "[1, 3600]", "two weeks"]),
    (["--rr-duration", "-1"], ["--rr-duration -1", "[1, 3600]"]),
    (["--rr-duration", "nan"], ["--rr-duration nan", "[1, 3600]"]),
    (["--streams", "1000"], ["--streams 1000", "1 to 128"]),
    (["--streams", "0"], ["--streams 0", "1 to 128"]),
    (["--omit", "-1"], ["--omit -1", "[0, 60]"]),
    (["--omit", "61"], ["--omit 61", "[0, 60]"]),
    (["--repeat", "0"], ["--repeat 0", "[1, 100]"]),
    (["--repeat", "101"], ["--repeat 101", "[1, 100]"]),
    (["--repeat-min", "5", "--repeat-max", "3"], ["--repeat-min 5 / --repeat-max 3"]),
    (["--repeat-max", "1000"], ["--repeat-max 1000", "<= 100"]),
    (["--target-half-width", "0"], ["--target-half-width 0", "[0.001, 1]"]),
    (["--target-half-width", "nan"], ["--target-half-width nan", "[0.001, 1]"]),
    (["--busy-threshold", "2"], ["--busy-threshold 2", "[0.01, 1]"]),
    (["--udp-rate", "0"], ["--udp-rate 0", "[1, 100000]"]),
    (["--udp-rate", "1000000"], ["--udp-rate 1000000", "[1, 100000]"]),
    (["--pin-cpu", "-5"], ["--pin-cpu -5", "-1 for unpinned"]),
    (["--pin-cpu", "4096"], ["--pin-cpu 4096", "may run on CPUs"]),
    (["--run-id", "x"], ["--run-id 'x'", "4 to 12 lowercase letters or digits"]),
    (["--run-id", "BAD_Id!"], ["--run-id 'BAD_Id!'"]),
    (["--service-proxy", "ipvs"], ["--service-proxy 'ipvs'", "nft or iptables"]),
    (["-d", "calico"], ["--datapath", "calico", "known: host", "wireguard"]),
    (["--ipvs", "--no-service"], ["--ipvs", "--no-service"]),
]


@pytest.mark.parametrize("args,expected", LAB_CASES, ids=[" ".join(a) for a, _ in LAB_CASES])
def test_lab_refuses_bad_arguments_before_anything_exists(tmp_path, args, expected):
    run_id = "in" + secrets.token_hex(4)
    out = tmp_path / "out"
    res = runner.invoke(app, ["lab", "--out", str(out), "--run-id", run_id, *args])
    assert res.exit_code == ExitCode.REFUSED, res.output
    text = " ".join(res.output.split())  # rich wraps long lines
    for part in expected:
        assert part in text, text
    assert "Traceback" not in res.output
    assert not out.exists()
    assert not Path(f"/run/cnibench/{run_id}").exists()
    assert run_namespaces(run_id) == []


@pytest.mark.parametrize("kind", ["file", "file-parent", "unwritable"])
def test_lab_refuses_an_out_it_could_not_write_before_the_run(tmp_path, kind):
    """A bad --out used to be found only when the results were written, after the whole run."""
    run_id = "in" + secrets.token_hex(4)
    (tmp_path / "f").write_text("x")
    out = {"file": tmp_path / "f", "file-parent": tmp_path / "f" / "sub", "unwritable": Path("/proc/cnibench-x")}[kind]
    before = listing(tmp_path)
    res = runner.invoke(app, ["lab", "--out", str(out), "--run-id", run_id])
    assert res.exit_code == ExitCode.REFUSED, res.output
    assert f"--out {out}" in " ".join(res.output.split())
    assert listing(tmp_path) == before
    assert not Path(f"/run/cnibench/{run_id}").exists() and run_namespaces(run_id) == []


def _failed_doc(run_id: str) -> dict:
    from cnibench.suite import records

    doc = results.new_document("lab", run_id=run_id, environment=results.collect_environment(underlay_mtu=1500),
                               parameters={"duration_s": 1.0, "repeat": 1, "streams": 1}, reference="host")
    for name in ("host", "vxlan"):
        subject = results.new_subject(name, "reference" if name == "host" else "datapath")
        for tname, kind in (("tcp", "tcp"), ("udp", "udp")):
            test = results.new_test(tname, kind, "pod-to-pod", "Gbit/s", tool="iperf3")
            test["repetitions"].append(records.error_record(0, "iperf3: error - the server is busy"))
            subject["tests"].append(test)
        doc["subjects"].append(subject)
    return results.finalize(doc)


def test_a_lab_run_in_which_every_test_failed_exits_1(tmp_path, monkeypatch):
    """The exit code comes from the document: a run whose measurements all failed is not a
    success (README: exit 1, the work ran and part of it failed). No namespace is built here:
    the measuring part (runner._run) returns such a document."""
    from cnibench.lab import nsutil, preflight
    from cnibench.lab import runner as lab_runner

    run_id = "in" + secrets.token_hex(4)
    monkeypatch.setattr(preflight, "check", lambda **_: None)
    monkeypatch.setattr(nsutil, "claim_run", lambda rid: tmp_path / "state")
    monkeypatch.setattr(nsutil, "cleanup_run", lambda rid: {})
    monkeypatch.setattr(nsutil, "run_namespaces", lambda rid: [])
    monkeypatch.setattr(nsutil, "run_processes", lambda rid: [])
    monkeypatch.setattr(lab_runner, "_run", lambda opts, names, rid, *a: _failed_doc(rid))
    res = runner.invoke(app, ["lab", "--out", str(tmp_path / "out"), "--run-id", run_id, "--quick", "--no-chart",
                              "-d", "vxlan"])
    assert res.exit_code == ExitCode.FAILED, res.output
    assert "failed: host: every test; vxlan: every test" in " ".join(res.output.split())
    assert (tmp_path / "out" / f"lab-{run_id}.json").is_file()  # the figures are still written


# --------------------------------------------------------------------------- report


def _good_doc(tmp_path: Path) -> Path:
    src = tmp_path / "in" / "good.json"
    src.parent.mkdir(parents=True, exist_ok=True)
    res = runner.invoke(app, ["import", "knb", str(KNB / "lab-run1.json"), "--output", str(src)])
    assert res.exit_code == 0, res.output
    return src


@pytest.mark.parametrize("kind", ["file", "file-parent", "unwritable"])
def test_report_refuses_an_out_it_could_not_write(tmp_path, kind):
    _good_doc(tmp_path)
    (tmp_path / "f").write_text("x")
    out = {"file": tmp_path / "f", "file-parent": tmp_path / "f" / "sub", "unwritable": Path("/proc/cnibench-x")}[kind]
    before = listing(tmp_path)
    res = runner.invoke(app, ["report", str(tmp_path / "in"), "--out", str(out)])
    assert res.exit_code == ExitCode.REFUSED, res.output
    text = " ".join(res.output.split())
    assert f"--out {out}" in text and ("not a directory" in text or "cannot create" in text)
    assert "Traceback" not in res.output and listing(tmp_path) == before


def test_report_does_not_block_on_a_fifo_and_refuses_nan(tmp_path):
    good = _good_doc(tmp_path)
    os.mkfifo(tmp_path / "in" / "fifo.json")
    doc = json.loads(good.read_text())
    doc["run_id"] = "nan-run"
    doc["subjects"][0]["tests"][0]["stats"]["median"] = float("nan")
    (tmp_path / "in" / "nan.json").write_text(json.dumps(doc))  # json.dumps writes NaN
    res = subprocess.run([".venv/bin/cnibench", "report", str(tmp_path / "in"), "--out", str(tmp_path / "rep")],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "250"},
                         cwd=Path(__file__).resolve().parent.parent)
    assert res.returncode == 0, res.stderr
    assert "fifo.json: not a regular file (a FIFO)" in res.stderr
    assert "nan.json: at subjects/0/tests/0/stats/median: nan is not a finite number" in res.stderr
    copies = listing(tmp_path / "rep" / "results")
    assert len(copies) == 1  # only the good document
    for p in (tmp_path / "rep").rglob("*"):
        if p.suffix in (".json", ".csv", ".md"):
            assert "NaN" not in p.read_text() and "nan" not in p.read_text().lower().split(), p


def test_report_with_only_a_nan_document_is_refused(tmp_path):
    good = _good_doc(tmp_path)
    doc = json.loads(good.read_text())
    doc["subjects"][0]["tests"][0]["stats"]["median"] = float("inf")
    good.write_text(json.dumps(doc))
    res = runner.invoke(app, ["report", str(tmp_path / "in"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == ExitCode.REFUSED, res.output
    text = " ".join(res.output.split())
    assert "good.json: at subjects/0/tests/0/stats/median: inf is not a finite number" in text
    assert not (tmp_path / "rep").exists()


def test_report_copies_of_a_private_document_stay_private(tmp_path):
    """Item 7: a copy must never be more readable than the document it copies."""
    good = _good_doc(tmp_path)
    good.chmod(0o600)
    res = runner.invoke(app, ["report", str(tmp_path / "in"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE((tmp_path / "rep" / "results").stat().st_mode) == 0o700


# --------------------------------------------------------------------------- import knb


@pytest.mark.parametrize("kind", ["directory", "unwritable", "no-parent"])
def test_import_refuses_an_output_it_could_not_write(tmp_path, kind):
    target = {"directory": tmp_path, "unwritable": Path("/proc/cnibench-x.json"),
              "no-parent": tmp_path / "missing" / "x.json"}[kind]
    before = listing(tmp_path)
    res = runner.invoke(app, ["import", "knb", str(KNB / "lab-run1.json"), "--output", str(target)])
    assert res.exit_code == ExitCode.REFUSED, res.output
    assert f"--output {target}" in res.output and "Traceback" not in res.output
    assert listing(tmp_path) == before


def _bomb(levels: int = 12) -> str:
    lines = ["metadata:", "  generator: knb", "data:", "  a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name,content,expected", [
    ("deep.json", '{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", "knb json: nested deeper than 16 levels"),
    ("deep2.json", '{"data": ' + '{"a":' * 2000 + "1" + "}" * 2001, "knb json: nested deeper than 16 levels"),
    ("deep.yaml", "metadata:\n  name: x\ndata: " + "[" * 50_000 + "]" * 50_000, "knb yaml: nested deeper"),
    ("bomb.yaml", _bomb(), "knb yaml: line 4: anchors and aliases (&, *) are refused"),
    ("anchor.yaml", "metadata: &m\n  generator: knb\ndata: {}\n", "knb yaml: line 1: anchors and aliases"),
    ("big.txt", "Benchmark Results\n" + "x" * (2 * 1024 * 1024), "larger than the 1048576 bytes"),
    ("nan.json", '{"data": {"pod2pod": {"tcp": {"bandwidth": NaN}}}}',
     "data.pod2pod.tcp.bandwidth: nan is not a figure knb prints"),
    ("huge.json", '{"data": {"pod2pod": {"tcp": {"bandwidth": 1e999}}}}', "data.pod2pod.tcp.bandwidth: inf"),
    ("neg.yaml", "metadata:\n  generator: knb\ndata:\n  pod2pod:\n    tcp:\n      bandwidth: -5\n",
     "data.pod2pod.tcp.bandwidth: -5 is not a figure knb prints"),
    ("list.json", '{"metadata": [], "data": {}}', "knb json: metadata: expected a mapping, got a list"),
    ("cpu.txt", "Benchmark Results\n  Pod to pod :\n   TCP :\n     client cpu = total 101%\n",
     "knb text: line 4: client cpu total: '101' is not a figure knb prints (a finite number [0, 100])"),
])
def test_import_refuses_hostile_reports(tmp_path, name, content, expected):
    src = tmp_path / name
    src.write_text(content)
    out = tmp_path / "out.json"
    res = runner.invoke(app, ["import", "knb", str(src), "--output", str(out)])
    assert res.exit_code == ExitCode.REFUSED, res.output[-2000:]
    assert f"{src}: " in res.output and expected in res.output, res.output[-2000:]
    assert "Traceback" not in res.output and not out.exists() and listing(tmp_path) == [name]


def test_import_refuses_a_garbled_cpu_figure(tmp_path):
    """'1.2.3' matched the text parser's [0-9.]+ and raised ValueError (a traceback), then was read
    as no figure: knb prints a number or nothing, so it is refused, naming the line."""
    src = tmp_path / "r.txt"
    src.write_text("Benchmark Results\n  Pod to pod :\n   TCP :\n     bandwidth = 900 Mbit/s\n"
                   "     client cpu = total 1.2.3%\n")
    res = runner.invoke(app, ["import", "knb", str(src)])
    assert res.exit_code == ExitCode.REFUSED and res.stdout == "", res.output
    assert "line 5: client cpu total: '1.2.3' is not a figure knb prints" in res.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1", "100000"])
def test_import_refuses_a_bad_duration(tmp_path, value):
    res = runner.invoke(app, ["import", "knb", str(KNB / "lab-run1.json"), "--duration", value,
                              "--output", str(tmp_path / "x.json")])
    assert res.exit_code == ExitCode.REFUSED, res.output
    assert f"--duration {float(value)!r}" in res.output and "whole seconds in 1..86400" in res.output
    assert listing(tmp_path) == []


def test_import_output_is_whole_or_absent_and_keeps_the_mode(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")
    target.chmod(0o600)
    res = runner.invoke(app, ["import", "knb", str(KNB / "lab-run1.json"), "--output", str(target)])
    assert res.exit_code == 0, res.output
    results.parse_document(target.read_bytes(), target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and listing(tmp_path) == ["x.json"]


def test_an_out_we_may_not_look_at_is_an_input_error(tmp_path, monkeypatch):
    """As a user, --out under another user's mode-700 directory: stat raises EACCES (root never
    sees it, so the call is made to fail here); a clear error, not a PermissionError traceback."""
    from cnibench.cli import console

    target = tmp_path / "private" / "out"

    def denied(self, *a, **k):
        if str(self).startswith(str(tmp_path / "private")):
            raise PermissionError(13, "Permission denied", str(self))
        return orig(self, *a, **k)

    orig = Path.stat
    monkeypatch.setattr(Path, "stat", denied)
    with pytest.raises(InputError, match=r"--out .*/private/out: cannot look at it: Permission denied"):
        console.check_output_dir(target, "--out")
