#!/bin/bash
# Reproduces the knb reports in tests/data/knb (see README.md there).
#
#   sudo tests/data/knb/make_fixtures.sh measure WORKDIR
#       Measures five knb-style runs on this machine and writes their raw data directories
#       (the layout of knb's "-o data" archives) to WORKDIR/*.knbdata.
#   tests/data/knb/make_fixtures.sh render KNB_SCRIPT WORKDIR [OUTDIR]
#       Renders the reports with the real knb script (v1.5.0) in its report mode,
#       "knb -fd DIR -o json|text|yaml", into OUTDIR (default: the directory of this script).
#   sudo tests/data/knb/make_fixtures.sh all KNB_SCRIPT WORKDIR [OUTDIR]
#       Both.
#
# knb itself is not part of this repository; fetch it from github.com/InfraBuilder/k8s-bench-suite
# (tag v1.5.0, file "knb") and give its path.
#
# What a knb run does on a cluster and what stands for it here:
#   * the client and server pods are two network namespaces joined by a veth pair (run 2: a
#     VXLAN device on top of it); traffic only flows between those two namespaces;
#   * the Kubernetes service is a DNAT rule in the client namespace (10.96.0.10:5201 -> the
#     server "pod", TCP and UDP);
#   * the server pod runs "iperf3 -s"; each client pod runs knb's command for its test
#     (idle: "sleep D; echo 0 0 0 0 0 0 0 receiver"; tcp: "iperf3 -c T -O 1 -f m -t D";
#     udp: "iperf3 -u -b 0 -c T -O 1 [-w SBS] -f m -t D"); its output is the pod log, and the
#     ".bw" file is field 7 of its "receiver" line, as knb extracts it;
#   * the two monitor pods (image infrabuilder/bench-custom-monitor) become two loops on this
#     machine running the same sampling as the image's monit.sh (one "sar 1 1" average and
#     "free -m" used memory per line, with a timestamp); per test, the samples between the
#     test's start and start + D are selected as the image's stats.sh does (".metrics") and
#     averaged the way knb averages them (".avg");
#   * cpu, kernel and mtu are read with knb's commands inside the server namespace.
# Both "nodes" are this one machine, so client and server CPU/RAM figures are the same host.
#
# shellcheck disable=SC2317  # cleanup is invoked by the trap
set -euo pipefail
export LC_ALL=C

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DURATION="${DURATION:-10}"           # knb's default -d
NS_CLI="knbfx-client"
NS_SRV="knbfx-server"
CLI_IP="10.244.0.2"
SRV_IP="10.244.0.3"
SVC_IP="10.96.0.10"
EXECID="$$"                          # knb names its pods after its PID
CPU_LABEL_CNI="cnibench-lab"

MON_PIDS=()
IPERF_PIDFILE=""

