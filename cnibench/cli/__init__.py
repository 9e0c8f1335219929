"""The ``cnibench`` command: every sub-command lives in this package (one module each) and
registers itself on :data:`app`. Exit codes: :class:`cnibench.errors.ExitCode`.

Conventions every command keeps (README "Commands"): ``-h``/``--help``; shell completion
(``--install-completion``); ``--version``; one meaning per short flag across commands
(:data:`SHORT_FLAGS`); ``--json`` puts the machine-readable result on stdout while progress,
questions and errors go to stderr."""

from __future__ import annotations

import json
import sys

import typer
from rich import box
from rich.table import Table

from cnibench import __version__
from cnibench.cli import check, imports, lab, matrix, report, run
from cnibench.cli.console import out_console
from cnibench.variants import CATALOG, Variant

# The one meaning of each short flag, in every command that has it (tests/test_cli_habits.py).
SHORT_FLAGS = {
    "-o": "--out",        # where output is written (a path)
    "-d": "--datapath",   # lab
    "-s": "--stack",      # check
    "-c": "--config",     # check, matrix
    "-v": "--variant",    # matrix
    "-y": "--yes",        # matrix
    "-P": "--streams",    # lab
    "-r": "--repeat",     # lab
    "-p": "--parallel",   # matrix
    "-h": "--help",       # every command
}

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}  # inherited by every sub-command

app = typer.Typer(
    name="cnibench",
    help="Which Kubernetes CNI, in which datapath mode, is fastest on your hardware.",
    no_args_is_help=True,
    add_completion=True,
    context_settings=CONTEXT_SETTINGS,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"cnibench {__version__}\n")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """cnibench: benchmark CNI datapaths in a local lab or on AWS node pairs."""


def variant_record(v: Variant) -> dict:
    """A catalog entry as ``cnibench variants --json`` prints it."""
    return {
        "name": v.name, "cni": v.cni, "version": v.cni_version, "install": v.install.method.value,
        "underlay": v.underlay.value, "encap_bytes": v.encap_overhead,
        "ports": [{"protocol": p.protocol, "from_port": p.from_port, "to_port": p.to_port, "label": p.label}
                  for p in v.ports],
        "min_kernel": v.min_kernel_label, "replaces_kube_proxy": v.replaces_kube_proxy,
        "stack_file": f"stacks/Pulumi.{v.name}.yaml", "lab_datapath": v.lab_datapath,
    }


@app.command()
def variants(
    as_json: bool = typer.Option(False, "--json", help="Print the catalog as JSON (a list of objects) on stdout."),
) -> None:
    """List the catalog's CNI variants and what each needs from the network."""
    if as_json:
        sys.stdout.write(json.dumps([variant_record(v) for v in CATALOG.values()], indent=2) + "\n")
        return
    out = out_console()
    # the names are what users type next (-v, --stack): never cut or wrapped, at any width; the
    # other columns fold down to their minimum widths, and below 100 columns the kube-proxy
    # column becomes a line under the table
    narrow = out.width < 150
    wide_enough = out.width >= 100
    table = Table(title="cnibench variants (one stack each: stacks/Pulumi.<variant>.yaml)",
                  box=box.SIMPLE_HEAD if narrow else box.HEAVY_HEAD, pad_edge=not narrow,
                  padding=(0, 0) if narrow else (0, 1))  # the SIMPLE box divides columns by a space
    table.add_column("variant", no_wrap=True, min_width=max(len(name) for name in CATALOG))
    columns = [("CNI", 7), ("version", 7), ("install", 8), ("underlay", 8), ("encap B", 5), ("ports", 9),
               ("kernel ≥", 6)] + ([("no kube-proxy", 3)] if wide_enough else [])
    for col, min_width in columns:
        table.add_column(col, overflow="fold", min_width=min_width)
    for v in CATALOG.values():
        row = [v.name, v.cni, v.cni_version, v.install.method.value, v.underlay.value, str(v.encap_overhead),
               ", ".join(p.label for p in v.ports) or "-", v.min_kernel_label]
        table.add_row(*row, *(["yes" if v.replaces_kube_proxy else ""] if wide_enough else []))
    out.print(table)
    if not wide_enough:
        out.print("no kube-proxy (the CNI replaces it): "
                  + ", ".join(v.name for v in CATALOG.values() if v.replaces_kube_proxy), highlight=False)

for command in (lab, check, matrix, report, imports, run):
    command.register(app)
