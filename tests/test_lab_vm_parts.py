"""The VM mode's pure parts: accelerator choice, apt output parsing, the static-busybox check,
qemu's argv, the guest's script and the document marking (no guest is booted here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cnibench import results
from cnibench.lab.runner import LabOptions
from cnibench.lab.vm import accel, annotate, guest, host, image

DATA = Path(__file__).parent / "data"


# --------------------------------------------------------------------------- accelerator


@pytest.mark.parametrize("vendor", ["kvm_intel", "kvm_amd"])
def test_hardware_kvm_needs_the_vendor_module_and_a_usable_dev_kvm(vendor):
    chosen = accel.choose({"kvm", vendor}, dev_kvm_usable=True)
    assert (chosen.name, chosen.hardware, chosen.label) == ("kvm", True, "hardware KVM")
    assert vendor in chosen.reason
    no_dev = accel.choose({"kvm", vendor}, dev_kvm_usable=False)
    assert no_dev.name == "tcg" and "cannot be opened" in no_dev.reason


def test_a_software_hypervisor_behind_dev_kvm_means_emulation():
    # this machine: /dev/kvm works, but it is kvm_pvm's (issue 16), which a stock kernel cannot run under
    chosen = accel.choose({"kvm", "kvm_pvm", "9p"}, dev_kvm_usable=True)
    assert (chosen.name, chosen.hardware) == ("tcg", False)
    assert "kvm_pvm" in chosen.reason and "not by kvm_intel/kvm_amd" in chosen.reason
    assert accel.choose({"kvm"}, dev_kvm_usable=True).name == "tcg"
    assert accel.choose(set(), dev_kvm_usable=False).reason.startswith("no /dev/kvm")


def test_this_machine_is_detected_as_emulation():
    """The acceptance check of issue 16 on the machine it was written on: kvm_pvm, no vendor module."""
    modules = accel.loaded_modules()
    if {"kvm_intel", "kvm_amd"} & modules:
        pytest.skip(f"this machine has a vendor KVM module ({sorted(modules & {'kvm_intel', 'kvm_amd'})})")
    assert accel.detect().name == "tcg"


def test_loaded_modules_reads_proc_modules_and_built_in_ones(tmp_path):
    proc = tmp_path / "modules"
    proc.write_text("kvm_intel 413696 0 - Live 0x0000000000000000\nkvm 1343488 1 kvm_intel, Live 0x0\n")
    sysmod = tmp_path / "sys"
    (sysmod / "virtio_pci").mkdir(parents=True)
    assert accel.loaded_modules(proc, sysmod) == {"kvm_intel", "kvm", "virtio_pci"}
    assert accel.loaded_modules(tmp_path / "absent", tmp_path / "absent2") == set()
    assert accel.choose(accel.loaded_modules(proc, sysmod), True).name == "kvm"


# --------------------------------------------------------------------------- apt, ELF


def test_the_kernel_package_and_version_from_real_apt_cache_output():
    depends = (DATA / "vm/apt-cache-depends-linux-image-amd64.txt").read_text()
    assert image.parse_depends(depends) == "linux-image-6.1.0-57-amd64"
    policy = (DATA / "vm/apt-cache-policy-linux-image-6.1.0-57-amd64.txt").read_text()
    assert image.parse_candidate(policy) == "6.1.192-3"
    assert image.parse_candidate((DATA / "vm/apt-cache-policy-unknown.txt").read_text()) is None
    assert image.parse_candidate("pkg:\n  Installed: (none)\n  Candidate: (none)\n") is None
    assert image.parse_depends("linux-image-amd64\n  Depends: <linux-image-virtual>\n") is None


def test_static_busybox_is_told_from_a_dynamic_executable(tmp_path):
    dynamic = Path(shutil.which("sh") or "/bin/sh").resolve()
    assert not host.is_static_elf(dynamic)
    assert not host.is_static_elf(tmp_path / "absent")
    (tmp_path / "text").write_text("#!/bin/sh\n")
    assert not host.is_static_elf(tmp_path / "text")
    busybox = host.static_busybox()
    if busybox is None:
        pytest.skip("busybox-static is not installed (scripts/setup.sh --vm installs it)")
    out = subprocess.run([str(busybox), "true"], capture_output=True)
    assert out.returncode == 0 and host.is_static_elf(busybox)


def test_uncompressed_kernel_only_from_xz_elf(tmp_path):
    import lzma

    bz = tmp_path / "vmlinuz"
    bz.write_bytes(b"MZ-setup-code" + lzma.compress(b"\x7fELF" + b"\0" * 64, format=lzma.FORMAT_XZ))
    assert image._uncompressed_kernel(bz, tmp_path / "vmlinux") == tmp_path / "vmlinux"
    assert (tmp_path / "vmlinux").read_bytes().startswith(b"\x7fELF")
    bz.write_bytes(b"MZ" + lzma.compress(b"not an elf", format=lzma.FORMAT_XZ))
    assert image._uncompressed_kernel(bz, tmp_path / "other") is None
    bz.write_bytes(b"MZ gzip-compressed \x1f\x8b")
    assert image._uncompressed_kernel(bz, tmp_path / "other") is None


# --------------------------------------------------------------------------- qemu and the guest


def _image(tmp_path: Path) -> image.Image:
    return image.Image(tmp_path, {"kernel": "vmlinux", "initrd": "initrd.cpio", "kernel_release": "6.1.0-57-amd64",
                                  "package": "linux-image-6.1.0-57-amd64", "version": "6.1.192-3"})


def test_qemu_argv_uses_kvm_only_with_hardware_and_carries_the_run_marker(tmp_path):
    work = Path("/run/cnibench/abcd12/vm")
    tcg = host.qemu_argv(_image(tmp_path), accel.Accelerator("tcg", "x"), host.VMOptions(memory_mib=768, cpus=1),
                         work, work / "share", "abcd12")
    assert tcg[tcg.index("-accel") + 1] == "tcg,thread=multi" and tcg[tcg.index("-cpu") + 1] == "max"
    assert (tcg[tcg.index("-m") + 1], tcg[tcg.index("-smp") + 1]) == ("768", "1")
    assert "-no-reboot" in tcg and str(tmp_path / "vmlinux") in tcg
    # the run's marker in the command line: nsutil.run_processes (and so --cleanup) finds the guest
    assert any("/run/cnibench/abcd12/" in a for a in tcg)
    assert any(a.startswith("local,path=/,mount_tag=hostroot") and "readonly=on" in a for a in tcg)
    kvm = host.qemu_argv(_image(tmp_path), accel.Accelerator("kvm", "x"), host.VMOptions(), work, work / "share", "abcd12")
    assert kvm[kvm.index("-accel") + 1] == "kvm" and kvm[kvm.index("-cpu") + 1] == "host"


@pytest.mark.parametrize(("field", "value", "words"), [
    ("memory_mib", 256, "--vm-memory 256"), ("cpus", 0, "--vm-cpus 0"), ("cpus", 999, "--vm-cpus 999"),
    ("timeout_s", 5, "--vm-timeout 5")])
def test_vm_options_are_refused_naming_the_flag(field, value, words):
    with pytest.raises(ValueError, match=words):
        host.VMOptions(**{field: value}).validate()
    host.VMOptions().validate()


def test_the_cli_defaults_are_the_vm_modules():
    from cnibench.cli import lab as cli_lab

    assert (cli_lab.VM_MEMORY, cli_lab.VM_TIMEOUT) == (host.DEFAULT_MEMORY_MIB, host.DEFAULT_TIMEOUT_S)


def test_lab_options_survive_the_trip_to_the_guest():
    opts = LabOptions(datapaths=("vxlan", "ipip"), latency_loads=(0.2, 0.4), out=Path("/run/share/out"),
                      run_id="abcd12", pin_cpu=None, udp=False).quick()
    data = json.loads(json.dumps(guest.options_to_json(opts)))
    assert guest.options_from_json(data) == opts
    with pytest.raises(ValueError, match="unknown lab option.*bogus"):
        guest.options_from_json({**data, "bogus": 1})


def test_guest_script_runs_this_python_and_package_and_records_the_status():
    import sys

    import cnibench

    text = host.guest_script(Path("/run/share/job.json"))
    assert f"'{sys.executable}' -m cnibench.lab.vm.guest '/run/share/job.json'" in text
    assert f"PYTHONPATH='{Path(cnibench.__file__).resolve().parent.parent}'" in text
    assert text.rstrip().endswith("echo $? > /run/share/rc")


def test_image_init_template_has_every_placeholder_filled_by_the_build():
    text = image._init_template()
    assert set(__import__("re").findall(r"@[A-Z]+@", text)) == {"@MODULES@", "@KVER@", "@MODDIR@"}
    assert "/run/share/guest.sh" in text and "poweroff -f" in text


# --------------------------------------------------------------------------- the document


def _doc() -> dict:
    return json.loads((DATA / "lab-result-v2.json").read_text())


def test_emulation_marks_every_test_functional_only_and_withholds_the_ranking():
    doc = annotate.annotate(_doc(), {"accelerator": "tcg", "kernel_release": "6.1.0-57-amd64"})
    results.validate(doc)
    tests = [t for s in doc["subjects"] for t in s["tests"]]
    assert tests and all(t["caveats"][0].startswith("functional only") for t in tests)
    assert {t["caveats"][0] for t in tests if t["kind"] == "mtu"} == {annotate.FUNCTIONAL_ONLY_MTU}
    assert doc["extra"]["ranking"]["allowed"] is False and "emulation" in doc["extra"]["ranking"]["reason"]
    assert doc["environment"]["extra"]["vm"]["kernel_release"] == "6.1.0-57-amd64"
    again = annotate.annotate(doc, {"accelerator": "tcg"})  # idempotent: one caveat, not two
    assert all(t["caveats"].count(t["caveats"][0]) == 1 for s in again["subjects"] for t in s["tests"])


def test_hardware_kvm_keeps_the_figures_and_the_ranking():
    before = _doc()
    doc = annotate.annotate(_doc(), {"accelerator": "kvm"})
    assert doc["environment"]["extra"]["vm"] == {"accelerator": "kvm"}
    assert not any(t.get("caveats") for s in doc["subjects"] for t in s["tests"])
    assert doc.get("extra", {}).get("ranking") == before.get("extra", {}).get("ranking")


def test_the_table_shows_the_functional_only_caveat_and_no_ranking():
    from cnibench.report import single

    doc = annotate.annotate(_doc(), {"accelerator": "tcg"})
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(single.render_table(doc))
    text = console.export_text()
    assert "functional only: measured in a guest under software emulation" in text
    assert "no ranking: measured under software emulation" in text


def test_the_host_check_names_every_missing_package_at_once(tmp_path, monkeypatch):
    from cnibench.lab.preflight import PreflightError

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no tool is found
    with pytest.raises(PreflightError) as err:
        host.check_host(LabOptions(datapaths=("wireguard", "vxlan"), ipvs=True))
    text = str(err.value)
    assert text.startswith("cannot run the lab in a VM:")
    for package in ("qemu-system-x86", "cpio", "kmod", "iperf3", "nftables", "wireguard-tools", "ipvsadm"):
        assert f"Debian package {package}" in text, package
    assert "setup.sh --vm" in text


def _fake_image(root: Path, name: str, version: str, init_sha: str) -> Path:
    d = root / f"{name}_{version}"
    d.mkdir(parents=True)
    (d / "vmlinux").write_bytes(b"\x7fELF")
    (d / "initrd.cpio").write_bytes(b"070701")
    manifest = {"format": image.FORMAT, "package": name, "version": version, "kernel_release": "6.1.0-1-amd64",
                "kernel": "vmlinux", "initrd": "initrd.cpio", "init_sha256": init_sha}
    (d / image.MANIFEST).write_text(json.dumps(manifest))
    return d


def test_offline_the_newest_complete_cached_image_is_used_and_said(tmp_path, monkeypatch):
    def offline(package):
        raise image.ImageError("apt-cache has no candidate version of linux-image-amd64 (apt's lists ...)")

    monkeypatch.setenv(image.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(image, "resolve", offline)
    with pytest.raises(image.ImageError, match="no candidate version"):  # nothing cached: apt's error
        image.ensure(busybox=Path("/bin/busybox"), progress=lambda m: None)

    old = _fake_image(tmp_path, "linux-image-6.1.0-1-amd64", "6.1.1-1", image.init_digest())
    new = _fake_image(tmp_path, "linux-image-6.1.0-2-amd64", "6.1.2-1", image.init_digest())
    os.utime(old, (1, 1))
    (tmp_path / "linux-image-6.1.0-3-amd64_6.1.3-1").mkdir()  # half-built (no manifest): never used
    said: list[str] = []
    img = image.ensure(busybox=Path("/bin/busybox"), progress=said.append)
    assert img.root == new.resolve() and img.manifest["version"] == "6.1.2-1"
    assert len(said) == 1 and "no candidate version" in said[0] and "using the cached" in said[0]
    assert "linux-image-6.1.0-2-amd64 6.1.2-1" in said[0]


def test_offline_a_cached_image_of_an_older_init_sh_gets_a_fresh_initramfs(tmp_path, monkeypatch):
    def offline(package):
        raise image.ImageError("apt-cache knows no kernel package behind linux-image-amd64")

    monkeypatch.setenv(image.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(image, "resolve", offline)
    d = _fake_image(tmp_path, "linux-image-6.1.0-1-amd64", "6.1.1-1", "an-older-init")
    rebuilt = []
    monkeypatch.setattr(image, "_initramfs", lambda target, tree, release, busybox, moddir: rebuilt.append(target)
                        or ["virtio_pci.ko"])
    said: list[str] = []
    img = image.ensure(busybox=Path("/bin/busybox"), progress=said.append)
    assert rebuilt == [d.resolve()] and any("refreshing the initramfs" in m for m in said)
    assert img.manifest["init_sha256"] == image.init_digest()
    assert json.loads((d / image.MANIFEST).read_text())["init_sha256"] == image.init_digest()
