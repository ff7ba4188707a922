#!/usr/bin/python3
"""`make bench`: requests/s and p99 latency of mod_bbauth against httpd's own floor, in one run on one Apache.

Targets (tests/bench/benchsite.py; all serve the same 1 KiB static file):
    open, floor, cookie, token, oidc-shm, oidc-cookie   (see benchsite.TARGETS_DOC)
wrk (BENCH_CONNECTIONS=16 connections, BENCH_THREADS=2 threads) runs BENCH_SECONDS=5 s per target, the targets
alternating, BENCH_ROUNDS=5 rounds (each round in another order); a ratio is taken within a round (the same
minute of the machine's life) and the median over rounds is reported.

Then each of open, floor, cookie and token runs under `valgrind --tool=callgrind` in a single apache2 -X without
mod_auth_openidc, counting only inside ap_run_process_connection (start-up varies between runs by more than a
request costs): instructions per request are the difference between a run of BENCH_CG_SHORT and one of
BENCH_CG_LONG requests on one keep-alive connection, divided by the difference (so first-request work is not
counted either); the module's own share is the inclusive count of its hooks. cookie and oidc-cookie are counted
again with mod_auth_openidc loaded (its hooks run for every AuthType request).

Then, for server farms, the floor and cookie targets again on an Apache whose shared state is on memcached and
then on redis (each started here on a free port; BENCH_FARM_ROUNDS=3 rounds), with the cache operations one
valid-cookie request costs as the cache server itself counts them.

Writes tests/bench/results.md (or $BENCH_RESULTS); BENCH_KEEP=1 keeps the ServerRoot with the callgrind outputs.
No assertion on times: the targets (cookie >= 95% of floor, token >= 90% of floor, cookie >= 2x mod_auth_openidc)
are reported as met or not.
BBAUTH_MODULE: the module to measure (make bench sets it to .build/mod_bbauth.so).
"""

import datetime
import http.client
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

sys.path.insert(0, str(HERE.parent / "integration"))
import benchsite  # noqa: E402
import cacheserver  # noqa: E402
from benchsite import harness  # noqa: E402
import wrkrun  # noqa: E402
from wrkrun import run_wrk  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
CG_SHORT = int(os.environ.get("BENCH_CG_SHORT", "50"))
CG_LONG = int(os.environ.get("BENCH_CG_LONG", "550"))
FARM_ROUNDS = int(os.environ.get("BENCH_FARM_ROUNDS", "3"))
RESULTS = Path(os.environ.get("BENCH_RESULTS", HERE / "results.md"))
MODULE_HOOKS = ("strip_identity_headers", "check_authn", "fixups_pass")

# (target, reference, goal ratio of requests/s) as the issue sets them
GOALS = [("cookie", "floor", 0.95), ("token", "floor", 0.90), ("cookie-es256", "floor", 0.95),
         ("cookie-assert", "floor", 0.95), ("cookie-es256", "floor-es256", 0.95),
         ("cookie-assert", "floor-assert", 0.95), ("cookie", "oidc-shm", 2.0),
         ("cookie", "oidc-cookie", 2.0)]
# Each target's own floor: the same server or virtual host and the same configuration around the check (a virtual
# host's location walk and merges cost more than the main server's; cookie-assert's Header line is the bench's).
FLOOR_OF = {"cookie": "floor", "token": "floor", "cookie-es256": "floor-es256", "cookie-assert": "floor-assert",
            "cookie-assert-bare": "floor-es256"}
# Instructions per request a hit may cost over its own floor (issue 21), for the module's own paths: cookie-assert's
# Header line is the bench's, and costs more where the header it looks up is there (cookie-assert-bare is the
# assertion without it).
CG_GOAL = 5000
CG_GOAL_TARGETS = ("cookie", "token", "cookie-es256", "cookie-assert-bare")


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    oidc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libapache2-mod-auth-openidc"],
                          capture_output=True, text=True).stdout.strip()
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "httpd": harness.apache_version(),
        "wrk": (wrk.stdout + wrk.stderr).splitlines()[0] if (wrk.stdout + wrk.stderr) else "?",
        "mod_auth_openidc": oidc or "not installed",
        "load average at start (other work on the machine)": " ".join(open("/proc/loadavg").read().split()[:3]),
    }


# ---------------------------------------------------------------------------------------------------- wrk

