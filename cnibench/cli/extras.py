"""Which optional parts of cnibench are installed (``cnibench[lab]``, ``cnibench[cloud]``)."""

from __future__ import annotations

import importlib.util

import typer

from cnibench.errors import ExitCode

# what `pip install 'cnibench[cloud]'` brings: the Pulumi SDK and the providers the program uses
CLOUD_MODULES = ("pulumi", "pulumi_aws", "pulumi_kubernetes", "pulumi_command", "pulumi_tls")


# what `pip install 'cnibench[lab]'` brings
LAB_MODULES = ("pyroute2",)


def missing(modules: tuple[str, ...]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def _require(extra: str, modules: tuple[str, ...], command: str) -> None:
    absent = missing(modules)
    if absent:
        typer.echo(
            f"{command} needs the {extra} extra (missing: {', '.join(absent)}): pip install 'cnibench[{extra}]'",
            err=True,
        )
        raise typer.Exit(ExitCode.REFUSED)


def require_cloud(command: str) -> None:
    """Exit with REFUSED and the install command when the cloud extra is not installed."""
    _require("cloud", CLOUD_MODULES, command)


def require_lab(command: str) -> None:
    """Exit with REFUSED and the install command when the lab extra is not installed."""
    _require("lab", LAB_MODULES, command)
