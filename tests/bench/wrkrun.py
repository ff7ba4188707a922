"""Running wrk (Debian's) against one URL and reading its report: requests/s, latency percentiles, errors."""

import os
import re
import shutil
import subprocess

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


class WrkResult:
    def __init__(self, text):
        self.text = text
        m = re.search(r"Requests/sec:\s*([\d.]+)", text)
        if not m:
            raise RuntimeError("wrk printed no Requests/sec:\n" + text)
        self.rps = float(m.group(1))
        self.latency_ms = {}
        for pct, value, unit in re.findall(r"^\s*(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
            self.latency_ms[int(pct)] = float(value) * UNITS[unit]
        m = re.search(r"(\d+) requests in", text)
        self.requests = int(m.group(1)) if m else 0
        m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
        self.non_2xx = int(m.group(1)) if m else 0
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
        self.socket_errors = sum(int(x) for x in m.groups()) if m else 0
        self.socket_error_line = m.group(0) if m else "no socket errors"

    @property
    def p99(self):
        return self.latency_ms.get(99)

    @property
    def errors(self):
        return self.non_2xx + self.socket_errors


# CPUs wrk runs on, when pin_server() gave the others to the server side (None: not pinned, wrk runs anywhere).
_wrk_cpus = None
# The CPU Apache runs on when pinned ("cpu": the machine's total line of /proc/stat otherwise).
_server_cpu = "cpu"


def steal_ticks():
    """Ticks the hypervisor took from Apache's CPU (the 8th number of its /proc/stat line) since boot: time when
    the machine's other guests ran instead."""
    with open("/proc/stat") as f:
        for line in f:
            fields = line.split()
            if fields[0] == _server_cpu:
                return int(fields[8]) if len(fields) > 8 else 0
    return 0


def pin_server():
    """On a machine of two CPUs or more, pins this process (and so the Apache, fake Bitbucket and cache servers it
    starts afterwards) to CPU 0, and wrk to the rest. Sharing every CPU, wrk and Apache take turns at the scheduler's
    whim, and the ratio of two targets drifts by 30 % from one round to the next; pinned, Apache alone is the
    bottleneck and the ratio measures what it does per request. BENCH_PIN=0 leaves everything unpinned. Returns a
    line for the report."""
    global _wrk_cpus, _server_cpu
    cpus = sorted(os.sched_getaffinity(0))
    if os.environ.get("BENCH_PIN", "1") == "0" or len(cpus) < 2 or not shutil.which("taskset"):
        return "not pinned: Apache and wrk share the CPUs"
    os.sched_setaffinity(0, {cpus[0]})
    _wrk_cpus = ",".join(str(c) for c in cpus[1:])
    _server_cpu = f"cpu{cpus[0]}"
    return f"Apache (and the harness) pinned to CPU {cpus[0]}, wrk to CPU {_wrk_cpus}"


def wrk_path():
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk is not installed: run build/deps.sh --bench")
    return path


def run_wrk(url, headers=None, seconds=5, connections=16, threads=2, script=None, timeout_s=5):
    cmd = [wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_s}s", "--latency"]
    if _wrk_cpus:
        cmd = ["taskset", "-c", _wrk_cpus] + cmd
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    if script:
        cmd += ["-s", str(script)]
    cmd.append(url)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stderr or p.stdout}")
    return WrkResult(p.stdout)
