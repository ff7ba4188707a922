"""Issue 18: security operations. BBAuthAuditLog (one JSON line per authentication decision, read back field by
field and by jq), LogFormat's %{BBAUTH_*}e, cutting a user off on every host of a farm (SetHandler bbauth-admin),
and the readiness check (SetHandler bbauth-health) as the shared cache stops and comes back."""

import json
import re
import signal
import subprocess
import time
from urllib.parse import parse_qs, urlsplit

import pytest

import bbsite
import cacheserver
from apache import free_port, port_open

ALICE_TOKEN = "BBDC-alicePersonalReadToken0000000000000000001"
BOB_TOKEN = "BBDC-bobPersonalReadToken00000000000000000005"
REPO_CALL = "repo"     # the fake's name for the call that answers Require bitbucket-repo
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FIELDS = ["time", "event", "outcome", "reason", "user", "client", "method", "path", "vhost", "location",
          "request_id"]

AUDIT_CONF = """
BBAuthAuditLog logs/audit.log
BBAuthCircuitFailures 2
LogFormat "%{BBAUTH_USER}e %{BBAUTH_METHOD}e %{BBAUTH_DECISION}e %U" bbauth
CustomLog logs/bbauth_access.log bbauth
<Location /packages>
    BBAuthTokenAuth On
</Location>
"""


