#!/usr/bin/env bash
# Wait until the instance has finished booting (cloud-init done), so that apt and systemd are
# free for the next steps. Runs as root over SSH (components/cluster.py). No inputs.
#
# `cloud-init status --wait` exits 0 when done, 2 when done with recoverable errors
# ("degraded"), 1 on a critical failure (cloud-init docs, "cloud-init status" reference).
set -uo pipefail

status=0
cloud-init status --wait >/dev/null || status=$?
if [ "$status" -eq 1 ]; then
    echo "cloud-init failed on $(hostname):" >&2
    cloud-init status --long >&2 || true
    exit 1
fi
echo "booted: $(hostname), kernel $(uname -r)"
