"""The matrix's Automation-API adapter (``cnibench/matrix/backend.py``) against the installed
``pulumi.automation`` (issue 18, item 5).

Everywhere else the adapter is replaced wholesale by the recording double of
``tests/test_matrix.py``, so nothing there checks that what it calls exists in the SDK. Here,
with no Pulumi engine and no Pulumi CLI:

* the adapter's own code paths run against stand-ins of the ``pulumi.automation`` classes
  (``Stack``, ``LocalWorkspace``, ``LocalWorkspaceOptions``, ``ConfigValue``, ``PulumiCommand``,
  ``CommandResult``, ``create_command_error``) that log every call, and each logged call is
  bound with ``inspect.signature(...).bind`` to the real SDK callable, its arguments checked
  against the SDK's type hints;
* the results the stand-ins return are real SDK objects (``UpResult``, ``OutputValue``,
  ``StackSummary``, ``Deployment``, ``ConfigValue``) whose attribute reads are logged and checked
  against the SDK's class definitions;
* the real ``LocalWorkspace`` and ``Stack`` run the adapter's ``PulumiCommand.run`` override,
  with the adapter's ``run_cli`` (the only place a process would start) replaced by a recorder;
* every ``pulumi.automation`` name the adapter imports, and every exception it catches, exists.

What needs the real CLI (that it accepts the flags the SDK makes of these arguments, its output
formats, its lock and cancel behaviour) is not checked here; see docs/matrix.md.
"""

from __future__ import annotations

import ast
import collections.abc
import datetime as dt
import importlib
import inspect
import os
import re
import shutil
import textwrap
import types
import typing
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

import pulumi.automation as auto
import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from pulumi.automation import _cmd, _stack
from pulumi.automation import errors as auto_errors
from semver import VersionInfo

from cnibench.matrix import backend, procs

ROOT = Path(__file__).resolve().parent.parent
ADAPTER = Path(backend.__file__)
SDK_VERSION = version("pulumi")
SDK_DIR = Path(auto.__file__).parent


@dataclass(frozen=True)
class _Real:
    """The real SDK objects, taken before any test replaces them in ``pulumi.automation``."""

    Stack: type = auto.Stack
    LocalWorkspace: type = auto.LocalWorkspace
    LocalWorkspaceOptions: type = auto.LocalWorkspaceOptions
    ConfigValue: type = auto.ConfigValue
    PulumiCommand: type = auto.PulumiCommand
    CommandResult: type = _cmd.CommandResult
    create_command_error: Callable[..., Any] = auto_errors.create_command_error


REAL = _Real()


# --------------------------------------------------------------------------- the recording stand-ins


@dataclass
class Call:
    owner: Any  # the real SDK class (or function, with name "")
    name: str  # the method; "__init__" for a constructor
    args: tuple
    kwargs: dict

    @property
    def label(self) -> str:
        owner = getattr(self.owner, "__qualname__", repr(self.owner))
        return owner if not self.name else f"{owner}.{self.name}" if self.name != "__init__" else f"{owner}(...)"


@dataclass
class Read:
    owner: type  # the real SDK class whose instance was read
    name: str


@dataclass
class Log:
    calls: list[Call] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)

    def labels(self) -> set[str]:
        return {c.label for c in self.calls}


class _Instance:
    """Stands in for an instance of the SDK class ``real``: every method called on it is logged
    and answered by ``answers[name](*args, **kwargs)``; ``attrs`` are its data attributes (their
    reads are logged). ``isinstance(x, real)`` holds, as for ``Mock(spec=real)``."""

    def __init__(self, log: Log, real: type, answers: dict[str, Callable[..., Any]], **attrs: Any) -> None:
        object.__setattr__(self, "_spec", (log, real, answers, attrs))

    @property  # what isinstance() asks when type() does not match
    def __class__(self) -> type:
        return object.__getattribute__(self, "_spec")[1]

    def __getattr__(self, name: str) -> Any:
        log, real, answers, attrs = object.__getattribute__(self, "_spec")
        if name in attrs:
            log.reads.append(Read(real, name))
            return attrs[name]

        def method(*args: Any, **kwargs: Any) -> Any:
            log.calls.append(Call(real, name, args, kwargs))
            answer = answers.get(name)
            return answer(*args, **kwargs) if answer else None

        return method


