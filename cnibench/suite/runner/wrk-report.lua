-- wrk-report.lua: print wrk's results as one machine-readable line,
--   CNIBENCH-WRK {"requests":..,"duration_us":..,"bytes":..,"errors":{..},"latency_us":{..},"latency_samples":..}
-- read by cnibench.parsers.parse_wrk. Usage: wrk -s wrk-report.lua ... <url>
--
-- What this relies on (wrk 4.1.0, github.com/wg/wrk, files SCRIPTING, src/script.c, src/wrk.c, src/stats.c):
-- * done(summary, latency, requests) runs once, after wrk's own report, in the main thread
--   (SCRIPTING "Done"; wrk.c calls script_summary, script_errors, script_done).
-- * summary.duration (microseconds), summary.requests (completed requests, any HTTP status),
--   summary.bytes, summary.errors.{connect,read,write,status,timeout} are plain numbers
--   (script.c script_summary/script_errors); "status" counts responses with a status > 399.
-- * latency is a wrk.stats userdata: .min .max .mean .stdev and :percentile(p) (script.c
--   script_stats_index/script_stats_percentile), #latency is the number of distinct values and
--   latency(i) returns (value, count) of the i-th one (script_stats_len/script_stats_call).
--   Values are whole microseconds (a histogram with 1 us buckets, stats.c). wrk applies its
--   coordinated-omission correction (stats_correct) before done(), so the sample count can
--   exceed summary.requests (latency_samples; null when counting them would be slow, see below).
--   With no sample, .min is UINT64_MAX and .max 0: min is reported as 0 here.
-- JSON is written by hand (numbers only, no string values), so no JSON library is needed.

local function num(x)
  x = tonumber(x)
  if x == nil or x ~= x or x == math.huge or x == -math.huge then
    return "null"
  end
  if x == math.floor(x) and math.abs(x) < 2 ^ 53 then
    return string.format("%.0f", x)
  end
  return string.format("%.15g", x)
end

local function object(pairs_list)
  local parts = {}
  for _, kv in ipairs(pairs_list) do
    parts[#parts + 1] = string.format("%q:%s", kv[1], kv[2])
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local e = summary.errors or {}
  local lat_min, lat_max = latency.min, latency.max
  if lat_min > lat_max then -- no sample at all
    lat_min = 0
  end
  -- latency(i) walks the histogram from min each time: count the samples only while that stays
  -- cheap (a few thousand distinct values over a few ms), else report null
  local distinct = #latency
  local samples = nil
  if distinct * (lat_max - lat_min + 1) <= 5e7 then
    samples = 0
    for i = 1, distinct do
      local _, count = latency(i)
      samples = samples + count
    end
  end
  local lat = {
    { "min", num(lat_min) },
    { "mean", num(latency.mean) },
    { "stdev", num(latency.stdev) },
    { "max", num(lat_max) },
  }
  for _, p in ipairs({ { "p50", 50 }, { "p90", 90 }, { "p99", 99 }, { "p99.9", 99.9 }, { "p99.99", 99.99 } }) do
    lat[#lat + 1] = { p[1], num(latency:percentile(p[2])) }
  end
  local doc = object({
    { "requests", num(summary.requests) },
    { "duration_us", num(summary.duration) },
    { "bytes", num(summary.bytes) },
    { "errors", object({
      { "connect", num(e.connect) },
      { "read", num(e.read) },
      { "write", num(e.write) },
      { "status", num(e.status) },
      { "timeout", num(e.timeout) },
    }) },
    { "latency_us", object(lat) },
    { "latency_samples", num(samples) },
  })
  io.write("CNIBENCH-WRK " .. doc .. "\n")
  io.flush()
end
