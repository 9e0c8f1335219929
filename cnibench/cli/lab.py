"""The ``cnibench lab`` command. ``cnibench/cli/__init__.py`` calls :func:`register` on its app.

Progress, the live table and errors go to stderr; with ``--json`` the result document (schema
v2, the same as ``lab-<run>.json``) is printed on stdout at the end."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from cnibench.cli.console import check_output_dir, err_console
from cnibench.cli.extras import require_lab
from cnibench.errors import ExitCode, InputError
from cnibench.lab.datapaths import DATAPATHS, DEFAULT_DATAPATHS
from cnibench.suite.definition import BUSY_THRESHOLD
from cnibench.suite.definition import LAB_DEFAULTS as LAB

VM_MEMORY = 1024  # cnibench.lab.vm.host.DEFAULT_MEMORY_MIB (checked by a test; that module needs the lab extra)
VM_TIMEOUT = 4 * 3600.0  # cnibench.lab.vm.host.DEFAULT_TIMEOUT_S
LOADS_DEFAULT = ",".join(f"{fraction:g}" for fraction in LAB.load_fractions)


def _parse_floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InputError(f"--loads {text!r}: expected comma-separated fractions of the host's maximum message "
                         "rate such as 0.3,0.5, each in (0, 10]") from None


def complete_datapath(incomplete: str) -> list[tuple[str, str]]:
    """Shell completion of ``--datapath``: the lab's datapaths with their description."""
    return [(name, d.description) for name, d in DATAPATHS.items() if name.startswith(incomplete)]


def complete_service_proxy(incomplete: str) -> list[str]:
    return [proxy for proxy in ("nft", "iptables") if proxy.startswith(incomplete)]


