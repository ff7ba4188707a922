"""Issue 4: the real package managers (Debian's composer and pip, npm) install from a mirror that mod_bbauth
protects, authenticating with a Bitbucket HTTP access token; with a wrong token each fails clearly, without
following a redirect. The mirror is the one `make demo` serves (build/demo.py builds its repositories)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "build"))
import demo  # noqa: E402

ALICE = "BBDC-alicePersonalReadToken0000000000000000001"
WRONG = "BBDC-notAValidToken000000000000000000000000000"


@pytest.fixture
def mirror(site_factory):
    site = site_factory(conf=demo.demo_conf, start=False)
    demo.write_site_content(site.apache)
    site.apache.start()
    return site


def clean_env(home):
    """No proxy, CA or pip settings from this machine: only what the test gives."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}


def run(cmd, cwd, env, timeout=180):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def refused_without_redirect(mirror, text):
    log = mirror.apache.access_log()
    assert " 302 " not in "\n".join(l for l in log.splitlines() if "/packages/" in l)
    assert " 401 " in log
    return text


@pytest.mark.skipif(not shutil.which("composer"), reason="composer is not installed (build/deps.sh installs it)")
@pytest.mark.parametrize("token,ok", [(ALICE, True), (WRONG, False)])
def test_composer_installs_with_http_basic(mirror, tmp_path, token, ok):
    home = tmp_path / "home"
    (home / ".composer").mkdir(parents=True)
    env = dict(clean_env(home), COMPOSER_HOME=str(home / ".composer"), COMPOSER_CACHE_DIR=str(tmp_path / "cache"),
               COMPOSER_NO_INTERACTION="1", COMPOSER_ALLOW_SUPERUSER="1")
    (home / ".composer" / "auth.json").write_text(json.dumps(
        {"http-basic": {f"127.0.0.1:{mirror.apache.port}": {"username": "ci-bot", "password": token}}}))
    project = tmp_path / "project"
    project.mkdir()
    (project / "composer.json").write_text(json.dumps({
        "repositories": [{"type": "composer", "url": mirror.url("/packages/composer")}, {"packagist.org": False}],
        "require": {"demo/hello-bbauth": "1.0.0"},
        "config": {"secure-http": False},
    }))
    r = run(["composer", "install", "--no-progress", "--no-interaction"], project, env)
    if ok:
        assert r.returncode == 0, r.stdout + r.stderr
        assert (project / "vendor" / "demo" / "hello-bbauth" / "Hello.php").is_file()
    else:
        assert r.returncode != 0
        refused_without_redirect(mirror, r.stdout + r.stderr)
        assert "401" in r.stdout + r.stderr or "nvalid credentials" in r.stdout + r.stderr


@pytest.mark.parametrize("token,ok", [(ALICE, True), (WRONG, False)])
def test_pip_installs_with_the_token_in_the_index_url(mirror, tmp_path, token, ok):
    index = mirror.url("/packages/simple/").replace("http://", f"http://{token}@")
    target = tmp_path / "target"
    r = run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
             "--no-input", "--verbose", "--target", str(target), "--index-url", index, "--trusted-host", "127.0.0.1",
             "hello-bbauth==1.0.0"], tmp_path, clean_env(tmp_path))
    if ok:
        assert r.returncode == 0, r.stdout + r.stderr
        assert (target / "hello.py").is_file()
    else:
        assert r.returncode != 0
        # pip turns a 401 on an index page into "no matching distribution"; the 401 is in the access log.
        refused_without_redirect(mirror, r.stdout + r.stderr)
        assert "No matching distribution" in r.stderr
    assert token not in mirror.apache.error_log()


@pytest.mark.skipif(not shutil.which("npm"), reason="npm is not installed (build/deps.sh installs it)")
@pytest.mark.parametrize("token,ok", [(ALICE, True), (WRONG, False)])
def test_npm_installs_with_auth_token(mirror, tmp_path, token, ok):
    registry = mirror.url("/packages/npm/")
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text(json.dumps({"name": "consumer", "version": "1.0.0", "private": True}))
    (project / ".npmrc").write_text(f"registry={registry}\n//{registry.split('://', 1)[1]}:_authToken={token}\n")
    r = run(["npm", "install", "hello-bbauth@1.0.0", "--no-audit", "--no-fund", "--cache", str(tmp_path / "cache"),
             "--fetch-retries", "0"], project, clean_env(tmp_path))
    if ok:
        assert r.returncode == 0, r.stdout + r.stderr
        assert (project / "node_modules" / "hello-bbauth" / "index.js").is_file()
    else:
        assert r.returncode != 0
        refused_without_redirect(mirror, r.stdout + r.stderr)
        assert "E401" in r.stdout + r.stderr or "401" in r.stdout + r.stderr
