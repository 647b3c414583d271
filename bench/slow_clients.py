#!/usr/bin/env python3
"""Slow clients against a real `till serve`: N connections that send half a request and
then nothing. Prints Till's memory and open file descriptors before, while they hang, and
after TILL_READ_TIMEOUT_MS has passed (Till should have closed them all).

    cargo build --release
    python3 bench/slow_clients.py target/release/till 1500
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/till"
count = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
port = 18181
workdir = tempfile.mkdtemp(prefix="till-slow-")
env = dict(os.environ, TILL_LISTEN=f"127.0.0.1:{port}", TILL_API_KEY="bench",
           TILL_DATABASE_URL=f"sqlite://{workdir}/till.db", RUST_LOG="warn")
till = subprocess.Popen([binary, "serve"], env=env, stderr=subprocess.DEVNULL)


def rss_mb():
    with open(f"/proc/{till.pid}/status") as status:
        line = next(l for l in status if l.startswith("VmRSS"))
    return int(line.split()[1]) // 1024


def fds():
    return len(os.listdir(f"/proc/{till.pid}/fd"))


def closed(socks):
    n = 0
    for s in socks:
        s.settimeout(0.01)
        try:
            if s.recv(16) == b"":
                n += 1
        except (socket.timeout, BlockingIOError):
            pass
        except OSError:
            n += 1
    return n


try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.1)
    print(f"idle: RSS {rss_mb()} MB, {fds()} fds")
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.send(b"POST /v1/orders HTTP/1.1\r\nHost: till\r\n")
        socks.append(s)
    time.sleep(1)
    print(f"{count} half-open: RSS {rss_mb()} MB, {fds()} fds")
    time.sleep(11)
    print(f"11 s later: {closed(socks)} of {count} closed by Till; RSS {rss_mb()} MB, {fds()} fds")
finally:
    till.kill()
