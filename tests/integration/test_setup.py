"""Issue 3: the admin's setup helpers: the bbauth-setup page (what Bitbucket's forms ask for OAuth 2 and OAuth 1,
a live check, never a secret) and build/bbauth-keygen (a key pair whose printed public key Bitbucket takes)."""

import base64
import hashlib
import html
import os
import re
import stat
import subprocess

import pytest

from cryptography.hazmat.primitives import serialization

import bbsite
import testca
from oauth1site import CONSUMER_KEY, make_oauth1_site, oauth1_conf

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYGEN = os.path.join(REPO, "build", "bbauth-keygen")

SETUP = """
<Location /setup>
    SetHandler bbauth-setup
    AuthType Bitbucket
    Require bitbucket-user admin
</Location>
"""


def with_setup(conf):
    return lambda site: conf(site) + SETUP


def press_test_button(site, s, **kw):
    """The page's "Test the connection" button: a POST from the page itself (issue 19: a GET calls no one)."""
    return s.post(site.url("/setup"), headers={"Origin": site.apache.base_url}, allow_redirects=False, **kw)


def setup_page(site):
    s = site.session()
    site.login(s, "/setup", user="admin")
    r = press_test_button(site, s)
    assert r.status_code == 200, r.text[:300]
    return r


ADMIN_PASSWORD = "setup-admin-password"


def basic_auth_setup(tmp_serverroot):
    """The setup page behind httpd's own Basic authentication: for a Bitbucket the admin cannot log in with."""
    path = tmp_serverroot / "setup.htpasswd"
    digest = base64.b64encode(hashlib.sha1(ADMIN_PASSWORD.encode()).digest()).decode()
    path.write_text(f"admin:{{SHA}}{digest}\n")
    os.chmod(path, 0o644)
    return SETUP.replace("AuthType Bitbucket\n    Require bitbucket-user admin",
                         f"AuthType Basic\n    AuthName setup\n    AuthBasicProvider file\n    AuthUserFile {path}\n"
                         "    Require valid-user")


def by_id(page, element_id):
    m = re.search(rf'id="{element_id}">(.*?)</', page, re.S)
    return html.unescape(m.group(1)) if m else None


def checks(page):
    """[(ok?, what, detail)] of the live-check table."""
    rows = re.findall(r'<tr class="(ok|failed)"><td>(.*?)</td><td>.*?</td><td>.*?</td><td>(.*?)</td></tr>', page)
    return [(cls == "ok", html.unescape(what), html.unescape(detail)) for cls, what, detail in rows]


def private_key_body(path):
    with open(path) as f:
        return [line for line in f.read().splitlines() if line and not line.startswith("-----")]


def assert_safe_page(r):
    assert r.headers["Cache-Control"] == "private, no-store"   # an admin's page (issue 19: private)
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert bbsite.CLIENT_SECRET not in r.text
    assert "PRIVATE KEY" not in r.text


# ---- the setup page ----

def test_oauth2_page_shows_redirect_url_permission_and_client_id(site_factory):
    site = site_factory(conf=with_setup(bbsite.protected_conf))
    r = setup_page(site)
    assert_safe_page(r)
    assert by_id(r.text, "redirect-url") == site.redirect_uri
    assert by_id(r.text, "client-id") == bbsite.CLIENT_ID
    assert "External application" in r.text and "Incoming" in r.text
    assert re.findall(r'class="permission"><b>(.*?)</b> \((\w+)\)', r.text) == [("Repositories: Read", "REPO_READ")]
    rows = checks(r.text)
    assert [what for _, what, _ in rows] == ["Bitbucket base URL over verified TLS", "OAuth 2 authorize endpoint",
                                             "OAuth 2 token endpoint"]
    assert all(ok for ok, _, _ in rows), rows
    assert "Bitbucket 8.19.1" in rows[0][2]
    assert 'id="public-key"' not in r.text  # OAuth 1 only


def test_oauth2_page_lists_every_configured_permission(site_factory):
    site = site_factory(conf=with_setup(lambda s: bbsite.protected_conf(s) + "BBAuthScope REPO_WRITE REPO_ADMIN\n"))
    r = setup_page(site)
    assert re.findall(r'class="permission"><b>(.*?)</b>', r.text) == ["Repositories: Write", "Repositories: Admin"]


