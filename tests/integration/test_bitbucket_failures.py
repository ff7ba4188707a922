"""Issue 2: Bitbucket failing during the callback (the code exchange at /rest/oauth2/latest/token, then the identity
calls whoami and /rest/api/1.0/users?filter=): down, slow past BBAuthTimeout, garbage JSON, the wrong content type
or shape, an oversized body, error statuses, a redirect elsewhere, a two-factor page, an untrusted certificate,
nothing listening, a name that does not resolve. Each time: a short escaped 502 page, ONE error-log line naming
what failed, the URL and what to check, nothing secret in the page or the log (LogLevel trace8), and the server
goes on serving.

The module learns the user's details from /users?filter=<name> (protocol notes §4: slugs may differ from names),
never from /users/{slug}: the fake's "user" group is shown not to matter."""

import re

import pytest

import bbsite
import fake_bitbucket
import testca
from apache import free_port
from bbsite import query_of

LOGIN_FAILED = re.compile(r"^.*\[bbauth:error\].*login failed: (.*)$", re.M)
BBAUTH_LINE = re.compile(r"^.*\[bbauth:.*$", re.M)
TIMEOUT = 1          # BBAuthTimeout of the failing site
SLOW = 5             # seconds the fake sleeps in "slow" mode: well past the timeout

TOKEN_URL = "/rest/oauth2/latest/token"
WHOAMI_URL = "/plugins/servlet/applinks/whoami"
USERS_URL = "/rest/api/1.0/users"
# The fake's mode groups (fake_bitbucket.py /_fake/mode) -> the first call of the callback that the group breaks.
GROUPS = {"token": TOKEN_URL, "oauth2": TOKEN_URL, "all": TOKEN_URL,
          "whoami": WHOAMI_URL, "users": USERS_URL, "rest": USERS_URL}
MODES = ("down", "garbage", "wrong_type", "wrong_shape", "oversized", "redirect", "twofactor",
         "status:500", "status:404", "status:401")
# After the URL, each log line tells the admin what to check (a directive, Bitbucket's health, a proxy, ...).
WHAT_TO_CHECK = re.compile(r"\bcheck\b|\bBBAuth[A-Z]")


def fail_conf(site):
    return bbsite.protected_conf(site).replace("BBAuthTimeout 3", f"BBAuthTimeout {TIMEOUT}") \
        + "LogLevel info bbauth:trace8\n"


@pytest.fixture(scope="module")
def shared_site(module_site_factory):
    return module_site_factory(conf=fail_conf)


@pytest.fixture
def site(shared_site):
    """The module's failing site, with the fake back to normal after each test."""
    shared_site.fb.set_mode("all", "normal")
    yield shared_site
    shared_site.fb.set_mode("all", "normal")


def callback_of_a_fresh_login(site, s):
    """The callback URL Bitbucket sends the browser to after alice approved, and the login's state."""
    r = site.start_login(s, "/packages/echo")
    return site.authorize(s, r.headers["Location"]), query_of(r.headers["Location"])["state"]


def secrets_of_the_login(site, cookie_values, callback, state):
    """Everything of this login that must never show: client secret, code, state, PKCE verifier, every token and
    code the fake has issued, and the browser's cookie values (ours and Bitbucket's) from before the callback."""
    found = [bbsite.CLIENT_SECRET, query_of(callback)["code"], state] + bbsite.fake_secrets(site.fb)
    for entry in site.fb.control("GET", "/_fake/log?endpoint=token")["entries"]:
        found += (entry.get("form") or {}).get("code_verifier", [])
    return [x for x in found + cookie_values if len(x) >= 8]


def assert_failed_cleanly(site, s, callback, state, url, mark):
    """The callback answers a short 502 page; the log has ONE line for it with the URL and what to check; nothing
    secret in either. Returns the line."""
    cookie_values = [c.value for c in s.cookies if c.value]
    assert cookie_values  # at least this login's state cookie
    r = s.get(callback, allow_redirects=False)
    assert r.status_code == 502, (r.status_code, r.text[:300])
    assert r.headers["Content-Type"].startswith("text/html")
    assert len(r.text) < 2000 and "<title>" in r.text
    assert "evil.example" not in r.text and "<script" not in r.text.lower() and url not in r.text
    assert "bbauth_session=" not in r.headers.get("Set-Cookie", "")
    log = site.apache.error_log_since(mark)
    lines = LOGIN_FAILED.findall(log)
    assert len(lines) == 1, log
    assert len([l for l in BBAUTH_LINE.findall(log) if "[bbauth:error]" in l or "[bbauth:warn" in l]) == 1, log
    line = lines[0]
    assert url in line and "?" not in line, line   # the URL without its query
    assert WHAT_TO_CHECK.search(line.split(url, 1)[1]), line
    for secret in secrets_of_the_login(site, cookie_values, callback, state):
        assert secret not in log, (secret, log)
        assert secret not in r.text, secret
    return line


