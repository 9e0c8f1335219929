"""Fault injection for the matrix's "always destroyed" (issue 15, items 6 and 7).

The Pulumi CLI cannot be installed here: the runner runs on the recording double of
tests/test_matrix.py (the Automation-API boundary). Where the behaviour lives below that
boundary (process groups, signals to the CLI, liveness of a PID), stand-in processes
(``sleep``, ``sh`` with traps) play the CLI: they test our process control, not Pulumi.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest
from botocore.stub import Stubber
from rich.console import Console
from test_matrix import CtrlC, FakeBackend, Listed, only_stack, run, ups_started

from cnibench import matrix as mx
from cnibench.cli.matrix import EXIT_INTERRUPTED, EXIT_LEFT_BEHIND, run_cleanup_command
from cnibench.matrix import backend as mxbackend
from cnibench.matrix import procs, sweep
from cnibench.matrix.owner import OwnerRecord


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    """Owner records in the test's directory, never in the user's ~/.local/state."""
    path = tmp_path / "state"
    monkeypatch.setenv("CNIBENCH_STATE_DIR", str(path))
    return path


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def cleanup_cmd(tmp_path, backend, state_dir, **kw):
    kw.setdefault("include_unexpired", False)
    kw.setdefault("yes", True)
    kw.setdefault("confirm", lambda q: True)
    console = Console(file=open(tmp_path / "cleanup.txt", "w"), width=250)
    code = run_cleanup_command(backend, console=console, state_dir=state_dir, stop_graces=(2.0, 1.0, 1.0), **kw)
    console.file.close()
    return code, (tmp_path / "cleanup.txt").read_text()


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


# --------------------------------------------------------------------------- the log


def test_out_directory_replaced_by_a_file_mid_run_still_destroys(tmp_path):
    backend = FakeBackend()
    out = tmp_path / "out"

    def break_out(name):  # at create time: the out dir disappears and a file takes its name
        for p in out.iterdir():
            p.unlink()
        out.rmdir()
        out.write_text("not a directory")

    backend.on_create = break_out
    code, text = run(tmp_path, backend, "flannel-vxlan")
    name = only_stack(backend, "flannel-vxlan")
    assert backend.ops(name) == ["create", "set_config", "up", "destroy", "remove"]
    assert code == 1  # the result could not be saved: the variant failed, nothing is left
    assert "not written" in text and "summary not written" in text
    assert "LEFT WITH RESOURCES" not in text


def test_disk_full_log_does_not_stop_the_teardown_and_left_behind_is_reported(tmp_path, monkeypatch):
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()

        def write(self, text):
            raise OSError(28, "No space left on device")

    def fdopen(fd, *a, **k):
        fh = real_fdopen(fd, *a, **k)
        return Full(fh) if str(os.readlink(f"/proc/self/fd/{fd}")).endswith(".log") else fh

    monkeypatch.setattr(os, "fdopen", fdopen)
    backend = FakeBackend(destroy_failures=5)
    code, text = run(tmp_path, backend, "ipvlan")
    name = only_stack(backend, "ipvlan")
    assert backend.ops(name) == ["create", "set_config", "up", "destroy", "refresh", "destroy"]
    assert code == EXIT_LEFT_BEHIND
    assert name in text and "--cleanup" in text and "No space left on device" in text


def test_logs_results_and_owner_record_are_private(tmp_path, state_dir):
    (tmp_path / "out").mkdir()
    old_log = tmp_path / "out" / "cilium-native.log"
    old_log.write_text("an older run\n")
    old_log.chmod(0o644)
    seen = {}

    backend = FakeBackend(destroy_failures=5)  # left behind: the record is kept
    backend.on_create = lambda name: seen.update(record=list(state_dir.glob("*.json")))
    code, _ = run(tmp_path, backend, "cilium-native")
    assert code == EXIT_LEFT_BEHIND
    assert mode(old_log) == 0o600
    (record,) = seen["record"]
    assert mode(record) == 0o600
    backend = FakeBackend()
    code, _ = run(tmp_path, backend, "flannel-vxlan")
    assert code == 0
    assert mode(tmp_path / "out" / "flannel-vxlan.log") == 0o600
    assert mode(tmp_path / "out" / "flannel-vxlan.json") == 0o600


# --------------------------------------------------------------------------- owner record


def test_owner_record_is_written_before_the_first_create_and_removed_at_the_end(tmp_path, state_dir):
    seen = []

    def at_create(name):
        (path,) = state_dir.glob("*.json")
        seen.append(json.loads(path.read_text()))

    backend = FakeBackend()
    backend.on_create = at_create
    code, _ = run(tmp_path, backend, "flannel-vxlan", "ipvlan", parallel=1)
    assert code == 0
    first = seen[0]
    assert first["pid"] == os.getpid() and first["host"]
    assert first["start"]["source"] == "proc-stat"  # this is Linux; elsewhere ps-lstart, or none (said so)
    assert first["start"]["value"] == procs.start_time(os.getpid()).value
    assert set(first["stacks"]) == set(backend.stacks)  # both planned before the first create
    assert len(first["stacks"]) == 2 and {v["status"] for v in first["stacks"].values()} <= {"planned", "creating"}
    assert list(state_dir.glob("*.json")) == []  # everything removed: the record is gone


def test_unsupported_state_dir_refuses_before_anything_is_created(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("CNIBENCH_STATE_DIR", str(blocker / "sub"))
    backend = FakeBackend()
    code, text = run(tmp_path, backend, "ipvlan")
    assert code == 2 and backend.calls == []
    assert "owner record" in text


def test_sigkilled_runner_stacks_are_cleaned_at_once(tmp_path, state_dir):
    """A real process writes an owner record and is SIGKILLed; --cleanup (no --all) then takes
    its stack although it is far from its expiry."""
    now = dt.datetime.now(dt.timezone.utc)
    name = mx.stack_name("cilium-native", now, "00aa")
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from cnibench.matrix.owner import OwnerRecord
        rec = OwnerRecord.begin({{{name!r}: "cilium-native"}}, Path({str(state_dir)!r}))
        rec.set_status({name!r}, "up")
        print("ready", flush=True)
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    listed = [Listed(mx.StackInfo(name, last_update=now, update_in_progress=True), {"expiryHours": "8"})]
    backend = FakeBackend(listed=listed, locked={name})
    code, text = cleanup_cmd(tmp_path, backend, state_dir)
    assert code == 0 and "not touched" in text and backend.ops(name) == []  # alive: not even selected
    child.kill()
    child.wait()
    code, text = cleanup_cmd(tmp_path, backend, state_dir)
    assert code == 0, text
    assert backend.ops(name)[-4:] == ["destroy", "cancel", "destroy", "remove"]
    assert "owner dead" in text and "stale lock" in text
    assert list(state_dir.glob("*.json")) == []  # pruned: its stack is gone


def test_reused_pid_is_a_dead_owner_and_all_spares_live_runs(tmp_path, state_dir):
    now = dt.datetime.now(dt.timezone.utc)
    reused = mx.stack_name("flannel-vxlan", now, "0001")
    live = mx.stack_name("ipvlan", now, "0002")
    mine = procs.start_time(os.getpid())
    OwnerRecord(run_id="r1", path=state_dir / "r1.json", pid=os.getpid(),
                start=procs.StartTime(mine.source, str(int(mine.value) - 100), mine.boot_id),  # another process's start
                host=procs.hostname(), created=now.isoformat(), stacks={reused: {"status": "up"}})._write()
    OwnerRecord(run_id="r2", path=state_dir / "r2.json", pid=os.getpid(), start=mine, host=procs.hostname(),
                created=now.isoformat(), stacks={live: {"status": "up"}})._write()
    backend = FakeBackend(listed=[Listed(mx.StackInfo(reused, last_update=now), {}),
                                  Listed(mx.StackInfo(live, last_update=now), {})])
    code, text = cleanup_cmd(tmp_path, backend, state_dir, include_unexpired=True)
    assert code == 0
    assert backend.ops(reused)[-2:] == ["destroy", "remove"]
    assert "destroy" not in backend.ops(live)
    assert f"not touched: {live}" in text and "alive" in text


def test_dead_owner_with_a_running_up_child_stops_it_first(tmp_path, state_dir):
    now = dt.datetime.now(dt.timezone.utc)
    name = mx.stack_name("cilium-geneve", now, "0003")
    # plays the orphaned `pulumi up`; SIGINT at its default, as in a `pulumi up` started from a
    # terminal (a suite run as a background job of a shell would hand it an ignored SIGINT)
    orphan = subprocess.Popen(["sleep", "60"], start_new_session=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        OwnerRecord(run_id="r3", path=state_dir / "r3.json", pid=dead_pid(), start=procs.StartTime("none"),
                    host=procs.hostname(), created=now.isoformat(), stacks={name: {"status": "up"}},
                    children={str(orphan.pid): {"stack": name, "op": "up",
                                                "start": procs.start_time(orphan.pid).to_json()}})._write()
        backend = FakeBackend(listed=[Listed(mx.StackInfo(name, last_update=now), {})], locked={name})
        code, text = cleanup_cmd(tmp_path, backend, state_dir)
        assert orphan.wait(5) == -signal.SIGINT
        assert code == 0, text
        assert "stopping the `pulumi up`" in text
        assert backend.ops(name)[-4:] == ["destroy", "cancel", "destroy", "remove"]
    finally:
        orphan.kill()


def test_all_keeps_the_lock_of_an_unknown_unexpired_run(tmp_path, state_dir):
    now = dt.datetime.now(dt.timezone.utc)
    name = mx.stack_name("cilium-vxlan", now, "0004")
    backend = FakeBackend(listed=[Listed(mx.StackInfo(name, last_update=now, update_in_progress=True), {})],
                          locked={name})
    code, text = cleanup_cmd(tmp_path, backend, state_dir, include_unexpired=True)
    assert code == EXIT_LEFT_BEHIND
    assert "cancel" not in backend.ops(name) and "remove" not in backend.ops(name)
    assert "may be running elsewhere" in text


# --------------------------------------------------------------------------- signals


def test_sigterm_interrupts_the_up_at_once_and_destroys(tmp_path, monkeypatch):
    backend = FakeBackend(behaviour={"flannel-vxlan": "hang"})
    # sent from the runner's loop: after run_matrix_command has put its SIGTERM handler in place
    # (a SIGTERM before that would end the test process)
    term = CtrlC(monkeypatch, ups_started(backend, "flannel-vxlan"), sig=signal.SIGTERM)
    before = signal.getsignal(signal.SIGTERM)
    code, text = run(tmp_path, backend, "flannel-vxlan", interrupt_grace=30, term_grace=10)
    assert term.handled == 1, text
    assert signal.getsignal(signal.SIGTERM) is before  # the runner's handler is gone again
    name = only_stack(backend, "flannel-vxlan")
    assert code == EXIT_INTERRUPTED
    assert backend.ops(name) == ["create", "set_config", "up", "interrupt", "destroy", "remove"]
    assert "SIGINT now" in text


def test_repeated_ctrl_c_does_not_stop_the_destroys(tmp_path, monkeypatch):
    # the destroy is held until four Ctrl-Cs have been handled, one per turn of the runner's loop
    backend = FakeBackend(behaviour={"ipvlan": "held-destroy"})
    presses = CtrlC(monkeypatch, lambda: backend.reached("ipvlan", "destroy").is_set(), count=4,
                    after_last=backend.release_destroys.set)
    code, text = run(tmp_path, backend, "ipvlan")
    assert presses.handled == 4, text
    assert backend.ops(only_stack(backend, "ipvlan"))[-2:] == ["destroy", "remove"]
    assert code == EXIT_INTERRUPTED
    assert "Ctrl-C does not reach them" in text


def test_up_that_ignores_sigint_and_sigterm_is_killed_and_its_stale_lock_cancelled(tmp_path):
    backend = FakeBackend(behaviour={"kube-router-native": "ignore-signals"})
    started = time.monotonic()
    code, text = run(tmp_path, backend, "kube-router-native", timeout=0.3, kill_grace=0.3, term_grace=0.3)
    assert time.monotonic() - started < 8
    name = only_stack(backend, "kube-router-native")
    assert backend.ops(name) == ["create", "set_config", "up", "interrupt", "SIGTERM", "SIGKILL",
                                 "destroy", "cancel", "destroy", "remove"]
    assert code == 1 and "timed out" in text
    log = (tmp_path / "out" / "kube-router-native.log").read_text()
    assert "SIGKILL to pulumi up" in log and "stale lock" in log


def test_interrupt_escalates_within_its_deadline(tmp_path, monkeypatch):
    backend = FakeBackend(behaviour={"flannel-vxlan": "hang", "cilium-native": "ignore-signals"})
    ctrl_c = CtrlC(monkeypatch, ups_started(backend, "flannel-vxlan", "cilium-native"))
    code, text = run(tmp_path, backend, "flannel-vxlan", "cilium-native", parallel=2, interrupt_grace=0.3,
                     term_grace=0.3)
    assert ctrl_c.handled == 1, text
    # from the Ctrl-C: SIGINT at once, SIGTERM +0.3 s, SIGKILL +0.3 s, then the destroys (a bound,
    # not a synchronisation: generous for a loaded machine)
    assert time.monotonic() - ctrl_c.sent[0] < 8
    assert code == EXIT_INTERRUPTED
    assert backend.ops(only_stack(backend, "cilium-native")) == [
        "create", "set_config", "up", "interrupt", "SIGTERM", "SIGKILL", "destroy", "cancel", "destroy", "remove"]


STANDIN = """#!/bin/sh
# plays a CLI that ignores SIGINT and SIGTERM (only SIGKILL stops it); <exe>.ready says the traps are set
trap '' INT TERM
: > "$0.ready"
echo started
sleep 30 &
wait $!
wait $!
echo survived
"""


def test_without_proc_the_timeout_still_stops_the_cli(tmp_path, monkeypatch):
    """The registry keeps the CLI's Popen: signals reach its process group with no /proc
    (macOS). Here /proc lookups fail and a stand-in CLI ignores SIGINT and SIGTERM."""
    exe = tmp_path / "pulumi"
    exe.write_text(STANDIN)
    exe.chmod(0o755)
    monkeypatch.setattr(mxbackend, "_pulumi_pids", lambda *a, **k: (_ for _ in ()).throw(OSError("no /proc")))
    monkeypatch.setattr(procs, "PROC", tmp_path / "no-proc")

    class Bare:
        name = "cnibench-ipvlan-20260101t0000z-abcd"

    class OnceTrapped:
        """The stack's handle, whose signals find no CLI (False: the watchdog tries the SIGINT again)
        until the stand-in has set its traps: a SIGINT before would end it and test nothing."""

        def __init__(self, inner, ready):
            self.inner, self.ready = inner, ready

        def interrupt(self, sig=signal.SIGINT):
            return self.ready.exists() and self.inner.interrupt(sig)

    handle = OnceTrapped(mxbackend.AutomationStack(Bare()), tmp_path / "pulumi.ready")
    fired = []
    errors = []

    def call():
        try:
            mxbackend.run_cli(str(exe), ["up", "--yes", "--stack", Bare.name], str(tmp_path), {})
        except Exception as exc:
            errors.append(exc)

    from cnibench.matrix.runner import _Watchdog

    t0 = time.monotonic()
    with _Watchdog(handle, 0.5, 0.3, 0.3, lambda r, s, sent: fired.append((r, s, sent))):
        call()
    assert time.monotonic() - t0 < 5
    assert [s for _, s, _ in fired] == [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
    assert errors and "code: -9" in str(errors[0])
    assert handle.ready.exists()
    assert procs.CHILDREN.running(Bare.name) == []


def test_cli_children_do_not_get_the_terminals_ctrl_c(tmp_path):
    """A terminal's Ctrl-C goes to the foreground process group. In a process that leads its
    own group, three SIGINTs to the group reach a plain child but not a registry child."""
    script = textwrap.dedent("""
        import os, signal, subprocess, sys
        from cnibench.matrix import procs
        os.setpgrp()
        signal.signal(signal.SIGINT, lambda *a: None)
        # Popen returns once the child has exec'd (it waits on its error pipe): both are in their
        # groups, with their own signal dispositions, before the first SIGINT; no wait needed
        plain = subprocess.Popen(["sleep", "3"])
        shielded = procs.CHILDREN.spawn(["sh", "-c", "sleep 3", "sh", "--stack", "s"])
        for _ in range(3):
            os.killpg(os.getpgrp(), signal.SIGINT)
        print(plain.wait(), shielded.wait())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.split() == [str(-signal.SIGINT), "0"]


