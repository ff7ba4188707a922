"""Self-tests of the fake Bitbucket DC (run: /usr/bin/python3 -m pytest -q tests/fakebb).

The fake runs as a subprocess (as the integration tests use it) with a CA made by testca; everything is
driven with python-requests (verify=ca.pem) and, for OAuth 1.0a, oauthlib's RSA-SHA1 client.
"""

import base64
import hashlib
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse

import pytest
import requests
from oauthlib import oauth1

from . import testca
from .fake_bitbucket import FakeBitbucketProcess

HERE = os.path.dirname(os.path.abspath(__file__))
CTX = "/bitbucket"
CLIENT_ID = "mod-bbauth-test"
CLIENT_SECRET = "s3cr3t-client-secret"
REDIRECT = "https://127.0.0.1:8443/bbauth/callback"
CONSUMER = "mod-bbauth-oauth1-test"
CALLBACK = "https://127.0.0.1:8443/bbauth/oauth1/callback"

ALICE_PAT = "BBDC-alicePersonalReadToken0000000000000000001"
ALICE_PAT_EXPIRED = "BBDC-alicePersonalExpiredToken0000000000000003"
ALICE_PAT_REVOKED = "BBDC-alicePersonalRevokedToken0000000000000004"
BOB_PAT = "BBDC-bobPersonalReadToken00000000000000000005"
CAROL_PAT = "BBDC-carolPersonalToken000000000000000000007"
DAVE_PAT = "BBDC-davePersonalReadToken0000000000000000009"
PROJ_TOKEN = "BBDC-projPROJProjectReadToken00000000000000010"
REPO_TOKEN = "BBDC-repoPROJAlphaRepoWriteToken0000000000011"


# ----------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    paths = testca.make_ca_and_cert(d)
    paths["untrusted"] = testca.make_untrusted_ca_and_cert(d)
    paths["o1_priv"], paths["o1_pub"] = testca.make_rsa_keypair(d, "consumer")
    paths["o1_other_priv"], _ = testca.make_rsa_keypair(d, "other")
    paths["dir"] = d
    return paths


@pytest.fixture(scope="session")
def fb(pki, tmp_path_factory):
    work = tmp_path_factory.mktemp("fakebb")
    with FakeBitbucketProcess(work, pki["cert"], pki["key"], pki["ca"], context_path=CTX,
                              oauth2_client_id=CLIENT_ID, oauth2_client_secret=CLIENT_SECRET,
                              redirect_uris=[REDIRECT], oauth1_consumer_key=CONSUMER,
                              oauth1_public_key=pki["o1_pub"]) as f:
        yield f


@pytest.fixture(autouse=True)
def _fresh(fb):
    fb.reset()
    yield


@pytest.fixture
def http(pki):
    s = requests.Session()
    s.trust_env = False   # else REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE from the environment override s.verify
    s.verify = pki["ca"]
    yield s
    s.close()


def priv_key(pki, name="o1_priv"):
    with open(pki[name]) as f:
        return f.read()


# ----------------------------------------------------------------------------------------------- helpers

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def pkce():
    verifier = b64u(secrets.token_bytes(32))
    return verifier, b64u(hashlib.sha256(verifier.encode()).digest())


def authorize_url(fb, **over):
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT,
              "scope": "PUBLIC_REPOS REPO_READ", "state": "st-123"}
    params.update(over)
    params = {k: v for k, v in params.items() if v is not None}
    return fb.base_url + "/rest/oauth2/latest/authorize?" + urllib.parse.urlencode(params)


def login(fb, http, user="alice", password=None):
    r = http.post(fb.base_url + "/j_atl_security_check",
                  data={"j_username": user, "j_password": password or f"{user}-password", "next": CTX + "/"},
                  allow_redirects=False)
    assert r.status_code == 303, r.text
    return r


def get_code(fb, http, **over):
    r = http.get(authorize_url(fb, **over), allow_redirects=False)
    assert r.status_code == 302, (r.status_code, r.text)
    loc = r.headers["Location"]
    assert loc.startswith(REDIRECT + "?")
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))
    return q["code"], q


def exchange(fb, http, code, verifier=None, **over):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    if verifier is not None:
        data["code_verifier"] = verifier
    data.update(over)
    data = {k: v for k, v in data.items() if v is not None}
    return http.post(fb.base_url + "/rest/oauth2/latest/token", data=data)


def full_oauth2(fb, http, user="alice"):
    login(fb, http, user)
    v, c = pkce()
    code, _ = get_code(fb, http, code_challenge=c, code_challenge_method="S256")
    r = exchange(fb, http, code, v)
    assert r.status_code == 200, r.text
    return r.json()


def whoami(fb, headers=None, auth=None, pki=None):
    return requests.get(fb.base_url + "/plugins/servlet/applinks/whoami", headers=headers or {}, auth=auth,
                        verify=fb.ca)


def bearer(t):
    return {"Authorization": "Bearer " + t}


