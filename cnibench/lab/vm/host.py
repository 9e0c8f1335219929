"""Boot the guest, run the lab in it, bring its document back (``cnibench lab --vm``).

The guest is a qemu process started in its own session, its files under the run's state
directory ``/run/cnibench/<run>/vm`` (so its command line carries the run's marker and
``cnibench lab --cleanup`` finds it if this process dies). It is killed by its PID on every
way out of :func:`run_in_vm`: a normal end, a failure, a timeout, Ctrl-C, SIGTERM, SIGHUP.
The guest writes nothing to the host but the run's share (the host's root is read-only to it).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Literal

from rich.console import Console
from rich.markup import escape

import cnibench
from cnibench import results
from cnibench.errors import ExitCode
from cnibench.lab import nsutil, preflight
from cnibench.lab.runner import FAIL_AT_ENV, LabInterrupted, LabOptions, LabRun, note_interrupt
from cnibench.lab.vm import accel as accel_mod
from cnibench.lab.vm import image as image_mod
from cnibench.lab.vm.annotate import annotate
from cnibench.lab.vm.guest import options_to_json
from cnibench.report import single as report

QEMU = "qemu-system-x86_64"
# tool -> Debian package (installed by scripts/setup.sh --vm)
VM_TOOLS = {QEMU: "qemu-system-x86", "cpio": "cpio", "apt-get": "apt", "dpkg-deb": "dpkg", "depmod": "kmod",
            "modprobe": "kmod"}
BUSYBOX_PATHS = (Path("/bin/busybox"), Path("/usr/bin/busybox"))
DEFAULT_TIMEOUT_S = 4 * 3600.0
DEFAULT_MEMORY_MIB = 1024
MIN_MEMORY_MIB = 512  # measured: the lab ran in 1024 MiB; the kernel and python need about 300 MiB
GUEST_SHARE = Path("/run/share")  # where init.sh mounts the run's share in the guest
PT_INTERP = 3  # ELF program header type of the dynamic loader's path (elf(5))


@dataclass(frozen=True)
class VMOptions:
    memory_mib: int = DEFAULT_MEMORY_MIB
    cpus: int | None = None  # default: every CPU this process may use
    timeout_s: float = DEFAULT_TIMEOUT_S
    kernel_package: str = image_mod.KERNEL_PACKAGE

    def validate(self) -> None:
        if not MIN_MEMORY_MIB <= self.memory_mib <= 65536:
            raise ValueError(f"--vm-memory {self.memory_mib}: must be in [{MIN_MEMORY_MIB}, 65536] MiB")
        allowed = len(os.sched_getaffinity(0))
        if self.cpus is not None and not 1 <= self.cpus <= allowed:
            raise ValueError(f"--vm-cpus {self.cpus}: must be in [1, {allowed}] (the CPUs this process may use)")
        if not (math.isfinite(self.timeout_s) and 10 <= self.timeout_s <= 7 * 86400):
            raise ValueError(f"--vm-timeout {self.timeout_s:g}: must be in [10, 604800] seconds")


def is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a dynamic loader (no PT_INTERP program header)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != image_mod.ELF_MAGIC or head[4] != 2:  # ELFCLASS64
                return False
            order: Literal["little", "big"] = "little" if head[5] == 1 else "big"
            phoff = int.from_bytes(head[0x20:0x28], order)
            phentsize = int.from_bytes(head[0x36:0x38], order)
            phnum = int.from_bytes(head[0x38:0x3A], order)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    return all(int.from_bytes(table[i:i + 4], order) != PT_INTERP for i in range(0, len(table), phentsize))


def static_busybox() -> Path | None:
    return next((p for p in BUSYBOX_PATHS if is_static_elf(p)), None)


def check_host(opts: LabOptions) -> Path:
    """What the VM mode needs on the host, all problems at once; returns the static busybox.
    The lab's own tools run in the guest from the host's root, so they are checked here too."""
    problems = []
    for tool, pkg in VM_TOOLS.items():
        if shutil.which(tool) is None:
            problems.append(f"'{tool}' not found: install the Debian package {pkg} (or run scripts/setup.sh --vm)")
    busybox = static_busybox()
    if busybox is None:
        problems.append("no statically linked busybox in /bin or /usr/bin: install the Debian package "
                        "busybox-static (or run scripts/setup.sh --vm)")
    # the guest's kernel builds every datapath and IPVS: their tools are needed (the guest runs the host's)
    for check in (lambda: preflight.check(latency=opts.latency, service_proxy=opts.service_proxy),
                  lambda: preflight.check_feature_tools(list(opts.datapaths), ipvs=opts.ipvs and opts.service)):
        try:
            check()
        except preflight.PreflightError as exc:
            problems += str(exc).split("\n  - ")[1:]
    if problems:
        raise preflight.PreflightError("cannot run the lab in a VM:\n  - " + "\n  - ".join(problems))
    assert busybox is not None
    return busybox


def qemu_argv(img: image_mod.Image, acc: accel_mod.Accelerator, vm: VMOptions, work: Path, share: Path,
              run_id: str) -> list[str]:
    cpus = vm.cpus or len(os.sched_getaffinity(0))
    accel = ["-accel", "kvm", "-cpu", "host"] if acc.hardware else ["-accel", "tcg,thread=multi", "-cpu", "max"]
    return [QEMU, "-name", f"cnibench-{run_id}", *accel, "-M", "pc", "-m", str(vm.memory_mib), "-smp", str(cpus),
            "-nodefaults", "-no-reboot", "-display", "none",
            "-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
            "-kernel", str(img.kernel), "-initrd", str(img.initrd), "-append", "console=ttyS0 panic=-1 quiet",
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-virtfs", f"local,path={share},mount_tag=share,security_model=none",
            "-pidfile", str(work / "qemu.pid")]


def guest_script(job: Path) -> str:
    """The guest's command: the host's python and package, a clean environment."""
    pkg_parent = Path(cnibench.__file__).resolve().parent.parent
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": "/root", "NO_COLOR": "1",
           "TERM": "dumb", "COLUMNS": "120", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(pkg_parent),
           "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"}
    if os.environ.get(FAIL_AT_ENV):  # the lab's test hook reaches the guest's run
        env[FAIL_AT_ENV] = os.environ[FAIL_AT_ENV]
    assigns = " ".join(f"{k}='{v}'" for k, v in env.items())
    return (f"cd '{pkg_parent}' || exit 1\n"
            f"/usr/bin/env -i {assigns} '{sys.executable}' -m cnibench.lab.vm.guest '{job}'\n"
            f"echo $? > {GUEST_SHARE}/rc\n")


def qemu_version() -> str:
    try:
        p = subprocess.run([QEMU, "--version"], capture_output=True, text=True, timeout=10)
        return p.stdout.splitlines()[0].strip() if p.stdout else "unknown"
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"


def _pump(stream: IO[bytes], log: IO[str], console: Console, tail: list[str]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\r\n").replace("\r", "")
        log.write(line + "\n")
        log.flush()
        tail.append(line)
        del tail[:-40]
        console.print(f"[dim]guest |[/] {escape(line)}", markup=True, highlight=False, soft_wrap=True)


def _stop(proc: subprocess.Popen | None) -> None:
    """Kill the guest by its PID: SIGTERM (qemu exits at once), then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _raise_stop(signum: int, frame: object) -> None:
    raise LabInterrupted(signal.Signals(signum).name)