def apache_cpu_seconds(apache, pids):
    """User and system CPU time, in seconds, that the processes pids of apache (all their threads) have used."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])      # utime and stime: fields 14 and 15 of proc(5)
    return ticks / os.sysconf("SC_CLK_TCK")


# A run during which the hypervisor took more than this share of Apache's CPU is run again, up to STEAL_RETRIES
# times: on a shared machine another guest's burst can halve one target's rate in one round and not the next.
MAX_STEAL = float(os.environ.get("BENCH_MAX_STEAL", "0.03"))
STEAL_RETRIES = 3


def run_once(site, t, seconds):
    """One wrk run of target t, with the CPU time Apache spent on it per request (res.cpu_us: it moves less than
    requests/s when the machine's CPUs are shared) and the share of the run the hypervisor took (res.steal)."""
    pids = site.apache.processes()
    before, steal_before = apache_cpu_seconds(site.apache, pids), wrkrun.steal_ticks()
    res = run_wrk(t.url, t.headers, seconds, CONNECTIONS, THREADS, script=getattr(t, "script", None))
    res.cpu_us = (apache_cpu_seconds(site.apache, pids) - before) * 1e6 / max(res.requests, 1)
    res.steal = (wrkrun.steal_ticks() - steal_before) / (seconds * os.sysconf("SC_CLK_TCK"))
    return res


def run_measured(site, t, seconds):
    """run_once, again while the hypervisor took more than MAX_STEAL of the run (at most STEAL_RETRIES more
    times); res.reruns counts them."""
    res = run_once(site, t, seconds)
    reruns = 0
    while res.steal > MAX_STEAL and reruns < STEAL_RETRIES:
        reruns += 1
        res = run_once(site, t, seconds)
    res.reruns = reruns
    return res


def run_rounds(site, names=None, count=ROUNDS, label="", socket_errors_ok=False):
    """socket_errors_ok: a connection wrk saw reset is counted in the result, not an end (a machine overloaded by
    others resets one now and then); a non-2xx answer always ends the run."""
    names = list(names or site.targets)
    for name in names:                                   # warm-up: caches, keep-alive, the token cache
        t = site.targets[name]
        run_wrk(t.url, t.headers, 1, CONNECTIONS, THREADS, script=getattr(t, "script", None))
    rounds = []
    for r in range(count):
        order = names[r % len(names):] + names[:r % len(names)]
        results = {}
        for name in order:
            t = site.targets[name]
            res = run_measured(site, t, SECONDS)
            if res.non_2xx or (res.socket_errors and not socket_errors_ok):
                raise SystemExit(f"{name}: {res.errors} errors (non-2xx or socket errors) under load:\n{res.text}")
            results[name] = res
            print(f"  {label}round {r + 1} {name:12s} {res.rps:10.0f} req/s   p99 {res.p99:7.2f} ms   Apache CPU "
                  f"{res.cpu_us:6.1f} us/request   steal {100 * res.steal:4.1f} % ({res.reruns} re-runs)", flush=True)
        rounds.append(results)
    return rounds


def summarize(rounds):
    names = list(rounds[0])
    rows = []
    for name in names:
        rps = [r[name].rps for r in rounds]
        p99 = [r[name].p99 for r in rounds]
        rows.append((name, statistics.median(rps), min(rps), max(rps), statistics.median(p99)))
    return rows


def ratio(rounds, a, b):
    """Median, min and max over rounds of rps(a) / rps(b) measured in the same round."""
    if a not in rounds[0] or b not in rounds[0]:
        return None
    vals = [r[a].rps / r[b].rps for r in rounds]
    return statistics.median(vals), min(vals), max(vals)


def cpu_ratio(rounds, a, b):
    """Median, min and max over rounds of cpu(b) / cpu(a), Apache's CPU time per request in the same round: the
    requests/s ratio a / b that a CPU-bound Apache would reach."""
    if a not in rounds[0] or b not in rounds[0]:
        return None
    vals = [r[b].cpu_us / r[a].cpu_us for r in rounds if r[a].cpu_us > 0]
    return (statistics.median(vals), min(vals), max(vals)) if vals else None


def metrics_note(site):
    """What the module's metrics counted during the rounds (they are always on): a valid cookie counts nothing
    itself, only the shared-cache reads it still makes (about one per BBAuthSessionRecheck per process)."""
    reads = site.counted('bbauth_cache_operations_total{op="retrieve",result="miss"}')
    if reads is None:
        return "metrics: /bbauth-metrics did not answer (a module without metrics?)"
    return (f"metrics on (always): {reads:,.0f} shared-cache reads that found nothing (logout marks) were counted "
            "during the rounds")


# ------------------------------------------------------------------------------------ farms (memcache, redis)

def run_farm(workdir):
    """The cookie target against the floor with the shared state on memcached and on redis (each started here on a
    free port), and the cache operations one valid-cookie request costs, counted by the cache server itself.
    {kind: (ratio or None, operations per request) or a note}"""
    results = {}
    for kind in sorted(cacheserver.SERVERS):
        if cacheserver.missing(kind):
            results[kind] = cacheserver.missing(kind)
            continue
        with cacheserver.running(kind) as port, benchsite.BenchSite(
                workdir / kind, threads=site_threads, oidc=False, modules=(f"socache_{kind}",),
                extra_conf=f"BBAuthCache {kind}:127.0.0.1:{port}\n") as site:
            rounds = run_rounds(site, ("floor", "cookie"), FARM_ROUNDS, label=f"{kind} ")
            cookie = site.targets["cookie"]
            before = cacheserver.operations(kind, port)
            res = run_wrk(cookie.url, cookie.headers, SECONDS, CONNECTIONS, THREADS)
            ops = (cacheserver.operations(kind, port) - before) / max(res.requests, 1)
            print(f"  {kind}: {ops:.5f} cache operations per valid-cookie request ({res.requests} requests)",
                  flush=True)
            results[kind] = (ratio(rounds, "cookie", "floor"), ops, res.requests)
    return results


# ---------------------------------------------------------------------------------------------- callgrind

def callgrind_once(apache, target, n, tag, fresh_headers=None, rotate=None):
    """Total instructions of one `apache2 -X` under callgrind that served n requests of target, and the inclusive
    instructions of the module's hooks. fresh_headers(): the target's headers made anew once Apache is up (a
    session cookie: the restart emptied shmcb, and a session whose grant is gone logs in again). rotate: a list of
    header sets, request i sending the i-th (modulo its length) instead of the target's own."""
    out = apache.logs_dir / f"callgrind.{target.name}.{'oidc' if 'auth_openidc' in apache.modules else 'plain'}.{tag}.out"
    if out.exists():
        out.unlink()
    # Only what runs inside ap_run_process_connection (reading, handling and logging requests) is counted: start-up
    # (key set-up, OpenSSL's lazy initialisation, ...) varies between runs by more than a request costs.
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--collect-atstart=no",
           "--toggle-collect=ap_run_process_connection", *apache._cmd("-X")]
    # Started as root, apache2 would switch to www-data after callgrind opened its output file as root, and could
    # not write it at the end: so it starts as the harness's unprivileged user, which owns logs/ and run/.
    for f in apache.logs_dir.iterdir():
        os.chown(f, apache.run_uid, apache.run_gid)
    as_user = {"user": apache.run_uid, "group": apache.run_gid, "extra_groups": []} if os.geteuid() == 0 else {}
    proc = subprocess.Popen(cmd, env=apache._apache_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=str(apache.root), **as_user)
    try:
        u = urlsplit(target.url)
        deadline = time.monotonic() + 180
        while not harness.port_open(u.port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"apache2 -X under callgrind did not start: {proc.stdout.read().decode()}")
            time.sleep(0.2)
        headers = fresh_headers() if fresh_headers else target.headers
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        for i in range(n):
            conn.request("GET", u.path, headers=rotate[i % len(rotate)] if rotate else headers)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200 or body.decode() != benchsite.PAYLOAD:
                raise RuntimeError(f"callgrind {target.name}: request {i}: {resp.status} {body[:200]!r}")
        conn.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = out.read_text()
    m = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
    if not m:
        raise RuntimeError(f"no totals in {out}")
    ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", "--auto=no", str(out)],
                         capture_output=True, text=True, cwd="/").stdout
    # A function can be listed more than once (by file, by object, "???"): its inclusive count is the largest.
    found = {}
    for line in ann.splitlines():
        fm = re.match(r"^\s*([\d,]+)\s.*:(\w+)(?:\s+\[.*\])?\s*$", line)
        if fm and fm.group(2) in MODULE_HOOKS:
            found[fm.group(2)] = max(found.get(fm.group(2), 0), int(fm.group(1).replace(",", "")))
    return int(m.group(1)), sum(found.values())


