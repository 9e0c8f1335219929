"""Build, cache and find the guest image: Debian's kernel, its modules, a busybox initramfs.

Nothing is installed on the host: the kernel package is fetched with ``apt-get download`` and
unpacked with ``dpkg-deb -x`` into ``/var/cache/cnibench/vm/<package>_<version>/`` (or
``$CNIBENCH_VM_CACHE``), once per kernel version. The image is built in a scratch directory
beside it and renamed into place when complete, under a lock: a half-built image is never used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator

CACHE_ENV = "CNIBENCH_VM_CACHE"
DEFAULT_CACHE = Path("/var/cache/cnibench/vm")
KERNEL_PACKAGE = "linux-image-amd64"  # Debian's metapackage: depends on the current kernel's package
# What /init loads by hand, before the host's root (and so modprobe) is there: virtio's PCI
# transport, 9p over virtio, overlayfs. Everything else the kernel loads on demand.
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
MANIFEST = "manifest.json"
FORMAT = 1  # bump when the layout of an image changes: older images are rebuilt
XZ_MAGIC = b"\xfd7zXZ\x00"
ELF_MAGIC = b"\x7fELF"


class ImageError(RuntimeError):
    """The guest image cannot be built or found; the message says what to do."""


@dataclass(frozen=True)
class Image:
    root: Path
    manifest: dict

    @property
    def kernel(self) -> Path:
        return self.root / self.manifest["kernel"]

    @property
    def initrd(self) -> Path:
        return self.root / self.manifest["initrd"]

    @property
    def release(self) -> str:
        return str(self.manifest["kernel_release"])

    def describe(self) -> str:
        m = self.manifest
        return f"{m['package']} {m['version']} (Linux {m['kernel_release']})"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def _run(argv: list[str], cwd: Path | None = None, what: str = "") -> str:
    try:
        p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        raise ImageError(f"{what or argv[0]}: '{argv[0]}' not found") from None
    except subprocess.TimeoutExpired:
        raise ImageError(f"{what or argv[0]}: '{' '.join(argv)}' did not finish in 900 s") from None
    if p.returncode != 0:
        raise ImageError(f"{what or argv[0]}: '{' '.join(argv)}' failed (exit {p.returncode}): "
                         f"{(p.stderr or p.stdout).strip()[-600:]}")
    return p.stdout


def parse_depends(text: str, prefix: str = "linux-image-") -> str | None:
    """The kernel package a metapackage depends on, from ``apt-cache depends`` output."""
    for line in text.splitlines():
        m = re.match(r"\s*\|?Depends:\s*(\S+)", line)
        if m and m.group(1).startswith(prefix) and not m.group(1).startswith("<"):
            return m.group(1)
    return None


def parse_candidate(text: str) -> str | None:
    """The candidate version in ``apt-cache policy`` output ("(none)" when apt knows no version)."""
    m = re.search(r"^\s*Candidate:\s*(\S+)", text, re.M)
    return m.group(1) if m and m.group(1) != "(none)" else None


def resolve(package: str = KERNEL_PACKAGE) -> tuple[str, str]:
    """(kernel package, version) that apt would install today for ``package``."""
    hint = "(apt's package lists may be missing: run 'apt-get update')"
    name = package
    if not re.match(r"linux-image-\d", package):
        name = parse_depends(_run(["apt-cache", "depends", package], what="resolving the kernel")) or ""
        if not name:
            raise ImageError(f"apt-cache knows no kernel package behind {package} {hint}")
    version = parse_candidate(_run(["apt-cache", "policy", name], what="resolving the kernel"))
    if not version:
        raise ImageError(f"apt-cache has no candidate version of {name} {hint}")
    return name, version


def cached(root: Path | None = None) -> list[Image]:
    """Complete images in the cache, newest first."""
    root = root or cache_dir()
    found = []
    for d in sorted(root.glob("linux-image-*"), key=lambda p: p.stat().st_mtime, reverse=True):
        img = _load(d)
        if img:
            found.append(img)
    return found


def _load(d: Path) -> Image | None:
    try:
        manifest = json.loads((d / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    img = Image(d, manifest)
    if manifest.get("format") != FORMAT or not img.kernel.is_file() or not img.initrd.is_file():
        return None
    return img


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def ensure(package: str = KERNEL_PACKAGE, *, busybox: Path, progress: Callable[[str], None] = print) -> Image:
    """The image of the kernel apt offers for ``package``, built once and cached. Without apt's
    lists (offline), the newest cached image is used, and ``progress`` says so."""
    root = cache_dir()
    try:
        name, version = resolve(package)
        target = root.resolve() / f"{name}_{version}"  # resolved: the guest follows no host symlink
    except ImageError as exc:
        have = cached(root)
        if not have:
            raise
        progress(f"{exc}; using the cached {have[0].describe()}")
        # the same path as a resolved one: an initramfs of an older init.sh is refreshed
        name, version, target = have[0].manifest["package"], have[0].manifest["version"], have[0].root.resolve()
    with _locked(root):
        img = _load(target)
        if img and img.manifest.get("init_sha256") == init_digest():
            return img
        if img:  # the kernel is there, the initramfs is of an older init.sh: rebuild only that
            progress(f"refreshing the initramfs of {img.describe()} (cnibench's init.sh changed)")
            manifest = dict(img.manifest)
            tree = target / "tree"
            manifest["boot_modules"] = _initramfs(target, tree, img.release, busybox, tree / "lib/modules" / img.release)
            manifest["init_sha256"] = init_digest()
            _write_manifest(target, manifest)
            return Image(target, manifest)
        progress(f"building the guest image of {name} {version} in {target} (once per kernel version)")
        scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            manifest = _build(scratch, name, version, busybox, target, progress)
            _write_manifest(scratch, manifest)
            if target.exists():  # an incomplete or older-format image
                shutil.rmtree(target)
            scratch.rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    img = _load(target)
    if img is None:  # pragma: no cover - the build wrote what _load reads
        raise ImageError(f"the image in {target} is incomplete after its build")
    return img


def init_digest() -> str:
    return hashlib.sha256(_init_template().encode()).hexdigest()


def _init_template() -> str:
    return resources.files("cnibench.lab.vm").joinpath("init.sh").read_text()


def _write_manifest(d: Path, manifest: dict) -> None:
    tmp = d / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.rename(d / MANIFEST)


def _build(d: Path, name: str, version: str, busybox: Path, final: Path, progress: Callable[[str], None]) -> dict:
    t0 = time.monotonic()
    _run(["apt-get", "download", f"{name}={version}"], cwd=d, what=f"downloading {name} {version}")
    debs = list(d.glob("*.deb"))
    if len(debs) != 1:
        raise ImageError(f"apt-get download {name}={version} left {len(debs)} .deb files in {d}")
    deb = debs[0]
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    size = deb.stat().st_size
    progress(f"downloaded {deb.name} ({size / 1e6:.1f} MB, sha256 {digest[:16]}...); unpacking")
    tree = d / "tree"
    _run(["dpkg-deb", "-x", str(deb), str(tree)], what="unpacking the kernel package")
    deb.unlink()
    releases = [p.name for p in (tree / "lib/modules").iterdir()] if (tree / "lib/modules").is_dir() else []
    if len(releases) != 1:
        raise ImageError(f"{name} holds {len(releases)} module trees under lib/modules, expected one")
    release = releases[0]
    _run(["depmod", "-b", str(tree), release], what="indexing the kernel modules")  # the package's postinst would
    vmlinuz = tree / "boot" / f"vmlinuz-{release}"
    kernel = _uncompressed_kernel(vmlinuz, d / "vmlinux")
    if kernel is None:
        kernel = d / "vmlinuz"
        shutil.copy2(vmlinuz, kernel)
    shutil.rmtree(tree / "usr", ignore_errors=True)  # docs only
    for p in (tree / "boot").glob("vmlinuz-*"):
        p.unlink()
    modules = _initramfs(d, tree, release, busybox, final / "tree/lib/modules" / release)
    progress(f"guest image ready: Linux {release}, {kernel.name} ({time.monotonic() - t0:.0f} s)")
    return {"format": FORMAT, "package": name, "version": version, "kernel_release": release,
            "source": f"apt-get download {name}={version}", "deb": deb.name, "deb_sha256": digest,
            "deb_bytes": size, "kernel": kernel.name, "initrd": "initrd.cpio", "boot_modules": modules,
            "modules_dir": f"tree/lib/modules/{release}", "busybox": str(busybox),
            "init_sha256": init_digest(), "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _uncompressed_kernel(vmlinuz: Path, out: Path) -> Path | None:
    """The ELF kernel inside an XZ-compressed bzImage: qemu boots it directly (PVH entry, the
    kernel's CONFIG_PVH), which skips the decompressor (13 s against 5 s to /init under
    emulation, issue 16). None if it is not XZ-compressed or not an ELF image."""
    data = vmlinuz.read_bytes()
    at = data.find(XZ_MAGIC)
    if at < 0:
        return None
    try:
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[at:])
    except lzma.LZMAError:
        return None
    if not elf.startswith(ELF_MAGIC):
        return None
    out.write_bytes(elf)
    return out


def boot_module_files(tree: Path, release: str, modules: tuple[str, ...] = BOOT_MODULES) -> list[Path]:
    """The module files to load, in load order, dependencies first, each once (``modprobe
    --show-depends`` takes one module per call)."""
    files: list[Path] = []
    for m in modules:
        out = _run(["modprobe", "-d", str(tree), "-S", release, "--show-depends", m], what=f"resolving module {m}")
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "insmod" and Path(parts[1]) not in files:
                files.append(Path(parts[1]))
    return files


def _initramfs(d: Path, tree: Path, release: str, busybox: Path, moddir: Path) -> list[str]:
    """Write ``initrd.cpio`` (newc, as the kernel's initramfs wants): static busybox, the boot
    modules, /init and the on-demand modprobe helper. Returns the module file names."""
    ir = d / "initramfs"
    shutil.rmtree(ir, ignore_errors=True)
    for sub in ("bin", "dev", "proc", "sys", "lib/modules"):
        (ir / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, ir / "bin" / "busybox")
    names = []
    for src in boot_module_files(tree, release):
        name = src.name.removesuffix(".xz")
        if not name.endswith(".ko"):
            raise ImageError(f"module {src} is compressed in a format busybox insmod cannot load")
        data = lzma.decompress(src.read_bytes()) if src.suffix == ".xz" else src.read_bytes()
        (ir / "lib/modules" / name).write_bytes(data)
        names.append(name)
    init = _init_template()
    init = init.replace("@MODULES@", " ".join(names)).replace("@KVER@", release).replace("@MODDIR@", str(moddir))
    left = re.findall(r"@[A-Z]+@", init)
    if left:  # pragma: no cover - the template and this function go together
        raise ImageError(f"init.sh has unfilled placeholders {left}")
    (ir / "init").write_text(init)
    (ir / "modprobe-helper").write_text('#!/bin/busybox sh\nexec /bin/busybox chroot /newroot /sbin/modprobe "$@"\n')
    for f in ("init", "modprobe-helper", "bin/busybox"):
        (ir / f).chmod(0o755)
    listing = sorted(str(p.relative_to(ir)) for p in ir.rglob("*"))
    with open(d / ".initrd.cpio.tmp", "wb") as out:
        p = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"], cwd=ir, input="\n".join(listing).encode(),
                           stdout=out, stderr=subprocess.PIPE, timeout=120)
    if p.returncode != 0:
        raise ImageError(f"cpio failed building the initramfs: {p.stderr.decode(errors='replace').strip()}")
    (d / ".initrd.cpio.tmp").rename(d / "initrd.cpio")
    shutil.rmtree(ir)
    return names
