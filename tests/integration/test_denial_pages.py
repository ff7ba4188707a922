"""Issue 16: denials that explain. A logged-in browser refused by a Require bitbucket-repo/-project/-group line
gets a page that says what access is missing, links to it in Bitbucket and to the account page, and offers "check
again" (which drops exactly that remembered answer, at most once a minute); a command-line client gets the same
sentence as text/plain, with 403 for a valid token without the permission and 401 + Basic for a missing or
refused one; anonymous clients are told nothing; the admin's ErrorDocument wins."""

import html
import re

import pytest

import bbsite

ALICE = "BBDC-alicePersonalReadToken0000000000000000001"
UNKNOWN = "BBDC-thisTokenWasNeverIssued00000000000000099"
SENTENCE = {
    "repo": "read access to repository SEC/vault in Bitbucket",
    "project": "access to project INTERNAL in Bitbucket",
    "group": "membership of the Bitbucket group qa",
}
REQUIRE = {"repo": "bitbucket-repo SEC/vault", "project": "bitbucket-project INTERNAL", "group": "bitbucket-group qa"}


def location(path, require, forbidden=True, extra=""):
    return f"""ScriptAlias {path}/echo @ECHO@
<Location {path}>
    AuthType Bitbucket
    AuthName "Package mirror"
    BBAuthTokenAuth On
    AuthzSendForbiddenOnFailure {"On" if forbidden else "Off"}
    Require {require}
{extra}</Location>
"""


def denial_conf(site):
    conf = bbsite.protected_conf(site) + """<Location /account>
    SetHandler bbauth-account
</Location>
"""
    for kind, require in REQUIRE.items():
        conf += location(f"/{kind}", require) + location(f"/{kind}-401", require, forbidden=False)
    conf += location("/documented", REQUIRE["repo"], extra='    ErrorDocument 403 "Ask the mirror team."\n')
    conf += location("/documented-401", REQUIRE["repo"], forbidden=False,
                     extra='    ErrorDocument 401 "Log in at the mirror team."\n')
    return conf


@pytest.fixture(scope="module")
def site(module_site_factory):
    return module_site_factory(conf=denial_conf)


@pytest.fixture(scope="module")
def alice(site):
    s = site.session()
    site.login(s, "/packages/", user="alice")
    return s


def get(site, s, path, **headers):
    return s.get(site.url(path), headers=headers, allow_redirects=False)


def token_get(site, path, token):
    s = site.session()
    s.headers["Accept"] = "*/*"
    return get(site, s, path, Authorization=f"Bearer {token}")


@pytest.mark.parametrize("kind", sorted(REQUIRE))
@pytest.mark.parametrize("forbidden", [True, False], ids=["403", "401"])
def test_a_browser_is_told_what_is_missing(site, alice, kind, forbidden):
    r = get(site, alice, f"/{kind}/echo" if forbidden else f"/{kind}-401/echo")
    assert r.status_code == (403 if forbidden else 401)
    if not forbidden:
        assert r.headers["WWW-Authenticate"] == 'Basic realm="Package mirror"'   # BBAuthTokenAuth On
    assert r.headers["Content-Type"].startswith("text/html")
    assert "form-action 'self'" in r.headers["Content-Security-Policy"]
    reason = html.unescape(re.search(r'<p id="reason">(.*?)</p>', r.text, re.S).group(1))
    assert reason == f"You are logged in as <b>alice</b>, but you need {SENTENCE[kind]}."
    links = {"repo": f"{site.fb.base_url}/projects/SEC/repos/vault",
             "project": f"{site.fb.base_url}/projects/INTERNAL"}
    if kind in links:
        assert f'<a id="bitbucket-link" href="{links[kind]}">' in r.text
    else:
        assert "bitbucket-link" not in r.text
    assert '<a id="account" href="/account">' in r.text
    assert f'name="question" value="{REQUIRE[kind]}"' in r.text
    assert '<form method="post" action="/account" id="recheck">' in r.text


@pytest.mark.parametrize("kind", ["repo", "project"])
@pytest.mark.parametrize("forbidden", [True, False], ids=["on", "off"])
def test_a_valid_token_without_the_permission_gets_403_and_the_sentence(site, kind, forbidden):
    r = token_get(site, f"/{kind}/echo" if forbidden else f"/{kind}-401/echo", ALICE)
    assert r.status_code == 403
    assert "WWW-Authenticate" not in r.headers
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text.startswith(f"Access denied: alice is authenticated, but needs {SENTENCE[kind]}.")
    assert site.fb.base_url + ("/projects/SEC/repos/vault" if kind == "repo" else "/projects/INTERNAL") in r.text
    assert ALICE not in r.text


@pytest.mark.parametrize("token", [None, UNKNOWN], ids=["missing", "refused"])
def test_a_missing_or_refused_token_gets_401_basic_and_no_repository_name(site, token):
    s = site.session()
    s.headers["Accept"] = "*/*"
    r = get(site, s, "/repo/echo", **({"Authorization": f"Bearer {token}"} if token else {}))
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="Package mirror"'
    assert "SEC" not in r.text and "vault" not in r.text


