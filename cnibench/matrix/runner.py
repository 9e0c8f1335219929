"""Ephemeral stack matrix: one throw-away Pulumi stack per variant, always destroyed.

Design notes and their sources: docs/matrix.md (runner).
"""


from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from cnibench import config as cfgmod
from cnibench.errors import InputError
from cnibench.matrix import procs
from cnibench.matrix.backend import StackBackend, StackHandle, StackLocked, short_error
from cnibench.matrix.names import stack_name
from cnibench.matrix.owner import OwnerRecord, write_private
from cnibench.project import find_project_dir, load_stack_file, stack_config, without_namespace
from cnibench.variants import CATALOG

DEFAULT_EXPIRY_HOURS = int(cfgmod.StackConfig.model_fields["expiry_hours"].default)
# --timeout: under a minute no stack is even created; above a week it is beyond the benchmark's
# own hard cap (cnibench:benchmarkTimeout, at most cfgmod.MAX_BENCHMARK_TIMEOUT_S).
MIN_TIMEOUT_S = 60
MAX_TIMEOUT_S = cfgmod.MAX_BENCHMARK_TIMEOUT_S
# --parallel: each variant runs once (a duplicate is refused), so more than the catalog holds
# can never be used.
MAX_PARALLEL = len(CATALOG)
# -c keys the matrix sets itself: each stack's variant comes from --variant, its expiry from
# --expiry-hours (an override would be silently replaced).
MATRIX_KEYS = {"variant": "--variant", "expiryHours": "--expiry-hours"}


