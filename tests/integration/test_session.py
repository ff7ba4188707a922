"""Issue 2: the session cookie as upstream apps see it (verified with PyJWT, a third-party JWT library) and every
way a cookie must NOT count as a session: tampered, wrongly signed, alg none, unknown kid, expired, too old,
idle too long. Cookies are crafted with PyJWT and the key file's keys, so the module is checked against the
documented format, not against itself."""

import base64
import hashlib
import json
import time

import jwt
import pytest

import bbsite
from bbsite import cookie_attrs

NAME = "bbauth_session"


def kid_of(key):
    return hashlib.sha256(key).hexdigest()[:16]


def claims_for(site, **over):
    now = int(time.time())
    c = {"sub": "alice", "uid": 101, "name": "Alice Liddell", "email": "alice@example.com", "sid": "c2lkLXRlc3Qtc2lk",
         "iss": site.apache.base_url, "auth_time": now, "iat": now, "exp": now + 3600}
    c.update(over)
    return c


def sign(key, claims, kid=None, alg="HS256"):
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid or kid_of(key), "typ": "JWT"})


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def status_with(site, value, accept="application/json"):
    s = site.session()
    s.headers["Accept"] = accept
    s.cookies.set(NAME, value)
    r = s.get(site.url("/packages/echo"), allow_redirects=False)
    return r


def test_cookie_is_a_jwt_upstream_apps_verify_with_pyjwt(site):
    s = site.session()
    r = site.login(s, "/packages/echo", user="jane@example.com")
    value = s.cookies.get(NAME)
    header = jwt.get_unverified_header(value)
    assert header == {"alg": "HS256", "kid": kid_of(site.keys[0]), "typ": "JWT"}
    claims = jwt.decode(value, site.keys[0], algorithms=["HS256"], issuer=site.apache.base_url,
                        options={"require": ["exp", "iat", "sub", "iss"]})
    assert claims["sub"] == "jane@example.com"
    assert isinstance(claims["uid"], int) and claims["uid"] > 0
    assert claims["name"] and claims["email"] == "jane@example.com"
    assert len(base64.urlsafe_b64decode(claims["sid"] + "==")) >= 16
    assert claims["auth_time"] <= claims["iat"] < claims["exp"] <= claims["auth_time"] + 28800

    attrs = cookie_attrs(r.headers["Set-Cookie"], NAME)
    assert attrs["httponly"] is True and attrs["path"] == "/" and attrs["samesite"] == "Lax"
    assert "secure" not in attrs  # the redirect URI is http here; see test_secure_when_redirect_uri_is_https

    # No OAuth credential of any kind is inside the cookie.
    secrets_held = bbsite.fake_secrets(site.fb)
    decoded = json.dumps(claims)
    assert secrets_held and not [t for t in secrets_held if t and t in decoded + value]


def test_crafted_cookie_with_the_key_is_accepted(site):
    """The documented format is the whole contract: a cookie made by PyJWT with the key file is a session."""
    r = status_with(site, sign(site.keys[0], claims_for(site, sub="bob", uid=102, name="Bob")))
    assert r.status_code == 200
    assert r.json()["remote_user"] == "bob"


def _tampered_payload(site):
    good = sign(site.keys[0], claims_for(site))
    h, p, sig = good.split(".")
    evil = json.loads(base64.urlsafe_b64decode(p + "=="))
    evil["sub"] = "admin"
    return f"{h}.{b64u(json.dumps(evil).encode())}.{sig}"


def _alg_none(site):
    header = b64u(json.dumps({"alg": "none", "kid": kid_of(site.keys[0]), "typ": "JWT"}).encode())
    return f"{header}.{b64u(json.dumps(claims_for(site, sub='admin')).encode())}."


BAD_COOKIES = {
    "tampered payload": _tampered_payload,
    "signed with another key": lambda site: sign(b"k" * 32, claims_for(site), kid=kid_of(site.keys[0])),
    "unknown kid": lambda site: sign(site.keys[0], claims_for(site), kid="0123456789abcdef"),
    "alg none": _alg_none,
    "alg HS512": lambda site: sign(site.keys[0], claims_for(site), alg="HS512"),
    "expired": lambda site: sign(site.keys[0], claims_for(site, exp=int(time.time()) - 5)),
    "older than MaxAge, far-future exp": lambda site: sign(site.keys[0], claims_for(
        site, auth_time=int(time.time()) - 28801, exp=int(time.time()) + 10 ** 6)),
    "idle longer than the idle timeout": lambda site: sign(site.keys[0], claims_for(
        site, auth_time=int(time.time()) - 3700, iat=int(time.time()) - 3601, exp=int(time.time()) + 600)),
    "issued in the future": lambda site: sign(site.keys[0], claims_for(
        site, iat=int(time.time()) + 3600, auth_time=int(time.time()) + 3600, exp=int(time.time()) + 7200)),
    "another issuer": lambda site: sign(site.keys[0], claims_for(site, iss="https://other.example")),
    "fractional exp": lambda site: sign(site.keys[0], claims_for(site, exp=time.time() + 600.5)),
    "no sub": lambda site: sign(site.keys[0], {k: v for k, v in claims_for(site).items() if k != "sub"}),
    "garbage": lambda site: "not-a-jwt",
    "empty": lambda site: "",
    "two segments": lambda site: ".".join(sign(site.keys[0], claims_for(site)).split(".")[:2]),
    "bad base64url": lambda site: "e@@@.e@@@.e@@@",
}


