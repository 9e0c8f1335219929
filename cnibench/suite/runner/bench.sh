#!/usr/bin/env bash
# cnibench benchmark runner, run as root on the control plane by cnibench/program/benchmark.py,
# and on the operator's machine by `cnibench run` (cnibench/suite/cluster.py) for an existing
# cluster: the same script, only kubectl's target differs. KUBECONFIG (default: the control
# plane's /etc/kubernetes/admin.conf) and BENCH_KUBE_CONTEXT (plan.env or the environment; empty:
# the kubeconfig's current context, `kubectl --context`) say which cluster.
#
# Usage: bench.sh WORKDIR
#   WORKDIR holds plan.env (settings), steps.tsv (the suite, from cnibench/suite/plan.py),
#   manifests.json (namespace, pods, service), probe.sh, wrk-report.lua and collect.py.
#
# Creates the benchmark pods, measures the host network's maxima once (the calibration steps of
# steps.tsv), then runs BENCH_REPEAT repetitions; a repetition runs, for each subject in
# BENCH_SUBJECTS (host first, then the variant), a background-load guard (/proc/stat of both
# nodes over BENCH_GUARD_SECONDS) and then every step of that subject, each under a timeout.
# The CPU test also samples both nodes' idle load just before it and their /proc/stat around
# it. Every error is recorded instead of stopping. The namespace (pods and service) is deleted
# whatever happens (EXIT trap). stdout carries exactly one JSON document (collect.py); progress
# goes to stderr. The exit status is 0 once the plan is read: failures are in the document, so
# that they reach the stack output.
#
# steps.tsv (tab-separated, "-" for an unused field; the column list is plan.TSV_COLUMNS):
#   id phase tool mode client target duration timeout omit streams proto size rate connections
#   reply_every calibration fraction idle
set -u -o pipefail

W=${1:?usage: bench.sh WORKDIR}
# shellcheck source=/dev/null
. "$W/plan.env"
export KUBECONFIG="${KUBECONFIG:-/etc/kubernetes/admin.conf}"
# every kubectl call: `"${K[@]}" ARGS` (an array, so that `timeout` can run it too)
K=(kubectl)
if [ -n "${BENCH_KUBE_CONTEXT:-}" ]; then K+=(--context "$BENCH_KUBE_CONTEXT"); fi
R="$W/raw"
mkdir -p "$R/pods" "$R/runs" "$R/calib" "$R/guards"

