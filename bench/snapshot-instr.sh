#!/usr/bin/env bash
# What a warm every-task dump of 10,000 tasks costs the reader, in instructions (callgrind:
# deterministic, unlike wall time on a loaded machine). docs/BENCHMARKS.md, "The warm dump
# counted".
#
#   bench/snapshot-instr.sh          TASKS (default 10000) idle tasks
#
# crates/tasktrace's examples/snapshot_instr holds the tasks; examples/reader_instr reads it
# as the snapshot's reader process does (one session: a first read, then N), each dump sent
# and taken back as JSON as the reader sends it, under callgrind at N = 2 and N = 6: one
# warm dump is the difference divided by 4 (the index and the start cancel out). With
# NOWIRE the reads alone. (The reader process itself starts from /proc/self/exe, which under
# valgrind is valgrind: it cannot be counted in place.)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
TASKS="${TASKS:-10000}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="${OUT:-$target_dir/bench-results/snapshot-instr}"
mkdir -p "$out"
command -v valgrind >/dev/null || { echo "snapshot-instr: needs valgrind" >&2; exit 1; }
(cd "$root" && CARGO_TARGET_DIR="$target_dir" CARGO_PROFILE_RELEASE_DEBUG=true \
    cargo build --quiet --release -p tasktrace --features snapshot --example snapshot_instr --example reader_instr)
held="$target_dir/release/examples/snapshot_instr"
reader="$target_dir/release/examples/reader_instr"

count() { # count N [NOWIRE]: instructions of reader_instr reading N warm dumps
    local fifo="$out/hold.fifo"
    rm -f "$fifo" "$out/hold.out"
    mkfifo "$fifo"
    "$held" "$TASKS" 0 fork <"$fifo" >"$out/hold.out" &
    local pid=$!
    sleep 100000 >"$fifo" &
    local keeper=$!
    for _ in $(seq 300); do grep -q ready "$out/hold.out" 2>/dev/null && break; sleep 0.1; done
    local handle
    handle=$(awk '{print $2}' "$out/hold.out")
    env ${2:+NOWIRE=1} valgrind --tool=callgrind --callgrind-out-file="$out/cg.$1${2:+.nowire}.out" \
        --log-file="$out/cg.log" "$reader" "$pid" "$handle" "$1" >/dev/null
    kill "$keeper"
    wait "$pid" 2>/dev/null || true
    grep -o 'Collected : [0-9]*' "$out/cg.log" | awk '{print $3}'
}
for wire in "" nowire; do
    a=$(count 2 $wire)
    b=$(count 6 $wire)
    label="reads and their JSON answers"
    [[ -n "$wire" ]] && label="reads alone"
    awk -v a="$a" -v b="$b" -v w="$label" -v n="$TASKS" \
        'BEGIN { printf "warm dump of %d tasks (%s): %.1fM instructions\n", n, w, (b - a) / 4e6 }'
done
echo "callgrind files (callgrind_annotate): $out/cg.*.out"
