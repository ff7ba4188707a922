#!/usr/bin/python3
"""`make soak`: wrk for SOAK_SECONDS (60) at SOAK_CONNECTIONS (64) against one Apache with mod_bbauth, mixing
requests with valid session cookies (three users), token-cache hits (two tokens), anonymous requests to the
protected location (401) and to an open one. Passes when every answer is the expected one (status and the
identity the module saw, which every location echoes in X-Seen-User), wrk reports no socket error, the error log
has no error, no child was replaced, and the children's memory (RSS) is flat from 10 s to the end.
Not part of `make test` (it takes a minute and the whole machine). Loopback only.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import benchsite  # noqa: E402
from wrkrun import run_wrk  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS", "60"))
CONNECTIONS = int(os.environ.get("SOAK_CONNECTIONS", "64"))
THREADS = int(os.environ.get("SOAK_THREADS", "2"))
RSS_FROM = 10                                   # seconds: the warm-up the memory may still grow in
RSS_SLACK_KB = int(os.environ.get("SOAK_RSS_SLACK_KB", "4096"))   # per child, from RSS_FROM to the end
BOB_TOKEN = "BBDC-bobPersonalReadToken00000000000000000005"       # tests/fakebb/users.json

LUA = r"""
local kinds = %(kinds)s
local n = 0
sent, seen = {}, {}
for _, k in ipairs(kinds) do sent[k.expect] = 0 end

