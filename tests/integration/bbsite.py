"""A protected site for the integration tests: a real Apache with mod_bbauth in front of the echo CGI and a
static "package mirror", talking over verified HTTPS to the fake Bitbucket DC (tests/fakebb).

    site = make_site(apache_factory, tmp_serverroot)          # started; site.fb, site.apache, site.key_file
    s = site.session()                                        # a requests.Session that trusts nothing from env
    r = site.login(s, "/packages/echo", user="alice")         # drives the whole browser flow, returns last resp
    site.echo(s)                                              # JSON from the echo CGI (remote_user, headers, ...)

Apache layout (extra conf, see protected_conf()):
    /packages/        AuthType Bitbucket, Require valid-user; /packages/echo is the echo CGI
    /only-bob/        Require bitbucket-user bob
    /maybe/           BBAuthUnauthAction pass (echo CGI)
    /login, /logout   SetHandler bbauth-login / bbauth-logout
    /bbauth/callback  the redirect URI (answered by the module itself)
"""

import base64
import hashlib
import json
import os
import re
import secrets
import sys
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

HERE = os.path.dirname(os.path.abspath(__file__))
FAKEBB = os.path.join(os.path.dirname(HERE), "fakebb")
if FAKEBB not in sys.path:
    sys.path.insert(0, FAKEBB)

import fake_bitbucket  # noqa: E402
import testca  # noqa: E402

CLIENT_ID = "mirror-client-id"
CLIENT_SECRET = "mirror-client-secret-" + "s3cr3t" * 4
CALLBACK_PATH = "/bbauth/callback"


def password_of(user):
    return f"{user.split('@')[0]}-password"


def new_key_file(path, count=1):
    """A session key file with `count` fresh 32-byte hex keys; returns the keys (bytes), first = signing key."""
    keys = [secrets.token_bytes(32) for _ in range(count)]
    write_key_file(path, keys)
    return keys


def write_key_file(path, keys):
    with open(path, "w") as f:
        f.write("# mod_bbauth session keys: the first signs\n")
        for k in keys:
            f.write(k.hex() + "\n")
    os.chmod(path, 0o640)
    os.chown(path, 0, _www_data_gid())


def _www_data_gid():
    import grp
    return grp.getgrnam("www-data").gr_gid


def server_conf(site):
    """The server-level BBAuth* directives for `site` (a Site)."""
    return f"""
BBAuthBitbucketURL {site.fb.base_url}
BBAuthClientID {CLIENT_ID}
BBAuthClientSecret {CLIENT_SECRET}
BBAuthRedirectURI {site.redirect_uri}
BBAuthSessionKey {site.key_file}
BBAuthCAFile {site.pki['ca']}
BBAuthTimeout 3
"""


# The login link and the logout link every site offers.
HANDLER_LOCATIONS = """<Location /login>
    SetHandler bbauth-login
</Location>
<Location /logout>
    SetHandler bbauth-logout
</Location>
"""


# /alpha: only who may read the repository PROJ/alpha in Bitbucket (sessions and access tokens).
ALPHA_REPO_LOCATION = """ScriptAlias /alpha/echo @ECHO@
<Location /alpha>
    AuthType Bitbucket
    BBAuthTokenAuth On
    AuthzSendForbiddenOnFailure On
    Require bitbucket-repo PROJ/alpha
</Location>
"""


def protected_conf(site):
    return server_conf(site) + """
ScriptAlias /packages/echo @ECHO@
ScriptAlias /only-bob/echo @ECHO@
ScriptAlias /maybe/echo @ECHO@
<Location /packages>
    AuthType Bitbucket
    AuthName "Package mirror"
    Require valid-user
</Location>
<Location /only-bob>
    AuthType Bitbucket
    Require bitbucket-user bob
    AuthzSendForbiddenOnFailure On
</Location>
<Location /maybe>
    AuthType Bitbucket
    BBAuthUnauthAction pass
    Require all granted
</Location>
""" + HANDLER_LOCATIONS


