"""Issue 19: __Host- cookie names work end to end. Over HTTPS a real headless Chromium logs in with
BBAuthCookieName __Host-bbauth (the login-state cookies get a name and Path=/ that browsers accept with the prefix),
and `apachectl -t` refuses a __Host- name with BBAuthCookieDomain, a BBAuthCookiePath other than /, or an http
redirect URI (no Secure)."""

import os
import re

import pytest

import bbsite
from test_browser import CHROMEDRIVER, CHROMIUM, headless_chromium

NAME = "__Host-bbauth"


def host_conf(extra=""):
    return lambda site: bbsite.protected_conf(site) + f"BBAuthCookieName {NAME}\n" + extra


@pytest.mark.parametrize("extra,says", [
    ("BBAuthCookieDomain example.test\n", "cannot have a Domain"),
    ("BBAuthCookiePath /packages\n", "must have Path=/"),
    ("", "must be Secure"),                        # this site's redirect URI is http
])
def test_apachectl_refuses_what_browsers_would(site_factory, extra, says):
    site = site_factory(conf=host_conf(extra), start=False)
    rc, out = site.apache.configtest()
    assert rc != 0, out
    assert f"BBAuthCookieName {NAME}" in out and says in out, out


def https_site(site_factory, tmp_serverroot):
    import testca
    pki = testca.make_ca_and_cert(str(tmp_serverroot / "apache-pki"))
    os.chmod(tmp_serverroot / "apache-pki", 0o755)
    return site_factory(conf=host_conf(), ssl=(pki["cert"], pki["key"])), pki


def test_https_site_passes_apachectl(site_factory, tmp_serverroot):
    site, _ = https_site(site_factory, tmp_serverroot)
    assert site.redirect_uri.startswith("https://")
    r = site.session().get(site.url("/packages/echo"), headers={"Accept": "application/json"})
    assert r.status_code == 401


@pytest.mark.skipif(not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
                    reason="chromium and chromium-driver are not installed")
def test_chromium_logs_in_with_a_host_cookie(site_factory, tmp_serverroot):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    site, pki = https_site(site_factory, tmp_serverroot)
    with headless_chromium([site.pki["cert"], pki["cert"]]) as driver:
        driver.get(site.url("/packages/echo"))
        WebDriverWait(driver, 20).until(ec.presence_of_element_located((By.NAME, "j_username")))
        states = [c for c in driver.get_cookies() if c["name"].startswith(NAME + "_st_")]
        assert len(states) == 1 and states[0]["path"] == "/" and states[0]["secure"] is True, states
        driver.find_element(By.NAME, "j_username").send_keys("alice")
        driver.find_element(By.NAME, "j_password").send_keys("alice-password")
        driver.find_element(By.ID, "submit").click()
        WebDriverWait(driver, 20).until(lambda d: d.current_url == site.url("/packages/echo"))
        assert '"remote_user": "alice"' in driver.page_source
        cookies = {c["name"]: c for c in driver.get_cookies()}
        session = cookies[NAME]
        assert session["secure"] is True and session["httpOnly"] is True and session["path"] == "/"
        assert "domain" not in session or not session["domain"].startswith(".")
        assert not [n for n in cookies if n.startswith(NAME + "_st_")]
        assert re.match(r"^[\w-]+\.[\w-]+\.[\w-]+$", session["value"])
