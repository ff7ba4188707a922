"""Issue 4: a browser session's OAuth grant kept server-side, beyond tests/integration/test_authz.py: logout revokes
it at Bitbucket; a session whose grant is gone goes through login again where a Require line needs it, and ends at
its next revalidation; a grant that expires within the refresh margin is refreshed and the rotated pair kept."""



import jwt

import bbsite
import cacheserver
from test_shared_state import memcached  # noqa: F401  (a memcached started for the test)


def grant_conf(extra=""):
    def conf(site):
        return bbsite.protected_conf(site) + extra + """
ScriptAlias /alpha/echo @ECHO@
ScriptAlias /proj/echo @ECHO@
<Location /alpha>
    AuthType Bitbucket
    BBAuthTokenAuth On
    Require bitbucket-repo PROJ/alpha
</Location>
<Location /proj>
    AuthType Bitbucket
    Require bitbucket-project PROJ
</Location>
"""
    return conf


def logged_in(site, user="alice"):
    s = site.session()
    site.login(s, "/packages/echo", user=user)
    return s


def get(site, s, path, **kw):
    return s.get(site.url(path), allow_redirects=False, **kw)


def oauth2_tokens(site, user="alice"):
    held = site.fb.control("GET", "/_fake/tokens")
    return [t["token"] for kind in ("oauth2_access", "oauth2_refresh") for t in held[kind] if t["user"] == user]


def assert_sent_to_login(site, r):
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert r.headers["Location"].startswith(site.fb.base_url + "/rest/oauth2/latest/authorize?")


def copy_of(site, s):
    c = site.session()
    c.cookies.set("bbauth_session", site.session_cookie(s))
    return c


def test_logout_revokes_the_grant_at_bitbucket(site_factory):
    site = site_factory(conf=grant_conf())
    s = logged_in(site)
    assert len(oauth2_tokens(site)) == 2
    site.fb.control("POST", "/_fake/calls/reset")
    assert site.logout(s).status_code == 302
    assert site.fb.calls().get("revoke") == 1
    assert oauth2_tokens(site) == []              # the access and the refresh token are gone at Bitbucket
    form = site.fb.control("GET", "/_fake/log?endpoint=revoke")["entries"][-1]["form"]
    assert form["token_type_hint"] == ["refresh_token"] and form["client_id"] == [bbsite.CLIENT_ID]


def test_logout_goes_on_when_bitbucket_cannot_revoke(site_factory):
    site = site_factory(conf=grant_conf())
    s = logged_in(site)
    copy = copy_of(site, s)
    site.fb.set_mode("revoke", "down")
    r = site.logout(s)
    assert r.status_code == 302 and "bbauth_session=;" in r.headers["Set-Cookie"]
    site.apache.wait_for_log(r"logout: the session's grant stays valid at Bitbucket until it expires: ")
    assert_sent_to_login(site, get(site, copy, "/packages/echo"))


def test_grant_gone_sends_the_browser_through_login_again(site_factory, memcached):  # noqa: F811
    # Revalidation off: with it on, a session whose grant is gone logs in again everywhere once the check is due
    # (tests/integration/test_shared_state.py); here only the locations that ask Bitbucket need the grant.
    site = site_factory(conf=grant_conf(f"BBAuthSessionRevalidate 0\nBBAuthCache memcache:127.0.0.1:{memcached}\n"
                                        "BBAuthSessionRecheck 0\n"), modules=("socache_memcache",))
    s = logged_in(site)
    # The grant is evicted (and only it: a restart keeps the default cache, and an emptied cache is a new epoch
    # in which the whole session logs in again, test_state_survives.py).
    sid = jwt.decode(site.session_cookie(s), options={"verify_signature": False})["sid"]
    hexed = bbsite.cache_name(site, "grant", sid).encode().hex()
    assert b"DELETED" in (cacheserver.command(memcached, f"delete mod_bbauth:{hexed}"),
                          cacheserver.command(memcached, f"delete mod_bbauth:{hexed.upper()}"))
    assert get(site, s, "/packages/echo").status_code == 200        # valid-user needs no grant
    assert_sent_to_login(site, get(site, s, "/alpha/echo"))
    r = get(site, s, "/alpha/echo", headers={"Accept": "application/json"})
    assert r.status_code == 401 and "Location" not in r.headers     # a script is never redirected
    site.apache.wait_for_log(r"no Bitbucket grant is kept for the session of alice any more")
    site.login(s, "/alpha/echo")                   # the new login keeps a new grant
    assert get(site, s, "/alpha/echo").status_code == 200


def test_grant_revoked_at_bitbucket_sends_the_browser_through_login_again(site_factory):
    site = site_factory(conf=grant_conf())
    s = logged_in(site)
    site.fb.control("POST", "/_fake/tokens/revoke", {"user": "alice"})
    assert get(site, s, "/proj/echo").status_code == 401            # the refresh is refused: denied, grant dropped
    assert_sent_to_login(site, get(site, s, "/proj/echo"))          # from then on: log in again