def test_oauth1_page_shows_link_type_consumer_key_public_key_and_empty_callback(site_factory, tmp_serverroot):
    site = make_oauth1_site(site_factory, tmp_serverroot, conf=with_setup(oauth1_conf))
    r = setup_page(site)
    assert_safe_page(r)
    assert by_id(r.text, "link-type") == "Atlassian product"
    assert "Generic Application" in r.text and "Incoming Authentication" in r.text
    assert by_id(r.text, "consumer-key") == CONSUMER_KEY
    assert by_id(r.text, "application-url") == site.apache.base_url
    with open(site.oauth1_public_key) as f:
        assert by_id(r.text, "public-key") == f.read()  # the whole PEM, exactly as Bitbucket's form takes it
    assert "Consumer Callback URL: <b>leave empty</b>" in r.text
    for line in private_key_body(site.oauth1_key):
        assert line not in r.text
    rows = checks(r.text)
    assert len(rows) == 5 and all(ok for ok, _, _ in rows), rows
    assert "Consumer Key" in rows[-1][1] and "matches BBAuthOAuth1PrivateKey" in rows[-1][2]
    assert "prefer them" in by_id(r.text, "advice")  # the fake is Bitbucket 8.19: OAuth 2 is there


def test_oauth1_page_says_when_the_link_has_another_public_key(site_factory, tmp_serverroot):
    other = testca.make_rsa_keypair(str(tmp_serverroot / "other"), "other")[1]
    site = make_oauth1_site(site_factory, tmp_serverroot, conf=with_setup(oauth1_conf), public_key=other,
                            modules=("authn_file",))
    s = site.session()
    r = s.get(site.url("/setup"), allow_redirects=False)
    assert r.status_code == 502  # the admin cannot even log in with these keys ...
    site.apache.restart(extra_conf=oauth1_conf(site) + basic_auth_setup(tmp_serverroot))
    r = press_test_button(site, s, auth=("admin", ADMIN_PASSWORD))  # ... but the page tells why
    rows = checks(r.text)
    assert [ok for ok, _, _ in rows] == [True, True, True, True, False], rows
    assert "oauth_problem=signature_invalid" in rows[-1][2]
    assert "does not match BBAuthOAuth1PrivateKey" in rows[-1][2]


def test_page_reports_missing_oauth2_endpoints(site_factory):
    site = site_factory(conf=with_setup(bbsite.protected_conf))
    s = site.session()
    site.login(s, "/setup", user="admin")
    for endpoint in ("authorize", "token"):
        site.fb.set_mode(endpoint, "status:404")
    rows = checks(press_test_button(site, s).text)
    assert rows[0][0] and not rows[1][0] and not rows[2][0], rows
    assert "7.21" in rows[1][2] and "BBAuthOAuthVersion 1" in rows[1][2]


def test_page_reports_an_untrusted_certificate(site_factory, tmp_serverroot):
    other = testca.make_untrusted_ca_and_cert(str(tmp_serverroot / "untrusted"))
    os.chmod(tmp_serverroot / "untrusted", 0o755)
    os.chmod(other["ca"], 0o644)

    def conf(site):
        return bbsite.protected_conf(site).replace(f"BBAuthCAFile {site.pki['ca']}", f"BBAuthCAFile {other['ca']}") \
            + basic_auth_setup(tmp_serverroot)
    site = site_factory(conf=conf, modules=("authn_file",))
    r = press_test_button(site, site.session(), auth=("admin", ADMIN_PASSWORD))
    rows = checks(r.text)
    assert rows and not any(ok for ok, _, _ in rows), rows
    assert "certificate" in rows[0][2].lower()
    assert not site.fb.calls()  # nothing got past the TLS handshake


def test_head_runs_no_check_and_other_methods_are_refused(site_factory):
    site = site_factory(conf=with_setup(bbsite.protected_conf))
    s = site.session()
    site.login(s, "/setup", user="admin")
    site.fb.control("POST", "/_fake/calls/reset")
    r = s.head(site.url("/setup"))
    assert r.status_code == 200 and r.headers["Cache-Control"] == "private, no-store"
    assert not site.fb.calls()
    assert s.put(site.url("/setup"), allow_redirects=False).status_code == 405


