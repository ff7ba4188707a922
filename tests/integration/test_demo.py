"""Issue 2: `make demo` (build/demo.py) really serves a protected package mirror that a Bitbucket user can log in
to, and Ctrl-C stops everything it started."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import bbsite
from apache import free_port, port_open

REPO = Path(__file__).resolve().parents[2]
MODULE = os.environ.get("BBAUTH_MODULE")


class DemoSite(bbsite.Site):
    """Just enough of a bbsite.Site to drive the login against the running demo."""

    def __init__(self, base_url, fb_base_url, ca):
        self.base_url = base_url
        self.redirect_uri = base_url + bbsite.CALLBACK_PATH
        self.fb = type("FB", (), {"base_url": fb_base_url, "context_path": ""})()
        self.pki = {"ca": ca}

    def url(self, path):
        return self.base_url + path


def read_until(proc, pattern, timeout=60):
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line)
        m = re.search(pattern, line)
        if m:
            return m, "".join(out)
    raise AssertionError(f"demo did not print {pattern!r}:\n{''.join(out)}")


@pytest.mark.skipif(not MODULE or not os.path.isfile(MODULE), reason="needs the built module (make module)")
def test_demo_serves_a_protected_mirror_and_stops_on_ctrl_c():
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(REPO / "build" / "demo.py")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, DEMO_PORT=str(port)))
    try:
        m, banner = read_until(proc, r"Fake Bitbucket \(the identity provider\): (https://127\.0\.0\.1:(\d+))")
        fb_url, fb_port = m.group(1), int(m.group(2))
        m, banner2 = read_until(proc, r"a CA made just now: (\S+)")
        ca = m.group(1)
        m, banner3 = read_until(proc, r"^URL: (\S+)")
        base = m.group(1).rstrip("/")
        assert base == f"http://127.0.0.1:{port}"
        assert "alice-password" in banner + banner2 + banner3

        site = DemoSite(base, fb_url, ca)
        s = site.session()
        assert s.get(base + "/", allow_redirects=False).status_code == 200  # the public page
        site.login(s, "/packages/", user="bob")
        assert "bbauth_demo" in s.cookies

        who = s.get(base + "/packages/whoami", allow_redirects=False)
        assert who.status_code == 200 and "<td>bob</td>" in who.text
        packages = s.get(base + "/packages/composer/packages.json", allow_redirects=False).json()
        dist = packages["packages"]["demo/hello-bbauth"]["1.0.0"]["dist"]["url"]
        assert s.get(dist, allow_redirects=False).content[:2] == b"PK"
        assert "hello-bbauth" in s.get(base + "/packages/simple/", allow_redirects=False).text
        assert s.get(base + "/packages/npm/hello-bbauth").json()["dist-tags"]["latest"] == "1.0.0"
        anonymous = requests.get(base + "/packages/composer/packages.json", allow_redirects=False)
        assert anonymous.status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    assert not port_open(port) and not port_open(fb_port)
