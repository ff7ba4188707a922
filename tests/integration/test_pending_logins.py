"""Issue 19: login-state cookies are bounded. Each login attempt sets one (host-only, Path=/); its return path is
capped at 256 bytes (a longer one comes back to "/"), and a browser keeps at most 4: a new login past that
replaces the oldest. 30 logins started with 2 KB return paths leave the browser's Cookie header small, and the
last login completes where httpd used to answer 400 (request header too large)."""

LONG = "/packages/" + "a" * 2000


def state_cookies(s):
    return {c.name: c for c in s.cookies if c.name.startswith("bbauth_session_st_")}


def test_thirty_pending_logins_with_long_return_paths(site):
    s = site.session()
    starts = [site.start_login(s, f"{LONG}?n={i}") for i in range(30)]
    held = state_cookies(s)
    assert len(held) == 4, sorted(held)
    assert all(c.path == "/" for c in held.values())
    assert sum(len(c.name) + len(c.value) + 3 for c in held.values()) < 4000
    # The newest four are the ones kept: the last login completes, back to "/" (its return path was too long).
    callback = site.authorize(s, starts[-1].headers["Location"])
    r = s.get(callback, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/", (r.status_code, r.text[:300])
    assert site.echo(s)["remote_user"] == "alice"
    # The oldest was replaced: its callback is an expired login, not httpd's 400 for a huge header.
    callback = site.authorize(s, starts[0].headers["Location"])
    r = s.get(callback, allow_redirects=False)
    assert r.status_code == 400 and "Login expired" in r.text


def test_short_return_paths_are_kept(site):
    s = site.session()
    path = "/packages/echo?" + "q" * 200
    r = site.start_login(s, path)
    callback = site.authorize(s, r.headers["Location"])
    assert s.get(callback, allow_redirects=False).headers["Location"] == path


def test_tabs_within_the_bound_all_complete(site):
    site.tabs_complete_in(site.session(), [3, 0, 2, 1])