usage() {
	sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

log() { echo "$(date -u '+%H:%M:%S') $*" >&2; }

stop_monitors() {
	local pid
	for pid in "${MON_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	MON_PIDS=()
}

stop_server() {
	if [ -n "$IPERF_PIDFILE" ] && [ -s "$IPERF_PIDFILE" ]; then
		kill "$(cat "$IPERF_PIDFILE")" 2>/dev/null || true
		rm -f "$IPERF_PIDFILE"
	fi
	IPERF_PIDFILE=""
}

teardown() {
	stop_server
	ip netns del "$NS_CLI" 2>/dev/null || true
	ip netns del "$NS_SRV" 2>/dev/null || true
}

cleanup() {
	stop_monitors
	teardown
}

# ---------------------------------------------------------------------------- topology

# setup veth|vxlan: the two "pods"; the server pod address is SRV_IP in both cases.
setup() {
	local kind=$1 cdev sdev
	teardown
	ip netns add "$NS_CLI"
	ip netns add "$NS_SRV"
	ip link add knbfx-c type veth peer name knbfx-s
	ip link set knbfx-c netns "$NS_CLI"
	ip link set knbfx-s netns "$NS_SRV"
	ip -n "$NS_CLI" link set lo up
	ip -n "$NS_SRV" link set lo up
	ip -n "$NS_CLI" link set knbfx-c up
	ip -n "$NS_SRV" link set knbfx-s up
	if [ "$kind" = vxlan ]; then
		# underlay on the veth pair, overlay (VNI 42, MTU 1450) carries the pod addresses
		ip -n "$NS_CLI" addr add 192.168.77.1/24 dev knbfx-c
		ip -n "$NS_SRV" addr add 192.168.77.2/24 dev knbfx-s
		ip -n "$NS_CLI" link add vxlan42 type vxlan id 42 local 192.168.77.1 remote 192.168.77.2 dstport 4789 dev knbfx-c
		ip -n "$NS_SRV" link add vxlan42 type vxlan id 42 local 192.168.77.2 remote 192.168.77.1 dstport 4789 dev knbfx-s
		ip -n "$NS_CLI" link set vxlan42 mtu 1450 up
		ip -n "$NS_SRV" link set vxlan42 mtu 1450 up
		cdev=vxlan42 sdev=vxlan42
	else
		cdev=knbfx-c sdev=knbfx-s
	fi
	ip -n "$NS_CLI" addr add "$CLI_IP/24" dev "$cdev"
	ip -n "$NS_SRV" addr add "$SRV_IP/24" dev "$sdev"
	ip -n "$NS_CLI" route add default dev "$cdev"
	ip -n "$NS_SRV" route add default dev "$sdev"
}

# service PROTO_UDP_TARGET_PORT: the "service" 10.96.0.10:5201 in the client namespace.
service() {
	local udp_target_port=$1 proto
	for proto in tcp udp; do
		local port=5201
		[ "$proto" = udp ] && port=$udp_target_port
		ip netns exec "$NS_CLI" iptables -t nat -A OUTPUT -d "$SVC_IP" -p "$proto" --dport 5201 \
			-j DNAT --to-destination "$SRV_IP:$port"
	done
}

start_server() {
	IPERF_PIDFILE="$(mktemp)"
	ip netns exec "$NS_SRV" iperf3 -s -D --pidfile "$IPERF_PIDFILE"
	sleep 1
}

# ---------------------------------------------------------------------------- monitors

# monitor LOGFILE: one line per "sar 1 1": user nice system iowait steal used-MB epoch
monitor() {
	local out=$1
	while true; do
		echo "$(sar 1 1 | grep Average | awk '{print $3" "$4" "$5" "$6" "$7}') $(free -m | grep Mem: | awk '{print $3}') $(date "+%s")" >>"$out"
	done
}

start_monitors() {
	local dir=$1 side
	for side in server client; do
		: >"$dir/.monitor-$side.log"
		monitor "$dir/.monitor-$side.log" &
		MON_PIDS+=("$!")
	done
	sleep 2
}

# select_samples LOG START END: the samples of one test, with the header line stats.sh prints
select_samples() {
	echo "cpu-user cpu-nice cpu-system cpu-iowait cpu-steal memory-used timestamp"
	if [ -f "$1" ]; then
		awk -v s="$2" -v e="$3" '$7 >= s && $7 <= e' "$1"
	fi
}

# average METRICS: knb's averaging (mean of every column, "%.2f" CPU, "%d" MB, sample count).
# With no sample, only the header is written: knb's awk divides by zero there, which aborts
# with gawk or the BSD awk (mawk prints "-nan" instead).
average() {
	tail -n +2 "$1" | awk '
		{ u += $1; n += $2; s += $3; i += $4; t += $5; m += $6 }
		END {
			print "cpu-user cpu-nice cpu-system cpu-iowait cpu-steal memory-used records-number"
			if (NR > 0) printf "%.2f %.2f %.2f %.2f %.2f %d %d\n", u/NR, n/NR, s/NR, i/NR, t/NR, m/NR, NR
		}'
}

# ---------------------------------------------------------------------------- one test

# run_client DIR POD TARGET idle|tcp|udp SBS MONITORED
run_client() {
	local dir=$1 pod=$2 target=$3 kind=$4 sbs=$5 monitored=$6 start end side
	local -a cmd
	case $kind in
		idle) cmd=(sh -c "sleep $DURATION; echo 0 0 0 0 0 0 0 receiver") ;;
		udp)
			cmd=(iperf3 -u -b 0 -c "$target" -O 1)
			[ "$sbs" != auto ] && cmd+=(-w "$sbs")
			cmd+=(-f m -t "$DURATION")
			;;
		tcp) cmd=(iperf3 -c "$target" -O 1 -f m -t "$DURATION") ;;
	esac
	log "$pod: ${cmd[*]}"
	start=$(date +%s)
	end=$((start + DURATION))
	# the pod log: what "kubectl logs" returns (stdout and stderr of the container)
	timeout $((DURATION + 30)) ip netns exec "$NS_CLI" "${cmd[@]}" >"$dir/$pod.log" 2>&1 || log "$pod: exit status $?"
	# knb sleeps the test duration before it waits for the pod and reads the monitors: the
	# monitors' samples up to the end of the window are in before they are selected
	while [ "$(date +%s)" -le "$end" ]; do sleep 0.5; done
	sleep 1
	{ grep receiver "$dir/$pod.log" || true; } | awk '{print $7}' >"$dir/$pod.bw"
	for side in server client; do
		if [ "$monitored" = yes ]; then
			select_samples "$dir/.monitor-$side.log" "$start" "$end" >"$dir/$pod-$side.metrics"
		else
			: >"$dir/$pod-$side.metrics"   # no monitor: "kubectl exec" into it printed nothing
		fi
		average "$dir/$pod-$side.metrics" >"$dir/$pod-$side.avg"
	done
}

