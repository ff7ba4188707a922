"""Issue 12: the metrics a mirror's admin watches, through a real Apache: SetHandler bbauth-metrics (Prometheus text
format 0.0.4, parsed by prometheus_client's own parser) and the mod_status section (HTML and ?auto). The counters
equal what each test did and what the fake Bitbucket counted; they survive children exiting and a graceful restart;
no user name, token or secret appears in them."""

import os
import re
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import bbsite

REPO = Path(__file__).resolve().parents[2]
ALICE = "BBDC-alicePersonalReadToken0000000000000000001"
UNKNOWN = "BBDC-nobodyKnowsThisToken000000000000000000099"

# The admin pages, reachable from 127.0.0.1 only, outside every AuthType Bitbucket location.
ADMIN_PAGES = """
<Location /bbauth-metrics>
    SetHandler bbauth-metrics
    Require ip 127.0.0.1
</Location>
<Location /server-status>
    SetHandler server-status
    Require ip 127.0.0.1
</Location>
"""

# Bitbucket endpoints as the module names them, and as the fake counts them.
FAKE_ENDPOINTS = {
    "oauth2_token": ("token",), "oauth2_revoke": ("revoke",), "whoami": ("whoami",), "user": ("users", "user"),
    "group": ("user_groups",), "permission": ("project", "repo"),
}


def metrics_conf(site, extra=""):
    return bbsite.protected_conf(site) + bbsite.ALPHA_REPO_LOCATION + ADMIN_PAGES + """
<Location /packages>
    BBAuthTokenAuth On
</Location>
""" + extra


def make(site_factory, extra="", **opts):
    return site_factory(conf=lambda site: metrics_conf(site, extra), modules=("status", "authz_host"), **opts)


def scrape(site):
    """The metrics page parsed by prometheus_client: {(sample name, frozenset of labels): value}, and its text."""
    r = site.session().get(site.url("/bbauth-metrics"))
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = {}
    for family in text_string_to_metric_families(r.text):
        assert family.name.startswith("bbauth_") and family.documentation, family
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, r.text


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def total(samples, name, **labels):
    """The sum over every sample of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def bearer(site, token, path="/packages/echo"):
    s = site.session()
    s.headers.update({"Authorization": f"Bearer {token}", "Accept": "*/*", "Connection": "close"})
    return s.get(site.url(path), allow_redirects=False).status_code


def failed_login(site, mode=None):
    """A browser login whose code exchange meets the fake's `mode` at the token endpoint (once)."""
    s = site.session()
    r = site.start_login(s, "/packages/")
    callback = site.authorize(s, r.headers["Location"])
    site.fb.set_mode("token", mode, times=1)   # never resent: the exchange has a connection of its own
    r = s.get(callback, allow_redirects=False)
    assert r.status_code == 502, (r.status_code, r.text[:300])


def refused_exchange(site):
    """A login whose code exchange Bitbucket refuses (invalid_client: the client secret no longer matches)."""
    s = site.session()
    r = site.start_login(s, "/packages/")
    callback = site.authorize(s, r.headers["Location"])
    register = {"client_id": bbsite.CLIENT_ID, "redirect_uris": [site.redirect_uri]}
    site.fb.control("POST", "/_fake/oauth2/clients", dict(register, client_secret="not-the-configured-one"))
    assert s.get(callback, allow_redirects=False).status_code == 502
    site.fb.control("POST", "/_fake/oauth2/clients", dict(register, client_secret=bbsite.CLIENT_SECRET))


def denied_at_authorize(site):
    """The user clicks Deny: Bitbucket sends the browser back with error=access_denied and the login's state."""
    s = site.session()
    r = site.start_login(s, "/packages/")
    state = bbsite.query_of(r.headers["Location"])["state"]
    r = s.get(site.url(f"{bbsite.CALLBACK_PATH}?error=access_denied&state={state}"), allow_redirects=False)
    assert r.status_code == 403