def run_in_vm(opts: LabOptions, vm: VMOptions | None = None, console: Console | None = None) -> LabRun:
    """Run the lab in a guest with the distribution kernel; the document lands in ``opts.out``."""
    console = console or Console(stderr=True)
    vm = vm or VMOptions()
    opts.validate()
    vm.validate()
    busybox = check_host(opts)
    acc = accel_mod.detect()
    console.print(f"[bold]cnibench lab --vm[/]: accelerator {acc.label} ({acc.reason})")
    img = image_mod.ensure(vm.kernel_package, busybox=busybox, progress=lambda m: console.print(f"vm: {m}"))
    run_id = opts.run_id or nsutil.new_run_id()
    run = LabRun(None, ExitCode.FAILED, run_id=run_id)
    proc: subprocess.Popen | None = None
    old: dict = {}
    claimed = False
    try:
        with nsutil.signals_blocked():
            state = nsutil.claim_run(run_id)
            claimed = True
            old = {s: signal.signal(s, _raise_stop) for s in (signal.SIGTERM, signal.SIGHUP)}
        work = state / "vm"
        share = work / "share"
        share.mkdir(parents=True)
        job = {"options": options_to_json(replace(opts, run_id=run_id, out=GUEST_SHARE / "out", chart=False))}
        (share / "job.json").write_text(json.dumps(job, indent=2))
        (share / "guest.sh").write_text(guest_script(GUEST_SHARE / "job.json"))
        out = Path(opts.out)
        out.mkdir(parents=True, exist_ok=True)
        log_path = out / f"lab-{run_id}-vm-console.log"
        argv = qemu_argv(img, acc, vm, work, share, run_id)
        console.print(f"vm: booting {img.describe()} ({vm.memory_mib} MiB, {argv[argv.index('-smp') + 1]} CPUs), "
                      f"run [cyan]{run_id}[/]; console log {log_path}")
        t0 = time.monotonic()
        tail: list[str] = []
        with open(log_path, "w") as log:
            with nsutil.signals_blocked():  # the PID is recorded before any signal can unwind
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            assert proc.stdout is not None
            pump = threading.Thread(target=_pump, args=(proc.stdout, log, console, tail), daemon=True)
            pump.start()
            try:
                qemu_rc = proc.wait(vm.timeout_s)
            except subprocess.TimeoutExpired:
                _stop(proc)
                raise RuntimeError(f"the guest did not finish within --vm-timeout {vm.timeout_s:g} s: killed "
                                   f"(console log {log_path})") from None
            pump.join(10)
        wall = time.monotonic() - t0
        run = _collect(opts, run, share, qemu_rc, wall, tail, log_path,
                       _vm_info(img, acc, vm, argv, wall), console)
        return run
    except (KeyboardInterrupt, LabInterrupted) as exc:
        note_interrupt(exc, run, console, f"stopping the guest and cleaning up run {run_id}")
        raise
    finally:
        with nsutil.signals_blocked():  # a second signal must not cut the clean-up short
            _stop(proc)
            if claimed:
                nsutil.cleanup_run(run_id)
                left = [str(p) for p in nsutil.run_processes(run_id)]
                if left or nsutil.state_dir(run_id).exists():
                    console.print(f"[red]cleanup of run {run_id} left: {left or nsutil.state_dir(run_id)}[/]")
            for s, h in old.items():
                signal.signal(s, h)


