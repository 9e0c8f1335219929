"""Pulumi conventions of ``cnibench matrix`` (issue 14, item 7): the passphrase as the Pulumi CLI
reads it, a missing CLI named before the cost table, the ephemeral stacks' files outside the
checkout's ``stacks/``, ESC environments on the ephemeral stacks.

No Pulumi CLI can be installed here. The workspace tests put a recording stand-in named
``pulumi`` on PATH: a script that logs its arguments, working directory and environment and
answers ``pulumi version``. It checks what the Automation API and our backend ask the CLI to do,
and where; not what the real CLI does with it (see docs/matrix.md, "needs the real CLI")."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from cnibench import matrix as mx
from cnibench.cli.matrix import EXIT_REFUSED, run_matrix_command
from cnibench.errors import InputError
from cnibench.matrix import backend

ROOT = Path(__file__).resolve().parent.parent

FAKE_PULUMI = """#!{python}
import json, os, sys
args = sys.argv[1:]
keep = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_BACKEND_URL")
with open(os.environ["FAKE_PULUMI_LOG"], "a") as fh:
    fh.write(json.dumps({{"args": args, "cwd": os.getcwd(), "env": {{k: os.environ.get(k) for k in keep}}}}) + "\\n")
if args[:1] == ["version"]:
    print("v3.272.0")
elif "env" in args and "add" in args and os.environ.get("FAKE_PULUMI_FAIL_ENV"):
    sys.stderr.write("error: environment 'nope/none' not found\\n")
    sys.exit(1)
"""


@pytest.fixture
def fake_cli(tmp_path, monkeypatch):
    """A recording ``pulumi`` on PATH; returns a function that reads its log."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "pulumi"
    exe.write_text(FAKE_PULUMI.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "pulumi.log"
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("CNIBENCH_STATE_DIR", str(tmp_path / "state"))

    def calls() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return calls


def stack_files() -> set[str]:
    return {p.name for p in (ROOT / "stacks").iterdir()}


# --------------------------------------------------------------------------- passphrase


def test_passphrase_precedence_is_the_clis(tmp_path, monkeypatch):
    """pulumi/pulumi pkg/secrets/passphrase readPassphrase: PULUMI_CONFIG_PASSPHRASE when set at
    all (even empty), else a non-empty PULUMI_CONFIG_PASSPHRASE_FILE (relative to the current
    directory), else an error naming both."""
    f = tmp_path / "phrase"
    f.write_text("  secret \n")
    assert backend.passphrase_env({"PULUMI_CONFIG_PASSPHRASE": "x", "PULUMI_CONFIG_PASSPHRASE_FILE": str(f)}) == \
        {"PULUMI_CONFIG_PASSPHRASE": "x"}
    assert backend.passphrase_env({"PULUMI_CONFIG_PASSPHRASE": ""}) == {"PULUMI_CONFIG_PASSPHRASE": ""}
    assert backend.passphrase_env({"PULUMI_CONFIG_PASSPHRASE_FILE": str(f)}) == {"PULUMI_CONFIG_PASSPHRASE_FILE": str(f)}
    monkeypatch.chdir(tmp_path)  # a relative file is resolved here: the CLI runs in the workspace
    assert backend.passphrase_env({"PULUMI_CONFIG_PASSPHRASE_FILE": "phrase"}) == \
        {"PULUMI_CONFIG_PASSPHRASE_FILE": str(f)}
    with pytest.raises(InputError, match="PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE"):
        backend.passphrase_env({"PULUMI_CONFIG_PASSPHRASE_FILE": ""})
    with pytest.raises(InputError, match="PULUMI_CONFIG_PASSPHRASE_FILE=missing: cannot read it"):
        backend.passphrase_env({"PULUMI_CONFIG_PASSPHRASE_FILE": "missing"})
    with pytest.raises(InputError, match="is a directory"):
        backend.passphrase_env({"PULUMI_CONFIG_PASSPHRASE_FILE": str(tmp_path)})


# --------------------------------------------------------------------------- the CLI


def test_a_missing_cli_is_named_with_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(backend, "PULUMI_INSTALL_ROOT", tmp_path / "no-pulumi-home")
    with pytest.raises(backend.PulumiCLIMissing) as exc:
        backend.find_pulumi_cli()
    assert backend.PULUMI_INSTALL_URL in str(exc.value) and "Errno" not in str(exc.value)
    assert exc.value.exit_code == EXIT_REFUSED
    # the installer's place, not yet on this shell's PATH: used from there
    home = tmp_path / "pulumi-home"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "pulumi").write_text("#!/bin/sh\n")
    (home / "bin" / "pulumi").chmod(0o755)
    monkeypatch.setattr(backend, "PULUMI_INSTALL_ROOT", home)
    assert backend.find_pulumi_cli() == str(home)


