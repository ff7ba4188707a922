"""Issue 16: the account page's lines work verbatim. A browser logs in, reads each client's block off the page,
puts a token where the placeholder is, writes it where the page says (a file under a fresh HOME, or a shell), and
runs the real client (Debian's composer and pip, npm; others when installed) against the demo's mirror: the
install succeeds."""

import json
import shutil
import subprocess
import sys

import pytest

from test_account import ALICE, account_page, logged_in, mirror, snippets  # noqa: F401 (mirror: a fixture)

PLACEHOLDER = "<token>"


@pytest.fixture(scope="module")
def page_snippets(mirror):
    return snippets(account_page(mirror, logged_in(mirror)).text)


def clean_env(home):
    """Nothing from this machine: no proxy, CA, pip or npm settings; only the fresh HOME the page's lines go to."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}


def run(cmd, cwd, env, timeout=180):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def apply(page_snippets, client, home):
    """Does what the page says for `client` with a real token: writes its lines to the file it names under home,
    or runs them in a shell there."""
    where, text = page_snippets[client]
    text = text.replace(PLACEHOLDER, ALICE)
    if where.startswith("a shell"):
        r = run(["/bin/sh", "-e", "-c", text], home, clean_env(home))
        assert r.returncode == 0, r.stdout + r.stderr
        return
    path = where.split(" (")[0]
    assert path.startswith("~/"), where
    target = home / path[2:]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def assert_token_kept_out_of_logs(mirror):
    assert ALICE not in mirror.apache.error_log()
    assert ALICE not in mirror.apache.access_log()


@pytest.mark.skipif(not shutil.which("composer"), reason="composer is not installed (build/deps.sh installs it)")
def test_composer_lines_install(mirror, page_snippets, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    apply(page_snippets, "composer", home)
    project = tmp_path / "project"
    project.mkdir()
    (project / "composer.json").write_text(json.dumps({
        "repositories": [{"packagist.org": False}], "require": {"demo/hello-bbauth": "1.0.0"}}))
    env = dict(clean_env(home), COMPOSER_NO_INTERACTION="1", COMPOSER_ALLOW_SUPERUSER="1",
               COMPOSER_CACHE_DIR=str(tmp_path / "cache"))
    r = run(["composer", "install", "--no-progress", "--no-interaction"], project, env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (project / "vendor" / "demo" / "hello-bbauth" / "Hello.php").is_file()
    assert_token_kept_out_of_logs(mirror)


def test_pip_lines_install(mirror, page_snippets, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    apply(page_snippets, "pip", home)
    target = tmp_path / "target"
    r = run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
             "--no-input", "--target", str(target), "hello-bbauth==1.0.0"], tmp_path, clean_env(home))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (target / "hello.py").is_file()
    assert_token_kept_out_of_logs(mirror)


@pytest.mark.parametrize("client,command", [
    ("npm", ["npm", "install", "hello-bbauth@1.0.0", "--no-audit", "--no-fund", "--fetch-retries", "0"]),
    ("pnpm", ["pnpm", "add", "hello-bbauth@1.0.0"]),
], ids=["npm", "pnpm"])
def test_npm_family_lines_install(mirror, page_snippets, tmp_path, client, command):
    if not shutil.which(command[0]):
        pytest.skip(f"{command[0]} is not installed")
    home = tmp_path / "home"
    home.mkdir()
    apply(page_snippets, client, home)
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text(json.dumps({"name": "consumer", "version": "1.0.0", "private": True}))
    r = run(command + ["--cache", str(tmp_path / "cache")] if client == "npm" else command, project,
            clean_env(home))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (project / "node_modules" / "hello-bbauth" / "index.js").is_file()
    assert_token_kept_out_of_logs(mirror)
