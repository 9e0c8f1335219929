"""Ephemeral stack matrix: one throw-away Pulumi stack per variant, always destroyed.

For every selected variant the runner creates a stack named ``cnibench-<variant>-<UTC stamp>-<hex>``
in the project at the repository root (Pulumi.yaml, ``stackConfigDir: stacks``), copies the
variant's stack file values and the user's overrides into it, runs ``up``, reads the
``benchmark`` output and then, whatever happened (success, failure, timeout, Ctrl-C), destroys
the stack and removes it. A destroy that fails is retried once after a ``refresh`` (the refresh
drops resources that are already gone and ``clear_pending_creates`` forgets operations an
interrupted update left pending). A stack whose destroy still fails is NOT removed: its state is
the only record of what is billed; it is reported with the command that finishes the job
(``cnibench matrix --cleanup``).

The Pulumi Automation API is reached only through :class:`StackBackend` / :class:`StackHandle`.
:class:`AutomationBackend` is the real one (``pulumi.automation``); tests replace it with a
recording double because the Pulumi CLI cannot be installed in the test environment.

Interrupts. A Ctrl-C in a terminal is delivered to the whole foreground process group, so the
``pulumi up`` child processes receive it as well and start Pulumi's graceful cancellation
("^C received; cancelling. If you would like to terminate immediately, press ^C again." -- the
Pulumi CLI's own message; a second SIGINT terminates it immediately and may orphan resources).
The runner therefore does not forward the first interrupt at once: it stops starting new
stacks, waits ``interrupt_grace`` seconds for the running updates to return by themselves and
only then sends one SIGINT to the ``pulumi`` processes still running an update for its stacks
(the case of a SIGINT/SIGTERM sent to this process alone). Timeouts send SIGINT the same way,
and a second one after ``kill_grace`` seconds if the update has not stopped.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import secrets
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait, FIRST_COMPLETED
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from cnibench import config as cfgmod

PROJECT_DIR = Path(__file__).resolve().parent.parent
STACK_PREFIX = "cnibench-"
_STAMP_FORMAT = "%Y%m%dt%H%Mz"
# cnibench-<variant>-<yyyymmddtHHMMz>-<4 hex>; the variant itself contains hyphens.
_NAME = re.compile(r"^cnibench-(?P<variant>[a-z0-9][a-z0-9-]*)-(?P<stamp>\d{8}t\d{4}z)-(?P<rand>[0-9a-f]{4})$")
DEFAULT_PASSPHRASE_ENV = "PULUMI_CONFIG_PASSPHRASE"
DEFAULT_BACKEND = "file://~"  # what `pulumi login --local` uses: state in ~/.pulumi
DEFAULT_EXPIRY_HOURS = int(cfgmod.StackConfig.model_fields["expiry_hours"].default)


# --------------------------------------------------------------------------- names


def stack_name(variant: str, now: _dt.datetime | None = None, rand: str | None = None) -> str:
    """``cnibench-<variant>-<UTC minute>-<4 hex>``: unique, sortable, and it carries its creation
    time so ``--cleanup`` can date a stack on any backend without reading its config."""
    now = (now or _dt.datetime.now(_dt.timezone.utc)).astimezone(_dt.timezone.utc)
    return f"{STACK_PREFIX}{variant}-{now.strftime(_STAMP_FORMAT)}-{rand or secrets.token_hex(2)}"


@dataclass(frozen=True)
class ParsedName:
    variant: str
    created: _dt.datetime


def parse_stack_name(name: str) -> ParsedName | None:
    """The variant and creation time of a matrix stack name, or None for any other stack
    (the long-lived per-variant stacks such as ``cilium-native`` are never touched)."""
    m = _NAME.match(name.rsplit("/", 1)[-1])
    if not m:
        return None
    created = _dt.datetime.strptime(m["stamp"], _STAMP_FORMAT).replace(tzinfo=_dt.timezone.utc)
    return ParsedName(m["variant"], created)


# --------------------------------------------------------------------------- boundary


class StackHandle(Protocol):
    """One stack, as the runner uses it. Every method blocks until the operation ends and raises
    on failure."""

    name: str

    def set_config(self, values: Mapping[str, Any]) -> None: ...
    def up(self, on_output: Callable[[str], None]) -> dict[str, Any]: ...
    def destroy(self, on_output: Callable[[str], None]) -> None: ...
    def refresh(self, on_output: Callable[[str], None]) -> None: ...
    def interrupt(self) -> bool: ...
    def config_value(self, key: str) -> str | None: ...


@dataclass(frozen=True)
class StackInfo:
    name: str
    last_update: _dt.datetime | None = None
    update_in_progress: bool | None = None
    resource_count: int | None = None


class StackBackend(Protocol):
    def create(self, name: str) -> StackHandle: ...
    def select(self, name: str) -> StackHandle: ...
    def remove(self, name: str) -> None: ...
    def list_stacks(self) -> list[StackInfo]: ...


def _pulumi_pids(stack: str, proc: Path = Path("/proc")) -> list[int]:
    """PIDs of this process's descendants running ``pulumi ... --stack <stack>``.

    The Automation API runs the CLI with ``subprocess.Popen`` and keeps the handle to itself,
    so the process is found by its command line (``Stack._run_pulumi_cmd_sync`` appends
    ``--stack <name>``; our names are unique).
    """
    me = os.getpid()
    parent: dict[int, int] = {}
    argv: dict[int, list[str]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv[int(entry.name)] = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        # field 4 (ppid) comes after the parenthesised command name, which may hold spaces
        parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])

    def descends(pid: int) -> bool:
        seen = set()
        while pid not in (0, 1) and pid not in seen:
            seen.add(pid)
            pid = parent.get(pid, 0)
            if pid == me:
                return True
        return False

    found = []
    for pid, args in argv.items():
        if not args or os.path.basename(args[0]) != "pulumi":
            continue
        if any(a == "--stack" and i + 1 < len(args) and args[i + 1] == stack for i, a in enumerate(args)) \
                and descends(pid):
            found.append(pid)
    return found


class AutomationStack:
    """A :class:`StackHandle` over ``pulumi.automation.Stack``."""

    def __init__(self, stack: Any) -> None:
        self._stack = stack
        self.name: str = stack.name

    def set_config(self, values: Mapping[str, Any]) -> None:
        from pulumi.automation import ConfigValue

        flat = {k: ConfigValue(value=v) for k, v in flatten_config(values).items()}
        self._stack.set_all_config(flat, path=True)

    def up(self, on_output: Callable[[str], None]) -> dict[str, Any]:
        result = self._stack.up(on_output=on_output, on_error=on_output, color="never")
        return {k: v.value for k, v in result.outputs.items()}

    def destroy(self, on_output: Callable[[str], None]) -> None:
        # continue_on_error: delete everything that can be deleted even if one resource fails
        self._stack.destroy(on_output=on_output, on_error=on_output, color="never", continue_on_error=True)

    def refresh(self, on_output: Callable[[str], None]) -> None:
        self._stack.refresh(on_output=on_output, on_error=on_output, color="never", clear_pending_creates=True)

    def interrupt(self) -> bool:
        pids = _pulumi_pids(self.name)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        return bool(pids)

    def config_value(self, key: str) -> str | None:
        try:
            return self._stack.get_config(key if ":" in key else f"{cfgmod.NAMESPACE}:{key}").value
        except Exception:  # noqa: BLE001 - a stack without the key, or config kept elsewhere
            return None


def flatten_config(values: Mapping[str, Any]) -> dict[str, str]:
    """``{"benchmarkLoadLevels": [30, 50], "splitSubnets": True}`` ->
    ``{"cnibench:benchmarkLoadLevels[0]": "30", ..., "cnibench:splitSubnets": "true"}``.

    Lists are set element by element with path syntax (``config set-all --path``) so they are
    stored as YAML lists, as Pulumi.yaml declares them (``type: array``); a list given as JSON
    text (``--config benchmarkLoadLevels=[30,50]``) is expanded the same way.
    """
    flat: dict[str, str] = {}
    for key, value in values.items():
        full = key if ":" in key else f"{cfgmod.NAMESPACE}:{key}"
        if isinstance(value, str) and value.strip().startswith("["):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                flat[f"{full}[{i}]"] = _config_text(item)
        else:
            flat[full] = _config_text(value)
    return flat


def _config_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class AutomationBackend:
    """The real backend: ``pulumi.automation.LocalWorkspace`` on the project at ``project_dir``.

    ``backend_url`` is any Pulumi backend URL (default ``file://~``, the local file backend in
    ``~/.pulumi`` that ``pulumi login --local`` uses, so stacks made here and by hand are in one
    place); secrets use the passphrase provider with the passphrase from
    ``PULUMI_CONFIG_PASSPHRASE`` unless another ``secrets_provider`` is given.

    The workspace is the project directory, so each ephemeral stack's settings file is
    ``stacks/Pulumi.<stack>.yaml`` (``stackConfigDir``) while it exists; ``stack rm`` deletes it.
    """

    def __init__(self, project_dir: Path = PROJECT_DIR, backend_url: str | None = None,
                 secrets_provider: str | None = "passphrase", passphrase: str | None = None) -> None:
        from pulumi.automation import LocalWorkspace, LocalWorkspaceOptions

        self.project_dir = Path(project_dir)
        self.backend_url = backend_url = backend_url or DEFAULT_BACKEND
        env = {"PULUMI_BACKEND_URL": backend_url, "PULUMI_SKIP_UPDATE_CHECK": "true"}
        if secrets_provider == "passphrase":
            phrase = passphrase if passphrase is not None else os.environ.get(DEFAULT_PASSPHRASE_ENV)
            if phrase is None:
                raise RuntimeError(
                    f"the passphrase secrets provider needs {DEFAULT_PASSPHRASE_ENV} (it encrypts the SSH key "
                    "and kubeconfig in the stack state); set it, or pass --secrets-provider"
                )
            env[DEFAULT_PASSPHRASE_ENV] = phrase
        self._options = LocalWorkspaceOptions(
            work_dir=str(self.project_dir), env_vars=env, secrets_provider=secrets_provider,
        )
        self._workspace = LocalWorkspace(**self._options.__dict__)

    def create(self, name: str) -> StackHandle:
        from pulumi.automation import Stack

        return AutomationStack(Stack.create(name, self._workspace))

    def select(self, name: str) -> StackHandle:
        from pulumi.automation import Stack

        return AutomationStack(Stack.select(name, self._workspace))

    def remove(self, name: str) -> None:
        self._workspace.remove_stack(name)

    def list_stacks(self) -> list[StackInfo]:
        out = []
        for s in self._workspace.list_stacks():
            last = s.last_update
            if last is not None and last.tzinfo is None:
                last = last.replace(tzinfo=_dt.timezone.utc)
            out.append(StackInfo(s.name, last, s.update_in_progress, s.resource_count))
        return out


# --------------------------------------------------------------------------- policy gate


class PolicyViolation(RuntimeError):
    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("mandatory policy violations:\n" + "\n".join(f"  - {p}" for p in self.problems))


Preflight = Callable[[str, Mapping[str, Any]], Iterable[Any]]


def _blocking(finding: Any) -> bool:
    """A finding stops the matrix when it is a failed mandatory rule. Accepts the policy
    module's ``Finding`` (``blocking``) or anything with ``mandatory`` and ``passed``."""
    if hasattr(finding, "blocking"):
        return bool(finding.blocking)
    return bool(getattr(finding, "mandatory", False)) and not bool(getattr(finding, "passed", True))


