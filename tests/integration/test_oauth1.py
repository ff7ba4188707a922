"""Issue 3: the OAuth 1.0a login (BBAuthOAuthVersion 1) through a real Apache and the fake Bitbucket, which
verifies every signature with python3-oauthlib: the full login, deny, replay, bad callbacks, an expired request
token, each oauth_problem logged by name with its fix, two-factor pages (OAuth 1 and 2), and a switch to OAuth 2
that keeps the session."""

import re
from urllib.parse import unquote

import jwt
import pytest

import bbsite
from bbsite import cookie_attrs, query_of
from oauth1site import AUTHORIZE_PATH, CONSUMER_KEY, make_oauth1_site, oauth1_conf
from test_shared_state import copy_of
from test_state_survives import next_second

LOGIN_FAILED = re.compile(r"\[bbauth:error\].*login failed: (.*)")


@pytest.fixture
def site(site_factory, tmp_serverroot):
    return make_oauth1_site(site_factory, tmp_serverroot)


def fake_log(site, endpoint):
    return site.fb.control("GET", f"/_fake/log?endpoint={endpoint}")["entries"]


def oauth_params(authorization):
    assert authorization.startswith("OAuth ")
    return {k: unquote(v) for k, v in re.findall(r'(\w+)="([^"]*)"', authorization)}


def header(entry, name):
    return {k.lower(): v for k, v in entry["headers"].items()}[name.lower()]


def assert_nothing_secret(site, s, *texts):
    """No token, verifier, token secret or cookie value of this test in the error log or the given texts."""
    log = site.apache.error_log()
    secrets = bbsite.fake_secrets(site.fb) + [c.value for c in s.cookies]
    for secret in secrets:
        for text in (log,) + texts:
            assert secret not in text


def authorized_callback(site, s, path="/packages/echo", user="alice"):
    r = site.start_login(s, path)
    return site.authorize(s, r.headers["Location"], user)


def consent(site, s, authorize_url, choice):
    """The consent page of the fake's OAuth 1 authorize servlet, answered with `choice` ("approve" or "deny");
    returns the callback URL Bitbucket redirects to."""
    site.fb.settings(auto_approve=False)
    bb = site.fake_session()
    bb.cookies = s.cookies
    bb.cookies.set("BITBUCKETSESSIONID", site.fb.control("POST", "/_fake/login", {"user": "alice"})["value"])
    page = bb.get(authorize_url, allow_redirects=False)
    assert page.status_code == 200 and 'id="consent-form"' in page.text
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
    form[choice] = "x"
    r = bb.post(authorize_url.split("?")[0], data=form, allow_redirects=False)
    assert r.status_code == 302, r.text[:300]
    return r.headers["Location"]


# ---- the login ----

def test_full_login_sets_identity(site):
    s = site.session()
    r = site.login(s, "/packages/echo?x=1", user="alice")
    assert r.headers["Location"] == "/packages/echo?x=1"
    echo = site.echo(s)
    assert echo["remote_user"] == "alice" and echo["auth_type"] == "Bitbucket"
    h = {k.lower(): v for k, v in echo["headers"].items()}
    assert h["x-bitbucket-user"] == "alice"
    calls = site.fb.calls()
    assert calls["oauth1_request_token"] == 1 and calls["oauth1_access_token"] == 1
    assert not calls.get("token") and not calls.get("authorize")  # no OAuth 2 step at all
    assert_nothing_secret(site, s, r.text)


def test_every_step_is_signed_rsa_sha1_as_the_protocol_wants(site):
    s = site.session()
    site.login(s, "/packages/echo", user="bob")
    request_token = fake_log(site, "oauth1_request_token")[-1]
    assert request_token["method"] == "POST"
    p = oauth_params(header(request_token, "Authorization"))
    assert p["oauth_callback"] == site.redirect_uri
    assert p["oauth_consumer_key"] == CONSUMER_KEY
    assert p["oauth_signature_method"] == "RSA-SHA1" and p["oauth_version"] == "1.0"
    access = fake_log(site, "oauth1_access_token")[-1]
    a = oauth_params(header(access, "Authorization"))
    assert a["oauth_verifier"] and a["oauth_token"] and "oauth_callback" not in a
    assert a["oauth_nonce"] != p["oauth_nonce"]
    for endpoint in ("whoami", "users"):
        rest = fake_log(site, endpoint)[-1]
        assert rest["principal"] == "bob", rest
        assert oauth_params(header(rest, "Authorization"))["oauth_token"] != a["oauth_token"]  # the access token


