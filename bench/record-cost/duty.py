"""What a recorder costs the ping-pong, measured in one run (bench/record-cost.sh's default).

The VM's round-trip rate drifts by 10-20 % over seconds, as much as the cost measured: rounds
of 5 s run one after another compare unlike moments. Here one ping-pong client runs for the
whole measurement, printing its round trips per 100 ms slice, while this controller turns a
recorder on and off: CYCLES times, for each recorder of RECORDERS, a window recorded (the
recorder's process alive; its first SKIP seconds, indexing and the first full read, left out)
between two unrecorded windows. Each recorded window is compared with the mean of the
unrecorded windows on either side of it, so a slow drift cancels. Prints a Markdown table:
per recorder, the median and mean of those ratios (with the mean's 95 % interval), their
spread, the median of the same ratios taken over each window's median 100 ms slice (the VM's
short dips left out), the rates, and the stop per sample the recorder reported. DUTY_RAW=FILE
also writes the slices and windows as JSON.

Arguments: ADDR PID BIN CYCLES ON OFF (seconds); the recorders are given by RECORDERS, a
comma-separated list of `top`, `10`, `100` (Hz), each optionally `KIND@DIR@LABEL` to run the
`tasktrace` of another build (DIR) under a label (to compare builds in one run)."""
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

addr, pid, bin_dir = sys.argv[1], sys.argv[2], sys.argv[3]
cycles, on, off = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
recorders = os.environ.get("RECORDERS", "top,10,100").split(",")
SKIP = 1.0  # the recorder's start: the debuginfo index (~0.2 s) and its first, whole read
TAIL = 0.05  # its end: writing out what it recorded
SETTLE = 0.2  # after it exits

here = os.path.dirname(os.path.abspath(__file__))
total = 10 * cycles * len(recorders) * (on + off) + off  # ended below, once measured
# The slices go to a file: a pipe read only at the end fills up and stalls the client.
slice_file = tempfile.TemporaryFile(mode="w+")
client = subprocess.Popen(
    ["taskset", "-c", "0", "python3", os.path.join(here, "pingpong.py"), addr, str(total), "0.1"],
    stdout=slice_file, text=True)


def recorder(spec):
    kind, _, rest = spec.partition("@")
    tasktrace = os.path.join(rest.partition("@")[0] or bin_dir, "tasktrace")
    if kind == "top":
        # top's engine at its default interval (1 s), as many samples as fit in the window
        cmd = [tasktrace, "top", pid, "--once", "--samples", str(int(on)), "--format", "json"]
    else:
        cmd = [tasktrace, "record", pid, "--duration", str(on - 0.3), "--rate", kind,
               "--format", "folded", "-o", os.devnull]
    return ["taskset", "-c", "1"] + cmd


windows = []  # (kind or None, start, end)
stops = {}  # kind -> the recorder's median stop per sample (ms), one per window


def stopped_ms(kind, done):
    """The median stop per sample the recorder reported."""
    if kind.startswith("top"):
        return json.loads(done.stdout)["stopped_ms"]["median"]
    found = re.search(r"median ([0-9.]+) ms", done.stderr)
    return float(found.group(1)) if found else float("nan")
time.sleep(off)
for _ in range(cycles):
    for kind in recorders:
        t0 = time.monotonic()
        done = subprocess.run(recorder(kind), capture_output=True, text=True)
        t1 = time.monotonic()
        if done.returncode != 0:
            sys.exit(f"duty: the {kind} recorder failed: {done.stderr.strip()}")
        windows.append((kind, t0 + SKIP, t1 - TAIL))
        stops.setdefault(kind, []).append(stopped_ms(kind, done))
        time.sleep(off)
        windows.append((None, t1 + SETTLE, time.monotonic()))
if client.poll() is not None:
    sys.exit("duty: the ping-pong client ended early")
client.terminate()
client.wait()
slice_file.seek(0)
slices = [tuple(map(float, line.split())) for line in slice_file.read().splitlines()]
if os.environ.get("DUTY_RAW"):
    with open(os.environ["DUTY_RAW"], "w") as raw:
        json.dump({"slices": slices, "windows": windows}, raw)


def rate(start, end):
    """Round trips/s over the slices lying wholly inside [start, end]."""
    inside = [(b - a, n) for a, b, n in slices if a >= start and b <= end]
    secs = sum(d for d, _ in inside)
    return (sum(n for _, n in inside) / secs, secs) if secs > 0 else (None, 0)


def typical(start, end):
    """The median rate of the 100 ms slices inside [start, end]: a window's rate without the
    VM's dips (a slice at half speed now and then, recorded or not)."""
    inside = [n / (b - a) for a, b, n in slices if a >= start and b <= end]
    return statistics.median(inside) if inside else None


def half_interval(xs):
    """Half the width of the mean's 95 % interval (normal approximation; t for small counts)."""
    t = 2.045 if len(xs) >= 30 else 2.26 if len(xs) >= 10 else 3.18
    return t * statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else float("nan")


first_off = (None, min(a for a, _, _ in slices), windows[0][1] - SKIP)
windows.insert(0, first_off)
print("| recording | windows | ratio to the unrecorded windows beside it: median | "
      "mean ± 95 % interval | lowest / highest | the same of the windows' median slices: "
      "median | recorded / unrecorded (round trips/s) | stopped per sample (median) |")
print("| --- | ---: | ---: | ---: | --- | ---: | --- | --- |")
for kind in recorders:
    ratios, typical_ratios, rec, unrec = [], [], [], []
    for i, (k, a, b) in enumerate(windows):
        if k != kind:
            continue
        before = next(w for w in reversed(windows[:i]) if w[0] is None)
        after = next(w for w in windows[i + 1:] if w[0] is None)
        r, secs = rate(a, b)
        r0, _ = rate(before[1], before[2])
        r1, _ = rate(after[1], after[2])
        if r is None or r0 is None or r1 is None:
            sys.exit(f"duty: a window without ping-pong slices ({kind}, at {a:.1f} s)")
        ratios.append(r / ((r0 + r1) / 2))
        typical_ratios.append(typical(a, b) / ((typical(*before[1:]) + typical(*after[1:])) / 2))
        rec.append(r)
        unrec.append((r0 + r1) / 2)
    base, _, rest = kind.partition("@")
    name = "top (1 s)" if base == "top" else f"{base} Hz"
    if rest:
        name += f" ({rest.partition('@')[2]})"
    pct = lambda x: f"{(x - 1) * 100:+.1f} %"
    print(f"| {name} | {len(ratios)} | **{pct(statistics.median(ratios))}** | "
          f"{pct(statistics.mean(ratios))} ± {half_interval(ratios) * 100:.1f} | "
          f"{pct(min(ratios))} / {pct(max(ratios))} | "
          f"{pct(statistics.median(typical_ratios))} | "
          f"{statistics.mean(rec):,.0f} / {statistics.mean(unrec):,.0f} | "
          f"{statistics.median(stops[kind]):.2f} ms |")
