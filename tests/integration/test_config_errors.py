"""Issue 2: `apachectl -t` refuses a configuration mod_bbauth cannot work with, naming the directive, the file and
the line; a good one passes. Secrets given as file: or env: work for a whole login, and virtual hosts inherit the
server's settings or bring their own redirect URI.

The `apachectl -t` cases share one (never started) site: each only rewrites its conf/extra.conf."""

import base64
import os
import re
import stat
import subprocess

import pytest

import bbsite
from apache import free_port
from bbsite import query_of

PROTECTED = """<Location /packages>
    AuthType Bitbucket
    Require valid-user
</Location>
"""
SECRET_ENV = "BBAUTH_TEST_CLIENT_SECRET"


@pytest.fixture(scope="module")
def shared_site(module_site_factory):
    return module_site_factory(start=False)


@pytest.fixture
def site(shared_site):
    yield shared_site
    shared_site.apache.env.pop(SECRET_ENV, None)


def server_lines(site, drop=None, **replace):
    """The server-level settings a protected location needs, one per line (line 1 is BBAuthBitbucketURL)."""
    lines = {
        "BBAuthBitbucketURL": site.fb.base_url,
        "BBAuthClientID": bbsite.CLIENT_ID,
        "BBAuthClientSecret": bbsite.CLIENT_SECRET,
        "BBAuthRedirectURI": site.redirect_uri,
        "BBAuthSessionKey": site.key_file,
        "BBAuthCAFile": site.pki["ca"],
    }
    lines.update(replace)
    if drop:
        del lines[drop]
    return "".join(f"{k} {v}\n" for k, v in lines.items())


def line_of(text, start):
    """The 1-based number of the first line of text that starts with `start`."""
    return [i + 1 for i, line in enumerate(text.splitlines()) if line.lstrip().startswith(start)][0]


def assert_refused(site, text, directive, line):
    """apachectl -t fails, naming the directive, conf/extra.conf and the line; no secret in what it prints."""
    rc, out = site.apache.configtest(text)
    assert rc != 0, out
    assert directive in out, out
    assert str(site.apache.extra_conf_path) in out, out
    assert re.search(rf"\bline {line}\b", out), out
    assert bbsite.CLIENT_SECRET not in out
    return out


def assert_passes(site, text):
    rc, out = site.apache.configtest(text)
    assert rc == 0, out
    assert "Syntax OK" in out
    return out


# ---- a protected location needs the server-level settings

@pytest.mark.parametrize("directive", ["BBAuthBitbucketURL", "BBAuthClientID", "BBAuthClientSecret",
                                       "BBAuthRedirectURI", "BBAuthSessionKey"])
def test_protected_location_without_a_server_setting(site, directive):
    text = server_lines(site, drop=directive) + PROTECTED
    out = assert_refused(site, text, directive, line_of(text, "AuthType Bitbucket"))
    assert "AuthType Bitbucket" in out


@pytest.mark.parametrize("use", ["SetHandler bbauth-login", "SetHandler bbauth-logout",
                                 "Require bitbucket-user alice"])
def test_other_uses_without_settings(site, use):
    text = f"<Location /x>\n    {use}\n</Location>\n"
    out = assert_refused(site, text, "BBAuthBitbucketURL", 2)
    assert " ".join(use.split()[:2]) in out


def test_virtual_host_lacking_a_setting_is_named(site):
    """Nothing gives the virtual host a redirect URI: the use inside it is named, as the virtual host's."""
    text = server_lines(site, drop="BBAuthRedirectURI") + f"""<VirtualHost 127.0.0.1:@PORT@>
    ServerName other.test
{PROTECTED}</VirtualHost>
"""
    out = assert_refused(site, text, "BBAuthRedirectURI", line_of(text, "AuthType Bitbucket"))
    assert "virtual host" in out