class _Class:
    """Stands in for the SDK class (or function) ``real``: calling it logs ``__init__`` (or the
    function) and returns ``construct(*args, **kwargs)``; its attributes (``Stack.create``) are
    logged like methods."""

    def __init__(self, log: Log, real: Any, construct: Callable[..., Any] | None = None,
                 answers: dict[str, Callable[..., Any]] | None = None) -> None:
        self._log, self._real, self._construct, self._answers = log, real, construct, answers or {}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._log.calls.append(Call(self._real, "" if inspect.isfunction(self._real) else "__init__", args, kwargs))
        return self._construct(*args, **kwargs) if self._construct else None

    def __getattr__(self, name: str) -> Any:
        def method(*args: Any, **kwargs: Any) -> Any:
            self._log.calls.append(Call(self._real, name, args, kwargs))
            answer = self._answers.get(name)
            return answer(*args, **kwargs) if answer else None

        return method


class _Reads:
    """A real SDK result object whose attribute reads are logged."""

    def __init__(self, log: Log, obj: Any) -> None:
        object.__setattr__(self, "_spec", (log, obj))

    def __getattr__(self, name: str) -> Any:
        log, obj = object.__getattribute__(self, "_spec")
        log.reads.append(Read(type(obj), name))
        if not hasattr(obj, name):
            raise AttributeError(f"the adapter reads {type(obj).__qualname__}.{name}: pulumi {SDK_VERSION} has none")
        return getattr(obj, name)


def _real_or_namespace(real: type) -> Callable[..., Any]:
    """Builds the real (pure data) SDK object; when the arguments do not fit, a namespace of
    them, so the run goes on and the binding check names the mismatch."""

    def build(*args: Any, **kwargs: Any) -> Any:
        try:
            return real(*args, **kwargs)
        except TypeError:
            return types.SimpleNamespace(**kwargs)

    return build


def recording_pulumi_command(log: Log) -> type:
    """The real ``PulumiCommand`` (the adapter subclasses it) with a constructor that logs its
    arguments instead of running ``pulumi version``; it sets what the real one sets
    (``_cmd.py``: ``command`` from ``root``, ``version``), the CLI's version taken to be the SDK's."""

    class RecordingPulumiCommand(REAL.PulumiCommand):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            log.calls.append(Call(REAL.PulumiCommand, "__init__", args, kwargs))
            try:
                root = inspect.signature(REAL.PulumiCommand).bind(*args, **kwargs).arguments.get("root")
            except TypeError:
                root = kwargs.get("root")
            self.command = os.path.join(root, "bin", "pulumi") if root else "pulumi"
            self.version = VersionInfo.parse(SDK_VERSION)

    return RecordingPulumiCommand


# --------------------------------------------------------------------------- binding to the SDK

_SELF = object()


def _hints(func: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, localns={**vars(_cmd), **vars(auto)})
    except Exception:  # an annotation the SDK only names under TYPE_CHECKING: names and arity are still bound
        return {}


def sdk_callable(call: Call) -> tuple[inspect.Signature, dict[str, Any], tuple]:
    """(signature, type hints, leading arguments) of the real SDK callable ``call`` names; an
    AssertionError naming it when the SDK has no such thing."""
    owner, name = call.owner, call.name
    where = f"pulumi {SDK_VERSION} ({SDK_DIR})"
    if name == "":
        return inspect.signature(owner), _hints(owner), ()
    if name == "__init__":
        return inspect.signature(owner), _hints(owner.__init__), ()
    static = inspect.getattr_static(owner, name, None)
    assert static is not None, f"the adapter calls {call.label}: {owner.__qualname__} has no {name!r} in {where}"
    if isinstance(static, (classmethod, staticmethod)):
        func = getattr(owner, name)
        return inspect.signature(func), _hints(func), ()
    assert inspect.isfunction(static), f"the adapter calls {call.label}, which is not a method in {where}"
    return inspect.signature(static), _hints(static), (_SELF,)