@pytest.mark.parametrize("case", sorted(BAD_COOKIES))
def test_bad_cookie_is_no_session(site, case):
    value = BAD_COOKIES[case](site)
    r = status_with(site, value)
    assert r.status_code == 401, (case, r.status_code, r.text[:200])
    assert "WWW-Authenticate" in r.headers
    browser = status_with(site, value, accept="text/html")
    assert browser.status_code == 302 and "/rest/oauth2/latest/authorize" in browser.headers["Location"]
    assert value == "" or value not in site.apache.error_log()


def test_max_age_and_idle_timeout_follow_the_directives(site_factory):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + "BBAuthSessionMaxAge 100\n"
                                                                   "BBAuthSessionIdleTimeout 0\n")
    now = int(time.time())
    too_old = sign(site.keys[0], claims_for(site, auth_time=now - 101, iat=now - 101, exp=now + 3600))
    assert status_with(site, too_old).status_code == 401
    # Idle timeout 0 = off: a cookie whose exp no idle window bounds still counts. (It begins now, after the Apache
    # started: a session from before the shared cache's epoch is asked to log in again, test_state_survives.py.)
    idle = sign(site.keys[0], claims_for(site, auth_time=now, iat=now, exp=now + 100))
    assert status_with(site, idle).status_code == 200


def test_active_user_gets_the_idle_window_slid(site_factory):
    # The session begins now, after the Apache started (the shared cache's epoch: test_state_survives.py).
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + "BBAuthSessionIdleTimeout 20\n")
    began = int(time.time())
    aged = sign(site.keys[0], claims_for(site, auth_time=began, iat=began, exp=began + 20))
    while time.time() < began + 2:                  # a tenth of the idle timeout
        time.sleep(0.05)
    r = status_with(site, aged)
    assert r.status_code == 200
    fresh = cookie_attrs(r.headers.get("Set-Cookie", ""), NAME)
    assert fresh, "an active session older than a tenth of the idle timeout gets a fresh cookie"
    claims = jwt.decode(fresh["value"], site.keys[0], algorithms=["HS256"], issuer=site.apache.base_url)
    assert claims["iat"] >= began + 2 and claims["auth_time"] == began  # MaxAge still counts from the login


def test_key_rotation_keeps_old_sessions_and_signs_with_the_new_key(site_factory):
    # Revalidation off: a restart empties shmcb, and with it on every session would log in again at its next
    # request (its grant is gone: tests/integration/test_shared_state.py); here the signing keys are the subject.
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + "BBAuthSessionRevalidate 0\n")
    s = site.session()
    site.login(s, "/packages/echo", user="alice")
    old_cookie = s.cookies.get(NAME)

    new_key = bytes(range(32, 64))
    bbsite.write_key_file(site.key_file, [new_key] + site.keys)
    site.apache.restart()
    assert site.echo(s)["remote_user"] == "alice"  # signed with what is now the second key: still valid

    s2 = site.session()
    site.login(s2, "/packages/echo", user="bob")
    assert jwt.get_unverified_header(s2.cookies.get(NAME))["kid"] == kid_of(new_key)
    jwt.decode(s2.cookies.get(NAME), new_key, algorithms=["HS256"], issuer=site.apache.base_url)

    # Old key removed: its cookies stop counting.
    bbsite.write_key_file(site.key_file, [new_key])
    site.apache.restart()
    assert status_with(site, old_cookie).status_code == 401


def test_custom_cookie_attributes(site_factory):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + "BBAuthCookieName mirror_sess\n"
                        "BBAuthCookiePath /packages\nBBAuthCookieSameSite Strict\nBBAuthCookieDomain 127.0.0.1\n")
    s = site.session()
    r = site.start_login(s, "/packages/echo?a=1&b=2")
    callback = site.authorize(s, r.headers["Location"])
    r = s.get(callback, allow_redirects=False)
    attrs = cookie_attrs(r.headers["Set-Cookie"], "mirror_sess")
    assert attrs["path"] == "/packages" and attrs["samesite"] == "Strict" and attrs["domain"] == "127.0.0.1"
    # SameSite=Strict: a cross-site redirect chain would not send the cookie, so the callback answers with a
    # page that moves on by itself (same-site) instead of a 302.
    assert r.status_code == 200 and "Location" not in r.headers
    assert r.headers["Content-Type"].startswith("text/html") and "no-store" in r.headers["Cache-Control"]
    assert '<meta http-equiv="refresh" content="0;url=/packages/echo?a=1&amp;b=2">' in r.text
    assert '<a href="/packages/echo?a=1&amp;b=2">' in r.text
    assert s.get(site.url("/packages/echo"), allow_redirects=False).json()["remote_user"] == "alice"