class Site:
    def __init__(self, apache, fb, pki, key_file, keys, redirect_uri):
        self.apache = apache
        self.fb = fb
        self.pki = pki
        self.key_file = key_file
        self.keys = keys
        self.redirect_uri = redirect_uri

    def url(self, path):
        return self.apache.url(path)

    @staticmethod
    def session():
        s = requests.Session()
        s.trust_env = False
        s.verify = False  # only the fake talks TLS and the module checks it; the tests reach the fake directly
        s.headers["Accept"] = "text/html,application/xhtml+xml"
        return s

    def fake_session(self):
        s = self.session()
        s.verify = self.pki["ca"]
        return s

    def start_login(self, s, path="/packages/"):
        """GET a protected path as a browser; returns the 302 to Bitbucket's authorize endpoint (OAuth 2, or
        OAuth 1's authorize servlet with BBAuthOAuthVersion 1)."""
        r = s.get(self.url(path), allow_redirects=False)
        assert r.status_code == 302, (r.status_code, r.text[:300])
        assert r.headers["Location"].startswith((self.fb.base_url + "/rest/oauth2/latest/authorize?",
                                                 self.fb.base_url + "/plugins/servlet/oauth/authorize?")), r.headers
        return r

    def authorize(self, s, authorize_url, user="alice", password=None):
        """Logs in at the fake Bitbucket (form) and follows it to the redirect to our callback; returns the
        callback URL Bitbucket sends the browser to."""
        bb = self.fake_session()
        bb.cookies = s.cookies  # one browser: Bitbucket's own cookie lives beside ours
        r = bb.get(authorize_url, allow_redirects=False)
        if r.status_code == 303 and "/login" in r.headers["Location"]:
            login_url = urljoin(authorize_url, r.headers["Location"])
            nxt = parse_qs(urlsplit(login_url).query)["next"][0]
            r = bb.post(urljoin(authorize_url, f"{self.fb.context_path}/j_atl_security_check"),
                        data={"j_username": user, "j_password": password or password_of(user), "next": nxt},
                        allow_redirects=False)
            assert r.status_code == 303, (r.status_code, r.text[:300])
            r = bb.get(urljoin(authorize_url, r.headers["Location"]), allow_redirects=False)
        assert r.status_code == 302, (r.status_code, r.text[:500])
        callback = r.headers["Location"]
        assert callback.startswith(self.redirect_uri), callback
        return callback

    def login(self, s, path="/packages/", user="alice", password=None):
        """The whole browser flow; returns the response of the callback (302 back to `path`)."""
        r = self.start_login(s, path)
        callback = self.authorize(s, r.headers["Location"], user, password)
        r = s.get(callback, allow_redirects=False)
        assert r.status_code == 302, (r.status_code, r.text[:500])
        return r

    @staticmethod
    def state_cookies(s):
        """The login-state cookies a browser holds (name -> value)."""
        return {c.name: c.value for c in s.cookies if c.name.startswith("bbauth_session_st_")}

    def replay_elsewhere(self, callback, state_cookies):
        """Another browser that stole the callback URL and the state cookies sends them again."""
        thief = self.session()
        for name, value in state_cookies.items():
            thief.cookies.set(name, value, path=CALLBACK_PATH)
        return thief.get(callback, allow_redirects=False)

    def tabs_complete_in(self, s, order):
        """Starts as many logins in tabs of one browser as `order` names and completes them in that order: each
        callback returns to its own tab's page, and the browser ends up logged in as alice."""
        starts = [self.start_login(s, f"/packages/echo?tab={i}") for i in range(len(order))]
        callbacks = [self.authorize(s, r.headers["Location"]) for r in starts]
        for i in order:
            r = s.get(callbacks[i], allow_redirects=False)
            assert r.status_code == 302 and r.headers["Location"] == f"/packages/echo?tab={i}"
        assert self.echo(s)["remote_user"] == "alice"

    def completed_then_replayed(self, s):
        """Completes one login, then another browser that stole its callback URL and state cookies sends them
        again; the replay's response."""
        r = self.start_login(s, "/packages/echo")
        state_cookies = self.state_cookies(s)
        callback = self.authorize(s, r.headers["Location"])
        assert s.get(callback, allow_redirects=False).status_code == 302
        return self.replay_elsewhere(callback, state_cookies)

    def logout(self, s, **params):
        """The log-out button of a page of this site: a same-origin POST (issue 19: a GET only asks to confirm)."""
        return s.post(self.url("/logout"), params=params, headers={"Origin": self.apache.base_url},
                      allow_redirects=False)

    def echo(self, s, path="/packages/echo", **kw):
        r = s.get(self.url(path), allow_redirects=False, **kw)
        assert r.status_code == 200, (r.status_code, r.text[:300])
        return r.json()

    def session_cookie(self, s, name="bbauth_session"):
        return s.cookies.get(name)


