#!/usr/bin/env bash
# Runs every benchmark of issue 7 in one go and prints the tables (docs/BENCHMARKS.md).
#
#   ROUNDS=N bench/run.sh   rounds of the dump workload (default 5)
#
#   bench/run.sh            full run (~15-25 min on 2 cores, plus the first build)
#   bench/run.sh --smoke    builds everything, runs every workload once at tiny sizes
#
# Environment:
#   CARGO_TARGET_DIR   build dir of the normal build      (default /work/targets/bench or bench/target)
#   TASKDUMP_TARGET_DIR build dir of the tokio_unstable build (default: $CARGO_TARGET_DIR-taskdump)
#   OUT                where results go                    (default: $CARGO_TARGET_DIR/bench-results)
#   SKIP_CRITERION=1   skip the criterion (wall time) part
#   SKIP_CALLGRIND=1   skip the instruction counts
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
manifest="$here/Cargo.toml"
if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
    if [[ -d /work/targets ]]; then CARGO_TARGET_DIR=/work/targets/bench; else CARGO_TARGET_DIR="$here/target"; fi
fi
export CARGO_TARGET_DIR
TASKDUMP_TARGET_DIR="${TASKDUMP_TARGET_DIR:-$CARGO_TARGET_DIR-taskdump}"
OUT="${OUT:-$CARGO_TARGET_DIR/bench-results}"
smoke=0
[[ "${1:-}" == "--smoke" ]] && smoke=1

build() {
    # The normal build: ours and every peer but tokio's dump.
    cargo build --quiet --release --manifest-path "$manifest"
    # tokio's Handle::dump: --cfg tokio_unstable + the taskdump feature, in its own target dir
    # (the cfg changes every crate's fingerprint).
    CARGO_TARGET_DIR="$TASKDUMP_TARGET_DIR" RUSTFLAGS="--cfg tokio_unstable" \
        cargo build --quiet --release --manifest-path "$manifest" --features taskdump
}

bin="$CARGO_TARGET_DIR/release/tasktrace-bench"
bin_td="$TASKDUMP_TARGET_DIR/release/tasktrace-bench"

if ((smoke)); then
    build
    cargo bench --quiet --manifest-path "$manifest" --no-run
    "$bin" --smoke
    "$bin_td" --smoke
    # The report code on a few real numbers.
    mkdir -p "$OUT"
    {
        "$bin" dump ours 10 1
        "$bin" dump ours_fresh 10 1
        "$bin_td" dump tokio_taskdump 10 1
        "$bin" memory ours 100
    } >"$OUT/smoke.txt"
    "$bin" report "$OUT/smoke.txt" "$OUT/none" >/dev/null
    echo "bench smoke: ok"
    exit 0
fi

build
rm -rf "$OUT"
mkdir -p "$OUT"
results="$OUT/results.txt"
: >"$results"
contenders="$("$bin" contenders)"
all="$contenders tokio_taskdump"
binof() { # the binary that has contender $1
    if [[ "$1" == tokio_taskdump ]]; then echo "$bin_td"; else echo "$bin"; fi
}
echo "== machine" >&2
{ uname -srm; grep -m1 'model name' /proc/cpuinfo; nproc; rustc --version; } | tee "$OUT/machine.txt" >&2

# Instruction counts under callgrind: two sizes, the difference divided by the difference of
# sizes (setup, runtime start and teardown cancel out).
instr() { # instr CONTENDER WORKLOAD N
    local f="$OUT/cg.$1.$2.$3"
    valgrind --tool=callgrind --callgrind-out-file="$f.out" --log-file="$f.log" \
        "$(binof "$1")" "$2" "$1" "$3" >/dev/null
    grep -o 'Collected : [0-9]*' "$f.log" | awk '{print $3}'
    rm -f "$f.out"
}
if [[ -z "${SKIP_CALLGRIND:-}" ]] && ! command -v valgrind >/dev/null; then
    echo "valgrind not found (apt-get install valgrind): instruction counts skipped" >&2
    SKIP_CALLGRIND=1
fi
if [[ -z "${SKIP_CALLGRIND:-}" ]]; then
    for workload in pingpong chain; do
        n1=10000
        n2=110000
        for c in $all; do
            echo "== callgrind $workload $c" >&2
            i1="$(instr "$c" "$workload" "$n1")"
            i2="$(instr "$c" "$workload" "$n2")"
            awk -v w="$workload" -v c="$c" -v a="$i1" -v b="$i2" -v n1="$n1" -v n2="$n2" \
                'BEGIN { printf "RESULT %s_instr %s per_op=%.1f\n", w, c, (b - a) / (n2 - n1) }' | tee -a "$results"
        done
    done
fi

# Dumps: a fresh process per size; the first dump is cold, the median of the next ones warm.
# ROUNDS rounds (default 5), the contenders alternating within each, so that a slow minute of
# the machine falls on all of them; the report shows the median over the rounds.
for round in $(seq "${ROUNDS:-5}"); do
    for n in 1000 10000; do
        # ours_fresh: ours with DumpOptions::fresh (no capture reused from the last dump).
        for c in $all ours_fresh; do
            [[ "$c" == plain ]] && continue
            echo "== dump $c $n (round $round)" >&2
            warm=10
            [[ "$c" == published ]] && warm=3
            # tokio's dump can freeze (see shared facts): bounded.
            timeout 300 "$(binof "$c")" dump "$c" "$n" "$warm" | tee -a "$results" || true
        done
    done
done

# First trace of a depth-10 task, 5 fresh processes each.
for c in $all; do
    [[ "$c" == plain ]] && continue
    echo "== first trace $c" >&2
    for _ in 1 2 3 4 5; do
        timeout 120 "$(binof "$c")" first-trace "$c" | tee -a "$results" || true
    done
done

# Where ours spends a dump and a cold first trace (diagnostics for docs/BENCHMARKS.md).
echo "== diagnostics" >&2
"$bin" dump-parts 10000 8 | tee -a "$results"
for _ in 1 2 3; do "$bin" cold-resolve | grep RESULT | tee -a "$results"; done

# Memory per idle task.
for c in $all; do
    echo "== memory $c" >&2
    "$(binof "$c")" memory "$c" 100000 | tee -a "$results"
done

# Wall time with criterion (ping-pong, chain, spawn).
crit="$OUT/criterion"
if [[ -z "${SKIP_CRITERION:-}" ]]; then
    echo "== criterion" >&2
    CRITERION_HOME="$crit" cargo bench --quiet --manifest-path "$manifest" --bench wall >"$OUT/criterion.log" 2>&1
    CRITERION_HOME="$crit" CARGO_TARGET_DIR="$TASKDUMP_TARGET_DIR" RUSTFLAGS="--cfg tokio_unstable" \
        cargo bench --quiet --manifest-path "$manifest" --features taskdump --bench wall >>"$OUT/criterion.log" 2>&1
fi

"$bin" report "$results" "$crit" | tee "$OUT/tables.md"
echo "(results in $OUT)" >&2
