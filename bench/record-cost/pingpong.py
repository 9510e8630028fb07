"""Ping-pong client of bench/record-cost.sh: one connection to an echo server, 4-byte
messages with TCP_NODELAY, as many round trips as it gets in SECONDS; prints round trips/s."""
import socket
import sys
import time

host, port = sys.argv[1].rsplit(":", 1)
seconds = float(sys.argv[2])
s = socket.create_connection((host, int(port)))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
n = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    s.sendall(b"ping")
    got = 0
    while got < 4:
        chunk = s.recv(4 - got)
        if not chunk:
            sys.exit("the echo server closed the connection")
        got += len(chunk)
    n += 1
print(f"{n / seconds:.0f}")
