"""Ephemeral stack matrix: one throw-away Pulumi stack per variant, always destroyed.

Design notes and their sources: docs/matrix.md (runner).
"""


from __future__ import annotations

import json
import math
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from cnibench import config as cfgmod
from cnibench.matrix.backend import StackBackend, StackHandle, short_error
from cnibench.matrix.names import stack_name
from cnibench.project import find_project_dir, load_stack_file, stack_config, without_namespace

DEFAULT_EXPIRY_HOURS = int(cfgmod.StackConfig.model_fields["expiry_hours"].default)


@dataclass
class MatrixOptions:
    variants: tuple[str, ...]
    out: Path = Path("results/matrix")
    parallel: int = 1
    timeout: float = 2 * 3600.0  # seconds for the `pulumi up` of one variant (provisioning + benchmark)
    destroy_timeout: float = 45 * 60.0
    kill_grace: float = 300.0  # after a timeout SIGINT, seconds before the second (immediate) one
    interrupt_grace: float = 60.0  # after Ctrl-C, seconds before SIGINT is forwarded to running updates
    overrides: Mapping[str, Any] = field(default_factory=dict)  # config key -> value, all variants
    expiry_hours: int | None = None  # None: long enough for timeout + destroy, at least the default


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
    need = math.ceil((opts.timeout + opts.destroy_timeout) / 3600.0)
    return max(need, DEFAULT_EXPIRY_HOURS)


def stack_values(variant: str, opts: MatrixOptions, project_dir: Path | None = None) -> dict[str, Any]:
    """The ``cnibench:*`` values to set on the ephemeral stack: the variant's stack file, the
    overrides, and the expiry. Raises ConfigError if the result would not validate."""
    values = load_stack_file(project_dir, variant)
    values.update({without_namespace(k): v for k, v in opts.overrides.items()})
    values["expiryHours"] = expiry_hours_for(opts)
    cfgmod.parse_config(stack_config(project_dir, variant, values))
    return values


class _Watchdog:
    """Calls ``handle.interrupt()`` after ``timeout`` s, and again after ``grace`` more."""

    def __init__(self, handle: StackHandle, timeout: float, grace: float, on_fire: Callable[[int], None]) -> None:
        self._handle, self._grace, self._on_fire = handle, grace, on_fire
        self._done = threading.Event()
        self.fired = 0
        self._thread = threading.Thread(target=self._run, args=(timeout,), daemon=True)

    def _run(self, timeout: float) -> None:
        wait_for = timeout
        while not self._done.wait(wait_for):
            self.fired += 1
            self._on_fire(self.fired)
            self._handle.interrupt()
            if self.fired >= 2:
                return
            wait_for = self._grace

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()


