#!/bin/sh
# Describe the node (hostNetwork pod) or the pod network (other pods) this runs in, as
# key=value lines: kernel, CPUs, memory, the default route's interface and its MTU, tool versions.
# Run by bench.sh through `kubectl exec -i POD -- sh -s < probe.sh` (POSIX sh, Debian's dash),
# once per pod after start-up and as the `mtu` test of every repetition (the interface MTU in
# effect: the image has no ping, so the path MTU is not probed in the cloud).
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
# the NIC behind it, from sysfs (the slim image has no ethtool, so offload settings are not read):
# driver (ena on Nitro), its version, the queue counts and the largest GSO packet
if [ -n "$iface" ] && [ -e "/sys/class/net/$iface/device/driver" ]; then
    driver=$(basename "$(readlink -f "/sys/class/net/$iface/device/driver")")
    echo "nic_driver=$driver"
    if [ -r "/sys/module/$driver/version" ]; then
        echo "nic_driver_version=$(cat "/sys/module/$driver/version")"
    fi
fi
if [ -n "$iface" ] && [ -d "/sys/class/net/$iface/queues" ]; then
    echo "nic_rx_queues=$(find "/sys/class/net/$iface/queues" -maxdepth 1 -name 'rx-*' | wc -l)"
    echo "nic_tx_queues=$(find "/sys/class/net/$iface/queues" -maxdepth 1 -name 'tx-*' | wc -l)"
fi
if [ -n "$iface" ] && [ -r "/sys/class/net/$iface/gso_max_size" ]; then
    echo "gso_max_size=$(cat "/sys/class/net/$iface/gso_max_size")"
fi
# tool versions: the Debian package versions (what was installed), iperf3's own line too
echo "iperf3=$(iperf3 --version 2>/dev/null | head -n1)"
echo "iperf3_deb=$(dpkg-query -W -f='${Version}' iperf3 2>/dev/null)"
echo "sockperf=$(dpkg-query -W -f='${Version}' sockperf 2>/dev/null)"
echo "wrk=$(dpkg-query -W -f='${Version}' wrk 2>/dev/null)"
echo "nginx=$(dpkg-query -W -f='${Version}' nginx-light 2>/dev/null)"
