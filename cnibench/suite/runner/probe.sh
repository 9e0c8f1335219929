#!/bin/sh
# Describe the node (hostNetwork pod) or the pod network (other pods) this runs in, as
# key=value lines: kernel, CPUs, memory, the default route's interface and its MTU, tool versions.
# Run by bench.sh through `kubectl exec -i POD -- sh -s < probe.sh` (POSIX sh, Debian's dash).
echo "kernel=$(uname -r)"
echo "cpus=$(nproc --all)"
echo "cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "mem_total_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
# default route: destination 00000000 in /proc/net/route (no iproute2 in the slim image)
iface=$(awk '$2 == "00000000" {print $1; exit}' /proc/net/route)
echo "iface=$iface"
if [ -n "$iface" ] && [ -r "/sys/class/net/$iface/mtu" ]; then
    echo "mtu=$(cat "/sys/class/net/$iface/mtu")"
fi
echo "iperf3=$(iperf3 --version 2>/dev/null | head -n1)"
echo "hey=$(dpkg-query -W -f='${Version}' hey 2>/dev/null)"
echo "nginx=$(dpkg-query -W -f='${Version}' nginx-light 2>/dev/null)"
