#!/usr/bin/env bash
# Times `faultline check` (batch mode, release build) against Porcupine's own tests
# on Porcupine's test corpus: its 102 Jepsen etcd logs (test_data/jepsen, checked
# with the cas-register model) and its 6 kv histories (test_data/kv, kv model,
# partitioned per key as in Porcupine's TestKv* tests), read as they are in its
# repository. Porcupine runs as its compiled test binary (`go test -c`), so Go's
# build is not timed; both sides include reading and parsing the files.
#
# Usage: scripts/bench-checker-vs-porcupine.sh PORCUPINE_CHECKOUT [RUNS]
# Needs Go (Debian: apt-get install golang-go). Prints each run and the medians.
set -euo pipefail

porcupine=${1:-}
runs=${2:-5}
if [ -z "$porcupine" ] || [ ! -d "$porcupine/test_data/jepsen" ]; then
    echo "skipped: no Porcupine checkout given (usage: $0 PORCUPINE_CHECKOUT [RUNS])"
    exit 0
fi
if ! command -v go >/dev/null; then
    echo "skipped: no Go toolchain (Debian: apt-get install golang-go)"
    exit 0
fi
porcupine=$(cd "$porcupine" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$here" && cargo build --release --quiet --bin faultline)
faultline="$here/target/release/faultline"
(cd "$porcupine" && go test -c -o "$tmp/porcupine.test" . >/dev/null)
tests='^(TestEtcdJepsen[0-9]+|TestKv[0-9]+Clients?(Ok|Bad))$'

now() { date +%s.%N; }

# Both must give their expected verdicts, or the timing means nothing.
(cd "$porcupine" && "$tmp/porcupine.test" -test.run "$tests" -test.count=1 >"$tmp/p.out") ||
    { cat "$tmp/p.out"; echo "Porcupine's tests failed"; exit 1; }
"$faultline" check "$porcupine"/test_data/jepsen/*.log --model cas-register >"$tmp/etcd.out" || true
"$faultline" check "$porcupine"/test_data/kv/*.txt --model kv >"$tmp/kv.out" || true
tail -n 1 "$tmp/etcd.out" "$tmp/kv.out"
grep -q "24 linearizable, 79 not linearizable, 0 unknown, 0 bad input" "$tmp/etcd.out"
grep -q "3 linearizable, 3 not linearizable, 0 unknown, 0 bad input" "$tmp/kv.out"

: >"$tmp/p.times"
: >"$tmp/f.times"
for i in $(seq "$runs"); do
    t0=$(now)
    (cd "$porcupine" && "$tmp/porcupine.test" -test.run "$tests" -test.count=1 >/dev/null)
    t1=$(now)
    "$faultline" check "$porcupine"/test_data/jepsen/*.log --model cas-register >/dev/null || true
    "$faultline" check "$porcupine"/test_data/kv/*.txt --model kv >/dev/null || true
    t2=$(now)
    p=$(echo "$t1 - $t0" | bc)
    f=$(echo "$t2 - $t1" | bc)
    echo "run $i: porcupine ${p}s  faultline ${f}s"
    echo "$p" >>"$tmp/p.times"
    echo "$f" >>"$tmp/f.times"
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mp=$(median "$tmp/p.times")
mf=$(median "$tmp/f.times")
echo "median: porcupine ${mp}s  faultline ${mf}s  ratio faultline/porcupine $(echo "scale=2; $mf / $mp" | bc)"