def _describe(finding: Any) -> str:
    name = getattr(finding, "rule", None) or getattr(finding, "name", "?")
    messages = getattr(finding, "messages", None) or [getattr(finding, "message", "")]
    return f"{name}: {'; '.join(str(m) for m in messages if m)}"


def default_preflight() -> Preflight:
    """The policy issue's offline check: the program under Pulumi's mocks + the policy rules."""
    from cnibench.check import run_check

    return run_check


def policy_gate(variants: Sequence[str], overrides: Mapping[str, Mapping[str, Any]], preflight: Preflight) -> list[str]:
    """Run the offline policy check for every variant; raise :class:`PolicyViolation` listing
    every mandatory violation of every variant. Returns the advisory messages."""
    blocking, advisories = [], []
    for variant in variants:
        try:
            findings = list(preflight(variant, overrides.get(variant, {})))
        except cfgmod.ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - a check that cannot run does not let money through
            blocking.append(f"{variant}: the offline policy check could not run: {_short(exc)}")
            continue
        for finding in findings:
            if _blocking(finding):
                blocking.append(f"{variant}: {_describe(finding)}")
            elif getattr(finding, "verdict", "") == "warn":
                advisories.append(f"{variant}: {_describe(finding)}")
    if blocking:
        raise PolicyViolation(blocking)
    return advisories