def _vm_info(img: image_mod.Image, acc: accel_mod.Accelerator, vm: VMOptions, argv: list[str], wall: float) -> dict:
    m = img.manifest
    return {"kernel_release": img.release, "kernel_package": m["package"], "kernel_package_version": m["version"],
            "kernel_package_sha256": m["deb_sha256"], "kernel_source": m["source"], "accelerator": acc.name,
            "accelerator_reason": acc.reason, "hardware_virtualisation": acc.hardware, "qemu": qemu_version(),
            "cpus": int(argv[argv.index("-smp") + 1]), "memory_mib": vm.memory_mib, "wall_s": round(wall, 1),
            "host_kernel": os.uname().release}


def _collect(opts: LabOptions, run: LabRun, share: Path, qemu_rc: int, wall: float, tail: list[str],
             log_path: Path, info: dict, console: Console) -> LabRun:
    """Read the guest's document, mark it, write it and the chart next to the host's results."""
    rc_text = (share / "rc").read_text().strip() if (share / "rc").exists() else ""
    docs = sorted((share / "out").glob(f"lab-{run.run_id}.json"))
    if not docs:
        why = f"guest exit status {rc_text}" if rc_text else f"the guest stopped before the lab ended (qemu exit {qemu_rc})"
        last = "\n".join(f"  guest | {ln}" for ln in tail[-12:])
        raise RuntimeError(f"the lab in the guest wrote no result document ({why}); console log {log_path}; "
                           f"its last lines:\n{last}")
    doc = results.read_document(docs[0])
    try:
        info["guest_leftovers"] = json.loads((share / "leftovers.json").read_text())
    except (OSError, ValueError):
        info["guest_leftovers"] = None
    annotate(doc, info)
    out = Path(opts.out)
    run.doc = doc
    run.json_path = results.write_json(doc, out / f"lab-{run.run_id}.json")
    if opts.chart:
        run.png_path = report.write_chart(doc, out / f"lab-{run.run_id}.png")
    console.print(report.render_table(doc))
    console.print(f"results: {run.json_path}" + (f", chart: {run.png_path}" if run.png_path else "")
                  + f"; guest console log: {log_path}")
    failed = results.failures(doc)
    left = info["guest_leftovers"]
    if left is None or any(left.values()):
        failed.append(f"the lab left in the guest: {left}" if left else "the guest wrote no leftovers record")
    run.exit_code = ExitCode.FAILED if failed or rc_text not in ("0", "1") else ExitCode.OK
    if failed:
        console.print(f"[red]failed: {'; '.join(failed)}[/]")
    return run