class OptionsError(InputError):
    """Matrix options refused before anything runs; ``problems`` holds one line per option,
    each naming the flag, the value and what is valid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _shown(value: Any, limit: int = 60) -> str:
    text = str(value)
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


@dataclass
class MatrixOptions:
    variants: tuple[str, ...]
    out: Path = Path("results/matrix")
    parallel: int = 1
    timeout: float = 2 * 3600.0  # seconds for the `pulumi up` of one variant (provisioning + benchmark)
    destroy_timeout: float = 45 * 60.0
    kill_grace: float = 300.0  # after a timeout's SIGINT, seconds before SIGTERM (then term_grace, SIGKILL)
    interrupt_grace: float = 30.0  # after Ctrl-C/SIGTERM: SIGINT at once, SIGTERM after this many seconds
    term_grace: float = 10.0  # after SIGTERM, seconds before SIGKILL
    overrides: Mapping[str, Any] = field(default_factory=dict)  # config key -> value, all variants
    expiry_hours: int | None = None  # None: long enough for timeout + destroy, at least the default

    def validate(self) -> None:
        """Every option the command line sets, checked offline before the Pulumi CLI, a workspace
        or a stack is touched. Raises :class:`OptionsError` listing every problem, each naming
        its flag (the values of ``-c`` keys are the config layer's, see ``gate.prepare``)."""
        problems: list[str] = []
        names = ", ".join(CATALOG)
        if not self.variants:
            problems.append(f"give at least one --variant (or --cleanup); variants: {names}")
        empty = [v for v in self.variants if not v.strip()]
        if empty:
            problems.append(f"--variant {empty[0]!r}: empty; give one of: {names}")
        unknown = [v for v in self.variants if v.strip() and v not in CATALOG]
        if unknown:
            problems.append(f"--variant: unknown variant(s) {', '.join(_shown(v)[1:-1] for v in unknown)}; "
                            f"valid: {names}")
        twice = [v for v in dict.fromkeys(self.variants) if v.strip() and self.variants.count(v) > 1]
        for v in twice:
            problems.append(f"--variant {v}: given {self.variants.count(v)} times; each variant runs once per "
                            f"matrix (one stack, one {self.out / (v + '.json')})")
        if isinstance(self.parallel, bool) or not isinstance(self.parallel, int) \
                or not 1 <= self.parallel <= MAX_PARALLEL:
            problems.append(f"--parallel {self.parallel}: give 1 to {MAX_PARALLEL} (the catalog's variants; "
                            "each runs once, so more stacks at a time can never be used)")
        timeout_ok = isinstance(self.timeout, (int, float)) and math.isfinite(self.timeout) \
            and MIN_TIMEOUT_S <= self.timeout <= MAX_TIMEOUT_S
        if not timeout_ok:
            finite = isinstance(self.timeout, (int, float)) and math.isfinite(self.timeout)
            shown = f"{self.timeout:g}" if finite else str(self.timeout)
            problems.append(f"--timeout {shown}: {'out of range' if finite else 'not a finite number'}; "
                            f"give {MIN_TIMEOUT_S} to {MAX_TIMEOUT_S} seconds for each variant's pulumi up "
                            f"(at most {MAX_TIMEOUT_S // 86400} days, the benchmark's own cap, "
                            "cnibench:benchmarkTimeout)")
        if self.expiry_hours is not None:
            hours = self.expiry_hours
            if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= cfgmod.MAX_EXPIRY_HOURS:
                problems.append(f"--expiry-hours {hours}: give 1 to {cfgmod.MAX_EXPIRY_HOURS} hours (30 days; "
                                "the expiry tag marks leftovers for --cleanup)")
            elif timeout_ok and hours < self.hours_needed():
                problems.append(
                    f"--expiry-hours {hours}: shorter than --timeout {self.timeout:g} s plus the destroy "
                    f"({self.destroy_timeout / 60:g} min): the stacks would count as leftovers while they run; "
                    f"give at least {self.hours_needed()}, or leave it out")
        for key, value in self.overrides.items():
            short = without_namespace(key)
            shown = f"-c {short}={_shown(value)[1:-1]}"
            if short in MATRIX_KEYS:
                problems.append(f"{shown}: cnibench:{short} is set by the matrix for each stack; use "
                                f"{MATRIX_KEYS[short]}")
            elif short not in cfgmod.config_keys():
                problems.append(f"{shown}: cnibench:{short} is not a config key; valid keys: "
                                + ", ".join(k for k in cfgmod.config_keys() if k not in MATRIX_KEYS))
        if problems:
            raise OptionsError(problems)

    def hours_needed(self) -> int:
        """Whole hours that outlast one variant's ``up`` (``timeout``) and its destroy."""
        return math.ceil((self.timeout + self.destroy_timeout) / 3600.0)


@dataclass
class VariantRun:
    variant: str
    stack: str
    status: str = "pending"  # pending|creating|up|destroying|ok|failed|timeout|interrupted|cancelled
    phase: str = "pending"
    error: str | None = None
    result_path: Path | None = None
    destroyed: bool = False
    removed: bool = False
    left_behind: bool = False
    started: float | None = None
    finished: float | None = None
    last_line: str = ""
    log_path: Path | None = None
    created: bool = False  # a create was attempted: the stack may exist
    log_error: str | None = None  # the first failed log write (the run goes on without its log)

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started


@dataclass
class MatrixReport:
    runs: list[VariantRun]
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(r.status == "ok" for r in self.runs)

    @property
    def left_behind(self) -> list[VariantRun]:
        return [r for r in self.runs if r.left_behind]


def expiry_hours_for(opts: MatrixOptions) -> int:
    """Hours written to ``cnibench:expiryHours``: the program tags every resource with
    ``cnibench:expires-at`` = deploy time + this; it must outlast the run and its destroy."""
    if opts.expiry_hours is not None:
        return opts.expiry_hours
    return max(opts.hours_needed(), DEFAULT_EXPIRY_HOURS)


def stack_values(variant: str, opts: MatrixOptions, project_dir: Path | None = None) -> dict[str, Any]:
    """The ``cnibench:*`` values to set on the ephemeral stack: the variant's stack file, the
    overrides, and the expiry. Raises ConfigError if the result would not validate."""
    values = load_stack_file(project_dir, variant)
    values.update({without_namespace(k): v for k, v in opts.overrides.items()})
    values["expiryHours"] = expiry_hours_for(opts)
    cfgmod.parse_config(stack_config(project_dir, variant, values))
    return values


_SIGNAMES: dict[int, str] = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGKILL: "SIGKILL"}


def stop_deadline(opts: MatrixOptions) -> float:
    """Seconds from an interrupt until a running ``pulumi up`` is gone: SIGINT at once, SIGTERM
    after ``interrupt_grace``, SIGKILL after ``term_grace`` more."""
    return opts.interrupt_grace + opts.term_grace