def test_virtual_host_completing_the_settings_passes(site):
    """The main server does not use the module and lacks the redirect URI; the virtual host that uses it has one."""
    assert_passes(site, server_lines(site, drop="BBAuthRedirectURI") + f"""<VirtualHost 127.0.0.1:@PORT@>
    ServerName other.test
    BBAuthRedirectURI https://other.test/bbauth/callback
{PROTECTED}</VirtualHost>
""")


# ---- the session key file

def key_file_with(site, name, content, mode=0o640):
    path = site.apache.root.parent / name
    path.write_bytes(content)
    os.chmod(path, mode)
    return str(path)


GOOD_KEY = os.urandom(32).hex().encode()


@pytest.mark.parametrize("case,content,says", [
    ("short", b"00112233445566778899aabbccddeeff\n", "only 16 bytes"),
    ("short base64", base64.b64encode(os.urandom(31)) + b"\n", "only 31 bytes"),
    ("odd-length hex", b"a" * 63 + b"\n", "line 1: odd number of hex digits"),
    ("bad base64", b"!!!!" * 12 + b"\n", "line 1: neither hex nor base64"),
    ("bad second key", b"# keys\n" + GOOD_KEY + b"\n" + b"not a key!" * 6 + b"\n", "line 3: neither hex nor base64"),
    ("empty", b"# only a comment\n", "no key found"),
    ("binary", bytes(range(0x80, 0xc0)), "neither hex nor base64"),  # fixed: random bytes may start with "#"
])
def test_bad_key_file(site, case, content, says):
    path = key_file_with(site, "bad.keys", content)
    text = server_lines(site, BBAuthSessionKey=path) + PROTECTED
    out = assert_refused(site, text, "BBAuthSessionKey", line_of(text, "BBAuthSessionKey"))
    assert path in out and says in out
    assert GOOD_KEY.decode() not in out


@pytest.mark.parametrize("directive", ["BBAuthSessionKey", "BBAuthSigningKey"])
@pytest.mark.parametrize("case", ["missing", "a directory"])
def test_unreadable_key_file(site, case, directive):
    path = "/nonexistent/keys" if case == "missing" else str(site.apache.root)
    text = server_lines(site, **{directive: path}) + PROTECTED
    out = assert_refused(site, text, directive, line_of(text, directive))
    assert path in out


def test_key_files_that_are_fine(site):
    """Base64 (with or without padding, url-safe too), several keys, comments and blank lines, readable by root
    only (httpd reads it before it gives up root)."""
    content = (b"# rotation: the first signs\n\n" + base64.b64encode(os.urandom(48)) + b"\n"
               + base64.urlsafe_b64encode(os.urandom(33)).rstrip(b"=") + b"\n  " + GOOD_KEY + b"  \r\n")
    path = key_file_with(site, "good.keys", content, mode=0o600)
    assert_passes(site, server_lines(site, BBAuthSessionKey=path) + PROTECTED)


# ---- URLs and secrets

@pytest.mark.parametrize("directive,value", [
    ("BBAuthBitbucketURL", "ftp://bitbucket.example.com"),
    ("BBAuthBitbucketURL", "http://bitbucket.example.com"),
    ("BBAuthBitbucketURL", "https://bitbucket.example.com/?x=1"),
    ("BBAuthBitbucketURL", "https://bitbucket.example.com/bitbucket#top"),
    ("BBAuthBitbucketURL", "https://user:pw@bitbucket.example.com"),
    ("BBAuthBitbucketURL", "bitbucket.example.com"),
    ("BBAuthBitbucketURL", "/bitbucket"),
    ("BBAuthBitbucketURL", "https://"),
    ("BBAuthRedirectURI", "/bbauth/callback"),
    ("BBAuthRedirectURI", "mirror.example.com/bbauth/callback"),
    ("BBAuthRedirectURI", "https://mirror.example.com/cb#frag"),
    ("BBAuthRedirectURI", "https://mirror.example.com/cb?x=1"),
    ("BBAuthRedirectURI", "ftp://mirror.example.com/cb"),
    ("BBAuthClientSecret", "file:/nonexistent/secret"),
    ("BBAuthClientSecret", "env:BBAUTH_TEST_UNSET_VARIABLE"),
    ("BBAuthCAFile", "/nonexistent/ca.pem"),
])
def test_malformed_values(site, directive, value):
    text = server_lines(site, **{directive: value}) + PROTECTED
    assert_refused(site, text, directive, line_of(text, directive))


