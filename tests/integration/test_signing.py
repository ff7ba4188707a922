"""Issue 11: public-key identity for upstream apps. Session cookies signed with BBAuthSigningKey (ES256 or EdDSA),
the JWK Set handler, the identity assertion header, rotation, the HS256 -> ES256 switch, forgeries refused.

Third-party verifiers: PyJWT's PyJWKClient (keys fetched from the bbauth-jwks handler) and jose from npm (Node),
installed into a temporary directory by this module."""

import hmac
import json
import os
import shutil
import subprocess
import tempfile
from urllib.parse import urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

import bbsite
from bbsite import b64url, new_private_key, thumbprint, write_signing_key
import cacheserver

ALICE_TOKEN = "BBDC-alicePersonalReadToken0000000000000000001"
JWKS_PATH = "/.well-known/jwks.json"


def signing_conf(site):
    """The standard site, its signing keys (site.signing_files, in order), assertions on /packages (sessions and
    access tokens), none on /plain, the JWK Set at JWKS_PATH, and /app proxied to an echo backend if there is one.
    Without signing keys: the standard site (HS256 cookies)."""
    cache = f"BBAuthCache memcache:127.0.0.1:{site.memcached}\n" if site.memcached else ""
    if not site.signing_files:
        return bbsite.protected_conf(site) + cache
    keys = "".join(f"BBAuthSigningKey {path}\n" for path in site.signing_files)
    backend = getattr(site, "backend", None)
    proxied = f"""<Location /app>
    AuthType Bitbucket
    Require valid-user
    BBAuthIdentityAssertion On
    ProxyPass {backend.url}/app
</Location>
""" if backend else ""
    return bbsite.protected_conf(site).replace("BBAuthTimeout 3\n", "BBAuthTimeout 3\n" + keys + cache) + f"""
<Location /packages>
    BBAuthTokenAuth On
    BBAuthIdentityAssertion On
</Location>
ScriptAlias /plain/echo @ECHO@
<Location /plain>
    AuthType Bitbucket
    Require valid-user
</Location>
<Location {JWKS_PATH}>
    SetHandler bbauth-jwks
    Require all granted
</Location>
""" + proxied


def make_signing_site(site_factory, tmp_serverroot, algs, backend=None, memcached=None, **opts):
    """A started site whose signing keys are fresh keys of `algs` (the first signs); site.private_keys in order.
    memcached: the port of a memcached to keep the shared state in, so that sessions outlive restarts."""
    if memcached:
        opts["modules"] = ("socache_memcache",)
    site = site_factory(conf=signing_conf, start=False, **opts)
    site.memcached = memcached
    site.private_keys = [new_private_key(a) for a in algs]
    site.signing_files = [write_signing_key(tmp_serverroot, f"signing-{i}.pem", k)
                          for i, k in enumerate(site.private_keys)]
    site.backend = backend
    site.apache.start()
    return site


def set_signing_keys(site, tmp_serverroot, keys):
    """Restarts the site with these private keys as its BBAuthSigningKey lines (the first signs)."""
    site.private_keys = keys
    site.signing_files = [write_signing_key(tmp_serverroot, f"signing-{thumbprint(k.public_key())[:8]}.pem", k)
                          for k in keys]
    site.apache.restart()


def origin(site):
    parts = urlsplit(site.redirect_uri)
    return f"{parts.scheme}://{parts.netloc}"


def jwks_client(site):
    return jwt.PyJWKClient(site.url(JWKS_PATH), cache_jwk_set=False)


def verify_with_jwks(site, token, alg, **kw):
    """PyJWT verifies the token with the key PyJWKClient found for its kid in the site's JWK Set."""
    key = jwks_client(site).get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=[alg], issuer=origin(site), **kw)


def logged_in(site, user="alice", path="/packages/"):
    s = site.session()
    site.login(s, path, user=user)
    return s


def assertion_of(echo):
    return echo["headers"].get("X-Bitbucket-Assertion")


def get_status(site, cookie, path="/packages/echo"):
    """Status of a request that sends only this session cookie (Accept */*: a refused one gets 401)."""
    s = site.session()
    s.headers["Accept"] = "*/*"
    s.cookies.set("bbauth_session", cookie)
    return s.get(site.url(path), allow_redirects=False).status_code


# ---- the JWK Set, the cookie and the assertion, verified by PyJWT

