#!/usr/bin/env bash
# What an every-task dump costs a real service, and what reading it from outside costs
# (issue 26; docs/BENCHMARKS.md "In production").
#
#   bench/snapshot-cost.sh            ROUNDS rounds (default 3), all sizes
#   ROUNDS=1 HEAPS="300" bench/snapshot-cost.sh   a quick look
#
# 1. In process: testdata/framework-targets' snapshot-cost-target (an axum service, release,
#    debug = true: ~120 MB executable, ~110 MB of DWARF) with 1,000 and 10,000 idle tasks and
#    0.3, 2 and 8 GiB of touched heap takes a first snapshot and 100 more, by the reader
#    process and by a fork, the contenders alternating in each round. Reported: the median
#    over rounds of each run's figures (its median pause, its largest pause, its median total,
#    its first snapshot, the resident memory it kept).
# 2. Out of process: `tasktrace attach` and gdb (`thread apply all bt`) on the same executable
#    holding 10,000 tasks, alternating: wall time and peak resident memory (GNU time).
# 3. The stop against the number of tasks: attach at 10,000 and 50,000 tasks.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
ROUNDS="${ROUNDS:-3}"
HEAPS="${HEAPS:-300 2048 8192}"
TASKS="${TASKS:-1000 10000}"
DUMPS="${DUMPS:-100}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="${OUT:-$target_dir/bench-results/snapshot-cost}"
mkdir -p "$out"

(cd "$root/testdata/framework-targets" &&
    CARGO_TARGET_DIR="$target_dir/framework-targets" cargo build --quiet --release --bin snapshot-cost-target)
(cd "$root" && cargo build --quiet --release -p tasktrace-cli)
bin="$target_dir/framework-targets/release/snapshot-cost-target"
cli="$target_dir/release/tasktrace"
command -v gdb >/dev/null || { echo "snapshot-cost: needs gdb" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "snapshot-cost: needs GNU time (/usr/bin/time)" >&2; exit 1; }
dwarf_mb=$(readelf -SW "$bin" | python3 -c 'import sys; print(sum(int(l.split("]", 1)[1].split()[4], 16) for l in sys.stdin if "] .debug_" in l) >> 20)')
echo "executable: $(du -m "$bin" | cut -f1) MB; DWARF: $dwarf_mb MB" | tee "$out/machine.txt"
{ uname -srm; grep -m1 'model name' /proc/cpuinfo; nproc; } >>"$out/machine.txt"

# -- 1. in process ------------------------------------------------------------------------
inproc="$out/inprocess.txt"
: >"$inproc"
for round in $(seq "$ROUNDS"); do
    for heap in $HEAPS; do
        for tasks in $TASKS; do
            # Alternate which contender goes first.
            if ((round % 2)); then order="reader fork"; else order="fork reader"; fi
            for method in $order; do
                "$bin" "$tasks" "$heap" "$DUMPS" "$method" | tee -a "$inproc"
            done
        done
    done
done

# -- 2. and 3. out of process ---------------------------------------------------------------
outproc="$out/outofprocess.txt"
: >"$outproc"
hold() { # hold TASKS: starts a target holding TASKS idle tasks (until $keeper ends): $pid
    local fifo="$out/hold.$1"
    rm -f "$fifo" "$out/hold.$1.out"
    mkfifo "$fifo"
    "$bin" "$1" 0 0 reader <"$fifo" >"$out/hold.$1.out" &
    pid=$!
    sleep 100000 >"$fifo" &
    keeper=$!
    for _ in $(seq 300); do grep -q ready "$out/hold.$1.out" 2>/dev/null && return; sleep 0.1; done
    echo "snapshot-cost: the target did not start" >&2
    exit 1
}
timed() { # timed NAME TASKS CMD...: one line of figures
    local name=$1 tasks=$2
    shift 2
    /usr/bin/time -f "%e %M" -o "$out/time.txt" "$@" >"$out/cmd.out" 2>/dev/null
    local stopped
    stopped=$(grep -o 'stopped for [0-9.]* ms' "$out/cmd.out" | awk '{print $3}' || true)
    read -r secs kib <"$out/time.txt"
    echo "reader=$name tasks=$tasks wall_s=$secs peak_kib=$kib stopped_ms=${stopped:--}" | tee -a "$outproc"
}
for tasks in 10000 50000; do
    hold "$tasks"
    for round in $(seq "$ROUNDS"); do
        timed tasktrace "$tasks" "$cli" attach "$pid"
        if [ "$tasks" = 10000 ]; then
            timed gdb "$tasks" gdb -batch -p "$pid" -ex 'thread apply all bt'
        fi
    done
    kill "$keeper" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
done

# -- the tables -------------------------------------------------------------------------------
python3 - "$inproc" "$outproc" <<'EOF'
import re, statistics, sys
def rows(path):
    for line in open(path):
        yield dict(kv.split("=", 1) for kv in line.split())
med = lambda xs: statistics.median(float(x) for x in xs)
groups = {}
for r in rows(sys.argv[1]):
    groups.setdefault((int(r["ballast_mib"]), int(r["tasks"]), r["method"]), []).append(r)
print("| heap (touched) | tasks | by | pause median | pause max | warm dump (median) | first dump | resident kept after 100 |")
print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
for (heap, tasks, method), rs in sorted(groups.items()):
    print(f"| {heap / 1024:.1f} GiB | {tasks:,} | {method} | {med(r['pause_median_ms'] for r in rs):.1f} ms "
          f"| {med(r['pause_max_ms'] for r in rs):.1f} ms | {med(r['total_median_ms'] for r in rs):.1f} ms "
          f"| {med(r['first_ms'] for r in rs):.0f} ms | {med(r['kept_kib'] for r in rs) / 1024:+.1f} MiB |")
print()
groups = {}
for r in rows(sys.argv[2]):
    groups.setdefault((int(r["tasks"]), r["reader"]), []).append(r)
print("| tasks | reader | wall (median) | peak resident | stopped |")
print("| ---: | --- | ---: | ---: | ---: |")
for (tasks, reader), rs in sorted(groups.items()):
    stopped = [r["stopped_ms"] for r in rs if r["stopped_ms"] != "-"]
    st = f"{med(stopped):.1f} ms" if stopped else "—"
    print(f"| {tasks:,} | {reader} | {med(r['wall_s'] for r in rs):.2f} s | {med(r['peak_kib'] for r in rs) / 1024:.0f} MiB | {st} |")
EOF
