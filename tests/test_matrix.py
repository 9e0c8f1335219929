"""Control flow of the ephemeral stack matrix.

The Pulumi CLI cannot be installed here, so the Automation API is replaced AT ITS BOUNDARY
(:class:`cnibench.matrix.StackBackend` / ``StackHandle``) by the recording double below. This
is the only double of Pulumi in the test suite; it checks what the runner asks for (create,
config, up, destroy, refresh, remove) and in which order, not any Pulumi behaviour.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from cnibench import matrix as mx
from cnibench import results
from cnibench.cli.matrix import (
    EXIT_INTERRUPTED,
    EXIT_LEFT_BEHIND,
    EXIT_POLICY,
    EXIT_REFUSED,
    run_cleanup_command,
    run_matrix_command,
)
from cnibench.matrix import backend, pricing, sweep


def benchmark_doc(variant: str) -> dict:
    doc = results.new_document("cloud", run_id=f"run-{variant}",
                               environment=results.collect_environment(9001, instance="c6i.8xlarge"),
                               parameters={"duration_s": 30, "repeat": 2})
    for name, kind, value in (("host", "reference", 9.5), (variant, "variant", 8.0)):
        subject = results.new_subject(name, kind, variant=variant if kind == "variant" else None)
        test = results.new_test("tcp", "tcp", "pod-to-pod" if kind == "variant" else "node-to-node", "Gbit/s")
        test["repetitions"] = [{"index": i, "value": v, "valid": True, "invalid_reason": None}
                               for i, v in enumerate((value, value * 1.02))]
        subject["tests"].append(test)
        doc["subjects"].append(subject)
    return results.finalize(doc)


SIGNAL_OPS = {signal.SIGINT: "interrupt", signal.SIGTERM: "SIGTERM", signal.SIGKILL: "SIGKILL"}


class FakeStack:
    def __init__(self, backend: FakeBackend, name: str) -> None:
        self.backend, self.name = backend, name
        self.config: dict = {}
        self.interrupted = threading.Event()
        self.killed = threading.Event()
        self.destroy_failures = 0

    def _rec(self, op: str) -> None:
        self.backend.record(self.name, op)

    @property
    def behaviour(self) -> str:
        parsed = mx.parse_stack_name(self.name)
        return self.backend.behaviour.get(parsed.variant if parsed else self.name, "ok")

    def set_config(self, values):
        self._rec("set_config")
        self.config = dict(values)

    def up(self, on_output):
        self._rec("up")
        on_output("Updating (fake)")
        mode = self.behaviour
        if mode == "fail":
            raise RuntimeError("error: creating EC2 Instance: InsufficientInstanceCapacity")
        if mode == "raise-interrupt":
            raise KeyboardInterrupt
        if mode == "hang":  # until the runner interrupts it (a timeout, a Ctrl-C: see CtrlC below)
            if not self.interrupted.wait(20):
                raise AssertionError("the runner never interrupted the hanging up")
            raise RuntimeError("error: update canceled")
        if mode == "ignore-signals":  # a CLI that ignores SIGINT and SIGTERM: only SIGKILL ends it
            if not self.killed.wait(20):
                raise AssertionError("the runner never sent SIGKILL")
            with self.backend._lock:
                self.backend.locked.add(self.name)  # a killed update leaves its lock (DIY backend)
            raise RuntimeError("error: signal: killed")
        if mode == "no-output":
            return {"variant": {"name": "x"}}
        parsed = mx.parse_stack_name(self.name)
        return {"benchmark": benchmark_doc(parsed.variant)}

    def destroy(self, on_output):
        self._rec("destroy")
        if self.name in self.backend.locked:
            raise mx.StackLocked("error: the stack is currently locked by 1 lock(s). Either wait for the other "
                                 "process(es) to end or delete the lock file with `pulumi cancel`.")
        if self.behaviour == "held-destroy":  # until the test releases it (backend.release_destroys)
            if not self.backend.release_destroys.wait(20):
                raise AssertionError("the test never released the held destroy")
        if self.destroy_failures:
            self.destroy_failures -= 1
            raise RuntimeError("error: deleting security group: DependencyViolation")

    def refresh(self, on_output):
        self._rec("refresh")

    def cancel(self):
        self._rec("cancel")
        with self.backend._lock:
            self.backend.locked.discard(self.name)

    def interrupt(self, sig=signal.SIGINT):
        self._rec(SIGNAL_OPS[sig])
        if self.behaviour == "ignore-signals":
            if sig == signal.SIGKILL:
                self.killed.set()
        else:
            self.interrupted.set()
        return True

    def config_value(self, key):
        value = self.config.get(key)
        return None if value is None else str(value)


@dataclass
class Listed:
    info: mx.StackInfo
    config: dict


class FakeBackend:
    def __init__(self, behaviour=None, destroy_failures=0, listed=(), locked=(), state=None):
        self.behaviour = dict(behaviour or {})
        self.destroy_failures = destroy_failures
        self.locked = set(locked)  # stacks whose destroy raises StackLocked until cancel()
        self.state = dict(state or {})  # stack -> resource ids in its state (the tag sweep)
        self.release_destroys = threading.Event()  # ends the "held-destroy" destroys
        self.on_create = None
        self.calls: list[tuple[str, str]] = []
        self.stacks: dict[str, FakeStack] = {}
        self.listed = {x.info.name: x for x in listed}
        self._lock = threading.Lock()
        self._reached: dict[tuple[str, str], threading.Event] = {}

    def record(self, name, op):
        with self._lock:
            self.calls.append((name, op))
        self.reached(name, op).set()

    def reached(self, stack_or_variant: str, op: str) -> threading.Event:
        """Set once ``op`` has started on the stack (named by its stack name or its variant):
        the explicit signal a test waits for instead of sleeping."""
        parsed = mx.parse_stack_name(stack_or_variant)
        key = (parsed.variant if parsed else stack_or_variant, op)
        with self._lock:
            return self._reached.setdefault(key, threading.Event())

    def ops(self, name):
        return [op for n, op in self.calls if n == name]

    def create(self, name):
        self.record(name, "create")
        if self.on_create:
            self.on_create(name)
        stack = FakeStack(self, name)
        stack.destroy_failures = self.destroy_failures
        self.stacks[name] = stack
        return stack

    def select(self, name):
        self.record(name, "select")
        if name not in self.stacks:
            stack = FakeStack(self, name)
            stack.config = dict(self.listed[name].config) if name in self.listed else {}
            stack.destroy_failures = self.destroy_failures
            self.stacks[name] = stack
        return self.stacks[name]

    def remove(self, name):
        self.record(name, "remove")
        self.listed.pop(name, None)

    def list_stacks(self):
        return [x.info for x in self.listed.values()]

    def resource_ids(self, name):
        return set(self.state.get(name, ()))


def no_violation(stack, overrides):
    return []


class CtrlC:
    """Sends ``sig`` (a Ctrl-C by default) to this process from inside the runner's wait loop,
    once ``ready()`` holds: ``count`` times, one per turn of the loop.

    The runner's loop (:meth:`MatrixRunner.run`) calls its ``tick`` on the main thread on every
    turn, inside the ``try`` that handles a KeyboardInterrupt. The signal is raised there with
    :func:`signal.raise_signal`, which runs the Python handler before it returns: the interrupt
    arrives when the main thread is in its loop and the double says what it must say (e.g. "every
    ``up`` has started", :meth:`FakeBackend.reached`), never "after some seconds". A turn on which
    ``ready()`` is false just returns; the next comes within the loop's 0.2 s wait.
    ``after_last`` runs once the last signal was handled (e.g. to release a held destroy)."""

    def __init__(self, monkeypatch, ready, *, sig=signal.SIGINT, count=1, after_last=lambda: None) -> None:
        self.ready, self.sig, self.count, self.after_last = ready, sig, count, after_last
        self.sent: list[float] = []  # time.monotonic() of each signal
        self.handled = 0  # signals whose handler raised KeyboardInterrupt in the loop
        original = mx.MatrixRunner.run

        def run(runner, tick=lambda: None, notify=lambda m: None):
            def tick_then_signal():
                tick()
                self._turn()

            # Python's own SIGINT handler (KeyboardInterrupt), which an interactive `cnibench matrix`
            # has: a test process started in the background inherits SIGINT ignored (SIG_IGN)
            old = signal.signal(signal.SIGINT, signal.default_int_handler) if sig == signal.SIGINT else None
            try:
                return original(runner, tick_then_signal, notify)
            finally:
                if old is not None:
                    signal.signal(signal.SIGINT, old)

        monkeypatch.setattr(mx.MatrixRunner, "run", run)

    def _turn(self) -> None:
        # the runner swallows an Exception from its tick: a failure here shows as `handled` short
        # of `count`, which every test using this asserts
        if len(self.sent) >= self.count or not self.ready():
            return
        if threading.current_thread() is not threading.main_thread():
            return
        self.sent.append(time.monotonic())
        try:
            signal.raise_signal(self.sig)
        except KeyboardInterrupt:
            self.handled += 1
            if len(self.sent) == self.count:
                self.after_last()
            raise


def ups_started(backend: FakeBackend, *variants: str):
    """``ready`` for :class:`CtrlC`: every variant's ``up`` has started."""
    return lambda: all(backend.reached(v, "up").is_set() for v in variants)


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    """Owner records in the test's directory, never in the user's ~/.local/state."""
    path = tmp_path / "state"
    monkeypatch.setenv("CNIBENCH_STATE_DIR", str(path))
    return path


def opts(tmp_path: Path, *variants: str, **kw) -> mx.MatrixOptions:
    kw.setdefault("timeout", 30)
    kw.setdefault("kill_grace", 0.2)
    kw.setdefault("interrupt_grace", 0.1)
    kw.setdefault("term_grace", 0.2)
    kw.setdefault("destroy_timeout", 30)
    return mx.MatrixOptions(variants=variants, out=tmp_path / "out", **kw)


def run(tmp_path, backend, *variants, confirm=lambda q: True, yes=True, preflight=no_violation, **kw):
    console = Console(file=open(tmp_path / "console.txt", "w"), width=200)
    code = run_matrix_command(opts(tmp_path, *variants, **kw), backend_factory=lambda: backend,
                              preflight=preflight, confirm=confirm, yes=yes, console=console, report=False)
    console.file.close()
    return code, (tmp_path / "console.txt").read_text()


def only_stack(backend, variant):
    names = [n for n in backend.stacks if mx.parse_stack_name(n).variant == variant]
    assert len(names) == 1, names
    return names[0]


# --------------------------------------------------------------------------- names


def test_stack_name_round_trip_and_other_stacks_ignored():
    now = dt.datetime(2026, 11, 22, 5, 53, tzinfo=dt.timezone.utc)
    name = mx.stack_name("kube-router-overlay", now, "a1b2")
    assert name == "cnibench-kube-router-overlay-20261122t0553z-a1b2"
    parsed = mx.parse_stack_name(name)
    assert parsed.variant == "kube-router-overlay" and parsed.created == now
    assert mx.parse_stack_name("org/cnibench/" + name).variant == "kube-router-overlay"
    for other in ("cilium-native", "cnibench-cilium-native", "dev"):
        assert mx.parse_stack_name(other) is None


def test_stack_values_copy_the_stack_file_and_overrides_and_set_expiry(tmp_path):
    o = opts(tmp_path, "cilium-native", overrides={"instanceType": "c6i.4xlarge"}, timeout=7200,
             destroy_timeout=2700)
    values = mx.stack_values("cilium-native", o)
    assert values["variant"] == "cilium-native"
    assert values["instanceType"] == "c6i.4xlarge"
    assert values["expiryHours"] == 8  # ceil((7200 + 2700) / 3600) = 3, below the default 8
    long = opts(tmp_path, "cilium-native", timeout=10 * 3600)
    assert mx.stack_values("cilium-native", long)["expiryHours"] == 11


# --------------------------------------------------------------------------- happy path


def test_success_sets_config_ups_saves_result_then_destroys_and_removes(tmp_path):
    backend = FakeBackend()
    code, _ = run(tmp_path, backend, "flannel-vxlan", "cilium-native", parallel=2)
    assert code == 0
    for variant in ("flannel-vxlan", "cilium-native"):
        name = only_stack(backend, variant)
        assert backend.ops(name) == ["create", "set_config", "up", "destroy", "remove"]
        assert backend.stacks[name].config["variant"] == variant
        saved = json.loads((tmp_path / "out" / f"{variant}.json").read_text())
        results.validate(saved)
        assert saved["subjects"][1]["name"] == variant
    summary = json.loads((tmp_path / "out" / "matrix.json").read_text())
    assert {r["status"] for r in summary["runs"]} == {"ok"}
    assert all(r["removed"] for r in summary["runs"])


# --------------------------------------------------------------------------- failures


def test_failed_up_is_destroyed_and_does_not_stop_the_others(tmp_path):
    backend = FakeBackend(behaviour={"flannel-vxlan": "fail"})
    code, text = run(tmp_path, backend, "flannel-vxlan", "cilium-native", "kube-router-native", parallel=2)
    assert code == 1
    failed = only_stack(backend, "flannel-vxlan")
    assert backend.ops(failed) == ["create", "set_config", "up", "destroy", "remove"]
    for other in ("cilium-native", "kube-router-native"):
        assert backend.ops(only_stack(backend, other))[-3:] == ["up", "destroy", "remove"]
    assert "InsufficientInstanceCapacity" in text
    assert "InsufficientInstanceCapacity" in (tmp_path / "out" / "flannel-vxlan.log").read_text()


def test_missing_benchmark_output_is_a_failure_and_still_destroyed(tmp_path):
    backend = FakeBackend(behaviour={"ipvlan": "no-output"})
    code, text = run(tmp_path, backend, "ipvlan")
    assert code == 1
    assert backend.ops(only_stack(backend, "ipvlan"))[-2:] == ["destroy", "remove"]
    assert "no 'benchmark' output" in text


def test_timeout_interrupts_up_then_destroys(tmp_path):
    backend = FakeBackend(behaviour={"cilium-vxlan": "hang"})
    code, text = run(tmp_path, backend, "cilium-vxlan", timeout=0.3)
    assert code == 1
    name = only_stack(backend, "cilium-vxlan")
    assert backend.ops(name) == ["create", "set_config", "up", "interrupt", "destroy", "remove"]
    summary = json.loads((tmp_path / "out" / "matrix.json").read_text())
    assert summary["runs"][0]["status"] == "timeout"
    assert "timed out" in text


def test_keyboard_interrupt_from_up_destroys_and_cancels_the_rest(tmp_path):
    backend = FakeBackend(behaviour={"flannel-vxlan": "raise-interrupt"})
    code, _ = run(tmp_path, backend, "flannel-vxlan", "cilium-native", "ipvlan", parallel=1)
    assert code == EXIT_INTERRUPTED
    assert backend.ops(only_stack(backend, "flannel-vxlan")) == ["create", "set_config", "up", "destroy", "remove"]
    # sequential: the variants after the interrupt are never created
    assert [n for n in backend.stacks] == [only_stack(backend, "flannel-vxlan")]
    summary = json.loads((tmp_path / "out" / "matrix.json").read_text())
    assert [r["status"] for r in summary["runs"]] == ["interrupted", "cancelled", "cancelled"]


def test_ctrl_c_in_the_main_thread_interrupts_running_ups_and_destroys_them(tmp_path, monkeypatch):
    backend = FakeBackend(behaviour={"flannel-vxlan": "hang", "cilium-native": "hang"})
    ctrl_c = CtrlC(monkeypatch, ups_started(backend, "flannel-vxlan", "cilium-native"))
    code, text = run(tmp_path, backend, "flannel-vxlan", "cilium-native", parallel=2)
    assert ctrl_c.handled == 1, text  # the Ctrl-C was sent, with both ups running
    assert code == EXIT_INTERRUPTED
    assert "interrupted: no new stacks" in text and "interrupt forwarded" in text
    assert "SIGINT now" in text
    for variant in ("flannel-vxlan", "cilium-native"):
        ops = backend.ops(only_stack(backend, variant))
        assert ops[:3] == ["create", "set_config", "up"]
        assert "interrupt" in ops, ops  # SIGINT forwarded at once (the CLI is in its own process group)
        assert ops[-2:] == ["destroy", "remove"]


def test_a_second_ctrl_c_while_the_first_is_answered_is_one_more_interrupt(tmp_path, monkeypatch):
    """A Ctrl-C that lands while the runner prints its answer to the first one (here: raised by
    the notify call itself) is counted and answered; it never leaves the run before its teardown."""
    backend = FakeBackend(behaviour={"flannel-vxlan": "hang"})
    ctrl_c = CtrlC(monkeypatch, ups_started(backend, "flannel-vxlan"))
    with_ctrl_c = mx.MatrixRunner.run
    said: list[str] = []

    def wrapped(runner, tick=lambda: None, notify=lambda m: None):
        def notify_then_ctrl_c(message):
            said.append(message)
            if len(said) == 1:
                raise KeyboardInterrupt  # the second Ctrl-C, in the middle of the first one's answer
            notify(message)
        return with_ctrl_c(runner, tick, notify_then_ctrl_c)

    monkeypatch.setattr(mx.MatrixRunner, "run", wrapped)
    try:
        code, text = run(tmp_path, backend, "flannel-vxlan")
    except KeyboardInterrupt:
        pytest.fail("the second Ctrl-C escaped the runner")
    assert ctrl_c.handled == 1 and code == EXIT_INTERRUPTED, text
    assert said[0].startswith("interrupted: no new stacks") and said[1].startswith("still tearing down")
    ops = backend.ops(only_stack(backend, "flannel-vxlan"))
    assert "interrupt" in ops and ops[-2:] == ["destroy", "remove"], ops


def test_failed_destroy_is_refreshed_then_destroyed_again(tmp_path):
    backend = FakeBackend(destroy_failures=1)
    code, _ = run(tmp_path, backend, "flannel-host-gw")
    assert code == 0
    assert backend.ops(only_stack(backend, "flannel-host-gw")) == [
        "create", "set_config", "up", "destroy", "refresh", "destroy", "remove"]


def test_stack_that_cannot_be_destroyed_is_kept_and_reported(tmp_path):
    backend = FakeBackend(destroy_failures=5)
    code, text = run(tmp_path, backend, "flannel-host-gw")
    assert code == EXIT_LEFT_BEHIND
    name = only_stack(backend, "flannel-host-gw")
    assert backend.ops(name) == ["create", "set_config", "up", "destroy", "refresh", "destroy"]  # no remove
    assert name in text and "--cleanup" in text


# --------------------------------------------------------------------------- before spending


@dataclass
class FakeFinding:  # the shape of cnibench.policy_rules.Finding
    rule: str
    verdict: str
    messages: tuple

    @property
    def blocking(self):
        return self.verdict == "fail"


def test_policy_violation_stops_everything_before_any_stack(tmp_path):
    def preflight(stack, overrides):
        if stack == "flannel-host-gw":
            return [FakeFinding("l2-adjacency", "fail", ("nodes are in two subnets",))]
        return [FakeFinding("ports", "pass", ())]

    backend = FakeBackend()
    code, text = run(tmp_path, backend, "cilium-native", "flannel-host-gw", preflight=preflight)
    assert code == EXIT_POLICY
    assert backend.calls == []
    assert "l2-adjacency" in text and "nodes are in two subnets" in text


def test_real_preflight_refuses_l2_variant_on_split_subnets(tmp_path):
    # config validation refuses it (exit 2) before the policy pack or any stack
    backend = FakeBackend()
    code, text = run(tmp_path, backend, "flannel-host-gw", preflight=mx.default_preflight(),
                     overrides={"splitSubnets": "true"})
    assert code == EXIT_REFUSED, text
    assert backend.calls == []
    assert "flannel-host-gw: cnibench:splitSubnets: true puts the benchmark nodes in two subnets" in text, text


def test_policy_check_that_cannot_run_refuses(tmp_path):
    def broken(stack, overrides):
        raise RuntimeError("program crashed under mocks")

    backend = FakeBackend()
    code, text = run(tmp_path, backend, "ipvlan", preflight=broken)
    assert code == EXIT_POLICY and backend.calls == []
    assert "could not run" in text and "program crashed" in text


def test_bad_config_stops_before_any_stack(tmp_path):
    backend = FakeBackend()
    code, text = run(tmp_path, backend, "cilium-native", overrides={"podCidr": "10.20.0.0/16"})
    assert code == EXIT_REFUSED and backend.calls == []
    assert "cnibench:podCidr" in text


def test_cost_is_shown_and_a_no_answer_stops(tmp_path):
    asked = []
    backend = FakeBackend()
    console = Console(file=open(tmp_path / "c.txt", "w"), width=200)
    code = run_matrix_command(opts(tmp_path, "cilium-native", "flannel-vxlan"), backend_factory=lambda: backend,
                              preflight=no_violation, confirm=lambda q: asked.append(q) or False, yes=False,
                              console=console, report=False)
    console.file.close()
    text = (tmp_path / "c.txt").read_text()
    # an answered "no" is not a failure (README, Exit codes: 0, nothing was created)
    assert code == 0 and backend.calls == []
    assert "stopped at your answer: nothing was created" in text
    assert len(asked) == 1 and "USD" in asked[0]
    # 2 x c6i.8xlarge + 1 x t3.medium, hours capped by the 30 s timeout + 5 min teardown
    hours = (30 / 60 + pricing.TEARDOWN_MINUTES) / 60
    per_variant = (2 * 1.36 + 0.0416) * hours
    assert f"{2 * per_variant:.2f} USD" in text
    assert "assumption" in text and "benchmarkTimeout" in text


def test_yes_skips_the_question(tmp_path):
    backend = FakeBackend()
    code, _ = run(tmp_path, backend, "ipvlan", confirm=lambda q: pytest.fail("asked despite --yes"), yes=True)
    assert code == 0 and backend.calls


def test_unknown_region_price_runs_with_the_cost_marked_unknown(tmp_path):
    """A region outside the price table is not refused: the estimate says unknown, names the
    region and the --prices fix, and the question says so."""
    asked = []
    backend = FakeBackend()
    code, text = run(tmp_path, backend, "ipvlan", "flannel-vxlan", overrides={"region": "ap-south-2"},
                     confirm=lambda q: asked.append(q) or True, yes=False)
    assert code == 0, text
    assert backend.ops(only_stack(backend, "ipvlan"))[-2:] == ["destroy", "remove"]
    assert "unknown cost (ap-south-2 not in the price table)" in " ".join(text.split())
    assert "cost unknown for ipvlan" in text and "--prices" in text
    assert asked and "unknown cost (ap-south-2" in asked[0]


# --------------------------------------------------------------------------- cleanup


def test_cleanup_destroys_expired_matrix_stacks_only(tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    old = mx.stack_name("cilium-native", now - dt.timedelta(hours=30), "0001")
    fresh = mx.stack_name("flannel-vxlan", now - dt.timedelta(hours=1), "0002")
    short_expiry = mx.stack_name("ipvlan", now - dt.timedelta(hours=3), "0003")
    busy = mx.stack_name("kube-router-native", now - dt.timedelta(hours=40), "0004")
    listed = [
        Listed(mx.StackInfo(old, last_update=now - dt.timedelta(hours=29), resource_count=40), {"expiryHours": "8"}),
        Listed(mx.StackInfo(fresh, last_update=now - dt.timedelta(minutes=50)), {"expiryHours": "8"}),
        Listed(mx.StackInfo(short_expiry, last_update=now - dt.timedelta(hours=3)), {"expiryHours": "2"}),
        Listed(mx.StackInfo(busy, update_in_progress=True), {}),
        Listed(mx.StackInfo("cilium-native", last_update=now - dt.timedelta(days=9)), {}),
    ]
    backend = FakeBackend(listed=listed, locked={busy})
    found = {x.name for x in mx.find_leftovers(backend, now)}
    assert found == {old, short_expiry, busy}
    console = Console(file=open(tmp_path / "c.txt", "w"), width=200)
    code = run_cleanup_command(backend, include_unexpired=False, yes=True, confirm=lambda q: False, console=console)
    console.file.close()
    assert code == 0
    for name in (old, short_expiry):
        assert backend.ops(name)[-2:] == ["destroy", "remove"]
    # an expired stack's "update in progress" is a stale lock (the expiry outlasts any run): cancel, then destroy
    assert backend.ops(busy)[-4:] == ["destroy", "cancel", "destroy", "remove"]
    assert set(backend.ops(fresh)) <= {"select"}  # read, never destroyed
    assert backend.ops("cilium-native") == []  # never a long-lived variant stack
    assert "stale lock" in (tmp_path / "c.txt").read_text()


def test_cleanup_all_asks_and_a_no_stops(tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    fresh = mx.stack_name("flannel-vxlan", now, "0002")
    backend = FakeBackend(listed=[Listed(mx.StackInfo(fresh, last_update=now), {})])
    console = Console(file=open(tmp_path / "c.txt", "w"), width=200)
    code = run_cleanup_command(backend, include_unexpired=True, yes=False, confirm=lambda q: False, console=console)
    console.file.close()
    # the stacks it listed still exist (README, Exit codes: 4), with the command that removes them
    assert code == EXIT_LEFT_BEHIND
    assert "destroy" not in backend.ops(fresh)
    assert "cnibench matrix --cleanup --all --yes" in (tmp_path / "c.txt").read_text()


def test_cleanup_refreshes_then_destroys_and_keeps_undestroyable(tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    old = mx.stack_name("cilium-native", now - dt.timedelta(hours=30), "0001")
    backend = FakeBackend(listed=[Listed(mx.StackInfo(old, last_update=now - dt.timedelta(hours=30)), {})],
                          destroy_failures=3)
    runs = mx.cleanup(backend, mx.find_leftovers(backend, now), log=lambda line: None)
    assert backend.ops(old)[-3:] == ["destroy", "refresh", "destroy"]
    assert runs[0].left_behind and not runs[0].removed


# --------------------------------------------------------------------------- process lookup


def test_pulumi_pids_finds_only_descendants_running_this_stack(tmp_path):
    import os

    me = os.getpid()

    def proc(pid, ppid, argv):
        d = tmp_path / "proc" / str(pid)
        d.mkdir(parents=True)
        (d / "stat").write_text(f"{pid} (some (odd) name) S {ppid} 1 1 0")
        (d / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")

    proc(900001, me, ["/usr/bin/pulumi", "--non-interactive", "up", "--yes", "--stack", "cnibench-a"])
    proc(900002, me, ["/usr/bin/pulumi", "up", "--stack", "cnibench-b"])
    proc(900003, 1, ["/usr/bin/pulumi", "up", "--stack", "cnibench-a"])  # not ours
    proc(900004, 900001, ["pulumi-language-python", "--stack", "cnibench-a"])
    assert backend._pulumi_pids("cnibench-a", tmp_path / "proc") == [900001]


def test_flatten_config_sets_lists_by_path_and_bools_as_yaml():
    flat = mx.flatten_config({"variant": "cilium-native", "benchmarkLoadLevels": [30, 50],
                              "benchmarkResponseSizes": "[350, 4096]", "splitSubnets": True, "expiryHours": 9})
    assert flat == {
        "cnibench:variant": "cilium-native",
        "cnibench:benchmarkLoadLevels[0]": "30", "cnibench:benchmarkLoadLevels[1]": "50",
        "cnibench:benchmarkResponseSizes[0]": "350", "cnibench:benchmarkResponseSizes[1]": "4096",
        "cnibench:splitSubnets": "true", "cnibench:expiryHours": "9",
    }


# --------------------------------------------------------------------------- the command


def test_matrix_command_end_to_end_with_the_double(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cnibench.cli import app

    backend = FakeBackend()
    monkeypatch.setattr(mx, "AutomationBackend", lambda *a, **k: backend)
    monkeypatch.setattr(mx, "default_preflight", lambda: no_violation)
    res = CliRunner().invoke(app, ["matrix", "-v", "flannel-vxlan", "-v", "ipvlan", "-p", "2", "--yes",
                                   "-c", "benchmarkLoadLevels=[40,80]", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    name = only_stack(backend, "ipvlan")
    assert backend.stacks[name].config["benchmarkLoadLevels"] == "[40,80]"
    assert backend.ops(name)[-2:] == ["destroy", "remove"]
    assert (tmp_path / "report" / "comparison.md").is_file()
    assert list((tmp_path / "report" / "charts").rglob("tcp.png"))  # one chart per metric and environment


def test_matrix_command_refuses_without_variants_or_with_unknown_ones(tmp_path):
    from typer.testing import CliRunner

    from cnibench.cli import app

    res = CliRunner().invoke(app, ["matrix", "--yes", "--out", str(tmp_path)])
    assert res.exit_code == EXIT_REFUSED and "--variant" in res.output
    res = CliRunner().invoke(app, ["matrix", "-v", "calico", "--yes", "--out", str(tmp_path)])
    assert res.exit_code == EXIT_REFUSED and "unknown variant" in res.output


def test_without_the_pulumi_cli_nothing_is_created(tmp_path, monkeypatch):
    import shutil

    if shutil.which("pulumi"):
        pytest.skip("a Pulumi CLI is installed: this checks the message when it is missing")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test")
    console = Console(file=open(tmp_path / "c.txt", "w"), width=200)
    code = run_matrix_command(opts(tmp_path, "ipvlan"), backend_factory=mx.AutomationBackend,
                              preflight=no_violation, confirm=lambda q: pytest.fail("asked"), console=console)
    console.file.close()
    assert code == EXIT_REFUSED
    assert "cannot open the Pulumi workspace" in (tmp_path / "c.txt").read_text()


def test_matrix_config_gives_every_tagged_resource_its_expiry(tmp_path, program):
    """The program (under Pulumi's mocks) run with the values the matrix sets: the expiry tag
    of every tagged AWS resource is deploy time + the matrix's expiryHours."""
    from cnibench.tags import EXPIRES_TAG

    o = opts(tmp_path, "flannel-vxlan", timeout=10 * 3600)
    values = mx.stack_values("flannel-vxlan", o)
    assert values["expiryHours"] == 11
    before = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    run = program("flannel-vxlan", values)
    tagged = [r for r in run.resources if r.type.startswith("aws:") and "tags" in r.inputs]
    assert len(tagged) >= 5
    for r in tagged:
        expires = dt.datetime.strptime(r.inputs["tags"][EXPIRES_TAG], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.timezone.utc)
        assert before + dt.timedelta(hours=11) <= expires <= before + dt.timedelta(hours=11, minutes=2), r.name


def test_cleanup_command_through_the_cli(monkeypatch):
    from typer.testing import CliRunner

    from cnibench.cli import app

    now = dt.datetime.now(dt.timezone.utc)
    old = mx.stack_name("cilium-native", now - dt.timedelta(hours=30), "0001")
    backend = FakeBackend(listed=[Listed(mx.StackInfo(old, last_update=now - dt.timedelta(hours=29)), {})])
    monkeypatch.setattr(mx, "AutomationBackend", lambda *a, **k: backend)
    regions = []

    def no_aws(r):  # the tag sweep's clients: never a real AWS call from the tests
        regions.append(list(r))
        raise RuntimeError("Unable to locate credentials")

    monkeypatch.setattr(sweep, "aws_clients", no_aws)
    res = CliRunner().invoke(app, ["matrix", "--cleanup"], input="n\n")
    assert res.exit_code == EXIT_LEFT_BEHIND and "destroy" not in backend.ops(old)
    assert old in res.output
    res = CliRunner().invoke(app, ["matrix", "--cleanup"], input="y\n")
    assert res.exit_code == 0, res.output
    assert backend.ops(old)[-2:] == ["destroy", "remove"]
    assert "tag sweep not done" in res.output and regions and "us-east-1" in regions[-1]
    res = CliRunner().invoke(app, ["matrix", "--cleanup", "--no-sweep", "--region", "eu-west-1"])
    assert res.exit_code == 0 and "tag sweep" not in res.output