@pytest.mark.parametrize("case", ["empty file", "a directory", "empty variable"])
def test_unusable_client_secret(site, case):
    if case == "empty file":
        value = "file:" + key_file_with(site, "empty-secret", b"\n", mode=0o600)
    elif case == "a directory":
        value = f"file:{site.apache.root}"
    else:
        site.apache.env[SECRET_ENV] = ""
        value = f"env:{SECRET_ENV}"
    text = server_lines(site, BBAuthClientSecret=value) + PROTECTED
    assert_refused(site, text, "BBAuthClientSecret", line_of(text, "BBAuthClientSecret"))


@pytest.mark.parametrize("case,says", [("a directory", "cannot read"), ("no certificate", "holds no PEM certificate"),
                                       ("only a private key", "holds no PEM certificate")])
def test_unusable_ca_file(site, case, says):
    if case == "a directory":
        path = str(site.apache.root)
    elif case == "no certificate":
        path = key_file_with(site, "not-a-ca.pem", b"just text\n")
    else:
        path = key_file_with(site, "key-only.pem", open(site.pki["key"], "rb").read())
    text = server_lines(site, BBAuthCAFile=path) + PROTECTED
    out = assert_refused(site, text, "BBAuthCAFile", line_of(text, "BBAuthCAFile"))
    assert path in out and says in out
    assert "PRIVATE KEY" not in out


def test_secret_file_relative_to_server_root_and_env_pass(site):
    key_file_with(site, "relative-secret", bbsite.CLIENT_SECRET.encode() + b"\r\n", mode=0o600)
    relative = os.path.relpath(site.apache.root.parent / "relative-secret", site.apache.root)
    assert_passes(site, server_lines(site, BBAuthClientSecret=f"file:{relative}") + PROTECTED)
    site.apache.env[SECRET_ENV] = bbsite.CLIENT_SECRET
    assert_passes(site, server_lines(site, BBAuthClientSecret=f"env:{SECRET_ENV}") + PROTECTED)


# ---- other values

@pytest.mark.parametrize("directive_line", [
    "BBAuthSessionMaxAge -1", "BBAuthSessionMaxAge abc", "BBAuthSessionMaxAge 10", "BBAuthSessionMaxAge 600s",
    "BBAuthSessionMaxAge 99999999999999999999", "BBAuthSessionIdleTimeout 1.5", "BBAuthSessionIdleTimeout -5",
    "BBAuthTimeout 0", "BBAuthTimeout abc", "BBAuthTokenCacheTTL 0", "BBAuthSessionRevalidate x",
    "BBAuthCookieSameSite Foo", "BBAuthCookieName a;b", "BBAuthCookieName", "BBAuthCookieDomain ex ample.com",
    "BBAuthCookiePath nope", "BBAuthOAuthVersion 3", "BBAuthOAuthVersion two", "BBAuthCache nosuchprovider",
    "BBAuthCache nosuchprovider:arg", "BBAuthScope REPO_READ;", "BBAuthScope repo_read", "BBAuthClientID",
    "BBAuthBitbucketMaxCalls -1", "BBAuthBitbucketMaxCalls many", "BBAuthCircuitFailures 1001",
    "BBAuthCircuitCooldown 0", "BBAuthCircuitCooldown 30s", "BBAuthStaleIfError -1", "BBAuthStaleIfError 1h",
    "BBAuthAnonymousChecksPerMinute -1", "BBAuthAnonymousChecksPerMinute 100001", "BBAuthAnonymousChecksPerMinute 5/s",
    "<Location /x>\n    BBAuthUnauthAction foo\n</Location>",
    "<Location /x>\n    BBAuthUnauthAction\n</Location>",
    "<Location /x>\n    BBAuthHeaderPrefix X_Y\n</Location>",
    "<Location /x>\n    BBAuthTokenAuth maybe\n</Location>",
])
def test_bad_directive_values(site, directive_line):
    head = server_lines(site)
    text = head + directive_line + "\n" + PROTECTED
    inner = 1 if directive_line.startswith("<") else 0
    directive = directive_line.split("\n")[inner].split()[0]
    assert_refused(site, text, directive, len(head.splitlines()) + 1 + inner)


