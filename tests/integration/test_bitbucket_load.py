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