# --------------------------------------------------------------------------- runner


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


def stack_values(variant: str, opts: MatrixOptions, project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    """The ``cnibench:*`` values to set on the ephemeral stack: the variant's stack file, the
    overrides, and the expiry. Raises ConfigError if the result would not validate."""
    values = cfgmod.load_stack_file(project_dir, variant)
    values.update({k.split(":", 1)[-1]: v for k, v in opts.overrides.items()})
    values["expiryHours"] = expiry_hours_for(opts)
    cfgmod.parse_config(cfgmod.stack_config(project_dir, variant, values))
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

    def __enter__(self) -> "_Watchdog":
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
        project_dir: Path = PROJECT_DIR,
        on_change: Callable[[VariantRun], None] | None = None,
        validate_result: Callable[[dict], None] | None = None,
    ) -> None:
        self.backend = backend
        self.opts = opts
        self.project_dir = project_dir
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
                run.status, run.error = "interrupted", f"interrupted ({_short(exc)})"
            else:
                run.status, run.error = "failed", _short(exc)
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
                with _Watchdog(handle, self.opts.destroy_timeout, self.opts.kill_grace,
                               lambda n, w=what: log(f"# {w} timed out: interrupting ({n})")):
                    op()
                if what == "destroy":
                    run.destroyed = True
                    break
                log(f"# refresh done (pending creates cleared: a resource that was being created when the "
                    f"update stopped may exist outside the state; find it by its tag cnibench:stack={run.stack})")
            except BaseException as exc:  # noqa: BLE001 - includes a Ctrl-C during the destroy
                log(f"# {what} failed: {_short(exc)}")
                if i == 0:
                    self._set(run, phase="refresh, then destroy again")
        if run.destroyed:
            try:
                self.backend.remove(run.stack)
                run.removed = True
            except Exception as exc:  # noqa: BLE001
                log(f"# stack rm failed: {_short(exc)} (no resources left; remove it with --cleanup)")
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


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # CommandError texts are long: keep the first line and the last error line
    if len(lines) > 3:
        errs = [ln for ln in lines if "error" in ln.lower()]
        return f"{lines[0].strip()} ... {(errs[-1] if errs else lines[-1]).strip()}"
    return " ".join(ln.strip() for ln in lines)


