"""Issue 15: one user's trouble stays with that user. Bitbucket rate-limits each user on its own (a 429 with
Retry-After, protocol sheet §10): the module holds back that user's calls, host-wide, and everyone else goes on;
a 429 for a check of a token nobody confirmed holds back such checks only. Calls are counted at the fake, by the
user their credential names; nothing is timed."""

import pytest

import bbsite

ALICE = "BBDC-alicePersonalReadToken0000000000000000001"
BOB = "BBDC-bobPersonalReadToken00000000000000000005"

REQUIRE_CONF = bbsite.ALPHA_REPO_LOCATION + """
<Location /proj>
    AuthType Bitbucket
    BBAuthTokenAuth On
    Require bitbucket-project PROJ
</Location>
<Location /packages>
    BBAuthTokenAuth On
</Location>
"""


def require_conf(extra=""):
    return lambda site: bbsite.protected_conf(site) + REQUIRE_CONF + extra


def get(site, token, path):
    s = site.session()
    s.headers.update({"Authorization": f"Bearer {token}", "Accept": "*/*"})
    return s.get(site.url(path), allow_redirects=False)


def files(site):
    for where in ("proj", "alpha", "packages"):
        site.apache.write_htdoc(f"{where}/file.txt", "a package\n")


def test_a_429_for_one_user_holds_back_that_user_only(site_factory):
    # Two processes: the hold is the host's, not one process's.
    site = site_factory(conf=require_conf())
    files(site)
    assert get(site, BOB, "/proj/file.txt").status_code == 200          # bob's token is confirmed
    site.fb.rate_limit("bob", retry_after=900)
    site.fb.control("POST", "/_fake/calls/reset")
    r = get(site, BOB, "/alpha/file.txt")                               # a decision asked with bob's token: 429
    assert r.status_code == 503 and 800 < int(r.headers["Retry-After"]) <= 900
    site.apache.wait_for_log(r"rate-limited by Bitbucket, retrying after 900 s for one user only")
    # Bob's next decisions wait without asking (on either process); alice's brand-new token goes on.
    for _ in range(4):
        r = get(site, BOB, "/alpha/file.txt")
        assert r.status_code == 503 and 800 < int(r.headers["Retry-After"]) <= 900
    assert site.fb.calls_by_user().get("bob") == 1
    assert get(site, ALICE, "/proj/file.txt").status_code == 200
    assert get(site, ALICE, "/alpha/file.txt").status_code == 200
    assert site.fb.calls_by_user().get("alice", 0) >= 2
    log = site.apache.error_log()
    assert "circuit open" not in log and BOB not in log and ALICE not in log


def test_a_429_for_a_token_nobody_confirmed_holds_back_such_checks_only(site_factory):
    site = site_factory(conf=require_conf(), servers=1)
    files(site)
    assert get(site, BOB, "/proj/file.txt").status_code == 200          # bob: confirmed before
    site.fb.rate_limit("anonymous", retry_after=120)
    site.fb.control("POST", "/_fake/calls/reset")
    r = get(site, "BBDC-junk-" + "x" * 30, "/packages/file.txt")
    assert r.status_code == 429 and 60 < int(r.headers["Retry-After"]) <= 120
    site.apache.wait_for_log(r"retrying after 120 s for checks of credentials nobody confirmed \(anonymous\) only")
    for i in range(5):                                                  # more junk: no call to Bitbucket
        r = get(site, f"BBDC-junk-{i}-" + "y" * 30, "/packages/file.txt")
        assert r.status_code == 429 and 60 < int(r.headers["Retry-After"]) <= 120
    assert site.fb.calls_by_user() == {"anonymous": 1}
    # Bob's Require decisions ask Bitbucket as bob, and a browser logs in.
    assert get(site, BOB, "/alpha/file.txt").status_code == 200
    browser = site.session()
    site.login(browser, "/packages/echo", user="alice")
    assert site.echo(browser)["remote_user"] == "alice"
    assert "circuit open" not in site.apache.error_log()


def test_429s_for_many_users_at_once_open_the_circuit(site_factory):
    site = site_factory(conf=require_conf("BBAuthCircuitFailures 3\n"), servers=1)
    files(site)
    assert get(site, BOB, "/proj/file.txt").status_code == 200
    assert get(site, ALICE, "/proj/file.txt").status_code == 200
    for user in ("bob", "alice", "anonymous"):
        site.fb.rate_limit(user, retry_after=300)
    assert get(site, BOB, "/alpha/file.txt").status_code == 503
    assert get(site, ALICE, "/alpha/file.txt").status_code == 503
    assert get(site, "BBDC-junk-" + "z" * 30, "/packages/file.txt").status_code == 429
    site.apache.wait_for_log(r"circuit open until .* after 429s for 3 users at once")