def test_counters_equal_what_was_done(site_factory):
    site = make(site_factory)
    samples, _ = scrape(site)
    assert total(samples, "bbauth_logins_started_total") == 0
    assert total(samples, "bbauth_bitbucket_calls_total") == 0

    # Logins: three complete (one is then replayed by another browser), six fail for as many causes.
    alice, bob, dave = site.session(), site.session(), site.session()
    site.login(alice, user="alice")
    site.login(dave, user="dave")
    assert site.completed_then_replayed(bob).status_code == 400          # bob's login, then a replay: 400
    assert site.session().get(site.url(bbsite.CALLBACK_PATH + "?code=c&state=unknown"),
                              allow_redirects=False).status_code == 400   # no login-state cookie: expired
    assert site.session().get(site.url(bbsite.CALLBACK_PATH), allow_redirects=False).status_code == 400
    denied_at_authorize(site)
    failed_login(site, "down")
    failed_login(site, "twofactor")
    refused_exchange(site)

    # Access tokens: a miss then a cache hit; an unknown one twice; a malformed header.
    assert bearer(site, ALICE) == 200 and bearer(site, ALICE) == 200
    assert bearer(site, UNKNOWN) == 401 and bearer(site, UNKNOWN) == 401
    s = site.session()
    assert s.get(site.url("/packages/echo"), headers={"Authorization": "Basic %%%", "Accept": "*/*"},
                 allow_redirects=False).status_code == 401

    # Require bitbucket-repo: alice asked then cached, dave asked and denied.
    assert alice.get(site.url("/alpha/echo"), allow_redirects=False).status_code == 200
    assert alice.get(site.url("/alpha/echo"), allow_redirects=False).status_code == 200
    assert dave.get(site.url("/alpha/echo"), allow_redirects=False).status_code == 403

    # Sessions: a tampered cookie; a logout, then a copy of the logged-out cookie.
    forged = site.session()
    forged.cookies.set("bbauth_session", alice.cookies.get("bbauth_session")[:-4] + "AAAA")
    assert forged.get(site.url("/packages/echo"), allow_redirects=False).status_code == 302
    copy = site.session()
    copy.cookies.update(alice.cookies)
    assert site.logout(alice).status_code == 302
    assert copy.get(site.url("/packages/echo"), allow_redirects=False).status_code == 302

    samples, text = scrape(site)
    # Every login started here sent the browser to Bitbucket: 3 good ones, 1 denied, 3 failed exchanges, and
    # the two redirects of the tampered and logged-out cookies just above.
    assert value(samples, "bbauth_logins_started_total") == 9
    assert value(samples, "bbauth_logins_completed_total") == 3
    failed = {cause: value(samples, "bbauth_logins_failed_total", cause=cause) for cause in (
        "state_expired", "state_replayed", "bad_answer", "access_denied", "authorize_error", "token_refused",
        "bitbucket_unavailable", "bad_response", "two_factor_page", "user_deactivated", "cache_error")}
    assert failed == {"state_expired": 1, "state_replayed": 1, "bad_answer": 1, "access_denied": 1,
                      "authorize_error": 0, "token_refused": 1, "bitbucket_unavailable": 1, "bad_response": 0,
                      "two_factor_page": 1, "user_deactivated": 0, "cache_error": 0}
    verdicts = {o: value(samples, "bbauth_token_verdicts_total", outcome=o) for o in (
        "memo_hit_valid", "memo_hit_refused", "cache_hit_valid", "cache_hit_refused", "valid", "refused",
        "unavailable", "malformed")}
    # The second request of a token reads this process's memo or, in the other child, the shared cache; a refusal
    # stays in the process that heard it (nothing an anonymous client sends is written to the shared cache).
    assert verdicts.pop("memo_hit_valid") + verdicts.pop("cache_hit_valid") == 1
    assert verdicts.pop("memo_hit_refused") + verdicts["refused"] == 2
    assert verdicts.pop("cache_hit_refused") == 0
    assert verdicts.pop("refused") in (1, 2)
    assert verdicts == {"valid": 1, "unavailable": 0, "malformed": 1}
    assert value(samples, "bbauth_require_decisions_total", source="bitbucket", decision="granted") == 1
    assert value(samples, "bbauth_require_decisions_total", source="cache", decision="granted") == 1
    assert value(samples, "bbauth_require_decisions_total", source="bitbucket", decision="denied") == 1
    assert value(samples, "bbauth_require_decisions_total", source="cache", decision="denied") == 0
    assert value(samples, "bbauth_require_decisions_total", source="bitbucket", decision="unavailable") == 0
    assert value(samples, "bbauth_sessions_refused_total", reason="bad_signature") == 1
    assert value(samples, "bbauth_sessions_refused_total", reason="logged_out") == 1
    assert value(samples, "bbauth_sessions_refused_total", reason="expired") == 0
    assert value(samples, "bbauth_logouts_total") == 1
    assert value(samples, "bbauth_cache_operations_total", op="store", result="ok") > 0
    assert total(samples, "bbauth_cache_operations_total", result="error") == 0

    # Bitbucket calls: each kind as many as the fake answered, the histogram counting every one. The exchange the
    # fake dropped ("down") is one call at both ends: it is never resent (test_tomcat.py).
    fake = site.fb.calls()
    for kind, endpoints in FAKE_ENDPOINTS.items():
        answered = sum(fake.get(e, 0) for e in endpoints)
        assert total(samples, "bbauth_bitbucket_calls_total", endpoint=kind) == answered, kind
        assert value(samples, "bbauth_bitbucket_call_duration_seconds_count", endpoint=kind) == \
            total(samples, "bbauth_bitbucket_calls_total", endpoint=kind), kind
    assert value(samples, "bbauth_bitbucket_calls_total", endpoint="oauth2_token", outcome="unavailable") == 1
    assert value(samples, "bbauth_bitbucket_calls_total", endpoint="oauth2_token", outcome="refused") == 1
    assert value(samples, "bbauth_bitbucket_calls_total", endpoint="oauth2_token", outcome="ok") == \
        total(samples, "bbauth_bitbucket_calls_total", endpoint="oauth2_token") - 2   # a two-factor page is a 200
    assert value(samples, "bbauth_bitbucket_calls_total", endpoint="other", outcome="ok") == 0
    assert value(samples, "bbauth_bitbucket_call_duration_seconds_bucket", endpoint="whoami", le="+Inf") == \
        fake["whoami"]

    # Nothing that names a user or is a secret.
    secrets = bbsite.fake_secrets(site.fb) + [ALICE, UNKNOWN, bbsite.CLIENT_SECRET, "alice", "dave", "bob",
                                             alice.cookies.get("bbauth_session") or "", "127.0.0.1"]
    for secret in filter(None, secrets):
        assert secret not in text, secret


