"""Issue 19: one session cookie per browser. A sibling host (evil.example.test beside mirror.example.test) can set
`bbauth_session=<bob's own valid cookie>; Domain=example.test; Path=/packages`, and alice's browser then sends
both: when the cookies of the module's name name different sessions there is no session (whatever the order), the
answer deletes the extra cookies in every scope this host can reach, and a logout with both ends neither. Junk
cookies of the name, however many, never hide a valid one; the idle refresh is not written over this host's
cookie from a request that carried several."""

import time

import jwt
import pytest

import bbsite

from test_session import claims_for, kid_of

HOST = "mirror.example.test"
NAME = "bbauth_session"


def cookie(site, user, uid, issued_ago=0):
    """A session cookie of `user` whose login was `issued_ago` seconds ago, waited for: a session from before the
    Apache started must log in again (its logout may be in what the cache lost, test_state_survives.py). Past a tenth
    of the idle timeout (BBAuthSessionIdleTimeout 20: 2 s), the module re-issues it on the next request."""
    began = int(time.time())
    while time.time() < began + issued_ago:
        time.sleep(0.05)
    claims = claims_for(site, sub=user, uid=uid, name=user.title(), email=f"{user}@example.com",
                        sid=f"c2lk-{user}-{began}", auth_time=began, iat=began,
                        **({"exp": began + 20} if issued_ago else {}))
    return jwt.encode(claims, site.keys[0], algorithm="HS256", headers={"kid": kid_of(site.keys[0]), "typ": "JWT"})


def send(site, values, path="/packages/echo", method="GET", **headers):
    """A request to mirror.example.test carrying these values of the session cookie, in this order."""
    s = site.session()
    s.headers.update({"Accept": "application/json", "Host": f"{HOST}:{site.apache.port}"})
    s.headers.update(headers)
    s.headers["Cookie"] = "; ".join(f"{NAME}={v}" for v in values)
    return s.request(method, site.url(path), allow_redirects=False)


def deletions(r):
    """(domain or None, path) of every Set-Cookie that deletes the session cookie."""
    found = set()
    for line in r.raw.headers.getlist("Set-Cookie"):
        parts = [p.strip() for p in line.split(";")]
        if parts[0] != f"{NAME}=" or "Max-Age=0" not in parts:
            continue
        attrs = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        found.add((attrs.get("Domain"), attrs.get("Path")))
    return found


@pytest.mark.parametrize("order", ["tossed-first", "tossed-last"])
def test_two_sessions_mean_no_session(site, order):
    alice, bob = cookie(site, "alice", 101), cookie(site, "bob", 102)
    values = [bob, alice] if order == "tossed-first" else [alice, bob]
    r = send(site, values)
    assert r.status_code == 401, r.status_code
    gone = deletions(r)
    assert {(None, "/"), ("example.test", "/packages"), ("example.test", "/"), (HOST, "/packages")} <= gone
    assert "no-store" in r.headers["Cache-Control"]
    assert "cookie tossing" in site.apache.error_log()
    # Each alone is still its own user: the module could not tell which was tossed, so it used neither.
    assert send(site, [alice]).json()["remote_user"] == "alice"
    assert send(site, [bob]).json()["remote_user"] == "bob"


def test_a_browser_with_two_sessions_is_sent_to_log_in_once(site):
    r = send(site, [cookie(site, "bob", 102), cookie(site, "alice", 101)], Accept="text/html")
    assert r.status_code == 302 and r.headers["Location"].startswith(site.fb.base_url)
    assert ("example.test", "/packages") in deletions(r)


def test_logout_with_two_sessions_ends_neither(site):
    alice, bob = cookie(site, "alice", 101), cookie(site, "bob", 102)
    r = send(site, [alice, bob], path="/logout", method="POST", Origin=site.apache.base_url)
    assert r.status_code == 302
    assert send(site, [bob]).json()["remote_user"] == "bob"
    assert send(site, [alice]).json()["remote_user"] == "alice"


@pytest.mark.parametrize("junk", [1, 8, 60])
def test_junk_cookies_never_hide_a_valid_one(site, junk):
    alice = cookie(site, "alice", 101)
    forged = jwt.encode({"sub": "bob"}, b"k" * 32, algorithm="HS256", headers={"kid": kid_of(site.keys[0])})
    values = [forged if i % 2 else f"junk{i}" for i in range(junk)] + [alice]
    r = send(site, values)
    assert r.status_code == 200 and r.json()["remote_user"] == "alice"
    gone = deletions(r)
    assert (None, "/") not in gone            # this host's own cookie stays
    assert ("example.test", "/packages") in gone


def test_no_refresh_over_this_hosts_cookie_from_several(site_factory):
    """alice's own cookie is due for a refresh, and a junk one sits beside it: the answer deletes the junk but does
    not re-issue (the next request, with one cookie, does)."""
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + "BBAuthSessionIdleTimeout 20\n")
    alice_old = cookie(site, "alice", 101, issued_ago=3)
    r = send(site, ["junk", alice_old])
    assert r.status_code == 200 and r.json()["remote_user"] == "alice"
    assert not [line for line in r.raw.headers.getlist("Set-Cookie") if line.startswith(f"{NAME}=ey")]
    r = send(site, [alice_old])
    assert [line for line in r.raw.headers.getlist("Set-Cookie") if line.startswith(f"{NAME}=ey")]