def basic(user, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def rest(fb, path, headers=None, **params):
    return requests.get(fb.base_url + "/rest/api/1.0" + path, headers=headers or {}, params=params,
                        verify=fb.ca)


def assert_errors_body(r, status, exc_part=None):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert isinstance(body["errors"], list) and body["errors"]
    e = body["errors"][0]
    assert set(e) == {"context", "message", "exceptionName"}
    if exc_part:
        assert exc_part in (e["exceptionName"] or "")


# ----------------------------------------------------------------------------------------------- testca

def test_testca_cert_properties(pki):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID
    with open(pki["cert"], "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(pki["ca"], "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert ExtendedKeyUsageOID.SERVER_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    assert "mod_bbauth test CA" in ca.subject.rfc4514_string()
    assert cert.issuer == ca.subject


def test_testca_cli(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(HERE, "testca.py"), str(tmp_path)], check=True,
                         capture_output=True, text=True).stdout
    paths = json.loads(out)
    for k in ("ca", "cert", "key"):
        assert os.path.exists(paths[k])


def test_tls_trust_and_untrusted_ca(fb, pki, tmp_path):
    assert requests.get(fb.root_url + "/_fake/health", verify=pki["ca"]).json()["ok"]
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(fb.root_url + "/_fake/health", verify=pki["untrusted"]["ca"])
    # a fake serving the untrusted CA's certificate is rejected by a client trusting only ca.pem
    with FakeBitbucketProcess(tmp_path, pki["untrusted"]["cert"], pki["untrusted"]["key"],
                              pki["untrusted"]["ca"]) as other:
        assert requests.get(other.root_url + "/_fake/health", verify=pki["untrusted"]["ca"]).ok
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(other.root_url + "/_fake/health", verify=pki["ca"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls12_minimum(fb, pki):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with socket.create_connection(("127.0.0.1", fb.port)) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                pass


# ----------------------------------------------------------------------------------------------- basics

def test_context_path(fb, http):
    assert whoami(fb).status_code == 200
    r = http.get(fb.root_url + "/plugins/servlet/applinks/whoami")
    assert r.status_code == 404
    r = http.get(fb.root_url + "/rest/api/1.0/application-properties")
    assert r.status_code == 404
    r = http.get(fb.base_url + "/rest/api/latest/application-properties")
    assert r.status_code == 200 and r.json()["displayName"] == "Bitbucket"


def test_no_context_path_instance(pki, tmp_path):
    with FakeBitbucketProcess(tmp_path, pki["cert"], pki["key"], pki["ca"]) as f:
        r = requests.get(f.base_url + "/plugins/servlet/applinks/whoami", headers=bearer(ALICE_PAT),
                         verify=pki["ca"])
        assert r.text == "alice"
        assert f.base_url == f.root_url


def test_cli_banner(pki, tmp_path):
    p = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "fake_bitbucket.py"), "--port", "0",
                          "--cert", pki["cert"], "--key", pki["key"], "--context-path", "/bb"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("fake bitbucket listening on https://127.0.0.1:")
        assert line.rstrip().endswith("/bb")
    finally:
        p.terminate()
        p.wait(5)


# ----------------------------------------------------------------------------------------------- OAuth 2

def test_oauth2_full_flow_via_login_form(fb, http):
    v, c = pkce()
    url = authorize_url(fb, code_challenge=c, code_challenge_method="S256")
    r = http.get(url, allow_redirects=False)
    assert r.status_code == 303
    assert r.headers["Cache-Control"] == "no-store"
    login_url = urllib.parse.urljoin(url, r.headers["Location"])
    assert urllib.parse.urlsplit(login_url).path == CTX + "/login"
    form = http.get(login_url)
    assert form.status_code == 200 and "text/html" in form.headers["Content-Type"]
    for needle in ('<form method="post"', 'name="j_username"', 'name="j_password"', 'id="submit"'):
        assert needle in form.text
    nxt = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(login_url).query))["next"]
    # wrong password -> form again, no cookie
    r = http.post(fb.base_url + "/j_atl_security_check",
                  data={"j_username": "alice", "j_password": "nope", "next": nxt}, allow_redirects=False)
    assert r.status_code == 200 and "Invalid username or password" in r.text
    assert "BITBUCKETSESSIONID" not in http.cookies
    r = http.post(fb.base_url + "/j_atl_security_check",
                  data={"j_username": "alice", "j_password": "alice-password", "next": nxt},
                  allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == nxt
    assert "BITBUCKETSESSIONID" in http.cookies
    r = http.get(urllib.parse.urljoin(url, nxt), allow_redirects=False)
    assert r.status_code == 302
    loc = urllib.parse.urlsplit(r.headers["Location"])
    assert loc.scheme + "://" + loc.netloc + loc.path == REDIRECT
    q = dict(urllib.parse.parse_qsl(loc.query))
    assert q["state"] == "st-123" and q["code"]
    tr = exchange(fb, http, q["code"], v)
    assert tr.status_code == 200, tr.text
    assert tr.headers["Content-Type"].startswith("application/json")
    assert tr.headers["Cache-Control"] == "no-store"
    body = tr.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["scope"] == "PUBLIC_REPOS REPO_READ"
    for k in ("access_token", "refresh_token"):
        assert len(body[k].split(".")) == 3
    w = whoami(fb, bearer(body["access_token"]))
    assert w.status_code == 200 and w.text == "alice"
    assert w.headers["X-AUSERNAME"] == "alice" and w.headers["X-AUSERID"] == "101"
    assert w.headers["Cache-Control"] == "private"
    assert whoami(fb, basic("x-token-auth", body["access_token"])).text == "alice"
    assert whoami(fb, {"Authorization": "bearer " + body["access_token"]}).text == ""  # case-sensitive


def test_login_next_is_not_an_open_redirect(fb, http):
    for nxt in ("https://evil.example/", "//evil.example/x", "/elsewhere"):
        r = http.post(fb.base_url + "/j_atl_security_check",
                      data={"j_username": "bob", "j_password": "bob-password", "next": nxt},
                      allow_redirects=False)
        assert r.status_code == 303 and r.headers["Location"] == CTX + "/"


def test_inactive_user_cannot_log_in(fb, http):
    r = http.post(fb.base_url + "/j_atl_security_check",
                  data={"j_username": "carol", "j_password": "carol-password", "next": CTX + "/"},
                  allow_redirects=False)
    assert r.status_code == 200 and "BITBUCKETSESSIONID" not in http.cookies


def test_state_omitted_when_absent_and_echoed_exactly(fb, http):
    login(fb, http)
    code, q = get_code(fb, http, state=None)
    assert "state" not in q
    weird = "a b&c=d/é?"
    code, q = get_code(fb, http, state=weird)
    assert q["state"] == weird


def test_consent_page_approve_and_deny(fb, http):
    fb.settings(auto_approve=False)
    login(fb, http)
    r = http.get(authorize_url(fb), allow_redirects=False)
    assert r.status_code == 303 and "/plugins/servlet/oauth2/consent" in r.headers["Location"]
    page = http.get(urllib.parse.urljoin(fb.base_url, r.headers["Location"]))
    assert 'id="approve"' in page.text and 'id="deny"' in page.text
    import re
    fields = dict(re.findall(r'name="(request|atl_token)" value="([^"]*)"', page.text))
    # XSRF token required
    bad = http.post(fb.base_url + "/plugins/servlet/oauth2/consent",
                    data={"request": fields["request"], "approve": "approve"}, allow_redirects=False)
    assert bad.status_code == 403
    ok = http.post(fb.base_url + "/plugins/servlet/oauth2/consent",
                   data=dict(fields, approve="approve"), allow_redirects=False)
    assert ok.status_code == 302 and ok.headers["Location"].startswith(REDIRECT + "?code=")
    # deny
    r = http.get(authorize_url(fb), allow_redirects=False)
    page = http.get(urllib.parse.urljoin(fb.base_url, r.headers["Location"]))
    fields = dict(re.findall(r'name="(request|atl_token)" value="([^"]*)"', page.text))
    no = http.post(fb.base_url + "/plugins/servlet/oauth2/consent", data=dict(fields, deny="deny"),
                   allow_redirects=False)
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(no.headers["Location"]).query))
    assert q["error"] == "access_denied" and q["state"] == "st-123" and "code" not in q
    assert q["error_description"]


def authorize_error(r):
    assert r.status_code == 400, (r.status_code, r.text)
    assert "Location" not in r.headers
    assert "text/html" in r.headers["Content-Type"]
    return r.headers["X-Fake-OAuth-Error"]