def wait_until(condition, timeout=20, what="condition"):
    """Polls condition() until it is true (its value), at most `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def audit_lines(site):
    path = site.apache.logs_dir / "audit.log"
    return path.read_text().splitlines() if path.exists() else []


def audit_events(site):
    return [json.loads(line) for line in audit_lines(site)]


def events_named(site, name):
    return [e for e in audit_events(site) if e["event"] == name]


def one_event(site, name, **fields):
    """Waits for an event of that name with those fields; returns it."""
    def found():
        return [e for e in events_named(site, name) if all(e.get(k) == v for k, v in fields.items())]
    return wait_until(found, what=f"audit event {name} {fields}")[-1]


@pytest.fixture
def audited(site_factory):
    return site_factory(conf=lambda site: bbsite.protected_conf(site) + AUDIT_CONF, modules=("unique_id",))


def token_get(site, token, path="/packages/echo"):
    return site.session().get(site.url(path), headers={"Authorization": f"Bearer {token}", "Accept": "*/*"},
                              allow_redirects=False)


def test_audit_lines_of_a_scripted_day(audited):
    site = audited
    # alice logs in, reads, logs out; her old cookie comes back.
    s = site.session()
    site.login(s, "/packages/echo", user="alice")
    assert site.echo(s)["remote_user"] == "alice"
    old_cookie = site.session_cookie(s)
    assert site.logout(s).status_code == 302
    again = site.session()
    again.headers["Accept"] = "application/json"
    again.cookies.set("bbauth_session", old_cookie)
    assert again.get(site.url("/packages/echo"), allow_redirects=False).status_code == 401
    forged = site.session()
    forged.headers["Accept"] = "application/json"
    forged.cookies.set("bbauth_session", old_cookie[:-4] + "AAAA")
    assert forged.get(site.url("/packages/echo"), allow_redirects=False).status_code == 401
    # A login the user denies at Bitbucket.
    d = site.session()
    r = site.start_login(d, "/packages/echo")
    state = parse_qs(urlsplit(r.headers["Location"]).query)["state"][0]
    assert d.get(site.url(f"/bbauth/callback?error=access_denied&state={state}"),
                 allow_redirects=False).status_code == 403
    # A token accepted, then revoked at Bitbucket (a fresh check after the cache is bypassed: another token of
    # hers that was revoked from the start).
    assert token_get(site, ALICE_TOKEN).status_code == 200
    assert token_get(site, "BBDC-alicePersonalRevokedToken0000000000000004").status_code == 401
    # bob may not see /only-bob? He may; alice may not: a denied Require.
    a = site.session()
    site.login(a, "/only-bob/echo", user="alice")
    assert a.get(site.url("/only-bob/echo"), allow_redirects=False).status_code == 403
    # Bitbucket goes down: two failed checks open the circuit.
    site.fb.set_mode("all", "down")
    for i in range(2):
        assert token_get(site, f"BBDC-unknownToken{i:030d}").status_code == 503
    site.fb.set_mode("all", "normal")

    started = one_event(site, "login.started", path="/packages/echo")
    assert started["outcome"] == "redirected" and started["user"] is None
    done = one_event(site, "login.completed", user="alice")
    assert done["outcome"] == "success" and done["path"] == "/bbauth/callback" and done["method"] == "GET"
    logout = one_event(site, "logout", user="alice")
    assert logout["outcome"] == "success" and logout["location"] == "/logout"
    refused = one_event(site, "session.refused", user="alice", reason="logged out")
    assert refused["path"] == "/packages/echo" and refused["location"] == "/packages"
    tampered = one_event(site, "session.refused", reason="cookie invalid (bad signature, key or claims)")
    assert tampered["user"] is None and tampered["outcome"] == "refused"
    denied = one_event(site, "login.failed", reason="the user denied access at Bitbucket")
    assert denied["outcome"] == "failure"
    accepted = one_event(site, "token.accepted", user="alice")
    assert accepted["auth"] == "token" and re.fullmatch(r"[A-Za-z0-9_-]{12}", accepted["token"])
    revoked = one_event(site, "token.refused", outcome="refused")
    assert revoked["token"] != accepted["token"]
    rule = one_event(site, "require.denied", user="alice", rule="bitbucket-user bob")
    assert rule["outcome"] == "denied" and rule["auth"] == "session" and rule["location"] == "/only-bob"
    opened = one_event(site, "circuit.opened")
    assert opened["outcome"] == "opened" and "circuit open" in opened["reason"]

    events = audit_events(site)
    for e in events:
        assert list(e)[:len(FIELDS)] == FIELDS, e
        assert RFC3339_MS.match(e["time"]), e
        if e["event"].startswith("circuit."):
            continue
        assert e["client"] == "127.0.0.1" and e["vhost"] and "?" not in e["path"], e
        assert re.fullmatch(r"[A-Za-z0-9@_-]{20,}", e["request_id"] or ""), e  # mod_unique_id's UNIQUE_ID
    # jq takes every line; nothing secret is in any of them.
    text = (site.apache.logs_dir / "audit.log").read_text()
    jq = subprocess.run(["jq", "-c", ".event"], input=text, capture_output=True, text=True, timeout=30)
    assert jq.returncode == 0, jq.stderr
    assert len(jq.stdout.splitlines()) == len(events)
    for secret in [ALICE_TOKEN, "BBDC-alicePersonalRevokedToken0000000000000004", old_cookie, old_cookie[:-4],
                   bbsite.CLIENT_SECRET, state]:
        assert secret not in text
    assert "code=" not in text


def test_log_format_shows_user_method_and_decision(audited):
    site = audited
    s = site.session()
    site.login(s, "/packages/echo", user="alice")
    site.echo(s)
    assert token_get(site, BOB_TOKEN).status_code == 200
    log = site.apache.logs_dir / "bbauth_access.log"
    def logged():
        lines = log.read_text().splitlines() if log.exists() else []
        return lines if any(l.startswith("bob ") for l in lines) else None
    lines = wait_until(logged, what="the token request in the access log")
    assert "alice session session.accepted /packages/echo" in lines
    assert "bob token token.accepted /packages/echo" in lines
    assert "- - login.started /packages/echo" in lines


def test_circuit_opened_then_closed(site_factory):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + AUDIT_CONF + "BBAuthCircuitCooldown 1\n")
    site.fb.set_mode("all", "down")
    for i in range(2):
        assert token_get(site, f"BBDC-unknownToken{i:030d}").status_code == 503
    site.fb.set_mode("all", "normal")
    one_event(site, "circuit.opened")

    def closed():   # after the cool-down, a request's probe call succeeds and closes it
        token_get(site, BOB_TOKEN)
        return events_named(site, "circuit.closed")
    event = wait_until(closed, timeout=15, what="the circuit closed")[-1]
    assert event["outcome"] == "closed" and event["vhost"] and event["user"] is None
    assert events_named(site, "token.accepted")[-1]["user"] == "bob"


def test_revalidation_events(site_factory):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + AUDIT_CONF + "BBAuthSessionRevalidate 1\n")
    s = site.session()
    site.login(s, "/packages/echo", user="alice")

    def revalidated():
        site.echo(s)
        return events_named(site, "session.revalidated")
    event = wait_until(revalidated, timeout=15, what="a revalidation at Bitbucket")[-1]
    assert event["user"] == "alice" and event["outcome"] == "accepted"
    site.fb.control("POST", "/_fake/users/alice/deactivate")
    s.headers["Accept"] = "application/json"

    def ended():
        s.get(site.url("/packages/echo"), allow_redirects=False)
        return events_named(site, "session.ended")
    event = wait_until(ended, timeout=15, what="the session ended by revalidation")[-1]
    assert event["user"] == "alice" and event["outcome"] == "refused"


def test_a_hostile_path_or_name_cannot_forge_a_line(audited):
    site = audited
    forged = '"}\n{"event":"login.completed","outcome":"success","user":"admin\x1b[2J'
    s = site.session()
    r = s.get(site.url("/packages/" + "".join(f"%{b:02x}" for b in forged.encode())), allow_redirects=False)
    assert r.status_code == 302
    one_event(site, "login.started")
    lines = audit_lines(site)
    assert all(line.startswith('{"time":"') and line.endswith("}") for line in lines)
    assert all(all(0x20 <= ord(c) < 0x7f for c in line) for line in lines)
    started = [json.loads(line) for line in lines if '"login.started"' in line]
    assert started[-1]["path"] == "/packages/" + forged
    assert not [e for e in audit_events(site) if e["event"] == "login.completed"]


def test_audit_log_to_a_pipe(site_factory, tmp_serverroot):
    out = tmp_serverroot / "piped.log"
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + f'BBAuthAuditLog "|$/bin/cat >> {out}"\n')
    s = site.session()
    site.login(s, "/packages/echo", user="bob")
    line = wait_until(lambda: out.exists() and [l for l in out.read_text().splitlines() if "login.completed" in l],
                      what="a line through the pipe")[0]
    assert json.loads(line)["user"] == "bob"


@pytest.mark.parametrize("line, message", [
    ('BBAuthAuditLog "|"', "BBAuthAuditLog: give a file (relative to ServerRoot) or |program"),
    ('BBAuthAuditLog ""', "BBAuthAuditLog takes one argument"),
    ("BBAuthHealthCircuit maybe", "BBAuthHealthCircuit must be On or Off"),
])
def test_bad_directives_refused_by_configtest(site_factory, line, message):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + line + "\n", start=False)
    rc, output = site.apache.configtest()
    assert rc != 0 and message in output, output


def test_audit_log_that_cannot_be_opened_stops_the_start(apache_factory, tmp_serverroot, site_factory):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + "BBAuthAuditLog /nonexistent/dir/audit.log\n",
                        start=False)
    with pytest.raises(Exception):
        site.apache.start()
    assert "BBAuthAuditLog /nonexistent/dir/audit.log: cannot open it" in site.apache.error_log()


# ---- cutting a user off, on a farm of two hosts sharing memcached

ADMIN_CONF = """
BBAuthSessionRecheck 2
BBAuthSessionRevalidate 0
BBAuthAuditLog logs/audit.log
<Location /packages>
    BBAuthTokenAuth On