request = function()
  n = n + 1
  local k = kinds[(n %% #kinds) + 1]
  sent[k.expect] = sent[k.expect] + 1
  return wrk.format("GET", k.path, k.headers)
end

response = function(status, headers, body)
  local key = status .. " " .. tostring(headers["X-Seen-User"])
  if status == 200 and #body ~= %(payload_len)d then key = key .. " (wrong body)" end
  seen[key] = (seen[key] or 0) + 1
end

local threads = {}
setup = function(thread) table.insert(threads, thread) end

done = function(summary, latency, requests)
  local total_sent, total_seen = {}, {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("sent")) do total_sent[k] = (total_sent[k] or 0) + v end
    for k, v in pairs(t:get("seen")) do total_seen[k] = (total_seen[k] or 0) + v end
  end
  for k, v in pairs(total_sent) do io.write("SOAK sent\t" .. k .. "\t" .. v .. "\n") end
  for k, v in pairs(total_seen) do io.write("SOAK seen\t" .. k .. "\t" .. v .. "\n") end
end
"""


def lua_table(kinds):
    def s(x):
        return json.dumps(x)   # a JSON string is a valid Lua string literal for these ASCII values
    items = []
    for k in kinds:
        headers = ", ".join(f"[{s(n)}] = {s(v)}" for n, v in k["headers"].items())
        items.append(f"{{path = {s(k['path'])}, expect = {s(k['expect'])}, headers = {{{headers}}}}}")
    return "{" + ", ".join(items) + "}"


def child_pids(apache):
    parent = apache._read_pid()
    return [pid for pid in apache.processes() if pid != parent]


def children(pids):
    """{pid: rss_kb} of those of the Apache children that are still there."""
    out = {}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        m = re.search(r"^VmRSS:\s*(\d+) kB", status, re.M)
        if m:
            out[pid] = int(m.group(1))
    return out


def main():
    failures = []
    workdir = Path(tempfile.mkdtemp(prefix="bbauth-soak-", dir=os.environ.get("BBAUTH_TEST_TMPDIR", "/tmp")))
    print(f"soak: {SECONDS} s at {CONNECTIONS} connections; ServerRoot in {workdir}", flush=True)
    with benchsite.BenchSite(workdir, threads=CONNECTIONS, oidc=False) as site:
        a = site.apache
        cookies = {"bob": site.targets["cookie"].headers["Cookie"]}
        for user in ("alice", "jane@example.com"):
            s = site.site.session()
            site.site.login(s, "/cookie/file.txt", user=user)
            cookies[user] = "bbauth_session=" + site.site.session_cookie(s)
        kinds = [{"path": "/cookie/file.txt", "headers": {"Cookie": c}, "expect": f"200 {u}"}
                 for u, c in cookies.items()]
        kinds += [{"path": "/token/file.txt", "headers": {"Authorization": f"Bearer {t}"}, "expect": f"200 {u}"}
                  for u, t in (("alice", benchsite.ALICE_TOKEN), ("bob", BOB_TOKEN))]
        kinds += [{"path": "/cookie/file.txt", "headers": {}, "expect": "401 (null)"},
                  {"path": "/token/file.txt", "headers": {"Accept": "text/html"}, "expect": "302 (null)"},
                  {"path": "/open/file.txt", "headers": {}, "expect": "200 (null)"}]
        script = workdir / "soak.lua"
        script.write_text(LUA % {"kinds": lua_table(kinds), "payload_len": len(benchsite.PAYLOAD)})
        mark = a.log_mark()
        pids = child_pids(a)
        before = children(pids)

        samples = []
        stop = threading.Event()

        def sample():
            t0 = time.monotonic()
            while not stop.wait(1.0):
                samples.append((time.monotonic() - t0, children(pids)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            # wrk's own timeout only says the machine was too busy to answer in time: 30 s, not its 2 s
            res = run_wrk(a.url("/open/file.txt"), None, SECONDS, CONNECTIONS, THREADS, script=script,
                          timeout_s=30)
        finally:
            stop.set()
            sampler.join()
        after = children(pids)
        replaced = sorted(set(child_pids(a)) ^ set(pids))
        errors = a.error_log_since(mark)

    sent, seen = {}, {}
    for kind, key, n in re.findall(r"^SOAK (sent|seen)\t(.*)\t(\d+)$", res.text, re.M):
        (sent if kind == "sent" else seen)[key] = int(n)
    print(f"soak: {res.requests} requests, {res.rps:.0f}/s, p99 {res.p99:.2f} ms, {res.socket_error_line}")
    for key in sorted(set(sent) | set(seen)):
        print(f"  {key:28s} sent {sent.get(key, 0):9d}   answered {seen.get(key, 0):9d}")
    unexpected = {k: v for k, v in seen.items() if k not in sent}
    if unexpected:
        failures.append(f"unexpected answers: {unexpected}")
    for key, n in sent.items():
        # requests still in flight when wrk stops are sent but not answered: at most one per connection
        if not 0 <= n - seen.get(key, 0) <= CONNECTIONS:
            failures.append(f"{key}: sent {n}, answered {seen.get(key, 0)}")
    if res.socket_errors:
        failures.append(f"wrk: {res.socket_error_line}")
    bad_lines = [l for l in errors.splitlines() if re.search(r":(error|crit|alert|emerg)\]|exit signal", l)]
    if bad_lines:
        failures.append("error log:\n" + "\n".join(bad_lines[:20]))
    if replaced or set(after) != set(before):
        failures.append(f"children changed during the soak: {sorted(before)} -> {sorted(after)} ({replaced})")

    base = next((c for t, c in samples if t >= RSS_FROM), None)
    if base is None:
        failures.append("no memory sample at 10 s (SOAK_SECONDS too short?)")
    else:
        print(f"  RSS per child (kB) at {RSS_FROM} s: {base}; at the end: {after}")
        for t, c in samples[::10]:
            print(f"    t={t:5.1f}s  " + "  ".join(f"{pid}:{kb}" for pid, kb in sorted(c.items())))
        for pid, kb in base.items():
            if pid in after and after[pid] - kb > RSS_SLACK_KB:
                failures.append(f"child {pid} grew from {kb} kB to {after[pid]} kB after {RSS_FROM} s")
    if failures:
        print("soak: FAILED\n- " + "\n- ".join(failures))
        print(f"soak: ServerRoot kept in {workdir}")
        sys.exit(1)
    shutil.rmtree(workdir, ignore_errors=True)
    print("soak: passed")


if __name__ == "__main__":
    main()
