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
import sys
import tempfile
import time
from pathlib import Path

import jwt  # Debian's python3-jwt

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))
import bench  # noqa: E402  (BENCH_SECONDS, BENCH_ROUNDS, BENCH_CONNECTIONS, BENCH_THREADS and the rounds)
import benchsite  # noqa: E402
import bbsite  # noqa: E402

SESSIONS = int(os.environ.get("BENCH_SESSIONS", "1000"))
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


class Target(benchsite.Target):
    """A target whose requests wrk makes with a Lua script (the rotated cookies)."""

    def __init__(self, name, url, script):
        super().__init__(name, url)
        self.script = script


def targets(site, workdir):
    """{name: Target} for the four targets."""
    real = site.targets["cookie"].headers["Cookie"].split("=", 1)[1]
    claims = jwt.decode(real, options={"verify_signature": False})
    many = sessions_like(claims, SESSIONS)
    hs_kid = jwt.get_unverified_header(real)["kid"]
    hs256 = [jwt.encode(c, site.site.keys[0], algorithm="HS256", headers={"kid": hs_kid, "typ": "JWT"})
             for c in many]
    es_kid = bbsite.thumbprint(site.signing_key.public_key())
    es256 = [jwt.encode(c, site.signing_key, algorithm="ES256", headers={"kid": es_kid, "typ": "JWT"})
             for c in many]
    hs_script = write_script(workdir, "hs256", hs256)
    es_script = write_script(workdir, "es256", es256)
    return {t.name: t for t in (Target("floor-many", site.targets["floor"].url, hs_script),
                                Target("cookie-many", site.targets["cookie"].url, hs_script),
                                Target("cookie-es256-many", site.targets["cookie-es256"].url, es_script),
                                Target("cookie-assert-many", site.targets["cookie-assert"].url, es_script))}


def report(rounds, load_before, load_after):
    lines = ["# mod_bbauth many-sessions benchmark", "",
             f"Written by tests/bench/many_sessions.py ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): "
             f"{SESSIONS} sessions, cookies rotated per request (wrk Lua), {bench.CONNECTIONS} connections, "
             f"{bench.THREADS} wrk threads, {bench.ROUNDS} rounds x {bench.SECONDS} s, BBAuthCache "
             f"{CACHE or '(default)'}; load average before {load_before}, after {load_after} (a shared machine).",
             "", "| target | req/s (median) | p99 ms (median) | / floor-many (median, min-max) | socket errors |",
             "|---|---|---|---|---|"]
    for name, rps, _, _, p99 in bench.summarize(rounds):
        r = bench.ratio(rounds, name, "floor-many")
        resets = sum(rnd[name].socket_errors for rnd in rounds)
        requests = sum(rnd[name].requests for rnd in rounds)
        lines.append(f"| {name} | {rps:.0f} | {p99:.2f} | {r[0]:.2f} ({r[1]:.2f}-{r[2]:.2f}) | {resets} of {requests} |")
    lines += ["", "Goals: cookie-many/floor >= 0.95, cookie-assert-many/floor >= 0.90."]
    return "\n".join(lines) + "\n"


def main():
    workdir = Path(tempfile.mkdtemp(prefix="bbauth-bench-many-", dir=os.environ.get("BBAUTH_TEST_TMPDIR", "/tmp")))
    os.chmod(workdir, 0o755)
    print(f"bench many: ServerRoot in {workdir}; {SESSIONS} sessions", flush=True)
    load_before = os.getloadavg()[0]
    extra = f"BBAuthCache {CACHE}\n" if CACHE else ""
    with benchsite.BenchSite(workdir / "site", oidc=False, extra_conf=extra) as site:
        site.targets = targets(site, workdir)
        rounds = bench.run_rounds(site, socket_errors_ok=True)
    text = report(rounds, f"{load_before:.1f}", f"{os.getloadavg()[0]:.1f}")
    RESULTS.write_text(text)
    print("\n" + text)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
