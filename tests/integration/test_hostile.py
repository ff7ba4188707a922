"""Issue 5: hostile input through a real Apache, one table per class: each case gets the exact status, nothing
leaks into the page or the log, and the server goes on serving. (Return URLs: test_return_url.py; tokens:
test_tokens.py; Bitbucket misbehaving: test_bitbucket_failures.py; crafted JWTs: test_session.py.)"""

import base64
import json
import socket
import time

import jwt
import pytest

import bbsite

TOKEN = "BBDC-alicePersonalReadToken0000000000000000001"
SPOOFS = {"X-Bitbucket-User": "admin", "x_bitbucket_user": "admin", "X-BITBUCKET-EMAIL": "a@evil"}


def hostile_conf(site):
    return bbsite.protected_conf(site) + """
LogLevel info bbauth:trace8
<Location /packages>
    BBAuthTokenAuth On
</Location>
Alias /static @HTDOCS@
<Location /with-errdoc>
    AuthType Bitbucket
    Require valid-user
    ErrorDocument 401 /login
</Location>
"""


@pytest.fixture
def site(site_factory, echo_backend):
    def conf(s):
        return hostile_conf(s) + f"""
<Location /proxied>
    AuthType Bitbucket
    BBAuthTokenAuth On
    Require valid-user
    ProxyPass {echo_backend.url}/proxied
</Location>
<Location /proxied-maybe>
    AuthType Bitbucket
    BBAuthUnauthAction pass
    Require all granted
    ProxyPass {echo_backend.url}/proxied-maybe
</Location>
"""
    return site_factory(conf=conf, proxy=True)


def raw(site, request_bytes, timeout=10):
    """Sends bytes as they are (requests refuses CR/LF in headers) and returns the status code."""
    with socket.create_connection(("127.0.0.1", site.apache.port), timeout=timeout) as c:
        c.sendall(request_bytes)
        data = b""
        while b"\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else None


def api(site, cookies=None, headers=None, method="GET", path="/packages/echo", **kw):
    s = site.session()
    s.headers["Accept"] = "application/json"
    if headers:
        s.headers.update(headers)
    r = s.request(method, site.url(path), allow_redirects=False, cookies=cookies, **kw)
    return r


def signed(site, **claims):
    now = int(time.time())
    body = {"sub": "alice", "uid": 101, "name": "A", "email": "", "sid": "c2lkc2lkc2lkc2lk", "iss": site.apache.base_url,
            "auth_time": now, "iat": now, "exp": now + 600}
    body.update(claims)
    kid = __import__("hashlib").sha256(site.keys[0]).hexdigest()[:16]
    return jwt.encode(body, site.keys[0], algorithm="HS256", headers={"kid": kid, "typ": "JWT"})


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def with_payload(site, payload_bytes):
    h, _, sig = signed(site).split(".")
    return f"{h}.{b64u(payload_bytes)}.{sig}"


COOKIE_HEADERS = {
    "no equals sign": "bbauth_session",
    "empty": "bbauth_session=",
    "only semicolons": ";;;;",
    "hundreds of cookies": "; ".join(f"c{i}=v{i}" for i in range(300)),
    "oversized": "bbauth_session=" + "A" * 7000,
    "one segment": "bbauth_session=abc",
    "four segments": "bbauth_session=a.b.c.d",
    "bad base64url": "bbauth_session=%%%.***.$$$",
    "non-JSON payload": None,
    "array payload": None,
    "huge exp": None,
    "negative iat": None,
    "fractional iat": None,
    "string exp": None,
}


def cookie_header(site, case):
    special = {
        "non-JSON payload": lambda: with_payload(site, b"not json"),
        "array payload": lambda: with_payload(site, b"[1,2,3]"),
        "huge exp": lambda: signed(site, exp=10 ** 30),
        "negative iat": lambda: signed(site, iat=-5, auth_time=-5),
        "fractional iat": lambda: signed(site, iat=time.time()),
        "string exp": lambda: signed(site, exp="9999999999"),
    }
    if case in special:
        return "bbauth_session=" + special[case]()
    return COOKIE_HEADERS[case]


