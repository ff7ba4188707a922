"""Issue 4, server farms, beyond tests/integration/test_farm.py: what A keeps for a browser session (its sealed
OAuth grant) and for a Require line (the decision) serves B too, and what the shared memcached or redis holds is
keyed by hashes and sealed: no session id, no token in it."""

import socket

import jwt
import pytest

import bbsite
from test_farm import shared_cache, start_farm  # noqa: F401  (shared_cache: the parametrized memcached / redis fixture)


@pytest.fixture
def farm(site_factory, apache_factory, shared_cache):  # noqa: F811
    a, b = start_farm(site_factory, apache_factory, shared_cache, """
ScriptAlias /alpha/echo @ECHO@
<Location /alpha>
    AuthType Bitbucket
    Require bitbucket-repo PROJ/alpha
</Location>
""")
    kind, port = shared_cache
    return a, b, kind, port


def moved(s, to):
    """The same browser talking to the other server (cookies are per host:port in requests)."""
    t = to.session()
    t.cookies.set("bbauth_session", s.cookies.get("bbauth_session"))
    return t


def raw_get(kind, port, key):
    """A value straight from memcached (text protocol) or redis (inline command), as anyone on the network could."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(f"{'get' if kind == 'memcache' else 'GET'} {key}\r\n".encode())
        data = b""
        while not (data.endswith(b"END\r\n") or data.startswith(b"$-1\r\n")
                   or (data.startswith(b"$") and data.count(b"\r\n") >= 2)):
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    lines = data.split(b"\r\n")
    return lines[1] if data.startswith((b"VALUE", b"$")) and not data.startswith(b"$-1") else None


def test_grant_kept_by_a_is_used_on_b_and_decisions_are_shared(farm):
    a, b, _, _ = farm
    s = a.session()
    a.login(s, "/packages/echo", user="alice")
    access = [t["token"] for t in a.fb.control("GET", "/_fake/tokens")["oauth2_access"] if t["user"] == "alice"]
    on_b = moved(s, b)
    assert on_b.get(b.url("/alpha/echo"), allow_redirects=False).status_code == 200
    asked = a.fb.control("GET", "/_fake/log?endpoint=repo")["entries"]
    assert [e["headers"]["Authorization"] for e in asked] == [f"Bearer {access[0]}"]   # A's grant, asked by B
    assert s.get(a.url("/alpha/echo"), allow_redirects=False).status_code == 200
    assert len(a.fb.control("GET", "/_fake/log?endpoint=repo")["entries"]) == 1          # B's answer, reused by A


def test_shared_cache_holds_no_session_id_and_no_token(farm):
    a, _, kind, port = farm
    s = a.session()
    a.login(s, "/packages/echo", user="alice")
    assert s.get(a.url("/alpha/echo"), allow_redirects=False).status_code == 200
    sid = jwt.decode(a.session_cookie(s), options={"verify_signature": False})["sid"]
    key = bbsite.cache_name(a, "grant", sid)
    hexed = key.encode().hex()
    value = raw_get(kind, port, f"mod_bbauth:{hexed}") or raw_get(kind, port, f"mod_bbauth:{hexed.upper()}")
    assert value, "the session's grant is not where it should be in the shared cache"
    held = a.fb.control("GET", "/_fake/tokens")
    secrets = [t["token"] for kind_ in ("oauth2_access", "oauth2_refresh") for t in held[kind_]]
    assert secrets
    for secret in secrets + [sid]:
        assert secret.encode() not in value
    assert b"{" not in value                          # sealed (AES-GCM), not JSON in clear
