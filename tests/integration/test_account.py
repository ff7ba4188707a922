"""Issue 16: the account page (SetHandler bbauth-account): who you are, when the session ends, a log-out button
with a CSRF defence, the link to your Bitbucket token page, each package client's lines for this mirror
(BBAuthClientSetup) with a <token> placeholder, and the token check (form and curl). The site is the demo's
(build/demo.py), so the snippets checked here are the ones `make demo` shows."""

import html
import re
import sys
from pathlib import Path

import pytest

import bbsite

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "build"))
import demo  # noqa: E402

ALICE = "BBDC-alicePersonalReadToken0000000000000000001"
REVOKED = "BBDC-alicePersonalRevokedToken0000000000000004"
JUNK = "not-a-token-at-all"
HOSTILE_NAME = "<script>alert(1)</script> & \"Mallory\" 'O'"


@pytest.fixture(scope="module")
def mirror(module_site_factory):
    site = module_site_factory(conf=demo.demo_conf, start=False, cgi=True)
    demo.write_site_content(site.apache)
    site.apache.start()
    return site


def logged_in(site, user="alice"):
    s = site.session()
    site.login(s, "/account", user=user)
    return s


def account_page(site, s):
    r = s.get(site.url("/account"), allow_redirects=False)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r


def snippets(page):
    """client -> (where, text) as the page shows them, unescaped."""
    found = {}
    for m in re.finditer(r'<section class="client" id="client-\d+" data-client="([a-z]+)">.*?'
                         r'<span class="where">(.*?)</span>.*?<pre class="snippet">(.*?)</pre>', page, re.S):
        found.setdefault(m.group(1), (html.unescape(m.group(2)), html.unescape(m.group(3))))
    return found


def form_token(page):
    return re.search(r'name="form" value="([^"]+)"', page).group(1)


def post(site, s, data, origin=True):
    headers = {"Origin": site.apache.base_url} if origin else {}
    return s.post(site.url("/account"), data=data, headers=headers, allow_redirects=False)


def test_alice_sees_who_she_is_and_her_token_page(mirror):
    s = logged_in(mirror)
    r = account_page(mirror, s)
    page = r.text
    assert '<dd id="display-name">Alice Liddell</dd>' in page
    assert '<dd id="username">alice</dd>' in page
    assert '<dd id="slug">alice</dd>' in page
    assert f'href="{mirror.fb.base_url}/plugins/servlet/access-tokens/users/alice/manage"' in page
    assert "Project read" in page and "Repository read" in page
    assert re.search(r'id="session-end">Your session here ends at <b>\d{4}-\d\d-\d\d \d\d:\d\d UTC</b>', page)
    assert "no-store" in r.headers["Cache-Control"]
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "form-action 'self'" in csp


def test_jane_gets_the_link_of_her_slug_and_an_encoded_name(mirror):
    s = logged_in(mirror, "jane@example.com")
    page = account_page(mirror, s).text
    assert '<dd id="username">jane@example.com</dd>' in page
    assert '<dd id="slug">jane_example.com</dd>' in page
    assert f'href="{mirror.fb.base_url}/plugins/servlet/access-tokens/users/jane_example.com/manage"' in page
    pip_where, pip_text = snippets(page)["pip"]
    assert f"index-url = http://jane%40example.com:<token>@127.0.0.1:{mirror.apache.port}/packages/simple/" in pip_text
    assert "'jane@example.com'" in snippets(page)["composer"][1]


def test_every_declared_client_has_its_lines_for_this_mirror(mirror):
    page = account_page(mirror, logged_in(mirror)).text
    shown = snippets(page)
    assert sorted(shown) == sorted({client for client, _ in demo.CLIENT_PATHS})
    for client, path in demo.CLIENT_PATHS:
        where, text = shown[client]
        assert "<token>" in text, client
        assert f"127.0.0.1:{mirror.apache.port}" in text, client
        assert path in text, client
    assert shown["npm"][1] == (f"registry={mirror.url('/packages/npm/')}\n"
                               f"//127.0.0.1:{mirror.apache.port}/packages/npm/:_authToken=<token>\n")
    # The placeholder is escaped in the HTML: never a tag.
    assert "&lt;token&gt;" in page


