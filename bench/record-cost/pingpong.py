"""Ping-pong client of bench/record-cost.sh: one connection to an echo server, 4-byte
messages with TCP_NODELAY, as many round trips as it gets in SECONDS; prints round trips/s.

With a third argument SLICE (seconds), it prints instead one line per slice as it goes:
`START END COUNT`, the slice's bounds on CLOCK_MONOTONIC (the clock other processes'
`time.monotonic()` reads) and the round trips completed in it (bench/record-cost/duty.py)."""
import socket
import sys
import time

host, port = sys.argv[1].rsplit(":", 1)
seconds = float(sys.argv[2])
slice_len = float(sys.argv[3]) if len(sys.argv) > 3 else None
s = socket.create_connection((host, int(port)))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
n = 0
start = time.monotonic()
end = start + seconds
next_slice = start + slice_len if slice_len else end
slice_start = start
in_slice = 0
now = start
while now < end:
    s.sendall(b"ping")
    got = 0
    while got < 4:
        chunk = s.recv(4 - got)
        if not chunk:
            sys.exit("the echo server closed the connection")
        got += len(chunk)
    n += 1
    in_slice += 1
    now = time.monotonic()
    if slice_len and now >= next_slice:
        print(f"{slice_start:.6f} {now:.6f} {in_slice}", flush=True)
        in_slice = 0
        slice_start = now
        next_slice = now + slice_len
if not slice_len:
    print(f"{n / seconds:.0f}")