def test_concurrent_update_error_becomes_stack_locked():
    from pulumi.automation._cmd import CommandResult
    from pulumi.automation.errors import ConcurrentUpdateError, create_command_error

    stderr = ("error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or "
              "delete the lock file with `pulumi cancel`.")
    err = create_command_error(CommandResult("", stderr, 255))
    assert isinstance(err, ConcurrentUpdateError)

    class Raising:
        name = "s"

        def destroy(self, **kw):
            raise err

    with pytest.raises(mx.StackLocked, match="locked by 1 lock"):
        mxbackend.AutomationStack(Raising()).destroy(print)


# --------------------------------------------------------------------------- tag sweep


def stubbed_clients():
    import boto3

    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    clients = sweep.Clients(tagging={"us-east-1": session.client("resourcegroupstaggingapi")},
                            ec2={"us-east-1": session.client("ec2")}, iam=session.client("iam"))
    stubs = [Stubber(clients.tagging["us-east-1"]), Stubber(clients.ec2["us-east-1"]), Stubber(clients.iam)]
    return clients, stubs


def tags(stack, expires):
    return [{"Key": "cnibench:stack", "Value": stack}, {"Key": "cnibench:expires-at", "Value": expires}]


def test_tag_sweep_lists_and_deletes_orphans_in_dependency_order(tmp_path, state_dir):
    now = dt.datetime.now(dt.timezone.utc)
    gone = mx.stack_name("flannel-vxlan", now - dt.timedelta(hours=30), "00aa")
    kept = mx.stack_name("ipvlan", now - dt.timedelta(hours=30), "00bb")  # still a stack: its state counts
    fresh = mx.stack_name("cilium-native", now, "00cc")
    past = (now - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    future = (now + dt.timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    arn = "arn:aws:ec2:us-east-1:123456789012:"
    clients, (tagging, ec2, iam) = stubbed_clients()
    tagging.add_response("get_resources", {"ResourceTagMappingList": [
        {"ResourceARN": arn + "vpc/vpc-1", "Tags": tags(gone, past)},
        {"ResourceARN": arn + "instance/i-1", "Tags": tags(gone, past)},
        {"ResourceARN": arn + "instance/i-old", "Tags": tags(gone, past)},  # terminated: dropped
        {"ResourceARN": arn + "security-group/sg-1", "Tags": tags(gone, past)},
        {"ResourceARN": arn + "subnet/subnet-in-state", "Tags": tags(kept, past)},
        {"ResourceARN": arn + "subnet/subnet-fresh", "Tags": tags(fresh, future)},  # not expired
        {"ResourceARN": arn + "subnet/subnet-other", "Tags": tags("cilium-native", past)},  # not a matrix stack
    ], "PaginationToken": ""}, {"TagFilters": [{"Key": "cnibench:stack"}], "ResourcesPerPage": 100})
    iam.add_response("list_roles", {"Roles": [
        {"Path": "/", "RoleName": "nodes-flannel-1", "RoleId": "AROAXXXXXXXXXXXXXXXX1", "Arn": "arn:aws:iam::123456789012:role/nodes-flannel-1",
         "CreateDate": now, "Description": "cnibench flannel-aws-vpc: AWS calls of the CNI"},
        {"Path": "/", "RoleName": "someone-else", "RoleId": "AROAXXXXXXXXXXXXXXXX2", "Arn": "arn:aws:iam::123456789012:role/someone-else",
         "CreateDate": now},
    ], "IsTruncated": False}, {})
    iam.add_response("list_role_tags", {"Tags": tags(gone, past)}, {"RoleName": "nodes-flannel-1"})
    iam.add_response("list_instance_profiles_for_role", {"InstanceProfiles": [
        {"Path": "/", "InstanceProfileName": "nodes-flannel-p", "InstanceProfileId": "AIPAXXXXXXXXXXXXXXXX1",
         "Arn": "arn:aws:iam::123456789012:instance-profile/nodes-flannel-p", "CreateDate": now, "Roles": []}]},
        {"RoleName": "nodes-flannel-1"})
    iam.add_response("list_instance_profile_tags", {"Tags": tags(gone, past)}, {"InstanceProfileName": "nodes-flannel-p"})
    ec2.add_response("describe_instances", {"Reservations": [{"Instances": [
        {"InstanceId": "i-1", "State": {"Code": 16, "Name": "running"}},
        {"InstanceId": "i-old", "State": {"Code": 48, "Name": "terminated"}}]}]}, {"InstanceIds": ["i-1", "i-old"]})
    # deletion, dependents first
    ec2.add_response("terminate_instances", {}, {"InstanceIds": ["i-1"]})
    iam.add_response("get_instance_profile", {"InstanceProfile": {
        "Path": "/", "InstanceProfileName": "nodes-flannel-p", "InstanceProfileId": "AIPAXXXXXXXXXXXXXXXX1",
        "Arn": "arn:aws:iam::123456789012:instance-profile/nodes-flannel-p", "CreateDate": now,
        "Roles": [{"Path": "/", "RoleName": "nodes-flannel-1", "RoleId": "AROAXXXXXXXXXXXXXXXX1",
                   "Arn": "arn:aws:iam::123456789012:role/nodes-flannel-1", "CreateDate": now}]}},
        {"InstanceProfileName": "nodes-flannel-p"})
    iam.add_response("remove_role_from_instance_profile", {},
                     {"InstanceProfileName": "nodes-flannel-p", "RoleName": "nodes-flannel-1"})
    iam.add_response("delete_instance_profile", {}, {"InstanceProfileName": "nodes-flannel-p"})
    iam.add_response("list_instance_profiles_for_role", {"InstanceProfiles": []}, {"RoleName": "nodes-flannel-1"})
    iam.add_response("list_role_policies", {"PolicyNames": ["nodes-flannel-1"], "IsTruncated": False},
                     {"RoleName": "nodes-flannel-1"})
    iam.add_response("delete_role_policy", {}, {"RoleName": "nodes-flannel-1", "PolicyName": "nodes-flannel-1"})
    iam.add_response("list_attached_role_policies", {"AttachedPolicies": []}, {"RoleName": "nodes-flannel-1"})
    iam.add_response("delete_role", {}, {"RoleName": "nodes-flannel-1"})
    ec2.add_response("delete_security_group", {}, {"GroupId": "sg-1"})
    ec2.add_client_error("delete_vpc", "DependencyViolation", "The vpc 'vpc-1' has dependencies", expected_params={"VpcId": "vpc-1"})

    backend = FakeBackend(listed=[Listed(mx.StackInfo(kept, last_update=now), {}),
                                  Listed(mx.StackInfo(fresh, last_update=now), {})],
                          state={kept: {"subnet-in-state"}})
    waited = []
    orig_delete = sweep.delete
    with tagging, ec2, iam:
        sweep.delete = lambda c, o, log=print, wait_terminated=None: orig_delete(
            c, o, log, wait_terminated=lambda client, ids: waited.append(ids))
        try:
            code, text = cleanup_cmd(tmp_path, backend, state_dir, sweeper=lambda: clients)
        finally:
            sweep.delete = orig_delete
        for s in (tagging, ec2, iam):
            s.assert_no_pending_responses()
    assert waited == [["i-1"]]
    assert "aws ec2 terminate-instances --region us-east-1 --instance-ids i-1" in text
    assert "aws ec2 delete-vpc --region us-east-1 --vpc-id vpc-1" in text
    assert "subnet-in-state" not in text and "subnet-fresh" not in text and "i-old" not in text
    assert code == EXIT_LEFT_BEHIND  # the VPC could not be deleted: reported with its command
    assert "left:" in text and "DependencyViolation" in text


def test_tag_sweep_answer_no_lists_commands_and_exits_4(tmp_path, state_dir):
    now = dt.datetime.now(dt.timezone.utc)
    gone = mx.stack_name("flannel-vxlan", now - dt.timedelta(hours=30), "00aa")
    past = (now - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    clients, (tagging, ec2, iam) = stubbed_clients()
    clients.iam = None
    tagging.add_response("get_resources", {"ResourceTagMappingList": [
        {"ResourceARN": "arn:aws:ec2:us-east-1:123456789012:elastic-ip/eipalloc-1", "Tags": tags(gone, past)}]})
    with tagging, ec2:
        code, text = cleanup_cmd(tmp_path, FakeBackend(), state_dir, yes=False, confirm=lambda q: False,
                                 sweeper=lambda: clients)
    assert code == EXIT_LEFT_BEHIND
    assert "aws ec2 release-address --region us-east-1 --allocation-id eipalloc-1" in text


def test_tag_sweep_without_credentials_says_so(tmp_path, state_dir):
    def no_creds():
        raise RuntimeError("Unable to locate credentials")

    code, text = cleanup_cmd(tmp_path, FakeBackend(), state_dir, sweeper=no_creds)
    assert code == 0 and "tag sweep not done" in text and "Unable to locate credentials" in text
