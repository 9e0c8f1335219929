"""The Automation-API boundary: :class:`StackBackend` / :class:`StackHandle`, and
:class:`AutomationBackend`, the real one (``pulumi.automation``). Tests replace it with a
recording double because the Pulumi CLI cannot be installed in the test environment."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Protocol, Sequence

import yaml

from cnibench.errors import InputError
from cnibench.matrix import procs
from cnibench.matrix.owner import default_state_dir
from cnibench.project import PROJECT_FILE, config_text, find_project_dir, with_namespace

if TYPE_CHECKING:  # mypy checks the calls into the SDK; pulumi is imported only when the backend is used
    from pulumi.automation import PulumiCommand, Stack

DEFAULT_PASSPHRASE_ENV = "PULUMI_CONFIG_PASSPHRASE"
PASSPHRASE_FILE_ENV = "PULUMI_CONFIG_PASSPHRASE_FILE"
DEFAULT_BACKEND = "file://~"  # what `pulumi login --local` uses: state in ~/.pulumi
PULUMI_INSTALL_URL = "https://www.pulumi.com/docs/iac/download-install/"
# where the Pulumi installer (get.pulumi.com) puts the CLI; its PATH entry is added to the shell's rc file
PULUMI_INSTALL_ROOT = Path("~/.pulumi")
WORKSPACE_NAME = "workspace"  # <state dir>/workspace: the ephemeral stacks' Pulumi.yaml and stack settings
# The backends `pulumi login` knows (pulumi/pulumi pkg/backend/diy: file, s3, azblob, gs; else a
# Pulumi Cloud or self-hosted service URL, https:// or http://).
BACKEND_SCHEMES = ("file", "s3", "azblob", "gs", "https", "http")
BACKEND_HELP = ("file://<dir> (file://~ is ~/.pulumi), s3://<bucket>, azblob://<container>, gs://<bucket>, "
                "https://api.pulumi.com or another service URL; leave it out for file://~")
# `pulumi stack init --secrets-provider`: passphrase, default (the backend's own; Pulumi Cloud's
# with a service backend) or a KMS URL of one of these schemes.
SECRETS_SCHEMES = ("awskms", "azurekeyvault", "gcpkms", "hashivault")
SECRETS_HELP = ("passphrase, default, or a key URL: awskms://<key id>, azurekeyvault://<vault>/keys/<key>, "
                "gcpkms://projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>, hashivault://<key>")
_NO_SPACE = re.compile(r"^\S+$")
_ESC_ENV = re.compile(r"^(?:[A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+(?:@[A-Za-z0-9_.-]+)?$")


def _shown(value: str, limit: int = 80) -> str:
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"


def check_backend_url(url: str | None) -> str:
    """The ``--backend`` URL (or ``$PULUMI_BACKEND_URL``), checked offline: one of
    :data:`BACKEND_SCHEMES` with something after ``://``, no whitespace. Raises :class:`InputError`."""
    if url is None:
        return DEFAULT_BACKEND
    flag = "--backend (or $PULUMI_BACKEND_URL)"
    if not url.strip():
        raise InputError(f"{flag} {url!r}: empty; give {BACKEND_HELP}")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in BACKEND_SCHEMES:
        what = f"unknown scheme {scheme}://" if sep else "no scheme"
        raise InputError(f"{flag} {_shown(url)}: {what}; give {BACKEND_HELP}")
    if not rest or not _NO_SPACE.match(url):
        raise InputError(f"{flag} {_shown(url)}: " + ("nothing after ://" if not rest else "contains whitespace")
                         + f"; give {BACKEND_HELP}")
    return url


def check_secrets_provider(provider: str) -> str | None:
    """The ``--secrets-provider``, checked offline; returns what ``LocalWorkspaceOptions`` takes
    (None for ``default``: the backend's own). Raises :class:`InputError`."""
    if provider in ("passphrase",):
        return provider
    if provider == "default":
        return None
    scheme, sep, rest = provider.partition("://")
    if not sep or scheme not in SECRETS_SCHEMES or not rest or not _NO_SPACE.match(provider):
        what = "empty" if not provider.strip() else (
            f"unknown scheme {scheme}://" if sep and scheme not in SECRETS_SCHEMES
            else "no key after ://" if sep and not rest else "not a secrets provider")
        raise InputError(f"--secrets-provider {_shown(provider)}: {what}; give {SECRETS_HELP}")
    return provider