@pytest.mark.parametrize("over,error", [
    ({"redirect_uri": REDIRECT + "/"}, "invalid_request"),
    ({"redirect_uri": REDIRECT.upper()}, "invalid_request"),
    ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
    ({"redirect_uri": None}, "invalid_request"),
    ({"client_id": "nope"}, "invalid_request"),
    ({"client_id": None}, "invalid_request"),
    ({"response_type": ""}, "invalid_request"),
    ({"response_type": None}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": None}, "invalid_scope"),
    ({"scope": ""}, "invalid_scope"),
    ({"scope": "PUBLIC_REPOS,REPO_READ"}, "invalid_scope"),
    ({"scope": "PROJECT_ADMIN"}, "invalid_scope"),     # above the link's REPO_ADMIN ceiling
    ({"scope": "repo_read"}, "invalid_scope"),
    ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
    ({"code_challenge": "a" * 43, "code_challenge_method": "S512"}, "invalid_request"),
    ({"code_challenge_method": "S256"}, "invalid_request"),
])
def test_authorize_strictness(fb, http, over, error):
    login(fb, http)  # errors show even when logged in, and never redirect
    assert authorize_error(http.get(authorize_url(fb, **over), allow_redirects=False)) == error


def test_authorize_repeated_parameter(fb, http):
    login(fb, http)
    url = authorize_url(fb) + "&redirect_uri=" + urllib.parse.quote("https://evil.example/cb", safe="")
    assert authorize_error(http.get(url, allow_redirects=False)) == "invalid_request"


def test_authorize_errors_before_login(fb, http):
    assert authorize_error(http.get(authorize_url(fb, redirect_uri="https://evil.example/"),
                                    allow_redirects=False)) == "invalid_request"


def test_code_replay_revokes_tokens(fb, http):
    login(fb, http)
    code, _ = get_code(fb, http)
    first = exchange(fb, http, code)
    assert first.status_code == 200
    at = first.json()["access_token"]
    rt = first.json()["refresh_token"]
    assert whoami(fb, bearer(at)).text == "alice"
    again = exchange(fb, http, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert whoami(fb, bearer(at)).text == ""
    r = http.post(fb.base_url + "/rest/oauth2/latest/token",
                  data={"grant_type": "refresh_token", "refresh_token": rt, "client_id": CLIENT_ID,
                        "client_secret": CLIENT_SECRET, "redirect_uri": REDIRECT})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_replay_also_revokes_refreshed_descendants(fb, http):
    login(fb, http)
    code, _ = get_code(fb, http)
    t1 = exchange(fb, http, code).json()
    t2 = refresh(fb, http, t1["refresh_token"]).json()
    assert whoami(fb, bearer(t2["access_token"])).text == "alice"
    assert exchange(fb, http, code).json()["error"] == "invalid_grant"
    assert whoami(fb, bearer(t2["access_token"])).text == ""


@pytest.mark.parametrize("verifier,desc", [
    (None, "code verifier missing"),
    ("", "code verifier missing"),
    ("tooshort", "invalid"),
    ("x" * 129, "invalid"),
    ("bad verifier with spaces and enough length 0123456789", "invalid"),
    ("A" * 43, "mismatch"),
])
def test_pkce_failures(fb, http, verifier, desc):
    login(fb, http)
    v, c = pkce()
    code, _ = get_code(fb, http, code_challenge=c, code_challenge_method="S256")
    r = exchange(fb, http, code, verifier)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant" and desc in r.json()["error_description"]
    # the code is consumed by the failed attempt
    assert exchange(fb, http, code, v).json()["error"] == "invalid_grant"


def test_pkce_rfc7636_vector_and_method_variants(fb, http):
    login(fb, http)
    v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    c = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    for method in ("S256", "s256"):
        code, _ = get_code(fb, http, code_challenge=c, code_challenge_method=method)
        assert exchange(fb, http, code, v).status_code == 200
    code, _ = get_code(fb, http, code_challenge=v, code_challenge_method="plain")
    assert exchange(fb, http, code, v).status_code == 200
    code, _ = get_code(fb, http, code_challenge=v, code_challenge_method="plain")
    assert exchange(fb, http, code, c).json()["error_description"].endswith("mismatch")


def test_blank_method_means_no_pkce(fb, http):
    login(fb, http)
    v, c = pkce()
    code, _ = get_code(fb, http, code_challenge=c)                       # no method at all
    assert exchange(fb, http, code).status_code == 200
    code, _ = get_code(fb, http, code_challenge=c, code_challenge_method="")
    assert exchange(fb, http, code, "whatever-is-ignored").status_code == 200


def test_client_authentication(fb, http):
    login(fb, http)
    code, _ = get_code(fb, http)
    r = exchange(fb, http, code, client_secret="wrong")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    code, _ = get_code(fb, http)
    r = exchange(fb, http, code, client_secret=None)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    # HTTP Basic client authentication is not what Bitbucket does
    code, _ = get_code(fb, http)
    r = http.post(fb.base_url + "/rest/oauth2/latest/token", auth=(CLIENT_ID, CLIENT_SECRET),
                  data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                        "client_id": CLIENT_ID})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = exchange(fb, http, code, client_id="someone-else")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_token_endpoint_request_validation(fb, http):
    login(fb, http)
    url = fb.base_url + "/rest/oauth2/latest/token"
    r = http.post(url, data={"grant_type": ""})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    r = http.post(url, data={"grant_type": "client_credentials"})
    assert (r.status_code, r.json()["error"]) == (400, "unsupported_grant_type")
    r = http.post(url, data={"grant_type": "password", "username": "alice", "password": "alice-password"})
    assert r.json()["error"] == "unsupported_grant_type"
    code, _ = get_code(fb, http)
    for missing in ("code", "redirect_uri", "client_id"):
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, missing: ""}
        r = http.post(url, data=data)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"
        assert "missing required parameter" in r.json()["error_description"]
    # JSON body / query-string parameters are not accepted
    r = http.post(url, json={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                             "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    assert r.status_code == 415
    r = http.post(url + "?" + urllib.parse.urlencode({"grant_type": "authorization_code", "code": code}),
                  data={"client_id": CLIENT_ID})
    assert r.json()["error"] == "invalid_request"
    assert http.get(url).status_code == 405
    # the code is still good after all these (none reached it)
    assert exchange(fb, http, code).status_code == 200


def test_token_redirect_uri_must_match(fb, http):
    fb.control("POST", "/_fake/oauth2/clients", {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                                 "redirect_uris": [REDIRECT, REDIRECT + "2"]})
    login(fb, http)
    code, _ = get_code(fb, http)
    r = exchange(fb, http, code, redirect_uri=REDIRECT + "2")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_code_expiry_and_binding(fb, http):
    fb.control("POST", "/_fake/oauth2/clients", {"client_id": "other", "client_secret": "o",
                                                 "redirect_uri": REDIRECT})
    login(fb, http)
    code, _ = get_code(fb, http)
    r = exchange(fb, http, code, client_id="other", client_secret="o")
    assert r.json()["error"] == "invalid_grant"
    code, _ = get_code(fb, http)
    fb.control("POST", "/_fake/clock", {"advance": 61})
    assert exchange(fb, http, code).json()["error"] == "invalid_grant"
    fb.control("POST", "/_fake/clock", {"offset": 0})
    fb.settings(code_ttl=1000)
    code, _ = get_code(fb, http)
    fb.control("POST", "/_fake/clock", {"advance": 500})
    assert exchange(fb, http, code).status_code == 200
    assert exchange(fb, http, "not-a-code").json()["error"] == "invalid_grant"


def refresh(fb, http, rt, **over):
    data = {"grant_type": "refresh_token", "refresh_token": rt, "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "redirect_uri": REDIRECT}
    data.update(over)
    data = {k: v for k, v in data.items() if v is not None}
    return http.post(fb.base_url + "/rest/oauth2/latest/token", data=data)


def test_refresh_rotation(fb, http):
    t1 = full_oauth2(fb, http)
    r = refresh(fb, http, t1["refresh_token"])
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    t2 = r.json()
    assert t2["access_token"] != t1["access_token"] and t2["refresh_token"] != t1["refresh_token"]
    assert t2["scope"] == t1["scope"]
    assert whoami(fb, bearer(t1["access_token"])).text == ""
    assert whoami(fb, bearer(t2["access_token"])).text == "alice"
    r = refresh(fb, http, t1["refresh_token"])
    assert r.status_code == 400 and r.json() == {"error": "invalid_grant",
                                                 "error_description": "invalid refresh token"}
    assert refresh(fb, http, t2["refresh_token"], client_secret="bad").status_code == 401
    assert refresh(fb, http, t2["refresh_token"], redirect_uri=None).status_code == 200


def test_refresh_redirect_uri_setting(fb, http):
    fb.settings(require_redirect_on_refresh=True)
    t = full_oauth2(fb, http)
    r = refresh(fb, http, t["refresh_token"], redirect_uri=None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = refresh(fb, http, t["refresh_token"], redirect_uri=REDIRECT + "x")
    assert r.json()["error"] == "invalid_grant"
    assert refresh(fb, http, t["refresh_token"]).status_code == 200


def test_token_lifetime_and_scopes_key_settings(fb, http):
    fb.settings(access_token_ttl=5, scopes_key="scopes")
    t = full_oauth2(fb, http)
    assert t["expires_in"] == 5 and "scope" not in t and t["scopes"] == "PUBLIC_REPOS REPO_READ"
    assert whoami(fb, bearer(t["access_token"])).text == "alice"
    fb.control("POST", "/_fake/clock", {"advance": 6})
    assert whoami(fb, bearer(t["access_token"])).text == ""
    assert rest(fb, "/users", bearer(t["access_token"])).status_code == 401
    t2 = refresh(fb, http, t["refresh_token"]).json()
    assert whoami(fb, bearer(t2["access_token"])).text == "alice"
    fb.settings(scopes_key="none")
    assert "scope" not in refresh(fb, http, t2["refresh_token"]).json()


def test_oauth2_scope_caps_permissions(fb, http):
    login(fb, http)
    code, _ = get_code(fb, http, scope="PUBLIC_REPOS")
    pub = exchange(fb, http, code).json()["access_token"]
    assert rest(fb, "/projects/PROJ/repos/alpha", bearer(pub)).status_code == 401
    assert rest(fb, "/projects/PUB/repos/docs", bearer(pub)).status_code == 200
    code, _ = get_code(fb, http, scope="REPO_READ")
    rd = exchange(fb, http, code).json()["access_token"]
    assert rest(fb, "/projects/PROJ/repos/alpha", bearer(rd)).status_code == 200
    names = [r["slug"] for r in rest(fb, "/repos", bearer(rd), permission="REPO_ADMIN").json()["values"]]
    assert names == []
    code, _ = get_code(fb, http, scope="REPO_ADMIN")
    ad = exchange(fb, http, code).json()["access_token"]
    names = [r["slug"] for r in rest(fb, "/repos", bearer(ad), permission="REPO_ADMIN").json()["values"]]
    assert names == ["alpha"]


def test_revoke_endpoint_and_metadata(fb, http):
    t = full_oauth2(fb, http)
    r = http.post(fb.base_url + "/rest/oauth2/latest/revoke",
                  data={"token": t["access_token"], "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    assert r.status_code == 200
    assert whoami(fb, bearer(t["access_token"])).text == ""
    md = http.get(fb.base_url + "/rest/oauth2/latest/.well-known/oauth-authorization-server").json()
    assert md["token_endpoint"] == fb.base_url + "/rest/oauth2/latest/token"
    assert http.get(fb.base_url + "/rest/oauth2/1.0/client").status_code == 401


# ----------------------------------------------------------------------------------------------- identity

@pytest.mark.parametrize("headers", [
    {}, bearer("nope"), bearer(ALICE_PAT_EXPIRED), bearer(ALICE_PAT_REVOKED), bearer(CAROL_PAT),
    basic("bob", ALICE_PAT), basic("alice", PROJ_TOKEN), basic("alice", "wrong-password"),
    {"Authorization": "Basic !!!notbase64"}, {"Authorization": "Negotiate abc"},
    {"Authorization": "Bearer"}, {"Authorization": "OAuth-ish nonsense"},
])
def test_whoami_is_200_empty_when_not_authenticated(fb, headers):
    r = whoami(fb, headers)
    assert r.status_code == 200 and r.content == b""
    assert "X-AUSERNAME" not in r.headers


@pytest.mark.parametrize("headers,user", [
    (bearer(ALICE_PAT), "alice"),
    (basic("alice", ALICE_PAT), "alice"),
    (bearer(BOB_PAT), "bob"),
    (basic("jane@example.com", "BBDC-janePersonalReadToken0000000000000000006"), "jane@example.com"),
    (bearer(PROJ_TOKEN), "project-token-proj"),
    (bearer(REPO_TOKEN), "repo-token-proj-alpha"),
    (basic("alice", "alice-password"), "alice"),
])
def test_whoami_http_tokens(fb, headers, user):
    r = whoami(fb, headers)
    assert r.status_code == 200 and r.text == user
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.headers["X-AUSERNAME"] == user


def test_users_filter_and_slug(fb):
    h = bearer(ALICE_PAT)
    assert_errors_body(rest(fb, "/users", filter="ali"), 401, "AuthorisationException")
    body = rest(fb, "/users", h, filter="ALI").json()
    assert set(body) >= {"size", "limit", "isLastPage", "start", "values"}
    assert [u["name"] for u in body["values"]] == ["alice"]
    assert [u["name"] for u in rest(fb, "/users", h, filter="zoe@EXAMPLE").json()["values"]] == ["zoe"]
    assert [u["name"] for u in rest(fb, "/users", h, filter="ångström").json()["values"]] == ["zoe"]
    jane = rest(fb, "/users", h, filter="jane@example.com").json()["values"][0]
    assert jane["slug"] == "jane_example.com" and jane["name"] == "jane@example.com" and jane["type"] == "NORMAL"
    assert set(jane) == {"name", "emailAddress", "active", "displayName", "id", "slug", "type", "links"}
    page = rest(fb, "/users", h, limit=2).json()
    assert page["size"] == 2 and page["isLastPage"] is False and page["nextPageStart"] == 2
    assert all(u["type"] == "NORMAL" for u in rest(fb, "/users", h, limit=100).json()["values"])
    carol = rest(fb, "/users", h, filter="carol").json()["values"][0]
    assert carol["active"] is False
    r = rest(fb, "/users/jane_example.com", h, avatarSize=48)
    assert r.status_code == 200 and r.json()["name"] == "jane@example.com" and "avatarUrl" in r.json()
    assert_errors_body(rest(fb, "/users/jane@example.com", h), 404, "NoSuchUserException")
    assert_errors_body(rest(fb, "/users/alice"), 401, "AuthorisationException")
    zoe = rest(fb, "/users/zoe", h).json()
    assert zoe["displayName"] == "Zoë Ångström-Müller 張偉"
    svc = rest(fb, "/users/project-token-proj", h).json()
    assert svc["type"] == "SERVICE"


def test_application_properties(fb):
    r = rest(fb, "/application-properties")
    assert r.status_code == 200 and set(r.json()) >= {"version", "buildNumber", "buildDate", "displayName"}
    assert "X-AUSERNAME" not in r.headers
    r = rest(fb, "/application-properties", bearer(ALICE_PAT))
    assert r.headers["X-AUSERNAME"] == "alice"
    assert_errors_body(rest(fb, "/application-properties", basic("alice", "wrong")), 401, "IncorrectPassword")


def test_http_token_rules(fb):
    assert rest(fb, "/users/alice", basic("bob", ALICE_PAT)).status_code == 401
    assert rest(fb, "/users/alice", basic("project-token-proj", PROJ_TOKEN)).status_code == 401
    assert rest(fb, "/users/alice", bearer(PROJ_TOKEN)).status_code == 200
    # project token: its project only
    assert rest(fb, "/projects/PROJ/repos/alpha", bearer(PROJ_TOKEN)).status_code == 200
    assert rest(fb, "/projects/PROJ/repos/beta", bearer(PROJ_TOKEN)).status_code == 200
    assert rest(fb, "/projects/SEC/repos/vault", bearer(PROJ_TOKEN)).status_code == 401
    # repo token: that repo only
    assert rest(fb, "/projects/PROJ/repos/alpha", bearer(REPO_TOKEN)).status_code == 200
    assert rest(fb, "/projects/PROJ/repos/beta", bearer(REPO_TOKEN)).status_code == 401
    assert [r["slug"] for r in rest(fb, "/repos", bearer(REPO_TOKEN), permission="REPO_WRITE").json()["values"]] \
        == ["alpha"]
    # personal token permission caps: alice is REPO_ADMIN on alpha but this token is REPO_READ
    assert rest(fb, "/repos", bearer(ALICE_PAT), permission="REPO_ADMIN").json()["values"] == []
    admin_pat = "BBDC-alicePersonalAdminToken000000000000000002"
    assert [r["slug"] for r in rest(fb, "/repos", bearer(admin_pat), permission="REPO_ADMIN").json()["values"]] \
        == ["alpha"]


def test_mint_revoke_expire_tokens(fb):
    t = fb.control("POST", "/_fake/tokens", {"user": "bob", "kind": "personal", "permission": "REPO_WRITE"})
    assert whoami(fb, bearer(t["token"])).text == "bob"
    fb.control("POST", "/_fake/tokens/revoke", {"token": t["token"]})
    assert whoami(fb, bearer(t["token"])).text == ""
    r = fb.control("POST", "/_fake/tokens", {"kind": "repo", "project": "SEC", "repo": "vault"})
    assert whoami(fb, bearer(r["token"])).text == r["user"]
    assert rest(fb, "/projects/SEC/repos/vault", bearer(r["token"])).status_code == 200
    fb.control("POST", "/_fake/tokens/expire", {"token": r["token"]})
    assert whoami(fb, bearer(r["token"])).text == ""
    t = fb.control("POST", "/_fake/tokens", {"user": "bob", "kind": "personal", "expires_in": 10})
    fb.control("POST", "/_fake/clock", {"advance": 11})
    assert whoami(fb, bearer(t["token"])).text == ""


def test_revoke_all_of_a_user(fb, http):
    t = full_oauth2(fb, http)
    fb.control("POST", "/_fake/tokens/revoke", {"user": "alice"})
    assert whoami(fb, bearer(t["access_token"])).text == ""
    assert whoami(fb, bearer(ALICE_PAT)).text == ""
    assert refresh(fb, http, t["refresh_token"]).json()["error"] == "invalid_grant"
    assert whoami(fb, bearer(BOB_PAT)).text == "bob"


def test_deactivate_activate(fb, http):
    t = full_oauth2(fb, http)
    fb.control("POST", "/_fake/users/alice/deactivate")
    assert whoami(fb, bearer(t["access_token"])).text == ""
    assert whoami(fb, bearer(ALICE_PAT)).text == ""
    assert refresh(fb, http, t["refresh_token"]).json()["error"] == "invalid_grant"
    r = http.get(authorize_url(fb), allow_redirects=False)  # web session ended too
    assert r.status_code == 303 and "/login" in r.headers["Location"]
    fb.control("POST", "/_fake/users/alice/activate")
    assert whoami(fb, bearer(t["access_token"])).text == "alice"


# ----------------------------------------------------------------------------------------------- permissions

def test_project_and_repo_permissions(fb):
    a, b, j = bearer(ALICE_PAT), bearer(BOB_PAT), bearer("BBDC-janePersonalReadToken0000000000000000006")
    assert rest(fb, "/projects/PROJ", a).json()["key"] == "PROJ"
    assert rest(fb, "/projects/proj", a).status_code == 200
    assert rest(fb, "/projects/PROJ", j).status_code == 200          # implicit view via repo beta
    assert_errors_body(rest(fb, "/projects/PROJ"), 401, "AuthorisationException")
    assert_errors_body(rest(fb, "/projects/PROJ", bearer("unknown")), 401, "AuthorisationException")
    assert_errors_body(rest(fb, "/projects/PROJ", bearer(DAVE_PAT)), 401, "AuthorisationException")
    assert rest(fb, "/projects/SEC", a).status_code == 200            # has a public repo
    assert rest(fb, "/projects/SEC").status_code == 200
    assert [r["slug"] for r in rest(fb, "/projects/SEC/repos", a).json()["values"]] == ["open-source"]
    assert_errors_body(rest(fb, "/projects/NOPE", a), 404, "NoSuchProjectException")
    assert rest(fb, "/projects/PROJ/repos/alpha", a).json()["slug"] == "alpha"
    assert rest(fb, "/projects/PROJ/repos/beta", j).status_code == 200
    assert_errors_body(rest(fb, "/projects/PROJ/repos/alpha", j), 401, "AuthorisationException")
    assert_errors_body(rest(fb, "/projects/PROJ/repos/nope", a), 404, "NoSuchRepositoryException")
    assert_errors_body(rest(fb, "/projects/NOPE/repos/alpha", a), 404, "NoSuchProjectException")
    assert rest(fb, "/projects/PUB/repos/docs").status_code == 200    # public, anonymous
    assert rest(fb, "/projects/SEC/repos/vault", b).status_code == 200
    assert rest(fb, "/projects/SEC/repos/vault", bearer("BBDC-zoePersonalReadToken00000000000000000008")) \
        .status_code == 401
    admin = basic("admin", "admin-password")
    assert rest(fb, "/projects/SEC/repos/vault", admin).status_code == 200


def test_repos_listing(fb):
    def slugs(h=None, **p):
        r = rest(fb, "/repos", h, **p)
        assert r.status_code == 200
        return sorted(f'{x["project"]["key"]}/{x["slug"]}' for x in r.json()["values"])
    assert slugs(permission="REPO_READ") == []                                      # anonymous
    assert slugs() == ["PUB/docs", "SEC/open-source"]
    assert slugs(bearer(ALICE_PAT), permission="REPO_READ") == ["PROJ/alpha", "PROJ/beta"]
    assert slugs(bearer(BOB_PAT), permission="REPO_READ") == ["PROJ/alpha", "PROJ/beta", "SEC/vault"]
    assert slugs(bearer(BOB_PAT), permission="REPO_READ", projectkey="SEC") == ["SEC/vault"]
    assert slugs(bearer(BOB_PAT), permission="REPO_READ", name="ALP") == ["PROJ/alpha"]
    assert slugs(bearer(DAVE_PAT), permission="REPO_READ") == []
    assert rest(fb, "/repos", permission="REPO_BOGUS").status_code == 400


def test_runtime_permission_changes(fb):
    d = bearer(DAVE_PAT)
    assert rest(fb, "/projects/PROJ/repos/alpha", d).status_code == 401
    fb.control("POST", "/_fake/projects/PROJ/repos/alpha/permissions", {"user": "dave", "permission": "REPO_READ"})
    assert rest(fb, "/projects/PROJ/repos/alpha", d).status_code == 200
    fb.control("POST", "/_fake/projects/PROJ/repos/alpha/permissions", {"user": "dave", "permission": None})
    assert rest(fb, "/projects/PROJ/repos/alpha", d).status_code == 401
    fb.control("POST", "/_fake/users/dave/groups", {"groups": ["developers"]})
    assert rest(fb, "/projects/PROJ/repos/alpha", d).status_code == 200


def test_group_membership(fb, http):
    t = full_oauth2(fb, http)["access_token"]
    r = rest(fb, "/admin/users/more-members", bearer(t), context="alice")
    assert r.status_code == 200
    assert [g["name"] for g in r.json()["values"]] == ["developers", "stash-users"]
    assert r.json()["values"][0] == {"name": "developers", "deletable": True}
    r = rest(fb, "/admin/users/more-members", basic("alice", "alice-password"), context="jane@example.com")
    assert [g["name"] for g in r.json()["values"]] == ["qa", "stash-users"]
    assert_errors_body(rest(fb, "/admin/users/more-members", bearer(PROJ_TOKEN), context="alice"), 401)
    assert_errors_body(rest(fb, "/admin/users/more-members", bearer(ALICE_PAT), context="alice"), 401)
    assert_errors_body(rest(fb, "/admin/users/more-members", basic("dave", "dave-password"), context="alice"),
                       401)
    assert_errors_body(rest(fb, "/admin/users/more-members", context="alice"), 401)
    assert_errors_body(rest(fb, "/admin/users/more-members", bearer(t), context="nobody"), 404)
    fb.settings(http_tokens_admin=True)
    assert rest(fb, "/admin/users/more-members", bearer(ALICE_PAT), context="alice").status_code == 200
    members = rest(fb, "/admin/groups/more-members", bearer(t), context="qa").json()["values"]
    assert [m["name"] for m in members] == ["jane@example.com"]
    assert "empty-group" in rest(fb, "/groups", bearer(t)).json()["values"]


# ----------------------------------------------------------------------------------------------- OAuth 1.0a

def o1(fb, pki, method, path, token=None, verifier=None, callback=None, key="o1_priv", consumer=CONSUMER,
       url_root=None, body=None, timestamp=None, nonce=None, signature_method=oauth1.SIGNATURE_RSA,
       params=None, send=True):
    client = oauth1.Client(consumer, client_secret="dontcare" if signature_method != oauth1.SIGNATURE_RSA else None,
                           signature_method=signature_method,
                           rsa_key=priv_key(pki, key) if signature_method == oauth1.SIGNATURE_RSA else None,
                           resource_owner_key=token, verifier=verifier, callback_uri=callback,
                           timestamp=timestamp, nonce=nonce)
    url = (url_root or fb.root_url) + CTX + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    headers = {}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    uri, headers, data = client.sign(url, method, body=body, headers=headers)
    if url_root:
        uri = fb.root_url + uri[len(url_root):]
    if not send:
        return uri, headers, data
    return requests.request(method, uri, headers=headers, data=data, verify=fb.ca, allow_redirects=False)


def o1_problem(r, problem, status):
    assert r.status_code == status, (r.status_code, r.text)
    assert f'oauth_problem="{problem}"' in r.headers["WWW-Authenticate"]
    assert r.headers["WWW-Authenticate"].startswith(f'OAuth realm="{fb_base(r)}"')
    assert dict(urllib.parse.parse_qsl(r.text))["oauth_problem"] == problem


def fb_base(r):
    u = urllib.parse.urlsplit(r.url)
    return f"{u.scheme}://{u.netloc}{CTX}"


def o1_dance(fb, pki, http, user="alice", approve=True):
    r = o1(fb, pki, "POST", "/plugins/servlet/oauth/request-token", callback=CALLBACK)
    assert r.status_code == 200, r.text
    rt = dict(urllib.parse.parse_qsl(r.text))
    assert rt["oauth_callback_confirmed"] == "true" and rt["oauth_token_secret"]
    login(fb, http, user)
    fb.settings(auto_approve=False)
    page = http.get(fb.base_url + "/plugins/servlet/oauth/authorize", params={"oauth_token": rt["oauth_token"]})
    assert page.status_code == 200 and 'id="approve"' in page.text
    import re
    xsrf = re.search(r'name="atl_token" value="([^"]+)"', page.text).group(1)
    r = http.post(fb.base_url + "/plugins/servlet/oauth/authorize",
                  data={"oauth_token": rt["oauth_token"], "atl_token": xsrf,
                        ("approve" if approve else "deny"): "x"}, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith(CALLBACK + "?")
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.headers["Location"]).query))
    assert q["oauth_token"] == rt["oauth_token"]
    return rt["oauth_token"], q["oauth_verifier"]


def test_oauth1_rfc_vector_verifies_with_oauthlib():
    """The fake's verification primitives reproduce the oauth.net RSA-SHA1 test case."""
    import types
    from oauthlib.oauth1.rfc5849 import signature as S
    pub = ("-----BEGIN PUBLIC KEY-----\nMIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC0YjCwIfYoprq/FQO6lb3asXrx\n"
           "LlJFuCvtinTF5p0GxvQGu5O3gYytUvtC2JlYzypSRjVxwxrsuRcP3e641SdASwfr\n"
           "mzyvIgP08N4S0IFzEURkV1wp/IpH7kH41EtbmUmrXSwfNZsnQRE5SYSOhh+LcK2w\n"
           "yQkdgcMv11l4KoBkcwIDAQAB\n-----END PUBLIC KEY-----\n")
    params = [("file", "vacaction.jpg"), ("size", "original"), ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
              ("oauth_nonce", "13917289812797014437"), ("oauth_signature_method", "RSA-SHA1"),
              ("oauth_timestamp", "1196666512"), ("oauth_version", "1.0")]
    sig = ("jvTp/wX1TYtByB1m+Pbyo0lnCOLIsyGCH7wke8AUs3BpnwZJtAuEJkvQL2/9n4s5wUmUl4aCI4BwpraNx4RtEXMe5qg5T1LVTG"
           "liMRpKasKsW//e+RinhejgCuzoH26dyF8iY2ZZ/5D1ilgeijhV/vBka5twt399mXwaYdCwFYE=")
    req = types.SimpleNamespace(params=params, uri="http://photos.example.net/photos", http_method="GET",
                                signature=sig)
    assert S.verify_rsa_sha1(req, pub)
    req.signature = sig.replace("jvTp", "jvTq")
    assert not S.verify_rsa_sha1(req, pub)


def test_oauth1_full_flow(fb, pki, http):
    token, verifier = o1_dance(fb, pki, http)
    assert len(verifier) == 6 and verifier.isalnum()
    r = o1(fb, pki, "POST", "/plugins/servlet/oauth/access-token", token=token, verifier=verifier)
    assert r.status_code == 200, r.text
    acc = dict(urllib.parse.parse_qsl(r.text))
    assert set(acc) >= {"oauth_token", "oauth_token_secret", "oauth_expires_in", "oauth_session_handle",
                        "oauth_authorization_expires_in"}
    w = o1(fb, pki, "GET", "/plugins/servlet/applinks/whoami", token=acc["oauth_token"])
    assert w.status_code == 200 and w.text == "alice" and w.headers["X-AUSERNAME"] == "alice"
    u = o1(fb, pki, "GET", "/rest/api/1.0/users", token=acc["oauth_token"], params={"filter": "jane"})
    assert u.status_code == 200 and u.json()["values"][0]["slug"] == "jane_example.com"
    # the request token is single use
    r = o1(fb, pki, "POST", "/plugins/servlet/oauth/access-token", token=token, verifier=verifier)
    o1_problem(r, "token_used", 401)
    # renewal with the session handle
    r = o1(fb, pki, "POST", "/plugins/servlet/oauth/access-token", token=acc["oauth_token"],
           body={"oauth_session_handle": acc["oauth_session_handle"]})
    assert r.status_code == 200, r.text
    acc2 = dict(urllib.parse.parse_qsl(r.text))
    o1_problem(o1(fb, pki, "GET", "/plugins/servlet/applinks/whoami", token=acc["oauth_token"]),
               "token_rejected", 401)
    assert o1(fb, pki, "GET", "/plugins/servlet/applinks/whoami", token=acc2["oauth_token"]).text == "alice"


def test_oauth1_auto_approve_and_oob(fb, pki, http):
    r = o1(fb, pki, "POST", "/plugins/servlet/oauth/request-token", callback="oob")
    rt = dict(urllib.parse.parse_qsl(r.text))
    login(fb, http)
    page = http.get(fb.base_url + "/plugins/servlet/oauth/authorize", params={"oauth_token": rt["oauth_token"]},
                    allow_redirects=False)
    assert page.status_code == 200 and 'id="verifier"' in page.text


def test_oauth1_authorize_needs_login_and_valid_token(fb, pki, http):
    r = o1(fb, pki, "POST", "/plugins/servlet/oauth/request-token", callback=CALLBACK)
    rt = dict(urllib.parse.parse_qsl(r.text))
    r = http.get(fb.base_url + "/plugins/servlet/oauth/authorize", params={"oauth_token": rt["oauth_token"]},
                 allow_redirects=False)
    assert r.status_code == 303 and "/login?" in r.headers["Location"]
    login(fb, http)
    r = http.get(fb.base_url + "/plugins/servlet/oauth/authorize", params={"oauth_token": "bogus"})
    assert r.status_code == 401 and 'token_rejected' in r.text and "text/html" in r.headers["Content-Type"]
    fb.control("POST", "/_fake/clock", {"advance": 601})
    r = http.get(fb.base_url + "/plugins/servlet/oauth/authorize", params={"oauth_token": rt["oauth_token"]})
    assert r.status_code == 401 and "token_expired" in r.text


def test_oauth1_access_token_checks(fb, pki, http):
    # not yet approved
    r = o1(fb, pki, "POST", "/plugins/servlet/oauth/request-token", callback=CALLBACK)
    rt = dict(urllib.parse.parse_qsl(r.text))
    o1_problem(o1(fb, pki, "POST", "/plugins/servlet/oauth/access-token", token=rt["oauth_token"],
                  verifier="abcdef"), "permission_unknown", 401)
    # denied
    token, verifier = o1_dance(fb, pki, http, approve=False)
    assert verifier == "denied"
    o1_problem(o1(fb, pki, "POST", "/plugins/servlet/oauth/access-token", token=token, verifier=verifier),
               "permission_denied", 401)
    # wrong verifier
    token, verifier = o1_dance(fb, pki, http)
    o1_problem(o1(fb, pki, "POST", "/plugins/servlet/oauth/access-token", token=token, verifier="zzzzzz"),
               "token_rejected", 401)
    # expired request token
    token, verifier = o1_dance(fb, pki, http)
    fb.settings(request_token_ttl=600)
    fb.control("POST", "/_fake/clock", {"advance": 601})
    o1_problem(o1(fb, pki, "POST", "/plugins/servlet/oauth/access-token", token=token, verifier=verifier),
               "token_expired", 401)
    o1_problem(o1(fb, pki, "POST", "/plugins/servlet/oauth/access-token", verifier="x"), "parameter_absent", 400)
    o1_problem(o1(fb, pki, "POST", "/plugins/servlet/oauth/access-token", token="bogus", verifier="x"),
               "token_rejected", 401)


def test_oauth1_signature_checks(fb, pki):
    rt_path = "/plugins/servlet/oauth/request-token"
    o1_problem(o1(fb, pki, "POST", rt_path, callback=CALLBACK, key="o1_other_priv"), "signature_invalid", 401)
    o1_problem(o1(fb, pki, "POST", rt_path, callback=CALLBACK, consumer="nobody"), "consumer_key_unknown", 401)
    o1_problem(o1(fb, pki, "POST", rt_path, callback=CALLBACK, signature_method=oauth1.SIGNATURE_HMAC),
               "signature_method_rejected", 400)
    o1_problem(o1(fb, pki, "POST", rt_path, callback=CALLBACK, timestamp=str(int(time.time()) - 400)),
               "timestamp_refused", 400)
    o1_problem(o1(fb, pki, "POST", rt_path, callback=CALLBACK, timestamp=str(int(time.time()) + 400)),
               "timestamp_refused", 400)
    assert o1(fb, pki, "POST", rt_path, callback=CALLBACK, timestamp=str(int(time.time()) - 250)).status_code == 200
    # nonce reuse (a byte-identical replay)
    uri, headers, data = o1(fb, pki, "POST", rt_path, callback=CALLBACK, send=False)
    assert requests.post(uri, headers=headers, data=data, verify=fb.ca).status_code == 200
    o1_problem(requests.post(uri, headers=headers, data=data, verify=fb.ca), "nonce_used", 401)
    # base string URI is the server's own view: signing for https://localhost:PORT fails
    o1_problem(o1(fb, pki, "POST", rt_path, callback=CALLBACK, url_root=f"https://localhost:{fb.port}"),
               "signature_invalid", 401)
    # tampering with a signed query parameter
    uri, headers, data = o1(fb, pki, "GET", "/rest/api/1.0/users", params={"filter": "a"}, send=False)
    o1_problem(requests.get(uri.replace("filter=a", "filter=b"), headers=headers, verify=fb.ca),
               "signature_invalid", 401)
    # bad callbacks
    for cb in ("javascript:alert(1)", "not a uri", "ftp://x/y"):
        r = o1(fb, pki, "POST", rt_path, callback=cb)
        o1_problem(r, "parameter_rejected", 400)
        assert dict(urllib.parse.parse_qsl(r.text))["oauth_parameters_rejected"] == "oauth_callback"
    # missing parameters
    r = requests.post(fb.base_url + rt_path, headers={"Authorization": 'OAuth oauth_consumer_key="x"'},
                      verify=fb.ca)
    o1_problem(r, "parameter_absent", 400)
    # legacy 1.0: no callback -> no oauth_callback_confirmed
    r = o1(fb, pki, "POST", rt_path)
    assert r.status_code == 200 and "oauth_callback_confirmed" not in r.text
    # GET on the token servlets: empty 200 (the real servlets have an empty GET handler)
    for p in (rt_path, "/plugins/servlet/oauth/access-token"):
        r = requests.get(fb.base_url + p, verify=fb.ca)
        assert r.status_code == 200 and r.content == b""


def test_oauth1_signed_rest_errors(fb, pki):
    o1_problem(o1(fb, pki, "GET", "/plugins/servlet/applinks/whoami", token="bogus"), "token_rejected", 401)
    o1_problem(o1(fb, pki, "GET", "/plugins/servlet/applinks/whoami", token="bogus", key="o1_other_priv"),
               "signature_invalid", 401)
    # 2-legged without a configured 2LO user: anonymous
    r = o1(fb, pki, "GET", "/plugins/servlet/applinks/whoami")
    assert r.status_code == 200 and r.text == ""


# ----------------------------------------------------------------------------------------------- modes

def test_mode_down(fb, http):
    fb.set_mode("whoami", "down")
    with pytest.raises(requests.exceptions.ConnectionError):
        whoami(fb, bearer(ALICE_PAT))
    assert rest(fb, "/users", bearer(ALICE_PAT)).status_code == 200   # other groups unaffected
    fb.set_mode("whoami", "normal")
    assert whoami(fb, bearer(ALICE_PAT)).text == "alice"


def test_mode_slow_and_times(fb):
    fb.set_mode("users", "slow", seconds=1, times=1)
    t0 = time.monotonic()
    assert rest(fb, "/users/alice", bearer(ALICE_PAT)).status_code == 200
    assert time.monotonic() - t0 >= 1.0
    t0 = time.monotonic()
    assert rest(fb, "/users/alice", bearer(ALICE_PAT)).status_code == 200
    assert time.monotonic() - t0 < 0.9
    fb.set_mode("whoami", "slow", seconds=2)
    with pytest.raises(requests.exceptions.Timeout):
        requests.get(fb.base_url + "/plugins/servlet/applinks/whoami", verify=fb.ca, timeout=0.5)


def test_mode_garbage_wrong_type_wrong_shape(fb, http):
    fb.set_mode("token", "garbage")
    r = http.post(fb.base_url + "/rest/oauth2/latest/token", data={"grant_type": "x"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        r.json()
    fb.set_mode("users", "wrong_type")
    r = rest(fb, "/users", bearer(ALICE_PAT))
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    fb.set_mode("permissions", "wrong_shape")
    r = rest(fb, "/repos", bearer(ALICE_PAT))
    assert r.status_code == 200 and not isinstance(r.json()["values"], list)
    fb.set_mode("whoami", "wrong_shape")
    r = whoami(fb, bearer(ALICE_PAT))
    assert r.headers["Content-Type"].startswith("text/plain") and r.text.startswith("{")


def test_mode_oversized_redirect_twofactor_status(fb, http):
    fb.set_mode("whoami", "oversized")
    r = whoami(fb, bearer(ALICE_PAT))
    assert r.status_code == 200 and len(r.content) == 2 * 1024 * 1024
    fb.set_mode("users", "oversized", bytes=3 * 1024 * 1024)
    r = rest(fb, "/users", bearer(ALICE_PAT))
    assert len(r.content) == 3 * 1024 * 1024 and "padding" in r.json()
    fb.set_mode("token", "redirect")
    r = http.post(fb.base_url + "/rest/oauth2/latest/token", data={}, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith("https://evil.example/")
    for group in ("authorize", "token", "whoami", "oauth1_authorize"):
        fb.set_mode(group, "twofactor")
    login(fb, http)
    for r in (http.get(authorize_url(fb), allow_redirects=False),
              http.post(fb.base_url + "/rest/oauth2/latest/token", data={}),
              whoami(fb, bearer(ALICE_PAT)),
              http.get(fb.base_url + "/plugins/servlet/oauth/authorize", params={"oauth_token": "x"})):
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
        assert "Two-step verification" in r.text and "Location" not in r.headers
    fb.set_mode("all", "normal")
    fb.set_mode("all", "status:503")
    assert_errors_body(rest(fb, "/users/alice", bearer(ALICE_PAT)), 503)
    r = http.get(fb.root_url + "/_fake/health")        # the control API is never affected
    assert r.status_code == 200
    fb.set_mode("whoami", "status:500")                 # the most specific mode wins
    assert whoami(fb).status_code == 500
    fb.set_mode("all", "normal")
    assert whoami(fb).status_code == 200
    assert fb.control("GET", "/_fake/mode")["modes"] == {}


def test_mode_validation(fb):
    for body in ({"group": "nope", "mode": "down"}, {"group": "whoami", "mode": "explode"},
                 {"group": "whoami", "mode": "status:abc"}):
        with pytest.raises(Exception):
            fb.control("POST", "/_fake/mode", body)


def test_calls_and_log(fb, http):
    full_oauth2(fb, http)
    whoami(fb, bearer(ALICE_PAT))
    whoami(fb, bearer(ALICE_PAT))
    calls = fb.calls()
    assert calls["token"] == 1 and calls["whoami"] == 2 and calls["authorize"] == 1 and calls["login"] == 1
    log = fb.control("GET", "/_fake/log?endpoint=token")["entries"]
    assert len(log) == 1
    assert "code_verifier" in log[0]["form_names"] and log[0]["status"] == 200
    assert log[0]["form"]["client_id"] == [CLIENT_ID]
    w = fb.control("GET", "/_fake/log?endpoint=whoami&limit=1")["entries"]
    assert len(w) == 1 and "authorization" in w[0]["header_names"] and w[0]["principal"] == "alice"
    fb.control("POST", "/_fake/calls/reset")
    assert fb.calls() == {}


def test_status_mode_with_retry_after(fb):
    fb.set_mode("whoami", "status:429", retry_after=120, times=1)
    r = whoami(fb, bearer(ALICE_PAT))
    assert r.status_code == 429 and r.headers["Retry-After"] == "120"
    fb.set_mode("whoami", "status:503", times=1)
    r = whoami(fb, bearer(ALICE_PAT))
    assert r.status_code == 503 and "Retry-After" not in r.headers


def test_a_rate_limit_answers_429_for_its_user_only_and_calls_are_counted_by_user(fb):
    bob = fb.control("POST", "/_fake/tokens", {"user": "bob", "kind": "personal"})["token"]
    fb.control("POST", "/_fake/calls/reset")
    fb.rate_limit("bob", retry_after=900)
    r = whoami(fb, bearer(bob))
    assert r.status_code == 429 and r.headers["Retry-After"] == "900"
    assert whoami(fb, bearer(ALICE_PAT)).status_code == 200
    assert whoami(fb, bearer("junk-token")).status_code == 200          # anonymous: not limited
    fb.rate_limit("anonymous")
    r = whoami(fb, bearer("junk-token"))
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert fb.calls_by_user() == {"bob": 1, "alice": 1, "anonymous": 2}
    fb.rate_limit("bob", clear=True)
    assert whoami(fb, bearer(bob)).status_code == 200


def test_connections_are_counted_apart_from_the_control_api(fb, http):
    fb.control("POST", "/_fake/calls/reset")
    for _ in range(3):   # one kept-alive connection
        assert http.get(fb.base_url + "/plugins/servlet/applinks/whoami", headers=bearer(ALICE_PAT)).ok
    whoami(fb, bearer(ALICE_PAT))   # a connection of its own
    seen = fb.connections()
    assert seen["api_connections"] == 2 and seen["api_handshakes"] == 2
    assert seen["by_agent"]["python-requests"]["connections"] == 2
    # Every control call (urllib: one connection each) is accepted and handshaken, never an API connection.
    assert seen["accepted"] >= 3 and seen["tls_handshakes"] >= 3
    fb.control("POST", "/_fake/calls/reset")
    assert fb.connections()["api_connections"] == 0


# ------------------------------------------------------------------- connections dropped as Tomcat drops them

def requests_session(fb):
    s = requests.Session()
    s.trust_env = False
    s.verify = fb.ca
    return s


def test_mode_drop_after_processes_the_request_then_closes_without_an_answer(fb, http):
    login(fb, http)
    verifier, challenge = pkce()
    code, _ = get_code(fb, http, code_challenge=challenge, code_challenge_method="S256")
    fb.set_mode("token", "drop_after", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        exchange(fb, requests_session(fb), code, verifier)
    # The code was used up by the dropped exchange: the same code again is a replay, refused.
    r = exchange(fb, http, code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert [e["status"] for e in fb.control("GET", "/_fake/log?endpoint=token")["entries"]] == ["dropped_after", 400]


def test_max_keepalive_requests_closes_the_connection_after_the_nth_answer(fb, http):
    fb.settings(max_keepalive_requests=2)
    fb.control("POST", "/_fake/calls/reset")
    answers = [http.get(fb.base_url + "/plugins/servlet/applinks/whoami", headers=bearer(ALICE_PAT))
               for _ in range(3)]
    assert [r.text for r in answers] == ["alice"] * 3
    assert [r.headers.get("Connection") for r in answers] == [None, "close", None]
    assert fb.connections()["api_connections"] == 2      # the third request needed a new connection


def test_keepalive_timeout_closes_an_idle_connection(fb, pki):
    fb.settings(keepalive_timeout=0.5)
    request = (b"GET /bitbucket/plugins/servlet/applinks/whoami HTTP/1.1\r\nHost: x\r\n"
               b"Authorization: Bearer " + ALICE_PAT.encode() + b"\r\n\r\n")
    ctx = ssl.create_default_context(cafile=pki["ca"])
    with socket.create_connection(("127.0.0.1", fb.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(request)
            answer = b""
            while not answer.endswith(b"alice"):
                chunk = s.recv(65536)
                assert chunk, answer
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" not in answer
            # Idle: the fake closes it (well before the 10 s socket timeout, which would raise here).
            try:
                assert s.recv(65536) == b""
            except ConnectionResetError:
                pass


def test_tomcat_settings_validation(fb):
    for bad in ({"max_keepalive_requests": 0}, {"keepalive_timeout": "soon"}, {"keepalive_timeout": -1},
                {"max_keepalive_requests": True}):
        with pytest.raises(Exception):
            fb.settings(**bad)
    assert fb.settings(keepalive_timeout=None)["keepalive_timeout"] is None


def test_without_the_tomcat_settings_a_connection_is_kept(fb, http):
    fb.control("POST", "/_fake/calls/reset")
    for _ in range(5):
        assert http.get(fb.base_url + "/plugins/servlet/applinks/whoami", headers=bearer(ALICE_PAT)).text == "alice"
    assert fb.connections()["api_connections"] == 1


# ----------------------------------------------------------------------------------------------- robustness

def raw_tls(fb, pki, payload, read=True):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    with socket.create_connection(("127.0.0.1", fb.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(payload)
            if not read:
                return b""
            out = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    out += chunk
                    if b"\r\n\r\n" in out and len(out) > 12:
                        break
            except (socket.timeout, ssl.SSLError, ConnectionError):
                pass
            return out


def test_never_crashes_on_bad_input(fb, pki, http):
    raw_tls(fb, pki, b"\x00\x01\x02 garbage\r\n\r\n")
    raw_tls(fb, pki, b"GET /bitbucket/plugins/servlet/applinks/whoami HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: -5\r\nConnection: close\r\n\r\n")
    raw_tls(fb, pki, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
    raw_tls(fb, pki, b"GET /bitbucket/rest/api/1.0/users/%ff%fe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw_tls(fb, pki, b"POST /bitbucket/rest/oauth2/latest/token HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\n\xff\xfe",
            read=False)
    # plain HTTP to the TLS port
    with socket.create_connection(("127.0.0.1", fb.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        try:
            s.recv(100)
        except OSError:
            pass
    r = http.post(fb.base_url + "/rest/oauth2/latest/token", data=b"\xff\xfe=\x00&&==",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400
    r = http.get(fb.base_url + "/rest/oauth2/latest/authorize?%zz=%ff")
    assert r.status_code in (400, 303)
    r = http.get(fb.base_url + "/plugins/servlet/applinks/whoami",
                 headers={"Authorization": "OAuth " + "x" * 5000})
    assert r.status_code in (200, 400, 401)
    r = http.post(fb.root_url + "/_fake/mode", data="not json")
    assert r.status_code == 400
    assert whoami(fb, bearer(ALICE_PAT)).text == "alice"
    assert fb.proc.poll() is None


def test_unknown_paths_and_methods(fb, http):
    assert_errors_body(http.get(fb.base_url + "/rest/api/1.0/nope"), 404)
    assert http.get(fb.base_url + "/nope").status_code == 404
    assert http.post(fb.base_url + "/plugins/servlet/applinks/whoami").status_code == 405
    assert http.delete(fb.base_url + "/rest/api/1.0/users").status_code == 405
    assert http.head(fb.base_url + "/rest/api/1.0/application-properties").status_code == 200


def test_concurrent_refresh_has_one_winner(fb, http):
    import concurrent.futures
    t = full_oauth2(fb, http)

    def go(_):
        return requests.post(fb.base_url + "/rest/oauth2/latest/token", verify=fb.ca,
                             data={"grant_type": "refresh_token", "refresh_token": t["refresh_token"],
                                   "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                   "redirect_uri": REDIRECT}).status_code
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        codes = sorted(ex.map(go, range(6)))
    assert codes == [200, 400, 400, 400, 400, 400]


def test_in_process_server(pki):
    from .fake_bitbucket import FakeBitbucket
    fbi = FakeBitbucket(cert=pki["cert"], key=pki["key"], context_path="/bb", quiet=True,
                        oauth2_clients=[{"client_id": "c", "client_secret": "s", "redirect_uri": REDIRECT}])
    with fbi:
        assert fbi.base_url == f"https://127.0.0.1:{fbi.port}/bb"
        r = requests.get(fbi.base_url + "/plugins/servlet/applinks/whoami", headers=bearer(BOB_PAT),
                         verify=pki["ca"])
        assert r.text == "bob"
        r = requests.post(fbi.root_url + "/_fake/mode", json={"group": "whoami", "mode": "status:502"},
                          verify=pki["ca"])
        assert r.ok
        assert requests.get(fbi.base_url + "/plugins/servlet/applinks/whoami", verify=pki["ca"]).status_code == 502


def test_bad_registration_is_refused(fb):
    with pytest.raises(Exception):
        fb.control("POST", "/_fake/oauth2/clients", {"client_id": "x", "client_secret": "y",
                                                     "redirect_uri": "http://example.com/cb"})
    with pytest.raises(Exception):
        fb.control("POST", "/_fake/oauth2/clients", {"client_id": "x", "client_secret": "y",
                                                     "redirect_uri": "https://example.com/cb#frag"})
    fb.control("POST", "/_fake/oauth2/clients", {"client_id": "x", "client_secret": "y",
                                                 "redirect_uri": "http://localhost:8080/cb"})


def test_oauth1_two_legged(fb, pki):
    with open(pki["o1_pub"]) as f:
        pub = f.read()
    fb.control("POST", "/_fake/oauth1/consumers", {"consumer_key": CONSUMER, "public_key": pub,
                                                   "two_lo_user": "bob", "two_lo_impersonation": True})
    assert o1(fb, pki, "GET", "/plugins/servlet/applinks/whoami").text == "bob"
    r = o1(fb, pki, "GET", "/plugins/servlet/applinks/whoami", params={"xoauth_requestor_id": "zoe"})
    assert r.text == "zoe"
    r = o1(fb, pki, "GET", "/plugins/servlet/applinks/whoami", params={"xoauth_requestor_id": "carol"})
    o1_problem(r, "permission_denied", 401)