def test_without_the_cli_the_command_stops_after_the_checks_and_before_the_cost(tmp_path, monkeypatch):
    """The offline checks (configs, the policy check) come first, so a bad value is named with its
    flag on any machine; the missing CLI comes next, before the cost table and the question."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(backend, "PULUMI_INSTALL_ROOT", tmp_path / "no-pulumi-home")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test")
    checked = []
    console = Console(file=open(tmp_path / "c.txt", "w"), width=200)
    code = run_matrix_command(mx.MatrixOptions(variants=("ipvlan",), out=tmp_path / "out"),
                              backend_factory=lambda: mx.AutomationBackend(work_dir=tmp_path / "ws"),
                              preflight=lambda s, o: checked.append(s) or [],
                              confirm=lambda q: pytest.fail("asked"), console=console)
    console.file.close()
    text = (tmp_path / "c.txt").read_text()
    assert code == EXIT_REFUSED
    assert "the Pulumi CLI (pulumi) is not installed or not on PATH" in text
    assert "https://www.pulumi.com/docs/iac/download-install/" in text
    assert "estimated cost" not in text  # before the cost table and the question
    assert checked == ["ipvlan"]  # after the offline policy check
    assert "[Errno 2]" not in text and not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the workspace


def test_the_workspace_keeps_stack_files_out_of_the_checkout(tmp_path):
    ws = backend.write_workspace(ROOT, tmp_path / "ws")
    project = yaml.safe_load((ws / "Pulumi.yaml").read_text())
    original = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert "stackConfigDir" not in project  # stack settings files land in the workspace itself
    assert project["name"] == original["name"] and project["config"] == original["config"]
    venv = project["runtime"]["options"]["virtualenv"]
    assert os.path.isabs(venv) and Path(venv) == ROOT / original["runtime"]["options"]["virtualenv"]
    shim = (ws / "__main__.py").read_text()
    assert repr(str(ROOT / "__main__.py")) in shim and "run_name='__main__'" in shim
    compile(shim, "__main__.py", "exec")
    assert stat.S_IMODE(ws.stat().st_mode) == 0o700


def test_automation_backend_runs_the_cli_in_the_workspace_with_the_passphrase_file(tmp_path, monkeypatch, fake_cli):
    phrase = tmp_path / "phrase"
    phrase.write_text("secret\n")
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", "phrase")
    before = stack_files()
    be = mx.AutomationBackend(ROOT, "file://" + str(tmp_path / "state-backend"), environments=("myorg/aws/creds",))
    assert be.work_dir == tmp_path / "state" / backend.WORKSPACE_NAME  # <state dir>/workspace by default
    name = mx.stack_name("ipvlan")
    handle = be.create(name)
    handle.set_config({"variant": "ipvlan", "expiryHours": 9})
    calls = fake_cli()
    ops = [c["args"] for c in calls if c["args"][:1] != ["version"]]
    init = next(a for a in ops if a[1:3] == ["stack", "init"])
    assert init[3] == name and "--secrets-provider" in init and "passphrase" in init
    env_add = next(a for a in ops if "env" in a)
    assert env_add[env_add.index("env") + 1:] [:2] == ["add", "myorg/aws/creds"]
    assert "--stack" in env_add and name in env_add
    assert any("set-all" in a and "cnibench:variant=ipvlan" in a for a in ops)
    for c in calls:
        if c["args"][:1] == ["version"]:
            continue
        assert Path(c["cwd"]) == be.work_dir, c
        assert c["env"]["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(phrase) and c["env"]["PULUMI_CONFIG_PASSPHRASE"] is None
        assert c["env"]["PULUMI_BACKEND_URL"] == "file://" + str(tmp_path / "state-backend")
    assert stack_files() == before  # nothing in the checkout's stacks/


def test_an_esc_environment_that_cannot_be_imported_removes_the_empty_stack(tmp_path, monkeypatch, fake_cli):
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test")
    monkeypatch.setenv("FAKE_PULUMI_FAIL_ENV", "1")
    be = mx.AutomationBackend(ROOT, "file://" + str(tmp_path / "b"), work_dir=tmp_path / "ws",
                              environments=("nope/none",))
    name = mx.stack_name("ipvlan")
    with pytest.raises(RuntimeError, match="cannot import the ESC environment.*nope/none"):
        be.create(name)
    ops = [c["args"] for c in fake_cli()]
    assert any(a[1:3] == ["stack", "rm"] and name in a for a in ops)


def test_the_matrix_command_passes_esc_environments_and_the_workspace(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cnibench.cli import app

    made = {}

    def fake_backend(*args, **kwargs):
        made.update(kwargs)
        raise InputError("stop here")

    monkeypatch.setattr(mx, "AutomationBackend", fake_backend)
    res = CliRunner().invoke(app, ["matrix", "-v", "ipvlan", "--esc-env", "org/aws/creds", "--esc-env", "org/x/y",
                                   "--state-dir", str(tmp_path / "st"), "--out", str(tmp_path / "out")])
    assert res.exit_code == EXIT_REFUSED and "stop here" in res.stderr
    assert made["environments"] == ("org/aws/creds", "org/x/y")
    assert made["work_dir"] == tmp_path / "st" / backend.WORKSPACE_NAME


def test_add_environments_exists_in_this_pulumi():
    """The Automation API call the --esc-env option relies on (pulumi >= 3.95 CLI)."""
    from pulumi.automation import LocalWorkspace, Stack

    assert callable(getattr(Stack, "add_environments", None))
    assert callable(getattr(LocalWorkspace, "add_environments", None))