def check_environments(environments: Sequence[str]) -> tuple[str, ...]:
    """``--esc-env`` names as Pulumi ESC spells them: ``[org/][project/]env[@version]`` of letters,
    digits, ``-``, ``_`` and ``.``. Raises :class:`InputError` naming the first bad one."""
    for env in environments:
        if not _ESC_ENV.match(env):
            raise InputError(f"--esc-env {_shown(env)}: not an ESC environment name; give [org/]project/env "
                             "(letters, digits, -, _ and .; optionally @<version>), e.g. myproject/aws-oidc")
    return tuple(environments)


class PulumiCLIMissing(InputError):
    """No ``pulumi`` executable on PATH (nor in the installer's ~/.pulumi/bin)."""


def find_pulumi_cli(environ: Mapping[str, str] | None = None) -> str | None:
    """The Pulumi CLI's installation root for ``PulumiCommand(root=...)``: None for ``pulumi``
    on PATH (the Automation API's default), else ``~/.pulumi`` when the installer put it there
    but the shell's PATH does not have it yet. Raises :class:`PulumiCLIMissing` naming where
    to get it (before anything is asked or created; never ``[Errno 2] ... 'pulumi'``)."""
    env = os.environ if environ is None else environ
    if shutil.which("pulumi", path=env.get("PATH", os.defpath)):
        return None
    home = PULUMI_INSTALL_ROOT.expanduser()
    if os.access(home / "bin" / "pulumi", os.X_OK):
        return str(home)
    raise PulumiCLIMissing(
        "the Pulumi CLI (pulumi) is not installed or not on PATH: the matrix drives it through the Automation API. "
        f"Install it ({PULUMI_INSTALL_URL}, e.g. curl -fsSL https://get.pulumi.com | sh), open a new shell, "
        "and check with `pulumi version`"
    )


def passphrase_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment that gives the Pulumi CLI the passphrase of the passphrase secrets
    provider, with the CLI's own precedence (pulumi/pulumi ``pkg/secrets/passphrase``,
    ``readPassphrase``): ``PULUMI_CONFIG_PASSPHRASE`` when it is set at all (even empty), else
    ``PULUMI_CONFIG_PASSPHRASE_FILE`` when non-empty (a path relative to the current directory;
    the CLI strips surrounding whitespace from its contents). The file is passed as an absolute
    path (the CLI runs in the matrix workspace, not here) and read once now, so an unreadable
    file is refused before anything is created. Raises :class:`InputError` when neither is set
    (the CLI cannot prompt: it runs non-interactively)."""
    env = os.environ if environ is None else environ
    if DEFAULT_PASSPHRASE_ENV in env:
        return {DEFAULT_PASSPHRASE_ENV: env[DEFAULT_PASSPHRASE_ENV]}
    name = env.get(PASSPHRASE_FILE_ENV, "")
    if name:
        path = os.path.abspath(name)
        if os.path.isdir(path):
            raise InputError(f"{PASSPHRASE_FILE_ENV}={name}: is a directory, not a file holding the passphrase")
        try:
            with open(path, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise InputError(f"{PASSPHRASE_FILE_ENV}={name}: cannot read it: {exc.strerror or exc}") from None
        return {PASSPHRASE_FILE_ENV: path}
    raise InputError(
        f"the passphrase secrets provider needs {DEFAULT_PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV} (a file holding "
        "the passphrase), as the Pulumi CLI does: it encrypts the SSH key and kubeconfig in the stack state; "
        "set one, or pass --secrets-provider"
    )


def write_workspace(project_dir: Path, work_dir: Path) -> Path:
    """The matrix's own Pulumi workspace, outside the repository: ``work_dir/Pulumi.yaml`` is the
    checkout's project file without ``stackConfigDir`` (so every ephemeral stack's settings file,
    ``Pulumi.<stack>.yaml``, is written here, never into the checkout's ``stacks/``) and with an
    absolute ``virtualenv``; ``work_dir/__main__.py`` runs the checkout's program. A stack's file
    lives as long as the stack (``pulumi stack rm`` deletes it); one left behind keeps its
    ``expiryHours`` readable for ``--cleanup``. Mode 700; rewritten atomically by every run."""
    work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(work_dir, 0o700)
    project = yaml.safe_load((project_dir / PROJECT_FILE).read_text()) or {}
    project.pop("stackConfigDir", None)
    runtime = project.get("runtime")
    if isinstance(runtime, dict):
        options = runtime.get("options") or {}
        venv = options.get("virtualenv")
        if isinstance(venv, str) and venv and not os.path.isabs(venv):
            options["virtualenv"] = str((project_dir / venv).absolute())
    main = project.pop("main", None)
    program = (project_dir / main) if isinstance(main, str) and main else project_dir
    shim = (
        '"""Generated by cnibench matrix: runs the Pulumi program of the checkout at '
        f'{project_dir} (the workspace only keeps the stacks\' settings out of its stacks/)."""\n'
        "import runpy\nimport sys\n\n"
        f"sys.path.insert(0, {str(project_dir)!r})\n"
        f"runpy.run_path({str(program / '__main__.py')!r}, run_name='__main__')\n"
    )
    for name, text in ((PROJECT_FILE, yaml.safe_dump(project, sort_keys=False)), ("__main__.py", shim)):
        fd, tmp = tempfile.mkstemp(dir=work_dir, prefix=f".{name}.")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, work_dir / name)
    return work_dir


