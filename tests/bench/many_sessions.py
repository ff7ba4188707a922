#!/usr/bin/python3
"""`make bench`, many sessions: the cookie targets with BENCH_SESSIONS (default 1000) sessions whose cookies rotate
request by request (wrk's Lua), against the floor with the same cookies on the wire.

    floor-many          Require expr on the Cookie header, the rotated cookies
    cookie-many         AuthType Bitbucket, HS256 cookies (the session key file)
    cookie-es256-many   the virtual host with BBAuthSigningKey (P-256): ES256 cookies
    cookie-assert-many  cookie-es256-many with BBAuthIdentityAssertion On

The sessions are made like a login makes them (claims of a real login's cookie, with a sid, user and login time of
their own, and no grant: BBAuthSessionRevalidate takes them for a period from their login), signed with the site's keys: what a thousand people logged in at once send. Each process's memos must
hold them all, or every miss is a signature verification (and with the assertion, a signature). The ratios to the
floor are taken within a round (BENCH_ROUNDS rounds of BENCH_SECONDS s each, the median reported); the result is
printed and written to $BENCH_MANY_RESULTS (default tests/bench/results-many.md).
"""

import base64
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jwt  # Debian's python3-jwt

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))
import benchsite  # noqa: E402
import bbsite  # noqa: E402
from wrkrun import run_wrk  # noqa: E402

SESSIONS = int(os.environ.get("BENCH_SESSIONS", "1000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
RESULTS = Path(os.environ.get("BENCH_MANY_RESULTS", HERE / "results-many.md"))
CACHE = os.environ.get("BENCH_MANY_CACHE", "")         # a BBAuthCache argument; default: the module's default

# Each wrk thread starts at a random cookie and takes the next one for every request.
ROTATE_LUA = """
local cookies = {}
for line in io.lines("%s") do cookies[#cookies + 1] = line end
local at = 0
function init(args)
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%%x+)"), 16) %% 1000003)
    at = math.random(#cookies)
end
function request()
    at = at %% #cookies + 1
    return wrk.format(nil, nil, {["Cookie"] = "bbauth_session=" .. cookies[at]})
end
"""


def sessions_like(claims, count):
    """count sessions like the one of `claims`: a sid, a user and a login time (now) of their own."""
    now = int(time.time())
    out = []
    for i in range(count):
        c = dict(claims)
        c.pop("grant", None)      # no grant kept for them: revalidation accepts them for a period from login
        c.update({"sid": base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode(),
                  "sub": f"user{i:05d}", "name": f"User {i}", "email": f"user{i:05d}@example.com", "uid": 1000 + i,
                  "auth_time": now, "iat": now, "exp": min(claims["exp"] - claims["iat"] + now,
                                                            now + 28800)})
        out.append(c)
    return out


def write_script(workdir, name, cookies):
    lines = workdir / f"{name}.cookies"
    lines.write_text("\n".join(cookies) + "\n")
    script = workdir / f"{name}.lua"
    script.write_text(ROTATE_LUA % lines)
    return script


def targets(bench, workdir):
    """{name: (url, lua script)} for the four targets."""
    site = bench.site
    real = bench.targets["cookie"].headers["Cookie"].split("=", 1)[1]
    claims = jwt.decode(real, options={"verify_signature": False})
    many = sessions_like(claims, SESSIONS)
    hs_kid = jwt.get_unverified_header(real)["kid"]
    hs256 = [jwt.encode(c, site.keys[0], algorithm="HS256", headers={"kid": hs_kid, "typ": "JWT"}) for c in many]
    es_kid = bbsite.thumbprint(bench.signing_key.public_key())
    es256 = [jwt.encode(c, bench.signing_key, algorithm="ES256", headers={"kid": es_kid, "typ": "JWT"})
             for c in many]
    hs_script = write_script(workdir, "hs256", hs256)
    es_script = write_script(workdir, "es256", es256)
    return {
        "floor-many": (bench.targets["floor"].url, hs_script),
        "cookie-many": (bench.targets["cookie"].url, hs_script),
        "cookie-es256-many": (bench.targets["cookie-es256"].url, es_script),
        "cookie-assert-many": (bench.targets["cookie-assert"].url, es_script),
    }


def run_rounds(named):
    names = list(named)
    for name in names:                                   # warm-up: every process sees every session once or more
        run_wrk(named[name][0], None, 2, CONNECTIONS, THREADS, script=named[name][1])
    rounds = []
    for r in range(ROUNDS):
        order = names[r % len(names):] + names[:r % len(names)]
        results = {}
        for name in order:
            res = run_wrk(named[name][0], None, SECONDS, CONNECTIONS, THREADS, script=named[name][1])
            if res.errors:
                raise SystemExit(f"{name}: {res.errors} errors (non-2xx or socket errors) under load:\n{res.text}")
            results[name] = res
            print(f"  round {r + 1} {name:20s} {res.rps:10.0f} req/s   p99 {res.p99:7.2f} ms", flush=True)
        rounds.append(results)
    return rounds


def report(rounds, load_before, load_after):
    lines = ["# mod_bbauth many-sessions benchmark", "",
             f"Written by tests/bench/many_sessions.py ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): "
             f"{SESSIONS} sessions, cookies rotated per request (wrk Lua), {CONNECTIONS} connections, "
             f"{THREADS} wrk threads, {ROUNDS} rounds x {SECONDS} s, BBAuthCache {CACHE or '(default)'}; load average before {load_before}, after "
             f"{load_after} (a shared machine).", "",
             "| target | req/s (median) | p99 ms (median) | / floor-many (median, min-max) |",
             "|---|---|---|---|"]
    for name in rounds[0]:
        rps = statistics.median(r[name].rps for r in rounds)
        p99 = statistics.median(r[name].p99 for r in rounds)
        ratios = [r[name].rps / r["floor-many"].rps for r in rounds]
        lines.append(f"| {name} | {rps:.0f} | {p99:.2f} | {statistics.median(ratios):.2f} "
                     f"({min(ratios):.2f}-{max(ratios):.2f}) |")
    lines += ["", "Goals: cookie-many/floor >= 0.95, cookie-assert-many/floor >= 0.90."]
    return "\n".join(lines) + "\n"


def main():
    workdir = Path(tempfile.mkdtemp(prefix="bbauth-bench-many-", dir=os.environ.get("BBAUTH_TEST_TMPDIR", "/tmp")))
    os.chmod(workdir, 0o755)
    print(f"bench many: ServerRoot in {workdir}; {SESSIONS} sessions", flush=True)
    load_before = os.getloadavg()[0]
    extra = f"BBAuthCache {CACHE}\n" if CACHE else ""
    with benchsite.BenchSite(workdir / "site", oidc=False, extra_conf=extra) as bench:
        named = targets(bench, workdir)
        rounds = run_rounds(named)
    text = report(rounds, f"{load_before:.1f}", f"{os.getloadavg()[0]:.1f}")
    RESULTS.write_text(text)
    print("\n" + text)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
