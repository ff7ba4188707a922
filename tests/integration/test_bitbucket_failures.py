"""Issue 2: Bitbucket failing during the callback (down, slow, garbage, wrong type or shape, oversized, error
statuses, a redirect elsewhere, an untrusted certificate, nothing listening). Each time: a short 502 page, ONE
error-log line naming what failed and where, no secret anywhere, and the server goes on serving."""

import re

import pytest

import bbsite
import fake_bitbucket
import testca
from apache import free_port
from bbsite import query_of

LOGIN_FAILED = re.compile(r"\[bbauth:error\].*login failed: (.*)")
ENDPOINTS = ("token", "whoami", "users")
MODES = ("down", "garbage", "wrong_type", "wrong_shape", "oversized", "redirect", "status:500", "status:404",
         "status:401")


def fail_conf(site):
    return bbsite.protected_conf(site).replace("BBAuthTimeout 3", "BBAuthTimeout 1")


@pytest.fixture
def failing_site(site_factory):
    return site_factory(conf=fail_conf, log_level="info bbauth:trace8")


def callback_of_a_fresh_login(site, s):
    r = site.start_login(s, "/packages/echo")
    state = query_of(r.headers["Location"])["state"]
    return site.authorize(s, r.headers["Location"]), state


def assert_502_one_line_nothing_secret(site, s, callback, state, mark, url_part):
    r = s.get(callback, allow_redirects=False)
    assert r.status_code == 502, (r.status_code, r.text[:300])
    assert len(r.text) < 2000 and "<title>" in r.text
    assert "bbauth_session=" not in r.headers.get("Set-Cookie", "")
    log = site.apache.error_log_since(mark)
    lines = LOGIN_FAILED.findall(log)
    assert len(lines) == 1, log
    assert url_part in lines[0], lines[0]
    secrets = [bbsite.CLIENT_SECRET, query_of(callback)["code"], state] + bbsite.fake_secrets(site.fb)
    secrets += [c.value for c in s.cookies]
    for secret in secrets:
        assert secret not in log and secret not in r.text
    return lines[0]


def assert_still_serving(site):
    site.fb.set_mode("all", "normal")
    s = site.session()
    site.login(s, "/packages/echo", user="bob")
    assert site.echo(s)["remote_user"] == "bob"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("mode", MODES)
def test_bitbucket_misbehaving(failing_site, endpoint, mode):
    site = failing_site
    s = site.session()
    callback, state = callback_of_a_fresh_login(site, s)
    site.fb.set_mode(endpoint, mode)
    mark = site.apache.log_mark()
    url_part = {"token": "/rest/oauth2/latest/token", "whoami": "/plugins/servlet/applinks/whoami",
                "users": "/rest/api/1.0/users"}[endpoint]
    line = assert_502_one_line_nothing_secret(site, s, callback, state, mark, url_part)
    if mode == "oversized":
        assert "larger than" in line
    if mode == "redirect":
        assert "evil.example" in line and "/" + endpoint not in line.split("evil.example", 1)[1][:20]
    assert_still_serving(site)


def test_bitbucket_slower_than_the_timeout(failing_site):
    site = failing_site
    s = site.session()
    callback, state = callback_of_a_fresh_login(site, s)
    site.fb.set_mode("token", "slow", seconds=4, times=1)
    mark = site.apache.log_mark()
    line = assert_502_one_line_nothing_secret(site, s, callback, state, mark, "/rest/oauth2/latest/token")
    assert "time" in line.lower()
    assert_still_serving(site)


def test_bitbucket_not_listening(site_factory):
    closed = f"https://127.0.0.1:{free_port()}"

    def conf(s):
        return bbsite.protected_conf(s).replace(f"BBAuthBitbucketURL {s.fb.base_url}",
                                                f"BBAuthBitbucketURL {closed}")
    site = site_factory(conf=conf)
    s = site.session()
    r = s.get(site.url("/packages/echo"), allow_redirects=False)
    assert r.headers["Location"].startswith(closed + "/rest/oauth2/latest/authorize?")
    state = query_of(r.headers["Location"])["state"]
    r = s.get(f"{site.redirect_uri}?code=abc&state={state}", allow_redirects=False)
    assert r.status_code == 502
    lines = LOGIN_FAILED.findall(site.apache.error_log())
    assert len(lines) == 1 and closed in lines[0]
    assert "abc" not in lines[0]


def test_untrusted_certificate_is_refused(site_factory, tmp_serverroot):
    """The module trusts BBAuthCAFile; a Bitbucket whose certificate comes from another CA is not talked to."""
    other = testca.make_untrusted_ca_and_cert(str(tmp_serverroot / "pki"))
    holder = {}

    def conf(s):
        if "fb" not in holder:
            fb = fake_bitbucket.FakeBitbucketProcess(str(tmp_serverroot / "untrusted"), other["cert"], other["key"],
                                                     other["ca"], oauth2_client_id=bbsite.CLIENT_ID,
                                                     oauth2_client_secret=bbsite.CLIENT_SECRET,
                                                     redirect_uris=[s.redirect_uri])
            holder["fb"] = fb.start()
        return bbsite.protected_conf(s).replace(f"BBAuthBitbucketURL {s.fb.base_url}",
                                                f"BBAuthBitbucketURL {holder['fb'].base_url}")
    site = site_factory(conf=conf)
    try:
        untrusted = holder["fb"]
        s = site.session()
        r = s.get(site.url("/packages/echo"), allow_redirects=False)
        assert r.headers["Location"].startswith(untrusted.base_url)
        bb = site.session()
        bb.verify = other["ca"]
        bb.cookies = s.cookies
        page = bb.get(r.headers["Location"], allow_redirects=False)
        login = bb.post(untrusted.base_url + "/j_atl_security_check",
                        data={"j_username": "alice", "j_password": "alice-password",
                              "next": query_of(page.headers["Location"])["next"]}, allow_redirects=False)
        callback = bb.get(untrusted.root_url + login.headers["Location"], allow_redirects=False).headers["Location"]
        r = s.get(callback, allow_redirects=False)
        assert r.status_code == 502
        lines = LOGIN_FAILED.findall(site.apache.error_log())
        assert len(lines) == 1 and "certificate" in lines[0].lower(), lines
        assert untrusted.calls().get("token") is None  # TLS failed before anything was sent
    finally:
        holder["fb"].stop()
