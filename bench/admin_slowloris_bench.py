#!/usr/bin/env python3
"""llmassist-admin under clients that hold connections: /health latency while N connections
sit on half a request head, and the server's memory idle and with M idle connections.

Usage: bench/admin_slowloris_bench.py BUILD_DIR [SLOW=100] [IDLE=1000]
Prints figures; asserts nothing (speed is measured here, not tested).
"""
import json, os, socket, statistics, subprocess, sys, tempfile, time

build = sys.argv[1] if len(sys.argv) > 1 else "build"
slow_n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
idle_n = int(sys.argv[3]) if len(sys.argv) > 3 else 1000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory(pid):
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":"):
                fields[parts[0][:-1]] = int(parts[1])
    rss = fields.get("Rss", 0)
    private = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return rss / 1024, private / 1024


def health(port):
    t = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:80]
    return (time.perf_counter() - t) * 1000


def latencies(port, n=200):
    values = sorted(health(port) for _ in range(n))
    return statistics.median(values), values[int(len(values) * 0.99) - 1], values[-1]


with tempfile.TemporaryDirectory() as tmp:
    port = free_port()
    config = os.path.join(tmp, "bot.json")
    with open(config, "w") as f:
        json.dump({"database": os.path.join(tmp, "bot.db"),
                   "admin": {"listen": f"127.0.0.1:{port}", "max_connections": 4096,
                             "max_connections_per_address": 4096,
                             "connection_timeout_seconds": 600}}, f)
    server = subprocess.Popen([os.path.join(build, "examples/admin/llmassist-admin"),
                               "--config", config, "serve"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                health(port)
                break
            except OSError:
                time.sleep(0.05)
        med, p99, worst = latencies(port)
        print(f"/health, no other clients: median {med:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms")
        rss, private = memory(server.pid)
        print(f"idle: RSS {rss:.1f} MiB, private {private:.1f} MiB")

        slow = []
        for _ in range(slow_n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0")
            slow.append(s)
        med, p99, worst = latencies(port)
        print(f"/health with {slow_n} half-sent heads open: median {med:.2f} ms, p99 {p99:.2f} ms, "
              f"max {worst:.2f} ms")
        for s in slow:
            s.close()

        idle = []
        for _ in range(idle_n):
            idle.append(socket.create_connection(("127.0.0.1", port)))
        time.sleep(1)
        med, p99, worst = latencies(port, 50)
        rss, private = memory(server.pid)
        print(f"with {idle_n} idle connections: RSS {rss:.1f} MiB, private {private:.1f} MiB; "
              f"/health median {med:.2f} ms")
        for s in idle:
            s.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
