"""Issue 2: after a login (and a logout) the browser only ever goes back to a path on this site."""

import pytest

HOSTILE = [
    "//evil.example/",
    "/\\evil.example/",
    "\\\\evil.example",
    "https://evil.example/",
    "http:evil.example",
    "javascript:alert(1)",
    "%2F%2Fevil.example",
    "/%2F%2Fevil.example",   # "//evil.example" to whatever decodes it once
    "/\tevil",
    "/%09/evil.example",
    "/%0d%0aSet-Cookie:%20x=1",
    "/\r\nSet-Cookie: x=1",
    "//user@evil.example",
    "evil.example/path",
    "",
    "/" + "a" * 5000,
    "/\u3002evil",          # ideographic full stop: a look-alike separator
]


def login_with_return(site, value):
    s = site.session()
    r = s.get(site.url("/login"), params={"return": value}, allow_redirects=False)
    assert r.status_code == 302, r.status_code
    callback = site.authorize(s, r.headers["Location"])
    done = s.get(callback, allow_redirects=False)
    assert done.status_code == 302
    return s, done.headers["Location"]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_return_falls_back_to_root(site, value):
    _, location = login_with_return(site, value)
    assert location == "/"


@pytest.mark.parametrize("value", ["/packages/", "/packages/echo?a=1&b=%2F", "/p%C3%A4ckages/x",
                                   "/ok@evil.example/../"])
def test_local_return_path_is_kept(site, value):
    _, location = login_with_return(site, value)
    assert location == value


def test_login_link_when_already_logged_in_goes_straight_back(site):
    s, _ = login_with_return(site, "/packages/")
    r = s.get(site.url("/login"), params={"return": "/packages/echo"}, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/packages/echo"
    r = s.get(site.url("/login"), params={"return": "//evil.example"}, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/"


def test_logout_clears_the_session_and_goes_to_a_local_return(site):
    s, _ = login_with_return(site, "/packages/")
    r = site.logout(s, **{"return": "/packages/"})
    assert r.status_code == 302 and r.headers["Location"] == "/packages/"
    assert "bbauth_session=;" in r.headers["Set-Cookie"] and "Max-Age=0" in r.headers["Set-Cookie"]
    assert "bbauth_session" not in s.cookies
    api = s.get(site.url("/packages/echo"), headers={"Accept": "application/json"}, allow_redirects=False)
    assert api.status_code == 401


@pytest.mark.parametrize("value", ["//evil.example", "https://evil.example/", "/\\evil", None])
def test_logout_never_leaves_the_site(site, value):
    s = site.session()
    params = {"return": value} if value is not None else {}
    r = site.logout(s, **params)
    assert r.status_code == 302 and r.headers["Location"] == "/"
