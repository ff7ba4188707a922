#!/usr/bin/python3
"""`make bench`, second part: calls to Bitbucket under load and outage, through one real Apache and the fake
Bitbucket (tests/fakebb) with every answer delayed by BENCH_BB_DELAY_MS (default 20) ms, the fake's slow mode.

1. A token miss (a token no cache knows) and a login (the callback: code exchange, whoami, user): time on the
   client, calls and TCP connections counted at the fake, per operation, on a warm process (BENCH_BB_OPS each).
2. The outage: Bitbucket accepts but does not answer; BENCH_BB_FLEET clients, each with a new token, request
   for BENCH_BB_SECONDS s while a logged-in browser loads pages: the browser's latency (median and worst) and the
   fleet's 503 latency once the circuit is open.

Writes tests/bench/results-bitbucket.md (or $BENCH_BB_RESULTS) from the run; nothing is asserted.
BBAUTH_MODULE: the module to measure (make bench sets it).
"""

import concurrent.futures
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import requests  # noqa: E402

from benchsite import bbsite, harness  # noqa: E402

DELAY_MS = float(os.environ.get("BENCH_BB_DELAY_MS", "20"))
OPS = int(os.environ.get("BENCH_BB_OPS", "20"))
FLEET = int(os.environ.get("BENCH_BB_FLEET", "40"))
SECONDS = float(os.environ.get("BENCH_BB_SECONDS", "15"))
RESULTS = Path(os.environ.get("BENCH_BB_RESULTS", HERE / "results-bitbucket.md"))
THREADS = 25   # the event MPM's default ThreadsPerChild
PAGE = "/packages/file.txt"   # a static file: no CGI in the times


def conf(site):
    return bbsite.protected_conf(site) + """
<Location /packages>
    BBAuthTokenAuth On
</Location>
BBAuthTimeout 5
"""


def ms(seconds):
    return seconds * 1000.0


def token_get(site, token):
    s = site.session()
    s.headers["Accept"] = "application/json"
    s.headers["Authorization"] = f"Bearer {token}"
    return timed(s, site.url(PAGE))


def timed(s, url):
    """(status, seconds) of one GET; status "error" when the connection failed (an overwhelmed server)."""
    t0 = time.monotonic()
    try:
        status = s.get(url, allow_redirects=False, timeout=30).status_code
    except requests.RequestException:
        status = "error"
    return status, time.monotonic() - t0


def mint(site):
    return site.fb.control("POST", "/_fake/tokens", {"user": "bob", "kind": "personal"})["token"]


# The fake's pages a browser loads during a login: not calls of the module.
BROWSER_ENDPOINTS = {"login", "logout", "home", "authorize", "consent", "oauth1_authorize"}


def counted(site):
    calls = site.fb.calls()
    conns = site.fb.connections()["by_agent"].get("mod_bbauth", {})
    module_calls = sum(v for k, v in calls.items() if k not in BROWSER_ENDPOINTS)
    return module_calls, conns.get("connections", 0), conns.get("handshakes", 0)


def per_operation(site, run_once):
    """Median ms on the client, and Bitbucket calls / connections / TLS handshakes per operation."""
    site.fb.control("POST", "/_fake/calls/reset")
    times = [run_once() for _ in range(OPS)]
    calls, conns, handshakes = counted(site)
    return statistics.median(times), calls / OPS, conns / OPS, handshakes / OPS


def token_miss(site):
    token = mint(site)   # before the clock starts: the fake's own control call is not the module's
    status, elapsed = token_get(site, token)
    assert status == 200, status
    return ms(elapsed)


def login(site):
    s = site.session()
    r = site.start_login(s, PAGE)
    callback = site.authorize(s, r.headers["Location"], user="alice")
    t0 = time.monotonic()
    r = s.get(callback, allow_redirects=False, timeout=30)
    elapsed = time.monotonic() - t0
    assert r.status_code == 302, r.status_code
    return ms(elapsed)