</Location>
<Location /admin>
    SetHandler bbauth-admin
    Require ip 127.0.0.1
</Location>
<Location /health>
    SetHandler bbauth-health
</Location>
"""


@pytest.fixture
def memcached():
    with cacheserver.running("memcache") as port:
        yield port


def start_farm(site_factory, apache_factory, port, extra=ADMIN_CONF):
    def conf(site):
        return bbsite.protected_conf(site) + f"BBAuthCache memcache:127.0.0.1:{port}\n" + extra

    a = site_factory(conf=conf, modules=("socache_memcache", "authz_host"))
    b_apache = apache_factory(start=False, modules=("socache_memcache", "authz_host"))
    b = bbsite.Site(b_apache, a.fb, a.pki, a.key_file, a.keys, a.redirect_uri)
    b_apache.extra_conf = lambda _a: conf(a)
    b_apache.start()
    return a, b


def browser_on(site, cookie):
    s = site.session()
    s.headers["Accept"] = "application/json"
    s.cookies.set("bbauth_session", cookie)
    return s


def cut_off(site, user, origin=None):
    return site.session().post(site.url("/admin"), data={"user": user},
                               headers={"Origin": origin or site.apache.base_url}, allow_redirects=False)


def logs_in_again(site, user, path="/packages/echo"):
    """A new login of a user who was cut off: one in the very second of the cut-off is refused too (the cut-off
    covers its whole second), so the browser logs in until a session works (bounded)."""
    def attempt():
        s = site.session()
        site.login(s, path, user=user)
        return s if s.get(site.url(path), allow_redirects=False).status_code == 200 else None
    return wait_until(attempt, timeout=15, what=f"{user} logs in again")


def test_cut_off_ends_sessions_and_token_verdicts_on_every_host(site_factory, apache_factory, memcached):
    a, b = start_farm(site_factory, apache_factory, memcached)
    alice, bob = a.session(), a.session()
    a.login(alice, "/packages/echo", user="alice")
    a.login(bob, "/packages/echo", user="bob")
    alice_cookie, bob_cookie = a.session_cookie(alice), a.session_cookie(bob)
    for host in (a, b):
        assert host.echo(browser_on(host, alice_cookie))["remote_user"] == "alice"
        assert token_get(host, ALICE_TOKEN).status_code == 200
        assert token_get(host, BOB_TOKEN).status_code == 200
    a.fb.control("POST", "/_fake/calls/reset")
    # She left: deactivated in Bitbucket, whose answers the module would otherwise trust for minutes.
    a.fb.control("POST", "/_fake/users/alice/deactivate")

    r = cut_off(a, "Alice")
    assert r.status_code == 200 and "Alice is cut off" in r.text
    for host in (a, b):
        wait_until(lambda: browser_on(host, alice_cookie).get(host.url("/packages/echo"),
                                                              allow_redirects=False).status_code == 401,
                   timeout=15, what=f"{host.apache.base_url} refuses alice's cookie")
        wait_until(lambda: token_get(host, ALICE_TOKEN).status_code == 401, timeout=15,
                   what=f"{host.apache.base_url} refuses alice's token")
        # bob is not affected, and his token verdict still comes from the cache.
        assert host.echo(browser_on(host, bob_cookie))["remote_user"] == "bob"
        assert token_get(host, BOB_TOKEN).status_code == 200
    calls = a.fb.calls()
    assert calls.get("whoami", 0) >= 1          # alice's token was asked about again ...
    assert calls.get("whoami", 0) <= 2          # ... once per host at most: not bob's
    cut = one_event(a, "user.cutoff", user="Alice")
    assert cut["outcome"] == "done"
    one_event(b, "user.refused", user="alice")

    # Back in Bitbucket: she can log in again, and her token works again after a fresh check.
    a.fb.control("POST", "/_fake/users/alice/activate")
    again = logs_in_again(b, "alice")
    assert a.echo(browser_on(a, b.session_cookie(again)))["remote_user"] == "alice"
    # (her read token stays refused for the 30 s the module remembers a refusal; another one of hers is checked)
    assert token_get(a, "BBDC-alicePersonalAdminToken000000000000000002").status_code == 200


def test_admin_refuses_cross_site_and_bad_requests(site_factory, apache_factory, memcached):
    a, _b = start_farm(site_factory, apache_factory, memcached)
    s = a.session()
    assert s.post(a.url("/admin"), data={"user": "alice"}, allow_redirects=False).status_code == 403
    assert cut_off(a, "alice", origin="https://evil.example").status_code == 403
    assert cut_off(a, "alice", origin=a.apache.base_url + ".evil.example").status_code == 403
    assert cut_off(a, "").status_code == 400
    assert cut_off(a, "x" * 300).status_code == 400
    r = cut_off(a, "eve\nil")
    assert r.status_code == 400 and "control characters" in r.text
    r = s.post(a.url("/admin"), data="garbage%zz", headers={"Origin": a.apache.base_url,
               "Content-Type": "application/x-www-form-urlencoded"}, allow_redirects=False)
    assert r.status_code == 400
    assert s.put(a.url("/admin"), data="user=alice", headers={"Origin": a.apache.base_url}).status_code == 405
    form = s.get(a.url("/admin"))
    assert form.status_code == 200 and 'name="user"' in form.text and "no-store" in form.headers["Cache-Control"]
    assert not events_named(a, "user.cutoff")
    # Nothing was cut off: alice still gets in.
    alice = a.session()
    a.login(alice, "/packages/echo", user="alice")
    assert a.echo(alice)["remote_user"] == "alice"


def test_require_decisions_from_before_a_cut_off_are_not_reused(site_factory, apache_factory, memcached):
    extra = ADMIN_CONF + bbsite.ALPHA_REPO_LOCATION
    a, b = start_farm(site_factory, apache_factory, memcached, extra)
    s = a.session()
    a.login(s, "/alpha/echo", user="alice")
    assert a.echo(s, "/alpha/echo")["remote_user"] == "alice"
    a.fb.control("POST", "/_fake/calls/reset")
    assert a.echo(s, "/alpha/echo")["remote_user"] == "alice"
    assert a.fb.calls().get(REPO_CALL, 0) == 0     # the decision came from the shared cache
    assert cut_off(a, "alice").status_code == 200
    again = logs_in_again(b, "alice", "/alpha/echo")
    assert b.echo(again, "/alpha/echo")["remote_user"] == "alice"
    assert a.fb.calls().get(REPO_CALL, 0) >= 1     # the decision from before the cut-off was not reused


# ---- readiness

class Memcached:
    """A memcached this test stops and starts again on the same port (by its PID)."""

    def __init__(self):
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(cacheserver.SERVERS["memcache"][1](self.port), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(lambda: port_open(self.port), timeout=10, what="memcached listening")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)


@pytest.fixture
def restartable_memcached():
    if cacheserver.missing("memcache"):
        pytest.skip(cacheserver.missing("memcache"))
    m = Memcached()
    m.start()
    yield m
    m.stop()


def health(site):
    r = site.session().get(site.url("/health"), allow_redirects=False)
    return r.status_code, r.json(), r


def test_health_follows_the_shared_cache(site_factory, restartable_memcached):
    port = restartable_memcached.port
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + f"BBAuthCache memcache:127.0.0.1:{port}\n"
                        + ADMIN_CONF, modules=("socache_memcache", "authz_host"))
    status, body, r = health(site)
    assert status == 200, body
    assert body == {"status": "ready", "cache": "ok", "keys": "loaded", "circuit": "closed"}
    assert r.headers["Content-Type"].startswith("application/json") and r.headers["Cache-Control"] == "no-store"
    restartable_memcached.stop()
    status, body, _ = health(site)
    assert status == 503 and body["status"] == "unready" and "shared cache" in body["reason"], body
    restartable_memcached.start()
    wait_until(lambda: health(site)[0] == 200, timeout=20, what="ready again after memcached is back")
    assert site.session().post(site.url("/health")).status_code == 405
    text = site.session().get(site.url("/health")).text
    assert bbsite.CLIENT_SECRET not in text and site.keys[0].hex() not in text


@pytest.mark.parametrize("circuit_matters", ["On", "Off"])
def test_health_reports_an_open_circuit(site_factory, circuit_matters):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + ADMIN_CONF + "BBAuthCircuitFailures 2\n"
                        f"BBAuthHealthCircuit {circuit_matters}\n", modules=("authz_host",))
    assert health(site)[0] == 200
    site.fb.set_mode("all", "down")
    for i in range(2):
        assert token_get(site, f"BBDC-unknownToken{i:030d}").status_code == 503
    site.fb.set_mode("all", "normal")
    status, body, _ = health(site)
    assert body["circuit"] == "open"
    if circuit_matters == "On":
        assert status == 503 and body["reason"] == "the circuit to Bitbucket is open"
    else:
        assert status == 200 and body["status"] == "ready"


@pytest.mark.parametrize("handler", ["bbauth-health", "bbauth-admin"])
def test_handlers_refused_in_a_server_without_the_settings(apache_factory, handler):
    a = apache_factory(f"""
<Location /ops>
    SetHandler {handler}
</Location>
""", start=False)
    rc, output = a.configtest()
    assert rc != 0 and f"SetHandler {handler}" in output and "BBAuthSessionKey" in output