def test_cache_only_at_server_level(site):
    text = server_lines(site) + "<VirtualHost 127.0.0.1:@PORT@>\n    BBAuthCache shmcb\n</VirtualHost>\n" + PROTECTED
    assert_refused(site, text, "BBAuthCache", line_of(text, "BBAuthCache"))


def test_good_configuration_passes(site):
    assert_passes(site, server_lines(site) + PROTECTED + """BBAuthSessionMaxAge 600
BBAuthSessionIdleTimeout 0
BBAuthCookieSameSite strict
BBAuthScope REPO_READ PUBLIC_REPOS
BBAuthOAuthVersion 2
BBAuthTimeout 30
BBAuthCache shmcb
BBAuthBitbucketMaxCalls 0
BBAuthCircuitFailures 0
BBAuthCircuitCooldown 120
BBAuthStaleIfError 600
BBAuthAnonymousChecksPerMinute 120
<Location /maybe>
    AuthType Bitbucket
    BBAuthUnauthAction pass
    BBAuthHeaderPrefix X-BB-
    Require all granted
</Location>
<Location /login>
    SetHandler bbauth-login
</Location>
""")


def test_unprotected_server_needs_no_settings(site):
    """Loading the module without using it is fine: nothing to refuse."""
    assert_passes(site, "BBAuthTimeout 5\n")


# ---- secrets from file: and env: work for a whole login (each on its own Apache)

def test_secret_from_file_works(site_factory, tmp_serverroot):
    secret_file = tmp_serverroot / "client-secret"
    secret_file.write_text(bbsite.CLIENT_SECRET + "\n")
    os.chmod(secret_file, 0o600)  # root's: read at startup, before httpd drops privileges

    def conf(s):
        return bbsite.protected_conf(s).replace(f"BBAuthClientSecret {bbsite.CLIENT_SECRET}",
                                                f"BBAuthClientSecret file:{secret_file}")
    site = site_factory(conf=conf)
    s = site.session()
    site.login(s, "/packages/echo")
    assert site.echo(s)["remote_user"] == "alice"
    assert bbsite.CLIENT_SECRET not in site.apache.error_log()


def test_secret_from_env_works(site_factory):
    def conf(s):
        return bbsite.protected_conf(s).replace(f"BBAuthClientSecret {bbsite.CLIENT_SECRET}",
                                                f"BBAuthClientSecret env:{SECRET_ENV}")
    site = site_factory(conf=conf, start=False)
    site.apache.env[SECRET_ENV] = bbsite.CLIENT_SECRET
    site.apache.start()
    s = site.session()
    site.login(s, "/packages/echo", user="bob")
    assert site.echo(s)["remote_user"] == "bob"
    assert bbsite.CLIENT_SECRET not in site.apache.error_log()


# ---- virtual hosts

