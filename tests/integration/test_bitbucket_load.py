"""Issue 10: Bitbucket calls under load and outage, counted at the fake Bitbucket (calls, TCP connections, TLS
handshakes), never timed: kept connections, one validation per token, the call limit and circuit breaker, 429s,
stale-if-error. One Apache process (servers=1) where a count depends on which process answers."""

import concurrent.futures

import bbsite

ALICE = "BBDC-alicePersonalReadToken0000000000000001"


def token_conf(site, extra=""):
    return bbsite.protected_conf(site) + f"""
<Location /packages>
    BBAuthTokenAuth On
</Location>
{extra}
"""


def get(site, token, path="/packages/echo"):
    s = site.session()
    s.headers["Accept"] = "application/json"
    s.headers["Authorization"] = f"Bearer {token}"
    return s.get(site.url(path), allow_redirects=False)


def mint(site, user="bob"):
    return site.fb.control("POST", "/_fake/tokens", {"user": user, "kind": "personal"})["token"]


def module_connections(site):
    """Connections the module opened to the fake since the last reset (its User-Agent is mod_bbauth)."""
    return site.fb.connections()["by_agent"].get("mod_bbauth", {}).get("connections", 0)


def reset_counts(site):
    site.fb.control("POST", "/_fake/calls/reset")


def test_a_warm_process_logs_in_without_a_new_connection(site_factory):
    site = site_factory(servers=1)
    site.login(site.session(), "/packages/echo")          # the process opens its connection(s)
    reset_counts(site)
    s = site.session()
    site.login(s, "/packages/echo", user="bob")
    assert site.echo(s)["remote_user"] == "bob"
    calls = site.fb.calls()
    assert calls.get("token") == 1 and sum(calls.values()) >= 3   # the login did call Bitbucket...
    assert module_connections(site) == 0                  # ...over the connection kept from the first one


def test_ten_token_misses_in_a_row_open_at_most_one_connection(site_factory):
    site = site_factory(conf=token_conf, servers=1)
    tokens = [mint(site) for _ in range(10)]
    reset_counts(site)
    for token in tokens:
        r = get(site, token)
        assert r.status_code == 200 and r.json()["remote_user"] == "bob"
    assert site.fb.calls().get("whoami") == 10
    assert module_connections(site) <= 1


def concurrently(n, fn):
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda _i: fn(), range(n)))


def test_32_concurrent_first_requests_with_one_token_make_one_check(site_factory):
    # Two processes (the harness's default): the herd is shared within each and across them through the cache.
    site = site_factory(conf=token_conf)
    token = mint(site)
    site.fb.set_mode("whoami", "slow", seconds=1)   # every request arrives while the first check is under way
    reset_counts(site)
    statuses = [r.status_code for r in concurrently(32, lambda: get(site, token))]
    assert statuses == [200] * 32
    calls = site.fb.calls()
    assert calls.get("whoami") == 1 and calls.get("user", 0) <= 1


def test_a_refused_token_herd_makes_one_check_per_process(site_factory):
    site = site_factory(conf=token_conf, servers=1)
    site.fb.set_mode("whoami", "slow", seconds=1)
    reset_counts(site)
    statuses = [r.status_code for r in concurrently(16, lambda: get(site, "BBDC-unknownToken0000"))]
    assert statuses == [401] * 16
    assert site.fb.calls().get("whoami") == 1


def test_a_herd_while_bitbucket_fails_gets_503_from_one_call(site_factory):
    site = site_factory(conf=token_conf, servers=1)   # 8 threads: all 8 requests arrive during the one call
    token = mint(site)
    site.fb.set_mode("whoami", "slow", seconds=5)   # longer than BBAuthTimeout (3 s): the one call times out
    reset_counts(site)
    statuses = [r.status_code for r in concurrently(8, lambda: get(site, token))]
    assert statuses == [503] * 8
    assert site.fb.calls().get("whoami") == 1


def test_a_busy_token_is_renewed_ahead_of_its_expiry(site_factory):
    import time
    site = site_factory(conf=lambda s: token_conf(s, "BBAuthTokenCacheTTL 20"))
    token = mint(site)
    reset_counts(site)
    start = time.monotonic()
    assert get(site, token).status_code == 200
    time.sleep(max(0.0, start + 18.8 - time.monotonic()))   # in the verdict's last tenth (2 s) of its life
    assert get(site, token).status_code == 200
    assert site.fb.calls().get("whoami") == 2                # renewed by this request...
    time.sleep(max(0.0, start + 20.6 - time.monotonic()))   # ...so past the first verdict's expiry
    for _ in range(4):
        assert get(site, token).status_code == 200
    assert site.fb.calls().get("whoami") == 2                # no miss
