"""Issue 4: what a refused client gets, beyond tests/integration/test_tokens.py: a 401 from a Require line carries
a challenge (RFC 7235); project and repository tokens work as Bearer only, as at Bitbucket; a refused token is told
apart from no credentials in the 401's text."""

import base64

import pytest

import bbsite

ALICE = "BBDC-alicePersonalReadToken0000000000000000001"
UNKNOWN = "BBDC-thisTokenWasNeverIssued00000000000000099"
PROJECT_TOKEN = "BBDC-projPROJProjectReadToken00000000000000010"
REPO_TOKEN = "BBDC-repoPROJAlphaRepoWriteToken0000000000011"


def denial_conf(site):
    return bbsite.protected_conf(site) + """
ScriptAlias /mirror/echo @ECHO@
ScriptAlias /vault/echo @ECHO@
ScriptAlias /bobs/echo @ECHO@
<Location /mirror>
    AuthType Bitbucket
    AuthName "Package mirror"
    BBAuthTokenAuth On
    Require valid-user
</Location>
<Location /vault>
    AuthType Bitbucket
    AuthName "Package mirror"
    BBAuthTokenAuth On
    Require bitbucket-repo SEC/vault
</Location>
<Location /bobs>
    AuthType Bitbucket
    AuthName "Bob's corner"
    Require bitbucket-user bob
</Location>
"""


@pytest.fixture
def site(site_factory):
    return site_factory(conf=denial_conf)


def client_get(site, path, authorization=None):
    s = site.session()
    s.headers["Accept"] = "application/json"
    return s.get(site.url(path), headers={"Authorization": authorization} if authorization else {},
                 allow_redirects=False)


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_require_denial_of_a_valid_token_is_403_without_a_challenge(site):
    # Issue 16: a token Bitbucket accepts, without the permission, gets 403 even without AuthzSendForbiddenOnFailure:
    # a 401 would make pip, composer and npm ask for other credentials (tests/integration/test_denial_pages.py).
    r = client_get(site, "/vault/echo", f"Bearer {ALICE}")         # alice may not read SEC/vault
    assert r.status_code == 403
    assert "WWW-Authenticate" not in r.headers


def test_require_denial_of_a_session_carries_the_module_challenge(site):
    s = site.session()
    site.login(s, "/packages/echo", user="alice")
    r = s.get(site.url("/bobs/echo"), allow_redirects=False)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bitbucket realm="Bob\'s corner"'


@pytest.mark.parametrize("authorization", [
    basic("x-token-auth", PROJECT_TOKEN), basic(PROJECT_TOKEN, ""), basic("project-token-proj", PROJECT_TOKEN),
    basic("x-token-auth", REPO_TOKEN),
], ids=["fixed-user", "token-as-user", "service-user-name", "repo-token"])
def test_project_and_repository_tokens_work_as_bearer_only(site, authorization):
    r = client_get(site, "/mirror/echo", authorization)
    assert r.status_code == 401 and "Location" not in r.headers
    assert "only as Bearer" in r.text
    site.apache.wait_for_log(r"access token refused: a project or repository token sent as Basic")
    # ... also when the owner is already cached from a Bearer request.
    assert client_get(site, "/mirror/echo", f"Bearer {PROJECT_TOKEN}").status_code == 200
    assert client_get(site, "/mirror/echo", authorization).status_code == 401


def test_a_refused_token_is_told_apart_from_no_credentials(site):
    refused = client_get(site, "/mirror/echo", f"Bearer {UNKNOWN}")
    missing = client_get(site, "/mirror/echo")
    assert refused.status_code == missing.status_code == 401
    assert "Bitbucket does not accept this access token" in refused.text
    assert "Authentication required" in missing.text
    for r in (refused, missing):
        assert r.headers["WWW-Authenticate"] == 'Basic realm="Package mirror"'
        assert not r.text.startswith('"')
