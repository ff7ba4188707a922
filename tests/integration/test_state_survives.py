"""Issue 21: session state that outlives reloads, restarts and cache outages, through a real Apache.

The default cache (mod_socache_dbm in the runtime directory) keeps live sessions, logouts and grants across
`apachectl graceful` and a full restart; a cache that was emptied (shmcb reloaded, memcached or redis restarted)
makes the sessions that began before it log in again instead of forgetting their logouts; a cache that cannot be
reached is a 503, never a "not logged out", and the module recovers by itself; memcache's 30-day limit is refused by
`apachectl -t`."""

import hashlib
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest

import bbsite
import cacheserver
import oauth1site
from apache import free_port, port_open
from test_shared_state import copy_of, scripted

REVALIDATE_OFF = "BBAuthSessionRevalidate 0\n"
# Every request asks the cache (no per-process memo of "not logged out"): what is tested is the cache.
RECHECK_NOW = "BBAuthSessionRecheck 0\n"


def get(site, s, path="/packages/echo"):
    return s.get(site.url(path), allow_redirects=False)


def live_and_logged_out(site):
    """(a script with alice's live session, a copy of bob's session cookie that was then logged out)."""
    alice, bob = site.session(), site.session()
    site.login(alice, "/packages/echo", user="alice")
    site.login(bob, "/packages/echo", user="bob")
    live, logged_out = copy_of(site, alice), copy_of(site, bob)
    assert get(site, live).status_code == 200
    assert site.logout(bob).status_code == 302
    assert get(site, logged_out).status_code == 401
    return live, logged_out


def next_second():
    """Waits until the clock reaches the next whole second: a session that began in the very second the cache was
    emptied counts as begun after it (the epoch and auth_time are whole seconds), so an emptying that is tested
    comes in a later second than the logins."""
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.05)


def restart(site, how):
    if how == "graceful":
        site.apache.graceful()
    else:
        site.apache.stop()
        site.apache.start()


def statuses(site, s, count=6):
    """The statuses of `count` requests (spread over the Apache's processes)."""
    return {get(site, s).status_code for _ in range(count)}


@pytest.mark.parametrize("how", ["graceful", "full"])
@pytest.mark.parametrize("revalidate", ["", REVALIDATE_OFF], ids=["revalidate", "no-revalidate"])
def test_the_default_cache_outlives_a_reload_and_a_restart(site_factory, how, revalidate):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + revalidate)
    live, logged_out = live_and_logged_out(site)
    site.fb.control("POST", "/_fake/calls/reset")
    restart(site, how)
    assert statuses(site, live) == {200}
    assert statuses(site, logged_out) == {401}
    assert site.fb.calls().get("token", 0) == 0            # nobody logged in again


@pytest.mark.parametrize("how", ["graceful", "full"])
def test_oauth1_sessions_and_logouts_outlive_a_reload_and_a_restart(site_factory, tmp_serverroot, how):
    site = oauth1site.make_oauth1_site(site_factory, tmp_serverroot)
    live, logged_out = live_and_logged_out(site)
    restart(site, how)
    assert statuses(site, live) == {200}
    assert statuses(site, logged_out) == {401}


def test_an_explicit_dbm_cache_works(site_factory, tmp_serverroot):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + f"BBAuthCache dbm:{tmp_serverroot}/bbauth\n")
    live, logged_out = live_and_logged_out(site)
    restart(site, "full")
    assert statuses(site, live) == {200}
    assert statuses(site, logged_out) == {401}


@pytest.mark.parametrize("revalidate", ["", REVALIDATE_OFF], ids=["revalidate", "no-revalidate"])
def test_an_emptied_shmcb_forgets_no_logout(site_factory, revalidate):
    """shmcb loses everything on a reload: the sessions from before it log in again (quietly for a browser), and a
    logged-out copy stays out."""
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + "BBAuthCache shmcb\n" + revalidate)
    alice = site.session()
    site.login(alice, "/packages/echo", user="alice")
    live = copy_of(site, alice)
    bob = site.session()
    site.login(bob, "/packages/echo", user="bob")
    logged_out = copy_of(site, bob)
    assert site.logout(bob).status_code == 302
    mark = site.apache.log_mark()
    next_second()
    site.apache.graceful()
    assert statuses(site, logged_out) == {401}
    assert statuses(site, live) == {401}
    assert "began before the shared cache (BBAuthCache) was emptied" in site.apache.error_log_since(mark)
    r = get(site, alice)                                    # a browser: a quiet login, then in again
    assert r.status_code == 302
    callback = site.authorize(alice, r.headers["Location"])
    assert get(site, alice, callback.replace(site.apache.base_url, "")).status_code == 302
    assert site.echo(alice)["remote_user"] == "alice"
    assert statuses(site, logged_out) == {401}


