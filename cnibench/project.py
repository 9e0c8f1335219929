"""Where a stack's config comes from, as the Pulumi CLI would assemble it: the project's
``Pulumi.yaml`` defaults, then ``stacks/Pulumi.<stack>.yaml``, then ``-c key=value`` overrides.

Outside a checkout (``pip install 'cnibench[cloud]'``) there is no project directory: the
defaults are then :class:`~cnibench.config.StackConfig`'s own (kept equal to Pulumi.yaml by the
tests) and each catalog variant is a built-in stack holding only ``variant``, which is exactly
what every shipped stack file holds (also tested).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from cnibench.config import NAMESPACE, ConfigError, config_keys
from cnibench.variants import CATALOG

PROJECT_FILE = "Pulumi.yaml"
# an editable install's checkout: the repository root holding Pulumi.yaml beside cnibench/
_CHECKOUT = Path(__file__).resolve().parent.parent


def _is_project(path: Path) -> bool:
    try:
        return (yaml.safe_load((path / PROJECT_FILE).read_text()) or {}).get("name") == NAMESPACE
    except (OSError, yaml.YAMLError, AttributeError):
        return False


def find_project_dir(start: Path | None = None) -> Path | None:
    """The cnibench project directory: ``start`` (default: the working directory) or one of its
    parents, else the checkout this package was installed from in editable mode; None if neither."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents, _CHECKOUT):
        if _is_project(candidate):
            return candidate
    return None


def strip_namespace(config: Mapping[str, Any]) -> dict[str, Any]:
    """``{"cnibench:variant": ...}`` -> ``{"variant": ...}``; other namespaces are dropped."""
    prefix = f"{NAMESPACE}:"
    return {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}


def without_namespace(key: str) -> str:
    """``cnibench:podCidr`` -> ``podCidr``; a key without namespace is returned as it is."""
    return key[len(NAMESPACE) + 1:] if key.startswith(f"{NAMESPACE}:") else key


def with_namespace(key: str) -> str:
    """``podCidr`` -> ``cnibench:podCidr``; a key with a namespace is returned as it is."""
    return key if ":" in key else f"{NAMESPACE}:{key}"


def config_text(value: Any) -> str:
    """A config value as the Pulumi CLI stores it: booleans as true/false, lists and maps as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    return str(value)


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """``["splitSubnets=true", "cnibench:podCidr=10.1.0.0/16"]`` -> keys without namespace."""
    out: dict[str, str] = {}
    problems = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"-c {pair!r}: expected key=value, e.g. -c splitSubnets=true")
            continue
        if ":" in key and not key.startswith(f"{NAMESPACE}:"):
            problems.append(f"-c {pair!r}: only {NAMESPACE}:* keys can be overridden")
            continue
        out[without_namespace(key)] = value
    if problems:
        raise ConfigError(problems)
    return out


def load_project(project_dir: str | Path) -> dict[str, Any]:
    with (Path(project_dir) / PROJECT_FILE).open() as fh:
        data = yaml.safe_load(fh)
    return data if isinstance(data, dict) else {}


def project_defaults(project_dir: str | Path | None) -> dict[str, Any]:
    """The ``config`` defaults of Pulumi.yaml (as the CLI applies them), or StackConfig's own."""
    if project_dir is None:
        return {key: info.default for key, info in config_keys().items()}
    values = {}
    for key, decl in (load_project(project_dir).get("config") or {}).items():
        if isinstance(decl, Mapping) and "default" in decl:
            values[without_namespace(key)] = decl["default"]
    return values


def _stack_dir(project_dir: str | Path) -> Path:
    return Path(project_dir) / load_project(project_dir).get("stackConfigDir", ".")


def stacks(project_dir: str | Path | None = None) -> list[str]:
    """The stack names: the project's stack files, or the catalog's variants outside a checkout."""
    if project_dir is None:
        return sorted(CATALOG)
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in _stack_dir(project_dir).glob("Pulumi.*.yaml"))


def load_stack_file(project_dir: str | Path | None, stack: str) -> dict[str, Any]:
    """The ``cnibench:*`` values of ``stacks/Pulumi.<stack>.yaml`` (namespace stripped)."""
    if project_dir is None:
        if stack not in CATALOG:
            raise ConfigError([
                f"stack {stack!r}: no project directory (no {PROJECT_FILE} here or above) and not a "
                f"built-in stack; built-in stacks: {', '.join(sorted(CATALOG))}"
            ])
        return {"variant": stack}
    path = _stack_dir(project_dir) / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise ConfigError([f"stack {stack!r}: no file {path}; stacks: {', '.join(stacks(project_dir))}"])
    with path.open() as fh:
        data = yaml.safe_load(fh) or {}
    return strip_namespace(data.get("config") or {})


def stack_config(project_dir: str | Path | None, stack: str,
                 overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the Pulumi CLI would hand the program: defaults, then the stack file, then
    ``overrides`` (keys with or without the ``cnibench:`` namespace)."""
    values = project_defaults(project_dir)
    values.update(load_stack_file(project_dir, stack))
    for key, value in (overrides or {}).items():
        values[without_namespace(key)] = value
    return values
