"""Issue 16: headless Chromium logs in to the demo's mirror through the fake Bitbucket's form and takes the
screenshots the README shows (docs/account-page.png, docs/denial-page.png), so that they stay current. Chromium
trusts exactly the fake's certificate."""

import contextlib
import os
import sys
from pathlib import Path

import pytest

from test_browser import CHROMEDRIVER, CHROMIUM, headless_chromium

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
sys.path.insert(0, str(REPO / "build"))
import demo  # noqa: E402

pytestmark = pytest.mark.skipif(not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
                                reason="chromium and chromium-driver are not installed (build/deps.sh installs them)")


@pytest.fixture
def mirror(site_factory):
    site = site_factory(conf=demo.demo_conf, start=False, cgi=True)
    demo.write_site_content(site.apache)
    site.apache.start()
    return site


@pytest.fixture
def chromium(mirror):
    with contextlib.ExitStack() as started:
        yield lambda: started.enter_context(headless_chromium([mirror.pki["cert"]], "--hide-scrollbars",
                                                              "--window-size=1000,1500"))


def log_in(site, driver, path, user):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(site.url(path))
    WebDriverWait(driver, 20).until(ec.presence_of_element_located((By.NAME, "j_username")))
    driver.find_element(By.NAME, "j_username").send_keys(user)
    driver.find_element(By.NAME, "j_password").send_keys(f"{user.split('@')[0]}-password")
    driver.find_element(By.ID, "submit").click()
    WebDriverWait(driver, 20).until(lambda d: d.current_url == site.url(path))


def shoot(driver, name):
    """Saves the page as docs/<name>, the whole height of it."""
    height = driver.execute_script("return Math.ceil(document.body.getBoundingClientRect().bottom)")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 1000, "height": min(height + 16, 4000),
                                                                  "deviceScaleFactor": 1, "mobile": False})
    DOCS.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(DOCS / name))
    assert (DOCS / name).stat().st_size > 5000


def test_account_page_screenshot(mirror, chromium):
    from selenium.webdriver.common.by import By

    driver = chromium()
    log_in(mirror, driver, "/account", "jane@example.com")
    assert driver.find_element(By.ID, "slug").text == "jane_example.com"
    # The copy buttons come from the module's own script, allowed by the page's CSP (script-src 'self').
    assert len(driver.find_elements(By.CSS_SELECTOR, "pre.snippet + button")) == len(demo.CLIENT_PATHS) + 1
    shoot(driver, "account-page.png")


def test_denial_page_screenshot(mirror, chromium):
    from selenium.webdriver.common.by import By

    driver = chromium()
    log_in(mirror, driver, "/packages/internal/", "alice")
    assert "read access to repository SEC/vault" in driver.find_element(By.ID, "reason").text
    shoot(driver, "denial-page.png")