def vhost_conf(second_port):
    """The main server's settings; vhost A (this port) inherits them all, vhost B (second_port) has its own
    redirect URI and cookie name."""
    def conf(s):
        return bbsite.server_conf(s) + f"""
Listen 127.0.0.1:{second_port}
<VirtualHost 127.0.0.1:@PORT@>
    ServerName a.test
    ScriptAlias /packages/echo @ECHO@
{PROTECTED}</VirtualHost>
<VirtualHost 127.0.0.1:{second_port}>
    ServerName b.test
    BBAuthRedirectURI http://127.0.0.1:{second_port}/b/callback
    BBAuthCookieName b_session
    ScriptAlias /packages/echo @ECHO@
{PROTECTED}</VirtualHost>
"""
    return conf


def login_at(site, s, base_url, redirect_uri, user):
    """The browser flow at base_url, whose server's redirect URI is redirect_uri."""
    r = s.get(base_url + "/packages/echo", allow_redirects=False)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert query_of(r.headers["Location"])["redirect_uri"] == redirect_uri
    other = bbsite.Site(site.apache, site.fb, site.pki, site.key_file, site.keys, redirect_uri)
    r = s.get(other.authorize(s, r.headers["Location"], user), allow_redirects=False)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    r = s.get(base_url + "/packages/echo", allow_redirects=False)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r.json()


def test_virtual_hosts_inherit_or_bring_their_own_redirect_uri(site_factory):
    second = free_port()
    site = site_factory(conf=vhost_conf(second), start=False)
    b_base, b_redirect = f"http://127.0.0.1:{second}", f"http://127.0.0.1:{second}/b/callback"
    site.fb.control("POST", "/_fake/oauth2/clients", {"client_id": bbsite.CLIENT_ID,
                                                       "client_secret": bbsite.CLIENT_SECRET,
                                                       "redirect_uris": [site.redirect_uri, b_redirect]})
    site.apache.start()

    a = site.session()
    assert login_at(site, a, site.apache.base_url, site.redirect_uri, "alice")["remote_user"] == "alice"
    b = site.session()
    echo = login_at(site, b, b_base, b_redirect, "bob")
    assert echo["remote_user"] == "bob"
    assert "b_session" in b.cookies and "bbauth_session" not in b.cookies

    # Each server's session is its own (its issuer is its redirect URI's origin): A's cookie means nothing to B.
    r = site.session().get(b_base + "/packages/echo", allow_redirects=False,
                           headers={"Cookie": f"b_session={a.cookies['bbauth_session']}"})
    assert r.status_code == 302
    # B's callback path is B's alone: A does not answer it.
    assert a.get(site.url("/b/callback?code=x&state=y"), allow_redirects=False).status_code == 404


def test_root_only_files_work(site_factory, tmp_serverroot):
    """Every file a BBAuth directive names is read at startup, as root, like mod_ssl's keys: the key file, the
    client secret and the CA file may all be readable by root alone."""
    private = tmp_serverroot / "private"
    private.mkdir(mode=0o700)
    secret_file = private / "client-secret"
    secret_file.write_text(bbsite.CLIENT_SECRET + "\n")

    def conf(s):
        for name, path in (("session.keys", s.key_file), ("ca.pem", s.pki["ca"])):
            (private / name).write_bytes(open(path, "rb").read())
        for f in private.iterdir():
            os.chmod(f, 0o600)
        return (bbsite.protected_conf(s)
                .replace(f"BBAuthClientSecret {bbsite.CLIENT_SECRET}", f"BBAuthClientSecret file:{secret_file}")
                .replace(f"BBAuthSessionKey {s.key_file}", f"BBAuthSessionKey {private / 'session.keys'}")
                .replace(f"BBAuthCAFile {s.pki['ca']}", f"BBAuthCAFile {private / 'ca.pem'}"))
    site = site_factory(conf=conf)
    s = site.session()
    site.login(s, "/packages/echo")
    assert site.echo(s)["remote_user"] == "alice"


# ---- signing keys (BBAuthSigningKey), the JWK Set handler and identity assertions

def pem_private(key, encryption=None):
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption or serialization.NoEncryption())


