"""Issue 20: Bitbucket's Tomcat closes kept connections (after maxKeepAliveRequests, after keepAliveTimeout idle) and a
connection can die after Tomcat processed a request. The fake does all three (settings max_keepalive_requests and
keepalive_timeout, mode drop_after); the module must keep working and never send a single-use authorization code or
a rotating refresh token twice (libcurl resends a request on a kept connection that died before the answer's first
byte). Counted at the fake's request log; one Apache process (servers=1), so that its connection is the kept one."""

import bbsite
from oauth1site import make_oauth1_site

PROJ_CONF = """
<Location /proj>
    AuthType Bitbucket
    AuthzSendForbiddenOnFailure On
    Require bitbucket-project PROJ
</Location>
"""


def token_posts(site, grant_type):
    """The token endpoint's requests of this grant type the fake received, oldest first."""
    entries = site.fb.control("GET", "/_fake/log?endpoint=token")["entries"]
    return [e for e in entries if (e["form"] or {}).get("grant_type") == [grant_type]]


def test_a_code_is_sent_once_when_the_connection_dies_after_bitbucket_used_it(site_factory):
    site = site_factory(servers=1)
    site.login(site.session(), "/packages/echo")     # the process now keeps a connection to the fake
    browser = site.session()
    callback = site.authorize(browser, site.start_login(browser, "/packages/echo").headers["Location"])
    site.fb.set_mode("token", "drop_after", times=1)
    r = browser.get(callback, allow_redirects=False)
    assert r.status_code == 502                     # Bitbucket failed the exchange: log in again
    exchanges = token_posts(site, "authorization_code")
    # The warm-up's exchange, then this one, once: a resent code would be refused by Bitbucket as used.
    assert [e["status"] for e in exchanges] == [200, "dropped_after"]
    assert exchanges[0]["form"]["code"] != exchanges[1]["form"]["code"]


def test_a_refresh_token_is_sent_once_when_the_connection_dies_after_bitbucket_rotated_it(site_factory):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + PROJ_CONF, servers=1)
    site.apache.write_htdoc("proj/file.txt", "a package\n")
    site.fb.settings(access_token_ttl=30)           # within the 30 s refresh margin from the start
    browser = site.session()
    site.login(browser, "/packages/echo")
    site.fb.set_mode("token", "drop_after", times=1)
    r = browser.get(site.url("/proj/file.txt"), allow_redirects=False)
    assert r.status_code != 200
    refreshes = token_posts(site, "refresh_token")
    assert [e["status"] for e in refreshes] == ["dropped_after"]   # never replayed with the rotated token


def test_an_oauth1_request_token_is_exchanged_once_when_the_connection_dies(site_factory, tmp_serverroot):
    site = make_oauth1_site(site_factory, tmp_serverroot, servers=1)
    site.login(site.session(), "/packages/echo")     # the process now keeps a connection to the fake
    browser = site.session()
    callback = site.authorize(browser, site.start_login(browser, "/packages/echo").headers["Location"])
    site.fb.set_mode("oauth1_access_token", "drop_after", times=1)
    assert browser.get(callback, allow_redirects=False).status_code == 502
    exchanges = site.fb.control("GET", "/_fake/log?endpoint=oauth1_access_token")["entries"]
    # The warm-up's exchange, then this one, once: the request token and verifier were used up by it.
    assert [e["status"] for e in exchanges] == [200, "dropped_after"]


def test_logins_and_refreshes_work_with_tomcats_keep_alive_limits(site_factory):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + PROJ_CONF, servers=1)
    site.apache.write_htdoc("proj/file.txt", "a package\n")
    # Below the module's own 15 s idle limit; every second request on a connection is its last.
    site.fb.settings(access_token_ttl=30, max_keepalive_requests=2, keepalive_timeout=0.5)
    # bob and jane may view PROJ, dave may not: each answer needs the grant, refreshed first (30 s: within the
    # margin).
    for user, expected in (("bob", 200), ("dave", 403), ("jane@example.com", 200)):
        browser = site.session()
        site.login(browser, "/packages/echo", user=user)
        assert site.echo(browser)["remote_user"] == user
        assert browser.get(site.url("/proj/file.txt"), allow_redirects=False).status_code == expected
    assert [e["status"] for e in token_posts(site, "authorization_code")] == [200] * 3
    assert [e["status"] for e in token_posts(site, "refresh_token")] == [200] * 3
