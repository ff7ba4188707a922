"""Harness that runs a REAL Apache httpd 2.4 (Debian's /usr/sbin/apache2) for mod_bbauth's integration tests.

Run the tests with Debian's python:  /usr/bin/python3 -m pytest -q tests/integration
(`make integration` also sets BBAUTH_MODULE=<repo>/.build/mod_bbauth.so).

Quick start (fixtures from conftest.py)
=======================================
    def test_something(apache_factory, tmp_serverroot, echo_backend):
        a = apache_factory('''
            BBAuthBitbucketURL  https://127.0.0.1:9999
            <Location /packages>
                AuthType Bitbucket
                Require valid-user
            </Location>
        ''')                                   # -> a started Apache (mod_bbauth loaded), stopped at teardown
        r = requests.get(a.url("/packages/x"), allow_redirects=False)
        assert "AH0" not in a.error_log_since(a.start_mark)

    Ports / URLs before start (e.g. the fake Bitbucket needs the redirect URI first):
        a = apache_factory(start=False)        # the port is already chosen
        redirect = a.url("/bbauth/callback")   # "http://127.0.0.1:PORT/bbauth/callback"
        ... start the fake Bitbucket with it ...
        a.extra_conf = f"BBAuthRedirectURI {redirect}\\n..."   # or a callable, see below
        a.start()

Fixtures (tests/integration/conftest.py)
----------------------------------------
    tmp_serverroot   pathlib.Path: a fresh per-test directory under /tmp (or $BBAUTH_TEST_TMPDIR), mode 0755, so
                     that Apache's unprivileged children (www-data) can read it.  Put every file Apache reads at
                     REQUEST time here (CA file for BBAuthCAFile, ...): pytest's own tmp_path lives under
                     /tmp/pytest-of-root (mode 0700), which www-data cannot enter.  Removed after a passing test,
                     kept (path printed in the failure report) after a failing one or with BBAUTH_KEEP_TMP=1.
    apache_factory   make(extra_conf="", *, start=True, **opts) -> Apache.  Each call builds a new ServerRoot
                     tmp_serverroot/httpd-N with its own free port; every Apache made is stopped at teardown (even
                     when the test fails), and a failing test's report gets each Apache's error_log / access_log
                     tail as extra sections.  opts are Apache(...) keyword arguments (below).
    echo_backend     an EchoBackend (in-process HTTP server on 127.0.0.1) for `ProxyPass` tests; see below.

class Apache(root, extra_conf="", **opts)
-----------------------------------------
    Options (all keyword-only):
      load_bbauth=True       LoadModule bbauth_module $BBAUTH_MODULE (after all other modules).  BBAUTH_MODULE unset
                             -> pytest.skip; set but the file is missing -> pytest.fail (loud), unless
                             bbauth_missing="skip".  bbauth_module="/path.so" overrides the env var.
      mpm="event"            or "prefork" (CGI then uses mod_cgi instead of mod_cgid)
      log_level="info"       the LogLevel line, e.g. "info bbauth:trace3" (per-module levels need the module loaded)
      cgi=True               mod_cgid/mod_cgi + ScriptAlias /cgi-bin/ -> root/cgi-bin/ (with CGIPassAuth On) and the
                             built-in echo CGI at /cgi-bin/echo (see "echo CGI" below)
      rewrite=False          load mod_rewrite
      proxy=False            load mod_proxy + mod_proxy_http (for ProxyPass to an EchoBackend)
      modules=()             more module names to load, e.g. ("status", "socache_dbm")  (-> mod_<name>.so)
      ssl=None               (cert_path, key_path): serve HTTPS with mod_ssl; url() then says https://
      servers=2              processes (StartServers/ServerLimit); >1 so that cross-process state bugs show
      threads=8              ThreadsPerChild (event)
      timeout=5              the Timeout directive
      port=None              default: a free port (bind 127.0.0.1:0)
      user=None              when running as root: the User/Group the children run as (default www-data)
      env=None               extra environment for apache2 (it otherwise gets only PATH and LANG=C), e.g. for
                             `BBAuthClientSecret env:NAME`.  $BBAUTH_APACHE_ENV (a JSON object) adds to every
                             instance's environment, with @ROOT@ and @LOGS@ replaced: `make test-asan` uses it for
                             LD_PRELOAD=libasan and ASAN_OPTIONS=...:log_path=@LOGS@/sanitizer.  Any
                             logs/sanitizer.* file (a sanitizer's report) makes stop() raise ApacheError with it.
      pre_conf=""            config text placed BEFORE the standard <Directory> blocks (rarely needed)
      start_timeout=15       seconds for start/restart to become ready
    extra_conf: a string, or a callable(apache) -> str (rendered at every start/restart/configtest).  It is written
      to conf/extra.conf (the test's line 1 is the file's line 1) and Included at the END of conf/httpd.conf, at
      server-config level.  Placeholders replaced in it: @PORT@ @URL@ (base URL, no trailing slash) @ROOT@
      @HTDOCS@ @CGIBIN@ @RUN@ @LOGS@ @ECHO@ (path of the echo CGI, e.g. `ScriptAlias /packages/echo @ECHO@`).
    Attributes: root, port, scheme, base_url, conf_path (conf/httpd.conf), extra_conf_path (conf/extra.conf),
      htdocs, cgi_bin, run_dir, logs_dir, error_log_path, access_log_path, pid_path, echo_script, pid (or None),
      start_mark (error_log offset at the last start/restart), extra_conf (settable).
    Methods:
      url(path="/") -> "http://127.0.0.1:PORT/path"
      start()                 write the config, `apache2 -d ROOT -f conf/httpd.conf -k start` (clean env), wait until
                              the pid file's process is alive, error_log says "configured -- resuming normal
                              operations" (a notice, logged at any LogLevel: so don't redirect ErrorLog in
                              extra_conf) and the port accepts connections.  Raises ApacheError with the apache2
                              output and the error_log tail on any failure.  Children may still be finishing their
                              own start (setuid, child_init) for a few ms; requests just queue meanwhile.
      stop(timeout=10)        SIGTERM to the PID from the pid file; waits until it and every process of THIS instance
                              (found by its unique command line) are gone; leftovers (still there 2 s after the
                              parent, or at the timeout) are SIGKILLed by PID and ApacheError is raised.  Idempotent.
      restart(graceful=True, extra_conf=None)  configtest first (raises ApacheError and keeps the old server if the
                              new config is bad), then SIGUSR1 (graceful) / SIGHUP, waits for "resuming normal
                              operations".
      configtest(extra_conf=None) -> (returncode, output)   `apache2 -t` on the (re)written config files.  With
                              extra_conf it replaces self.extra_conf.  Errors look like
                              "AH00526: Syntax error on line 3 of /tmp/.../conf/extra.conf:\\nInvalid command ..."
                              It rewrites the files a running server would re-read at its next restart.
      is_running() -> bool
      error_log() -> str;  log_mark() -> int (current size);  error_log_since(mark) -> str
      access_log() -> str
      wait_for_log(regex, since=None, timeout=5, log="error") -> re.Match   (lines can land after the response
                              was received, especially access_log lines; raises AssertionError with the log)
      write(relpath, content, mode=0o644) -> Path        a file under ServerRoot (dirs created 0755)
      write_htdoc(relpath, content, mode=0o644) -> Path  a file under htdocs/ (served at /relpath)
      write_cgi(name, content) -> Path                   an executable under cgi-bin/ (served at /cgi-bin/name)
      processes() -> [pid]    live processes of this instance (parent, children, cgid daemon)
    Context manager: `with Apache(root, conf) as a:` starts and stops.

  Default content: htdocs/index.html = "harness index page\\n" (GET / and /index.html -> 200).
  Access control: <Directory /> Require all denied; htdocs and cgi-bin: Require all granted (a <Location> in
  extra_conf with its own Require/AuthType overrides that, as Locations merge last).

echo CGI (/cgi-bin/echo, a python3 CGI; also reachable elsewhere with `ScriptAlias /x/echo @ECHO@`)
  Answers 200 application/json:
    {"method", "uri" (REQUEST_URI), "script_name", "path_info", "query_string",
     "remote_user" (REMOTE_USER or null), "auth_type" (AUTH_TYPE or null),
     "headers": {"X-Bitbucket-User": ...}   request headers rebuilt from HTTP_* (names Title-Cased with "-"),
     "bitbucket": {"BITBUCKET_USER": ...}   every BITBUCKET_* variable,
     "env": {...}                            the whole CGI environment,
     "body": "..."}                          the request body (utf-8, errors replaced)
  Caveats: httpd never passes request headers whose name contains "_" (or other non-token characters) to a CGI,
  so the CGI cannot show whether a client-sent "X_Bitbucket_User" was stripped -- use EchoBackend via ProxyPass,
  which sees the raw header lines.  Authorization is passed (CGIPassAuth On) as HTTP_AUTHORIZATION.

class EchoBackend()  (fixture echo_backend; Apache(proxy=True) + `ProxyPass /app/ @BACKEND@`-style config)
    b = EchoBackend().start();  b.url -> "http://127.0.0.1:PORT";  b.requests -> list of dicts received so far
    (each {"method", "path", "headers": [[name, value], ...] raw, in order, "body"}); b.clear(); b.stop().
    Answers every method with 200 JSON of that same dict.  Use it to see exactly what an upstream app gets.

Other helpers: free_port(), pid_alive(pid) (a zombie counts as dead: PID 1 on this machine reaps late),
APACHE2 (binary path), MODULES_DIR, apache_version().

Privileges: as root, the children run as www-data (User/Group); the ServerRoot tree is world-readable, logs/ and
run/ belong to www-data.  Not root: User/Group are the current uid/gid (#uid/#gid) and nothing is switched.
Only processes this harness started are ever signalled, by PID.
"""

