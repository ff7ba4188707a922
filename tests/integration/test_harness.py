"""Smoke tests of the integration harness itself (apache.py + conftest.py), mostly WITHOUT mod_bbauth."""

import os
import re
import subprocess
import sys
import textwrap
import time

import pytest
import requests

import apache as harness

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def http():
    s = requests.Session()
    s.trust_env = False  # no proxies / CA bundles from the environment
    yield s
    s.close()


def test_static_file(apache_factory, http):
    a = apache_factory(load_bbauth=False)
    a.write_htdoc("sub/page.txt", "hello from the harness\n")
    r = http.get(a.url("/sub/page.txt"))
    assert r.status_code == 200
    assert r.text == "hello from the harness\n"
    assert r.headers["Content-Type"].startswith("text/plain")
    r = http.get(a.url("/"))
    assert r.status_code == 200 and r.text == "harness index page\n"
    assert http.get(a.url("/nope")).status_code == 404
    a.wait_for_log(r'"GET /sub/page.txt HTTP/1.1" 200 ', log="access")
    assert "resuming normal operations" in a.error_log_since(a.start_mark)


def test_echo_cgi_shows_request(apache_factory, http):
    a = apache_factory("ScriptAlias /elsewhere/echo @ECHO@\n", load_bbauth=False)
    r = http.post(a.url("/cgi-bin/echo/extra/path?x=1"), data="the body",
                  headers={"X-Custom-Header": "custom value", "Authorization": "Bearer abc"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    j = r.json()
    assert j["method"] == "POST"
    assert j["headers"]["X-Custom-Header"] == "custom value"
    assert j["headers"]["Authorization"] == "Bearer abc"  # CGIPassAuth On
    assert j["path_info"] == "/extra/path" and j["query_string"] == "x=1"
    assert j["body"] == "the body"
    assert j["remote_user"] is None and j["auth_type"] is None and j["bitbucket"] == {}
    assert j["env"]["SERVER_PORT"] == str(a.port)
    # the placeholder in extra_conf made the echo reachable elsewhere too
    j = http.get(a.url("/elsewhere/echo"), headers={"X-Other": "1"}).json()
    assert j["script_name"] == "/elsewhere/echo" and j["headers"]["X-Other"] == "1"


def test_echo_cgi_sees_auth_env(apache_factory, http):
    """REMOTE_USER / AUTH_TYPE / custom env reach the CGI (what mod_bbauth's identity will look like)."""
    a = apache_factory(load_bbauth=False)
    a.write("conf/htpasswd", "alice:{SHA}" + __import__("base64").b64encode(
        __import__("hashlib").sha1(b"pw").digest()).decode() + "\n")
    a.extra_conf = """
        LoadModule authn_file_module /usr/lib/apache2/modules/mod_authn_file.so
        <Location /cgi-bin/echo>
            AuthType Basic
            AuthName test
            AuthUserFile @ROOT@/conf/htpasswd
            Require valid-user
            SetEnv BITBUCKET_USER alice
        </Location>
    """
    a.restart()
    assert http.get(a.url("/cgi-bin/echo")).status_code == 401
    j = http.get(a.url("/cgi-bin/echo"), auth=("alice", "pw")).json()
    assert j["remote_user"] == "alice" and j["auth_type"] == "Basic"
    assert j["bitbucket"] == {"BITBUCKET_USER": "alice"}


def test_configtest_reports_file_and_line(apache_factory):
    a = apache_factory(load_bbauth=False, start=False)
    rc, out = a.configtest("# a comment\n<Location /x>\n    NoSuchDirective on\n</Location>\n")
    assert rc != 0
    assert f"line 3 of {a.extra_conf_path}" in out, out
    assert "NoSuchDirective" in out
    rc, out = a.configtest("")
    assert rc == 0, out
    assert "Syntax OK" in out


def test_start_failure_raises_with_error_log(apache_factory):
    a = apache_factory("Include /nonexistent/file.conf\n", load_bbauth=False, start=False)
    with pytest.raises(harness.ApacheError) as ei:
        a.start()
    assert "/nonexistent/file.conf" in str(ei.value)
    assert not a.processes()


def test_two_apaches_at_once(apache_factory, http):
    a = apache_factory(load_bbauth=False)
    b = apache_factory(load_bbauth=False, mpm="prefork")
    assert a.port != b.port and a.root != b.root
    a.write_htdoc("who.txt", "a\n")
    b.write_htdoc("who.txt", "b\n")
    assert http.get(a.url("/who.txt")).text == "a\n"
    assert http.get(b.url("/who.txt")).text == "b\n"
    # prefork uses mod_cgi instead of mod_cgid
    assert http.get(b.url("/cgi-bin/echo"), headers={"X-B": "b"}).json()["headers"]["X-B"] == "b"
    assert set(a.processes()).isdisjoint(b.processes())


def test_stop_leaves_nothing_behind(apache_factory, http):
    a = apache_factory(load_bbauth=False)
    http.get(a.url("/cgi-bin/echo"))  # make cgid do some work too
    pid = a.pid
    procs = a.processes()
    assert pid in procs and len(procs) >= 3  # parent, cgid daemon, children
    t0 = time.monotonic()
    a.stop()
    assert time.monotonic() - t0 < 5
    assert not harness.pid_alive(pid)
    assert not any(harness.pid_alive(p) for p in procs)
    assert a.processes() == [] and not a.is_running()
    assert not a.pid_path.exists()
    assert not harness.port_open(a.port)
    a.stop()  # idempotent
    # and it can start again
    a.start()
    assert http.get(a.url("/")).status_code == 200


def test_children_drop_privileges(apache_factory):
    a = apache_factory(load_bbauth=False)

    def uids():
        out = {}
        for p in a.processes():
            try:
                with open(f"/proc/{p}/status") as f:
                    out[p] = int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))
            except OSError:
                pass
        return out

    want = a.run_uid if os.geteuid() == 0 else os.geteuid()
    deadline = time.monotonic() + 5
    while True:  # start() returns once the port accepts; a just-forked child may not have setuid() yet
        u = uids()
        children = {uid for p, uid in u.items() if p != a.pid}
        if children == {want} or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert u[a.pid] == os.geteuid()
    assert children == {want}
    if os.geteuid() == 0:
        assert want != 0