def test_a_hostile_display_name_is_escaped(mirror):
    mirror.fb.control("POST", "/_fake/users", {"name": "mallory", "id": 666, "slug": "mallory",
                                               "displayName": HOSTILE_NAME, "emailAddress": "m@example.com",
                                               "password": "mallory-password", "groups": ["stash-users"]})
    page = account_page(mirror, logged_in(mirror, "mallory")).text
    assert "<script>alert" not in page
    shown = re.search(r'<dd id="display-name">(.*?)</dd>', page).group(1)
    assert "<" not in shown and '"' not in shown   # attributes are double-quoted: ' may stay
    assert html.unescape(shown) == HOSTILE_NAME


def test_no_secret_is_on_the_page(mirror):
    s = logged_in(mirror)
    page = account_page(mirror, s).text
    for secret in bbsite.fake_secrets(mirror.fb) + [bbsite.CLIENT_SECRET, s.cookies.get("bbauth_demo")]:
        assert secret not in page


def test_the_copy_script_is_served_by_the_module(mirror):
    s = logged_in(mirror)
    assert '<script src="/account?copy.js" defer></script>' in account_page(mirror, s).text
    r = s.get(mirror.url("/account?copy.js"))
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/javascript")
    assert "navigator.clipboard" in r.text


def test_anonymous_get_logs_in_and_post_is_refused(mirror):
    s = mirror.session()
    r = s.get(mirror.url("/account"), allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith(mirror.fb.base_url)
    r = s.post(mirror.url("/account"), data={"action": "logout"}, headers={"Origin": mirror.apache.base_url},
               allow_redirects=False)
    assert r.status_code == 401


@pytest.mark.parametrize("case", ["no-origin", "other-origin", "cross-site-fetch", "wrong-form-token",
                                  "no-form-token"])
def test_log_out_refuses_a_forged_post(mirror, case):
    s = logged_in(mirror)
    token = form_token(account_page(mirror, s).text)
    data = {"action": "logout", "form": token}
    headers = {"Origin": mirror.apache.base_url}
    if case == "no-origin":
        headers = {}
    elif case == "other-origin":
        headers = {"Origin": "https://evil.example"}
    elif case == "cross-site-fetch":
        headers["Sec-Fetch-Site"] = "cross-site"
    elif case == "wrong-form-token":
        data["form"] = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    else:
        del data["form"]
    r = s.post(mirror.url("/account"), data=data, headers=headers, allow_redirects=False)
    assert r.status_code == 403
    assert account_page(mirror, s).status_code == 200  # still logged in


def test_log_out_button_ends_the_session(mirror):
    s = logged_in(mirror)
    page = account_page(mirror, s).text
    assert re.search(r'<form method="post" action="/account" id="logout">', page)
    stolen = s.cookies.get("bbauth_demo")
    r = post(mirror, s, {"action": "logout", "form": form_token(page)})
    assert r.status_code == 302 and r.headers["Location"] == "/"
    assert bbsite.cookie_attrs(r.headers["Set-Cookie"], "bbauth_demo")["max-age"] == "0"
    # Ended on the server too: the old cookie no longer opens the page.
    thief = mirror.session()
    thief.cookies.set("bbauth_demo", stolen)
    assert thief.get(mirror.url("/account"), allow_redirects=False).status_code == 302


@pytest.mark.parametrize("token,verdict", [
    (ALICE, "Bitbucket accepts this token. It belongs to Alice Liddell (alice)."),
    (REVOKED, "Bitbucket does not accept this token"),
    (JUNK, "Bitbucket does not accept this token"),
], ids=["good", "revoked", "junk"])
def test_check_a_token_in_the_form(mirror, token, verdict):
    s = logged_in(mirror)
    r = post(mirror, s, {"action": "check-token", "form": form_token(account_page(mirror, s).text), "token": token})
    assert r.status_code == 200
    assert verdict in html.unescape(r.text)
    if token == ALICE:
        for _, path in demo.CLIENT_PATHS:
            assert f"{mirror.url(path)}: allowed" in r.text
    assert token not in r.text
    assert token not in mirror.apache.error_log()


@pytest.mark.parametrize("token,verdict", [
    (ALICE, "Bitbucket accepts this token. It belongs to Alice Liddell (alice)."),
    (REVOKED, "Bitbucket does not accept this token"),
], ids=["good", "revoked"])
def test_check_a_token_with_curl(mirror, token, verdict):
    page = account_page(mirror, logged_in(mirror)).text
    curl = html.unescape(re.search(r'<pre class="snippet" id="check-curl">(.*?)</pre>', page, re.S).group(1))
    assert curl == f"curl -sS -H 'Authorization: Bearer <token>' '{mirror.url('/account?check-token')}'"
    s = mirror.session()
    r = s.get(mirror.url("/account?check-token"), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    assert r.text.startswith(verdict)
    assert token not in r.text


def test_check_with_curl_without_a_token(mirror):
    r = mirror.session().get(mirror.url("/account?check-token"))
    assert r.status_code == 400 and "Authorization: Bearer <token>" in r.text


# ---- BBAuthClientSetup: apachectl -t refuses what it cannot show

@pytest.fixture(scope="module")
def unstarted(module_site_factory):
    return module_site_factory(start=False)


@pytest.mark.parametrize("line,message", [
    ("BBAuthClientSetup maven https://m.example/repo/", "unknown client 'maven'"),
    ("BBAuthClientSetup npm /packages/npm/", "absolute URL"),
    ("BBAuthClientSetup npm ftp://m.example/npm/", "https://"),
    ("BBAuthClientSetup pip https://ci:secret@m.example/simple/", "user:password@"),
    ("BBAuthClientSetup pip https://m.example/simple/?x=1", "a query or a fragment"),
    ("BBAuthClientSetup npm", "takes two arguments"),
], ids=["unknown-client", "relative", "ftp", "userinfo", "query", "one-argument"])
def test_apachectl_refuses_a_bad_client_setup(unstarted, line, message):
    text = bbsite.server_conf(unstarted) + line + "\n"
    rc, out = unstarted.apache.configtest(text)
    assert rc != 0, out
    assert "BBAuthClientSetup" in out and message in out, out
    assert f"line {text.lstrip().splitlines().index(line) + 1} of {unstarted.apache.extra_conf_path}" in out, out
    assert "ci:secret" not in out and bbsite.CLIENT_SECRET not in out


def test_apachectl_takes_every_known_client(unstarted):
    text = bbsite.server_conf(unstarted) + "".join(
        f"BBAuthClientSetup {client} https://mirror.example.com{path}\n" for client, path in demo.CLIENT_PATHS)
    rc, out = unstarted.apache.configtest(text)
    assert rc == 0, out


# ---- what the page refuses

@pytest.mark.parametrize("case", ["put", "too-long", "not-a-form", "unknown-action", "check-without-token"])
def test_bad_requests_get_a_clear_4xx(mirror, case):
    s = logged_in(mirror)
    form = {"action": "check-token", "form": form_token(account_page(mirror, s).text)}
    headers = {"Origin": mirror.apache.base_url}
    if case == "put":
        r = s.put(mirror.url("/account"), data=form, headers=headers, allow_redirects=False)
        assert r.status_code == 405 and "POST" in r.headers["Allow"]
        return
    if case == "too-long":
        form["token"] = "A" * 5000
    elif case == "not-a-form":
        r = s.post(mirror.url("/account"), json=form, headers=headers, allow_redirects=False)
        assert r.status_code == 400
        return
    elif case == "unknown-action":
        form["action"] = "<script>delete-everything</script>"
    r = post(mirror, s, form)
    assert r.status_code == 400
    assert "<script>" not in r.text
    assert account_page(mirror, s).status_code == 200


def test_the_modules_own_pages_link_to_the_account_page(mirror):
    r = mirror.session().get(mirror.url("/bbauth/callback?code=made-up&state=made-up"), allow_redirects=False)
    assert r.status_code == 400
    assert '<a href="/account">Your account</a>' in r.text
