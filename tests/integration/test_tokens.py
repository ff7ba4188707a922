"""Issue 4: command-line clients authenticate with Bitbucket HTTP access tokens (BBAuthTokenAuth On): every
accepted spelling, the identity always from Bitbucket, 401 with a Basic challenge (never a redirect), the cache,
revocation within the TTL, and 503 when Bitbucket cannot say."""

import base64

import pytest

import bbsite

ALICE = "BBDC-alicePersonalReadToken0000000000000000001"
BOB = "BBDC-bobPersonalReadToken00000000000000000005"
PROJECT = "BBDC-projPROJProjectReadToken00000000000000010"
EXPIRED = "BBDC-alicePersonalExpiredToken0000000000000003"
REVOKED = "BBDC-alicePersonalRevokedToken0000000000000004"
INACTIVE_OWNER = "BBDC-carolPersonalToken000000000000000000007"


def token_conf(site, extra=""):
    return bbsite.protected_conf(site) + f"""
<Location /packages>
    BBAuthTokenAuth On
</Location>
{extra}
"""


@pytest.fixture
def site(site_factory):
    return site_factory(conf=token_conf)


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def get(site, authorization=None, accept="*/*", path="/packages/echo"):
    s = site.session()
    s.headers["Accept"] = accept
    if authorization is not None:
        s.headers["Authorization"] = authorization
    return s.get(site.url(path), allow_redirects=False)


@pytest.mark.parametrize("authorization", [
    f"Bearer {ALICE}",
    basic("alice", ALICE),
    basic(ALICE, ""),                # pip's https://TOKEN@host/
    basic("composer-user", ALICE),   # a fixed username: the identity still comes from Bitbucket
    basic("bob", ALICE),             # claiming to be bob does not make it bob
])
def test_accepted_spellings_identify_the_owner(site, authorization):
    r = get(site, authorization)
    assert r.status_code == 200, (r.status_code, r.text[:200])
    echo = r.json()
    assert echo["remote_user"] == "alice"
    assert echo["bitbucket"]["BITBUCKET_EMAIL"] == "alice@example.com"


def test_project_token_authenticates_as_its_service_user(site):
    r = get(site, f"Bearer {PROJECT}")
    assert r.status_code == 200
    assert r.json()["remote_user"] == "project-token-proj"


@pytest.mark.parametrize("authorization", [
    f"Bearer {EXPIRED}", f"Bearer {REVOKED}", f"Bearer {INACTIVE_OWNER}", "Bearer BBDC-doesNotExist",
    basic("alice", "alice-password"),   # a password is not a token: nothing the module will check
    "Bearer", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Bearer a%20b",
    "Bearer " + "A" * 5000, "Negotiate abc", basic("alice", "tok\u00e9n"),
])
def test_refused_credentials_get_401_with_a_basic_challenge(site, authorization):
    r = get(site, authorization, accept="text/html")
    assert r.status_code == 401, (authorization[:40], r.status_code)
    assert r.headers["WWW-Authenticate"] == 'Basic realm="Package mirror"'
    assert "Location" not in r.headers
    log = site.apache.error_log()
    secret = authorization.split(" ", 1)[-1]
    assert len(secret) < 4 or secret not in log


def test_no_credentials_non_browser_gets_basic_challenge_browser_still_redirected(site):
    r = get(site, accept="application/json")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic realm=")
    # pip asks for HTML only at q=0.01 after its JSON types: not a browser.
    pip = get(site, accept="application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
                           "text/html; q=0.01")
    assert pip.status_code == 401
    browser = get(site, accept="text/html,application/xhtml+xml")
    assert browser.status_code == 302


def test_token_auth_is_off_by_default(site_factory):
    site = site_factory()
    r = get(site, f"Bearer {ALICE}")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bitbucket ")


def test_results_are_cached_and_revocation_bites_after_the_ttl(site_factory):
    import time
    ttl = 6
    site = site_factory(conf=lambda s: token_conf(s) + f"BBAuthTokenCacheTTL {ttl}\n")
    fresh = site.fb.control("POST", "/_fake/tokens", {"user": "bob", "kind": "personal"})["token"]
    site.fb.control("POST", "/_fake/calls/reset")
    verdict_asked = time.monotonic()
    for _ in range(5):
        assert get(site, f"Bearer {fresh}").json()["remote_user"] == "bob"
    assert site.fb.calls().get("whoami") == 1  # four of five answered from the cache

    site.fb.control("POST", "/_fake/tokens/revoke", {"token": fresh})
    # Within the TTL the cached "yes" still stands: a revocation takes up to BBAuthTokenCacheTTL to bite.
    assert get(site, f"Bearer {fresh}").status_code == 200
    assert site.fb.calls().get("whoami") == 1
    assert time.monotonic() - verdict_asked < ttl - 1       # (the machine was not too slow for the check above)
    # Then the first request past the TTL asks Bitbucket again and is refused: not later. The bound is the TTL
    # plus 4 s for a slow machine, well below twice the TTL.
    deadline = verdict_asked + ttl + 4
    statuses = []
    while time.monotonic() < deadline and not statuses[-1:] == [401]:
        statuses.append(get(site, f"Bearer {fresh}").status_code)
        time.sleep(0.25)
    assert statuses[-1] == 401 and set(statuses[:-1]) <= {200}
    assert site.fb.calls().get("whoami") == 2                # once more, for the request refused


def test_refusals_are_cached_briefly_by_the_process_that_heard_them(site):
    site.fb.control("POST", "/_fake/calls/reset")
    s = site.session()                      # one keep-alive connection: one Apache process
    s.headers.update({"Accept": "*/*", "Authorization": "Bearer BBDC-unknownToken0000"})
    for _ in range(3):
        assert s.get(site.url("/packages/echo"), allow_redirects=False).status_code == 401
    assert site.fb.calls().get("whoami") == 1


@pytest.mark.parametrize("mode", ["down", "status:500", "garbage", "twofactor"])
def test_bitbucket_unavailable_gives_503_never_200_or_401(site, mode):
    site.fb.set_mode("whoami", mode)
    r = get(site, f"Bearer {BOB}")
    assert r.status_code == 503
    lines = [l for l in site.apache.error_log().splitlines() if "cannot check an access token" in l]
    assert len(lines) == 1 and BOB not in lines[0]


def test_session_cookie_still_works_beside_token_auth(site):
    s = site.session()
    site.login(s, "/packages/echo", user="jane@example.com")
    assert site.echo(s)["remote_user"] == "jane@example.com"
