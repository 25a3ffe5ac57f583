#!/bin/bash
# Every test of every package, after the same set-up as the demo. CI runs exactly this.
set -euo pipefail
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
cd "$(dirname "$0")/.."
sh scripts/setup.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# One package at a time: the isolation suites start many sandboxes, cgroups and VMs, and two cores
# are the norm on the machines this runs on.
npx turbo run test --concurrency=1 --continue --output-logs=full 2>&1 | tee "$log" || status=1
# The per-package vitest summaries, added up into one closing line.
sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '
  /Tests +[0-9]+ (passed|failed|skipped)/ {
    for (i = 1; i < NF; i++) {
      if ($(i + 1) ~ /^passed/) passed += $i
      if ($(i + 1) ~ /^failed/) failed += $i
      if ($(i + 1) ~ /^skipped/) skipped += $i
    }
  }
  END { printf "%d passed, %d failed, %d skipped\n", passed, failed, skipped; exit failed > 0 }
' || status=1
exit "$status"