def conforms(value: Any, hint: Any) -> bool:
    """``value`` fits the type hint ``hint`` (the forms the SDK's signatures use; any other
    form is not checked)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    if hint is type(None) or hint is None:
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if origin is collections.abc.Callable:
        return callable(value)
    if origin in (list, tuple, collections.abc.Sequence):
        return isinstance(value, origin) and (not args or all(conforms(v, args[0]) for v in value))
    if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
        return isinstance(value, origin) and (not args or all(conforms(k, args[0]) and conforms(v, args[1])
                                                                for k, v in value.items()))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def bind(call: Call) -> inspect.BoundArguments:
    """Binds the logged call to the real SDK signature and checks each argument against its
    type hint; an AssertionError naming the call and what the SDK expects."""
    sig, hints, lead = sdk_callable(call)
    try:
        bound = sig.bind(*lead, *call.args, **call.kwargs)
    except TypeError as exc:
        raise AssertionError(f"the adapter calls {call.label}(args={call.args!r}, kwargs={call.kwargs!r}) but "
                             f"pulumi {SDK_VERSION} has {call.label}{sig}: {exc}") from None
    for pname, value in bound.arguments.items():
        if value is _SELF:
            continue
        param = sig.parameters[pname]
        hint = hints.get(pname, inspect.Parameter.empty)
        values = value if param.kind is param.VAR_POSITIONAL else (
            value.values() if param.kind is param.VAR_KEYWORD else [value])
        for v in values:
            assert conforms(v, hint), (f"the adapter passes {pname}={v!r} to {call.label}; pulumi {SDK_VERSION} "
                                       f"annotates it {hint}")
    return bound


# --------------------------------------------------------------------------- driving the adapter

STACK = "cnibench-ipvlan-20260101t0000z-abcd"
BAD_ENV_STACK = "cnibench-ipvlan-20260101t0000z-env0"
LOCKED_STACK = "cnibench-ipvlan-20260101t0000z-lock"
DIY_LOCK = ("error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or "
            "delete the lock file with `pulumi cancel`.")


def _update_summary() -> Any:
    return _stack.UpdateSummary(kind="update", start_time=dt.datetime(2026, 1, 1), message="", environment={},
                                config={}, result="succeeded")


def drive_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Log, dict[str, Any]]:
    """Runs every code path of ``AutomationBackend`` / ``AutomationStack`` / ``run_cli`` against
    logging stand-ins of ``pulumi.automation``; returns the log and what the adapter returned."""
    log = Log()

    def lock_error() -> Exception:
        return REAL.create_command_error(REAL.CommandResult("", DIY_LOCK, 255))

    def raising(exc: Callable[[], Exception]) -> Callable[..., Any]:
        def answer(*a: Any, **k: Any) -> Any:
            raise exc()

        return answer

    def new_stack(name: str, workspace: Any) -> Any:
        answers: dict[str, Callable[..., Any]] = {
            "up": lambda *a, **k: _Reads(log, _stack.UpResult(
                stdout="", stderr="", summary=_update_summary(),
                outputs={"clusterName": _Reads(log, auto.OutputValue(value="cni-c", secret=False))})),
            "destroy": lambda *a, **k: _stack.DestroyResult(stdout="", stderr="", summary=_update_summary()),
            "refresh": lambda *a, **k: _stack.RefreshResult(stdout="", stderr="", summary=_update_summary()),
            "get_config": lambda *a, **k: _Reads(log, REAL.ConfigValue(value="ipvlan")),
            "export_stack": lambda *a, **k: _Reads(log, auto.Deployment(version=3, deployment={"resources": [
                {"id": "i-0abc", "outputs": {"arn": "arn:aws:ec2:us-east-1:1:instance/i-0abc"}}, {"urn": "x"}]})),
        }
        if name == BAD_ENV_STACK:
            answers["add_environments"] = raising(
                lambda: auto.CommandError(REAL.CommandResult("", "error: environment 'nope/none' not found", 1)))
        if name == LOCKED_STACK:
            answers.update({op: raising(lock_error) for op in ("up", "destroy", "refresh")})
        return _Instance(log, REAL.Stack, answers, name=name)

    summary = auto.StackSummary(name=STACK, current=False, update_in_progress=False,
                                last_update=dt.datetime(2026, 1, 1, 12, 0), resource_count=7)
    workspace_answers: dict[str, Callable[..., Any]] = {"list_stacks": lambda *a, **k: [_Reads(log, summary)]}
    monkeypatch.setattr(auto, "Stack", _Class(log, REAL.Stack, answers={"create": new_stack, "select": new_stack}))
    monkeypatch.setattr(auto, "LocalWorkspace", _Class(
        log, REAL.LocalWorkspace, construct=lambda *a, **k: _Instance(log, REAL.LocalWorkspace, workspace_answers)))
    monkeypatch.setattr(auto, "LocalWorkspaceOptions", _Class(
        log, REAL.LocalWorkspaceOptions, construct=_real_or_namespace(REAL.LocalWorkspaceOptions)))
    monkeypatch.setattr(auto, "ConfigValue", _Class(log, REAL.ConfigValue, construct=_real_or_namespace(REAL.ConfigValue)))
    monkeypatch.setattr(auto, "PulumiCommand", recording_pulumi_command(log))
    monkeypatch.setattr(_cmd, "CommandResult", _Class(log, REAL.CommandResult, construct=REAL.CommandResult))
    monkeypatch.setattr(auto_errors, "create_command_error", _Class(log, REAL.create_command_error,
                                                                    construct=REAL.create_command_error))

    got: dict[str, Any] = {"root": str(tmp_path / "pulumi-root")}
    monkeypatch.setattr(backend, "find_pulumi_cli", lambda *a, **k: got["root"])
    lines: list[str] = []
    be = backend.AutomationBackend(ROOT, "file://" + str(tmp_path / "state"), passphrase="pw",
                                   work_dir=tmp_path / "ws", environments=("myorg/aws/creds",))
    backend.AutomationBackend(ROOT, None, secrets_provider=None, work_dir=tmp_path / "ws2")  # the backend's own secrets
    got["command"] = be._options.pulumi_command
    handle = be.create(STACK)
    with pytest.raises(RuntimeError, match="cannot import the ESC environment"):
        be.create(BAD_ENV_STACK)
    handle.set_config({"variant": "ipvlan", "benchmarkLoadLevels": [30, 50], "splitSubnets": True})
    got["outputs"] = handle.up(lines.append)
    handle.destroy(lines.append)
    handle.refresh(lines.append)
    handle.cancel()
    got["config_value"] = handle.config_value("variant")
    locked = be.create(LOCKED_STACK)
    for op in (locked.up, locked.destroy, locked.refresh):
        with pytest.raises(backend.StackLocked, match="locked by 1 lock"):
            op(lines.append)
    be.select(STACK)
    got["stacks"] = be.list_stacks()
    got["resource_ids"] = be.resource_ids(STACK)
    be.remove(STACK)
    # run_cli: the CommandResult it makes and the error it raises, with harmless stand-in commands
    registry = procs.ChildRegistry()
    got["ok"] = backend.run_cli(shutil.which("true") or "/bin/true", ["stack", "ls", "--stack", STACK],
                                str(tmp_path), {}, registry=registry)
    with pytest.raises(auto.CommandError):
        backend.run_cli(shutil.which("false") or "/bin/false", ["up", "--stack", STACK], str(tmp_path), {},
                        registry=registry)
    return log, got


# Every SDK call the adapter makes, reached by drive_adapter (a call the adapter adds is bound too).
EXPECTED_CALLS = {
    "LocalWorkspaceOptions(...)", "LocalWorkspace(...)", "PulumiCommand(...)", "ConfigValue(...)",
    "Stack.create", "Stack.select", "Stack.add_environments", "Stack.set_all_config", "Stack.up",
    "Stack.destroy", "Stack.refresh", "Stack.cancel", "Stack.get_config", "Stack.export_stack",
    "LocalWorkspace.remove_stack", "LocalWorkspace.list_stacks", "CommandResult(...)", "create_command_error",
}

# The attributes of SDK objects the adapter reads, with the type hints the code relies on
# (``.items()`` on the outputs, ``.tzinfo`` on the last update, ``.get`` on the deployment, ...).
EXPECTED_READS = {
    ("UpResult", "outputs"): typing.MutableMapping[str, auto.OutputValue],
    ("OutputValue", "value"): Any,
    ("ConfigValue", "value"): str,
    ("StackSummary", "name"): str,
    ("StackSummary", "last_update"): typing.Optional[dt.datetime],
    ("StackSummary", "update_in_progress"): typing.Optional[bool],
    ("StackSummary", "resource_count"): typing.Optional[int],
    ("Deployment", "deployment"): typing.Optional[typing.Mapping[str, Any]],
    ("Stack", "name"): str,
}


def attribute_hint(cls: type, name: str) -> Any:
    """The SDK's type of ``cls().name``: its class annotation, else the hint of the ``__init__``
    parameter that ``__init__`` assigns to ``self.name``; KeyError when the class has no such
    attribute."""
    hints = typing.get_type_hints(cls)
    if name in hints:
        return hints[name]
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Attribute) and t.attr == name and isinstance(t.value, ast.Name)
                       and t.value.id == "self" for t in targets):
                    return _hints(init).get(name, Any)
    raise KeyError(f"{cls.__qualname__}.{name}")


def _same_hint(a: Any, b: Any) -> bool:
    def norm(h: Any) -> Any:
        origin = typing.get_origin(h)
        if origin is None:
            return h
        return (origin, tuple(norm(x) for x in typing.get_args(h)))

    return bool(norm(a) == norm(b))


@pytest.fixture
def driven(tmp_path, monkeypatch):
    return drive_adapter(tmp_path, monkeypatch)


# --------------------------------------------------------------------------- the tests


def test_the_checks_run_against_the_pinned_sdk(capsys):
    """The SDK these checks ran against is the one requirements.txt pins (and pyproject allows)."""
    pins = dict(re.findall(r"(?m)^(pulumi)==(\S+)", (ROOT / "requirements.txt").read_text()))
    declared = re.search(r'"pulumi([<>=!~][^"]*)"', (ROOT / "pyproject.toml").read_text())
    with capsys.disabled():
        print(f"\n[automation-api] adapter checked against pulumi {SDK_VERSION} ({SDK_DIR}); "
              f"requirements.txt pins {pins.get('pulumi')}, pyproject allows {declared and declared.group(1)}")
    assert pins.get("pulumi") == SDK_VERSION, f"installed pulumi {SDK_VERSION}, requirements.txt pins {pins}"
    assert declared and Version(SDK_VERSION) in SpecifierSet(declared.group(1))


def _pulumi_imports(path: Path) -> set[tuple[str, str]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pulumi":
            found |= {(node.module or "", a.name) for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {(a.name, "") for a in node.names if a.name.split(".")[0] == "pulumi"}
    return found


def test_every_pulumi_automation_name_the_adapter_imports_exists_and_is_stood_in_for():
    imports = _pulumi_imports(ADAPTER)
    assert imports, "no pulumi import found in the adapter"
    for module, name in sorted(imports):
        mod = importlib.import_module(module)
        assert not name or hasattr(mod, name), f"the adapter imports {name} from {module}: pulumi {SDK_VERSION} has none"
        if name and hasattr(auto, name):  # the public name is the same object
            assert getattr(mod, name) is getattr(auto, name), (module, name)
    stood_in = {("pulumi.automation", n) for n in ("Stack", "LocalWorkspace", "LocalWorkspaceOptions", "ConfigValue",
                                                    "PulumiCommand")} | {
        ("pulumi.automation._cmd", "CommandResult"), ("pulumi.automation.errors", "create_command_error"),
        ("pulumi.automation.errors", "ConcurrentUpdateError")}  # the last one: real, checked below
    assert imports <= stood_in, f"the adapter uses {sorted(imports - stood_in)}: add a stand-in and a check here"
    # the adapter is the only user of pulumi.automation in the package
    users = {p.relative_to(ROOT).as_posix() for p in (ROOT / "cnibench").rglob("*.py")
             if any(m.startswith("pulumi.automation") for m, _ in _pulumi_imports(p))}
    assert users == {"cnibench/matrix/backend.py"}


def test_every_sdk_call_the_adapter_makes_binds_to_the_sdk_signature(driven):
    log, _ = driven
    for call in log.calls:
        bind(call)
    missing = EXPECTED_CALLS - log.labels()
    assert not missing, f"drive_adapter no longer reaches {sorted(missing)}"


def test_the_arguments_bound_are_the_ones_the_matrix_relies_on(driven):
    """A few of the bound values, read back through the SDK's own parameter names."""
    log, got = driven
    by = {}
    for call in log.calls:
        by.setdefault(call.label, []).append(bind(call).arguments)
    options = by["LocalWorkspaceOptions(...)"][0]
    assert set(options) == {"work_dir", "env_vars", "secrets_provider", "pulumi_command"}
    assert options["secrets_provider"] == "passphrase" and by["LocalWorkspaceOptions(...)"][1]["secrets_provider"] is None
    # LocalWorkspace(**options.__dict__): every attribute of the real options object is a parameter
    assert set(by["LocalWorkspace(...)"][0]) == set(inspect.signature(REAL.LocalWorkspace).parameters)
    assert by["PulumiCommand(...)"][0] == {"root": got["root"]}  # the installer's ~/.pulumi when not on PATH
    assert by["Stack.add_environments"][0]["environment_names"] == ("myorg/aws/creds",)
    config = by["Stack.set_all_config"][0]
    assert config["path"] is True and "cnibench:benchmarkLoadLevels[1]" in config["config"]
    assert all(isinstance(v, REAL.ConfigValue) for v in config["config"].values())
    for op, extra in (("up", {}), ("destroy", {"continue_on_error": True}), ("refresh", {"clear_pending_creates": True})):
        args = by[f"Stack.{op}"][0]
        assert args["color"] == "never" and callable(args["on_output"]) and callable(args["on_error"]), op
        assert {k: args[k] for k in extra} == extra, op
    # "never" is one of the colours the SDK documents (it passes the value through as --color)
    assert re.search(r":param color: .*\bnever\b", inspect.getdoc(REAL.Stack.up) or "")


