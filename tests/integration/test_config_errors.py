"""Issue 2: `apachectl -t` refuses a configuration mod_bbauth cannot work with, naming the directive, the file and
the line; a good one passes, and secrets given as file: or env: work."""

import os
import re

import pytest

import bbsite


def configtest(site, text):
    rc, out = site.apache.configtest(text)
    return rc, out


def server_lines(site, drop=None, **replace):
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


PROTECTED = """<Location /packages>
    AuthType Bitbucket
    Require valid-user
</Location>
"""


@pytest.fixture
def site(site_factory):
    return site_factory(start=False)


def assert_refused(rc, out, directive, line=None):
    assert rc != 0, out
    assert directive in out, out
    assert "extra.conf" in out, out
    if line is not None:
        assert re.search(rf"line {line}\b", out), out


@pytest.mark.parametrize("directive", ["BBAuthBitbucketURL", "BBAuthClientID", "BBAuthClientSecret",
                                       "BBAuthRedirectURI", "BBAuthSessionKey"])
def test_protected_location_without_a_server_setting(site, directive):
    text = server_lines(site, drop=directive) + PROTECTED
    rc, out = configtest(site, text)
    assert_refused(rc, out, directive, line=text.splitlines().index("    AuthType Bitbucket") + 1)


def test_login_handler_without_settings_is_refused(site):
    rc, out = configtest(site, "<Location /login>\n    SetHandler bbauth-login\n</Location>\n")
    assert_refused(rc, out, "BBAuthBitbucketURL")


def key_file_with(site, name, content, mode=0o640):
    path = site.apache.root.parent / name
    path.write_bytes(content)
    os.chmod(path, mode)
    return str(path)


@pytest.mark.parametrize("case,content", [
    ("short", b"00112233445566778899aabbccddeeff\n"),               # 16 bytes
    ("odd-length hex", b"a" * 63 + b"\n"),
    ("bad base64", b"!!!!" * 12 + b"\n"),
    ("empty", b"# only a comment\n"),
])
def test_bad_key_file(site, case, content):
    path = key_file_with(site, "bad.keys", content)
    rc, out = configtest(site, server_lines(site, BBAuthSessionKey=path) + PROTECTED)
    assert_refused(rc, out, "BBAuthSessionKey", line=5)


def test_missing_key_file(site):
    rc, out = configtest(site, server_lines(site, BBAuthSessionKey="/nonexistent/keys") + PROTECTED)
    assert_refused(rc, out, "BBAuthSessionKey", line=5)
    assert "/nonexistent/keys" in out


def test_base64_key_file_is_accepted(site):
    import base64
    path = key_file_with(site, "b64.keys", base64.b64encode(os.urandom(48)) + b"\n")
    rc, out = configtest(site, server_lines(site, BBAuthSessionKey=path) + PROTECTED)
    assert rc == 0, out


@pytest.mark.parametrize("directive,value", [
    ("BBAuthBitbucketURL", "ftp://bitbucket.example.com"),
    ("BBAuthBitbucketURL", "http://bitbucket.example.com"),
    ("BBAuthBitbucketURL", "https://bitbucket.example.com/?x=1"),
    ("BBAuthBitbucketURL", "bitbucket.example.com"),
    ("BBAuthBitbucketURL", "https://"),
    ("BBAuthRedirectURI", "/bbauth/callback"),
    ("BBAuthRedirectURI", "https://mirror.example.com/cb#frag"),
    ("BBAuthRedirectURI", "https://mirror.example.com/cb?x=1"),
    ("BBAuthClientSecret", "file:/nonexistent/secret"),
    ("BBAuthClientSecret", "env:BBAUTH_TEST_UNSET_VARIABLE"),
    ("BBAuthCAFile", "/nonexistent/ca.pem"),
])
def test_malformed_values(site, directive, value):
    text = server_lines(site, **{directive: value}) + PROTECTED
    rc, out = configtest(site, text)
    line = [i + 1 for i, l in enumerate(text.splitlines()) if l.startswith(directive + " ")][0]
    assert_refused(rc, out, directive, line=line)
    assert "CLIENT_SECRET" not in out and bbsite.CLIENT_SECRET not in out


@pytest.mark.parametrize("line", [
    "BBAuthSessionMaxAge -1", "BBAuthSessionMaxAge abc", "BBAuthSessionIdleTimeout 1.5", "BBAuthTimeout 0",
    "BBAuthCookieSameSite Foo", "BBAuthOAuthVersion 3", "BBAuthCache nosuchprovider", "BBAuthCookieName a;b",
    "BBAuthScope REPO_READ;", "<Location /x>\nBBAuthUnauthAction foo\n</Location>",
    "<Location /x>\nBBAuthHeaderPrefix X Y\n</Location>",
])
def test_bad_directive_values(site, line):
    text = server_lines(site) + line + "\n" + PROTECTED
    rc, out = configtest(site, text)
    directive = line.split()[0] if not line.startswith("<") else line.splitlines()[1].split()[0]
    assert_refused(rc, out, directive)


def test_good_configuration_passes(site):
    rc, out = configtest(site, server_lines(site) + PROTECTED + "BBAuthSessionMaxAge 600\nBBAuthCookieSameSite Strict\n")
    assert rc == 0, out
    assert "Syntax OK" in out


def test_secrets_from_file_and_env_work(site_factory, tmp_serverroot):
    secret_file = tmp_serverroot / "client-secret"
    secret_file.write_text(bbsite.CLIENT_SECRET + "\n")
    os.chmod(secret_file, 0o600)

    def with_file(s):
        return bbsite.protected_conf(s).replace(f"BBAuthClientSecret {bbsite.CLIENT_SECRET}",
                                                f"BBAuthClientSecret file:{secret_file}")
    site = site_factory(conf=with_file)
    s = site.session()
    site.login(s, "/packages/echo")
    assert site.echo(s)["remote_user"] == "alice"

    site.apache.stop()  # the environment is the parent process's: a restart would keep the old one
    site.apache.env["BBAUTH_CLIENT_SECRET"] = bbsite.CLIENT_SECRET
    site.apache.extra_conf = lambda _a: bbsite.protected_conf(site).replace(
        f"BBAuthClientSecret {bbsite.CLIENT_SECRET}", "BBAuthClientSecret env:BBAUTH_CLIENT_SECRET")
    site.apache.start()
    s = site.session()
    site.login(s, "/packages/echo", user="bob")
    assert site.echo(s)["remote_user"] == "bob"


def test_virtual_host_inherits_server_settings(site_factory):
    def conf(s):
        return bbsite.server_conf(s) + f"""
ScriptAlias /packages/echo @ECHO@
<VirtualHost 127.0.0.1:@PORT@>
    ServerName vhost.test
    <Location /packages>
        AuthType Bitbucket
        Require valid-user
    </Location>
</VirtualHost>
"""
    site = site_factory(conf=conf)
    s = site.session()
    site.login(s, "/packages/echo")
    assert site.echo(s)["remote_user"] == "alice"