def test_an_anonymous_browser_is_told_nothing(site):
    r = get(site, site.session(), "/repo/echo")
    assert r.status_code == 302 and r.headers["Location"].startswith(site.fb.base_url)
    assert "SEC" not in r.text and "vault" not in r.text


def test_the_admins_error_document_wins(site, alice):
    r = get(site, alice, "/documented/echo")
    assert r.status_code == 403
    assert "Ask the mirror team." in r.text and "vault" not in r.text
    r = token_get(site, "/documented/echo", ALICE)
    assert r.status_code == 403 and "Ask the mirror team." in r.text
    # Where the admin documented httpd's 401, the denied token keeps it, with the admin's text.
    r = token_get(site, "/documented-401/echo", ALICE)
    assert r.status_code == 401 and "Log in at the mirror team." in r.text and "vault" not in r.text


def recheck(site, s, page):
    data = {k: html.unescape(v) for k, v in re.findall(r'name="(action|form|question|return)" value="([^"]*)"', page)}
    return s.post(site.url("/account"), data=data, headers={"Origin": site.apache.base_url}, allow_redirects=False)


def test_check_again_drops_exactly_that_answer_once_a_minute(site_factory):
    site = site_factory(conf=denial_conf)
    s = site.session()
    site.login(s, "/packages/", user="jane@example.com")
    vault = get(site, s, "/repo/echo")
    assert vault.status_code == 403
    assert get(site, s, "/project/echo").status_code == 403
    # Access is granted in Bitbucket; the remembered "no" still answers, without asking Bitbucket.
    site.fb.control("POST", "/_fake/projects/SEC/repos/vault/permissions",
                    {"user": "jane@example.com", "permission": "REPO_READ"})
    asked = dict(site.fb.calls())
    assert get(site, s, "/repo/echo").status_code == 403
    assert get(site, s, "/project/echo").status_code == 403
    assert site.fb.calls() == asked
    r = recheck(site, s, vault.text)
    assert r.status_code == 302 and r.headers["Location"] == "/repo/echo"
    assert get(site, s, "/repo/echo").status_code == 200
    assert site.fb.calls().get("repo", 0) == asked.get("repo", 0) + 1
    # Only that answer was dropped: the project's "no" is still the remembered one (Bitbucket is not asked).
    assert get(site, s, "/project/echo").status_code == 403
    assert site.fb.calls().get("project", 0) == asked.get("project", 0)
    # At most once a minute.
    r = recheck(site, s, vault.text)
    assert r.status_code == 429
    site.apache.wait_for_log(r"jane@example.com asked Bitbucket again: bitbucket-repo SEC/vault")


@pytest.mark.parametrize("case", ["no-origin", "other-user-form", "unknown-question", "hostile-return"])
def test_check_again_refuses_what_it_must(site, alice, case):
    page = get(site, alice, "/group/echo").text
    data = {k: html.unescape(v) for k, v in re.findall(r'name="(action|form|question|return)" value="([^"]*)"', page)}
    headers = {"Origin": site.apache.base_url}
    expected = {"no-origin": 403, "other-user-form": 403, "unknown-question": 400, "hostile-return": 302}[case]
    if case == "no-origin":
        headers = {}
    elif case == "other-user-form":
        bob = site.session()
        site.login(bob, "/packages/", user="bob")
        r = bob.post(site.url("/account"), data=data, headers=headers, allow_redirects=False)
        assert r.status_code == expected
        return
    elif case == "unknown-question":
        data["question"] = "bitbucket-admin everything"
    else:
        data["question"] = "bitbucket-group developers"  # a question of its own: no rate limit shared
        data["return"] = "//evil.example/"
    r = alice.post(site.url("/account"), data=data, headers=headers, allow_redirects=False)
    assert r.status_code == expected
    if case == "hostile-return":
        assert r.headers["Location"] == "/"


@pytest.fixture(scope="module")
def unstarted(module_site_factory):
    return module_site_factory(start=False)


@pytest.mark.parametrize("require,message", [
    ("bitbucket-repo PROJ", "Require bitbucket-repo wants PROJECT/repository, e.g. PROJ/my-repo"),
    ("bitbucket-repo PROJ/a/b", "Require bitbucket-repo wants PROJECT/repository"),
    ("bitbucket-project A/b", "Require bitbucket-project wants a project key, e.g. PROJ"),
    ("bitbucket-repo A/b c", "Require bitbucket-repo takes exactly one PROJECT/repository"),
    ("bitbucket-group", "Require bitbucket-group takes exactly one group"),
], ids=["repo-without-slash", "repo-two-slashes", "project-with-slash", "two-words", "none"])
def test_apachectl_refuses_a_require_line_it_could_not_name(unstarted, require, message):
    """The text of a Require line is what a denial names and "check again" reads back: one parser for both."""
    text = bbsite.server_conf(unstarted) + f"<Location /x>\n  AuthType Bitbucket\n  Require {require}\n</Location>\n"
    rc, out = unstarted.apache.configtest(text)
    assert rc != 0 and message in out, out
