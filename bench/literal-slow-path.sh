#!/bin/bash
# Classifies a build's predict path as "slow" when Node's own object literals take V8's runtime path
# (docs/benchmarks.md, "Two builds under the same load", the v8 paragraph; src/server/tick-maps.ts).
#
#   bench/literal-slow-path.sh BUILD_DIR LABEL [SECS] [ENV=VALUE...]
#
# Starts BUILD_DIR's dist/server/server.js (NODE_EXTRA: more node flags, e.g. --import X) with
# --perf-basic-prof, warms predict for 3 s with wrk -t1 -c32 (bench/ab-http.ts' predict body), records
# SECS s (default 4) with `perf record -e cpu-clock -F 4999 -p PID`, and prints the share of samples in
# Runtime_DefineKeyedOwnPropertyInLiteral, JSObject::MigrateToMap, Map::TransitionToDataProperty and
# FeedbackNexus: about 1.6–1.9% when slow, 0.04–0.2% when not (threshold 1%). The share is a ratio
# within one profile: a busy machine does not change the verdict, so no quiet.sh; run one at a time.
# Needs perf and wrk. Output and the profile: /tmp/literal-slow-path/LABEL.
dir=$1; label=$2; secs=${3:-4}; shift 3 2>/dev/null || shift $#
out=/tmp/literal-slow-path/$label; rm -rf "$out"; mkdir -p "$out"
port=$((30000 + RANDOM % 10000))
cat > "$out/post.lua" <<'L'
wrk.method = "POST"
wrk.body = '{"instances":[[59,2,32.1,101,157,93.2,38,4,4.8598,87]]}'
wrk.headers["Content-Type"] = "application/json"
L
url=http://127.0.0.1:$port/v1/models/diabetes/predict
cd "$dir" || exit 1
# shellcheck disable=SC2086
env LOG_LEVEL=warn HOST=127.0.0.1 PORT=$port "$@" node --max-semi-space-size=4 $NODE_EXTRA --perf-basic-prof \
  dist/server/server.js > "$out/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.1; done
wrk -t1 -c32 -d3s -s "$out/post.lua" "$url" > /dev/null
perf record -e cpu-clock -F 4999 -p $pid -o "$out/perf.data" 2>/dev/null &
perf_pid=$!
sleep 0.3
wrk -t1 -c32 -d"${secs}s" -s "$out/post.lua" "$url" > "$out/wrk.txt"
kill -INT $perf_pid; wait $perf_pid 2>/dev/null
kill -TERM $pid; wait $pid 2>/dev/null
rm -f "/tmp/perf-$pid.map"
perf report -i "$out/perf.data" --no-children --sort sym --stdio 2>/dev/null > "$out/report.txt"
share=$(grep -E 'Runtime_DefineKeyedOwnPropertyInLiteral|JSObject::MigrateToMap|Map::TransitionToDataProperty|FeedbackNexus' \
  "$out/report.txt" | awk '{s += $1} END {printf "%.2f", s}')
reqs=$(grep -oE '[0-9]+ requests in' "$out/wrk.txt" | cut -d' ' -f1)
verdict=fast; awk "BEGIN {exit !($share >= 1.0)}" && verdict=SLOW
echo "$label share=${share}% requests=$reqs $verdict load=$(cut -d' ' -f1 /proc/loadavg)"