def test_get_and_cross_site_post_call_no_one(site_factory):
    """Issue 19: Bitbucket is called only when the admin presses the button: a GET shows it, and a POST another
    site made the admin's browser send shows the page without calling."""
    site = site_factory(conf=with_setup(bbsite.protected_conf))
    s = site.session()
    site.login(s, "/setup", user="admin")
    site.fb.control("POST", "/_fake/calls/reset")
    r = s.get(site.url("/setup"), allow_redirects=False)
    assert r.status_code == 200 and 'id="test" method="post" action="/setup"' in r.text
    assert by_id(r.text, "client-id") == bbsite.CLIENT_ID and not checks(r.text)
    r = s.post(site.url("/setup"), headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example.test"},
               allow_redirects=False)
    assert r.status_code == 200 and not checks(r.text)
    assert not site.fb.calls()
    assert len(checks(press_test_button(site, s).text)) == 3


@pytest.mark.parametrize("protection", ["", "Require all granted\n", "AuthType Bitbucket\n    BBAuthUnauthAction pass\n"
                                        "    Require all granted\n"])
def test_unprotected_page_is_forbidden(site_factory, protection):
    """Issue 19: without a Require line that authenticates, nobody gets the settings, and Bitbucket is not called
    (GET or POST), even for a logged-in user where the location lets anyone pass."""
    site = site_factory(conf=lambda s: bbsite.protected_conf(s)
                        + f"<Location /setup>\n    SetHandler bbauth-setup\n    {protection}</Location>\n")
    s = site.session()
    site.login(s, "/packages/echo", user="admin")
    site.fb.control("POST", "/_fake/calls/reset")
    for r in (s.get(site.url("/setup"), allow_redirects=False), press_test_button(site, s),
              site.session().get(site.url("/setup"), allow_redirects=False)):
        assert r.status_code == 403, (protection, r.status_code)
        assert bbsite.CLIENT_ID not in r.text and site.fb.base_url not in r.text and "0.1" not in r.text
    assert not site.fb.calls()
    assert "answers 403: no Require line that authenticates protects it" in site.apache.error_log()


def test_setup_handler_needs_the_server_settings(site_factory):
    site = site_factory(start=False)
    rc, out = site.apache.configtest("<Location /setup>\n    SetHandler bbauth-setup\n</Location>\n")
    assert rc != 0 and "SetHandler bbauth-setup on line 2" in out and "BBAuthBitbucketURL" in out, out


# ---- bbauth-keygen ----

def run_keygen(*args):
    return subprocess.run([KEYGEN, *args], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def printed_public_key(stdout):
    m = re.search(r"-----BEGIN PUBLIC KEY-----\n.*?\n-----END PUBLIC KEY-----\n", stdout, re.S)
    assert m, stdout
    return m.group(0)


def test_keygen_makes_a_private_key_for_root_only_and_prints_the_public_key(tmp_serverroot):
    directory = tmp_serverroot / "keys"
    p = run_keygen(str(directory))
    assert p.returncode == 0, p.stderr
    key = directory / "bbauth-oauth1.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    assert private.key_size >= 2048
    derived = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert printed_public_key(p.stdout) == derived
    assert (directory / "bbauth-oauth1.pub").read_text() == derived
    assert "PRIVATE" not in p.stdout and f"BBAuthOAuth1PrivateKey {key}" in p.stdout

    again = run_keygen(str(directory))
    assert again.returncode != 0 and "--force" in again.stderr
    assert serialization.load_pem_private_key(key.read_bytes(), password=None).private_numbers() == \
        private.private_numbers()  # the key the link knows is kept


def test_the_printed_public_key_works_with_bitbucket(site_factory, tmp_serverroot):
    directory = tmp_serverroot / "keys"
    p = run_keygen(str(directory))
    assert p.returncode == 0, p.stderr
    pasted = tmp_serverroot / "pasted-into-bitbucket.pem"
    pasted.write_text(printed_public_key(p.stdout))
    site = make_oauth1_site(site_factory, tmp_serverroot, public_key=str(pasted),
                            conf=lambda s: oauth1_conf(s, private_key=directory / "bbauth-oauth1.key"))
    s = site.session()
    site.login(s, "/packages/echo", user="bob")
    assert site.echo(s)["remote_user"] == "bob"
