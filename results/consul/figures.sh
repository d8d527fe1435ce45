#!/usr/bin/env bash
# The figures of results/consul/scenarios.md and catalog.md: for each scenario, min /
# median / max over seeds 0..N of the metrics its table shows, from the sweep's --json
# summary.
# Usage: results/consul/figures.sh [N] [scenarios|catalog|all]
#   (release build; N defaults to 500, the part to all)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-500}
PART=${2:-all}
F=${FAULTLINE:-./target/release/faultline}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Section 5's variant: consul-majority-loss with ejection after one failed call, 30 s
# (as tests/consul.rs builds it).
sed 's/caller_profile = "go-micro"/caller_profile = "go-micro"\neject_after_failures = 1\neject_ms = 30000/' \
  scenarios/consul-majority-loss.toml >"$tmp/consul-majority-loss-eject.toml"
grep -q eject_after_failures "$tmp/consul-majority-loss-eject.toml"
figures() { # SCENARIO METRIC...: one line per metric
  local scenario=$1
  shift
  $F run "$scenario" --seeds "0..$N" --jobs 2 --artifacts-max 0 --json 2>/dev/null >"$tmp/s.json" || true
  python3 - "$scenario" "$tmp/s.json" "$@" <<'PY'
import json, sys
import os
scenario, path, names = sys.argv[1], sys.argv[2], sys.argv[3:]
scenario = os.path.basename(scenario).removesuffix(".toml")
d = json.load(open(path))
print(f"{scenario}: {d['passed']} of {d['seeds_run']} seeds passed")
for n in names:
    m = d["metrics"][n]
    xs = [m["min"], m["p50"], m["max"]]
    whole = all(abs(x - round(x)) < 1e-9 for x in xs)
    print(f"  {n}: " + " / ".join(f"{round(x):,}" if whole else f"{x:,.1f}" for x in xs))
PY
}
if [ "$PART" != catalog ]; then
echo "## scenarios.md"
# 1. A thousand watchers.
for s in consul-herd-1000 consul-herd-1000-service; do
  figures $s idle_wakes_per_unrelated_write idle_wakes_count watcher_wakes_count health_answers_count
done
# 2. Reads while the leader is cut off.
for s in consul-leader-loss-reads consul-leader-loss-reads-consistent consul-leader-loss-reads-stale; do
  figures $s stale_answers_count stale_answer_lag_max_ms stale_answer_index_lag_max \
    registry_errors_count health_answers_count removal_max_ms dead_calls_count failed_calls_per_1000
done
# 3. The server majority lost; 5. ejection.
for s in consul-majority-loss consul-majority-loss-fail "$tmp/consul-majority-loss-eject.toml"; do
  figures "$s" call_attempts_ok_count call_attempts_failed_count calls_no_instance_count \
    dead_call_window_max_ms failed_calls_per_1000 dead_calls_count
done
# 4. A rolling deploy.
figures consul-rolling-deploy removal_max_ms dead_call_window_max_ms dead_calls_count \
  failed_calls_per_1000 calls_count
fi
if [ "$PART" != scenarios ]; then
  echo "## catalog.md"
  figures consul-zombie-after-reap services_dropped_count zombie_stay_max_ms calls_to_long_dead_count
  figures consul-blocking-stale-index blocking_index_backwards_count
  figures consul-flapping-check catalog_writes_per_min
  figures consul-flapping-check-hysteresis catalog_writes_per_min
  figures consul-deregistration-vs-agent operator_deregistrations_undone_count \
    operator_deregistration_undone_max_ms
fi
