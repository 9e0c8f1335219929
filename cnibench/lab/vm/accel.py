"""Hardware KVM or emulation: which accelerator qemu gets, and why.

``/dev/kvm`` existing, or ``KVM_CREATE_VM`` succeeding, proves nothing: a software hypervisor
(``kvm_pvm``, which runs only specially built guest kernels) also provides it, and a stock
kernel under it dies with "KVM internal error / emulation failure" before userspace (measured
on the project's machine, issue 16). Hardware KVM is the vendor module: ``kvm_intel`` or
``kvm_amd`` (the Linux kernel's arch/x86/kvm/Makefile builds VMX and SVM support as these
two modules), loaded or built in (then it appears under /sys/module).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

VENDOR_MODULES = ("kvm_intel", "kvm_amd")


@dataclass(frozen=True)
class Accelerator:
    name: str  # qemu's -accel: "kvm" or "tcg"
    reason: str

    @property
    def hardware(self) -> bool:
        return self.name == "kvm"

    @property
    def label(self) -> str:
        return "hardware KVM" if self.hardware else "emulation (qemu TCG)"


def choose(modules: set[str], dev_kvm_usable: bool) -> Accelerator:
    """The accelerator for these loaded (or built-in) kernel modules and /dev/kvm state."""
    vendor = sorted(m for m in VENDOR_MODULES if m in modules)
    if vendor and dev_kvm_usable:
        return Accelerator("kvm", f"/dev/kvm is backed by {vendor[0]} (hardware virtualisation)")
    if vendor:
        return Accelerator("tcg", f"{vendor[0]} is loaded but /dev/kvm cannot be opened read-write: emulation")
    others = sorted(m for m in modules if m.startswith("kvm_"))
    if dev_kvm_usable and others:
        return Accelerator("tcg", f"/dev/kvm is backed by {', '.join(others)}, not by kvm_intel/kvm_amd (not "
                                  "hardware virtualisation: a stock kernel cannot run under it): emulation")
    if dev_kvm_usable:
        return Accelerator("tcg", "/dev/kvm exists but neither kvm_intel nor kvm_amd is loaded: emulation")
    return Accelerator("tcg", "no /dev/kvm and no kvm_intel/kvm_amd module: emulation")


def loaded_modules(proc_modules: Path = Path("/proc/modules"), sys_module: Path = Path("/sys/module")) -> set[str]:
    """Names of the loaded modules (/proc/modules) and of the built-in ones that have a
    /sys/module entry (a built-in kvm_intel has one: its parameters live there)."""
    names: set[str] = set()
    try:
        names |= {line.split(" ", 1)[0] for line in proc_modules.read_text().splitlines() if line}
    except OSError:
        pass
    try:
        names |= {p.name for p in sys_module.iterdir()}
    except OSError:
        pass
    return names


def detect(dev_kvm: Path = Path("/dev/kvm")) -> Accelerator:
    """The accelerator for this machine."""
    return choose(loaded_modules(), dev_kvm.exists() and os.access(dev_kvm, os.R_OK | os.W_OK))