class MatrixRunner:
    def __init__(
        self,
        backend: StackBackend,
        opts: MatrixOptions,
        *,
        project_dir: Path | None = None,
        on_change: Callable[[VariantRun], None] | None = None,
        validate_result: Callable[[dict], None] | None = None,
    ) -> None:
        self.backend = backend
        self.opts = opts
        self.project_dir = project_dir if project_dir is not None else find_project_dir()
        self.cancel = threading.Event()
        self.runs = [VariantRun(v, stack_name(v)) for v in opts.variants]
        self._handles: dict[str, StackHandle] = {}
        self._lock = threading.Lock()
        self._on_change = on_change or (lambda run: None)
        self._validate = validate_result or _validate_result

    # ---- one variant
    def _set(self, run: VariantRun, status: str | None = None, phase: str | None = None, line: str | None = None) -> None:
        if status:
            run.status = status
        if phase:
            run.phase = phase
        if line is not None:
            run.last_line = line[-200:]
        self._on_change(run)

    def _logger(self, run: VariantRun) -> Callable[[str], None]:
        self.opts.out.mkdir(parents=True, exist_ok=True)
        run.log_path = self.opts.out / f"{run.variant}.log"
        lock = threading.Lock()

        def log(line: str) -> None:
            with lock, run.log_path.open("a") as fh:  # type: ignore[union-attr]
                fh.write(line + "\n")
            if line.strip():
                self._set(run, line=line.strip())

        return log

    def run_one(self, run: VariantRun) -> VariantRun:
        if self.cancel.is_set():
            self._set(run, "cancelled", "not started")
            return run
        run.started = time.monotonic()
        log = self._logger(run)
        log(f"# cnibench matrix: variant {run.variant}, stack {run.stack}")
        handle: StackHandle | None = None
        create_tried = False
        timed_out = threading.Event()
        try:
            values = stack_values(run.variant, self.opts, self.project_dir)
            self._set(run, "creating", "create stack")
            create_tried = True
            handle = self.backend.create(run.stack)
            with self._lock:
                self._handles[run.stack] = handle
            handle.set_config(values)
            if self.cancel.is_set():
                raise KeyboardInterrupt
            self._set(run, "up", "pulumi up")

            def fire(n: int) -> None:
                timed_out.set()
                log(f"# timeout after {self.opts.timeout:.0f}s: interrupting pulumi up ({n})")

            with _Watchdog(handle, self.opts.timeout, self.opts.kill_grace, fire):
                outputs = handle.up(log)
            if timed_out.is_set():
                raise TimeoutError(f"pulumi up exceeded --timeout {self.opts.timeout:.0f}s")
            if "benchmark" not in outputs:
                raise RuntimeError(f"stack {run.stack} has no 'benchmark' output (outputs: {sorted(outputs)})")
            doc = outputs["benchmark"]
            if isinstance(doc, str):
                doc = json.loads(doc)
            self._validate(doc)
            run.result_path = self.opts.out / f"{run.variant}.json"
            run.result_path.write_text(json.dumps(doc, indent=2) + "\n")
            run.status = "ok"
        except KeyboardInterrupt:
            self.cancel.set()
            run.status, run.error = "interrupted", "interrupted (Ctrl-C)"
        except BaseException as exc:  # noqa: BLE001 - every failure ends in a destroy
            if timed_out.is_set():
                run.status, run.error = "timeout", f"timed out after {self.opts.timeout:.0f}s ({exc})"
            elif self.cancel.is_set():
                run.status, run.error = "interrupted", f"interrupted ({short_error(exc)})"
            else:
                run.status, run.error = "failed", short_error(exc)
        finally:
            if run.error:
                log(f"# {run.status}: {run.error}")
            final = run.status
            if create_tried:
                self._teardown(run, handle, log)
            run.finished = time.monotonic()
            self._set(run, final if not run.left_behind else "left behind", "done")
        return run

    def _teardown(self, run: VariantRun, handle: StackHandle | None, log: Callable[[str], None]) -> None:
        """Destroy (refresh-then-destroy on failure) and remove the stack. Never raises."""
        if handle is None:
            # create failed: the stack may exist without resources; removing it is safe
            try:
                self.backend.remove(run.stack)
                run.removed = True
            except Exception:  # noqa: BLE001 - nothing was created
                pass
            return
        self._set(run, "destroying", "pulumi destroy")
        attempts: list[tuple[str, Callable[[], None]]] = [
            ("destroy", lambda: handle.destroy(log)),
            ("refresh", lambda: handle.refresh(log)),
            ("destroy", lambda: handle.destroy(log)),
        ]
        for i, (what, op) in enumerate(attempts):
            try:
                def on_timeout(n: int, w: str = what) -> None:
                    log(f"# {w} timed out: interrupting ({n})")

                with _Watchdog(handle, self.opts.destroy_timeout, self.opts.kill_grace, on_timeout):
                    op()
                if what == "destroy":
                    run.destroyed = True
                    break
                log(f"# refresh done (pending creates cleared: a resource that was being created when the "
                    f"update stopped may exist outside the state; find it by its tag cnibench:stack={run.stack})")
            except BaseException as exc:  # noqa: BLE001 - includes a Ctrl-C during the destroy
                log(f"# {what} failed: {short_error(exc)}")
                if i == 0:
                    self._set(run, phase="refresh, then destroy again")
        if run.destroyed:
            try:
                self.backend.remove(run.stack)
                run.removed = True
            except Exception as exc:  # noqa: BLE001
                log(f"# stack rm failed: {short_error(exc)} (no resources left; remove it with --cleanup)")
        else:
            run.left_behind = True
            run.error = (run.error + "; " if run.error else "") + (
                f"DESTROY FAILED: stack {run.stack} keeps its resources; run `cnibench matrix --cleanup` "
                f"or `pulumi destroy --stack {run.stack}`"
            )
        with self._lock:
            self._handles.pop(run.stack, None)

    # ---- all variants
    def interrupt_running(self) -> int:
        with self._lock:
            handles = [self._handles[r.stack] for r in self.runs if r.status == "up" and r.stack in self._handles]
        return sum(1 for h in handles if h.interrupt())

    def run(self, tick: Callable[[], None] = lambda: None, notify: Callable[[str], None] = lambda m: None) -> MatrixReport:
        report = MatrixReport(self.runs)
        pool = ThreadPoolExecutor(max_workers=max(1, self.opts.parallel), thread_name_prefix="matrix")
        futures = {pool.submit(self.run_one, r) for r in self.runs}
        interrupts = 0
        interrupted_at: float | None = None
        forwarded = False
        pending = set(futures)
        try:
            while pending:
                try:
                    _, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    if self.cancel.is_set():
                        report.interrupted = True
                        interrupted_at = interrupted_at or time.monotonic()
                    if interrupted_at and not forwarded and time.monotonic() - interrupted_at >= self.opts.interrupt_grace:
                        forwarded = True
                        if self.interrupt_running():
                            notify("interrupt forwarded to the pulumi updates still running")
                    tick()
                except KeyboardInterrupt:
                    interrupts += 1
                    report.interrupted = True
                    self.cancel.set()
                    interrupted_at = interrupted_at or time.monotonic()
                    if interrupts >= 3:
                        notify("stopped waiting; the destroys still run in this process until they end. "
                               "Check with `cnibench matrix --cleanup --all`")
                        raise
                    notify("interrupted: no new stacks; running updates are cancelled, then every stack is "
                           f"destroyed. Ctrl-C {3 - interrupts} more time(s) to stop waiting (resources may be left)")
        finally:
            # a third Ctrl-C abandons waiting; the threads still finish their destroys
            pool.shutdown(wait=interrupts < 3, cancel_futures=False)
        for f in futures:
            f.result()  # run_one never raises; surface programming errors
        return report


def _validate_result(doc: dict) -> None:
    from cnibench import results

    results.validate(doc)