def test_graceful_restart_reloads_config(apache_factory, http):
    a = apache_factory(load_bbauth=False)
    assert "X-Harness" not in http.get(a.url("/")).headers
    a.restart(extra_conf='Header always set X-Harness "one"\n')
    assert http.get(a.url("/")).headers["X-Harness"] == "one"
    a.restart(graceful=False, extra_conf=lambda ap: f'Header always set X-Harness "port-{ap.port}"\n')
    assert http.get(a.url("/")).headers["X-Harness"] == f"port-{a.port}"
    with pytest.raises(harness.ApacheError, match="Invalid command"):
        a.restart(extra_conf="Bogus directive\n")
    assert http.get(a.url("/")).headers["X-Harness"] == f"port-{a.port}"  # old config still served


@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_ready_and_stop_with_quiet_loglevel(apache_factory, http, mpm):
    a = apache_factory(load_bbauth=False, log_level="emerg", mpm=mpm)
    assert http.get(a.url("/")).status_code == 200
    a.stop()
    assert a.processes() == []


def test_error_log_since_mark(apache_factory, http):
    a = apache_factory(load_bbauth=False, log_level="info")
    mark = a.log_mark()
    assert a.error_log_since(mark) == ""
    http.get(a.url("/cgi-bin/does-not-exist"))
    m = a.wait_for_log(r"does-not-exist", since=mark)
    assert m
    assert a.error_log().endswith(a.error_log_since(mark))


def test_proxy_to_echo_backend_sees_raw_headers(apache_factory, echo_backend, http):
    a = apache_factory(f"ProxyPass /app/ {echo_backend.url}/\n", load_bbauth=False, proxy=True)
    r = http.get(a.url("/app/thing?q=1"), headers={"X_Under_Score": "u", "X-Dash": "d"})
    assert r.status_code == 200
    rec = echo_backend.requests[-1]
    assert rec["path"] == "/thing?q=1"
    assert harness.header_values(rec["headers"], "X_Under_Score") == ["u"]
    assert harness.header_values(rec["headers"], "x-dash") == ["d"]
    assert r.json() == rec