@pytest.mark.parametrize("case", list(COOKIE_HEADERS))
def test_hostile_cookies_are_no_session(site, case):
    header = cookie_header(site, case)
    r = api(site, headers={"Cookie": header})
    assert r.status_code == 401, (case, r.status_code)
    assert "<script" not in r.text
    # The page and the log never show the cookie's value.
    value = header.split("=", 1)[-1]
    if len(value) > 8:
        assert value not in site.apache.error_log() and value not in r.text
    assert api(site, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200  # still serving


def test_duplicated_cookies_one_valid(site):
    good = signed(site)
    r = api(site, headers={"Cookie": f"bbauth_session=garbage; bbauth_session={good}; bbauth_session=x"})
    assert r.status_code == 200 and r.json()["remote_user"] == "alice"


def identity_headers(headers):
    """The headers (name, value pairs) that name an identity, names lower-cased with '_' read as '-', as backends
    that map headers to variables (CGI, PHP, WSGI) read them."""
    return [(k.lower().replace("_", "-"), v) for k, v in headers if k.lower().replace("_", "-").startswith("x-bitbucket-")]


ALICE_HEADERS = {"x-bitbucket-user": "alice", "x-bitbucket-email": "alice@example.com"}


# What reaches the application behind the module, through CGI (which drops names with '_' itself) and through a
# proxy (which passes them on: only the module can remove them). With the token: alice's identity and nothing
# else; without: no identity at all.
@pytest.mark.parametrize("method,path,with_token,expected", [
    ("GET", "/packages/echo", True, ALICE_HEADERS), ("OPTIONS", "/packages/echo", True, ALICE_HEADERS),
    ("GET", "/maybe/echo", False, {}), ("OPTIONS", "/maybe/echo", False, {}), ("POST", "/maybe/echo", False, {}),
    ("GET", "/proxied/app", True, ALICE_HEADERS), ("POST", "/proxied/app", True, ALICE_HEADERS),
    ("GET", "/proxied-maybe/app", False, {}),
])
def test_identity_headers_never_pass_from_the_client(site, echo_backend, method, path, with_token, expected):
    headers = dict(SPOOFS, Authorization=f"Bearer {TOKEN}") if with_token else SPOOFS
    echo_backend.clear()
    r = api(site, headers=headers, method=method, path=path)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    if path.startswith("/proxied"):
        assert len(echo_backend.requests) == 1
        seen = echo_backend.requests[0]["headers"]
    else:
        seen = list(r.json()["headers"].items())
    got = identity_headers(seen)
    assert {k: v for k, v in got if k in ALICE_HEADERS} == expected
    assert len(got) == len({k for k, _ in got})            # never a spoof beside the module's own header
    assert "admin" not in [v for _, v in got] and "a@evil" not in json.dumps(seen)


# The module's own pages never reach an application: spoofed identity headers change nothing there.
# /logout answers a GET with its confirmation page (issue 19).
@pytest.mark.parametrize("path,expected", [("/login", 302), ("/logout", 200), (bbsite.CALLBACK_PATH, 400)])
def test_identity_headers_at_the_module_pages(site, path, expected):
    r = api(site, headers=SPOOFS, path=path)
    assert r.status_code == expected
    assert "admin" not in r.text and "a@evil" not in r.text


CALLBACKS = {
    "no query": ("", 400),
    "empty state and code": ("?state=&code=", 400),
    "duplicated code": ("?state=x&code=a&code=b", 400),
    "state without cookie": ("?state=" + "A" * 43 + "&code=abc", 400),
    "error with html": ("?error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state=x", 400),
    "unknown error": ("?error=server_error&state=x", 400),
    "huge code": ("?state=x&code=" + "c" * 6000, 400),
}


@pytest.mark.parametrize("case", list(CALLBACKS))
def test_hostile_callbacks(site, case):
    query, expected = CALLBACKS[case]
    s = site.session()
    r = s.get(site.redirect_uri + query, allow_redirects=False)
    assert r.status_code == expected, (case, r.status_code)
    assert "<script>" not in r.text
    assert "bbauth_session=" not in r.headers.get("Set-Cookie", "")


@pytest.mark.parametrize("case,request_bytes,expected", [
    ("CR in Authorization", b"GET /packages/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\rb\r\n\r\n", 400),
    # httpd unfolds an obsolete line fold: "Bearer abc", an unknown token.
    ("LF-folded Authorization", b"GET /packages/echo HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nAuthorization: Bearer\r\n abc\r\n\r\n",
     401),
    ("NUL in cookie", b"GET /packages/echo HTTP/1.1\r\nHost: x\r\nCookie: bbauth_session=a\x00b\r\n\r\n", 400),
    ("non-ASCII Basic", b"GET /packages/echo HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nAuthorization: Basic \xff\xfe\r\n\r\n",
     401),
    ("huge header", b"GET /packages/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"a" * 20000 + b"\r\n\r\n",
     400),
])
def test_malformed_requests(site, case, request_bytes, expected):
    assert raw(site, request_bytes) == expected, case
    assert api(site, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


@pytest.mark.parametrize("method,kw,expected", [
    ("POST", {"data": b"x=1"}, 401),                        # no Content-Type
    ("POST", {"data": b"x" * 2_000_000}, 401),              # a big body is not read for a 401
    ("HEAD", {}, 401),
    ("OPTIONS", {}, 401),
    ("DELETE", {}, 401),
])
def test_request_shapes_without_credentials(site, method, kw, expected):
    r = api(site, method=method, **kw)
    assert r.status_code == expected


def test_post_without_content_type_to_the_callback_and_login(site):
    for path in (bbsite.CALLBACK_PATH, "/login"):   # /logout takes a POST (issue 19): tests/integration/test_logout.py
        s = site.session()
        r = s.post(site.url(path), data=b"state=x&code=y", allow_redirects=False)
        assert r.status_code == 405, (path, r.status_code)


def test_error_document_re_entry_does_not_loop(site):
    r = site.session().get(site.url("/with-errdoc/x"), headers={"Accept": "application/json"},
                           allow_redirects=False)
    assert r.status_code in (302, 401)
    assert api(site, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_nothing_secret_in_the_log_at_trace8(site):
    s = site.session()
    site.login(s, "/packages/echo", user="alice")
    api(site, headers={"Authorization": f"Bearer {TOKEN}"})
    api(site, headers={"Authorization": "Basic " + base64.b64encode(f"alice:{TOKEN}".encode()).decode()})
    made_up_token = "BBDC-madeUpToken0000000000000000000000000099"
    assert api(site, headers={"Authorization": f"Bearer {made_up_token}"}).status_code == 401
    # A callback under a real login state with a code Bitbucket never issued: the module logs the refusal.
    browser = site.session()
    state = bbsite.query_of(site.start_login(browser, "/packages/echo").headers["Location"])["state"]
    made_up_code = "madeUpCode" + "7" * 33
    assert browser.get(site.url(f"{bbsite.CALLBACK_PATH}?code={made_up_code}&state={state}"),
                       allow_redirects=False).status_code == 502
    site.logout(site.session())
    log = site.apache.error_log()
    # The lines about what was done are there (so the search below reads them), at this log level.
    assert "[bbauth:info]" in log and "mod_bbauth: alice logged in" in log
    assert "mod_bbauth: login failed: token exchange at " in log and "refused: invalid_grant" in log
    secrets = [TOKEN, made_up_token, made_up_code, state, bbsite.CLIENT_SECRET,
               s.cookies.get("bbauth_session")] + bbsite.fake_secrets(site.fb)
    for secret in secrets:
        assert secret and secret not in log
