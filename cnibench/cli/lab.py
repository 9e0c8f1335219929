"""The ``cnibench lab`` command. ``cnibench/cli.py`` calls :func:`register` on its app."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Optional

import typer

from cnibench.cli.console import err_console
from cnibench.cli.extras import require_lab
from cnibench.errors import ExitCode
from cnibench.lab.datapaths import DATAPATHS, DEFAULT_DATAPATHS


def _parse_floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}") from None


def lab(
    datapath: Optional[list[str]] = typer.Option(
        None, "--datapath", "-d", help=f"Datapath to measure (repeatable; default: all). One of: {', '.join(DATAPATHS)}. "
        "'host' (the reference) is always measured."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Seconds per iperf3 test (default 3, --quick 1)."),
    repeat: Optional[int] = typer.Option(None, "--repeat", "-r", help="Repetitions (default 3, --quick 1)."),
    out: Path = typer.Option(Path("results/lab"), "--out", "-o", help="Directory for the JSON result and PNG chart."),
    split_subnets: bool = typer.Option(False, "--split-subnets",
                                       help="Put the two nodes in two subnets behind a router (no L2 adjacency)."),
    streams: int = typer.Option(1, "--streams", "-P", min=1, help="Parallel iperf3 streams."),
    no_udp: bool = typer.Option(False, "--no-udp", help="Skip the UDP throughput test."),
    no_service: bool = typer.Option(False, "--no-service", help="Skip the pod-to-service (DNAT) test."),
    no_latency: bool = typer.Option(False, "--no-latency", help="Skip nginx/hey latency under constant load."),
    loads: str = typer.Option("0.5", "--loads", help="Latency load levels as fractions of the host's max rate, e.g. 0.25,0.5,0.75."),
    latency_duration: Optional[float] = typer.Option(None, "--latency-duration", help="Seconds per latency test (default 2)."),
    service_proxy: str = typer.Option("nft", "--service-proxy", help="nft or iptables DNAT for the service test."),
    quick: bool = typer.Option(False, "--quick", help="Short run (1 s tests, 1 repetition, 350 B latency only)."),
    no_chart: bool = typer.Option(False, "--no-chart", help="Do not write the PNG chart."),
    cleanup: bool = typer.Option(False, "--cleanup", help="Only remove leftovers of lab runs whose process is gone, then exit."),
    run_id: Optional[str] = typer.Option(None, "--run-id", hidden=True, help="Fixed run id (4-12 [a-z0-9], tests)."),
) -> None:
    """Measure pod networking datapaths locally, in network namespaces (needs root).

    Builds two "nodes" and two "pods" per datapath (veth, bridge, vxlan... and the
    reference CNI plugins), measures TCP/UDP throughput (iperf3), pod-to-service through
    DNAT, the observed path MTU, CPU cost and latency under constant load (nginx + hey),
    compares everything with the host network of the same run, and removes it all.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if the shell ignored it (background job)
    require_lab("cnibench lab")
    # the lab engine needs the lab extra (pyroute2): imported once it is known to be there
    from cnibench.lab import nsutil
    from cnibench.lab.preflight import PreflightError
    from cnibench.lab.runner import LabInterrupted, LabOptions, run_lab

    console = err_console()
    if cleanup:
        if os.geteuid() != 0:
            console.print("[red]cnibench lab --cleanup needs root[/]")
            raise typer.Exit(ExitCode.REFUSED)
        removed = nsutil.cleanup_stale()
        if not removed:
            console.print("no leftovers of dead lab runs")
        for rid, items in removed.items():
            console.print(f"run {rid}: removed {', '.join(items) or 'state'}")
        raise typer.Exit(ExitCode.OK)

    opts = LabOptions(datapaths=tuple(datapath) if datapath else DEFAULT_DATAPATHS, out=out,
                      split_subnets=split_subnets, streams=streams, udp=not no_udp, service=not no_service,
                      latency=not no_latency, latency_loads=_parse_floats(loads), service_proxy=service_proxy,
                      run_id=run_id, chart=not no_chart)
    if quick:
        opts = opts.quick()
    if duration is not None:
        opts.duration = duration
    if repeat is not None:
        opts.repeat = repeat
    if latency_duration is not None:
        opts.latency_duration = latency_duration
    try:
        result = run_lab(opts, console)
    except (PreflightError, ValueError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(ExitCode.REFUSED) from None
    except (KeyboardInterrupt, LabInterrupted):
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except Exception as exc:  # noqa: BLE001 - any other failure is reported, and the run has cleaned up
        console.print(f"[red]lab run failed: {type(exc).__name__}: {exc}[/] (everything it created was removed)")
        raise typer.Exit(ExitCode.FAILED) from None
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    """Add the ``lab`` command to the ``cnibench`` Typer app."""
    app.command("lab")(lab)