def make_site(apache_factory, tmp_serverroot, conf=protected_conf, context_path="", key_count=1,
              start=True, fake_opts=None, **apache_opts):
    """Starts the fake Bitbucket (over HTTPS with a CA made now) and an Apache with `conf(site)` as extra conf.
    fake_opts: more FakeBitbucketProcess arguments (e.g. oauth1_consumer_key, oauth1_public_key)."""
    pki = testca.make_ca_and_cert(str(tmp_serverroot / "pki"))
    os.chmod(tmp_serverroot / "pki", 0o755)
    os.chmod(pki["ca"], 0o644)
    key_file = str(tmp_serverroot / "session.keys")
    keys = new_key_file(key_file, key_count)
    apache = apache_factory(start=False, **apache_opts)
    redirect_uri = apache.url(CALLBACK_PATH)
    fb = fake_bitbucket.FakeBitbucketProcess(str(tmp_serverroot / "fakebb"), pki["cert"], pki["key"], pki["ca"],
                                             context_path=context_path, oauth2_client_id=CLIENT_ID,
                                             oauth2_client_secret=CLIENT_SECRET, redirect_uris=[redirect_uri],
                                             **(fake_opts or {}))
    fb.start()
    site = Site(apache, fb, pki, key_file, keys, redirect_uri)
    apache.extra_conf = lambda _a: conf(site)
    if start:
        apache.start()
    return site


def cache_name(site, namespace, ident):
    """The shared-cache name of a session id or login state in `namespace`: base64url(SHA-256(Bitbucket URL "\\n"
    client id NUL namespace NUL ident)) ":" namespace, computed here independently of the module."""
    space = f"{site.fb.base_url}\n{CLIENT_ID}".encode()
    digest = hashlib.sha256(space + b"\0" + namespace.encode() + b"\0" + ident.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() + ":" + namespace


# ---- signing keys (BBAuthSigningKey)

def new_private_key(alg):
    return ec.generate_private_key(ec.SECP256R1()) if alg == "ES256" else ed25519.Ed25519PrivateKey.generate()


def write_signing_key(directory, name, key):
    """The key as PKCS#8 PEM in a root-only file (mode 0600): Apache reads it as root at startup."""
    path = os.path.join(str(directory), name)
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o600)
    return path


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(public_key):
    """RFC 7638, computed here: the coordinates as RFC 7518 wants them, 32 bytes each with leading zeros (PyJWT
    2.6's to_jwk drops those, so it is not used)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        required = {"crv": "P-256", "kty": "EC", "x": b64url(numbers.x.to_bytes(32, "big")),
                    "y": b64url(numbers.y.to_bytes(32, "big"))}
    else:
        required = {"crv": "Ed25519", "kty": "OKP",
                    "x": b64url(public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))}
    return b64url(hashlib.sha256(json.dumps(required, sort_keys=True, separators=(",", ":")).encode()).digest())


def query_of(url):
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def cookie_attrs(set_cookie_header, name):
    """The attributes of the Set-Cookie line for `name` as a dict (lower-cased keys; flags -> True)."""
    for line in re.split(r",\s*(?=[A-Za-z0-9_]+=)", set_cookie_header):
        if line.startswith(name + "="):
            parts = [p.strip() for p in line.split(";")]
            attrs = {"value": parts[0].split("=", 1)[1]}
            for p in parts[1:]:
                k, _, v = p.partition("=")
                attrs[k.lower()] = v if _ else True
            return attrs
    return None


def fake_secrets(fb):
    """Every OAuth code and token the fake Bitbucket has issued (to check that none leaks anywhere)."""
    held = fb.control("GET", "/_fake/tokens")
    found = []
    for kind, entries in held.items():
        if kind == "http_tokens" or not isinstance(entries, list):
            continue  # the fixed tokens from users.json are not issued in a login; non-lists are counters
        for e in entries:
            if isinstance(e, dict):
                found += [e[k] for k in ("token", "code", "value", "secret") if isinstance(e.get(k), str)]
    return found