def test_authorize_redirect_and_state_cookie(site):
    s = site.session()
    r = site.start_login(s, "/packages/")
    location = r.headers["Location"]
    assert location.startswith(site.fb.base_url + AUTHORIZE_PATH + "?oauth_token=")
    assert list(query_of(location)) == ["oauth_token"]
    assert r.headers["Cache-Control"] == "no-store"
    names = [c.name for c in s.cookies if c.name.startswith("bbauth_session_st_")]
    assert len(names) == 1
    attrs = cookie_attrs(r.headers["Set-Cookie"], names[0])
    # issue 19: Path=/, so that the pending ones are seen (and bounded) wherever a login starts
    assert attrs["httponly"] is True and attrs["path"] == "/"
    assert 0 < int(attrs["max-age"]) <= 600
    assert query_of(location)["oauth_token"] not in site.apache.error_log()


def test_login_handler_and_context_path(site_factory, tmp_serverroot):
    site = make_oauth1_site(site_factory, tmp_serverroot, context_path="/bitbucket")
    s = site.session()
    r = s.get(site.url("/login?return=/packages/echo"), allow_redirects=False)
    assert r.headers["Location"].startswith(site.fb.base_url + AUTHORIZE_PATH)
    callback = site.authorize(s, r.headers["Location"], "jane@example.com", "jane-password")
    assert s.get(callback, allow_redirects=False).headers["Location"] == "/packages/echo"
    assert site.echo(s)["remote_user"] == "jane@example.com"


def test_parallel_logins_in_several_tabs_all_complete(site):
    site.tabs_complete_in(site.session(), (1, 2, 0))


def test_deny_on_the_consent_page_gives_403(site):
    s = site.session()
    r = site.start_login(s, "/packages/echo")
    callback = consent(site, s, r.headers["Location"], "deny")
    assert query_of(callback)["oauth_verifier"] == "denied"
    r = s.get(callback, allow_redirects=False)
    assert r.status_code == 403 and "did not allow" in r.text
    assert "bbauth_session=" not in r.headers.get("Set-Cookie", "")
    assert not site.fb.calls().get("oauth1_access_token")  # nothing to ask Bitbucket


def test_approve_on_the_consent_page_logs_in(site):
    s = site.session()
    r = site.start_login(s, "/packages/echo")
    r = s.get(consent(site, s, r.headers["Location"], "approve"), allow_redirects=False)
    assert r.status_code == 302
    assert site.echo(s)["remote_user"] == "alice"


def test_replayed_callback_is_refused_even_with_its_state_cookie(site):
    s = site.session()
    replay = site.completed_then_replayed(s)
    assert replay.status_code == 400 and "already used" in replay.text
    assert "bbauth_session=" not in replay.headers.get("Set-Cookie", "")
    assert site.fb.calls()["oauth1_access_token"] == 1  # the request token was not even sent again


def test_callback_in_another_browser_is_refused(site):
    s = site.session()
    callback = authorized_callback(site, s)
    r = site.session().get(callback, allow_redirects=False)
    assert r.status_code == 400 and "bbauth_session=" not in r.headers.get("Set-Cookie", "")
    assert not site.fb.calls().get("oauth1_access_token")


BAD_CALLBACKS = ["verifier_missing", "token_missing", "both_missing", "other_token", "dup_token", "dup_verifier",
                 "empty_verifier", "tampered_cookie"]