@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_pyjwt_verifies_cookie_and_assertion_from_the_jwks(site_factory, tmp_serverroot, alg):
    site = make_signing_site(site_factory, tmp_serverroot, [alg])
    kid = thumbprint(site.private_keys[0].public_key())

    r = site.session().get(site.url(JWKS_PATH))
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/jwk-set+json"
    assert r.headers["Cache-Control"] == "public, max-age=300"
    jwks = r.json()
    assert [k["kid"] for k in jwks["keys"]] == [kid]
    assert jwks["keys"][0]["alg"] == alg and jwks["keys"][0]["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(jwks["keys"][0])

    s = logged_in(site)
    cookie = site.session_cookie(s)
    assert jwt.get_unverified_header(cookie) == {"alg": alg, "kid": kid, "typ": "JWT"}
    claims = verify_with_jwks(site, cookie, alg)
    assert claims["sub"] == "alice" and claims["uid"] == 101 and claims["sid"]

    echo = site.echo(s)
    assertion = assertion_of(echo)
    assert jwt.get_unverified_header(assertion)["kid"] == kid
    asserted = verify_with_jwks(site, assertion, alg, audience=origin(site) + "/packages")
    assert {k: asserted[k] for k in ("sub", "uid", "name", "email")} == \
        {"sub": "alice", "uid": 101, "name": "Alice Liddell", "email": "alice@example.com"}
    assert asserted["exp"] - asserted["iat"] == 60
    assert asserted["auth_time"] == claims["auth_time"]
    assert "sid" not in asserted
    # The audience is the location's: an app at another path refuses it; a cookie is no assertion (no aud).
    with pytest.raises(jwt.InvalidAudienceError):
        verify_with_jwks(site, assertion, alg, audience=origin(site) + "/other")
    with pytest.raises(jwt.MissingRequiredClaimError):
        verify_with_jwks(site, cookie, alg, audience=origin(site) + "/packages")
    # An assertion is no session cookie either (it has no sid).
    assert get_status(site, assertion) == 401


def test_assertion_for_tokens_only_where_on_and_spoofs_stripped(site_factory, tmp_serverroot):
    site = make_signing_site(site_factory, tmp_serverroot, ["ES256"])
    forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."
    s = site.session()
    s.headers["Accept"] = "*/*"
    headers = {"Authorization": f"Bearer {ALICE_TOKEN}", "X-Bitbucket-Assertion": forged}

    echo = site.echo(s, "/packages/echo", headers=headers)
    claims = verify_with_jwks(site, assertion_of(echo), "ES256", audience=origin(site) + "/packages")
    assert claims["sub"] == "alice" and claims["email"] == "alice@example.com"

    browser = logged_in(site)
    echo = site.echo(browser, "/plain/echo", headers={"X-Bitbucket-Assertion": forged,
                                                      "X-BITBUCKET-ASSERTION": forged})
    assert echo["remote_user"] == "alice"
    assert assertion_of(echo) is None


def test_assertion_is_reused_within_a_process(site_factory, tmp_serverroot):
    """ES256 signatures are randomised: equal assertions were not signed again. Two processes serve the site, so
    of three requests at least two reach the same process, which gives the one it signed first."""
    site = make_signing_site(site_factory, tmp_serverroot, ["ES256"])
    s = logged_in(site)
    assertions = [assertion_of(site.echo(s)) for _ in range(3)]
    assert len(set(assertions)) < 3, assertions


# ---- rotation and the switch from HS256

@pytest.fixture
def memcached():
    """A memcached for the shared state: a restart empties shmcb, and with it the sessions' grants."""
    with cacheserver.running("memcache") as port:
        yield port


def test_rotation_with_two_keys(site_factory, tmp_serverroot, memcached):
    site = make_signing_site(site_factory, tmp_serverroot, ["ES256"], memcached=memcached)
    old_key = site.private_keys[0]
    old_cookie = site.session_cookie(logged_in(site))

    # Step 1: the new key is published second; the old one still signs.
    new_key = new_private_key("EdDSA")
    set_signing_keys(site, tmp_serverroot, [old_key, new_key])
    kids = [k["kid"] for k in site.session().get(site.url(JWKS_PATH)).json()["keys"]]
    assert kids == [thumbprint(old_key.public_key()), thumbprint(new_key.public_key())]
    assert jwt.get_unverified_header(site.session_cookie(logged_in(site)))["alg"] == "ES256"

    # Step 2: the new key moves first: it signs, and old cookies still pass.
    set_signing_keys(site, tmp_serverroot, [new_key, old_key])
    assert get_status(site, old_cookie) == 200
    new_cookie = site.session_cookie(logged_in(site, user="bob"))
    assert jwt.get_unverified_header(new_cookie)["kid"] == thumbprint(new_key.public_key())
    verify_with_jwks(site, new_cookie, "EdDSA")

    # Step 3: the old key is removed: its cookies end, the new ones live on.
    set_signing_keys(site, tmp_serverroot, [new_key])
    assert get_status(site, old_cookie) == 401
    assert get_status(site, new_cookie) == 200


def test_switch_from_hs256_keeps_sessions(site_factory, tmp_serverroot, memcached):
    site = make_signing_site(site_factory, tmp_serverroot, [], memcached=memcached)
    hs_cookie = site.session_cookie(logged_in(site))
    assert jwt.get_unverified_header(hs_cookie)["alg"] == "HS256"

    set_signing_keys(site, tmp_serverroot, [new_private_key("ES256")])
    assert get_status(site, hs_cookie) == 200
    es_cookie = site.session_cookie(logged_in(site, user="bob"))
    assert jwt.get_unverified_header(es_cookie)["alg"] == "ES256"
    verify_with_jwks(site, es_cookie, "ES256")


# ---- forgeries

def forge(claims, key, alg, kid):
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})