def test_memo_hits_in_one_process(site_factory):
    site = make(site_factory, servers=1)
    for _ in range(3):
        assert bearer(site, ALICE) == 200
    samples, _ = scrape(site)
    assert value(samples, "bbauth_token_verdicts_total", outcome="valid") == 1
    assert value(samples, "bbauth_token_verdicts_total", outcome="memo_hit_valid") == 2
    assert value(samples, "bbauth_token_verdicts_total", outcome="cache_hit_valid") == 0


def test_bitbucket_down_shows_as_unavailable(site_factory):
    site = make(site_factory)
    s = site.session()
    site.login(s, user="alice")
    site.fb.set_mode("repo", "down")
    assert s.get(site.url("/alpha/echo"), allow_redirects=False).status_code == 503
    site.fb.set_mode("whoami", "down")
    assert bearer(site, ALICE) == 503
    samples, _ = scrape(site)
    assert value(samples, "bbauth_require_decisions_total", source="bitbucket", decision="unavailable") == 1
    assert value(samples, "bbauth_token_verdicts_total", outcome="unavailable") == 1
    assert value(samples, "bbauth_bitbucket_calls_total", endpoint="permission", outcome="unavailable") == 1
    assert value(samples, "bbauth_bitbucket_calls_total", endpoint="whoami", outcome="unavailable") == 1


def test_a_session_ended_by_revalidation(site_factory):
    site = make(site_factory, "BBAuthSessionRevalidate 1\n")
    zoe = site.session()
    site.login(zoe, user="zoe")
    site.fb.control("POST", "/_fake/users/zoe/deactivate")
    time.sleep(1.2)  # past BBAuthSessionRevalidate (1 s): the next request asks Bitbucket again
    zoe.headers["Accept"] = "application/json"
    assert zoe.get(site.url("/packages/echo"), allow_redirects=False).status_code == 401
    assert zoe.get(site.url("/packages/echo"), allow_redirects=False).status_code == 401   # cookie deleted
    samples, _ = scrape(site)
    assert value(samples, "bbauth_sessions_refused_total", reason="revalidation_ended") == 1
    assert value(samples, "bbauth_logins_completed_total") == 1


def status_page(site, query=""):
    r = site.session().get(site.url("/server-status" + query))
    assert r.status_code == 200
    return r.text