# ---------------------------------------------------------------------------- one run

# run OUTDIR NAME TOPOLOGY SBS TESTS UDP_SVC_TARGET_PORT MONITORED
#   TESTS: knb's -ot list, here "all" or "p2ptcp"
run() {
	local dir=$1 name=$2 topo=$3 sbs=$4 tests=$5 udp_port=$6 monitored=$7
	local idle="" p2ptcp="" p2pudp="" p2stcp="" p2sudp="" cpu kernel mtu
	rm -rf "$dir"
	mkdir -p "$dir"
	log "run $name ($topo, socket buffer $sbs, tests $tests)"
	setup "$topo"
	service "$udp_port"
	start_server
	p2ptcp="knb-client-tcp-p2p-$EXECID"
	if [ "$tests" = all ]; then
		idle="knb-client-idle-$EXECID"
		p2pudp="knb-client-udp-p2p-$EXECID"
		p2stcp="knb-client-tcp-p2s-$EXECID"
		p2sudp="knb-client-udp-p2s-$EXECID"
	fi
	cat >"$dir/env" <<EOF
BENCHMARK_RUN_NAME="$name"
GENERATOR="knb"
VERSION="1.5.0"
BENCHMARK_DATE="$(date -u "+%Y-%m-%d %H:%M:%S")"
SERVER_NODE="lab-node-2"
CLIENT_NODE="lab-node-1"

SOCKET_BUFFER_SIZE="$sbs"

MONITOR_SERVER_POD_NAME="knb-monitor-server-$EXECID"
MONITOR_CLIENT_POD_NAME="knb-monitor-client-$EXECID"
SERVER_POD_NAME="knb-server-$EXECID"

IDLE_POD_NAME="$idle"
CLIENT_TCP_P2P_POD_NAME="$p2ptcp"
CLIENT_UDP_P2P_POD_NAME="$p2pudp"
CLIENT_TCP_P2S_POD_NAME="$p2stcp"
CLIENT_UDP_P2S_POD_NAME="$p2sudp"
EOF
	# knb reads these with "kubectl exec -i" in the server pod and stores them with an unquoted
	# echo. The published knb runs show a carriage return at the end of the two exec'd
	# one-line outputs (cpu, kernel); a local exec has none, so it is added back here.
	cpu=$(ip netns exec "$NS_SRV" grep "model name" /proc/cpuinfo | tail -n 1 | awk -F: '{print $2}')
	kernel=$(ip netns exec "$NS_SRV" uname -r)
	# shellcheck disable=SC2086  # knb's unquoted echo: trims and joins words
	echo $cpu$'\r' >"$dir/cpu"
	# shellcheck disable=SC2086
	echo $kernel$'\r' >"$dir/kernel"
	echo "none ($CPU_LABEL_CNI network namespaces, no Kubernetes)" >"$dir/k8s-version"
	mtu=$(ip netns exec "$NS_SRV" ip link | grep "UP,LOWER_UP" | grep -v LOOPBACK | grep -oE "mtu [0-9]*" | awk '{print $2}')
	# shellcheck disable=SC2086
	echo $mtu >"$dir/mtu"
	[ "$monitored" = yes ] && start_monitors "$dir"
	[ -n "$idle" ] && run_client "$dir" "$idle" "$SRV_IP" idle "$sbs" "$monitored"
	run_client "$dir" "$p2ptcp" "$SRV_IP" tcp "$sbs" "$monitored"
	[ -n "$p2pudp" ] && run_client "$dir" "$p2pudp" "$SRV_IP" udp "$sbs" "$monitored"
	[ -n "$p2stcp" ] && run_client "$dir" "$p2stcp" "$SVC_IP" tcp "$sbs" "$monitored"
	[ -n "$p2sudp" ] && run_client "$dir" "$p2sudp" "$SVC_IP" udp "$sbs" "$monitored"
	stop_monitors
	rm -f "$dir/.monitor-server.log" "$dir/.monitor-client.log"
	teardown
}