def test_bad_callbacks_are_refused_without_asking_bitbucket(site):
    for mangle in BAD_CALLBACKS:  # one site for all (a site costs a second): each case in its own browser
        refuse_bad_callback(site, mangle)


def refuse_bad_callback(site, mangle):
    s = site.session()
    callback = authorized_callback(site, s)
    q = query_of(callback)
    base = site.redirect_uri
    token, verifier = q["oauth_token"], q["oauth_verifier"]
    url = {
        "verifier_missing": f"{base}?oauth_token={token}",
        "token_missing": f"{base}?oauth_verifier={verifier}",
        "both_missing": base,
        "other_token": f"{base}?oauth_token={'x' * 32}&oauth_verifier={verifier}",
        "dup_token": f"{base}?oauth_token={token}&oauth_token={token}&oauth_verifier={verifier}",
        "dup_verifier": f"{base}?oauth_token={token}&oauth_verifier={verifier}&oauth_verifier=abcdef",
        "empty_verifier": f"{base}?oauth_token={token}&oauth_verifier=",
        "tampered_cookie": callback,
    }[mangle]
    if mangle == "tampered_cookie":
        for c in list(s.cookies):
            if c.name.startswith("bbauth_session_st_"):
                c.value = c.value[:-3] + ("AAA" if not c.value.endswith("AAA") else "BBB")
    r = s.get(url, allow_redirects=False)
    assert r.status_code == 400, (mangle, r.status_code)
    assert "bbauth_session=" not in r.headers.get("Set-Cookie", ""), mangle
    assert not site.fb.calls().get("oauth1_access_token"), mangle
    assert_nothing_secret(site, s, r.text)


def test_a_refused_callback_leaves_the_login_usable_when_it_was_not_claimed(site):
    """A callback without the verifier is refused before the login is claimed: the real one still works."""
    s = site.session()
    callback = authorized_callback(site, s)
    assert s.get(f"{site.redirect_uri}?oauth_token={query_of(callback)['oauth_token']}",
                 allow_redirects=False).status_code == 400
    assert s.get(callback, allow_redirects=False).status_code == 302
    assert site.echo(s)["remote_user"] == "alice"


# ---- what Bitbucket refuses: each oauth_problem by name, with its fix ----

def fails_at_start(site, s):
    return site.url("/packages/echo")


def callback_after(prepare):
    def make(site, s):
        callback = authorized_callback(site, s)
        return prepare(site, query_of(callback)) or callback
    return make


def forged_callback(site, s):
    """A callback for a request token the user never approved."""
    token = query_of(site.start_login(s, "/packages/echo").headers["Location"])["oauth_token"]
    return f"{site.redirect_uri}?oauth_token={token}&oauth_verifier=abc123"


def wrong_verifier(site, q):
    return f"{site.redirect_uri}?oauth_token={q['oauth_token']}&oauth_verifier=zzzzzz"


def expire_request_token(site, q):
    site.fb.control("POST", "/_fake/clock", {"advance": 700})  # past request_token_ttl (600 s)


def use_request_token(site, q):
    site.fb.control("POST", "/_fake/tokens/revoke", {"token": q["oauth_token"]})


def wrong_timestamp_window(site):
    site.fb.settings(oauth1_timestamp_window=-1)


def consumer_without_3lo(site):
    with open(site.oauth1_public_key) as f:
        site.fb.control("POST", "/_fake/oauth1/consumers",
                        {"consumer_key": CONSUMER_KEY, "public_key": f.read(), "allow_3lo": False})