def test_mod_status_section(site_factory):
    site = make(site_factory)
    site.login(site.session(), user="alice")
    assert bearer(site, ALICE) == 200
    html = status_page(site)
    assert "<h2>mod_bbauth</h2>" in html
    assert "<tr><td>bbauth_logins_completed_total</td><td>1</td></tr>" in html
    assert "<tr><td>bbauth_token_verdicts_total{outcome=&quot;valid&quot;}</td><td>1</td></tr>" in html
    assert "bbauth_logins_completed_total: 1<br>" in status_page(site, "?notable")
    auto = status_page(site, "?auto")
    lines = dict(line.split(": ", 1) for line in auto.splitlines() if line.startswith("bbauth_"))
    assert lines["bbauth_logins_started_total"] == "1"
    assert lines["bbauth_logins_completed_total"] == "1"
    assert lines['bbauth_token_verdicts_total{outcome="valid"}'] == "1"
    assert int(lines['bbauth_bitbucket_call_duration_seconds_count{endpoint="whoami"}']) == \
        site.fb.calls()["whoami"]
    # The time the whoami calls took, the same on both pages (and more than nothing: each was a TLS round trip).
    samples, _ = scrape(site)
    took = value(samples, "bbauth_bitbucket_call_duration_seconds_sum", endpoint="whoami")
    assert took > 0 and float(lines['bbauth_bitbucket_call_duration_seconds_sum{endpoint="whoami"}']) == \
        pytest.approx(took, abs=1e-6)
    for text in (html, auto):
        assert "alice" not in text and ALICE not in text


def children_of(pid):
    """The PIDs of a process's children (Apache's parent: its worker processes, and mod_cgid's daemon)."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return set(int(p) for p in f.read().split())


def exited_children(site, old, wanted, deadline=10):
    """Those of `old` that are no longer the parent's children, once at least `wanted` have gone (or time is up)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end and len(old - children_of(site.apache.pid)) < wanted:
        time.sleep(0.1)
    return old - children_of(site.apache.pid)


def test_counts_survive_children_exiting_and_a_graceful_restart(site_factory):
    # Each child serves a few connections and exits: every request below lands in a child that then goes.
    site = make(site_factory, "MaxConnectionsPerChild 2\n")
    first = children_of(site.apache.pid)           # the 2 workers (servers=2) and mod_cgid's daemon
    for _ in range(6):
        assert bearer(site, ALICE) == 200          # a new connection each time
    # 6 connections, at most 2 per child: at least 2 were served by children started since, and one of the first
    # workers (which one depends on where connections landed) has exited
    assert exited_children(site, first, 1), "a first worker should have exited"
    samples, _ = scrape(site)
    assert total(samples, "bbauth_token_verdicts_total") == 6
    assert value(samples, "bbauth_token_verdicts_total", outcome="valid") == 1
    # a new child's memo is empty: its first request reads the verdict from the shared cache
    assert value(samples, "bbauth_token_verdicts_total", outcome="cache_hit_valid") >= 1

    site.apache.graceful()
    assert bearer(site, ALICE) == 200
    samples, _ = scrape(site)
    assert total(samples, "bbauth_token_verdicts_total") == 7
    assert value(samples, "bbauth_bitbucket_calls_total", endpoint="whoami", outcome="ok") == \
        site.fb.calls()["whoami"]


def test_a_full_restart_and_a_stop_begin_at_zero(site_factory):
    site = make(site_factory)
    assert bearer(site, ALICE) == 200
    assert total(scrape(site)[0], "bbauth_token_verdicts_total") == 1
    site.apache.restart(graceful=False)
    assert total(scrape(site)[0], "bbauth_token_verdicts_total") == 0
    assert bearer(site, ALICE) == 200
    site.apache.graceful()
    assert total(scrape(site)[0], "bbauth_token_verdicts_total") == 1
    site.apache.stop()
    site.apache.start()
    assert total(scrape(site)[0], "bbauth_token_verdicts_total") == 0


def test_metrics_handler_answers_get_only(site_factory):
    site = make(site_factory)
    r = site.session().post(site.url("/bbauth-metrics"), data="x")
    assert r.status_code == 405 and "GET" in r.headers["Allow"] and "POST" not in r.headers["Allow"]
    r = site.session().head(site.url("/bbauth-metrics"))
    assert r.status_code == 200 and r.text == ""


def changelog_version():
    """The version on debian/changelog's first line: the one place it is written (issue 17)."""
    first = (REPO / "debian" / "changelog").read_text().splitlines()[0]
    return re.fullmatch(r"libapache2-mod-bbauth \(([0-9A-Za-z.+~-]+)\) .*", first).group(1)


def test_the_version_from_debian_changelog_in_build_info_and_the_startup_line(site_factory):
    site = make(site_factory)
    version = changelog_version()
    samples, _ = scrape(site)
    assert [(labels, v) for (name, labels), v in samples.items() if name == "bbauth_build_info"] == \
        [(frozenset({("version", version)}), 1.0)]
    assert re.search(rf"mod_bbauth/{re.escape(version)}\b.* configured -- resuming normal operations",
                     site.apache.error_log_since(site.apache.start_mark))
