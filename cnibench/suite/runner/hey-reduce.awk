# Reduce the CSV of `hey -o csv` (one row per request) to one row per distinct
# (response-time, status-code) with its count. hey prints response times with 4 decimals, so the
# percentiles computed from this are exactly those of the full CSV (cnibench.bench.parse_hey_histogram);
# the full CSV of a 30 s run at 50k req/s would be ~75 MB, the reduction a few kB.
# Columns are found by name in hey's header: response-time, ..., status-code, offset (hey 0.1.4).
# Output: "response-time,status-code,count" rows, then "# rows N", "# offset-min S", "# end-max S".
BEGIN { FS = ","; rt = 0; sc = 0; of = 0; rows = 0; endmax = 0; offmin = -1 }
NR == 1 {
    for (i = 1; i <= NF; i++) {
        gsub(/\r/, "", $i)
        if ($i == "response-time") rt = i
        else if ($i == "status-code") sc = i
        else if ($i == "offset") of = i
    }
    if (rt == 0 || sc == 0) { print "# error not the CSV of hey -o csv: " $0; exit 1 }
    next
}
NF >= sc {
    gsub(/\r/, "", $sc)
    count[$rt "," $sc]++
    rows++
    if (of > 0) {
        if (offmin < 0 || $of + 0 < offmin) offmin = $of + 0
        if ($of + $rt > endmax) endmax = $of + $rt
    }
}
END {
    if (rt == 0 || sc == 0) exit 1
    print "response-time,status-code,count"
    for (k in count) print k "," count[k]
    printf "# rows %d\n", rows
    if (offmin >= 0) printf "# offset-min %.4f\n", offmin
    printf "# end-max %.4f\n", endmax
}