def test_the_sdk_results_have_the_attributes_the_adapter_reads(driven):
    log, got = driven
    read = {(r.owner.__name__, r.name): r.owner for r in log.reads}
    assert set(EXPECTED_READS) <= set(read), f"not read any more: {sorted(set(EXPECTED_READS) - set(read))}"
    for (cls_name, name), cls in read.items():
        try:
            hint = attribute_hint(cls, name)
        except KeyError:
            pytest.fail(f"the adapter reads {cls_name}.{name}: pulumi {SDK_VERSION} does not define it")
        if (cls_name, name) in EXPECTED_READS:
            assert _same_hint(hint, EXPECTED_READS[cls_name, name]), (cls_name, name, hint)
    # the override reads self.command, which PulumiCommand declares
    assert typing.get_type_hints(REAL.PulumiCommand)["command"] is str
    # and what the adapter made of them
    assert got["outputs"] == {"clusterName": "cni-c"}
    assert got["config_value"] == "ipvlan"
    assert got["resource_ids"] == {"i-0abc", "arn:aws:ec2:us-east-1:1:instance/i-0abc"}
    (info,) = got["stacks"]
    assert (info.name, info.resource_count, info.update_in_progress) == (STACK, 7, False)
    assert info.last_update == dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)
    assert isinstance(got["ok"], REAL.CommandResult) and got["ok"].code == 0