def test_https(apache_factory, tmp_serverroot):
    cert, key = tmp_serverroot / "cert.pem", tmp_serverroot / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    a = apache_factory(load_bbauth=False, ssl=(cert, key))
    assert a.url("/x").startswith("https://127.0.0.1:")
    s = requests.Session()
    s.trust_env = False
    r = s.get(a.url("/"), verify=str(cert))
    assert r.status_code == 200 and r.text == "harness index page\n"


def test_tmp_path_is_refused_when_root(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only relevant when running as root")
    if os.stat(tmp_path.parent.parent).st_mode & 0o001:
        pytest.skip("pytest's basetemp is world-searchable here")
    with pytest.raises(harness.ApacheError, match="tmp_serverroot"):
        harness.Apache(tmp_path / "root", load_bbauth=False)


def test_bbauth_module_loads(apache_factory, http):
    """Only a smoke test of LoadModule: skipped when BBAUTH_MODULE is unset or missing."""
    a = apache_factory(load_bbauth=True, bbauth_missing="skip", log_level="info bbauth:debug")
    assert "bbauth_module" in a.conf_path.read_text()
    assert http.get(a.url("/")).status_code == 200


def test_failing_test_reports_logs_and_stops_apache(tmp_serverroot):
    """Run a deliberately failing test in a child pytest using these fixtures: its report must show the
    error_log tail, and its Apache must be gone afterwards."""
    inner = tmp_serverroot / "inner"
    inner.mkdir()
    (inner / "conftest.py").write_text(textwrap.dedent(f"""
        import importlib.util
        _spec = importlib.util.spec_from_file_location("harness_conftest", {os.path.join(HERE, "conftest.py")!r})
        _mod = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_mod)
        globals().update({{k: v for k, v in vars(_mod).items() if not k.startswith("__")}})
    """))
    (inner / "test_inner.py").write_text(textwrap.dedent("""
        def test_boom(apache_factory):
            a = apache_factory(load_bbauth=False)
            open("roots.txt", "w").write(str(a.root))
            assert False, "deliberate"
    """))
    env = dict(os.environ, BBAUTH_TEST_TMPDIR=str(tmp_serverroot), PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(inner),
                        str(inner / "test_inner.py")], cwd=inner, env=env, capture_output=True, text=True,
                       timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert "deliberate" in out
    assert "error_log tail" in out and "resuming normal operations" in out, out
    assert "kept because the test failed" in out
    root = (inner / "roots.txt").read_text()
    leftovers = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmd = open(f"/proc/{d}/cmdline", "rb").read()
            except OSError:
                continue
            if root.encode() in cmd and harness.pid_alive(int(d)):
                leftovers.append(d)
    assert leftovers == []


def test_apache_env_from_outside(apache_factory, http, monkeypatch):
    """$BBAUTH_APACHE_ENV (how `make test-asan` preloads the ASan runtime) reaches apache2, @LOGS@ replaced."""
    monkeypatch.setenv("BBAUTH_APACHE_ENV", '{"BBAUTH_T": "log_path=@LOGS@/sanitizer"}')
    a = apache_factory("PassEnv BBAUTH_T\n", load_bbauth=False)
    j = http.get(a.url("/cgi-bin/echo")).json()
    assert j["env"]["BBAUTH_T"] == f"log_path={a.logs_dir}/sanitizer"


def test_sanitizer_report_fails_stop(apache_factory):
    """A sanitizer's report in logs/ makes stop() raise, so the test whose Apache wrote it fails."""
    a = apache_factory(load_bbauth=False)
    (a.logs_dir / "sanitizer.12345").write_text("==12345==ERROR: AddressSanitizer: heap-use-after-free\n")
    with pytest.raises(harness.ApacheError, match="heap-use-after-free"):
        a.stop()
    (a.logs_dir / "sanitizer.12345").unlink()
    a.stop()
