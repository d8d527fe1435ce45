#!/usr/bin/env bash
# The table of results/search.md: for each injectable bug and each search, on generic
# scenarios only, the runs until the first failure and how many of N runs failed.
# Usage: results/search/table.sh [N] [BUG...]   (release build; N defaults to 300)
set -uo pipefail
cd "$(dirname "$0")/../.."
N=${1:-300}
shift || true
F=${FAULTLINE:-./target/release/faultline}
# bug -> protocol, from `faultline bugs` (NAME SCENARIO description).
bugs=("$@")
if [ ${#bugs[@]} -eq 0 ]; then
  mapfile -t bugs < <($F bugs | awk '{print $1 "@" $2}')
fi
summarize() { # reads a --json document on stdin: prints "first failing run (1-based) / failing of N"
  python3 -c '
import json, sys
d = json.load(sys.stdin)
if "failing_seeds" in d:
    runs = [s + 1 for s in d["failing_seeds"]]
else:
    runs = [f["run"] + 1 for f in d["failures"]]
print((min(runs) if runs else "-"), len(runs), sep="\t")'
}
printf "bug\tscenario\tsearch\tfirst\tfailing of %s\n" "$N"
for entry in "${bugs[@]}"; do
  bug=${entry%@*}
  staged=${entry#*@}
  case $staged in
    raft-learner-votes|raft-config-on-commit|raft-single-change-without-term-entry)
      scenarios=(etcd-membership-churn raft-nemesis-members) ;;
    raft-*) scenarios=(raft-nemesis raft-nemesis-leaders raft-nemesis-members) ;;
    broadcast-*) scenarios=(broadcast-nemesis) ;;
    gossip-*) scenarios=(gossip-nemesis) ;;
  esac
  for s in "${scenarios[@]}"; do
    u=$($F run "$s" --bug "$bug" --seeds 0..$N --jobs 2 --artifacts-max 0 --json 2>/dev/null | summarize)
    printf "%s\t%s\tuniform\t%s\n" "$bug" "$s" "$u"
    if [ "$s" = raft-nemesis ]; then
      for v in swarm targeted; do
        r=$($F run "$s-$v" --bug "$bug" --seeds 0..$N --jobs 2 --artifacts-max 0 --json 2>/dev/null | summarize)
        printf "%s\t%s\t%s\t%s\n" "$bug" "$s-$v" "$v" "$r"
      done
    fi
    e=$($F explore "$s" --bug "$bug" --budget "$N" --seed 0 --jobs 2 --json 2>/dev/null | summarize)
    printf "%s\t%s\texplore\t%s\n" "$bug" "$s" "$e"
  done
done