def test_the_exceptions_the_adapter_catches_exist_in_the_sdk():
    caught = set()
    for node in ast.walk(ast.parse(ADAPTER.read_text())):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            for t in node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]:
                if isinstance(t, ast.Name):
                    caught.add(t.id)
    pulumi_names = {n for _, n in _pulumi_imports(ADAPTER)}
    assert caught & pulumi_names == {"ConcurrentUpdateError"}
    for name in ("ConcurrentUpdateError", "CommandError", "StackNotFoundError", "StackAlreadyExistsError"):
        assert getattr(auto, name) is getattr(auto_errors, name), name
        assert issubclass(getattr(auto, name), Exception), name
    assert issubclass(auto.ConcurrentUpdateError, auto.CommandError)
    # both texts StackLocked stands for (Pulumi Cloud's 409, a DIY backend's lock) map to it
    for stderr in ("error: [409] Conflict: Another update is currently in progress.", DIY_LOCK):
        assert isinstance(REAL.create_command_error(REAL.CommandResult("", stderr, 255)), auto.ConcurrentUpdateError)


def test_the_run_override_has_the_signature_of_pulumi_command_run(tmp_path, monkeypatch):
    monkeypatch.setattr(auto, "PulumiCommand", recording_pulumi_command(Log()))
    command = backend.shielded_command(str(tmp_path))
    assert isinstance(command, REAL.PulumiCommand)
    assert command.command == os.path.join(str(tmp_path), "bin", "pulumi")

    def shape(func: Any) -> list[tuple[str, Any, Any]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]

    assert shape(type(command).run) == shape(REAL.PulumiCommand.run)
    # (that the SDK's callers reach it: test_the_real_sdk_runs_every_command_through_the_adapters_override)
    # run_cli repeats PulumiCommand.run, with its own process group: what it copies is still there
    # (a check of the SDK's source text: run_cli replaces that method, so nothing else would notice)
    source = inspect.getsource(REAL.PulumiCommand.run)
    for copied in ('"--non-interactive"', '"PULUMI_AUTOMATION_API": "true"', "_fixup_path", "create_command_error(result)",
                   'stderr="\\n".join(stderr_chunks), stdout="\\n".join(stdout_chunks), code=code'):
        assert copied in source, f"PulumiCommand.run in pulumi {SDK_VERSION} no longer has {copied}"