class StackHandle(Protocol):
    """One stack, as the runner uses it. Every method blocks until the operation ends and raises
    on failure."""

    name: str

    def set_config(self, values: Mapping[str, Any]) -> None: ...
    def up(self, on_output: Callable[[str], None]) -> dict[str, Any]: ...
    def destroy(self, on_output: Callable[[str], None]) -> None: ...
    def refresh(self, on_output: Callable[[str], None]) -> None: ...
    def cancel(self) -> None: ...
    def interrupt(self, sig: int = signal.SIGINT) -> bool: ...
    def config_value(self, key: str) -> str | None: ...


class StackLocked(RuntimeError):
    """The backend refused an operation because an update holds the stack (Pulumi Cloud's
    "[409] Conflict: Another update is currently in progress", or a DIY backend's "the stack is
    currently locked by N lock(s)": ``pulumi.automation.errors.ConcurrentUpdateError``). When
    the update that took the lock is known to be dead, ``cancel()`` (``pulumi cancel``; it
    removes the lock files of a DIY backend) frees the stack."""


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

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self.name: str = stack.name

    def set_config(self, values: Mapping[str, Any]) -> None:
        from pulumi.automation import ConfigValue

        flat = {k: ConfigValue(value=v) for k, v in flatten_config(values).items()}
        self._stack.set_all_config(flat, path=True)

    def up(self, on_output: Callable[[str], None]) -> dict[str, Any]:
        with _locked_as_ours():
            result = self._stack.up(on_output=on_output, on_error=on_output, color="never")
        return {k: v.value for k, v in result.outputs.items()}

    def destroy(self, on_output: Callable[[str], None]) -> None:
        # continue_on_error: delete everything that can be deleted even if one resource fails
        with _locked_as_ours():
            self._stack.destroy(on_output=on_output, on_error=on_output, color="never", continue_on_error=True)

    def refresh(self, on_output: Callable[[str], None]) -> None:
        with _locked_as_ours():
            self._stack.refresh(on_output=on_output, on_error=on_output, color="never", clear_pending_creates=True)

    def cancel(self) -> None:
        self._stack.cancel()

    def interrupt(self, sig: int = signal.SIGINT) -> bool:
        """``sig`` to the CLI process group running an update of this stack: through the
        registry of children started by :func:`shielded_command` (no ``/proc`` needed), else
        (a CLI started some other way) found in ``/proc`` by its command line."""
        if procs.CHILDREN.signal(self.name, sig, ops=("up", "destroy", "refresh")):
            return True
        try:
            pids = _pulumi_pids(self.name)
        except OSError:  # no /proc (macOS): the registry is the only way, and it had none
            return False
        sent = False
        for pid in pids:
            sent = procs.signal_group(pid, sig) or sent
        return sent

    def resource_ids(self) -> set[str]:
        """The ids and ARNs of the resources in the stack's state (for the tag sweep)."""
        deployment = self._stack.export_stack().deployment or {}
        found: set[str] = set()
        for res in deployment.get("resources") or []:
            for value in (res.get("id"), (res.get("outputs") or {}).get("arn")):
                if isinstance(value, str) and value:
                    found.add(value)
        return found

    def config_value(self, key: str) -> str | None:
        try:
            return self._stack.get_config(with_namespace(key)).value
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
        full = with_namespace(key)
        if isinstance(value, str) and value.strip().startswith("["):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                flat[f"{full}[{i}]"] = config_text(item)
        else:
            flat[full] = config_text(value)
    return flat