log() { printf '%s cnibench-bench: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
note_error() { printf '%s\n' "$*" >>"$R/errors"; log "error: $*"; }
fatal() { printf '%s\n' "$*" >"$R/fatal"; log "fatal: $*"; exit 0; }
kc() { "${K[@]}" --request-timeout=60s -n "$BENCH_NAMESPACE" "$@"; }

cleanup() {
    local pod
    if [ -n "${token:-}" ]; then
        for pod in $BENCH_CLIENT_HOST_POD $BENCH_SERVER_HOST_POD; do
            kc exec "$pod" -- rm -rf "/cnibench-debs/$token" </dev/null >/dev/null 2>&1 || true
        done
    fi
    log "deleting namespace $BENCH_NAMESPACE (benchmark pods and service)"
    if ! "${K[@]}" --request-timeout=60s delete namespace "$BENCH_NAMESPACE" --ignore-not-found \
        --wait=true --timeout=300s >/dev/null 2>"$R/cleanup.err"; then
        note_error "clean-up: namespace $BENCH_NAMESPACE not deleted: $(tail -c 300 "$R/cleanup.err")"
    fi
}

# Run "$@" in the background and wait for it: bash runs a signal's trap only once the foreground
# command is done, but interrupts `wait` at once. The long commands (the pods' start-up, every
# step) run this way, so that Ctrl-C or SIGTERM stops a run within seconds; finish() stops the
# command (`timeout` forwards the signal to kubectl; it runs in a process group of its own, so a
# signal to bench.sh's group does not reach it).
# The traps run inside the interrupted call, under its redirections (a step's >out 2>err): they
# put back the script's own stdout and stderr, kept as fds 8 and 9, which the commands do not get.
exec 8>&1 9>&2
child_pid=""
interruptible() {
    local rc
    # 0<&0: without job control bash gives a background command /dev/null as its stdin unless
    # the command redirects it itself (bash(1), "Lists"); the MTU probe reads its script from it
    "$@" 0<&0 8>&- 9>&- &
    child_pid=$!
    wait "$child_pid"
    rc=$?
    child_pid=""
    return "$rc"
}

finish() {
    trap - EXIT INT TERM HUP
    exec 1>&8 2>&9
    if [ -n "$child_pid" ]; then
        kill -TERM "$child_pid" 2>/dev/null
        wait "$child_pid" 2>/dev/null
    fi
    cleanup
    date -u +%s >"$R/finished"
    if command -v python3 >/dev/null 2>&1; then
        python3 "$W/collect.py" "$W"
    else
        printf '{"format": "%s", "fatal": "python3 is missing on the control plane"}\n' "$BENCH_RAW_FORMAT"
    fi
}
trap finish EXIT
trap 'exec 1>&8 2>&9; note_error "interrupted by a signal"; exit 0' INT TERM HUP

date -u +%s >"$R/started"
deadline=$(($(date +%s) + BENCH_TIMEOUT))

# ---------------------------------------------------------------- cluster facts
command -v kubectl >/dev/null 2>&1 || fatal "kubectl not found on the control plane"  # the K array runs it
"${K[@]}" --request-timeout=60s version -o json >"$R/k8s-version.json" 2>"$R/k8s-version.err" ||
    fatal "the API server does not answer: $(tail -c 300 "$R/k8s-version.err")"
"${K[@]}" --request-timeout=60s get nodes -o json >"$R/nodes.json" 2>/dev/null || true
"${K[@]}" --request-timeout=60s -n kube-system get daemonsets -o \
    jsonpath='{range .items[*]}{.metadata.name}{"="}{range .spec.template.spec.containers[*]}{.image}{" "}{end}{"\n"}{end}' \
    >"$R/ds-images.txt" 2>/dev/null || true

# ---------------------------------------------------------------- pods
log "removing leftovers of an earlier run, if any"
"${K[@]}" --request-timeout=60s delete namespace "$BENCH_NAMESPACE" --ignore-not-found --wait=true \
    --timeout=300s >/dev/null 2>&1 || true
log "creating the benchmark pods"
# a token of this execution names the pods' package directory on the nodes (pod-setup.sh)
token="run-$(date +%s)-$$"
sed "s/@RUN_TOKEN@/$token/g" "$W/manifests.json" >"$R/manifests.json"
"${K[@]}" --request-timeout=60s apply -f "$R/manifests.json" >"$R/apply.out" 2>&1 ||
    fatal "creating the benchmark pods failed: $(tail -c 500 "$R/apply.out")"

# one wait for all pods, so that the whole start-up is bounded by BENCH_POD_TIMEOUT
read -r -a pods <<<"$BENCH_PODS"
interruptible kc wait --for=condition=Ready "${pods[@]/#/pod/}" --timeout="${BENCH_POD_TIMEOUT}s" \
    >/dev/null 2>"$R/pods-wait.err" </dev/null || log "not every pod is ready after ${BENCH_POD_TIMEOUT}s"
for pod in $BENCH_PODS; do
    if [ "$(kc get pod "$pod" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; then
        echo 1 >"$R/pods/$pod.ready"
        log "pod $pod is ready"
    else
        echo 0 >"$R/pods/$pod.ready"
        {
            kc get pod "$pod" -o jsonpath='phase={.status.phase} {range .status.containerStatuses[*]}{.state}{end}'
            echo
            kc logs "$pod" --tail=20
        } >"$R/pods/$pod.error" 2>&1
        note_error "pod $pod not ready after ${BENCH_POD_TIMEOUT}s"
    fi
    kc get pod "$pod" -o jsonpath='{.spec.nodeName} {.status.podIP}' >"$R/pods/$pod.info" 2>/dev/null || true
done

is_ready() { [ "$(cat "$R/pods/$1.ready" 2>/dev/null)" = 1 ]; }

for pod in $BENCH_PODS; do
    if is_ready "$pod"; then
        kc exec -i "$pod" -- sh -s <"$W/probe.sh" >"$R/pods/$pod.probe" 2>&1 || note_error "probing $pod failed"
    fi
done
# wrk's report script, into every client pod (wrk -s reads it there)
for pod in $BENCH_CLIENT_PODS; do
    if is_ready "$pod"; then
        kc exec -i "$pod" -- sh -c "cat >$BENCH_WRK_SCRIPT" <"$W/wrk-report.lua" >/dev/null 2>&1 ||
            note_error "copying wrk-report.lua into $pod failed"
    fi
done
kc get service "$BENCH_SERVICE" -o jsonpath='{.spec.clusterIP}' >"$R/service-ip" 2>/dev/null || true

target_ip() {
    if [ "$1" = "$BENCH_SERVICE" ]; then
        cat "$R/service-ip" 2>/dev/null
    else
        is_ready "$1" && cut -d' ' -f2 "$R/pods/$1.info" 2>/dev/null
    fi
}

# the hostNetwork pod of a node role: it reads that node's /proc (/proc/stat is not per namespace)
node_pod() { if [ "$1" = client ]; then echo "$BENCH_CLIENT_HOST_POD"; else echo "$BENCH_SERVER_HOST_POD"; fi; }

# /proc/stat's first line of both nodes, read at the same time: PREFIX.client, PREFIX.server
snapshot() {
    local who pod
    for who in client server; do
        pod=$(node_pod "$who")
        is_ready "$pod" || continue
        kc exec "$pod" -- head -n 1 /proc/stat >"$1.$who" 2>/dev/null </dev/null &
    done
    wait
}

# both nodes' /proc/stat first line, SECONDS apart, each pair read inside its node (the exec's
# own start-up is outside the window): PREFIX.client, PREFIX.server, two lines each
sample_load() {
    local who pod
    for who in client server; do
        pod=$(node_pod "$who")
        is_ready "$pod" || continue
        # shellcheck disable=SC2016  # $1 is expanded by the pod's shell
        kc exec "$pod" -- sh -c 'head -n 1 /proc/stat; sleep "$1"; head -n 1 /proc/stat' sh "$2" \
            >"$1.$who" 2>/dev/null </dev/null &
    done
    wait
}

# ---------------------------------------------------------------- background-load guard
g=0
guard() {
    local rep=$1 subject=$2 d
    g=$((g + 1))
    d=$(printf '%s/guards/%04d' "$R" "$g")
    mkdir -p "$d"
    printf 'rep=%s\nsubject=%s\nseconds=%s\n' "$rep" "$subject" "$BENCH_GUARD_SECONDS" >"$d/meta"
    if (($(date +%s) + 30 > deadline)); then
        printf 'skipped=benchmarkTimeout (%ss) reached\n' "$BENCH_TIMEOUT" >>"$d/meta"
        return
    fi
    sample_load "$d/load" "$BENCH_GUARD_SECONDS"
}

# ---------------------------------------------------------------- calibration values
# the host's maximum, from a calibration step's output, into $R/calib/NAME (read by later steps)
calibrated() {
    local name=$1 tool=$2 out=$3 value=""
    case $tool in
        sockperf)
            # "sockperf: Summary: Message Rate is 488547 [msg/sec]" (sockperf 3.7, throughput mode)
            value=$(sed -n 's/.*Summary: Message Rate is \([0-9][0-9.]*\) \[msg\/sec\].*/\1/p' "$out" | tail -n 1)
            ;;
        iperf3)
            value=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"])' \
                "$out" 2>/dev/null)
            ;;
    esac
    if awk -v v="$value" 'BEGIN { exit !(v + 0 > 0) }'; then
        printf '%s\n' "$value" >"$R/calib/$name"
        log "calibration $name = $value"
    else
        note_error "calibration $name on the host network failed: no rate in the output of $tool"
    fi
}