def test_the_real_sdk_runs_every_command_through_the_adapters_override(tmp_path, monkeypatch):
    """The real ``LocalWorkspace`` and ``Stack`` drive the adapter; only ``PulumiCommand``'s
    constructor (``pulumi version``) and ``run_cli`` (the process) are replaced. Each command
    reaches the override with a ``--stack`` the process registry can find it by; an update the
    backend refuses with its lock message becomes StackLocked through the SDK's own error."""
    monkeypatch.setattr(auto, "PulumiCommand", recording_pulumi_command(Log()))
    monkeypatch.setattr(backend, "find_pulumi_cli", lambda *a, **k: None)
    seen: list[dict[str, Any]] = []

    def recording_run_cli(command: str, args: list[str], cwd: str, additional_env: Any, on_output: Any = None,
                          on_error: Any = None, registry: Any = None, env_path_dir: str | None = None) -> Any:
        op, stack = procs.command_of(args)
        seen.append({"op": op, "stack": stack, "args": list(args), "cwd": cwd, "env": dict(additional_env),
                     "command": command, "on_output": on_output})
        if op in ("up", "destroy", "refresh"):
            raise REAL.create_command_error(REAL.CommandResult("", DIY_LOCK, 255))
        return REAL.CommandResult(stdout="", stderr="", code=0)

    monkeypatch.setattr(backend, "run_cli", recording_run_cli)
    be = backend.AutomationBackend(ROOT, "file://" + str(tmp_path / "state"), passphrase="pw",
                                   work_dir=tmp_path / "ws", environments=("myorg/aws/creds",))
    assert isinstance(be._workspace, REAL.LocalWorkspace)
    handle = be.create(STACK)
    assert isinstance(handle, backend.AutomationStack) and handle.name == STACK
    handle.set_config({"variant": "ipvlan", "benchmarkLoadLevels": [30, 50]})
    lines: list[str] = []
    for op in (handle.up, handle.destroy, handle.refresh):
        with pytest.raises(backend.StackLocked, match="locked by 1 lock"):
            op(lines.append)
    handle.cancel()
    be.remove(STACK)
    assert [(s["op"], s["stack"]) for s in seen] == [
        ("stack", None), ("config", STACK), ("config", STACK), ("up", STACK), ("destroy", STACK),
        ("refresh", STACK), ("cancel", STACK), ("stack", None)]  # stack init/rm name the stack positionally
    by_op = {s["op"]: s for s in seen}
    assert seen[0]["args"][:3] == ["stack", "init", STACK] and "passphrase" in seen[0]["args"]
    assert seen[1]["args"][:3] == ["config", "env", "add"] and "myorg/aws/creds" in seen[1]["args"]
    assert seen[2]["args"][:2] == ["config", "set-all"] and "cnibench:benchmarkLoadLevels[0]=30" in seen[2]["args"]
    assert seen[-1]["args"][:3] == ["stack", "rm", "--yes"] and seen[-1]["args"][-1] == STACK
    for op, flag in (("up", "--color"), ("destroy", "--continue-on-error"), ("refresh", "--clear-pending-creates")):
        assert flag in by_op[op]["args"] and by_op[op]["on_output"] is not None, op
    for s in seen:
        assert Path(s["cwd"]) == be.work_dir and s["command"] == "pulumi", s
        assert s["env"]["PULUMI_BACKEND_URL"] == "file://" + str(tmp_path / "state")
        assert s["env"]["PULUMI_CONFIG_PASSPHRASE"] == "pw"
