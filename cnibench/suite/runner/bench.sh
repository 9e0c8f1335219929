#!/usr/bin/env bash
# cnibench benchmark runner, run as root on the control plane by components/benchmark.py.
#
# Usage: bench.sh WORKDIR
#   WORKDIR holds plan.env (settings), steps.tsv (the suite, from cnibench/bench.py),
#   manifests.json (namespace, pods, service), probe.sh, hey-reduce.awk and collect.py.
#
# Creates the benchmark pods, runs every step of steps.tsv (calibrations once, the others
# BENCH_REPEAT times, interleaved), each under a timeout, samples /proc/stat and /proc/meminfo
# of both nodes before and after each step, and records every error instead of stopping. The
# namespace (pods and service) is deleted whatever happens (EXIT trap). stdout carries exactly
# one JSON document (collect.py); progress goes to stderr. The exit status is 0 once the plan is
# read: failures are in the document, so that they reach the stack output.
set -u -o pipefail

W=${1:?usage: bench.sh WORKDIR}
# shellcheck source=/dev/null
. "$W/plan.env"
export KUBECONFIG="${KUBECONFIG:-/etc/kubernetes/admin.conf}"
R="$W/raw"
mkdir -p "$R/pods" "$R/runs"

log() { printf '%s cnibench-bench: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
note_error() { printf '%s\n' "$*" >>"$R/errors"; log "error: $*"; }
fatal() { printf '%s\n' "$*" >"$R/fatal"; log "fatal: $*"; exit 0; }
kc() { kubectl --request-timeout=60s -n "$BENCH_NAMESPACE" "$@"; }

cleanup() {
    local pod
    if [ -n "${token:-}" ]; then
        for pod in $BENCH_CLIENT_HOST_POD $BENCH_SERVER_HOST_POD; do
            kc exec "$pod" -- rm -rf "/cnibench-debs/$token" </dev/null >/dev/null 2>&1 || true
        done
    fi
    log "deleting namespace $BENCH_NAMESPACE (benchmark pods and service)"
    if ! kubectl --request-timeout=60s delete namespace "$BENCH_NAMESPACE" --ignore-not-found \
        --wait=true --timeout=300s >/dev/null 2>"$R/cleanup.err"; then
        note_error "clean-up: namespace $BENCH_NAMESPACE not deleted: $(tail -c 300 "$R/cleanup.err")"
    fi
}

finish() {
    trap - EXIT INT TERM HUP
    cleanup
    date -u +%s >"$R/finished"
    if command -v python3 >/dev/null 2>&1; then
        python3 "$W/collect.py" "$W"
    else
        printf '{"format": "%s", "fatal": "python3 is missing on the control plane"}\n' "$BENCH_RAW_FORMAT"
    fi
}
trap finish EXIT
trap 'note_error "interrupted by a signal"; exit 0' INT TERM HUP

date -u +%s >"$R/started"
deadline=$(($(date +%s) + BENCH_TIMEOUT))

# ---------------------------------------------------------------- cluster facts
command -v kubectl >/dev/null 2>&1 || fatal "kubectl not found on the control plane"
kubectl --request-timeout=60s version -o json >"$R/k8s-version.json" 2>"$R/k8s-version.err" ||
    fatal "the API server does not answer: $(tail -c 300 "$R/k8s-version.err")"
kubectl --request-timeout=60s get nodes -o json >"$R/nodes.json" 2>/dev/null || true
kubectl --request-timeout=60s -n kube-system get daemonsets -o \
    jsonpath='{range .items[*]}{.metadata.name}{"="}{range .spec.template.spec.containers[*]}{.image}{" "}{end}{"\n"}{end}' \
    >"$R/ds-images.txt" 2>/dev/null || true

# ---------------------------------------------------------------- pods
log "removing leftovers of an earlier run, if any"
kubectl --request-timeout=60s delete namespace "$BENCH_NAMESPACE" --ignore-not-found --wait=true \
    --timeout=300s >/dev/null 2>&1 || true
log "creating the benchmark pods"
# a token of this execution names the pods' package directory on the nodes (pod-setup.sh)
token="run-$(date +%s)-$$"
sed "s/@RUN_TOKEN@/$token/g" "$W/manifests.json" >"$R/manifests.json"
kubectl --request-timeout=60s apply -f "$R/manifests.json" >"$R/apply.out" 2>&1 ||
    fatal "creating the benchmark pods failed: $(tail -c 500 "$R/apply.out")"

# one wait for all pods, so that the whole start-up is bounded by BENCH_POD_TIMEOUT
read -r -a pods <<<"$BENCH_PODS"
kc wait --for=condition=Ready "${pods[@]/#/pod/}" --timeout="${BENCH_POD_TIMEOUT}s" \
    >/dev/null 2>"$R/pods-wait.err" || log "not every pod is ready after ${BENCH_POD_TIMEOUT}s"
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
kc get service "$BENCH_SERVICE" -o jsonpath='{.spec.clusterIP}' >"$R/service-ip" 2>/dev/null || true

target_ip() {
    if [ "$1" = "$BENCH_SERVICE" ]; then
        cat "$R/service-ip" 2>/dev/null
    else
        is_ready "$1" && cut -d' ' -f2 "$R/pods/$1.info" 2>/dev/null
    fi
}

# /proc/stat's first line and the memory totals of both nodes (hostNetwork pods see the host's)
snapshot() {
    local who pod
    for who in client server; do
        if [ "$who" = client ]; then pod=$BENCH_CLIENT_HOST_POD; else pod=$BENCH_SERVER_HOST_POD; fi
        is_ready "$pod" || continue
        kc exec "$pod" -- sh -c 'head -n 1 /proc/stat; grep -E "^Mem(Total|Available):" /proc/meminfo' \
            >"$1.$who" 2>/dev/null || true
    done
}

# ---------------------------------------------------------------- one step
n=0
run_step() {
    local rep=$1 id=$2 tool=$3 client=$4 target=$5 dur=$6 to=$7 streams=$8 proto=$9 size=${10} level=${11}
    local d ip rc qps rate
    n=$((n + 1))
    d=$(printf '%s/runs/%04d' "$R" "$n")
    mkdir -p "$d"
    printf 'id=%s\nrep=%s\ntool=%s\nworkers=%s\n' "$id" "$rep" "$tool" "$BENCH_HEY_WORKERS" >"$d/meta"
    skip() { printf 'skipped=%s\n' "$1" >>"$d/meta"; log "skip $id (rep $rep): $1"; }
    if ! is_ready "$client"; then skip "client pod $client is not ready"; return; fi
    ip=$(target_ip "$target")
    if [ -z "$ip" ]; then skip "no address for $target (not ready)"; return; fi
    if (($(date +%s) + to > deadline)); then skip "benchmarkTimeout (${BENCH_TIMEOUT}s) reached"; return; fi
    printf 'target=%s\n' "$ip" >>"$d/meta"

    local args=()
    case $tool in
        iperf3)
            args=(iperf3 -J -c "$ip" -p "$BENCH_IPERF3_PORT" -t "$dur" -P "$streams")
            if [ "$proto" = udp ]; then args+=(-u -b 0); fi
            ;;
        hey-max)
            args=(hey -z "${dur}s" -c "$BENCH_HEY_WORKERS" -t "$BENCH_HEY_REQUEST_TIMEOUT" -o csv
                "http://$ip:$BENCH_HTTP_PORT/$size")
            ;;
        hey)
            rate=$(cat "$R/rate.$size" 2>/dev/null)
            if [ -z "$rate" ]; then skip "no reference rate: the host calibration for $size B failed"; return; fi
            qps=$(awk -v r="$rate" -v l="$level" -v w="$BENCH_HEY_WORKERS" 'BEGIN { printf "%.3f", r * l / 100 / w }')
            printf 'target_rate=%s\nqps=%s\n' "$(awk -v r="$rate" -v l="$level" 'BEGIN { printf "%.3f", r * l / 100 }')" \
                "$qps" >>"$d/meta"
            args=(hey -z "${dur}s" -c "$BENCH_HEY_WORKERS" -q "$qps" -t "$BENCH_HEY_REQUEST_TIMEOUT" -o csv
                "http://$ip:$BENCH_HTTP_PORT/$size")
            ;;
        *)
            skip "unknown tool $tool"
            return
            ;;
    esac

    log "run $id (rep $rep) -> $ip"
    snapshot "$d/before"
    printf 'started=%s\n' "$(date +%s)" >>"$d/meta"
    if [ "$tool" = iperf3 ]; then
        timeout -k 10 "$((to + 15))" kubectl --request-timeout=0 -n "$BENCH_NAMESPACE" exec "$client" -- \
            timeout -k 5 "$to" "${args[@]}" >"$d/out" 2>"$d/err"
        rc=$?
    else
        # hey's CSV has one row per request: keep it in the pod and bring back its reduction
        # shellcheck disable=SC2016  # "$@" is expanded by the pod's shell
        timeout -k 10 "$((to + 15))" kubectl --request-timeout=0 -n "$BENCH_NAMESPACE" exec "$client" -- \
            timeout -k 5 "$to" sh -c '"$@" >/tmp/cnibench-hey.csv' hey "${args[@]}" >"$d/err" 2>&1
        rc=$?
        kc exec -i "$client" -- awk -f /dev/stdin /tmp/cnibench-hey.csv <"$W/hey-reduce.awk" >"$d/out" 2>>"$d/err" ||
            true
        kc exec "$client" -- rm -f /tmp/cnibench-hey.csv >/dev/null 2>&1 || true
    fi
    printf 'ended=%s\nrc=%s\n' "$(date +%s)" "$rc" >>"$d/meta"
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then printf 'timed_out=1\n' >>"$d/meta"; fi
    snapshot "$d/after"

    if [ "$tool" = hey-max ] && [ "$rc" = 0 ]; then
        awk -F, -v d="$dur" '!/^#/ && NR > 1 && $2 >= 200 && $2 < 400 { n += $3 } END { if (n > 0) printf "%.3f\n", n / d }' \
            "$d/out" >"$R/rate.$size"
        [ -s "$R/rate.$size" ] || rm -f "$R/rate.$size"
    fi
    return 0
}

# ---------------------------------------------------------------- the suite
log "calibrating the load levels on the host network"
# the steps are read from fd 3: nothing in the loop can eat them from stdin
while IFS=$'\t' read -r -u 3 id tool client target dur to streams proto size level; do
    case $id in '#'* | '') continue ;; esac
    [ "$tool" = hey-max ] || continue
    run_step 0 "$id" "$tool" "$client" "$target" "$dur" "$to" "$streams" "$proto" "$size" "$level" </dev/null
done 3<"$W/steps.tsv"

for ((rep = 0; rep < BENCH_REPEAT; rep++)); do
    log "repetition $((rep + 1)) of $BENCH_REPEAT"
    while IFS=$'\t' read -r -u 3 id tool client target dur to streams proto size level; do
        case $id in '#'* | '') continue ;; esac
        [ "$tool" = hey-max ] && continue
        run_step "$rep" "$id" "$tool" "$client" "$target" "$dur" "$to" "$streams" "$proto" "$size" "$level" </dev/null
    done 3<"$W/steps.tsv"
done
log "suite done"
