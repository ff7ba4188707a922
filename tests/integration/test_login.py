"""Issue 2: the OAuth 2 browser login through a real Apache and the strict fake Bitbucket DC."""

import base64
import re

import pytest

import bbsite
from bbsite import cookie_attrs, query_of


def test_full_login_sets_identity_for_upstream(site):
    s = site.session()
    r = site.login(s, "/packages/echo?x=1", user="alice")
    assert r.headers["Location"] == "/packages/echo?x=1"
    echo = site.echo(s)
    assert echo["remote_user"] == "alice"
    assert echo["auth_type"] == "Bitbucket"
    h = {k.lower(): v for k, v in echo["headers"].items()}
    assert h["x-bitbucket-user"] == "alice"


def test_authorize_redirect_has_every_parameter_and_a_state_cookie(site):
    s = site.session()
    r = site.start_login(s, "/packages/")
    q = query_of(r.headers["Location"])
    assert q["response_type"] == "code"
    assert q["client_id"] == bbsite.CLIENT_ID
    assert q["redirect_uri"] == site.redirect_uri
    assert q["scope"] == "REPO_READ"
    assert len(base64.urlsafe_b64decode(q["state"] + "==")) >= 16
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert r.headers["Cache-Control"] == "no-store"
    name = [c.name for c in s.cookies if c.name.startswith("bbauth_session_st_")]
    assert len(name) == 1
    attrs = cookie_attrs(r.headers["Set-Cookie"], name[0])
    # issue 19: Path=/, so that the pending ones are seen (and bounded) wherever a login starts
    assert attrs["httponly"] is True and attrs["path"] == "/"
    assert 0 < int(attrs["max-age"]) <= 600
    assert q["state"] not in site.apache.error_log()


def test_pkce_is_checked_by_bitbucket(site):
    """The challenge we send is what the fake checks the verifier against: a login with a challenge for
    another verifier fails at the token endpoint, so PKCE really binds the code to this browser."""
    s = site.session()
    r = site.start_login(s, "/packages/")
    url = r.headers["Location"].replace(query_of(r.headers["Location"])["code_challenge"],
                                        "A" * 43)
    callback = site.authorize(s, url)
    r = s.get(callback, allow_redirects=False)
    assert r.status_code == 502
    assert site.fb.calls().get("token") == 1


def test_scope_directive(site_factory):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + "BBAuthScope PUBLIC_REPOS\n")
    s = site.session()
    assert query_of(site.start_login(s).headers["Location"])["scope"] == "PUBLIC_REPOS"