def _validate_result(doc: dict) -> None:
    from cnibench import results

    results.validate(doc)


# --------------------------------------------------------------------------- cleanup


@dataclass
class Leftover:
    name: str
    variant: str
    created: _dt.datetime
    expires: _dt.datetime
    resource_count: int | None
    update_in_progress: bool | None


def find_leftovers(backend: StackBackend, now: _dt.datetime | None = None, include_unexpired: bool = False) -> list[Leftover]:
    """Matrix stacks (by name) past their expiry: last update (or creation) + their
    ``cnibench:expiryHours`` (the default when the stack's config cannot be read)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    found = []
    for info in backend.list_stacks():
        parsed = parse_stack_name(info.name)
        if parsed is None:
            continue
        hours = DEFAULT_EXPIRY_HOURS
        try:
            value = backend.select(info.name).config_value("expiryHours")
            if value:
                hours = int(value)
        except Exception:  # noqa: BLE001 - unreadable config: use the default
            pass
        base = max(parsed.created, info.last_update or parsed.created)
        expires = base + _dt.timedelta(hours=hours)
        if include_unexpired or expires <= now:
            found.append(Leftover(info.name, parsed.variant, parsed.created, expires,
                                  info.resource_count, info.update_in_progress))
    return found


def cleanup(backend: StackBackend, leftovers: Sequence[Leftover], log: Callable[[str], None] = print,
            destroy_timeout: float = 45 * 60.0, kill_grace: float = 300.0) -> list[VariantRun]:
    """Destroy (refresh-then-destroy on failure) and remove each leftover stack."""
    out = []
    runner = MatrixRunner(backend, MatrixOptions(variants=(), destroy_timeout=destroy_timeout, kill_grace=kill_grace))
    for left in leftovers:
        run = VariantRun(left.variant, left.name)
        if left.update_in_progress:
            run.status, run.error = "skipped", "an update is in progress (another run?); not touched"
            log(f"{left.name}: {run.error}")
            out.append(run)
            continue
        try:
            handle = backend.select(left.name)
        except Exception as exc:  # noqa: BLE001
            run.status, run.error = "failed", f"cannot select: {_short(exc)}"
            log(f"{left.name}: {run.error}")
            out.append(run)
            continue
        log(f"{left.name}: destroying ({left.resource_count if left.resource_count is not None else '?'} resources)")
        runner._teardown(run, handle, lambda line, n=left.name: log(f"{n}: {line}") if line.startswith("#") else None)
        run.status = "ok" if run.removed else ("destroyed" if run.destroyed else "left behind")
        log(f"{left.name}: {run.status}")
        out.append(run)
    return out