def token_conf(extra):
    return lambda site: bbsite.protected_conf(site) + """
<Location /packages>
    BBAuthTokenAuth On
</Location>
""" + extra


def wait_for_calls(site, endpoint, count):
    """Until the fake has seen `count` calls to endpoint (a condition, at most 20 s)."""
    import time
    deadline = time.monotonic() + 20
    while site.fb.calls().get(endpoint, 0) < count:
        assert time.monotonic() < deadline, f"the fake never saw {count} {endpoint} call(s)"
        time.sleep(0.02)


def test_stale_if_error_never_serves_a_token_when_this_server_held_the_call_back(site_factory):
    # Issue 15 (2): the only call slot is taken by a junk token's check; bob's token, revoked at Bitbucket since its
    # verdict expired, must not be served from the stale verdict: Bitbucket did not fail, this server held back.
    import concurrent.futures
    import time
    site = site_factory(conf=token_conf("BBAuthTokenCacheTTL 1\nBBAuthStaleIfError 3600\n"
                                        "BBAuthBitbucketMaxCalls 1\nBBAuthCircuitFailures 0\n"), servers=1)
    files(site)
    token = site.fb.control("POST", "/_fake/tokens", {"user": "bob", "kind": "personal"})["token"]
    assert get(site, token, "/packages/file.txt").status_code == 200
    site.fb.control("POST", "/_fake/tokens/revoke", {"token": token})
    time.sleep(2.1)                                          # the verdict's TTL runs out
    site.fb.set_mode("whoami", "slow", seconds=2, times=1)   # within BBAuthTimeout (3 s)
    site.fb.control("POST", "/_fake/calls/reset")
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        junk = pool.submit(get, site, "BBDC-junk-" + "j" * 30, "/packages/file.txt")
        wait_for_calls(site, "whoami", 1)                    # the junk check holds the only slot
        r = get(site, token, "/packages/file.txt")
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
        assert junk.result().status_code == 401
    assert "BBAuthStaleIfError" not in site.apache.error_log()
    assert site.fb.calls().get("whoami") == 1
    # Asked now, Bitbucket says the token is revoked.
    assert get(site, token, "/packages/file.txt").status_code == 401


REMOTE_IP = "RemoteIPHeader X-Forwarded-For\nRemoteIPInternalProxy 127.0.0.1\n"


def get_from(site, address, token, path="/packages/file.txt"):
    s = site.session()
    s.headers.update({"Authorization": f"Bearer {token}", "X-Forwarded-For": address})
    return s.get(site.url(path), allow_redirects=False)


def test_a_flood_of_junk_tokens_from_one_address_costs_a_few_dozen_calls(site_factory):
    # Issue 15 (3): 500 tokens nobody issued, from one client address (mod_remoteip names it), cost at most
    # BBAuthAnonymousChecksPerMinute (default 30) whoami calls; beyond, that address gets 429 with Retry-After and
    # Bitbucket is not asked. Another address's new token and a browser's login are served meanwhile.
    import concurrent.futures
    site = site_factory(conf=token_conf(REMOTE_IP), modules=("remoteip",))
    files(site)
    alice = site.fb.control("POST", "/_fake/tokens", {"user": "alice", "kind": "personal"})["token"]
    site.fb.control("POST", "/_fake/calls/reset")
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        flood = list(pool.map(lambda i: get_from(site, "192.0.2.7", f"BBDC-junk-{i:04d}-" + "q" * 30), range(500)))
    statuses = [r.status_code for r in flood]
    # 503: the checks in flight at once took the anonymous quarter of BBAuthBitbucketMaxCalls.
    assert set(statuses) <= {401, 429, 503}
    assert 1 <= statuses.count(401) <= 30 and statuses.count(429) >= 500 - 30
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in flood if r.status_code in (429, 503))
    assert site.fb.calls_by_user().get("anonymous", 0) == statuses.count(401)
    assert get_from(site, "198.51.100.9", alice).status_code == 200
    browser = site.session()
    site.login(browser, "/packages/echo", user="bob")
    assert site.echo(browser)["remote_user"] == "bob"
    site.apache.wait_for_log(r"tokens nobody confirmed came from 192\.0\.2\.7 within a minute "
                             r"\(BBAuthAnonymousChecksPerMinute\), retry after \d+ s")
    assert "BBDC-junk-" not in site.apache.error_log()


