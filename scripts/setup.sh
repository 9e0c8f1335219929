#!/usr/bin/env bash
# Installs everything cnibench needs on a Debian/Ubuntu machine (run as root):
# the lab's kernel tools and benchmark programs from Debian packages, and a Python
# virtualenv in .venv with the pinned requirements and the cnibench package.
# --vm: also what `cnibench lab --vm` needs (qemu, a static busybox, cpio, wireguard-tools,
# ipvsadm); the kernel itself is fetched by the first `lab --vm` run (apt-get download, cached).
set -euo pipefail
vm=0
for arg in "$@"; do
  case "$arg" in
    --vm) vm=1 ;;
    *) echo "scripts/setup.sh: unknown argument '$arg' (valid: --vm)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/setup.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

packages=(
  python3 python3-venv python3-pip
  iproute2 iptables nftables procps kmod iputils-ping sudo
  iperf3 nginx-light sockperf wrk containernetworking-plugins
)
if [ "$vm" -eq 1 ]; then
  packages+=(qemu-system-x86 busybox-static cpio wireguard-tools ipvsadm)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# lab --vm resolves the kernel through apt's package lists: make sure there are some
if [ "$vm" -eq 1 ] && ! apt-cache policy linux-image-amd64 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  apt-get update -qq
fi
# nginx-light's package starts a system nginx on port 80; the lab runs its own instances.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -e .
echo "setup: ready (.venv/bin/cnibench)"
