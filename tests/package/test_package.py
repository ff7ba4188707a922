"""Issue 17: the Debian package in the system Apache (/etc/apache2, apache2ctl), as an admin uses it: `apt install`
of the .deb that `make deb` built, the module enabled without breaking the running Apache, a key made with the
packaged bbauth-keygen, `apachectl -t`, a real login against the fake Bitbucket, then `apt-get purge`: nothing of
the package left, and Apache still starts.

It changes the machine while it runs, so it only runs as root with BBAUTH_PACKAGE_TEST=1 (`make test-package`,
which .ci/run calls on its disposable machine), and only when the system Apache is not running and the package is
not installed. The system Apache listens on a free port of 127.0.0.1 of its own (ports.conf is replaced, then put
back), writes its error log here, and is stopped by its own PID. At the end, /etc/apache2, /var/lib/apache2 (the
a2enmod state) and the package database are exactly as they were found."""

import hashlib
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import bbsite  # noqa: E402
import fake_bitbucket  # noqa: E402
import testca  # noqa: E402

PACKAGE = "libapache2-mod-bbauth"
APACHECTL = "/usr/sbin/apache2ctl"
ETC = Path("/etc/apache2")
STATE = Path("/var/lib/apache2")
PID_FILE = Path("/run/apache2/apache2.pid")
PORTS_CONF = ETC / "ports.conf"
SITE_NAME = "bbauth-package-test"
WAIT_SECONDS = 60

pytestmark = pytest.mark.skipif(os.environ.get("BBAUTH_PACKAGE_TEST") != "1" or os.geteuid() != 0,
                                reason="changes the system Apache: root and BBAUTH_PACKAGE_TEST=1 only "
                                       "(make test-package)")


def run(*cmd, check=True, timeout=300):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    assert not check or r.returncode == 0, f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def tree(root):
    """Every path under root: its type and mode, and a symlink's target or a file's SHA-256."""
    listing = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            what = "-> " + os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = "dir"
        listing[str(path.relative_to(root))] = (oct(st.st_mode), what)
    return listing


def package_database():
    """dpkg -l as data: every package the database knows, with its version and state."""
    out = run("dpkg-query", "-W", "-f", "${binary:Package} ${Version} ${db:Status-Abbrev}\n").stdout
    return sorted(out.splitlines())


def machine_state():
    return {"etc": tree(ETC), "state": tree(STATE), "packages": package_database()}