# ---------------------------------------------------------------- one step
n=0
run_step() {
    local rep=$1 id=$2 phase=$3 tool=$4 mode=$5 client=$6 target=$7 dur=$8 to=$9 omit=${10} streams=${11}
    local proto=${12} size=${13} rate=${14} conns=${15} every=${16} calib=${17} frac=${18} idle=${19}
    local d ip rc base="" mps mbit
    n=$((n + 1))
    d=$(printf '%s/runs/%04d' "$R" "$n")
    mkdir -p "$d"
    printf 'id=%s\nrep=%s\nphase=%s\ntool=%s\nmode=%s\n' "$id" "$rep" "$phase" "$tool" "$mode" >"$d/meta"
    skip() { printf 'skipped=%s\n' "$1" >>"$d/meta"; log "skip $id (rep $rep): $1"; }
    if ! is_ready "$client"; then skip "client pod $client is not ready"; return; fi
    ip=$(target_ip "$target")
    if [ -z "$ip" ]; then skip "no address for $target (not ready)"; return; fi
    if (($(date +%s) + to > deadline)); then skip "benchmarkTimeout (${BENCH_TIMEOUT}s) reached"; return; fi
    if [ "$calib" != - ]; then
        base=$(cat "$R/calib/$calib" 2>/dev/null)
        if [ -z "$base" ]; then skip "no reference rate: the host calibration $calib failed"; return; fi
        printf 'calibration_value=%s\n' "$base" >>"$d/meta"
    fi
    printf 'target=%s\n' "$ip" >>"$d/meta"

    local args=()
    case $tool in
        iperf3)
            args=(iperf3 -J -c "$ip" -p "$BENCH_IPERF3_PORT" -t "$dur" -O "$omit" -P "$streams")
            if [ "$proto" = udp ]; then args+=(-u -l "$size"); fi
            if [ "$rate" != - ]; then args+=(-b "$rate"); fi
            if [ "$mode" = cpu ]; then
                # the offered rate: a fraction of the host's TCP maximum (bits/s), in whole Mbit/s
                mbit=$(awk -v b="$base" -v f="$frac" 'BEGIN { v = b * f / 1e6; if (v < 1) v = 1; printf "%.0f", v }')
                args+=(-b "${mbit}M")
                printf 'offered_mbit=%s\n' "$mbit" >>"$d/meta"
            fi
            ;;
        sockperf)
            args=(sockperf "$mode" -i "$ip" -p "$BENCH_SOCKPERF_PORT" -t "$dur" -m "$size")
            if [ "$proto" = tcp ]; then args+=(--tcp); fi
            if [ "$mode" = throughput ]; then args+=(--mps max); fi
            if [ "$mode" = under-load ]; then
                # the offered rate: a fraction of the host's maximum message rate, whole messages/s
                mps=$(awk -v b="$base" -v f="$frac" 'BEGIN { v = int(b * f); if (v < 1) v = 1; printf "%d", v }')
                args+=(--mps "$mps" --reply-every "$every")
                printf 'target_rate=%s\n' "$mps" >>"$d/meta"
            fi
            ;;
        wrk)
            args=(wrk -t1 "-c$conns" "-d${dur}s" --timeout "$BENCH_WRK_TIMEOUT" -s "$BENCH_WRK_SCRIPT")
            if [ "$mode" = close ]; then args+=(-H "Connection: close"); fi
            args+=("http://$ip:$BENCH_HTTP_PORT/$size")
            ;;
        mtu) ;;
        *)
            skip "unknown tool $tool"
            return
            ;;
    esac

    log "run $id (rep $rep) -> $ip"
    if [ "$mode" = cpu ]; then
        sample_load "$d/idle" "$idle"
        snapshot "$d/before"
    fi
    printf 'started=%s\n' "$(date +%s)" >>"$d/meta"
    if [ "$tool" = mtu ]; then
        # the MTU of the client's default-route interface, as the probe reads it
        interruptible timeout -k 10 "$to" "${K[@]}" --request-timeout=0 -n "$BENCH_NAMESPACE" exec -i "$client" -- \
            sh -s <"$W/probe.sh" >"$d/out" 2>"$d/err"
        rc=$?
    else
        interruptible timeout -k 10 "$((to + 15))" "${K[@]}" --request-timeout=0 -n "$BENCH_NAMESPACE" exec "$client" -- \
            timeout -k 5 "$to" "${args[@]}" >"$d/out" 2>"$d/err" </dev/null
        rc=$?
    fi
    printf 'ended=%s\nrc=%s\n' "$(date +%s)" "$rc" >>"$d/meta"
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then printf 'timed_out=1\n' >>"$d/meta"; fi
    if [ "$mode" = cpu ]; then snapshot "$d/after"; fi

    if [ "$phase" = calibration ]; then
        if [ "$rc" = 0 ]; then
            calibrated "${id#*/}" "$tool" "$d/out"
        else
            note_error "calibration ${id#*/} on the host network failed: $tool exited with $rc"
        fi
    fi
    return 0
}

