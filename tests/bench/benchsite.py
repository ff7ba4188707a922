"""The site that `make bench` and `make soak` load: ONE real Apache (tests/integration/apache.py) with mod_bbauth in
front of the same small static file at several locations, the fake Bitbucket (tests/fakebb) for a real login and
for token checks, and, when Debian's libapache2-mod-auth-openidc is installed, mod_auth_openidc against a tiny
OpenID Provider run here (two virtual hosts: its shm session cache and its client-cookie sessions).

    with BenchSite(workdir) as site:       # started; every process it started is stopped on exit
        site.targets                       # {name: Target(url, headers, expect_user)}, see TARGETS_DOC
        site.apache                        # the harness's Apache (processes(), root, ...)

Everything listens on 127.0.0.1 only.
"""

import json
import os
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import apache as harness  # noqa: E402
import bbsite  # noqa: E402

OIDC_MODULE = Path(harness.MODULES_DIR) / "mod_auth_openidc.so"
ALICE_TOKEN = "BBDC-alicePersonalReadToken0000000000000000001"   # tests/fakebb/users.json
PAYLOAD = ("mod_bbauth benchmark payload\n" * 40)[:1024]          # the same 1 KiB file behind every target

TARGETS_DOC = """\
open        no access control (the ceiling)
floor       only `Require expr "%{HTTP_COOKIE} =~ /bbauth_session=/"`: what any cookie check pays in httpd's authz
cookie      AuthType Bitbucket, Require valid-user, a valid session cookie (from a real login at the fake); the
            module's metrics count as always (they cannot be turned off), and /bbauth-metrics is served
cookie-es256  the same in a virtual host with BBAuthSigningKey (P-256): the session's claims signed ES256
cookie-assert cookie-es256 with BBAuthIdentityAssertion On (a signed assertion for the upstream, memoized per
            process), plus `Header ... X-Has-Assertion yes "expr=-n %{req:X-Bitbucket-Assertion}"` to check it
floor-es256   the floor in the virtual host of cookie-es256 (a virtual host's location walk and merges cost more
            than the main server's), with the same ES256 cookie
floor-assert  floor-es256 plus cookie-assert's `Header ... X-Has-Assertion` line: the floor of cookie-assert
cookie-assert-bare  cookie-assert without the Header line (the module's own cost of the assertion, over
            floor-es256: mod_headers pays more when the header it looks up is there, and sets one more header)
token       AuthType Bitbucket with BBAuthTokenAuth On, Authorization: Bearer <token>: a token-cache hit
oidc-shm    mod_auth_openidc, Require valid-user, a valid session in its shm cache (OIDCSessionType server-cache)
oidc-cookie mod_auth_openidc with OIDCSessionType client-cookie (the session in an encrypted cookie)"""


class Target:
    def __init__(self, name, url, headers=None, user=None):
        self.name = name
        self.url = url
        self.headers = dict(headers or {})
        self.user = user      # the identity the module must see (None: no access control)

    def __repr__(self):
        return f"<Target {self.name} {self.url}>"


# ------------------------------------------------------------------------------------- a tiny OpenID Provider