def installed(package=PACKAGE):
    r = run("dpkg-query", "-W", "-f", "${db:Status-Abbrev}", package, check=False)
    return r.returncode == 0 and r.stdout.startswith("ii")


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def running_pid():
    """The system Apache's parent, from its pid file, when it runs."""
    try:
        pid = int(PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def wait_for(what, predicate):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"waited {WAIT_SECONDS} s for {what}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def the_deb():
    """The .deb that `make deb` left at the top of the tree, for debian/changelog's version."""
    version = subprocess.run(["dpkg-parsechangelog", "-S", "Version", "-l", str(REPO / "debian" / "changelog")],
                             check=True, capture_output=True, text=True).stdout.strip()
    debs = sorted(REPO.glob(f"{PACKAGE}_{version}_*.deb"))
    assert len(debs) == 1, f"run make deb first (found {debs})"
    return debs[0], version


class SystemApache:
    """The system Apache on a port of its own: ports.conf says only `Listen 127.0.0.1:<port>` and where the main
    error log goes, until restore(). url() makes it usable as a bbsite.Site's apache."""

    def __init__(self, work):
        self.port = free_port()
        self.error_log = work / "error.log"
        self.saved_ports_conf = PORTS_CONF.read_bytes()
        self.saved_ports_times = (PORTS_CONF.stat().st_atime_ns, PORTS_CONF.stat().st_mtime_ns)
        self.pid = None
        PORTS_CONF.write_text(f"Listen 127.0.0.1:{self.port}\nErrorLog {self.error_log}\n")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def ctl(self, *args, check=True):
        """apache2ctl's exit status checked; its stdout and stderr as one text."""
        r = run(APACHECTL, *args, check=check)
        return r.stdout + r.stderr

    def configured_count(self):
        """How many times the configuration was (re)read: httpd's line after each start and graceful restart."""
        text = self.error_log.read_text() if self.error_log.exists() else ""
        return len(re.findall(r"configured -- resuming normal operations", text))

    def start(self):
        before = self.configured_count()
        self.ctl("start")
        wait_for("the system Apache to start", lambda: running_pid() and self.configured_count() > before)
        self.pid = running_pid()

    def graceful(self):
        before = self.configured_count()
        self.ctl("graceful")
        wait_for("a graceful restart", lambda: self.configured_count() > before)
        assert running_pid() == self.pid

    def stop(self):
        if self.pid is None:
            return
        self.ctl("stop", check=False)
        try:
            wait_for("the system Apache to stop", lambda: not alive(self.pid))
        except AssertionError:
            os.kill(self.pid, signal.SIGTERM)   # ours: started above, by this PID
            wait_for("the system Apache to stop after SIGTERM", lambda: not alive(self.pid))
        self.pid = None

    def restore(self):
        self.stop()
        PORTS_CONF.write_bytes(self.saved_ports_conf)
        os.utime(PORTS_CONF, ns=self.saved_ports_times)


def site_conf(site, work, signing_key, session_key):
    """A virtual host on the test's port: /packages protected, its logs in work/."""
    return f"""<VirtualHost 127.0.0.1:{site.apache.port}>
    ServerName 127.0.0.1
    DocumentRoot {work}/htdocs
    ErrorLog {work}/site-error.log
    CustomLog {work}/site-access.log "%u %>s %r"
    <Directory {work}/htdocs>
        Require all granted
    </Directory>
    BBAuthBitbucketURL {site.fb.base_url}
    BBAuthClientID {bbsite.CLIENT_ID}
    BBAuthClientSecret {bbsite.CLIENT_SECRET}
    BBAuthRedirectURI {site.redirect_uri}
    BBAuthSessionKey {session_key}
    BBAuthSigningKey {signing_key}
    BBAuthCAFile {site.pki['ca']}
    BBAuthTimeout 5
    <Location /packages>
        AuthType Bitbucket
        Require valid-user
    </Location>
</VirtualHost>
"""


@pytest.fixture
def work(request):
    """A directory the system Apache's children (www-data) can read; kept when the test failed."""
    failed_before = request.session.testsfailed
    d = Path(tempfile.mkdtemp(prefix="bbauth-package-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    if request.session.testsfailed == failed_before:
        shutil.rmtree(d, ignore_errors=True)


# What bbauth.load's "# Depends:" enables that a purge leaves enabled (the socache providers; the authn/authz
# modules are enabled on every Debian Apache already): put back as found.
DEPENDENCIES = {"socache_shmcb", "socache_dbm"}


class Machine:
    """The machine as found (/etc/apache2, /var/lib/apache2, the package database) and what puts it back."""

    def __init__(self, work):
        self.found = machine_state()
        self.enabled_before = {name for name in DEPENDENCIES if (ETC / "mods-enabled" / f"{name}.load").exists()}
        self.apache = SystemApache(work)

    def put_back(self):
        """Idempotent: also the cleanup of a test that failed half-way."""
        self.apache.restore()
        for link in (ETC / "sites-enabled" / f"{SITE_NAME}.conf", ETC / "sites-available" / f"{SITE_NAME}.conf"):
            if link.is_symlink() or link.exists():
                link.unlink()
        run("find", str(STATE), "-type", "f", "-name", SITE_NAME, "-delete", check=False)
        if installed() or any(line.startswith(PACKAGE + " ") for line in package_database()):
            run("apt-get", "purge", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", PACKAGE, check=False)
        for name in DEPENDENCIES - self.enabled_before:
            if (ETC / "mods-enabled" / f"{name}.load").exists():
                # a2enmod bbauth enabled it as a dependency; a2dismod bbauth leaves it (README.Debian says so)
                run("a2dismod", "-q", "-p", name, check=False)
        # State directories of a2enmod that appeared empty (disabled_by_maint, ...): made by apache2's scripts
        for d in sorted(STATE.rglob("*"), reverse=True):
            if d.is_dir() and not any(d.iterdir()) and str(d.relative_to(STATE)) not in self.found["state"]:
                d.rmdir()


@pytest.fixture
def machine(work):
    if running_pid() is not None:
        pytest.skip("the system Apache is running: this test never stops an Apache it did not start")
    if installed():
        pytest.skip(f"{PACKAGE} is installed already")
    m = Machine(work)
    yield m
    m.put_back()


def test_install_enable_login_purge(machine, work):
    apache = machine.apache
    deb, version = the_deb()
    apache.start()
    assert apache.configured_count() == 1
    plain_status = bbsite.Site.session().get(apache.url("/")).status_code

    # apt installs it; dh_apache2's postinst enables it (with the socache providers and the authn/authz modules)
    run("apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", str(deb))
    assert installed()
    files = run("dpkg-query", "-L", PACKAGE).stdout.split()
    for f in ("/usr/lib/apache2/modules/mod_bbauth.so", "/etc/apache2/mods-available/bbauth.load",
              "/etc/apache2/mods-available/bbauth.conf", "/usr/sbin/bbauth-keygen",
              "/usr/share/man/man8/bbauth-keygen.8.gz", f"/usr/share/doc/{PACKAGE}/README.Debian"):
        assert f in files
    conffiles = run("dpkg-query", "-W", "-f", "${Conffiles}", PACKAGE).stdout
    assert "/etc/apache2/mods-available/bbauth.conf" in conffiles
    for name in ("bbauth.load", "bbauth.conf", "socache_shmcb.load", "socache_dbm.load", "authn_core.load",
                 "authz_user.load"):
        assert (ETC / "mods-enabled" / name).exists(), name

    # Enabled without a key or a BBAuth line, the module cannot break the running Apache: it still serves.
    assert "Syntax OK" in apache.ctl("-t")
    apache.graceful()
    assert f"mod_bbauth/{version} configured -- resuming normal operations" in apache.error_log.read_text()
    assert bbsite.Site.session().get(apache.url("/")).status_code == plain_status

    # The admin's first steps (README.Debian): a2enmod (already done: says so), keys, a site, apachectl -t.
    assert apache.ctl("-M").count("bbauth_module") == 1
    run("a2enmod", "bbauth")
    keys = work / "keys"
    keygen = run("/usr/sbin/bbauth-keygen", "--signing", str(keys)).stdout
    signing_key = Path(re.search(r"BBAuthSigningKey (\S+)", keygen).group(1))
    assert stat.S_IMODE(signing_key.stat().st_mode) == 0o600 and stat.S_IMODE(keys.stat().st_mode) == 0o700
    session_key = keys / "session.key"
    session_key.write_text(run("openssl", "rand", "-hex", "32").stdout)
    os.chmod(session_key, 0o600)
    (work / "htdocs" / "packages").mkdir(parents=True)
    (work / "htdocs" / "packages" / "index.html").write_text("the mirror\n")
    for p in (work / "htdocs", work / "htdocs" / "packages"):
        os.chmod(p, 0o755)

    pki = testca.make_ca_and_cert(str(work / "pki"))
    os.chmod(work / "pki", 0o755)
    os.chmod(pki["ca"], 0o644)
    redirect_uri = apache.url(bbsite.CALLBACK_PATH)
    fb = fake_bitbucket.FakeBitbucketProcess(str(work / "fakebb"), pki["cert"], pki["key"], pki["ca"],
                                             oauth2_client_id=bbsite.CLIENT_ID,
                                             oauth2_client_secret=bbsite.CLIENT_SECRET,
                                             redirect_uris=[redirect_uri])
    fb.start()
    try:
        site = bbsite.Site(apache, fb, pki, str(session_key), None, redirect_uri)
        (ETC / "sites-available" / f"{SITE_NAME}.conf").write_text(
            site_conf(site, work, signing_key, session_key))
        run("a2ensite", SITE_NAME)
        assert "Syntax OK" in apache.ctl("-t")
        apache.graceful()

        s = site.session()
        r = site.login(s, "/packages/index.html", user="bob")
        assert r.headers["Location"] == "/packages/index.html"
        r = s.get(apache.url("/packages/index.html"), allow_redirects=False)
        assert r.status_code == 200 and r.text == "the mirror\n"
        assert site.session().get(apache.url("/packages/index.html"), allow_redirects=False).status_code == 302
        assert fb.calls()["token"] == 1
        assert "bob 200 GET /packages/index.html" in (work / "site-access.log").read_text()
    finally:
        fb.stop()

    # Purge: the site that uses the module goes first (else Apache would refuse it), then the package.
    apache.stop()
    run("a2dissite", SITE_NAME)
    (ETC / "sites-available" / f"{SITE_NAME}.conf").unlink()
    run("apt-get", "purge", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", PACKAGE)
    assert not installed()
    left = [f for f in files if Path(f).exists() and not Path(f).is_dir()]
    assert left == []
    assert not list(ETC.rglob("bbauth*")) and not list(STATE.rglob("bbauth"))
    assert f"{PACKAGE} " not in "\n".join(package_database())

    # Apache still starts (on the test's port), with the module gone.
    assert "Syntax OK" in apache.ctl("-t")
    apache.start()
    assert bbsite.Site.session().get(apache.url("/")).status_code == plain_status
    assert "bbauth_module" not in apache.ctl("-M")
    machine.put_back()
    assert machine_state() == machine.found
