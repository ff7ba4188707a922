"""memcached and redis on free ports, for the tests whose Apaches share state through them (BBAuthCache).

    with cacheserver.running("memcache") as port: ...     # started; stopped (by PID) on leaving
    cacheserver.flush("memcache", port)                    # empties it, as an eviction or a restart of it would
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from apache import free_port, port_open

SERVERS = {
    "memcache": ("/usr/bin/memcached", lambda port: ["/usr/bin/memcached", "-l", "127.0.0.1", "-p", str(port),
                                                     "-U", "0", "-m", "16", "-u", "memcache"]),
    "redis": ("/usr/bin/redis-server", lambda port: ["/usr/bin/redis-server", "--bind", "127.0.0.1", "--port",
                                                     str(port), "--save", "", "--appendonly", "no"]),
}


def missing(kind):
    """Why `kind` cannot run here, or None."""
    binary = SERVERS[kind][0]
    module = f"/usr/lib/apache2/modules/mod_socache_{kind}.so"
    if not (os.access(binary, os.X_OK) and os.path.exists(module)):
        return f"{binary} or {module} missing (build/deps.sh installs them)"
    return None


@contextlib.contextmanager
def running(kind):
    """Under pytest a missing server skips the test; elsewhere (make bench) it is an error."""
    why = missing(kind)
    if why:
        if "pytest" in sys.modules:
            pytest.skip(why)
        raise RuntimeError(why)
    argv = SERVERS[kind][1]
    port = free_port()
    proc = subprocess.Popen(argv(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while not port_open(port) and time.time() < deadline:
            time.sleep(0.05)
        assert port_open(port), f"{kind} did not start"
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def command(port, line):
    """Sends one text-protocol line (memcached) or inline command (redis); returns the first reply line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(line.encode() + b"\r\n")
        return c.recv(4096).split(b"\r\n")[0]


def _stats(kind, port):
    """The server's own counters: memcached's "stats", redis's "INFO stats"."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"stats\r\n" if kind == "memcache" else b"INFO stats\r\n")
        data = b""
        while not (data.endswith(b"END\r\n") or (kind == "redis" and data.count(b"\r\n") > 3
                                                   and data.endswith(b"\r\n\r\n"))):
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    return dict(line.split(" ", 2)[1:] if kind == "memcache" else line.split(":", 1)
                for line in data.decode().splitlines()
                if (line.startswith("STAT ") if kind == "memcache" else ":" in line))


def operations(kind, port):
    """How many reads and writes the server has answered so far (memcached: cmd_get + cmd_set; redis: every
    command but the INFO that asks), for counting what a load costs it."""
    stats = _stats(kind, port)
    if kind == "memcache":
        return int(stats["cmd_get"]) + int(stats["cmd_set"])
    return int(stats["total_commands_processed"])


def memcached_writes(port):
    """Every change memcached was asked for so far: sets (add, replace, append, cas too), touches, deletes,
    increments and decrements, whether they found the key or not."""
    stats = _stats("memcache", port)
    return sum(int(stats[name]) for name in ("cmd_set", "cmd_touch", "delete_hits", "delete_misses", "incr_hits",
                                             "incr_misses", "decr_hits", "decr_misses"))


def flush(kind, port):
    reply = command(port, "flush_all" if kind == "memcache" else "FLUSHALL")
    assert reply in (b"OK", b"+OK"), reply
