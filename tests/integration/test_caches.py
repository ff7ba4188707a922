"""Issue 19: no cache in front of the mirror ever hands one user's session or content to another. mod_cache
(socache/shmcb) caches /packages, with its quick handler on (the default: cached answers are served before any
access control) and off (the README's recipe, with CacheStorePrivate On): every response the module authenticated
is Cache-Control private, one that carries a (re)issued session cookie is no-store and never stored."""

import os
import time

import pytest

import bbsite
from test_cookie_tossing import cookie     # aged cookies wait for their age: due for a refresh under IDLE

PACKAGE = "/packages/demo-1.0.tar.gz"
BODY = "package bytes\n"


def cache_conf(quick_handler, store_private):
    def conf(site):
        return bbsite.protected_conf(site) + IDLE + f"""
CacheSocache shmcb
CacheEnable socache /packages
CacheHeader on
CacheQuickHandler {quick_handler}
CacheStorePrivate {store_private}
"""
    return conf


IDLE = "BBAuthSessionIdleTimeout 20\n"


def get(site, value=None):
    s = site.session()
    s.headers["Accept"] = "application/octet-stream"
    if value:
        s.cookies.set("bbauth_session", value)
    return s.get(site.url(PACKAGE), allow_redirects=False)


@pytest.fixture(params=[("On", "Off"), ("Off", "On")], ids=["quick-handler-on", "quick-handler-off-store-private"])
def cached_site(request, site_factory):
    quick, store_private = request.param
    site = site_factory(conf=cache_conf(quick, store_private),
                        modules=("cache", "cache_socache", "socache_shmcb"), start=False)
    path = os.path.join(site.apache.htdocs, PACKAGE.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(BODY)
    day_ago = time.time() - 86400   # a day-old file is fresh for 2.4 h by mod_cache's Last-Modified heuristic
    os.utime(path, (day_ago, day_ago))
    site.apache.start()
    return site, quick


def test_no_client_gets_another_ones_cookie_or_content(cached_site):
    site, quick = cached_site
    alice_old = cookie(site, "alice", 101, issued_ago=3)
    bob = cookie(site, "bob", 102, issued_ago=0)

    refreshed = get(site, alice_old)
    assert refreshed.status_code == 200 and refreshed.text == BODY
    assert "bbauth_session=" in refreshed.headers.get("Set-Cookie", "")
    directives = [d.strip() for d in refreshed.headers["Cache-Control"].split(",")]
    assert "private" in directives and "no-store" in directives, refreshed.headers

    for _ in range(2):
        anonymous = get(site)
        assert anonymous.status_code == 401, (anonymous.status_code, anonymous.headers)
        assert "Set-Cookie" not in anonymous.headers and BODY not in anonymous.text

        as_bob = get(site, bob)
        assert as_bob.status_code == 200 and as_bob.text == BODY
        assert "Set-Cookie" not in as_bob.headers, as_bob.headers
        assert "private" in as_bob.headers["Cache-Control"]

        # alice's own new cookie, on content served fresh or (quick handler off) from the store behind the check.
        again = get(site, alice_old)
        assert again.status_code == 200 and again.text == BODY
        assert again.headers["Set-Cookie"].startswith("bbauth_session=") and alice_old not in again.headers["Set-Cookie"]
        assert "no-store" in again.headers["Cache-Control"], again.headers

    if quick == "Off":
        # The recipe still caches: bob's second request was served from the cache, behind the access check.
        assert as_bob.headers.get("X-Cache", "").startswith("HIT"), as_bob.headers


APP_CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\nCache-Control: public, max-age=600, immutable\\r\\n\\r\\nx'
"""


def test_app_cache_control_is_merged_never_weakened(site_factory):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + IDLE + "ScriptAlias /packages/app @CGIBIN@/app\n",
                        start=False)
    site.apache.write_cgi("app", APP_CGI)
    site.apache.start()
    s = site.session()
    s.cookies.set("bbauth_session", cookie(site, "alice", 101, issued_ago=0))
    r = s.get(site.url("/packages/app"), allow_redirects=False)
    assert r.status_code == 200 and r.text == "x"
    assert r.headers["Cache-Control"] == "private, max-age=600, immutable"
    r = s.get(site.url("/packages/echo"), allow_redirects=False)   # the echo CGI says no-store itself
    assert r.headers["Cache-Control"] == "private, no-store"
    s.cookies.set("bbauth_session", cookie(site, "alice", 101, issued_ago=3))
    r = s.get(site.url("/packages/app"), allow_redirects=False)
    assert r.headers["Cache-Control"] == "private, no-store, max-age=600, immutable"