@pytest.mark.parametrize("headers,method", [
    ({"Accept": "application/json"}, "GET"),
    ({"Accept": "*/*"}, "GET"),
    ({"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}, "GET"),
    ({"Accept": "text/html", "Sec-Fetch-Mode": "cors"}, "GET"),
    ({"Accept": "text/html"}, "POST"),
    ({"Accept": "text/html"}, "PUT"),
])
def test_non_browser_requests_get_401_not_a_redirect(site, headers, method):
    s = site.session()
    s.headers.update(headers)
    r = s.request(method, site.url("/packages/echo"), allow_redirects=False, data=b"x" if method != "GET" else None)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bitbucket realm=")
    assert "Location" not in r.headers
    assert len(r.text) < 200 and "<" not in r.text


def test_head_navigation_is_redirected(site):
    r = site.session().head(site.url("/packages/"), allow_redirects=False)
    assert r.status_code == 302


@pytest.mark.parametrize("action,browser_status,api_status", [
    ("redirect", 302, 302), ("401", 401, 401), ("auto", 302, 401)])
def test_unauth_action(site_factory, action, browser_status, api_status):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + f"""
<Location /packages>
    BBAuthUnauthAction {action}
</Location>
""")
    s = site.session()
    assert s.get(site.url("/packages/echo"), allow_redirects=False).status_code == browser_status
    s.headers["Accept"] = "application/json"
    assert s.get(site.url("/packages/echo"), allow_redirects=False).status_code == api_status


def test_pass_lets_anonymous_through_and_sets_identity_with_a_session(site):
    s = site.session()
    anon = site.echo(s, "/maybe/echo", headers={"X-Bitbucket-User": "admin"})
    assert anon["remote_user"] is None
    assert not [k for k in anon["headers"] if k.lower().startswith("x-bitbucket-")]
    site.login(s, "/packages/", user="bob")
    assert site.echo(s, "/maybe/echo")["remote_user"] == "bob"


def test_parallel_logins_in_several_tabs_all_complete(site):
    site.tabs_complete_in(site.session(), (2, 0, 1))


def test_replayed_callback_is_refused_even_with_its_state_cookie(site):
    s = site.session()
    replay = site.completed_then_replayed(s)
    assert replay.status_code == 400
    assert "bbauth_session=" not in replay.headers.get("Set-Cookie", "")
    assert site.fb.calls().get("token") == 1  # the code was not even sent again


def test_callback_without_its_state_cookie_is_refused(site):
    s = site.session()
    r = site.start_login(s, "/packages/echo")
    callback = site.authorize(s, r.headers["Location"])
    other_browser = site.session()
    r = other_browser.get(callback, allow_redirects=False)
    assert r.status_code == 400 and "bbauth_session=" not in r.headers.get("Set-Cookie", "")
    assert "Try again" in r.text or "try again" in r.text.lower()


@pytest.mark.parametrize("mangle", ["state", "code_missing", "code_empty", "state_missing", "both_missing",
                                    "dup_state", "tampered_cookie"])
def test_bad_callbacks_are_refused(site, mangle):
    s = site.session()
    r = site.start_login(s, "/packages/echo")
    callback = site.authorize(s, r.headers["Location"])
    q = query_of(callback)
    base = site.redirect_uri
    url = {
        "state": f"{base}?code={q['code']}&state={'x' * 43}",
        "code_missing": f"{base}?state={q['state']}",
        "code_empty": f"{base}?code=&state={q['state']}",
        "state_missing": f"{base}?code={q['code']}",
        "both_missing": base,
        "dup_state": f"{base}?code={q['code']}&state={q['state']}&state={q['state']}",
        "tampered_cookie": callback,
    }[mangle]
    if mangle == "tampered_cookie":
        for c in list(s.cookies):
            if c.name.startswith("bbauth_session_st_"):
                c.value = c.value[:-3] + ("AAA" if not c.value.endswith("AAA") else "BBB")
    r = s.get(url, allow_redirects=False)
    assert r.status_code == 400, (mangle, r.status_code)
    assert "bbauth_session=" not in r.headers.get("Set-Cookie", "")
    assert q["code"] not in r.text and q["code"] not in site.apache.error_log()
    assert not site.fb.calls().get("token")  # nothing incomplete is sent on to Bitbucket


def test_access_denied_gives_403_and_escapes_the_description(site):
    s = site.session()
    r = site.start_login(s, "/packages/echo")
    state = query_of(r.headers["Location"])["state"]
    r = s.get(site.redirect_uri, params={"error": "access_denied", "state": state,
                                         "error_description": "<script>alert(1)</script>"},
              allow_redirects=False)
    assert r.status_code == 403
    assert "<script>" not in r.text
    assert "bbauth_session=" not in r.headers.get("Set-Cookie", "")


def test_deny_on_the_consent_page_gives_403(site):
    site.fb.settings(auto_approve=False)
    s = site.session()
    r = site.start_login(s, "/packages/echo")
    bb = site.fake_session()
    bb.cookies = s.cookies
    bb.cookies.set("BITBUCKETSESSIONID", site.fb.control("POST", "/_fake/login", {"user": "alice"})["value"])
    consent = bb.get(r.headers["Location"], allow_redirects=False)
    assert consent.status_code == 303
    consent_url = consent.headers["Location"]
    if consent_url.startswith("/"):
        consent_url = site.fb.root_url + consent_url
    page = bb.get(consent_url, allow_redirects=False)
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
    form["deny"] = "Deny"
    form.pop("approve", None)
    denied = bb.post(consent_url.split("?")[0], data=form, allow_redirects=False)
    assert denied.status_code == 302 and "error=access_denied" in denied.headers["Location"]
    r = s.get(denied.headers["Location"], allow_redirects=False)
    assert r.status_code == 403


def test_code_refused_by_bitbucket_gives_502_and_a_log_line_that_says_why(site):
    """Deactivating the user between the authorize step and the callback revokes the code at Bitbucket."""
    s = site.session()
    r = site.start_login(s, "/packages/echo")
    callback = site.authorize(s, r.headers["Location"], user="zoe")
    mark = site.apache.log_mark()
    site.fb.control("POST", "/_fake/users/zoe/deactivate")
    r = s.get(callback, allow_redirects=False)
    assert r.status_code == 502
    assert "bbauth_session=" not in r.headers.get("Set-Cookie", "")
    log = site.apache.error_log_since(mark)
    assert "invalid_grant" in log and "/rest/oauth2/latest/token" in log
    assert query_of(callback)["code"] not in log + r.text


def test_refused_user_without_authz_forbidden_gets_a_challenge_and_says_who(site_factory):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s).replace("    AuthzSendForbiddenOnFailure On\n", ""))
    alice = site.session()
    site.login(alice, "/packages/", user="alice")
    r = alice.get(site.url("/only-bob/echo"), allow_redirects=False)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bitbucket realm=")
    assert "Logged in with Bitbucket as alice" in r.text


def test_require_bitbucket_user(site):
    alice = site.session()
    site.login(alice, "/packages/", user="alice")
    assert alice.get(site.url("/only-bob/echo"), allow_redirects=False).status_code == 403
    bob = site.session()
    site.login(bob, "/packages/", user="bob")
    assert site.echo(bob, "/only-bob/echo")["remote_user"] == "bob"


def test_bitbucket_with_a_context_path(site_factory):
    site = site_factory(context_path="/bitbucket")
    s = site.session()
    r = site.start_login(s, "/packages/echo")
    assert r.headers["Location"].startswith(site.fb.root_url + "/bitbucket/rest/oauth2/latest/authorize?")
    callback = site.authorize(s, r.headers["Location"])
    assert s.get(callback, allow_redirects=False).status_code == 302
    assert site.echo(s)["remote_user"] == "alice"


def test_cookies_are_secure_when_the_redirect_uri_is_https(site_factory):
    def conf(s):
        return bbsite.protected_conf(s).replace(f"BBAuthRedirectURI {s.redirect_uri}",
                                                "BBAuthRedirectURI https://mirror.example.com/bbauth/callback")
    site = site_factory(conf=conf)
    r = site.session().get(site.url("/packages/"), allow_redirects=False)
    name = re.match(r"([^=]+)=", r.headers["Set-Cookie"]).group(1)
    assert cookie_attrs(r.headers["Set-Cookie"], name)["secure"] is True
    assert query_of(r.headers["Location"])["redirect_uri"] == "https://mirror.example.com/bbauth/callback"
