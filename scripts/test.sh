#!/bin/sh
# Every test of every package, after the same set-up as the demo. CI runs exactly this.
set -eu
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
cd "$(dirname "$0")/.."
sh scripts/setup.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# One package at a time: the isolation suites start many sandboxes and cgroups, and two cores are
# the norm on the machines this runs on.
npx turbo run test --concurrency=1 --output-logs=full 2>&1 | tee "$log" || status=$?
[ "$status" -eq 0 ] || status=1
# Turbo's own exit code can hide a failed pipe; the summary lines cannot.
passed=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '/^ *Tests +[0-9]/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^passed/) p += $i } END { print p + 0 }')
failed=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '/^ *Tests +[0-9]/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^failed/) f += $i } END { print f + 0 }')
skipped=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '/^ *Tests +[0-9]/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^skipped/) s += $i } END { print s + 0 }')
[ "$failed" -eq 0 ] || status=1
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"