import atexit
import json
import os
import pwd
import grp
import re
import signal
import socket
import subprocess
import threading
import time
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

APACHE2 = os.environ.get("BBAUTH_APACHE2", "/usr/sbin/apache2")
MODULES_DIR = "/usr/lib/apache2/modules"
DEFAULT_USER = "www-data"
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

BASE_MODULES = ("authz_core", "authz_user", "authn_core", "auth_basic", "mime", "dir", "alias", "headers",
                "env", "setenvif", "socache_shmcb", "socache_dbm")


READY_RX = re.compile(r"configured -- resuming normal operations")


class ApacheError(RuntimeError):
    """Apache failed to start / stop / restart; the message carries apache2's output and the error_log tail."""


# ----------------------------------------------------------------------------------------------- small helpers

_ports_given = set()
_ports_lock = threading.Lock()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (never the same one twice in this process)."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        with _ports_lock:
            if port not in _ports_given:
                _ports_given.add(port)
                return port
    raise RuntimeError("could not find a free port")


def pid_alive(pid):
    """True if the process exists and is not a zombie (on this machine PID 1 reaps daemons only after a while)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        state = stat[stat.rindex(")") + 2:].split()[0]
        return state not in ("Z", "X")
    except (OSError, ValueError, IndexError):
        return False


def port_open(port, host="127.0.0.1", timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def apache_version():
    out = subprocess.run([APACHE2, "-v"], capture_output=True, text=True, env=_clean_env()).stdout
    m = re.search(r"Server version:\s*(.*)", out)
    return m.group(1).strip() if m else out.strip()


def _clean_env(extra=None):
    env = {"PATH": CLEAN_PATH, "LANG": "C"}
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


def _env_from_outside():
    """The extra apache2 environment in $BBAUTH_APACHE_ENV (a JSON object of strings), or {}."""
    text = os.environ.get("BBAUTH_APACHE_ENV", "").strip()
    if not text:
        return {}
    env = json.loads(text)
    if not isinstance(env, dict):
        raise ValueError("BBAUTH_APACHE_ENV must be a JSON object")
    return {str(k): str(v) for k, v in env.items()}


def _skip(msg):
    try:
        import pytest
    except ImportError:  # used outside pytest (e.g. a demo script)
        raise RuntimeError(msg)
    pytest.skip(msg)


def _fail(msg):
    try:
        import pytest
    except ImportError:
        raise RuntimeError(msg)
    pytest.fail(msg, pytrace=False)


def resolve_bbauth_module(path=None, missing="fail"):
    """Path of mod_bbauth.so from `path` or $BBAUTH_MODULE.  Unset -> pytest.skip; set but no such file ->
    pytest.fail (missing="fail") or pytest.skip (missing="skip")."""
    path = path or os.environ.get("BBAUTH_MODULE")
    if not path:
        _skip("BBAUTH_MODULE is not set: build the module and run `make integration`, "
              "or set BBAUTH_MODULE=/path/to/mod_bbauth.so")
    if not os.path.isfile(path):
        msg = f"BBAUTH_MODULE={path!r}: no such file (did `make module` fail?)"
        if missing == "skip":
            _skip(msg)
        _fail(msg)
    return os.path.abspath(path)


def _tail(text, lines=60):
    return "\n".join(text.splitlines()[-lines:])


# ------------------------------------------------------------------------------------------------- echo CGI

ECHO_CGI = r'''#!/usr/bin/python3
# echo CGI written by tests/integration/apache.py: what the upstream application gets, as JSON.
import json, os, sys
env = dict(os.environ)
body = b""
try:
    n = int(env.get("CONTENT_LENGTH") or 0)
    if n > 0:
        body = sys.stdin.buffer.read(n)
except ValueError:
    pass
headers = {}
for k, v in env.items():
    if k.startswith("HTTP_"):
        headers["-".join(p.capitalize() for p in k[5:].split("_"))] = v
if env.get("CONTENT_TYPE"):
    headers["Content-Type"] = env["CONTENT_TYPE"]
if env.get("CONTENT_LENGTH"):
    headers["Content-Length"] = env["CONTENT_LENGTH"]
out = {
    "method": env.get("REQUEST_METHOD"),
    "uri": env.get("REQUEST_URI"),
    "script_name": env.get("SCRIPT_NAME"),
    "path_info": env.get("PATH_INFO"),
    "query_string": env.get("QUERY_STRING"),
    "remote_user": env.get("REMOTE_USER"),
    "auth_type": env.get("AUTH_TYPE"),
    "headers": headers,
    "bitbucket": {k: v for k, v in env.items() if k.startswith("BITBUCKET_")},
    "env": env,
    "body": body.decode("utf-8", "replace"),
}
data = json.dumps(out, indent=1, sort_keys=True).encode()
sys.stdout.buffer.write(b"Content-Type: application/json\r\nCache-Control: no-store\r\n"
                        b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
'''


# ---------------------------------------------------------------------------------------------------- Apache

_live = weakref.WeakSet()


class Apache:
    def __init__(self, root, extra_conf="", *, load_bbauth=True, bbauth_module=None, bbauth_missing="fail",
                 mpm="event", log_level="info", cgi=True, rewrite=False, proxy=False, modules=(), ssl=None,
                 servers=2, threads=8, timeout=5, port=None, user=None, env=None, pre_conf="",
                 start_timeout=15):
        if mpm not in ("event", "prefork", "worker"):
            raise ValueError(f"mpm must be event, prefork or worker, not {mpm!r}")
        self.root = Path(root).resolve()
        self.extra_conf = extra_conf
        self.bbauth_module = resolve_bbauth_module(bbauth_module, bbauth_missing) if load_bbauth else None
        self.mpm = mpm
        self.log_level = log_level
        self.cgi = cgi
        self.ssl = ssl
        self.servers = max(1, int(servers))
        self.threads = max(1, int(threads))
        self.timeout = timeout
        self.env = {**_env_from_outside(), **(env or {})}
        self.pre_conf = pre_conf
        self.start_timeout = start_timeout
        self.port = port or free_port()
        self.scheme = "https" if ssl else "http"

        mods = list(BASE_MODULES)
        if cgi:
            mods.append("cgid" if mpm in ("event", "worker") else "cgi")
        if rewrite:
            mods.append("rewrite")
        if proxy:
            mods += ["proxy", "proxy_http"]
        if ssl:
            mods.append("ssl")
        for m in modules:
            if m not in mods:
                mods.append(m)
        self.modules = mods

        self.conf_dir = self.root / "conf"
        self.logs_dir = self.root / "logs"
        self.htdocs = self.root / "htdocs"
        self.cgi_bin = self.root / "cgi-bin"
        self.run_dir = self.root / "run"
        self.conf_path = self.conf_dir / "httpd.conf"
        self.extra_conf_path = self.conf_dir / "extra.conf"
        self.error_log_path = self.logs_dir / "error_log"
        self.access_log_path = self.logs_dir / "access_log"
        self.pid_path = self.run_dir / "httpd.pid"
        self.echo_script = self.cgi_bin / "echo"
        self.pid = None
        self.start_mark = 0

        if os.geteuid() == 0:
            name = user or DEFAULT_USER
            pw = pwd.getpwnam(name)
            self.run_uid, self.run_gid = pw.pw_uid, pw.pw_gid
            self.user_conf = f"User {name}\nGroup {grp.getgrgid(pw.pw_gid).gr_name}"
        else:
            self.run_uid, self.run_gid = os.getuid(), os.getgid()
            self.user_conf = f"User #{self.run_uid}\nGroup #{self.run_gid}"
        self._make_tree()

    # ------------------------------------------------------------------------------------------ layout / files

    def _make_tree(self):
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            for anc in [self.root.parent, *self.root.parent.parents]:
                if not os.stat(anc).st_mode & 0o001:
                    raise ApacheError(f"{anc} is not searchable by others, so the unprivileged children could not"
                                      f" reach {self.root}: use the tmp_serverroot fixture, not tmp_path")
        os.chmod(self.root, 0o755)
        for d in (self.conf_dir, self.logs_dir, self.htdocs, self.cgi_bin, self.run_dir):
            d.mkdir(exist_ok=True)
            os.chmod(d, 0o755)
        for d in (self.logs_dir, self.run_dir):
            if os.geteuid() == 0:
                os.chown(d, self.run_uid, self.run_gid)
        index = self.htdocs / "index.html"
        if not index.exists():
            self.write_htdoc("index.html", "harness index page\n")
        if self.cgi:
            self.write_cgi("echo", ECHO_CGI)

    def write(self, relpath, content, mode=0o644):
        """Write a file under the ServerRoot (str or bytes); parent dirs are created 0755.  Returns its Path."""
        p = self.root / relpath
        return _write(p, content, mode)

    def write_htdoc(self, relpath, content, mode=0o644):
        return _write(self.htdocs / relpath, content, mode)

    def write_cgi(self, name, content):
        return _write(self.cgi_bin / name, content, 0o755)

    # ----------------------------------------------------------------------------------------------- config

    @property
    def base_url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def url(self, path="/"):
        if not path.startswith("/"):
            path = "/" + path
        return self.base_url + path

    def _render_extra(self):
        text = self.extra_conf(self) if callable(self.extra_conf) else (self.extra_conf or "")
        text = _dedent(text)
        repl = {"@PORT@": str(self.port), "@URL@": self.base_url, "@ROOT@": str(self.root),
                "@HTDOCS@": str(self.htdocs), "@CGIBIN@": str(self.cgi_bin), "@RUN@": str(self.run_dir),
                "@LOGS@": str(self.logs_dir), "@ECHO@": str(self.echo_script)}
        for k, v in repl.items():
            text = text.replace(k, v)
        return text

    def render_config(self):
        """The text of conf/httpd.conf (without extra.conf, which it Includes at the end)."""
        r, run, logs = self.root, self.run_dir, self.logs_dir
        lines = [
            "# Generated by tests/integration/apache.py -- not Debian's /etc/apache2 tree.",
            f'ServerRoot "{r}"',
            f'DefaultRuntimeDir "{run}"',
            f'PidFile "{self.pid_path}"',
            f"Mutex file:{run} default",
            self.user_conf,
            f"LoadModule mpm_{self.mpm}_module {MODULES_DIR}/mod_mpm_{self.mpm}.so",
        ]
        for m in self.modules:
            lines.append(f"LoadModule {m}_module {MODULES_DIR}/mod_{m}.so")
        if self.bbauth_module:
            lines.append(f'LoadModule bbauth_module "{self.bbauth_module}"')
        lines += [
            f"Listen 127.0.0.1:{self.port}",
            f"ServerName {self.base_url}" if self.ssl else f"ServerName 127.0.0.1:{self.port}",
            "ServerAdmin webmaster@localhost",
            "UseCanonicalName Off",
            f"Timeout {self.timeout}",
            "KeepAlive On",
            "KeepAliveTimeout 2",
            "GracefulShutdownTimeout 3",
            "HostnameLookups Off",
            "ServerTokens Prod",
            f'ErrorLog "{logs}/error_log"',
            f"LogLevel {self.log_level}",
            r'LogFormat "%h %l %u %t \"%r\" %>s %b %D \"%{Referer}i\" \"%{User-Agent}i\"" harness',
            f'CustomLog "{logs}/access_log" harness',
            "TypesConfig /etc/mime.types",
            "AddDefaultCharset Off",
            "DirectoryIndex index.html",
        ]
        if self.mpm == "prefork":
            n = max(self.servers, 1)
            lines += ["<IfModule mpm_prefork_module>", f"    StartServers {n}", f"    MinSpareServers {n}",
                      f"    MaxSpareServers {n + 4}", "    ServerLimit 32", "    MaxRequestWorkers 32",
                      "    MaxConnectionsPerChild 0", "</IfModule>"]
        else:
            t, n = self.threads, self.servers
            lines += [f"<IfModule mpm_{self.mpm}_module>", f"    StartServers {n}", f"    ServerLimit {n}",
                      f"    ThreadsPerChild {t}", f"    ThreadLimit {t}", f"    MaxRequestWorkers {t * n}",
                      "    MinSpareThreads 1", f"    MaxSpareThreads {t * n}", "    MaxConnectionsPerChild 0",
                      "</IfModule>"]
        if self.cgi:
            lines += ["<IfModule cgid_module>", f'    ScriptSock "{run}/cgid.sock"', "</IfModule>"]
        if self.ssl:
            cert, key = self.ssl
            lines += ["SSLEngine on", f'SSLCertificateFile "{cert}"', f'SSLCertificateKeyFile "{key}"',
                      f'SSLSessionCache "shmcb:{run}/ssl_scache(512000)"', "SSLProtocol -all +TLSv1.2 +TLSv1.3"]
        if self.pre_conf:
            lines.append(_dedent(self.pre_conf))
        lines += [
            "<Directory />",
            "    AllowOverride None",
            "    Require all denied",
            "</Directory>",
            f'DocumentRoot "{self.htdocs}"',
            f'<Directory "{self.htdocs}">',
            "    Options FollowSymLinks",
            "    Require all granted",
            "</Directory>",
        ]
        if self.cgi:
            lines += [
                f'ScriptAlias /cgi-bin/ "{self.cgi_bin}/"',
                f'<Directory "{self.cgi_bin}">',
                "    Options +ExecCGI",
                "    CGIPassAuth On",
                "    Require all granted",
                "</Directory>",
            ]
        lines += ["# The test's configuration (conf/extra.conf: its line numbers are the test's own):",
                  f'Include "{self.extra_conf_path}"', ""]
        return "\n".join(lines)

    def write_config(self):
        _write(self.conf_path, self.render_config(), 0o644)
        _write(self.extra_conf_path, self._render_extra(), 0o644)

    def _apache_env(self):
        """apache2's whole environment: PATH, LANG and self.env with @ROOT@ and @LOGS@ replaced."""
        repl = {"@ROOT@": str(self.root), "@LOGS@": str(self.logs_dir)}
        env = {}
        for k, v in self.env.items():
            v = str(v)
            for placeholder, value in repl.items():
                v = v.replace(placeholder, value)
            env[k] = v
        return _clean_env(env)

    def sanitizer_reports(self):
        """{path: text} of the reports a sanitizer wrote to logs/sanitizer.* (see BBAUTH_APACHE_ENV)."""
        return {str(f): _read(f) for f in sorted(self.logs_dir.glob("sanitizer.*"))}

    def _cmd(self, *args):
        return [APACHE2, "-d", str(self.root), "-f", str(self.conf_path), *args]

    def configtest(self, extra_conf=None):
        """(returncode, combined output) of `apache2 -t` on this instance's config (rewritten first)."""
        if extra_conf is not None:
            self.extra_conf = extra_conf
        self.write_config()
        p = subprocess.run(self._cmd("-t"), capture_output=True, text=True, env=self._apache_env(),
                           timeout=self.start_timeout, stdin=subprocess.DEVNULL)
        return p.returncode, (p.stdout + p.stderr)

    # ----------------------------------------------------------------------------------------------- logs

    def error_log(self):
        return _read(self.error_log_path)

    def access_log(self):
        return _read(self.access_log_path)

    def log_mark(self):
        try:
            return self.error_log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def error_log_since(self, mark):
        try:
            with open(self.error_log_path, "rb") as f:
                f.seek(mark)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern, since=None, timeout=5, log="error"):
        """Wait until `pattern` (regex) appears in the error log (after offset `since`) or the access log."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            if log == "error":
                text = self.error_log_since(since or 0)
            else:
                text = self.access_log()
            m = rx.search(text)
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not found in the {log} log within {timeout}s:\n{_tail(text)}")
            time.sleep(0.05)

    def _failure(self, what, output=""):
        parts = [f"{what} (ServerRoot {self.root}, port {self.port})"]
        if output.strip():
            parts.append("apache2 output:\n" + output.strip())
        parts.append("error_log (tail):\n" + (_tail(self.error_log()) or "(empty)"))
        return ApacheError("\n".join(parts))

    # ------------------------------------------------------------------------------------------- processes

    def _read_pid(self):
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def processes(self):
        """PIDs of live processes of this instance: exact command line match (the ServerRoot is unique)."""
        want = "\0".join(self._cmd()).encode() + b"\0"
        found = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if cmd.startswith(want) and pid_alive(int(d)):
                found.append(int(d))
        return sorted(found)

    def is_running(self):
        return bool(self.pid) and pid_alive(self.pid)

    def start(self):
        if self.is_running():
            raise ApacheError(f"Apache in {self.root} is already running (pid {self.pid})")
        self.write_config()
        self.start_mark = self.log_mark()
        try:
            self.pid_path.unlink()
        except FileNotFoundError:
            pass
        try:
            p = subprocess.run(self._cmd("-k", "start"), capture_output=True, text=True,
                               env=self._apache_env(), timeout=self.start_timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            self._kill_leftovers()
            raise self._failure(f"apache2 -k start did not return within {self.start_timeout}s",
                                str(e.stdout or "") + str(e.stderr or ""))
        output = p.stdout + p.stderr
        if p.returncode != 0:
            self._kill_leftovers()
            raise self._failure(f"apache2 -k start exited with {p.returncode}", output)
        _live.add(self)
        t0 = time.monotonic()
        while True:
            pid = self._read_pid()
            if pid:
                self.pid = pid
                if not pid_alive(pid):
                    self._kill_leftovers()
                    raise self._failure(f"Apache (pid {pid}) exited right after starting", output)
                # "resuming normal operations" (a notice: logged whatever the LogLevel) comes after the parent
                # has set its signal handlers and forked the children; a SIGTERM before that point would kill
                # the parent without its cleanup and leave the cgid daemon behind.
                if READY_RX.search(self.error_log_since(self.start_mark)) and port_open(self.port):
                    break
            elif time.monotonic() - t0 > 2 and not self.processes():
                raise self._failure("Apache exited without writing its pid file", output)
            if time.monotonic() - t0 > self.start_timeout:
                self._kill_leftovers()
                raise self._failure(f"Apache not ready within {self.start_timeout}s", output)
            time.sleep(0.02)
        started = self.error_log_since(self.start_mark)
        if "cgid daemon failed to initialize" in started or "Child init failed" in started:
            self.stop()
            raise self._failure("Apache started but reported a fatal error", output)
        return self

    def stop(self, timeout=10):
        """SIGTERM the parent (PID from the pid file), wait for every process of this instance to go."""
        pid = self._read_pid() or self.pid
        if pid and pid_alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        parent_gone_at = None
        while True:
            parent_alive = pid_alive(pid)
            left = self.processes()
            if not parent_alive and not left:
                break
            if not parent_alive and parent_gone_at is None:
                parent_gone_at = time.monotonic()
            # the parent reaps its children before it exits; anything still there 2 s later is an orphan
            if time.monotonic() > deadline or (parent_gone_at and time.monotonic() - parent_gone_at > 2):
                killed = self._kill_leftovers()
                _live.discard(self)
                self.pid = None
                raise self._failure(f"Apache (pid {pid}) did not stop cleanly; SIGKILLed leftovers {killed}")
            time.sleep(0.02)
        _live.discard(self)
        self.pid = None
        reports = self.sanitizer_reports()
        if reports:
            raise ApacheError(f"sanitizer reports of Apache in {self.root}:\n"
                              + "\n".join(f"--- {path}\n{_tail(text, 80)}" for path, text in reports.items()))

    def _kill_leftovers(self):
        left = self.processes()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(pid_alive(p) for p in left):
            time.sleep(0.02)
        return left

    def restart(self, graceful=True, extra_conf=None, timeout=None):
        """Re-read the config: configtest first (ApacheError, old server kept, if it fails), then SIGUSR1/SIGHUP."""
        if not self.is_running():
            raise ApacheError("restart(): Apache is not running")
        old_extra = self.extra_conf
        rc, out = self.configtest(extra_conf)
        if rc != 0:
            self.extra_conf = old_extra
            self.write_config()
            raise self._failure(f"restart refused: the new configuration fails apache2 -t ({rc})", out)
        mark = self.log_mark()
        os.kill(self.pid, signal.SIGUSR1 if graceful else signal.SIGHUP)
        timeout = timeout or self.start_timeout
        deadline = time.monotonic() + timeout
        while True:
            if READY_RX.search(self.error_log_since(mark)) and port_open(self.port):
                break
            if not pid_alive(self.pid):
                self._kill_leftovers()
                raise self._failure("Apache died during restart")
            if time.monotonic() > deadline:
                raise self._failure(f"Apache did not finish restarting within {timeout}s")
            time.sleep(0.02)
        self.start_mark = mark
        return self

    def graceful(self, extra_conf=None):
        return self.restart(graceful=True, extra_conf=extra_conf)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"<Apache {self.base_url} root={self.root} pid={self.pid}>"


@atexit.register
def _stop_all():
    """Safety net (e.g. an interrupted run): stop every Apache this process started and did not stop."""
    for a in list(_live):
        try:
            a.stop(timeout=5)
        except Exception:
            pass


def _write(p, content, mode):
    p = Path(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    tmp = p.with_name(p.name + ".tmp-harness")
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, p)
    return p


def _read(p):
    try:
        return Path(p).read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _dedent(text):
    import textwrap
    text = textwrap.dedent(text)
    return text[1:] if text.startswith("\n") else text


# ------------------------------------------------------------------------------------------------ EchoBackend

class EchoBackend:
    """A tiny upstream app for `ProxyPass`: answers every request with JSON of exactly what it received."""

    def __init__(self):
        self.requests = []
        self._lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n > 0 else b""
                rec = {"method": self.command, "path": self.path,
                       "headers": [[k, v] for k, v in self.headers.items()],
                       "body": body.decode("utf-8", "replace")}
                with backend._lock:
                    backend.requests.append(rec)
                data = json.dumps(rec).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle

            def log_message(self, *a):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="echo-backend",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def clear(self):
        with self._lock:
            self.requests.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def header_values(headers, name):
    """Values of header `name` (case-insensitive) in an EchoBackend record's raw header list."""
    return [v for k, v in headers if k.lower() == name.lower()]