def lab(
    datapath: Optional[list[str]] = typer.Option(
        None, "--datapath", "-d", metavar="DATAPATH", autocompletion=complete_datapath,
        help=f"Datapath to measure (repeatable; default: all). One of: {', '.join(DATAPATHS)}. "
        "'host' (the reference) is always measured."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Measured seconds per iperf3 test (default 1, after --omit)."),
    omit: Optional[int] = typer.Option(None, "--omit", help=f"iperf3 -O: seconds of slow start not counted "
                                       f"(default {LAB.omit_s}; 0 with --functional)."),
    rr_duration: Optional[float] = typer.Option(None, "--rr-duration",
                                                help="Seconds per sockperf/wrk test (default 1)."),
    repeat: Optional[int] = typer.Option(None, "--repeat", "-r",
                                         help="A fixed number of repetitions (default: adaptive, see --repeat-min)."),
    repeat_min: int = typer.Option(LAB.repeat_min, "--repeat-min", help="Adaptive repetitions: at least this many."),
    repeat_max: int = typer.Option(LAB.repeat_max, "--repeat-max", help="Adaptive repetitions: at most this many."),
    target: float = typer.Option(LAB.target_half_width, "--target-half-width",
                                 help="Adaptive repetitions stop once every primary ratio's 95 % interval is "
                                      "within +- this fraction."),
    out: Path = typer.Option(Path("results/lab"), "--out", "-o", help="Directory for the JSON result and PNG chart."),
    split_subnets: bool = typer.Option(False, "--split-subnets",
                                       help="Put the two nodes in two subnets behind a router (no L2 adjacency)."),
    streams: int = typer.Option(1, "--streams", "-P", help="Parallel iperf3 streams (1-128)."),
    no_udp: bool = typer.Option(False, "--no-udp", help="Skip the UDP throughput test."),
    no_service: bool = typer.Option(False, "--no-service", help="Skip the pod-to-service (DNAT) test."),
    both_ways: bool = typer.Option(False, "--both-ways",
                                   help="Also measure every throughput test in reverse (iperf3 -R: the server "
                                        "sends; tcp-reverse, udp-reverse, tcp-service-reverse...) and UDP to the "
                                        "service (udp-service)."),
    ipvs: bool = typer.Option(False, "--ipvs",
                              help="Also measure the service tests through IPVS (kube-router's service proxy: "
                                   "the VIP on kube-dummy-if, masquerade to the pod; tcp-service-ipvs...); "
                                   "skipped, with the reason, where the kernel has no IPVS."),
    no_latency: bool = typer.Option(False, "--no-latency",
                                    help="Skip the sockperf and wrk tests (request/response, connection rate, "
                                         "latency under load, HTTP)."),
    no_cpu: bool = typer.Option(False, "--no-cpu", help="Skip the CPU-cost test at a fixed offered rate."),
    loads: str = typer.Option(LOADS_DEFAULT, "--loads",
                              help="Constant-rate latency loads as fractions of the host's maximum message rate, "
                                   "e.g. 0.3,0.5 (up to 10: above 1 the validity gate must refuse the figure)."),
    udp_rate: int = typer.Option(LAB.udp_rate_mbit, "--udp-rate", help="Offered UDP rate in Mbit/s (fixed for every datapath)."),
    busy_threshold: float = typer.Option(BUSY_THRESHOLD, "--busy-threshold",
                                         help="Background-load guard: a repetition is contaminated when other work "
                                              "keeps more than this share of all cores busy just before it."),
    service_proxy: str = typer.Option("nft", "--service-proxy", autocompletion=complete_service_proxy,
                                      help="nft or iptables DNAT for the service test."),
    pin_cpu: int = typer.Option(0, "--pin-cpu",
                                help="Run both ends of the request/response tests on this CPU (-1: unpinned; "
                                     "a cross-core wake-up on a VM can cost ~100 µs)."),
    quick: bool = typer.Option(False, "--quick", help="Smoke run: one repetition (no intervals) and a short load "
                               "guard; the tests keep their 1 s."),
    functional: bool = typer.Option(False, "--functional",
                                    help="Does every path pass traffic (slow or emulated machines): one repetition "
                                         "of 1 s tests, --omit 0, no latency or CPU tests, --both-ways and --ipvs."),
    no_chart: bool = typer.Option(False, "--no-chart", help="Do not write the PNG chart."),
    cleanup: bool = typer.Option(False, "--cleanup", help="Only remove leftovers of lab runs whose process is gone, then exit."),
    as_json: bool = typer.Option(False, "--json", help="Print the result document (JSON, schema v2) on stdout at the end; "
                                 "progress and the table stay on stderr. With --cleanup: what was removed."),
    run_id: Optional[str] = typer.Option(None, "--run-id", hidden=True, help="Fixed run id (4-12 [a-z0-9], tests)."),
    vm: bool = typer.Option(False, "--vm", help="Run the lab inside a qemu guest booting Debian's kernel (every "
                            "datapath's module is there); without hardware KVM it emulates, and every figure is "
                            "marked functional only. First use downloads the kernel (~70 MB, cached)."),
    vm_memory: int = typer.Option(VM_MEMORY, "--vm-memory", help="--vm: guest memory in MiB."),
    vm_cpus: Optional[int] = typer.Option(None, "--vm-cpus", help="--vm: guest CPUs (default: every CPU this "
                                          "process may use)."),
    vm_timeout: float = typer.Option(VM_TIMEOUT, "--vm-timeout", help="--vm: seconds before the guest is killed."),
) -> None:
    """Measure pod networking datapaths locally, in network namespaces (needs root).

    Builds two "nodes" and two "pods" per datapath (veth, bridge, vxlan... and the
    reference CNI plugins) and measures, against the host network of the same run:
    request/response latency in µs (sockperf), connection rate and HTTP (nginx + wrk),
    latency at a constant offered rate behind a validity gate (sockperf under-load),
    TCP/UDP throughput (iperf3), pod-to-service through DNAT, CPU per Gbit at a fixed
    rate and the path MTU. Ratios carry 95 % confidence intervals from paired repetitions;
    repetitions run while the machine was busy are flagged. Everything is removed at the end.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if the shell ignored it (background job)
    require_lab("cnibench lab")
    # the lab engine needs the lab extra (pyroute2): imported once it is known to be there
    from cnibench.lab import nsutil, preflight
    from cnibench.lab.preflight import PreflightError
    from cnibench.lab.runner import LabInterrupted, LabOptions, run_lab
    from cnibench.lab.vm.host import VMOptions, run_in_vm
    from cnibench.lab.vm.image import ImageError

    console = err_console()

    def refuse(message: str) -> typer.Exit:
        console.print(message, style="red", markup=False, highlight=False)
        return typer.Exit(ExitCode.REFUSED)

    if cleanup:
        if os.geteuid() != 0:
            console.print("[red]cnibench lab --cleanup needs root[/]")
            raise typer.Exit(ExitCode.REFUSED)
        removed = nsutil.cleanup_stale()
        if as_json:
            sys.stdout.write(json.dumps({"removed": {rid: list(items) for rid, items in removed.items()}}, indent=2) + "\n")
        if not removed:
            console.print("no leftovers of dead lab runs")
        for rid, items in removed.items():
            console.print(f"run {rid}: removed {', '.join(items) or 'state'}")
        raise typer.Exit(ExitCode.OK)

    # every argument is checked here and in LabOptions.validate (run_lab's first step), before the
    # first namespace, state file or output file exists: a bad one costs nothing and loses nothing
    try:
        if pin_cpu < -1:
            raise InputError(f"--pin-cpu {pin_cpu}: a CPU number, or -1 for unpinned")
        if run_id is not None and not re.fullmatch(r"[a-z0-9]{4,12}", run_id):
            # nsutil names every namespace and link after it: cnb-<run id>-<datapath>-<node> (IFNAMSIZ)
            raise InputError(f"--run-id {run_id!r}: 4 to 12 lowercase letters or digits")
        opts = LabOptions(datapaths=tuple(dict.fromkeys(datapath)) if datapath else DEFAULT_DATAPATHS, out=out,
                          split_subnets=split_subnets, streams=streams, udp=not no_udp, service=not no_service,
                          latency=not no_latency, cpu=not no_cpu, latency_loads=_parse_floats(loads),
                          udp_rate_mbit=udp_rate, busy_threshold=busy_threshold, repeat_min=repeat_min,
                          repeat_max=repeat_max, target_half_width=target, service_proxy=service_proxy,
                          pin_cpu=None if pin_cpu < 0 else pin_cpu,
                          run_id=run_id, chart=not no_chart, both_ways=both_ways, ipvs=ipvs)
        if quick:
            opts = opts.quick()
        if functional:
            opts = opts.functional()
        if omit is not None:
            opts.omit = omit
        if duration is not None:
            opts.duration = duration
        if rr_duration is not None:
            opts.rr_duration = rr_duration
        if repeat is not None:
            opts.repeat = repeat
        opts.validate()
        vm_opts = VMOptions(memory_mib=vm_memory, cpus=vm_cpus, timeout_s=vm_timeout) if vm else None
        if vm_opts:
            vm_opts.validate()
        if os.geteuid() != 0:  # before --out: a user's --out may be a place only root can reach
            preflight.check(latency=opts.latency, service_proxy=opts.service_proxy, need_root=True)
        check_output_dir(out, "--out")  # else the results of the whole run are lost at its end
    except (InputError, ValueError, PreflightError) as exc:
        raise refuse(str(exc)) from None
    try:
        result = run_in_vm(opts, vm_opts, console) if vm_opts else run_lab(opts, console)
    except (PreflightError, ValueError, ImageError) as exc:
        raise refuse(str(exc)) from None
    except (KeyboardInterrupt, LabInterrupted):
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except Exception as exc:  # noqa: BLE001 - any other failure is reported, and the run has cleaned up
        console.print(f"[red]lab run failed: {type(exc).__name__}: {escape(str(exc))}[/] (everything it created was "
                      "removed)")
        raise typer.Exit(ExitCode.FAILED) from None
    if as_json and result.doc is not None:
        sys.stdout.write(json.dumps(result.doc, indent=2) + "\n")
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    """Add the ``lab`` command to the ``cnibench`` Typer app."""
    app.command("lab")(lab)
