"""pytest fixtures for mod_bbauth's integration tests (a real Apache; see apache.py for the whole API).

    tmp_serverroot   per-test directory readable by Apache's unprivileged children (NOT under pytest's tmp_path)
    apache_factory   make(extra_conf="", *, start=True, **Apache-options) -> Apache; all stopped at teardown
    echo_backend     a started apache.EchoBackend (upstream app for ProxyPass tests), stopped at teardown

A failing test's report gets, for each Apache it made, the tail of error_log and access_log as extra sections.
Every test in this directory is marked `integration`.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import apache as harness  # noqa: E402

LOG_TAIL_LINES = 80


def pytest_configure(config):
    config.addinivalue_line("markers", "integration: runs a real Apache httpd (tests/integration)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.fspath).startswith(HERE + os.sep):
            item.add_marker(pytest.mark.integration)


def pytest_report_header(config):
    mod = os.environ.get("BBAUTH_MODULE")
    if mod and not os.path.isfile(mod):
        mod += "  (MISSING: tests that load it will fail)"
    try:
        ver = harness.apache_version()
    except OSError as e:
        ver = f"not runnable: {e}"
    return [f"apache2: {harness.APACHE2} ({ver})", f"BBAUTH_MODULE: {mod or '(not set: tests loading it skip)'}"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if rep.failed and not getattr(item, "_bbauth_logs_reported", False):
        apaches = getattr(item, "_bbauth_apaches", [])
        for a in apaches:
            item._bbauth_logs_reported = True
            err = harness._tail(a.error_log(), LOG_TAIL_LINES) or "(empty)"
            acc = harness._tail(a.access_log(), 20) or "(empty)"
            rep.sections.append((f"apache {a.base_url} error_log tail ({a.error_log_path})", err))
            rep.sections.append((f"apache {a.base_url} access_log tail", acc))
        root = getattr(item, "_bbauth_tmp_serverroot", None)
        if root is not None:
            rep.sections.append(("tmp_serverroot", f"{root} (kept because the test failed)"))


def _test_failed(node):
    return any(getattr(getattr(node, "rep_" + w, None), "failed", False) for w in ("setup", "call"))


@pytest.fixture
def tmp_serverroot(request):
    """A fresh directory for this test, mode 0755 and under a world-searchable base (/tmp or
    $BBAUTH_TEST_TMPDIR), so that the children running as www-data can read what is in it."""
    base = os.environ.get("BBAUTH_TEST_TMPDIR", tempfile.gettempdir())
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.name)[:40]  # unix socket paths (cgid) must stay short
    d = Path(tempfile.mkdtemp(prefix=f"bbauth-it-{name}-", dir=base))
    os.chmod(d, 0o755)
    request.node._bbauth_tmp_serverroot = d
    yield d
    if not _test_failed(request.node) and not os.environ.get("BBAUTH_KEEP_TMP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def apache_factory(request, tmp_serverroot):
    """make(extra_conf="", *, start=True, **opts) -> Apache in tmp_serverroot/httpd-N (opts: see apache.Apache)."""
    made = []
    request.node._bbauth_apaches = made

    def make(extra_conf="", *, start=True, **opts):
        root = tmp_serverroot / f"httpd-{len(made) + 1}"
        a = harness.Apache(root, extra_conf, **opts)
        made.append(a)
        if start:
            a.start()
        return a

    yield make

    errors = []
    for a in reversed(made):
        try:
            a.stop()
        except Exception as e:  # keep stopping the others; report at the end
            errors.append(f"{a!r}: {e}")
    if errors:
        raise harness.ApacheError("stopping Apache failed:\n" + "\n".join(errors))


@pytest.fixture
def echo_backend():
    b = harness.EchoBackend().start()
    yield b
    b.stop()


@pytest.fixture
def site_factory(apache_factory, tmp_serverroot):
    """make(conf=bbsite.protected_conf, context_path="", key_count=1, start=True, **apache_opts) -> bbsite.Site:
    a fake Bitbucket over HTTPS (CA made now) and an Apache protecting /packages etc.; all stopped at teardown."""
    import bbsite
    fakes = []

    def make(**kw):
        site = bbsite.make_site(apache_factory, tmp_serverroot, **kw)
        fakes.append(site.fb)
        return site

    yield make
    for fb in fakes:
        fb.stop()


@pytest.fixture
def site(site_factory):
    """The standard protected site (see bbsite.py), started."""
    return site_factory()