class _Watchdog:
    """Stops one CLI call that runs too long (``timeout``) or is cancelled (``cancel`` is set):
    SIGINT (Pulumi's graceful cancellation), then SIGTERM after ``grace`` (``cancel_grace`` for
    a cancellation), then SIGKILL after ``term_grace``, each to the CLI's process group through
    ``handle.interrupt(sig)``. A SIGINT that finds no CLI process (the call has not started it
    yet) is tried again until one is found or the call returns."""

    def __init__(self, handle: StackHandle, timeout: float, grace: float, term_grace: float,
                 on_fire: Callable[[str, int, bool], None], cancel: threading.Event | None = None,
                 cancel_grace: float | None = None, poll: float = 0.05) -> None:
        self._handle, self._timeout, self._grace, self._term_grace = handle, timeout, grace, term_grace
        self._on_fire, self._cancel, self._poll = on_fire, cancel, poll
        self._cancel_grace = grace if cancel_grace is None else cancel_grace
        self._done = threading.Event()
        self.fired: list[tuple[str, int, bool]] = []
        self._thread = threading.Thread(target=self._run, daemon=True, name="matrix-watchdog")

    @property
    def reason(self) -> str | None:
        return self.fired[0][0] if self.fired else None

    def _run(self) -> None:
        started = time.monotonic()
        next_at, step, reason, sent_at = started + self._timeout, 0, "timeout", started
        while not self._done.wait(self._poll):
            now = time.monotonic()
            if self._cancel is not None and self._cancel.is_set() and reason != "interrupt":
                reason = "interrupt"  # a cancellation overrides a slower timeout schedule
                next_at = now if step == 0 else min(next_at, sent_at + (self._cancel_grace if step == 1 else self._term_grace))
            if now < next_at:
                continue
            if step >= len(procs.ESCALATION):
                return
            sig = procs.ESCALATION[step]
            try:
                sent = self._handle.interrupt(sig)
            except Exception:  # noqa: BLE001 - a failed signal is retried like a missing process
                sent = False
            if not sent and step == 0:
                next_at = now + self._poll
                continue
            self.fired.append((reason, sig, sent))
            try:
                self._on_fire(reason, sig, sent)
            except Exception:  # noqa: BLE001 - reporting must not stop the escalation
                pass
            step, sent_at = step + 1, now
            next_at = now + ((self._cancel_grace if reason == "interrupt" else self._grace) if step == 1 else self._term_grace)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()


def _no_child_running(run: VariantRun) -> tuple[bool, str]:
    """May a lock on ``run``'s stack be cancelled? Yes when no CLI child of this process runs
    for the stack: the update that took it (our own, killed) is gone."""
    running = procs.CHILDREN.running(run.stack)
    if running:
        return False, "a pulumi process of this run still works on it (pid " + ", ".join(
            str(c.process.pid) for c in running) + ")"
    return True, "no pulumi process of this run works on it any more"


