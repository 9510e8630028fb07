#!/usr/bin/env bash
# What a `tasktrace record` costs the recorded program (docs/BENCHMARKS.md, issues 20 and 32):
# round trips per second of a ping-pong client against the release demo target's echo server.
# The target and the client share CPU 0 and the recorder runs on CPU 1: unpinned, the recorder
# kept the idle core awake and the ping-pong got faster under recording (the VM's wake-up
# latency).
#
# By default (bench/record-cost/duty.py): one ping-pong run for the whole measurement, while
# the recorders — `tasktrace top` at its default interval (its sampling engine, through
# `--once`), `record` at 10 Hz and at 100 Hz — are turned on for 3 s and off for 2 s, CYCLES
# times each (default 30); each recorded window is compared with the unrecorded ones on either
# side, so the VM's drift over seconds cancels. RECORDERS picks them (see duty.py; `100@DIR@label`
# runs another build's `tasktrace`, to compare two builds in one run).
#
# ROUNDS=N: the earlier method, kept to compare with the figures it gave — ROUNDS rounds of
# 5 s each with no recording, top, 10 Hz and 100 Hz, one after another.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=5
cargo build --release -p tasktrace-cli --bins
bin=${CARGO_TARGET_DIR:-target}/release
out=$(mktemp -d)
trap 'kill "$target" 2>/dev/null || true; rm -rf "$out"' EXIT
taskset -c 0 "$bin/tasktrace-demo-target" >"$out/target.log" 2>&1 &
target=$!
for _ in $(seq 100); do grep -q '^ready ' "$out/target.log" && break; sleep 0.1; done
addr=$(awk '/^ready / { print $2 }' "$out/target.log")
[ -n "$addr" ] || { echo "record-cost: the demo target did not start" >&2; exit 1; }
if [ -z "${ROUNDS:-}" ]; then
    python3 bench/record-cost/duty.py "$addr" "$target" "$bin" "${CYCLES:-30}" 3 2
    exit
fi
rounds=$ROUNDS
echo "| recording | round | round trips/s | target stopped per sample (median / max) | samples |"
echo "| --- | --- | --- | --- | --- |"
for round in $(seq "$rounds"); do
    for rate in none top 10 100; do
        if [ "$rate" = none ]; then
            rtt=$(taskset -c 0 python3 bench/record-cost/pingpong.py "$addr" "$secs")
            echo "| none | $round | $rtt | — | — |"
            continue
        fi
        if [ "$rate" = top ]; then
            taskset -c 1 "$bin/tasktrace" top "$target" --once --samples $((secs + 2)) \
                --format json >"$out/top.json" 2>"$out/top.log" &
            rec=$!
            sleep 0.5
            rtt=$(taskset -c 0 python3 bench/record-cost/pingpong.py "$addr" "$secs")
            wait "$rec"
            stopped=$(python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))["stopped_ms"]
print("%.1f ms / %.1f ms" % (s["median"], s["max"]))' "$out/top.json")
            echo "| top (1 s) | $round | $rtt | $stopped | $((secs + 2)) |"
            continue
        fi
        taskset -c 1 "$bin/tasktrace" record "$target" --duration $((secs + 1)) --rate "$rate" \
            --format folded -o "$out/rec.folded" 2>"$out/rec.log" &
        rec=$!
        sleep 0.5
        rtt=$(taskset -c 0 python3 bench/record-cost/pingpong.py "$addr" "$secs")
        wait "$rec"
        stopped=$(grep -o 'median [0-9.]* ms, max [0-9.]* ms' "$out/rec.log" | sed 's/median //; s/, max / \/ /')
        samples=$(grep -o '[0-9]* samples in' "$out/rec.log" | cut -d' ' -f1)
        lowered=$(grep -o 'lowered to [0-9.]* Hz' "$out/rec.log" | sed 's/lowered to /, lowered to /' || true)
        echo "| ${rate} Hz${lowered} | $round | $rtt | $stopped | $samples |"
    done
done