class TinyOP:
    """Just enough of an OpenID Provider for mod_auth_openidc: discovery, an authorize endpoint that logs `user` in
    at once, a token endpoint answering an HS256 ID token signed with the client secret. HTTP on 127.0.0.1."""

    def __init__(self, client_id, client_secret, user="alice"):
        import jwt  # Debian's python3-jwt
        self.jwt = jwt
        self.client_id, self.client_secret, self.user = client_id, client_secret, user
        self.codes = {}
        op = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _json(self, obj, status=200):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urlsplit(self.path)
                if url.path == "/.well-known/openid-configuration":
                    return self._json(op.metadata())
                if url.path == "/jwks":
                    return self._json({"keys": []})
                if url.path == "/authorize":
                    q = {k: v[0] for k, v in parse_qs(url.query).items()}
                    code = secrets.token_urlsafe(16)
                    op.codes[code] = q.get("nonce")
                    self.send_response(302)
                    self.send_header("Location", q["redirect_uri"] + "?" + urlencode(
                        {"code": code, "state": q.get("state", "")}))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                return self._json({"error": "not_found"}, 404)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                if urlsplit(self.path).path != "/token" or form.get("code") not in op.codes:
                    return self._json({"error": "invalid_grant"}, 400)
                nonce = op.codes.pop(form["code"])
                now = int(time.time())
                claims = {"iss": op.base_url, "sub": op.user, "aud": op.client_id, "iat": now, "exp": now + 3600}
                if nonce:
                    claims["nonce"] = nonce
                id_token = op.jwt.encode(claims, op.client_secret, algorithm="HS256")
                return self._json({"access_token": secrets.token_urlsafe(24), "token_type": "Bearer",
                                   "expires_in": 3600, "id_token": id_token})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def metadata(self):
        b = self.base_url
        return {"issuer": b, "authorization_endpoint": b + "/authorize", "token_endpoint": b + "/token",
                "jwks_uri": b + "/jwks", "response_types_supported": ["code"],
                "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["HS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]}

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------------------------- the site

def _oidc_vhost(port, op, session_type, passphrase):
    return f"""
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName 127.0.0.1:{port}
    OIDCProviderMetadataURL {op.base_url}/.well-known/openid-configuration
    OIDCClientID {op.client_id}
    OIDCClientSecret {op.client_secret}
    OIDCRedirectURI http://127.0.0.1:{port}/oidc/redirect_uri
    OIDCCryptoPassphrase {passphrase}
    OIDCSessionType {session_type}
    OIDCSessionInactivityTimeout 3600
    OIDCScope "openid"
    OIDCPassClaimsAs environment
    OIDCSSLValidateServer Off
    <Location /oidc>
        AuthType openid-connect
        Require valid-user
        Header always set X-Seen-User "%{{OIDC_CLAIM_sub}}e"
    </Location>
</VirtualHost>
"""


def _signing_vhost(port, key_file):
    """A virtual host that inherits the main server's settings and signs with an ES256 key."""
    return f"""
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName 127.0.0.1:{port}
    BBAuthSigningKey {key_file}
    <Location /cookie>
        AuthType Bitbucket
        Require valid-user
    </Location>
    <Location /assert>
        AuthType Bitbucket
        Require valid-user
        BBAuthIdentityAssertion On
        Header always set X-Has-Assertion yes "expr=-n %{{req:X-Bitbucket-Assertion}}"
    </Location>
    <Location /assert-bare>
        AuthType Bitbucket
        Require valid-user
        BBAuthIdentityAssertion On
    </Location>
    # The floors of the targets above: the same virtual host, and the same Header line.
    <Location /floor>
        Require expr "%{{HTTP_COOKIE}} =~ /bbauth_session=/"
    </Location>
    <Location /floor-assert>
        Require expr "%{{HTTP_COOKIE}} =~ /bbauth_session=/"
        Header always set X-Has-Assertion yes "expr=-n %{{req:X-Bitbucket-Assertion}}"
    </Location>
</VirtualHost>
"""


def bench_conf(site, oidc=""):
    return bbsite.server_conf(site) + """
MaxKeepAliveRequests 0
# A client starved of CPU for a moment (wrk shares the machine) must not find its connection closed.
KeepAliveTimeout 30
BBAuthTimeout 30
LogLevel warn
# Every target sets the same header (the identity the module saw, "(null)" without one): same work everywhere.
Header always set X-Seen-User "%{BITBUCKET_USER}e"
<Location /floor>
    Require expr "%{HTTP_COOKIE} =~ /bbauth_session=/"
</Location>
<Location /cookie>
    AuthType Bitbucket
    Require valid-user
</Location>
<Location /token>
    AuthType Bitbucket
    BBAuthTokenAuth On
    Require valid-user
</Location>
<Location /login>
    SetHandler bbauth-login
</Location>
<Location /bbauth-metrics>
    SetHandler bbauth-metrics
    Require all granted
</Location>
""" + oidc


