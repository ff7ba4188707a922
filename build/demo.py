#!/usr/bin/python3
"""`make demo`: mod_bbauth protecting a sample package mirror, with the bundled fake Bitbucket DC as the identity
provider, all on 127.0.0.1. Ctrl-C (or SIGTERM) stops everything it started.

    DEMO_PORT=8080  the mirror's port (default 8080; a free port is taken if that one is busy)

It makes a CA and a certificate for the fake Bitbucket (HTTPS, verified by the module), a session key, the sample
repositories (Composer, PEP 503 simple index, npm) from build/demo/, and an Apache ServerRoot in a temp dir.
"""

import base64
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "build" / "demo"
sys.path.insert(0, str(REPO / "tests" / "integration"))

import apache  # noqa: E402  (the integration tests' Apache runner)
import bbsite  # noqa: E402  (the fake Bitbucket + key file set-up shared with the tests)

PACKAGE = "hello-bbauth"
VERSION = "1.0.0"
USERS = (("alice", "alice-password", "ordinary user; may not read SEC/vault"),
         ("bob", "bob-password", "ordinary user; may read SEC/vault"),
         ("jane@example.com", "jane-password", "username differs from her slug"),
         ("carol", "carol-password", "deactivated in Bitbucket: login is refused"))


def port_is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def choose_port():
    try:
        wanted = int(os.environ.get("DEMO_PORT", "8080"))
    except ValueError:
        sys.exit(f"demo: DEMO_PORT={os.environ['DEMO_PORT']!r} is not a port number")
    if port_is_free(wanted):
        return wanted
    port = apache.free_port()
    print(f"demo: port {wanted} is busy, using {port} instead (set DEMO_PORT to choose)", flush=True)
    return port


# The package clients the account page shows the setup of, and the mirror path each uses.
CLIENT_PATHS = (("composer", "/packages/composer/"), ("pip", "/packages/simple/"), ("uv", "/packages/simple/"),
                ("poetry", "/packages/simple/"), ("npm", "/packages/npm/"), ("yarn", "/packages/npm/"),
                ("pnpm", "/packages/npm/"))


def client_setup_conf(site):
    return "".join(f"BBAuthClientSetup {client} {site.url(path)}\n" for client, path in CLIENT_PATHS)


# The repository that guards /packages/internal/: bob may read it in the fake Bitbucket, alice may not.
INTERNAL_REPO = "SEC/vault"
# What the demo shows besides the mirror: (path, what it is), printed in the banner.
DEMO_PAGES = (("/account", "your account: who you are, your token page, each client's lines"),
              ("/packages/internal/", f"Require bitbucket-repo {INTERNAL_REPO}: bob may read it, alice is told why "
                                      "not"),
              ("/bbauth/setup", "the admin's setup page (alice and bob)"),
              ("/bbauth/metrics", "the module's metrics in the Prometheus text format (alice and bob)"),
              ("/.well-known/jwks.json", "the public keys that verify the session cookie (JWKS)"))


def signing_key(site):
    """The demo's ES256 signing key (cookies, JWKS), made once beside the session key; root's alone (0600)."""
    directory = os.path.dirname(site.key_file)
    path = os.path.join(directory, "demo-signing.key")
    if not os.path.exists(path):
        bbsite.write_signing_key(directory, "demo-signing.key", bbsite.new_private_key("ES256"))
    return path


def demo_conf(site):
    return bbsite.server_conf(site) + client_setup_conf(site) + f"""
BBAuthCookieName bbauth_demo
BBAuthSigningKey {signing_key(site)}
<Location /account>
    SetHandler bbauth-account
</Location>
ScriptAlias /packages/whoami "@CGIBIN@/whoami"
<Location /packages>
    AuthType Bitbucket
    AuthName "Demo package mirror"
    Require valid-user
    # composer, pip and npm send Bitbucket HTTP access tokens
    BBAuthTokenAuth On
</Location>
<Location /packages/internal>
    AuthzSendForbiddenOnFailure On
    Require bitbucket-repo {INTERNAL_REPO}
</Location>
<Location /bbauth/setup>
    SetHandler bbauth-setup
    AuthType Bitbucket
    AuthzSendForbiddenOnFailure On
    Require bitbucket-user alice bob
</Location>
<Location /bbauth/metrics>
    SetHandler bbauth-metrics
    AuthType Bitbucket
    AuthzSendForbiddenOnFailure On
    Require bitbucket-user alice bob
</Location>
<Location /.well-known/jwks.json>
    SetHandler bbauth-jwks
    Require all granted
</Location>
<Directory "@HTDOCS@/packages/npm">
    ForceType application/json
</Directory>
<Directory "@HTDOCS@/packages/npm/-">
    ForceType application/octet-stream
</Directory>
""" + bbsite.HANDLER_LOCATIONS


def archive_bytes(kind, prefix, files):
    """A .zip or .tar.gz of `files` (name -> bytes) under `prefix/`, with fixed timestamps."""
    buf = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in files.items():
                z.writestr(zipfile.ZipInfo(f"{prefix}/{name}", (2024, 1, 1, 0, 0, 0)), data)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as t:
            for name, data in files.items():
                info = tarfile.TarInfo(f"{prefix}/{name}")
                info.size, info.mtime, info.mode = len(data), 1704067200, 0o644
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sample_sources():
    return {p.name: p.read_bytes() for p in sorted((DEMO / PACKAGE).iterdir())}