class AutomationBackend:
    """The real backend: ``pulumi.automation.LocalWorkspace`` running the checkout's program.

    ``backend_url`` is any Pulumi backend URL (default ``file://~``, the local file backend in
    ``~/.pulumi`` that ``pulumi login --local`` uses, so stacks made here and by hand are in one
    place); secrets use the passphrase provider with the passphrase from
    ``PULUMI_CONFIG_PASSPHRASE`` or ``PULUMI_CONFIG_PASSPHRASE_FILE`` (:func:`passphrase_env`)
    unless another ``secrets_provider`` is given.

    The workspace (``work_dir``, default ``<state dir>/workspace``) is not the checkout: see
    :func:`write_workspace`. ``environments`` are Pulumi ESC environments imported into every
    stack this backend creates (``pulumi config env add``, e.g. for AWS credentials).
    """

    def __init__(self, project_dir: Path | None = None, backend_url: str | None = None,
                 secrets_provider: str | None = "passphrase", passphrase: str | None = None,
                 work_dir: Path | None = None, environments: Sequence[str] = ()) -> None:
        self.project_dir = require_project_dir(project_dir)
        root = find_pulumi_cli()  # first: without the CLI nothing else matters
        from pulumi.automation import LocalWorkspace, LocalWorkspaceOptions

        self.backend_url = backend_url = backend_url or DEFAULT_BACKEND
        self.environments = tuple(environments)
        env = {"PULUMI_BACKEND_URL": backend_url, "PULUMI_SKIP_UPDATE_CHECK": "true"}
        if secrets_provider == "passphrase":
            env.update({DEFAULT_PASSPHRASE_ENV: passphrase} if passphrase is not None else passphrase_env())
        self.work_dir = write_workspace(self.project_dir, work_dir or default_state_dir() / WORKSPACE_NAME)
        self._options = LocalWorkspaceOptions(
            work_dir=str(self.work_dir), env_vars=env, secrets_provider=secrets_provider,
            pulumi_command=shielded_command(root),
        )
        self._workspace = LocalWorkspace(**self._options.__dict__)

    def create(self, name: str) -> StackHandle:
        from pulumi.automation import Stack

        stack = Stack.create(name, self._workspace)
        if self.environments:
            try:
                stack.add_environments(*self.environments)
            except Exception as exc:
                try:  # an empty stack: nothing is deployed, so it goes at once
                    self._workspace.remove_stack(name)
                except Exception:  # noqa: BLE001 - the runner's teardown tries again
                    pass
                raise RuntimeError(f"cannot import the ESC environment(s) {', '.join(self.environments)} into "
                                   f"{name}: {short_error(exc)}") from exc
        return AutomationStack(stack)

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

    def resource_ids(self, name: str) -> set[str]:
        return AutomationStack(self._select(name)).resource_ids()

    def _select(self, name: str) -> Stack:
        from pulumi.automation import Stack

        return Stack.select(name, self._workspace)


@contextlib.contextmanager
def _locked_as_ours() -> Iterator[None]:
    """Turns ``pulumi.automation.errors.ConcurrentUpdateError`` into :class:`StackLocked`, so
    the runner and the cleanup (which do not import pulumi) can tell a held lock from a failure."""
    from pulumi.automation.errors import ConcurrentUpdateError

    try:
        yield
    except ConcurrentUpdateError as exc:
        raise StackLocked(str(exc)) from exc


