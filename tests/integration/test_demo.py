"""Issue 2: `make demo` (build/demo.py) really serves a protected package mirror that a Bitbucket user can log in
to, and Ctrl-C or SIGTERM stops every process it started."""

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

import bbsite
from apache import free_port, pid_alive, port_open

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


class Output:
    """The demo's output, read by a thread (a demo that prints nothing must not hang the test)."""

    def __init__(self, proc):
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, pattern, timeout=60):
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"demo did not print {pattern!r}:\n{''.join(self.seen)}")
            self.seen.append(line)
            m = re.search(pattern, line)
            if m:
                return m

    def text(self):
        return "".join(self.seen)


def children(pid):
    """PIDs whose parent is `pid` (Apache's children)."""
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                found.append(int(d))
    return found


@pytest.mark.skipif(not MODULE or not os.path.isfile(MODULE), reason="needs the built module (make module)")
@pytest.mark.parametrize("stop_signal,port_busy", [(signal.SIGINT, False), (signal.SIGTERM, True)],
                         ids=["ctrl-c", "sigterm-port-busy"])
def test_demo_serves_a_protected_mirror_and_stops(stop_signal, port_busy):
    wanted = free_port()
    blocker = socket.socket()
    if port_busy:
        blocker.bind(("127.0.0.1", wanted))
        blocker.listen()
    proc = subprocess.Popen([sys.executable, str(REPO / "build" / "demo.py")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, DEMO_PORT=str(wanted)))
    out = Output(proc)
    started = []
    try:
        if port_busy:
            out.until(rf"port {wanted} is busy, using \d+ instead")
        m = out.until(r"Fake Bitbucket \(the identity provider\): (https://127\.0\.0\.1:(\d+))")
        fb_url, fb_port = m.group(1), int(m.group(2))
        ca = out.until(r"a CA made just now: (\S+)").group(1)
        m = out.until(r"Started: Apache pid (\d+), fake Bitbucket pid (\d+)")
        apache_pid, fb_pid = int(m.group(1)), int(m.group(2))
        started = [apache_pid, fb_pid] + children(apache_pid)
        base = out.until(r"^URL: (\S+)").group(1).rstrip("/")
        port = int(base.rsplit(":", 1)[1])
        assert (port != wanted) if port_busy else (base == f"http://127.0.0.1:{wanted}")
        for user in ("alice-password", "bob-password", "jane@example.com", "jane-password", "carol"):
            assert user in out.text()
        assert len(started) > 2 and all(pid_alive(p) for p in started)

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
        npm = s.get(base + "/packages/npm/hello-bbauth", allow_redirects=False).json()
        assert npm["dist-tags"]["latest"] == "1.0.0"
        assert s.get(npm["versions"]["1.0.0"]["dist"]["tarball"], allow_redirects=False).content[:2] == b"\x1f\x8b"
        anonymous = requests.get(base + "/packages/composer/packages.json", allow_redirects=False)
        assert anonymous.status_code == 401

        # Issue 16: the account page, a denial that explains, and the admin's pages, all printed in the banner.
        for path in ("/account", "/packages/internal/", "/bbauth/setup", "/bbauth/metrics", "/.well-known/jwks.json"):
            assert base + path in out.text()
        account = s.get(base + "/account", allow_redirects=False)
        assert account.status_code == 200 and '<dd id="username">bob</dd>' in account.text
        assert f"BBAuthClientSetup" not in account.text and f"{base}/packages/simple/" in account.text
        assert s.get(base + "/packages/internal/", allow_redirects=False).status_code == 200
        assert s.get(base + "/bbauth/setup", allow_redirects=False).status_code == 200
        assert s.get(base + "/bbauth/metrics", allow_redirects=False).status_code == 200
        assert requests.get(base + "/.well-known/jwks.json", allow_redirects=False).json()["keys"]
        alice = site.session()
        site.login(alice, "/packages/", user="alice")
        internal = alice.get(base + "/packages/internal/", allow_redirects=False)
        assert internal.status_code == 403 and "read access to repository SEC/vault" in internal.text
    finally:
        proc.send_signal(stop_signal)  # the only process this test signals: the demo it started
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            blocker.close()
    assert proc.returncode == 0, out.text()
    out.until(r"demo: stopping")
    assert [p for p in started if pid_alive(p)] == []
    assert not port_open(port) and not port_open(fb_port)