class MatrixRunner:
    def __init__(
        self,
        backend: StackBackend,
        opts: MatrixOptions,
        *,
        project_dir: Path | None = None,
        on_change: Callable[[VariantRun], None] | None = None,
        validate_result: Callable[[dict], None] | None = None,
        owner: OwnerRecord | None = None,
        runs: list[VariantRun] | None = None,
    ) -> None:
        self.backend = backend
        self.opts = opts
        self.project_dir = project_dir if project_dir is not None else find_project_dir()
        self.cancel = threading.Event()
        self.runs = runs if runs is not None else plan_runs(opts)
        self.owner = owner
        self._handles: dict[str, StackHandle] = {}
        self._lock = threading.Lock()
        self._on_change = on_change or (lambda run: None)
        self._validate = validate_result or _validate_result
        self._notify: Callable[[str], None] = lambda message: None

    # ---- one variant
    def _set(self, run: VariantRun, status: str | None = None, phase: str | None = None, line: str | None = None) -> None:
        if status:
            run.status = status
            if self.owner is not None:
                self.owner.set_status(run.stack, status)
        if phase:
            run.phase = phase
        if line is not None:
            run.last_line = line[-200:]
        try:
            self._on_change(run)
        except Exception:  # noqa: BLE001 - a display that fails must not stop a teardown
            pass

    def _logger(self, run: VariantRun) -> Callable[[str], None]:
        """The variant's log (``<out>/<variant>.log``, mode 600: Pulumi's output may name
        secrets' surroundings, and errors quote config). A log that cannot be written (the
        directory removed, a full disk) is noted once in ``run.log_error`` and the run goes on
        without it: nothing here raises, so the teardown never depends on the log."""
        lock = threading.Lock()
        path = self.opts.out / f"{run.variant}.log"
        try:
            self.opts.out.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.fchmod(fd, 0o600)  # an older log of the same name keeps its mode otherwise
            finally:
                os.close(fd)
            run.log_path = path
        except OSError as exc:
            run.log_error = f"cannot write the log {path}: {exc}"

        def log(line: str) -> None:
            if run.log_path is not None and run.log_error is None:
                try:
                    with lock:
                        fd = os.open(run.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                        with os.fdopen(fd, "a") as fh:
                            fh.write(line + "\n")
                except Exception as exc:  # noqa: BLE001 - OSError (ENOSPC, ENOENT), encoding errors
                    run.log_error = f"log {run.log_path} not written from here on: {exc}"
                    try:
                        self._notify(f"{run.variant}: {run.log_error} (the run and its teardown go on)")
                    except Exception:  # noqa: BLE001 - nothing in the log path may raise
                        pass
            if line.strip():
                self._set(run, line=line.strip())

        return log

    def run_one(self, run: VariantRun) -> VariantRun:
        try:
            return self._run_one(run)
        except BaseException as exc:  # noqa: BLE001 - a defect here must still end in a teardown report
            run.status, run.error = "failed", f"internal error: {short_error(exc)}"
            if run.created and not (run.removed or run.destroyed):
                run.left_behind = True
            return run

    def _run_one(self, run: VariantRun) -> VariantRun:
        if self.cancel.is_set():
            self._set(run, "cancelled", "not started")
            return run
        run.started = time.monotonic()
        log = self._logger(run)
        handle: StackHandle | None = None
        watch: _Watchdog | None = None
        try:
            log(f"# cnibench matrix: variant {run.variant}, stack {run.stack}")
            values = stack_values(run.variant, self.opts, self.project_dir)
            self._set(run, "creating", "create stack")
            run.created = True
            handle = self.backend.create(run.stack)
            with self._lock:
                self._handles[run.stack] = handle
            handle.set_config(values)
            if self.cancel.is_set():
                raise KeyboardInterrupt
            self._set(run, "up", "pulumi up")

            def fire(reason: str, sig: int, sent: bool) -> None:
                name = _SIGNAMES.get(sig, str(sig))
                if reason == "timeout":
                    log(f"# timeout after {self.opts.timeout:.0f}s: {name} to pulumi up")
                else:
                    log(f"# interrupted: {name} to pulumi up")
                    self._notify(f"interrupt forwarded to pulumi up of {run.stack}: {name}")

            watch = _Watchdog(handle, self.opts.timeout, self.opts.kill_grace, self.opts.term_grace, fire,
                              cancel=self.cancel, cancel_grace=self.opts.interrupt_grace)
            with watch:
                outputs = handle.up(log)
            if watch.reason == "timeout":
                raise TimeoutError(f"pulumi up exceeded --timeout {self.opts.timeout:.0f}s")
            if watch.reason == "interrupt":
                raise KeyboardInterrupt
            if "benchmark" not in outputs:
                raise RuntimeError(f"stack {run.stack} has no 'benchmark' output (outputs: {sorted(outputs)})")
            doc = outputs["benchmark"]
            if isinstance(doc, str):
                doc = json.loads(doc)
            self._validate(doc)
            path = self.opts.out / f"{run.variant}.json"
            write_private(path, json.dumps(doc, indent=2) + "\n")
            run.result_path = path
            run.status = "ok"
        except KeyboardInterrupt:
            self.cancel.set()
            run.status, run.error = "interrupted", "interrupted (Ctrl-C or SIGTERM)"
        except BaseException as exc:  # noqa: BLE001 - every failure ends in a destroy
            reason = watch.reason if watch is not None else None
            if reason == "timeout":
                run.status, run.error = "timeout", f"timed out after {self.opts.timeout:.0f}s ({short_error(exc)})"
            elif reason == "interrupt" or self.cancel.is_set():
                run.status, run.error = "interrupted", f"interrupted ({short_error(exc)})"
            else:
                run.status, run.error = "failed", short_error(exc)
        finally:
            final = run.status
            if run.error:
                log(f"# {run.status}: {run.error}")
            if run.created:
                self._teardown(run, handle, log)
            run.finished = time.monotonic()
            if run.log_error:
                run.error = (run.error + "; " if run.error else "") + run.log_error
            self._set(run, final if not run.left_behind else "left behind", "done")
        return run

    def _teardown(self, run: VariantRun, handle: StackHandle | None, log: Callable[[str], None],
                  may_cancel: Callable[[VariantRun], tuple[bool, str]] = _no_child_running) -> None:
        """Destroy and remove the stack. A destroy that fails is retried once after a refresh;
        one refused because an update holds the stack (:class:`StackLocked`) is retried after
        ``pulumi cancel`` when ``may_cancel`` says the holder is gone. Never raises."""
        try:
            self._destroy_and_remove(run, handle, log, may_cancel)
        except BaseException as exc:  # noqa: BLE001 - a defect must not hide a stack
            log(f"# teardown failed: {short_error(exc)}")
            if not run.destroyed:
                run.left_behind = True
                run.error = (run.error + "; " if run.error else "") + _left_message(run.stack)
        finally:
            with self._lock:
                self._handles.pop(run.stack, None)

    def _guarded(self, handle: StackHandle, what: str, op: Callable[[], None], log: Callable[[str], None]) -> None:
        def on_timeout(reason: str, sig: int, sent: bool) -> None:
            log(f"# {what} timed out after {self.opts.destroy_timeout:.0f}s: {_SIGNAMES.get(sig, str(sig))}")

        with _Watchdog(handle, self.opts.destroy_timeout, self.opts.kill_grace, self.opts.term_grace, on_timeout):
            op()

    def _destroy_and_remove(self, run: VariantRun, handle: StackHandle | None, log: Callable[[str], None],
                            may_cancel: Callable[[VariantRun], tuple[bool, str]]) -> None:
        if handle is None:
            # create failed: the stack may exist without resources; removing it is safe
            try:
                self.backend.remove(run.stack)
                run.removed = True
            except Exception:  # noqa: BLE001 - nothing was created
                pass
            return
        self._set(run, "destroying", "pulumi destroy")
        refreshed = cancelled = False
        for _ in range(4):  # destroy; at most one cancel and one refresh in between
            try:
                self._guarded(handle, "destroy", lambda: handle.destroy(log), log)
                run.destroyed = True
                break
            except StackLocked as exc:
                log(f"# destroy refused, the stack is locked: {short_error(exc)}")
                if cancelled or not self._cancel_lock(run, handle, log, may_cancel):
                    break
                cancelled = True
            except BaseException as exc:  # noqa: BLE001 - includes a KeyboardInterrupt of the double
                log(f"# destroy failed: {short_error(exc)}")
                if refreshed:
                    break
                refreshed = True
                self._set(run, phase="refresh, then destroy again")
                try:
                    self._guarded(handle, "refresh", lambda: handle.refresh(log), log)
                    log(f"# refresh done (pending creates cleared: a resource that was being created when the "
                        f"update stopped may exist outside the state; find it by its tag cnibench:stack={run.stack})")
                except StackLocked as exc2:
                    log(f"# refresh refused, the stack is locked: {short_error(exc2)}")
                    if cancelled or not self._cancel_lock(run, handle, log, may_cancel):
                        break
                    cancelled = True
                except BaseException as exc2:  # noqa: BLE001
                    log(f"# refresh failed: {short_error(exc2)}")
        if run.destroyed:
            try:
                self.backend.remove(run.stack)
                run.removed = True
                if self.owner is not None:
                    self.owner.set_status(run.stack, "removed")
            except Exception as exc:  # noqa: BLE001
                log(f"# stack rm failed: {short_error(exc)} (no resources left; remove it with --cleanup)")
        else:
            run.left_behind = True
            run.error = (run.error + "; " if run.error else "") + _left_message(run.stack)

    def _cancel_lock(self, run: VariantRun, handle: StackHandle, log: Callable[[str], None],
                     may_cancel: Callable[[VariantRun], tuple[bool, str]]) -> bool:
        ok, why = may_cancel(run)
        if not ok:
            log(f"# lock kept: {why}")
            run.error = (run.error + "; " if run.error else "") + f"stack locked ({why})"
            return False
        log(f"# stale lock ({why}): pulumi cancel, then destroy")
        self._set(run, phase="pulumi cancel, then destroy")
        try:
            handle.cancel()
            return True
        except BaseException as exc:  # noqa: BLE001
            log(f"# pulumi cancel failed: {short_error(exc)}")
            return False

    def _interrupted(self, report: MatrixReport, interrupts: int, notify: Callable[[str], None]) -> int:
        """Answer one more Ctrl-C/SIGTERM: cancel at once, then say what happens. A further one
        arriving meanwhile starts the answer again (cancelling is idempotent). Returns the count."""
        while True:
            try:
                interrupts += 1
                report.interrupted = True
                self.cancel.set()
                try:
                    if interrupts == 1:
                        notify("interrupted: no new stacks; each running pulumi up gets SIGINT now, SIGTERM after "
                               f"{self.opts.interrupt_grace:.0f}s, SIGKILL after {self.opts.term_grace:.0f}s more; "
                               "then every stack is destroyed")
                    else:
                        busy = sum(1 for r in self.runs if r.status in ("creating", "up", "destroying"))
                        notify(f"still tearing down {busy} stack(s): the destroys run in their own process group and "
                               "Ctrl-C does not reach them; waiting for them to end (to abandon them: "
                               f"kill -9 {os.getpid()}, then `cnibench matrix --cleanup` finds this run's stacks at once)")
                except Exception:  # noqa: BLE001 - the display must not stop the teardowns
                    pass
                return interrupts
            except KeyboardInterrupt:
                continue

    # ---- all variants
    def run(self, tick: Callable[[], None] = lambda: None, notify: Callable[[str], None] = lambda m: None) -> MatrixReport:
        """Run every variant (``parallel`` at a time) and tear each down. A Ctrl-C or SIGTERM
        (a KeyboardInterrupt in this thread) stops new stacks and cancels the running ``up``s
        at once (the watchdogs see ``cancel``); further ones are answered and ignored: the
        destroys run in their own process groups and this waits for them."""
        self._notify = notify
        report = MatrixReport(self.runs)
        if self.owner is not None:
            self.owner.follow_children()
        pool = ThreadPoolExecutor(max_workers=max(1, self.opts.parallel), thread_name_prefix="matrix")
        futures = {pool.submit(self.run_one, r) for r in self.runs}
        interrupts = 0
        pending = set(futures)
        try:
            while True:
                # the whole loop, its condition and the interrupt's own handling included, sits in a
                # try: a Ctrl-C between two turns, or a second one while the first is answered, is
                # one more interrupt, never an exception that leaves the run before its teardowns
                try:
                    while pending:
                        _, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                        if self.cancel.is_set():
                            report.interrupted = True
                        try:
                            tick()
                        except Exception:  # noqa: BLE001 - the display must not stop the teardowns
                            pass
                    break
                except KeyboardInterrupt:
                    interrupts = self._interrupted(report, interrupts, notify)
        finally:
            pool.shutdown(wait=True, cancel_futures=False)
            if self.owner is not None:
                self.owner.finish([r.stack for r in self.runs if r.created and not r.removed])
        for f in futures:
            f.result()  # run_one never raises; surface programming errors
        return report


def plan_runs(opts: MatrixOptions) -> list[VariantRun]:
    """One :class:`VariantRun` per variant with its stack name (planned before anything runs,
    so the owner record can list them)."""
    return [VariantRun(v, stack_name(v)) for v in opts.variants]


def _left_message(stack: str) -> str:
    return (f"DESTROY FAILED: stack {stack} keeps its resources; run `cnibench matrix --cleanup` "
            f"or `pulumi destroy --stack {stack}`")


def _validate_result(doc: dict) -> None:
    from cnibench import results

    results.validate(doc)