def assert_still_serving(site, group="all"):
    site.fb.set_mode(group, "normal")
    s = site.session()
    site.login(s, "/packages/echo", user="bob")
    assert site.echo(s)["remote_user"] == "bob"


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("mode", MODES)
def test_bitbucket_misbehaving(site, group, mode):
    s = site.session()
    callback, state = callback_of_a_fresh_login(site, s)
    site.fb.set_mode(group, mode)
    mark = site.apache.log_mark()
    line = assert_failed_cleanly(site, s, callback, state, site.fb.base_url + GROUPS[group], mark)
    if mode == "oversized":
        assert "larger than" in line
    if mode == "redirect":
        assert "evil.example" in line and "filter=" not in line
    if mode == "down":
        assert "connection broke" in line
    assert_still_serving(site, group)


@pytest.mark.parametrize("group", ["token", "whoami", "users"])
def test_bitbucket_slower_than_the_timeout(site, group):
    s = site.session()
    callback, state = callback_of_a_fresh_login(site, s)
    site.fb.set_mode(group, "slow", seconds=SLOW, times=1)
    mark = site.apache.log_mark()
    line = assert_failed_cleanly(site, s, callback, state, site.fb.base_url + GROUPS[group], mark)
    assert f"timed out after {TIMEOUT} s" in line and "BBAuthTimeout" in line
    assert_still_serving(site, group)


def test_users_by_slug_is_not_needed(site):
    """The details come from /users?filter=: a broken /users/{slug} does not stop a login."""
    site.fb.set_mode("user", "down")
    s = site.session()
    site.login(s, "/packages/echo", user="jane@example.com")
    assert site.echo(s)["remote_user"] == "jane@example.com"


def site_on_another_apache(shared, apache_factory, fb, bitbucket_url=None):
    """A started Apache of its own (the shared site's keys and CA file) whose BBAuthBitbucketURL is fb's, or
    bitbucket_url."""
    apache = apache_factory(start=False)
    site = bbsite.Site(apache, fb, shared.pki, shared.key_file, shared.keys, apache.url(bbsite.CALLBACK_PATH))
    url = bitbucket_url or fb.base_url
    apache.extra_conf = lambda _a: fail_conf(site).replace(f"BBAuthBitbucketURL {fb.base_url}",
                                                           f"BBAuthBitbucketURL {url}")
    apache.start()
    return site


@pytest.mark.parametrize("where,says", [("a closed port", "could not connect"),
                                        ("a name that does not resolve", "cannot resolve the host name")])
def test_bitbucket_unreachable(shared_site, apache_factory, where, says):
    closed = (f"https://127.0.0.1:{free_port()}" if where == "a closed port"
              else "https://bitbucket.invalid/bitbucket")
    site = site_on_another_apache(shared_site, apache_factory, shared_site.fb, closed)
    s = site.session()
    r = s.get(site.url("/packages/echo"), allow_redirects=False)
    assert r.headers["Location"].startswith(closed + "/rest/oauth2/latest/authorize?")
    state = query_of(r.headers["Location"])["state"]
    callback = f"{site.redirect_uri}?code=made-up-code-0123456789&state={state}"
    line = assert_failed_cleanly(site, s, callback, state, closed + TOKEN_URL, site.apache.log_mark())
    assert says in line and "BBAuthBitbucketURL" in line, line
    assert s.get(site.url("/packages/echo"), allow_redirects=False).status_code == 302


def test_untrusted_certificate_is_refused(shared_site, apache_factory, tmp_serverroot):
    """Apache trusts BBAuthCAFile (the test CA); a Bitbucket whose certificate comes from another CA is not talked
    to: nothing is sent to it, not even the code."""
    other = testca.make_untrusted_ca_and_cert(str(tmp_serverroot / "pki"))
    untrusted = fake_bitbucket.FakeBitbucketProcess(str(tmp_serverroot / "untrusted"), other["cert"], other["key"],
                                                    other["ca"]).start()
    try:
        site = site_on_another_apache(shared_site, apache_factory, untrusted)
        untrusted.control("POST", "/_fake/oauth2/clients",
                          {"client_id": bbsite.CLIENT_ID, "client_secret": bbsite.CLIENT_SECRET,
                           "redirect_uris": [site.redirect_uri]})
        s = site.session()
        r = site.start_login(s, "/packages/echo")
        site.pki = dict(shared_site.pki, ca=other["ca"])  # the browser trusts the other CA; Apache does not
        callback = site.authorize(s, r.headers["Location"])
        state = query_of(r.headers["Location"])["state"]
        line = assert_failed_cleanly(site, s, callback, state, untrusted.base_url + TOKEN_URL, site.apache.log_mark())
        assert "certificate not trusted" in line and "BBAuthCAFile" in line, line
        assert untrusted.calls().get("token") is None  # TLS failed before anything was sent
        assert site.apache.is_running()
    finally:
        untrusted.stop()