def hand_made(claims, header, hmac_key=None):
    """A token PyJWT would not make: any header, signed with HMAC-SHA256 under hmac_key, or unsigned."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    mac = hmac.new(hmac_key, signing_input.encode(), "sha256").digest() if hmac_key else b""
    return signing_input + "." + b64url(mac)


def test_forged_cookies_refused(site_factory, tmp_serverroot):
    site = make_signing_site(site_factory, tmp_serverroot, ["ES256", "EdDSA"])
    es_key, ed_key = site.private_keys
    es_kid, ed_kid = thumbprint(es_key.public_key()), thumbprint(ed_key.public_key())
    claims = jwt.decode(site.session_cookie(logged_in(site)), options={"verify_signature": False})
    claims["sub"] = "admin"
    public_pem = es_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    other = new_private_key("ES256")

    # The control: the very claims signed with the site's own keys pass, so each refusal below is the forgery's.
    assert get_status(site, forge(claims, es_key, "ES256", es_kid)) == 200
    assert get_status(site, forge(claims, ed_key, "EdDSA", ed_kid)) == 200

    forgeries = {
        "HS256 with the public key as secret": hand_made(claims, {"alg": "HS256", "kid": es_kid, "typ": "JWT"},
                                                         public_pem),
        "alg none": hand_made(claims, {"alg": "none", "kid": es_kid, "typ": "JWT"}),
        "unknown kid": forge(claims, other, "ES256", thumbprint(other.public_key())),
        "ES256 by another key": forge(claims, other, "ES256", es_kid),
        "Ed25519 claiming the P-256 kid": forge(claims, ed_key, "EdDSA", es_kid),
        "P-256 claiming the Ed25519 kid": forge(claims, es_key, "ES256", ed_kid),
    }
    for what, token in forgeries.items():
        assert get_status(site, token) == 401, what


# ---- a Node app verifies with jose

JOSE_SCRIPT = """
import { createRemoteJWKSet, jwtVerify } from 'jose';
const [jwksUrl, token, issuer, audience] = process.argv.slice(2);
const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(jwksUrl)), { issuer, audience });
console.log(JSON.stringify({ payload, protectedHeader }));
"""


@pytest.fixture(scope="module")
def jose_dir():
    """jose from the npm registry, installed now into a temporary directory with the verifying script."""
    d = tempfile.mkdtemp(prefix="bbauth-jose-")
    subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", d, "jose@5"],
                   check=True, timeout=180, stdin=subprocess.DEVNULL)
    with open(os.path.join(d, "verify.mjs"), "w") as f:
        f.write(JOSE_SCRIPT)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_node_jose_verifies_what_the_backend_received(site_factory, tmp_serverroot, echo_backend, jose_dir, alg):
    site = make_signing_site(site_factory, tmp_serverroot, [alg], backend=echo_backend, proxy=True)
    s = logged_in(site, user="bob", path="/app/x")
    assert s.get(site.url("/app/x"), allow_redirects=False).status_code == 200
    received = [v for k, v in echo_backend.requests[-1]["headers"] if k.lower() == "x-bitbucket-assertion"]
    assert len(received) == 1

    def node_verify(audience):
        return subprocess.run(["node", os.path.join(jose_dir, "verify.mjs"), site.url(JWKS_PATH), received[0],
                               origin(site), audience], capture_output=True, text=True, timeout=60, cwd=jose_dir)

    p = node_verify(origin(site) + "/app")
    assert p.returncode == 0, p.stderr
    verified = json.loads(p.stdout)
    assert verified["protectedHeader"] == {"alg": alg, "kid": thumbprint(site.private_keys[0].public_key()),
                                           "typ": "JWT"}
    assert verified["payload"]["sub"] == "bob" and verified["payload"]["uid"] == 102
    # jose refuses it for another audience: the check above is not a formality.
    p = node_verify(origin(site) + "/packages")
    assert p.returncode != 0 and "aud" in p.stderr