def run_callgrind(site):
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        return None, "valgrind is not installed (build/deps.sh --bench)"
    site.apache.stop()
    results = {}
    plan = [(name, name, False) for name in ("open", "floor", "cookie", "token", "floor-es256", "cookie-es256",
                                             "floor-assert", "cookie-assert", "cookie-assert-bare")]
    if "oidc-cookie" in site.targets:
        plan += [("cookie", "cookie, mod_auth_openidc loaded", True), ("oidc-cookie", "oidc-cookie", True)]
    for name, label, oidc in plan:
        site.load_oidc(oidc)
        t = site.targets[name]
        fresh = {"cookie": site.session_headers, "cookie-es256": site.es256_session_headers,
                 "cookie-assert": site.es256_session_headers,
                 "cookie-assert-bare": site.es256_session_headers}.get(name)
        short_total, short_hooks = callgrind_once(site.apache, t, CG_SHORT, "short", fresh)
        long_total, long_hooks = callgrind_once(site.apache, t, CG_LONG, "long", fresh)
        n = CG_LONG - CG_SHORT
        results[label] = ((long_total - short_total) / n, (long_hooks - short_hooks) / n)
        print(f"  callgrind {label:32s} {results[label][0]:10,.0f} instructions/request, module hooks "
              f"{results[label][1]:8,.0f}", flush=True)
    site.load_oidc(True)
    return results, None