def write_composer_repo(a, base_url, src):
    composer_json = {"name": f"demo/{PACKAGE}", "version": VERSION, "type": "library",
                     "autoload": {"psr-4": {"Demo\\": ""}}}
    files = dict(src, **{"composer.json": json.dumps(composer_json, indent=2).encode()})
    dist = archive_bytes("zip", PACKAGE, files)
    a.write_htdoc(f"packages/composer/dist/{PACKAGE}-{VERSION}.zip", dist)
    packages = {"packages": {f"demo/{PACKAGE}": {VERSION: dict(composer_json, dist={
        "type": "zip", "url": f"{base_url}/packages/composer/dist/{PACKAGE}-{VERSION}.zip",
        "shasum": hashlib.sha1(dist).hexdigest()})}}}
    a.write_htdoc("packages/composer/packages.json", json.dumps(packages, indent=2))


def wheel_bytes(src):
    """A pure-Python wheel of the sample package (pip installs it without building anything)."""
    name = PACKAGE.replace("-", "_")
    info = f"{name}-{VERSION}.dist-info"
    files = {"hello.py": src["hello.py"],
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {VERSION}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: mod_bbauth demo\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n"}
    record = "".join(f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                     f"{len(data)}\n" for path, data in files.items()) + f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files.items():
            z.writestr(zipfile.ZipInfo(path, (2024, 1, 1, 0, 0, 0)), data)
    return f"{name}-{VERSION}-py3-none-any.whl", buf.getvalue()


def write_simple_index(a, src):
    wheel_name, wheel = wheel_bytes(src)
    a.write_htdoc(f"packages/simple/{PACKAGE}/{wheel_name}", wheel)
    digest = hashlib.sha256(wheel).hexdigest()
    a.write_htdoc(f"packages/simple/{PACKAGE}/index.html",
                  f'<!doctype html><title>{PACKAGE}</title><a href="{wheel_name}#sha256={digest}">{wheel_name}</a>\n')
    a.write_htdoc("packages/simple/index.html",
                  f'<!doctype html><title>Simple index</title><a href="{PACKAGE}/">{PACKAGE}</a>\n')


PUBLISHED = "2024-01-01T00:00:00.000Z"


def write_npm_registry(a, base_url, src):
    package_json = {"name": PACKAGE, "version": VERSION, "main": "index.js"}
    files = dict(src, **{"package.json": json.dumps(package_json, indent=2).encode()})
    tarball = archive_bytes("tar.gz", "package", files)
    a.write_htdoc(f"packages/npm/-/{PACKAGE}-{VERSION}.tgz", tarball)
    packument = {"name": PACKAGE, "dist-tags": {"latest": VERSION}, "versions": {VERSION: dict(package_json, dist={
        "tarball": f"{base_url}/packages/npm/-/{PACKAGE}-{VERSION}.tgz",
        "shasum": hashlib.sha1(tarball).hexdigest()})},
        # As every registry serves it: Yarn 4.10+ sets aside a version without a publish time (npmMinimalAgeGate).
        "time": {"created": PUBLISHED, "modified": PUBLISHED, VERSION: PUBLISHED}}
    a.write_htdoc(f"packages/npm/{PACKAGE}", json.dumps(packument, indent=2))


def write_site_content(a):
    src = sample_sources()
    shutil.copy(DEMO / "index.html", a.htdocs / "index.html")
    a.write_htdoc("packages/index.html", (DEMO / "packages-index.html").read_text())
    a.write_htdoc("packages/internal/index.html", (DEMO / "internal-index.html").read_text())
    a.write_cgi("whoami", (DEMO / "whoami.cgi").read_text())
    write_composer_repo(a, a.base_url, src)
    write_simple_index(a, src)
    write_npm_registry(a, a.base_url, src)


def print_banner(site):
    print(f"""
mod_bbauth demo is running.

  Open:  {site.url('/')}      (the package mirror: {site.url('/packages/')})
  Fake Bitbucket (the identity provider): {site.fb.base_url}
    It serves HTTPS with a CA made just now: {site.pki['ca']}
    The module verifies it with that CA; your browser does not know it, so it warns once on the Bitbucket
    login page: accept it there (or import the CA), it is only this demo's throw-away certificate.

  Also:""")
    for path, what in DEMO_PAGES:
        print(f"    {site.url(path):<45} {what}")
    print("""
  Demo users:""")
    for user, password, note in USERS:
        print(f"    {user:<18} {password:<16} {note}")
    print(f"""
  Apache's error log: {site.apache.error_log_path}
  Started: Apache pid {site.apache.pid}, fake Bitbucket pid {site.fb.proc.pid}
  Press Ctrl-C to stop everything.
URL: {site.url('/')}""", flush=True)


def main():
    module = REPO / ".build" / "mod_bbauth.so"
    if not module.is_file():
        sys.exit(f"demo: {module} is missing: build it with `make module` (or run `make demo`)")
    workdir = Path(tempfile.mkdtemp(prefix="bbauth-demo-"))
    os.chmod(workdir, 0o755)
    made = []

    def factory(start=False, **opts):
        a = apache.Apache(workdir / "httpd", bbauth_module=str(module), port=choose_port(), **opts)
        made.append(a)
        return a

    def stop(*_):
        raise KeyboardInterrupt

    # SIGINT too: a shell starting the demo in the background (`&`) leaves it ignored.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    site = None
    status = 0
    try:
        site = bbsite.make_site(factory, workdir, conf=demo_conf, start=False, cgi=True)
        write_site_content(site.apache)
        site.apache.start()
        print_banner(site)
        signal.pause()
    except KeyboardInterrupt:
        print("\ndemo: stopping", flush=True)
    except RuntimeError as e:  # apache.ApacheError, or the fake Bitbucket not starting
        print(f"demo: could not start: {e}", file=sys.stderr, flush=True)
        status = 1
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave Apache running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            for a in made:
                a.stop()
        finally:
            if site is not None:
                site.fb.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
