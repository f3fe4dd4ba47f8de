#!/bin/bash
# Peak memory and time of `--tune` on a synthetic regression CSV (issue 22, bounded memory):
#   scripts/tune-memory.sh ROWS THREADS [more train options, e.g. --tune-budget 6256 --mc-samples 2]
# Makes /tmp/ds-csv-ROWSx10.csv once (scripts/csv-memory.mts), runs the built trainer (npm run build
# first) under `nice -n 19` and /usr/bin/time -v, samples the process's RSS every second with the progress
# line it had printed (the stage), and prints the peak RSS, CPU and wall time. The timeline is left in
# $OUT/tune-memory-ROWS-THREADS.rss (OUT defaults to a temporary folder).
set -euo pipefail
rows=$1; threads=$2; shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$(mktemp -d)}
csv=/tmp/ds-csv-${rows}x10.csv
[ -f "$csv" ] || (cd "$here" && nice -n 19 npx tsx scripts/csv-memory.mts --rows "$rows" >/dev/null)
tag=tune-memory-$rows-$threads
nice -n 19 /usr/bin/time -v node "$here/dist/train/cli.js" --data "$csv" --target y --name "$tag" --tune \
  --threads "$threads" --out "$out/models" "$@" >"$out/$tag.out" 2>"$out/$tag.err" &
wrapper=$!
sleep 0.5
pid=$(pgrep -P "$wrapper" node || true)
while [ -n "$pid" ] && [ -e "/proc/$pid" ]; do
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  stage=$(tail -c 300 "$out/$tag.err" | tr '\r' '\n' | grep -a . | tail -1 | cut -c1-70 || true)
  echo "$(date +%s) ${rss:-0} $stage" >>"$out/$tag.rss"
  sleep 1
done
wait "$wrapper" || true
peak=$(awk -F': ' '/Maximum resident/ {print $2}' "$out/$tag.err")
cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {print u + s}' "$out/$tag.err")
wall=$(awk '/Elapsed \(wall/ {print $NF}' "$out/$tag.err")
echo "$rows rows, $threads thread(s) $*: peak RSS $((peak / 1024)) MB, CPU ${cpu} s, wall $wall (timeline: $out/$tag.rss)"