measure() {
	local work=$1
	[ "$(id -u)" -eq 0 ] || { echo "measure needs root (network namespaces)" >&2; exit 1; }
	local tool
	for tool in ip iptables iperf3 sar free awk timeout; do
		command -v "$tool" >/dev/null || { echo "missing: $tool (sysstat provides sar)" >&2; exit 1; }
	done
	mkdir -p "$work"
	trap cleanup EXIT INT TERM
	run "$work/lab-run1.knbdata" "cnibench-lab veth - MTU 1500 - Run 1" veth auto all 5201 yes
	run "$work/lab-run2-vxlan.knbdata" "cnibench-lab vxlan - MTU 1450 - Run 2" vxlan 256K all 5201 yes
	run "$work/lab-run3-only-p2ptcp.knbdata" "cnibench-lab veth - p2ptcp only - Run 3" veth auto p2ptcp 5201 yes
	# the "service" forwards UDP to a port nothing listens on: iperf3 fails, no receiver line
	run "$work/lab-run4-udp-svc-broken.knbdata" "cnibench-lab veth - broken UDP service - Run 4" veth auto all 5202 yes
	# no monitor running: the monitoring files are empty
	run "$work/lab-run5-no-monitor.knbdata" "cnibench-lab veth - no monitor - Run 5" veth auto all 5201 no
	trap - EXIT INT TERM
	log "raw data in $work"
}

# render KNB WORKDIR OUTDIR
render() {
	local knb=$1 work=$2 out=$3 run fmt ext
	[ -f "$knb" ] || { echo "no knb script at $knb" >&2; exit 1; }
	mkdir -p "$out"
	for run in lab-run1 lab-run2-vxlan lab-run3-only-p2ptcp lab-run4-udp-svc-broken lab-run5-no-monitor; do
		[ -f "$work/$run.knbdata/env" ] || { echo "no raw data $work/$run.knbdata (run measure)" >&2; exit 1; }
		for fmt in json text yaml; do
			case "$run:$fmt" in
				lab-run1:*) ;;
				lab-run5-no-monitor:text) ;;
				lab-run5-no-monitor:*) continue ;;
				*:yaml) continue ;;
			esac
			ext=$fmt
			[ "$fmt" = text ] && ext=txt
			# knb 1.5.0 ends report mode with a non-zero status (its exit takes the status of a
			# skipped log line): judge by the report it wrote
			rm -f "$out/$run.$ext"
			TERM=dumb bash "$knb" -fd "$work/$run.knbdata" -o "$fmt" -f "$out/$run.$ext" || true
			[ -s "$out/$run.$ext" ] || { echo "knb wrote no $fmt report for $run" >&2; exit 1; }
			log "wrote $out/$run.$ext"
		done
	done
}

[ $# -ge 1 ] || usage
case $1 in
	measure) [ $# -eq 2 ] || usage; measure "$2" ;;
	render) [ $# -ge 3 ] || usage; render "$2" "$3" "${4:-$HERE}" ;;
	all) [ $# -ge 3 ] || usage; measure "$3"; render "$2" "$3" "${4:-$HERE}" ;;
	*) usage ;;
esac
