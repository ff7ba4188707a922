"""Issue 19: a logout no other site can make: a GET (a link, an image, a cross-site navigation) only shows a page
whose button POSTs from this site; a POST counts only from this site's own pages (Sec-Fetch-Site same-origin, or
Origin equal to the site's)."""

import html
import re

import pytest

JSON = {"Accept": "application/json"}


def logged_in(site):
    s = site.session()
    site.login(s, "/packages/echo", user="alice")
    return s


def still_alice(site, s):
    r = s.get(site.url("/packages/echo"), headers=JSON, allow_redirects=False)
    return r.status_code == 200 and r.json()["remote_user"] == "alice"


def form_of(page):
    m = re.search(r'<form method="post" action="([^"]*)"><button type="submit">Log out</button></form>', page)
    return html.unescape(m.group(1)) if m else None


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"},
    {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Dest": "image"},     # a sibling host's <img src>
    {"Sec-Fetch-Site": "same-origin"},                              # even from here: a GET changes nothing
    {},
])
def test_get_only_asks_to_confirm(site, headers):
    s = logged_in(site)
    r = s.get(site.url("/logout"), params={"return": "/login?return=/packages/"}, headers=headers,
              allow_redirects=False)
    assert r.status_code == 200, r.status_code
    assert "Set-Cookie" not in r.headers
    assert "no-store" in r.headers["Cache-Control"]
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "form-action 'self'" in csp and "frame-ancestors 'none'" in csp
    assert form_of(r.text) == "/logout?return=%2Flogin%3Freturn%3D%2Fpackages%2F"
    assert still_alice(site, s)


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example.test"},
    {"Sec-Fetch-Site": "same-site", "Origin": "https://evil.example.test"},
    {"Origin": "https://evil.example.test"},
    {"Origin": "null"},
])
def test_cross_site_post_is_refused(site, headers):
    s = logged_in(site)
    r = s.post(site.url("/logout"), headers=headers, allow_redirects=False)
    assert r.status_code == 200 and form_of(r.text) == "/logout?return=%2F"
    assert "Set-Cookie" not in r.headers
    assert still_alice(site, s)


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "same-origin", "Origin": "@URL@"},
    {"Origin": "@URL@"},
    {},                                   # no browser (curl): nothing to forge with
])
def test_post_from_this_site_logs_out(site, headers):
    s = logged_in(site)
    headers = {k: v.replace("@URL@", site.apache.base_url) for k, v in headers.items()}
    r = s.post(site.url("/logout"), params={"return": "/packages/"}, headers=headers, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/packages/"
    assert "Max-Age=0" in r.headers["Set-Cookie"]
    assert not still_alice(site, s)


def test_the_confirm_page_button_works(site):
    """The page's own form, posted as a browser does from it."""
    s = logged_in(site)
    page = s.get(site.url("/logout"), params={"return": "/packages/x?a=1&b=\"2\""},
                 headers={"Sec-Fetch-Site": "cross-site"}, allow_redirects=False)
    action = form_of(page.text)
    assert '"2"' not in page.text   # percent-encoded in the form's action, which is escaped too
    r = s.post(site.url(action), headers={"Sec-Fetch-Site": "same-origin", "Origin": site.apache.base_url},
               allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/packages/x?a=1&b=\"2\""
    assert not still_alice(site, s)


@pytest.mark.parametrize("value", ["//evil.example", "https://evil.example/", "/\\evil"])
def test_confirm_page_never_leads_off_the_site(site, value):
    r = site.session().get(site.url("/logout"), params={"return": value}, allow_redirects=False)
    assert form_of(r.text) == "/logout?return=%2F"
    assert "evil" not in r.text


def test_other_methods(site):
    r = site.session().put(site.url("/logout"), allow_redirects=False)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD, POST"


def test_the_form_posts_to_the_same_path_whatever_it_holds(site):
    r = site.session().get(site.url("/logout/%3Fx%3C%22"), allow_redirects=False)
    assert r.status_code == 200
    assert form_of(r.text).lower() == "/logout/%3fx%3c%22?return=%2f"   # httpd encodes in lower case