# --------------------------------------------------------------------------------------------------- report

def farm_report(farm):
    lines = ["", "## Server farms: the shared state on memcached and on redis", "",
             f"The same Apache and targets with `BBAuthCache memcache:` or `redis:` (a server started by the bench on "
             f"127.0.0.1), floor and cookie alternating, {FARM_ROUNDS} rounds; then one more {SECONDS} s run of the "
             f"cookie target while the cache server counts what it is asked (memcached: cmd_get + cmd_set; redis: "
             f"total_commands_processed).", "",
             "| cache | cookie / floor | goal | met | cache operations per request |", "|---|---:|---:|---|---:|"]
    for kind, found in farm.items():
        if isinstance(found, str):
            lines.append(f"| {kind} | not measured: {found} | | | |")
            continue
        (med, lo, hi), ops, requests = found
        lines.append(f"| {kind} | {med:.3f} [{lo:.3f}, {hi:.3f}] | >= 0.95 | {'yes' if med >= 0.95 else 'NO'} | "
                     f"{ops:.5f} ({requests:,} requests) |")
    return lines


def report(info, rounds, rows, cg, cg_note, notes, farm):
    lines = ["# mod_bbauth benchmark", "",
             "Written by `make bench` (tests/bench/bench.py); numbers from one run on the machine below. wrk and",
             "Apache share the machine, so absolute numbers say little; the ratios within a round are the result.", "",
             "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += ["", "## Targets", "", "```", benchsite.TARGETS_DOC, "```", "",
              f"Apache event MPM, 2 processes x {site_threads} threads (so that no connection waits for a thread), KeepAlive, a 1 KiB static file; wrk "
              f"-t{THREADS} -c{CONNECTIONS}, {SECONDS} s per target, {ROUNDS} rounds, targets alternating; a run "
              f"during which the hypervisor took more than {100 * MAX_STEAL:g} % of Apache's CPU (steal time) was "
              f"run again, up to {STEAL_RETRIES} times ({sum(r[n].reruns for r in rounds for n in r)} runs again in "
              f"all).", "",
              "## Throughput and latency (median over rounds)", "",
              "| target | requests/s | min | max | p99 ms |", "|---|---:|---:|---:|---:|"]
    for name, med, lo, hi, p99 in rows:
        lines.append(f"| {name} | {med:,.0f} | {lo:,.0f} | {hi:,.0f} | {p99:.2f} |")
    lines += ["", "## Paired ratios (requests/s of A / B within the same round: median [min, max])", "",
              "\"by CPU\": Apache's CPU time per request of B / that of A in the same round, the requests/s ratio a "
              "CPU-bound Apache reaches; it moves far less than requests/s when the machine's CPUs are shared.", "",
              "| A / B | ratio | by CPU | goal | met | met by CPU |", "|---|---:|---:|---:|---|---|"]
    done = set()
    for a, b, goal in GOALS:
        r, c = ratio(rounds, a, b), cpu_ratio(rounds, a, b)
        if r:
            done.add((a, b))
            by_cpu = f"{c[0]:.3f} [{c[1]:.3f}, {c[2]:.3f}]" if c else ""
            lines.append(f"| {a} / {b} | {r[0]:.3f} [{r[1]:.3f}, {r[2]:.3f}] | {by_cpu} | >= {goal:g} | "
                         f"{'yes' if r[0] >= goal else 'NO'} | {('yes' if c[0] >= goal else 'NO') if c else ''} |")
    ceilings = [(oidc, ratio(rounds, "open", oidc)) for oidc in ("oidc-shm", "oidc-cookie")]
    lines += ["", "Against mod_auth_openidc no module can do better than the unprotected location does: "
              + "; ".join(f"open / {oidc} = {r[0]:.3f} here" for oidc, r in ceilings if r)
              + " (the goal of 2 assumes mod_auth_openidc keeps about half of the unprotected rate).", "",
              "| A / B | ratio | goal | met |", "|---|---:|---:|---|"] if any(r for _, r in ceilings) else []
    for a in rows:
        for b in ("open", "floor"):
            r = ratio(rounds, a[0], b)
            if r and a[0] != b and (a[0], b) not in done:
                lines.append(f"| {a[0]} / {b} | {r[0]:.3f} [{r[1]:.3f}, {r[2]:.3f}] | | |")
    lines += ["", "## Instructions per request (callgrind, one apache2 -X)", ""]
    if cg:
        lines += [f"Counted inside ap_run_process_connection only; the difference between {CG_LONG} and {CG_SHORT} "
                  f"requests on one keep-alive connection, divided by {CG_LONG - CG_SHORT}. Without mod_auth_openidc "
                  f"unless the target says so. \"module hooks\": inclusive instructions of mod_bbauth's hooks "
                  f"({', '.join(MODULE_HOOKS)}). Valgrind hides the CPU's SHA extensions, so HMAC counts more "
                  f"here than it costs on the machine.", "",
                  f"\"vs its floor\": over the floor of the same shape (FLOOR_OF in bench.py); goal: at most "
                  f"+{CG_GOAL:,}.", "",
                  "| target | instructions/request | of which module hooks | vs floor | vs its floor | goal met |",
                  "|---|---:|---:|---:|---:|---|"]
        for name, (total, hooks) in cg.items():
            own = FLOOR_OF.get(name)
            over = f"{total - cg[own][0]:+,.0f} ({own})" if own in cg else ""
            met = ("yes" if total - cg[own][0] <= CG_GOAL else "NO") if own in cg and name in CG_GOAL_TARGETS else ""
            lines.append(f"| {name} | {total:,.0f} | {hooks:,.0f} | {total - cg['floor'][0]:+,.0f} | {over} | {met} |")
    else:
        lines.append(f"Not measured: {cg_note}.")
    lines += farm_report(farm)
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


site_threads = 32


def main():
    info = machine()
    info["CPUs"] = wrkrun.pin_server()
    notes = []
    workdir = Path(tempfile.mkdtemp(prefix="bbauth-bench-", dir=os.environ.get("BBAUTH_TEST_TMPDIR", "/tmp")))
    print(f"bench: ServerRoot and fake Bitbucket in {workdir}", flush=True)
    with benchsite.BenchSite(workdir, threads=site_threads) as site:
        if site.oidc_note:
            notes.append(site.oidc_note)
        print(f"bench: targets {', '.join(site.targets)}; {ROUNDS} rounds x {SECONDS} s each", flush=True)
        rounds = run_rounds(site)
        notes.append(metrics_note(site))
        cg, cg_note = run_callgrind(site)
    farm = run_farm(workdir)
    rows = summarize(rounds)
    text = report(info, rounds, rows, cg, cg_note, notes, farm)
    RESULTS.write_text(text)
    print("\n" + text)
    print(f"bench: written to {RESULTS}")
    if os.environ.get("BENCH_KEEP"):
        print(f"bench: kept {workdir} (callgrind outputs in httpd/logs/)")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