PROBLEMS = {
    # problem: (site options, fake set-up, URL to get, what the log line must say)
    "consumer_key_unknown": ({"conf": lambda s: oauth1_conf(s, consumer_key="not-the-link")}, None, fails_at_start,
                             "BBAuthClientID does not match the Consumer Key of the application link"),
    "signature_invalid": ({"public_key": "other"}, None, fails_at_start,
                          "Public Key in the application link does not match BBAuthOAuth1PrivateKey"),
    "timestamp_refused": ({}, wrong_timestamp_window, fails_at_start, "check this server's clock"),
    "permission_denied": ({}, consumer_without_3lo, fails_at_start, "3-legged OAuth"),
    "permission_unknown": ({}, None, forged_callback, "did not approve"),
    "token_rejected": ({}, None, callback_after(wrong_verifier), "start again"),
    "token_expired": ({}, None, callback_after(expire_request_token), "start again"),
    "token_used": ({}, None, callback_after(use_request_token), "start again"),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_oauth_problem_is_logged_by_name_with_its_fix(site_factory, tmp_serverroot, problem):
    opts, prepare, target, fix = PROBLEMS[problem]
    opts = dict(opts)
    if opts.get("public_key") == "other":
        import testca
        opts["public_key"] = testca.make_rsa_keypair(str(tmp_serverroot / "other"), "other")[1]
    site = make_oauth1_site(site_factory, tmp_serverroot, **opts)
    if prepare:
        prepare(site)
    s = site.session()
    url = target(site, s)
    mark = site.apache.log_mark()
    r = s.get(url, allow_redirects=False)
    assert r.status_code == 502, (r.status_code, r.text[:300])
    assert "<title>502" in r.text and len(r.text) < 2000
    assert "remote_user" not in r.text  # the protected page is not served after the error page
    assert "bbauth_session=" not in r.headers.get("Set-Cookie", "")
    lines = LOGIN_FAILED.findall(site.apache.error_log_since(mark))
    assert len(lines) == 1, lines
    assert f"oauth_problem={problem}" in lines[0] and fix in lines[0], lines[0]
    assert "/plugins/servlet/oauth/" in lines[0]
    assert_nothing_secret(site, s, r.text)


def test_signed_rest_call_refused_names_the_problem(site):
    """An access token that Bitbucket no longer takes by the time of the signed whoami call."""
    site.fb.settings(oauth1_access_token_ttl=0)
    s = site.session()
    callback = authorized_callback(site, s)
    r = s.get(callback, allow_redirects=False)
    assert r.status_code == 502 and "bbauth_session=" not in r.headers.get("Set-Cookie", "")
    line = LOGIN_FAILED.findall(site.apache.error_log())[-1]
    assert "/plugins/servlet/applinks/whoami" in line
    assert "HTTP 401: Bitbucket refused the credential: oauth_problem=token_expired" in line
    assert_nothing_secret(site, s, r.text)


def test_signature_base_url_mismatch_is_signature_invalid(site):
    """Bitbucket signs against the URL it sees itself (behind a proxy: another one): the fix names both causes."""
    site.fb.settings(oauth1_base_uri="https://bitbucket.example.com")
    s = site.session()
    r = s.get(site.url("/packages/echo"), allow_redirects=False)
    assert r.status_code == 502
    line = LOGIN_FAILED.findall(site.apache.error_log())[-1]
    assert "oauth_problem=signature_invalid" in line and "BBAuthBitbucketURL" in line


# ---- two-factor plugins: a page or a redirect where data is expected ----

def assert_two_factor_named(site, s, r, mark):
    assert r.status_code == 502, (r.status_code, r.text[:300])
    assert "two-factor" in r.text and "OAuth whitelist" in r.text
    assert "remote_user" not in r.text and "totp_code" not in r.text  # nothing of the 2FA page is passed on
    assert "bbauth_session=" not in r.headers.get("Set-Cookie", "")
    lines = LOGIN_FAILED.findall(site.apache.error_log_since(mark))
    assert len(lines) == 1 and "two-factor plugin" in lines[0] and "OAuth whitelist" in lines[0], lines
    assert_nothing_secret(site, s, r.text)


def two_factor_cases(site, endpoints):
    """Each endpoint answering a 2FA page, then a redirect elsewhere, in turn (one site for all)."""
    for endpoint in endpoints:
        for mode in ("twofactor", "redirect"):
            s = site.session()
            url = site.url("/packages/echo") if endpoint == "oauth1_request_token" else authorized_callback(site, s)
            site.fb.set_mode(endpoint, mode)
            mark = site.apache.log_mark()
            try:
                assert_two_factor_named(site, s, s.get(url, allow_redirects=False), mark)
            except AssertionError as e:
                raise AssertionError(f"{endpoint} {mode}: {e}") from e
            site.fb.set_mode("all", "normal")


def test_two_factor_page_fails_closed_oauth1(site):
    two_factor_cases(site, ["oauth1_request_token", "oauth1_access_token", "whoami", "users"])


def test_two_factor_page_fails_closed_oauth2(site_factory):
    two_factor_cases(site_factory(), ["token", "whoami"])


def test_other_bitbucket_failures_do_not_blame_two_factor(site):
    s = site.session()
    callback = authorized_callback(site, s)
    site.fb.set_mode("oauth1_access_token", "status:500")
    r = s.get(callback, allow_redirects=False)
    assert r.status_code == 502 and "two-factor" not in r.text


# ---- the session does not depend on the OAuth version ----

def test_switch_to_oauth2_asks_the_oauth1_sessions_to_log_in_once(site):
    # The OAuth 2 link is another integration (another client id): the logout marks of the OAuth 1 sessions were
    # kept under the OAuth 1 link, which it does not read, so it cannot tell a live one from a logged-out copy and
    # takes neither (its cache epoch begins with it). The cookie itself still verifies: the browser logs in once,
    # through OAuth 2. (Before the cache epoch such a session stayed valid, a logged-out copy with it.)
    s = site.session()
    site.login(s, "/packages/echo", user="alice")
    claims = jwt.decode(site.session_cookie(s), site.keys[0], algorithms=["HS256"], issuer=site.apache.base_url)
    assert claims["sub"] == "alice"
    bob = site.session()
    site.login(bob, "/packages/echo", user="bob")
    logged_out = copy_of(site, bob)
    assert site.logout(bob).status_code == 302

    next_second()                                       # the switch comes after the logins, by the clock too
    site.apache.restart(extra_conf=bbsite.protected_conf(site))  # OAuth 2, the same session key file
    assert copy_of(site, s).get(site.url("/packages/echo"), allow_redirects=False).status_code == 401
    assert logged_out.get(site.url("/packages/echo"), allow_redirects=False).status_code == 401
    r = site.start_login(s, "/packages/")
    assert r.headers["Location"].startswith(site.fb.base_url + "/rest/oauth2/latest/authorize?")
    site.login(s, "/packages/", user="alice")
    assert site.echo(s)["remote_user"] == "alice"


# ---- Require lines that ask Bitbucket: OAuth 1 logins keep no grant to ask with ----

ALICE_TOKEN = "BBDC-alicePersonalReadToken0000000000000000001"  # tests/fakebb/users.json


def test_require_repo_with_oauth1_takes_tokens_only(site_factory, tmp_serverroot):
    site = make_oauth1_site(site_factory, tmp_serverroot, conf=lambda s: oauth1_conf(s) + bbsite.ALPHA_REPO_LOCATION)
    rc, out = site.apache.configtest()
    warning = re.findall(r"Require bitbucket-repo on line \d+ of \S+extra.conf: .*", out)
    assert rc == 0 and warning and "BBAuthOAuthVersion 1" in warning[0] and "OAuth 2" in warning[0], out

    s = site.session()
    site.login(s, "/packages/echo", user="alice")  # alice may read PROJ/alpha, but her session cannot show it
    assert s.get(site.url("/alpha/echo"), allow_redirects=False).status_code == 403
    assert "keep no Bitbucket grant to ask with: this needs BBAuthOAuthVersion 2" in site.apache.error_log()

    api = site.session()
    api.headers.update({"Authorization": f"Bearer {ALICE_TOKEN}", "Accept": "*/*"})
    assert site.echo(api, "/alpha/echo")["remote_user"] == "alice"


# ---- apachectl -t: what BBAuthOAuthVersion 1 needs ----

PROTECTED = """<Location /packages>
    AuthType Bitbucket
    Require valid-user
</Location>
"""


def oauth1_config(site, key_line):
    return (f"BBAuthBitbucketURL {site.fb.base_url}\nBBAuthOAuthVersion 1\nBBAuthClientID {CONSUMER_KEY}\n"
            f"{key_line}\nBBAuthRedirectURI {site.redirect_uri}\nBBAuthSessionKey {site.key_file}\n" + PROTECTED)


@pytest.fixture
def unstarted(site_factory, tmp_serverroot):
    return make_oauth1_site(site_factory, tmp_serverroot, start=False)


def key_pem(key, encoding=None, fmt=None, password=None):
    from cryptography.hazmat.primitives import serialization as ser
    enc = ser.BestAvailableEncryption(password) if password else ser.NoEncryption()
    return key.private_bytes(ser.Encoding.PEM, fmt or ser.PrivateFormat.PKCS8, enc)


def bad_key(case, directory):
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    directory.mkdir(mode=0o700, exist_ok=True)
    if case == "missing":
        return str(directory / "no-such.pem"), "cannot read"
    if case == "directory":
        return str(directory), "cannot read"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    content, why = {
        "encrypted PKCS#8": (key_pem(rsa_key, password=b"secret"), "encrypted"),
        "encrypted PKCS#1": (key_pem(rsa_key, fmt=ser.PrivateFormat.TraditionalOpenSSL, password=b"secret"),
                             "encrypted"),
        "EC": (key_pem(ec.generate_private_key(ec.SECP256R1())), "not an RSA key"),
        "1024-bit RSA": (key_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "1024 bits"),
        "public key only": (rsa_key.public_key().public_bytes(ser.Encoding.PEM,
                                                              ser.PublicFormat.SubjectPublicKeyInfo),
                            "no PEM private key"),
        "empty": (b"", "no PEM private key"),
    }[case]
    path = directory / "bad-key.pem"
    path.write_bytes(content)
    path.chmod(0o600)
    return str(path), why


BAD_KEYS = ["missing", "directory", "encrypted PKCS#8", "encrypted PKCS#1", "EC", "1024-bit RSA", "public key only",
            "empty"]


def test_configtest_refuses_a_bad_private_key(unstarted, tmp_serverroot):
    for case in BAD_KEYS:
        refuse_bad_key(unstarted, tmp_serverroot, case)


def refuse_bad_key(unstarted, tmp_serverroot, case):
    path, why = bad_key(case, tmp_serverroot / "keys")
    rc, out = unstarted.apache.configtest(oauth1_config(unstarted, f"BBAuthOAuth1PrivateKey {path}"))
    assert rc != 0, (case, out)
    assert "BBAuthOAuth1PrivateKey" in out and path in out and why in out, out
    assert re.search(r"line 4 of \S*extra\.conf", out), out
    assert "BEGIN" not in out.replace("-----BEGIN PRIVATE KEY-----", "").replace(
        "-----BEGIN RSA PRIVATE KEY-----", "")  # no key material, only the names of the PEM forms


def test_configtest_without_the_private_key_names_it(unstarted):
    rc, out = unstarted.apache.configtest(oauth1_config(unstarted, ""))
    assert rc != 0
    assert "BBAuthOAuth1PrivateKey" in out and "AuthType Bitbucket on line 8" in out and "extra.conf" in out, out
    assert "BBAuthClientSecret" not in out  # OAuth 1 has no client secret


def test_configtest_accepts_pkcs1_and_pkcs8_keys_readable_by_root_only(unstarted, tmp_serverroot):
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import rsa
    for fmt in (ser.PrivateFormat.TraditionalOpenSSL, ser.PrivateFormat.PKCS8):
        path = tmp_serverroot / f"key-{fmt.name}.pem"
        path.write_bytes(key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048), fmt=fmt))
        path.chmod(0o600)
        rc, out = unstarted.apache.configtest(oauth1_config(unstarted, f"BBAuthOAuth1PrivateKey {path}"))
        assert rc == 0, out
