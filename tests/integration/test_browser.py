"""Issue 2: one real login with a real browser: headless Chromium (Debian's chromium + chromium-driver, driven by
selenium) goes to a protected page, is sent to the fake Bitbucket's login form, logs in, and comes back with a
session, once with OAuth 2 and once with OAuth 1.0a (issue 3). Chromium trusts exactly the fake's certificate (by
its public key), nothing else."""

import base64
import contextlib
import hashlib
import os
import shutil
import tempfile

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from apache import free_port
from oauth1site import make_oauth1_site

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
                                reason="chromium and chromium-driver are not installed (build/deps.sh installs them)")


def spki_sha256_b64(cert_path):
    """What Chromium's --ignore-certificate-errors-spki-list wants: base64(SHA-256(SubjectPublicKeyInfo DER))."""
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(params=[2, 1], ids=["oauth2", "oauth1"])
def site(request, site_factory, tmp_serverroot):
    """The standard protected site, logging in with OAuth 2 or (issue 3) OAuth 1.0a: the same browser flow."""
    if request.param == 1:
        return make_oauth1_site(site_factory, tmp_serverroot)
    return site_factory()


@contextlib.contextmanager
def headless_chromium(certs, *extra_args):
    """Debian's Chromium, headless, with a profile of its own, trusting the test servers' certificates `certs` (PEM
    paths) by their SPKI; ended on leaving: the browser, then chromedriver (the one process started here)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="bbauth-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    spkis = ",".join(spki_sha256_b64(cert) for cert in certs)
    for arg in ("--headless", "--no-sandbox", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-gpu", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                f"--ignore-certificate-errors-spki-list={spkis}", *extra_args):
        opts.add_argument(arg)
    service = Service(CHROMEDRIVER, port=free_port())
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        service.stop()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def chromium(site):
    with headless_chromium([site.pki["cert"]]) as driver:
        yield driver


def test_chromium_logs_in_through_bitbucket_form(site, chromium):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    chromium.get(site.url("/packages/echo"))
    WebDriverWait(chromium, 20).until(ec.presence_of_element_located((By.NAME, "j_username")))
    assert chromium.current_url.startswith(site.fb.base_url + "/login")

    chromium.find_element(By.NAME, "j_username").send_keys("alice")
    chromium.find_element(By.NAME, "j_password").send_keys("alice-password")
    chromium.find_element(By.ID, "submit").click()

    WebDriverWait(chromium, 20).until(lambda d: d.current_url == site.url("/packages/echo"))
    assert '"remote_user": "alice"' in chromium.page_source

    cookies = {c["name"]: c for c in chromium.get_cookies()}
    session = cookies["bbauth_session"]
    assert session["httpOnly"] is True
    assert session["path"] == "/"
    assert session.get("sameSite") == "Lax"
    # The login-state cookie was removed by the callback.
    assert not [n for n in cookies if n.startswith("bbauth_session_st_")]
