"""Issue 4: Require lines that follow Bitbucket (bitbucket-repo, bitbucket-project, bitbucket-group), for browser
sessions (through the session's server-side OAuth grant) and access tokens alike; each denies whom it must;
decisions are cached; logout ends the session on the server too."""

import pytest

import bbsite

ALICE = "BBDC-alicePersonalReadToken0000000000000000001"
BOB = "BBDC-bobPersonalReadToken00000000000000000005"
PROJECT_TOKEN = "BBDC-projPROJProjectReadToken00000000000000010"


def authz_conf(site):
    return bbsite.protected_conf(site) + bbsite.ALPHA_REPO_LOCATION + """
ScriptAlias /proj/echo @ECHO@
ScriptAlias /devs/echo @ECHO@
ScriptAlias /either/echo @ECHO@
ScriptAlias /ghost/echo @ECHO@
<Location /ghost>
    AuthType Bitbucket
    BBAuthTokenAuth On
    AuthzSendForbiddenOnFailure On
    Require bitbucket-repo PROJ/ghost
</Location>
<Location /proj>
    AuthType Bitbucket
    BBAuthTokenAuth On
    AuthzSendForbiddenOnFailure On
    Require bitbucket-project PROJ
</Location>
<Location /devs>
    AuthType Bitbucket
    AuthzSendForbiddenOnFailure On
    Require bitbucket-group developers
</Location>
<Location /either>
    AuthType Bitbucket
    BBAuthTokenAuth On
    AuthzSendForbiddenOnFailure On
    <RequireAny>
        Require bitbucket-user dave
        Require bitbucket-repo SEC/vault
    </RequireAny>
</Location>
"""


@pytest.fixture
def site(site_factory):
    return site_factory(conf=authz_conf)


def logged_in(site, user):
    s = site.session()
    site.login(s, "/packages/", user=user)
    return s


def status(site, s, path):
    return s.get(site.url(path), allow_redirects=False).status_code


def bearer(site, token, path):
    s = site.session()
    s.headers.update({"Authorization": f"Bearer {token}", "Accept": "*/*"})
    return s.get(site.url(path), allow_redirects=False).status_code


# alice: REPO_ADMIN on PROJ/alpha, group developers; bob: PROJECT_READ on PROJ, REPO_WRITE on SEC/vault;
# jane: REPO_READ on PROJ/beta only; dave: nothing.
@pytest.mark.parametrize("user,path,expected", [
    ("alice", "/alpha/echo", 200), ("bob", "/alpha/echo", 200), ("jane@example.com", "/alpha/echo", 403),
    ("dave", "/alpha/echo", 403),
    ("bob", "/proj/echo", 200), ("jane@example.com", "/proj/echo", 200), ("dave", "/proj/echo", 403),
    ("alice", "/devs/echo", 200), ("bob", "/devs/echo", 403),
    ("dave", "/either/echo", 200), ("bob", "/either/echo", 200), ("alice", "/either/echo", 403),
])
def test_sessions(site, user, path, expected):
    assert status(site, logged_in(site, user), path) == expected


@pytest.mark.parametrize("token,path,expected", [
    (ALICE, "/alpha/echo", 200), (BOB, "/alpha/echo", 200), (PROJECT_TOKEN, "/alpha/echo", 200),
    (BOB, "/either/echo", 200), (ALICE, "/either/echo", 403), (PROJECT_TOKEN, "/either/echo", 403),
    (PROJECT_TOKEN, "/proj/echo", 200),
])
def test_tokens(site, token, path, expected):
    assert bearer(site, token, path) == expected


def last_answer(site, endpoint):
    """The status the fake gave to the module's last call of this endpoint."""
    entries = site.fb.control("GET", f"/_fake/log?endpoint={endpoint}")["entries"]
    assert entries, f"the module never asked {endpoint}"
    return entries[-1]["status"]


def test_a_group_whose_name_contains_the_required_one_is_not_membership(site):
    # Bitbucket's filter matches by substring, so its answer lists these groups for "developers": none is it.
    site.fb.control("POST", "/_fake/users/bob/groups",
                    {"groups": ["stash-users", "developers-old", "old-developers", "developers2"]})
    assert status(site, logged_in(site, "bob"), "/devs/echo") == 403
    assert last_answer(site, "user_groups") == 200
    site.fb.control("POST", "/_fake/users/zoe/groups", {"groups": ["developers-old", "Developers"]})
    assert status(site, logged_in(site, "zoe"), "/devs/echo") == 200     # group names are case-insensitive


