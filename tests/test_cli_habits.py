"""CLI habits (issue 14, item 6) as users of kubectl, pulumi and cilium expect them: ``-h`` and
``--help`` on every command, ``--version``, shell completion, one meaning per short flag,
``--json`` on stdout with everything human on stderr, the variant names never cut, and
completion of ``--datapath``/``--variant``. No lab is built: ``run_lab`` is stubbed."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cnibench import __version__
from cnibench.cli import SHORT_FLAGS, app
from cnibench.errors import ExitCode
from cnibench.variants import CATALOG

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


# Typer 0.29 carries its own copy of click (typer._click): the tree is walked by duck typing


def command_paths() -> list[tuple[str, ...]]:
    """Every command of the tree: (), ("lab",), ..., ("import", "knb")."""
    found: list[tuple[str, ...]] = []

    def walk(cmd, path: tuple[str, ...]) -> None:
        found.append(path)
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def options_of(path: tuple[str, ...]) -> list:
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return [p for p in cmd.params if p.param_type_name == "option"]


PATHS = command_paths()


def test_the_tree_has_every_command():
    assert {("variants",), ("lab",), ("check",), ("matrix",), ("report",), ("import", "knb")} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "cnibench")
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_every_command_has_h_and_help(path, flag):
    res = runner.invoke(app, [*path, flag], prog_name="cnibench")
    assert res.exit_code == 0, res.output
    usage = " ".join(["Usage: cnibench", *path])
    assert usage in " ".join(res.stdout.split()), res.stdout
    assert "-h" in res.stdout and "--help" in res.stdout


def test_version():
    res = runner.invoke(app, ["--version"], prog_name="cnibench")
    assert res.exit_code == 0 and res.stdout == f"cnibench {__version__}\n"


def test_shell_completion_is_on():
    res = runner.invoke(app, ["--help"], prog_name="cnibench")
    assert "--install-completion" in res.stdout and "--show-completion" in res.stdout


def test_one_meaning_per_short_flag_across_commands():
    """-o is where output is written everywhere, -d only --datapath, -s only --stack ...
    (SHORT_FLAGS in cnibench/cli/__init__.py)."""
    meanings: dict[str, set[str]] = {}
    where: dict[str, list[str]] = {}
    for path in PATHS:
        for param in options_of(path):
            longs = [o for o in (*param.opts, *param.secondary_opts) if o.startswith("--")]
            for short in (o for o in param.opts if re.fullmatch(r"-[A-Za-z]", o)):
                meanings.setdefault(short, set()).update(longs)
                where.setdefault(short, []).append(" ".join(path) or "cnibench")
    for short, longs in meanings.items():
        assert len(longs) == 1, f"{short} means {sorted(longs)} (in {where[short]})"
        assert short in SHORT_FLAGS and longs == {SHORT_FLAGS[short]}, (short, longs, where[short])
    assert "-h" not in meanings  # -h is the help option of every command (context help_option_names), nothing else


def test_out_is_a_path_wherever_it_exists():
    for path in PATHS:
        for param in options_of(path):
            if "--out" in param.opts:
                assert "-o" in param.opts, path
                assert param.type_descriptor.annotation in (Path, Path | None), (path, param.type_descriptor)


# --------------------------------------------------------------------------- completion


def complete(args: list[str], incomplete: str) -> list[str]:
    """What bash completion offers (the same path as --install-completion's script)."""
    words = " ".join(["cnibench", *args, incomplete])
    env = {"_CNIBENCH_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(args) + 1)}
    res = runner.invoke(app, [], env=env, prog_name="cnibench")
    assert res.exit_code == 0, res.output
    return res.stdout.split()


def test_datapath_and_variant_complete():
    assert complete(["lab", "-d"], "vx") == ["vxlan"]
    assert "host-gw" in complete(["lab", "--datapath"], "")
    assert complete(["matrix", "-v"], "cilium-native") == ["cilium-native", "cilium-native-kpr"]
    assert set(complete(["matrix", "--variant"], "")) == set(CATALOG)


def test_unknown_names_keep_their_clear_errors(tmp_path):
    res = runner.invoke(app, ["matrix", "-v", "calico", "--out", str(tmp_path)])
    assert res.exit_code == ExitCode.REFUSED
    assert "unknown variant(s) calico" in res.stderr and "cilium-native" in res.stderr and res.stdout == ""
    res = runner.invoke(app, ["lab", "-d", "calico", "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code == ExitCode.REFUSED and res.stdout == ""
    assert "known: host" in " ".join(res.stderr.split())


# --------------------------------------------------------------------------- variants


def test_variants_json():
    res = runner.invoke(app, ["variants", "--json"])
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert [v["name"] for v in doc] == list(CATALOG)
    first = doc[0]
    assert {"name", "cni", "version", "install", "underlay", "encap_bytes", "ports", "min_kernel",
            "replaces_kube_proxy", "stack_file"} <= set(first)
    assert all(isinstance(p["protocol"], str) for v in doc for p in v["ports"])
    assert res.stderr == ""


@pytest.mark.parametrize("columns", ["80", "100", "200"])
def test_variants_table_never_cuts_a_name_on_a_narrow_terminal(columns):
    res = runner.invoke(app, ["variants"], env={"COLUMNS": columns})
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= int(columns)
    for name in CATALOG:  # whole, on one line, as a cell of its own (not cut, folded or ellipsized)
        assert any(re.search(rf"(^|[\s│┃]){re.escape(name)}([\s│┃]|$)", line) for line in lines), \
            f"{name} cut or wrapped at {columns} columns:\n{res.stdout}"
    assert "…" not in res.stdout
    # every column is still there (at 80 the kube-proxy column becomes a line under the table)
    assert "kernel" in res.stdout and "ports" in res.stdout and "kube-proxy" in res.stdout
    assert "cilium-native-kpr" in res.stdout.split("kube-proxy", 1)[1]


# --------------------------------------------------------------------------- check


def test_check_json_on_stdout_heading_on_stderr():
    res = runner.invoke(app, ["check", "-s", "cilium-native", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["stack"] == "cilium-native" and doc["mandatory_violations"] == [] and doc["exit_code"] == 0
    assert doc["findings"] and {"rule", "level", "verdict", "blocking", "messages"} <= set(doc["findings"][0])
    assert "offline policy check" in res.stderr


def test_check_json_with_a_violation_exits_3():
    res = runner.invoke(app, ["check", "-s", "flannel-aws-vpc", "-c", "routeTableQuota=1", "--json"])
    assert res.exit_code == ExitCode.POLICY, res.output
    doc = json.loads(res.stdout)
    assert doc["mandatory_violations"] and doc["exit_code"] == ExitCode.POLICY
    assert doc["overrides"] == {"routeTableQuota": "1"}


def test_check_errors_go_to_stderr():
    res = runner.invoke(app, ["check", "-s", "cilium-native", "-c", "podCidr=bogus"])
    assert res.exit_code == ExitCode.REFUSED
    assert "configuration error" in res.stderr and "podCidr" in res.stderr
    assert "configuration error" not in res.stdout


# --------------------------------------------------------------------------- lab (run_lab stubbed)


@pytest.fixture
def stub_lab(monkeypatch, tmp_path):
    from cnibench.lab import runner as lab_runner

    seen = {}

    def fake_run_lab(opts, console):
        seen["opts"] = opts
        console.print("progress: a line a human reads")
        doc = {"schema_version": 2, "origin": "lab", "run_id": opts.run_id, "subjects": []}
        return lab_runner.LabRun(doc, seen.get("code", 0), json_path=tmp_path / "lab.json", run_id="stub")

    monkeypatch.setattr(lab_runner, "run_lab", fake_run_lab)
    return seen


def test_lab_json_prints_the_document_on_stdout_only(tmp_path, stub_lab):
    res = runner.invoke(app, ["lab", "--json", "-d", "vxlan", "-d", "host-gw", "-r", "2", "-P", "4",
                              "-o", str(tmp_path / "out"), "--run-id", "abcd1234", "--no-chart"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc == {"schema_version": 2, "origin": "lab", "run_id": "abcd1234", "subjects": []}
    assert "progress" in res.stderr and "progress" not in res.stdout
    opts = stub_lab["opts"]
    assert opts.datapaths == ("vxlan", "host-gw") and opts.repeat == 2 and opts.streams == 4
    assert opts.out == tmp_path / "out" and opts.chart is False


def test_lab_json_keeps_the_runs_exit_code(tmp_path, stub_lab):
    stub_lab["code"] = ExitCode.FAILED
    res = runner.invoke(app, ["lab", "--json", "-o", str(tmp_path / "out")])
    assert res.exit_code == ExitCode.FAILED
    assert json.loads(res.stdout)["origin"] == "lab"


def test_lab_json_refused_argument_prints_nothing_on_stdout(tmp_path, stub_lab):
    res = runner.invoke(app, ["lab", "--json", "--streams", "1000", "-o", str(tmp_path / "out")])
    assert res.exit_code == ExitCode.REFUSED and res.stdout == ""
    assert "--streams 1000" in res.stderr and "opts" not in stub_lab


def test_lab_cleanup_json(monkeypatch):
    from cnibench.lab import nsutil

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(nsutil, "cleanup_stale", lambda: {"dead01": ["cnb-dead01-vxlan-n1"]})
    res = runner.invoke(app, ["lab", "--cleanup", "--json"])
    assert res.exit_code == 0
    assert json.loads(res.stdout) == {"removed": {"dead01": ["cnb-dead01-vxlan-n1"]}}
    assert "run dead01: removed" in res.stderr


# --------------------------------------------------------------------------- errors on stderr


def test_matrix_errors_go_to_stderr(tmp_path):
    res = runner.invoke(app, ["matrix", "--out", str(tmp_path)])
    assert res.exit_code == ExitCode.REFUSED and "--variant" in res.stderr and res.stdout == ""


def test_usage_errors_go_to_stderr():
    res = runner.invoke(app, ["lab", "--no-such-option"])
    assert res.exit_code == 2 and "No such option" in res.stderr and res.stdout == ""