def signing_key_content(case):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
    if case == "encrypted":
        return pem_private(ec.generate_private_key(ec.SECP256R1()), serialization.BestAvailableEncryption(b"pw"))
    if case == "RSA":
        return pem_private(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    if case == "P-384":
        return pem_private(ec.generate_private_key(ec.SECP384R1()))
    if case == "Ed448":
        return pem_private(ed448.Ed448PrivateKey.generate())
    if case == "public only":
        return ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b"not a key\n"


@pytest.mark.parametrize("case,says", [
    ("encrypted", "the key is encrypted"), ("RSA", "of type RSA"), ("P-384", "not on curve P-256"),
    ("Ed448", "of type ED448"), ("public only", "only a public key"), ("garbage", "no PEM private key found"),
])
def test_unusable_signing_key(site, case, says):
    path = key_file_with(site, "signing.pem", signing_key_content(case), mode=0o600)
    text = server_lines(site, BBAuthSigningKey=path) + PROTECTED
    out = assert_refused(site, text, "BBAuthSigningKey", line_of(text, "BBAuthSigningKey"))
    assert path in out and says in out, out


def good_signing_keys(site):
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    return (key_file_with(site, "es256.pem", pem_private(ec.generate_private_key(ec.SECP256R1())), mode=0o600),
            key_file_with(site, "eddsa.pem", pem_private(ed25519.Ed25519PrivateKey.generate()), mode=0o600))


def test_signing_keys_that_are_fine(site):
    """Two keys (root-only files), assertions in a <Location> and the virtual host, the JWK Set handler."""
    es256, eddsa = good_signing_keys(site)
    assert_passes(site, server_lines(site) + f"BBAuthSigningKey {es256}\nBBAuthSigningKey {eddsa}\n" + PROTECTED
                  + """<Location /packages>
    BBAuthIdentityAssertion On
</Location>
<Location /jwks>
    SetHandler bbauth-jwks
</Location>
BBAuthIdentityAssertion Off
""")


def test_same_signing_key_twice(site):
    es256, _ = good_signing_keys(site)
    text = server_lines(site) + f"BBAuthSigningKey {es256}\nBBAuthSigningKey {es256}\n" + PROTECTED
    out = assert_refused(site, text, "BBAuthSigningKey", line_of(text, "BBAuthSigningKey") + 1)
    assert "the same key is given twice" in out


@pytest.mark.parametrize("use", ["SetHandler bbauth-jwks", "BBAuthIdentityAssertion On"])
def test_uses_without_a_signing_key(site, use):
    text = server_lines(site) + PROTECTED + f"<Location /x>\n    {use}\n</Location>\n"
    out = assert_refused(site, text, "BBAuthSigningKey", line_of(text, use))
    assert use.split()[0] in out


@pytest.mark.parametrize("section", ["<Directory /tmp>", "<LocationMatch ^/x>", "<Location ~ ^/x>"])
def test_assertion_outside_a_location_path(site, section):
    es256, _ = good_signing_keys(site)
    end = "</" + section[1:].split()[0] + ">"
    text = (server_lines(site) + f"BBAuthSigningKey {es256}\n" + PROTECTED
            + f"{section}\n    BBAuthIdentityAssertion On\n{end}\n")
    assert_refused(site, text, "BBAuthIdentityAssertion", line_of(text, "BBAuthIdentityAssertion"))


@pytest.mark.parametrize("option", ["--signing", "--signing-ed25519"])
def test_keygen_signing_key_is_private_and_accepted(site, option):
    keygen = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "build", "bbauth-keygen")
    directory = site.apache.root.parent / f"keys{option}"
    p = subprocess.run([keygen, option, str(directory)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    path = re.search(r"^  BBAuthSigningKey (\S+)$", p.stdout, re.M).group(1)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert_passes(site, server_lines(site, BBAuthSigningKey=path) + PROTECTED)
