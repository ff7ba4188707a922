"""Issue 4: a server farm. Two Apache instances with the same key file share one memcached or redis through
httpd's own socache providers (BBAuthCache): a login on A works on B, a logout on B ends the session on A, a
token validated on A is not validated again on B, and a callback completed on A cannot be replayed on B."""

import pytest

import bbsite
import cacheserver

TOKEN = "BBDC-bobPersonalReadToken00000000000000000005"


@pytest.fixture(params=sorted(cacheserver.SERVERS))
def shared_cache(request):
    with cacheserver.running(request.param) as port:
        yield request.param, port


def start_farm(site_factory, apache_factory, shared_cache, extra_conf):
    """Two Apaches, A and B, sharing the cache, with the protected site's configuration plus extra_conf."""
    kind, port = shared_cache

    def conf(site):
        return bbsite.protected_conf(site) + f"BBAuthCache {kind}:127.0.0.1:{port}\n" + extra_conf

    a = site_factory(conf=conf, modules=(f"socache_{kind}",))
    # B: same key file, same Bitbucket, same redirect URI (a load balancer would send the callback anywhere).
    b_apache = apache_factory(start=False, modules=(f"socache_{kind}",))
    b = bbsite.Site(b_apache, a.fb, a.pki, a.key_file, a.keys, a.redirect_uri)
    b_apache.extra_conf = lambda _a: conf(a)
    b_apache.start()
    return a, b


@pytest.fixture
def farm(site_factory, apache_factory, shared_cache):
    return start_farm(site_factory, apache_factory, shared_cache, """
<Location /packages>
    BBAuthTokenAuth On
</Location>
""")


def on(site, s, path="/packages/echo", **kw):
    return s.get(site.url(path), allow_redirects=False, **kw)


def moved(s, frm, to):
    """The same browser talking to the other server (cookies are per host:port in requests)."""
    t = to.session()
    for c in s.cookies:
        if c.name.startswith("bbauth_session"):
            t.cookies.set(c.name, c.value, path=c.path)
    return t


def test_login_on_a_works_on_b_and_logout_on_b_ends_it_on_a(farm):
    a, b = farm
    s = a.session()
    a.login(s, "/packages/echo", user="alice")
    on_b = moved(s, a, b)
    assert b.echo(on_b)["remote_user"] == "alice"
    assert b.logout(on_b).status_code == 302
    s.headers["Accept"] = "application/json"
    assert on(a, s).status_code == 401


def test_token_validated_on_a_is_not_validated_again_on_b(farm):
    a, b = farm
    a.fb.control("POST", "/_fake/calls/reset")
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "*/*"}
    assert on(a, a.session(), headers=headers).json()["remote_user"] == "bob"
    assert on(b, b.session(), headers=headers).json()["remote_user"] == "bob"
    assert a.fb.calls().get("whoami") == 1


def test_callback_completed_on_a_cannot_be_replayed_on_b(farm):
    a, b = farm
    a.fb.control("POST", "/_fake/calls/reset")
    s = a.session()
    r = a.start_login(s, "/packages/echo")
    callback = a.authorize(s, r.headers["Location"])
    state_cookies = [(c.name, c.value, c.path) for c in s.cookies if "_st_" in c.name]
    assert on(a, s, callback.replace(a.apache.base_url, "")).status_code == 302
    replay = b.session()
    for name, value, path in state_cookies:
        replay.cookies.set(name, value, path=path)
    r = replay.get(callback.replace(a.apache.base_url, b.apache.base_url), allow_redirects=False)
    assert r.status_code == 400  # B knows from the shared cache that A used this state: Bitbucket is not asked
    assert "bbauth_session=" not in r.headers.get("Set-Cookie", "")
    assert a.fb.calls().get("token") == 1
