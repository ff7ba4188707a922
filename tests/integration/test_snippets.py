"""Issue 16: the account page's lines work verbatim. A browser logs in, reads each client's block off the page,
puts a token where the placeholder is, writes it where the page says (a file under a fresh HOME, or a shell), and
runs the real client (Debian's composer and pip, npm; pnpm, Yarn 4 and Yarn 1 installed now from the npm registry)
against the demo's mirror: the install succeeds."""

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


# Installed now from the npm registry (pinned; the page's lines are what is tested, not the newest client), each into
# its own directory under the test's temporary directory.
NPM_CLIENTS = {
    "pnpm": ("pnpm@10.34.9", "pnpm/bin/pnpm.cjs"),
    "yarn": ("@yarnpkg/cli-dist@4.18.1", "@yarnpkg/cli-dist/bin/yarn.js"),  # Yarn Berry: the page's ~/.yarnrc.yml
    "yarn1": ("yarn@1.22.22", "yarn/bin/yarn.js"),  # Yarn 1: the npm lines, and what the yarn block's place adds
}
INSTALL_TIMEOUT = 180


def npm_registry_unreachable():
    """Why the npm registry (this machine's npm settings) cannot be reached, or None."""
    try:
        r = subprocess.run(["npm", "ping"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "npm ping timed out after 60 s"
    if r.returncode == 0:
        return None
    lines = [line.removeprefix("npm error ") for line in (r.stdout + r.stderr).splitlines()]
    return next((line for line in lines if "failed, reason:" in line), None) or (lines or ["npm ping failed"])[-1]


@pytest.fixture(scope="module")
def npm_client_dir(tmp_path_factory):
    """client -> the JavaScript file to run with node, installed on first use; skips only when the registry is
    unreachable (an install that fails with the registry up is a failure)."""
    root = tmp_path_factory.mktemp("npm-clients")
    installed = {}

    def get(client):
        if client not in installed:
            spec, script = NPM_CLIENTS[client]
            prefix = root / client
            cmd = ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save",
                   "--no-package-lock", spec]
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
                                   stdin=subprocess.DEVNULL)
                failure = None if r.returncode == 0 else r.stdout + r.stderr
            except subprocess.TimeoutExpired:
                failure = f"npm install {spec} took more than {INSTALL_TIMEOUT} s"
            if failure:
                why = npm_registry_unreachable()
                if why:
                    pytest.skip(f"the npm registry cannot be reached to install {spec}: {why}")
                pytest.fail(f"npm install {spec} failed with the registry reachable: {failure}")
            installed[client] = prefix / "node_modules" / script
            assert installed[client].is_file(), installed[client]
        return installed[client]
    return get


@pytest.mark.parametrize("client,snippet,command", [
    ("npm", "npm", ["install", "hello-bbauth@1.0.0", "--no-audit", "--no-fund", "--fetch-retries", "0"]),
    ("pnpm", "pnpm", ["add", "hello-bbauth@1.0.0"]),
    ("yarn", "yarn", ["add", "hello-bbauth@1.0.0"]),
    ("yarn1", "npm", ["add", "hello-bbauth@1.0.0", "--non-interactive", "--no-lockfile"]),
], ids=["npm", "pnpm", "yarn-berry", "yarn1"])
def test_npm_family_lines_install(mirror, page_snippets, npm_client_dir, tmp_path, client, snippet, command):
    if not shutil.which("npm"):
        pytest.skip("npm is not installed (build/deps.sh installs it)")
    home = tmp_path / "home"
    home.mkdir()
    apply(page_snippets, snippet, home)
    if client == "yarn1":
        # The yarn block's place says what Yarn 1 wants besides the npm lines in ~/.npmrc: do that too.
        where = page_snippets["yarn"][0]
        assert "Yarn 1 reads the npm lines from ~/.npmrc and also wants always-auth=true there" in where, where
        with open(home / ".npmrc", "a") as f:
            f.write("always-auth=true\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text(json.dumps({"name": "consumer", "version": "1.0.0", "private": True}))
    env = clean_env(home)
    if client == "npm":
        argv = ["npm"] + command + ["--cache", str(tmp_path / "cache")]
    else:
        argv = ["node", str(npm_client_dir(client))] + command
    if client == "pnpm":
        env["npm_config_update_notifier"] = "false"
    if client == "yarn":
        # Not registry settings: a project of its own (an empty yarn.lock), node_modules rather than Plug'n'Play so
        # that the installed file can be looked at, and nothing sent home.
        (project / "yarn.lock").write_text("")
        env.update(YARN_NODE_LINKER="node-modules", YARN_ENABLE_TELEMETRY="0", YARN_ENABLE_PROGRESS_BARS="0")
    if client == "yarn1":
        env.update(YARN_CACHE_FOLDER=str(tmp_path / "cache"), YARN_DISABLE_SELF_UPDATE_CHECK="true")
    r = run(argv, project, env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (project / "node_modules" / "hello-bbauth" / "index.js").is_file()
    assert_token_kept_out_of_logs(mirror)