def test_a_repository_that_does_not_exist_is_denied(site):
    assert status(site, logged_in(site, "alice"), "/ghost/echo") == 403
    assert last_answer(site, "repo") == 404
    assert bearer(site, ALICE, "/ghost/echo") == 403
    assert last_answer(site, "repo") == 404


def test_anonymous_is_asked_to_log_in_first(site):
    r = site.session().get(site.url("/alpha/echo"), allow_redirects=False)
    assert r.status_code == 302


def test_decisions_are_cached(site):
    s = logged_in(site, "bob")
    site.fb.control("POST", "/_fake/calls/reset")
    for _ in range(4):
        assert status(site, s, "/alpha/echo") == 200
    assert site.fb.calls().get("repo") == 1


def test_expired_access_token_is_refreshed_and_rotated(site):
    s = logged_in(site, "alice")
    held = site.fb.control("GET", "/_fake/tokens")
    access = [t["token"] for t in held["oauth2_access"] if t.get("user") == "alice"]
    assert len(access) == 1
    site.fb.control("POST", "/_fake/tokens/expire", {"token": access[0]})
    site.fb.control("POST", "/_fake/calls/reset")
    assert status(site, s, "/proj/echo") == 200           # via PROJ/alpha alice may view PROJ
    assert site.fb.calls().get("token") == 1              # one refresh
    assert status(site, s, "/devs/echo") == 200           # the rotated pair keeps working
    assert site.fb.calls().get("token") == 1
    new_access = [t["token"] for t in site.fb.control("GET", "/_fake/tokens")["oauth2_access"]
                  if t.get("user") == "alice"]
    assert new_access and new_access != access


def test_revoked_grant_denies_and_says_log_in_again(site):
    s = logged_in(site, "alice")
    site.fb.control("POST", "/_fake/tokens/revoke", {"user": "alice"})
    assert status(site, s, "/proj/echo") == 403
    assert "log in again" in site.apache.error_log()


def test_bitbucket_unreachable_fails_closed(site):
    s = logged_in(site, "alice")
    site.fb.set_mode("repo", "down")
    r = s.get(site.url("/alpha/echo"), allow_redirects=False)
    assert r.status_code == 503 and "try again later" in r.text
    assert bearer(site, ALICE, "/alpha/echo") == 503
    assert "Bitbucket cannot say" in site.apache.error_log()


def test_logout_ends_the_session_for_copies_of_the_cookie(site):
    s = logged_in(site, "alice")
    copy = site.session()
    copy.cookies.update(s.cookies)
    assert site.echo(copy)["remote_user"] == "alice"
    assert site.logout(s).status_code == 302
    copy.headers["Accept"] = "application/json"
    assert copy.get(site.url("/packages/echo"), allow_redirects=False).status_code == 401


def revalidating_site(site_factory, seconds):
    return site_factory(conf=lambda s: authz_conf(s) + f"BBAuthSessionRevalidate {seconds}\n")


@pytest.mark.parametrize("what", ["deactivate", "revoke"])
def test_revalidation_ends_sessions_bitbucket_no_longer_accepts(site_factory, what):
    site = revalidating_site(site_factory, 1)
    s = logged_in(site, "zoe")
    bob = logged_in(site, "bob")
    if what == "deactivate":
        site.fb.control("POST", "/_fake/users/zoe/deactivate")
    else:
        site.fb.control("POST", "/_fake/tokens/revoke", {"user": "zoe"})
    import time
    time.sleep(1.2)  # past BBAuthSessionRevalidate (1 s): the next request asks Bitbucket again
    s.headers["Accept"] = "application/json"
    r = s.get(site.url("/packages/echo"), allow_redirects=False)
    assert r.status_code == 401
    assert "bbauth_session=;" in r.headers.get("Set-Cookie", "")
    assert "session of zoe ended" in site.apache.error_log()
    assert site.echo(bob)["remote_user"] == "bob"  # others are not affected


def test_revalidation_asks_bitbucket_at_most_once_per_period(site_factory):
    site = revalidating_site(site_factory, 3600)
    s = logged_in(site, "bob")
    site.fb.control("POST", "/_fake/calls/reset")
    for _ in range(5):
        assert site.echo(s)["remote_user"] == "bob"
    assert site.fb.calls().get("whoami") is None  # checked at the login itself