def run_cli(command: str, args: list[str], cwd: str, additional_env: Mapping[str, str],
            on_output: Callable[[str], Any] | None = None, on_error: Callable[[str], Any] | None = None,
            registry: procs.ChildRegistry | None = None, env_path_dir: str | None = None) -> Any:
    """``pulumi.automation.PulumiCommand.run`` (pulumi 3.272: the same arguments, environment,
    output callbacks and errors), except that the CLI is started through ``registry`` (its
    own session and process group, its ``Popen`` kept by stack name). Returns a
    ``CommandResult``; raises what ``create_command_error`` makes of a non-zero exit."""
    import threading

    from pulumi.automation._cmd import CommandResult
    from pulumi.automation.errors import create_command_error

    registry = registry or procs.CHILDREN
    sep = args.index("--") if "--" in args else len(args)
    if "--non-interactive" not in args[:sep]:
        args.insert(0, "--non-interactive")
    env = {**os.environ, **additional_env, "PULUMI_AUTOMATION_API": "true"}
    if env_path_dir:
        env["PATH"] = os.pathsep.join([env_path_dir, env.get("PATH", "")])
    out_chunks: list[str] = []
    err_chunks: list[str] = []

    def consume(stream: Any, callback: Callable[[str], Any] | None, chunks: list[str]) -> None:
        for line in iter(stream.readline, ""):
            stripped = line.rstrip()
            if callback:
                try:
                    callback(stripped)
                except Exception:  # noqa: BLE001 - a broken log must not stop reading (the CLI would block)
                    pass
            chunks.append(stripped)
        stream.close()

    process = registry.spawn([command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                             env=env, encoding="utf-8", stdin=subprocess.DEVNULL)
    try:
        readers = [threading.Thread(target=consume, args=(process.stdout, on_output, out_chunks), daemon=True),
                   threading.Thread(target=consume, args=(process.stderr, on_error, err_chunks), daemon=True)]
        for t in readers:
            t.start()
        for t in readers:
            t.join()
        code = process.wait()
    finally:
        registry.done(process)
    result = CommandResult(stderr="\n".join(err_chunks), stdout="\n".join(out_chunks), code=code)
    if code != 0:
        raise create_command_error(result)
    return result


def shielded_command(root: str | None = None) -> PulumiCommand:
    """A ``pulumi.automation.PulumiCommand`` whose CLI processes run in their own process
    group (see :mod:`cnibench.matrix.procs`): ``LocalWorkspace`` runs every command through
    ``pulumi_command.run``, which this overrides. The version check of ``PulumiCommand``
    (``pulumi version``) runs as usual and fails the same way when there is no CLI."""
    from pulumi.automation import PulumiCommand

    class ShieldedPulumiCommand(PulumiCommand):
        def run(self, args: list[str], cwd: str, additional_env: Mapping[str, str],
                on_output: Callable[[str], Any] | None = None,
                on_error: Callable[[str], Any] | None = None) -> Any:
            path_dir = os.path.dirname(self.command) if os.path.isabs(self.command) else None
            return run_cli(self.command, args, cwd, additional_env, on_output, on_error, env_path_dir=path_dir)

    return ShieldedPulumiCommand(root=root)

def short_error(exc: BaseException) -> str:
    """An Automation-API error in a line or two (CommandError texts are long)."""
    text = str(exc).strip() or type(exc).__name__
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # CommandError texts are long: keep the first line and the last error line
    if len(lines) > 3:
        errs = [ln for ln in lines if "error" in ln.lower()]
        return f"{lines[0].strip()} ... {(errs[-1] if errs else lines[-1]).strip()}"
    return " ".join(ln.strip() for ln in lines)


def require_project_dir(project_dir: Path | None = None) -> Path:
    """The project directory the Automation API runs ``pulumi up`` in (it holds Pulumi.yaml and
    the program's ``__main__.py``); an :class:`InputError` naming what to do when there is none."""
    found = project_dir if project_dir is not None else find_project_dir()
    if found is None:
        raise InputError(
            "the matrix runs the Pulumi program of a cnibench checkout (Pulumi.yaml, __main__.py, stacks/): "
            "run it from the checkout's directory"
        )
    return Path(found)
