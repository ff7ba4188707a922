"""Issue 19: credentials stop at the module. Once it has authenticated a request the upstream app (here behind
ProxyPass, seeing the raw header lines) gets the identity, never the client's Authorization header, unless
BBAuthPassAuthorization On; and a request carrying both a session cookie and an Authorization header is judged by
the header, the credential the client meant."""

import time

import jwt
import pytest

import bbsite
from apache import header_values
from test_session import claims_for, kid_of
from test_tokens import ALICE, BOB, basic


def proxied_conf(backend):
    def conf(site):
        return bbsite.protected_conf(site) + f"""
<Location /app>
    AuthType Bitbucket
    BBAuthTokenAuth On
    Require valid-user
    ProxyPass {backend.url}/app
</Location>
<Location /app/keeps>
    BBAuthPassAuthorization On
</Location>
<Location /open>
    AuthType Bitbucket
    BBAuthUnauthAction pass
    Require all granted
    ProxyPass {backend.url}/open
</Location>
"""
    return conf


@pytest.fixture
def proxied(site_factory, echo_backend):
    return site_factory(conf=proxied_conf(echo_backend), proxy=True), echo_backend


def session_cookie(site, user, uid):
    claims = claims_for(site, sub=user, uid=uid, name=user.title(), email=f"{user}@example.com",
                        sid=f"c2lk-{user}-{int(time.time())}")
    return jwt.encode(claims, site.keys[0], algorithm="HS256", headers={"kid": kid_of(site.keys[0]), "typ": "JWT"})


def upstream_view(site, backend, path="/app/x", authorization=None, cookie=None):
    s = site.session()
    s.headers["Accept"] = "application/json"
    if authorization:
        s.headers["Authorization"] = authorization
    if cookie:
        s.cookies.set("bbauth_session", cookie)
    backend.clear()
    r = s.get(site.url(path), allow_redirects=False)
    seen = backend.requests[-1]["headers"] if backend.requests else None
    return r, seen


@pytest.mark.parametrize("authorization", [f"Bearer {ALICE}", basic("alice", ALICE)])
def test_token_stops_at_the_module(proxied, authorization):
    site, backend = proxied
    r, seen = upstream_view(site, backend, authorization=authorization)
    assert r.status_code == 200
    assert header_values(seen, "Authorization") == []
    assert header_values(seen, "X-Bitbucket-User") == ["alice"]
    assert ALICE not in str(seen)


def test_session_users_authorization_stops_too(proxied):
    site, backend = proxied
    r, seen = upstream_view(site, backend, path="/open/x", authorization="Basic dXNlcjpzZWNyZXQ=",
                            cookie=session_cookie(site, "alice", 101))
    assert r.status_code == 200
    assert header_values(seen, "X-Bitbucket-User") == ["alice"]
    assert header_values(seen, "Authorization") == []


def test_anonymous_request_is_not_touched(proxied):
    """Nothing was authenticated here: what the client sent is the app's business."""
    site, backend = proxied
    r, seen = upstream_view(site, backend, path="/open/x", authorization="Basic dXNlcjpzZWNyZXQ=")
    assert r.status_code == 200
    assert header_values(seen, "Authorization") == ["Basic dXNlcjpzZWNyZXQ="]


def test_pass_authorization_keeps_it_for_an_app_that_needs_it(proxied):
    site, backend = proxied
    r, seen = upstream_view(site, backend, path="/app/keeps/x", authorization=f"Bearer {ALICE}")
    assert r.status_code == 200
    assert header_values(seen, "Authorization") == [f"Bearer {ALICE}"]


@pytest.mark.parametrize("authorization,status,user", [
    (f"Bearer {BOB}", 200, "bob"),                 # bob's token beside alice's cookie: bob
    ("Bearer BBDC-junkToken000000000000000000000", 401, None),   # a junk token is refused, not alice
    ("Basic bm90LWEtdG9rZW4=", 401, None),
])
def test_header_beats_the_cookie(proxied, authorization, status, user):
    site, backend = proxied
    r, seen = upstream_view(site, backend, authorization=authorization, cookie=session_cookie(site, "alice", 101))
    assert r.status_code == status, (r.status_code, r.text[:200])
    if user:
        assert header_values(seen, "X-Bitbucket-User") == [user]
    else:
        assert seen is None and "WWW-Authenticate" in r.headers