class BenchSite:
    def __init__(self, workdir, threads=16, servers=2, oidc=True, cookie_user="bob", extra_conf="", modules=()):
        """extra_conf and modules: more server configuration (e.g. BBAuthCache memcache:...) and the modules it needs."""
        self.workdir = Path(workdir)
        self.extra_conf, self.extra_modules = extra_conf, list(modules)
        self.threads, self.servers = threads, servers
        self.want_oidc = oidc and OIDC_MODULE.exists()
        self.oidc_note = None if self.want_oidc else (
            "mod_auth_openidc not measured: " + ("not wanted" if not oidc else
                                                 f"{OIDC_MODULE} is missing (apt-get install "
                                                 "libapache2-mod-auth-openidc)"))
        self.cookie_user = cookie_user
        self.site = self.op = None
        self.targets = {}

    @property
    def apache(self):
        return self.site.apache

    def _factory(self, start=False, **opts):
        """bbsite.make_site's apache_factory: one Apache in workdir/httpd, started by start() below."""
        return harness.Apache(self.workdir / "httpd", **opts)

    def start(self):
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        oidc_ports = {}
        oidc_conf = ""
        modules = list(self.extra_modules)
        if self.want_oidc:
            self.op = TinyOP("bench-client", "bench-client-secret-" + secrets.token_hex(16)).start()
            passphrase = secrets.token_hex(16)
            for mode in ("server-cache", "client-cookie"):
                oidc_ports[mode] = harness.free_port()
                oidc_conf += _oidc_vhost(oidc_ports[mode], self.op, mode, passphrase)
            modules.append("auth_openidc")
        self.signing_key = bbsite.new_private_key("ES256")
        signing_port = harness.free_port()
        key_file = bbsite.write_signing_key(self.workdir, "signing.key", self.signing_key)
        # The callgrind runs start apache2 -X as www-data, who must read it like the session key file.
        os.chmod(key_file, 0o640)
        os.chown(key_file, 0, bbsite._www_data_gid())
        self.signing_conf = _signing_vhost(signing_port, key_file)
        self.oidc_conf = oidc_conf
        vhosts = lambda: self.oidc_conf + self.signing_conf + self.extra_conf  # noqa: E731
        self.site = bbsite.make_site(self._factory, self.workdir, conf=lambda s: bench_conf(s, vhosts()),
                                     start=False, cgi=False, servers=self.servers, threads=self.threads,
                                     log_level="warn", modules=tuple(modules))
        for d in ("open", "floor", "floor-assert", "cookie", "token", "oidc", "assert", "assert-bare"):
            self.apache.write_htdoc(f"{d}/file.txt", PAYLOAD)
        self.apache.start()
        a = self.apache
        self.targets["open"] = Target("open", a.url("/open/file.txt"))
        self.targets["floor"] = Target("floor", a.url("/floor/file.txt"),
                                       {"Cookie": "bbauth_session=x"})
        self.targets["cookie"] = Target("cookie", a.url("/cookie/file.txt"), self.session_headers(), self.cookie_user)
        self.targets["token"] = Target("token", a.url("/token/file.txt"),
                                       {"Authorization": "Bearer " + ALICE_TOKEN}, "alice")
        es256 = self.es256_session_headers(self.targets["cookie"].headers)
        for name, path in (("cookie-es256", "/cookie/file.txt"), ("cookie-assert", "/assert/file.txt"),
                           ("cookie-assert-bare", "/assert-bare/file.txt")):
            self.targets[name] = Target(name, f"http://127.0.0.1:{signing_port}{path}", es256, self.cookie_user)
        for name, path in (("floor-es256", "/floor/file.txt"), ("floor-assert", "/floor-assert/file.txt")):
            self.targets[name] = Target(name, f"http://127.0.0.1:{signing_port}{path}", es256)
        for mode, name in (("server-cache", "oidc-shm"), ("client-cookie", "oidc-cookie")):
            if mode in oidc_ports:
                url = f"http://127.0.0.1:{oidc_ports[mode]}/oidc/file.txt"
                self.targets[name] = Target(name, url, {"Cookie": self._oidc_login(url)}, "alice")
        # the real floor request carries the same cookie as the cookie target: same bytes on the wire
        self.targets["floor"].headers = dict(self.targets["cookie"].headers)
        for t in self.targets.values():
            self.check(t)
        return self

    def load_oidc(self, loaded):
        """While Apache is stopped: the configuration with or without mod_auth_openidc (and its virtual hosts).
        Loaded, it runs hooks on every request with an AuthType, mod_bbauth's too."""
        if not self.want_oidc:
            return
        if loaded and "auth_openidc" not in self.apache.modules:
            self.apache.modules.append("auth_openidc")
            self.oidc_conf = self._oidc_conf_saved
        elif not loaded and "auth_openidc" in self.apache.modules:
            self.apache.modules.remove("auth_openidc")
            self._oidc_conf_saved, self.oidc_conf = self.oidc_conf, ""
        self.apache.write_config()

    def session_headers(self):
        """The headers of the cookie target, from a real login now."""
        s = self.site.session()
        self.site.login(s, "/cookie/file.txt", user=self.cookie_user)
        return {"Cookie": "bbauth_session=" + self.site.session_cookie(s)}

    def es256_session_headers(self, headers=None):
        """The headers of the ES256 targets: the claims of a real login's (HS256) cookie (that of `headers`, or a
        new login's), signed with the virtual host's ES256 key as a cookie of that host would be: the same session,
        verified there by the signature alone."""
        import jwt  # Debian's python3-jwt
        cookie = (headers or self.session_headers())["Cookie"].split("=", 1)[1]
        claims = jwt.decode(cookie, options={"verify_signature": False})
        signed = jwt.encode(claims, self.signing_key, algorithm="ES256",
                            headers={"kid": bbsite.thumbprint(self.signing_key.public_key()), "typ": "JWT"})
        return {"Cookie": "bbauth_session=" + signed}

    def _oidc_login(self, url):
        s = requests.Session()
        s.trust_env = False
        r = s.get(url, headers={"Accept": "text/html"}, allow_redirects=True, timeout=10)
        if r.status_code != 200 or r.text != PAYLOAD:
            raise RuntimeError(f"mod_auth_openidc login at {url} failed: {r.status_code} {r.text[:300]}\n"
                               + harness._tail(self.apache.error_log(), 30))
        return "; ".join(f"{c.name}={c.value}" for c in s.cookies if c.name.startswith("mod_auth_openidc"))

    def counted(self, sample):
        """The value of one sample of the module's metrics (name with its labels, as the page writes it), or None
        when the page does not have it."""
        r = requests.get(self.apache.url("/bbauth-metrics"), timeout=10)
        for line in r.text.splitlines() if r.status_code == 200 else ():
            name, _, value = line.rpartition(" ")
            if name == sample:
                return float(value)
        return None

    def check(self, target):
        """One request as wrk will send it: 200, the payload, and the identity the module must have seen."""
        s = requests.Session()
        s.trust_env = False
        r = s.get(target.url, headers=target.headers, allow_redirects=False, timeout=10)
        if r.status_code != 200 or r.text != PAYLOAD:
            raise RuntimeError(f"{target}: {r.status_code} {r.text[:200]!r}")
        if target.user and r.headers.get("X-Seen-User") != target.user:
            raise RuntimeError(f"{target}: X-Seen-User {r.headers.get('X-Seen-User')!r}, not {target.user}")
        if target.name == "cookie-assert" and r.headers.get("X-Has-Assertion") != "yes":
            raise RuntimeError(f"{target}: the upstream got no X-Bitbucket-Assertion")

    def stop(self):
        errors = []
        for what, stop in (("apache", lambda: self.site and self.site.apache.stop()),
                           ("fake bitbucket", lambda: self.site and self.site.fb.stop()),
                           ("op", lambda: self.op and self.op.stop())):
            try:
                stop()
            except Exception as e:  # keep stopping the others
                errors.append(f"{what}: {e}")
        if errors:
            raise RuntimeError("; ".join(errors))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