# every step of PHASE (and of SUBJECT, unless "*") in steps.tsv, for repetition REP
run_steps() {
    local rep=$1 phase=$2 subject=$3
    local id ph tool mode client target dur to omit streams proto size rate conns every calib frac idle
    # the steps are read from fd 3: nothing in the loop can eat them from stdin
    while IFS=$'\t' read -r -u 3 id ph tool mode client target dur to omit streams proto size rate conns every \
        calib frac idle; do
        case $id in '#'* | '') continue ;; esac
        [ "$ph" = "$phase" ] || continue
        if [ "$subject" != "*" ] && [ "${id%%/*}" != "$subject" ]; then continue; fi
        run_step "$rep" "$id" "$ph" "$tool" "$mode" "$client" "$target" "$dur" "$to" "$omit" "$streams" "$proto" \
            "$size" "$rate" "$conns" "$every" "$calib" "$frac" "$idle" </dev/null
    done 3<"$W/steps.tsv"
}

# ---------------------------------------------------------------- the suite
log "calibrating the offered rates on the host network"
run_steps 0 calibration "*"

for ((rep = 0; rep < BENCH_REPEAT; rep++)); do
    log "repetition $((rep + 1)) of $BENCH_REPEAT"
    for subject in $BENCH_SUBJECTS; do
        guard "$rep" "$subject"
        run_steps "$rep" test "$subject"
    done
done
log "suite done"