def outage(site):
    browser = site.session()
    site.login(browser, PAGE, user="alice")
    tokens = [mint(site) for _ in range(FLEET * 4)]
    site.fb.set_mode("whoami", "slow", seconds=60)
    site.fb.control("POST", "/_fake/calls/reset")
    stop = time.monotonic() + SECONDS
    fleet, pages, lock = [], [], threading.Lock()

    def client(i):
        n = 0
        while time.monotonic() < stop and n < 4:
            status, elapsed = token_get(site, tokens[i * 4 + n])
            with lock:
                fleet.append((time.monotonic(), status, elapsed))
            n += 1

    with concurrent.futures.ThreadPoolExecutor(max_workers=FLEET) as pool:
        futures = [pool.submit(client, i) for i in range(FLEET)]
        while time.monotonic() < stop:
            pages.append(timed(browser, site.url(PAGE)))
            time.sleep(0.05)
        for f in futures:
            f.result()
    return fleet, pages, site.fb.calls().get("whoami", 0)


def report(ops, fleet, pages, whoami):
    lines = ["# mod_bbauth: calls to Bitbucket under load and outage", "",
             "Written by `make bench` (tests/bench/bitbucket.py) from one run; times on the client, counts at the fake",
             f"Bitbucket. Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
             f"{os.cpu_count()} CPUs shared with other work: the counts are the result, the times an indication.", "",
             f"## Per operation (warm process, every answer of the fake delayed {DELAY_MS:g} ms, {OPS} each)", "",
             "| operation | median ms | Bitbucket calls | new connections | TLS handshakes |",
             "|---|---:|---:|---:|---:|"]
    for name, (median, calls, conns, handshakes) in ops.items():
        lines.append(f"| {name} | {median:.1f} | {calls:.2f} | {conns:.2f} | {handshakes:.2f} |")
    ok = [e for s, e in pages if s == 200]
    page_statuses = {}
    for s, _e in pages:
        page_statuses[s] = page_statuses.get(s, 0) + 1
    fleet_503 = sorted(e for _t, s, e in fleet if s == 503)
    statuses = {}
    for _t, s, _e in fleet:
        statuses[s] = statuses.get(s, 0) + 1
    lines += ["", f"## Outage (Bitbucket accepts, never answers; BBAuthTimeout 5, defaults otherwise; "
                  f"{FLEET} token clients for {SECONDS:g} s, one process of {THREADS} threads)", "",
              f"- browser (valid session cookie): {len(pages)} pages, statuses {page_statuses}; of the 200s: "
              f"median {ms(statistics.median(ok)) if ok else float('nan'):.1f} ms, "
              f"worst {ms(max(ok)) if ok else float('nan'):.1f} ms",
              f"- fleet: {len(fleet)} requests, statuses {statuses}; 503s: median "
              f"{ms(statistics.median(fleet_503)) if fleet_503 else float('nan'):.1f} ms, "
              f"fastest {ms(fleet_503[0]) if fleet_503 else float('nan'):.1f} ms, "
              f"slowest {ms(fleet_503[-1]) if fleet_503 else float('nan'):.1f} ms "
              "(the slowest are the calls that timed out before the circuit opened)",
              f"- whoami calls that reached Bitbucket: {whoami}"]
    return "\n".join(lines) + "\n"


def main():
    workdir = Path(tempfile.mkdtemp(prefix="bbauth-bench-bb-", dir=os.environ.get("BBAUTH_TEST_TMPDIR", "/tmp")))
    os.chmod(workdir, 0o755)
    site = bbsite.make_site(lambda start=False, **opts: harness.Apache(workdir / "httpd", **opts), workdir,
                            conf=conf, start=False, servers=1, threads=THREADS, log_level="warn")
    try:
        site.apache.write_htdoc("packages/file.txt", "a package\n")
        site.apache.start()
        site.fb.set_mode("all", "slow", seconds=DELAY_MS / 1000.0)
        token_miss(site)                 # warm the process: its first connection
        login(site)
        ops = {"token miss": per_operation(site, lambda: token_miss(site)),
               "login (callback)": per_operation(site, lambda: login(site))}
        fleet, pages, whoami = outage(site)
    finally:
        site.apache.stop()
        site.fb.stop()
    text = report(ops, fleet, pages, whoami)
    RESULTS.write_text(text)
    print(text)
    print(f"bench: written to {RESULTS}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