def test_the_anonymous_checks_limit_can_be_raised_or_lifted(site_factory):
    site = site_factory(conf=token_conf(REMOTE_IP + "BBAuthAnonymousChecksPerMinute 0\n"), modules=("remoteip",),
                        servers=1)
    statuses = [get_from(site, "192.0.2.7", f"BBDC-junk-{i:04d}-" + "q" * 30).status_code for i in range(40)]
    assert statuses == [401] * 40


def herd(site, n, token):
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        return [r.status_code for r in pool.map(lambda _i: get(site, token, "/packages/file.txt"), range(n))]


@pytest.mark.parametrize("mpm,servers", [("event", 2), ("prefork", 6)])
def test_a_herd_with_one_new_token_costs_one_check_per_host(site_factory, mpm, servers):
    # Issue 15 (4): every process of the host waits for the one asking, in the host's shared memory (nothing is
    # written to the shared cache for a token nobody confirmed).
    site = site_factory(conf=token_conf(""), mpm=mpm, servers=servers)
    files(site)
    token = site.fb.control("POST", "/_fake/tokens", {"user": "bob", "kind": "personal"})["token"]
    site.fb.set_mode("whoami", "slow", seconds=2)      # every request arrives while the first check is under way
    site.fb.control("POST", "/_fake/calls/reset")
    assert herd(site, 24, token) == [200] * 24
    assert site.fb.calls().get("whoami") == 1


def test_a_herd_with_one_junk_token_costs_one_check_per_host(site_factory):
    site = site_factory(conf=token_conf(""), servers=2)
    files(site)
    site.fb.set_mode("whoami", "slow", seconds=2)
    site.fb.control("POST", "/_fake/calls/reset")
    assert herd(site, 24, "BBDC-junk-herd-" + "h" * 30) == [401] * 24
    assert site.fb.calls().get("whoami") == 1


def test_a_new_token_of_a_user_seen_before_costs_whoami_alone(site_factory):
    site = site_factory(conf=token_conf(""), servers=1)
    first, second = (site.fb.control("POST", "/_fake/tokens", {"user": "bob", "kind": "personal"})["token"]
                     for _ in range(2))
    site.fb.control("POST", "/_fake/calls/reset")
    r = get(site, first, "/packages/echo")
    assert r.status_code == 200 and r.json()["remote_user"] == "bob"
    assert site.fb.calls() == {"whoami": 1, "users": 1}
    site.fb.control("POST", "/_fake/calls/reset")
    r = get(site, second, "/packages/echo")
    assert r.status_code == 200
    seen = {k.lower().replace("_", "-"): v for k, v in r.json()["headers"].items()}
    assert seen["x-bitbucket-name"] == "Bob Builder" and seen["x-bitbucket-email"] == "bob@example.com"
    assert site.fb.calls() == {"whoami": 1}
    # A deactivated user's tokens are refused by whoami itself.
    site.fb.control("POST", "/_fake/users/bob/deactivate")
    third = site.fb.control("POST", "/_fake/tokens", {"user": "bob", "kind": "personal"})["token"]
    assert get(site, third, "/packages/echo").status_code == 401


def test_a_429_for_one_sessions_revalidation_leaves_logins_alone(site_factory):
    # A session's revalidation asks with its own grant: Bitbucket's 429 for it holds back that session's calls,
    # not the module's own (logins), as it did when every call without a token shared one hold.
    import time
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + "BBAuthSessionRevalidate 1\n", servers=1)
    alice = site.session()
    site.login(alice, "/packages/echo", user="alice")
    site.fb.rate_limit("alice", retry_after=600)
    time.sleep(1.2)                                       # past BBAuthSessionRevalidate: the next request asks
    assert site.echo(alice)["remote_user"] == "alice"     # Bitbucket cannot say now: the session goes on
    bob = site.session()
    site.login(bob, "/packages/echo", user="bob")
    assert site.echo(bob)["remote_user"] == "bob"
    site.apache.wait_for_log(r"rate-limited by Bitbucket, retrying after 600 s for one user only")