class CacheServer:
    """memcached or redis on a port of its own, stopped (by PID) and started again on the same port: a restart
    that empties it."""

    def __init__(self, kind):
        why = cacheserver.missing(kind)
        if why:
            pytest.skip(why)
        self.kind, self.port, self.proc = kind, free_port(), None

    def start(self):
        self.proc = subprocess.Popen(cacheserver.SERVERS[self.kind][1](self.port), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while not port_open(self.port) and time.time() < deadline:
            time.sleep(0.05)
        assert port_open(self.port), f"{self.kind} did not start"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        deadline = time.time() + 10
        while port_open(self.port) and time.time() < deadline:
            time.sleep(0.05)


@pytest.fixture(params=["memcache", "redis"])
def server(request):
    srv = CacheServer(request.param)
    srv.start()
    yield srv
    if srv.proc.poll() is None:
        srv.stop()


def statuses_once_every_process_answers(site, s, never=None, seconds=40):
    """statuses() once no process says the cache is unreachable (503): each process's provider retries the server
    it marked dead on a clock of its own, so one process may answer while another still waits. `never`: a status
    that must not appear meanwhile either."""
    deadline = time.time() + seconds
    while True:
        seen = statuses(site, s)
        assert never not in seen
        if 503 not in seen or time.time() > deadline:
            return seen
        time.sleep(0.2)


def login_once_it_answers(site, seconds=40):
    """A browser logged in as zoe once the cache answers again (the provider retries a server it marked dead
    after a while of its own; until then the login's callback gets 503)."""
    deadline = time.time() + seconds
    while True:
        s = site.session()
        r = site.start_login(s, "/packages/echo")
        r = s.get(site.authorize(s, r.headers["Location"], user="zoe"), allow_redirects=False)
        if r.status_code == 302 or time.time() > deadline:
            assert r.status_code == 302, (r.status_code, r.text[:300])
            return s
        assert r.status_code == 503
        time.sleep(0.2)


def metric(site, name):
    text = site.session().get(site.url("/bbauth-metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


METRICS = """
<Location /bbauth-metrics>
    SetHandler bbauth-metrics
</Location>
"""


@pytest.mark.parametrize("recheck, reread", [("", False), ("BBAuthSessionRecheck 5\n", True)],
                         ids=["default", "explicit-5s"])
def test_a_host_local_cache_is_asked_once_a_minute_per_session(site_factory, recheck, reread):
    # The default cache (dbm) is this host's alone: only its processes write to it, and a logout here voids every
    # process's memory of "not logged out" at once. So each process believes that memory for 60 s by default, not
    # for BBAuthSessionRecheck's 5 s (made for farms, where other hosts log sessions out): at 1,000 sessions, a read
    # of the dbm file per session per process every 5 s cost the cookie path 5 % (tests/bench/results-many.md).
    # A BBAuthSessionRecheck that is set holds. What is counted: each such check finds no logout mark and reads the
    # canary, the one entry a session's check finds ("hit").
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + REVALIDATE_OFF + recheck + METRICS)
    alice = site.session()
    site.login(alice, "/packages/echo", user="alice")
    live, other_copy = copy_of(site, alice), copy_of(site, alice)
    assert statuses(site, live, 12) == {200} and statuses(site, other_copy, 12) == {200}
    hits = metric(site, 'bbauth_cache_operations_total{op="retrieve",result="hit"}')
    time.sleep(6)                                           # past 5 s: the wait is what is tested
    assert statuses(site, live, 12) == {200}
    assert (metric(site, 'bbauth_cache_operations_total{op="retrieve",result="hit"}') > hits) == reread
    # A logout on this host still counts at once, in every process.
    assert site.logout(live).status_code == 302
    assert statuses(site, other_copy, 12) == {401}


def sockets_of(pid):
    """The inodes of the sockets process pid holds open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    return inodes


def connections_to(port):
    """The inodes of the established TCP connections to 127.0.0.1:port (/proc/net/tcp)."""
    found = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port and fields[3] == "01":
            found.add(fields[9])
    return found


def test_no_two_processes_share_a_connection_to_the_cache(site_factory, server):
    # The canary was written at start-up by the parent, whose connection (kept in the provider's pool) every child
    # inherited at fork: two children on one connection read each other's answers, and under load a logout-mark
    # lookup got another process's reply (503s, "scache_rd: 'retrieve' OVERFLOW"; a "not found" could have let a
    # logged-out copy in). Now the parent holds none, and each child its own.
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + f"BBAuthCache {server.kind}:127.0.0.1:{server.port}\n"
                        + REVALIDATE_OFF + RECHECK_NOW, modules=(f"socache_{server.kind}",))
    live, logged_out = live_and_logged_out(site)
    parent = site.apache._read_pid()
    assert not sockets_of(parent) & connections_to(server.port)
    held = [sockets_of(pid) & connections_to(server.port) for pid in site.apache.processes() if pid != parent]
    assert all(not (a & b) for i, a in enumerate(held) for b in held[i + 1:]), held
    # Every request asks the cache (RECHECK_NOW), from both processes at once: each answer is the right one.
    def burst(s, count=60):
        c = copy_of(site, s)
        return [get(site, c).status_code for _ in range(count)]
    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(burst, [live, logged_out] * 4))
    assert [set(r) for r in runs] == [{200}, {401}] * 4


def test_a_cache_server_stopped_then_restarted_empty(site_factory, server):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + f"BBAuthCache {server.kind}:127.0.0.1:{server.port}\n"
                        + REVALIDATE_OFF + RECHECK_NOW + METRICS, modules=(f"socache_{server.kind}",))
    live, logged_out = live_and_logged_out(site)
    server.stop()
    mark = site.apache.log_mark()
    # Blind: never a "yes", for the live session nor for the logged-out copy.
    assert statuses(site, live) == {503}
    assert statuses(site, logged_out) <= {401, 503}
    assert "the shared cache (BBAuthCache) did not answer" in site.apache.error_log_since(mark)
    assert metric(site, 'bbauth_sessions_refused_total{reason="cache_error"}') >= 6
    assert metric(site, 'bbauth_cache_operations_total{op="store",result="error"}') >= 1
    next_second()
    server.start()                                          # back, and empty
    newcomer = login_once_it_answers(site)                  # the first to use it again is a login
    next_second()
    # Made after the emptying: fine (never a 401, which would judge it older than the emptying).
    assert statuses_once_every_process_answers(site, copy_of(site, newcomer), never=401) == {200}
    # Its logout mark could be lost: log in again (never a 200).
    assert statuses_once_every_process_answers(site, live, never=200) == {401}
    assert statuses_once_every_process_answers(site, logged_out, never=200) == {401}
    assert metric(site, 'bbauth_sessions_refused_total{reason="cache_emptied"}') >= 6


def test_memcache_refuses_a_session_max_age_over_30_days(site_factory):
    port = free_port()
    site = site_factory(start=False, modules=("socache_memcache",))
    rc, out = site.apache.configtest(bbsite.protected_conf(site) + f"BBAuthCache memcache:127.0.0.1:{port}\n"
                                     "BBAuthSessionMaxAge 2600000\n")
    assert rc != 0
    assert "BBAuthSessionMaxAge 2600000" in out and "2592000 (30 days)" in out
    rc, out = site.apache.configtest(bbsite.protected_conf(site) + f"BBAuthCache memcache:127.0.0.1:{port}\n"
                                     "BBAuthSessionMaxAge 2592000\n")
    assert rc == 0, out
    rc, out = site.apache.configtest(bbsite.protected_conf(site) + "BBAuthSessionMaxAge 2600000\n")
    assert rc == 0, out


# ---- revalidation without holes ----

def wait_until(t):
    """Waits until the clock reaches unix time t (a revalidation period falls due)."""
    while time.time() < t:
        time.sleep(0.05)


def test_a_session_from_before_the_grant_claim_logs_in_again_when_revalidation_is_due(site_factory):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + "BBAuthSessionRevalidate 1\n")
    next_second()                                           # after the cache's epoch, which is the start
    now = int(time.time())
    claims = {"sub": "alice", "uid": 101, "name": "Alice", "email": "alice@example.com", "sid": "cHJlLWdyYW50LXNpZA",
              "iss": site.apache.base_url, "auth_time": now, "iat": now, "exp": now + 3600}
    kid = hashlib.sha256(site.keys[0]).hexdigest()[:16]
    cookie = jwt.encode(claims, site.keys[0], algorithm="HS256", headers={"kid": kid, "typ": "JWT"})
    script = scripted(site.session())
    script.cookies.set("bbauth_session", cookie)
    wait_until(now + 2)
    mark = site.apache.log_mark()
    assert get(site, script).status_code == 401
    assert "no Bitbucket grant is kept for it (its login kept none" in site.apache.error_log_since(mark)
    browser = site.session()
    browser.cookies.set("bbauth_session", cookie)
    r = get(site, browser)
    assert r.status_code == 302
    assert r.headers["Location"].startswith(site.fb.base_url + "/rest/oauth2/latest/authorize?")


ERROR_DOCUMENT = """
Alias /public @HTDOCS@
<Location /public>
    ErrorDocument 404 /packages/echo
</Location>
"""


def test_an_internal_request_revalidates_like_the_clients(site_factory):
    """A deactivated user's session reaches a protected page through an ErrorDocument: the internal request
    revalidates it (Bitbucket says no), so the page does not show the user."""
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + "BBAuthSessionRevalidate 1\n" + ERROR_DOCUMENT)
    s = site.session()
    site.login(s, "/packages/echo", user="alice")
    site.fb.control("POST", "/_fake/users/alice/deactivate")
    wait_until(time.time() + 1.5)                           # revalidation falls due
    site.fb.control("POST", "/_fake/calls/reset")
    r = scripted(s).get(site.url("/public/no-such-file"), allow_redirects=False)
    assert r.status_code == 404
    assert "alice" not in r.text
    assert site.fb.calls().get("whoami", 0) >= 1
    assert get(site, s).status_code == 401                  # and the session is over
