"""Issue 2: `make install` puts the module, the Debian .load/.conf files and bbauth-keygen where an admin expects
them, all under DESTDIR when it is given (as a package build does), and the installed module logs a user in."""

import os
import re
import stat
import subprocess
from pathlib import Path

import requests

import bbsite

REPO = Path(__file__).resolve().parents[2]


def make_install(destdir):
    subprocess.run(["make", "-s", "-C", str(REPO), "install", f"DESTDIR={destdir}"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    return {str(p.relative_to(destdir)): stat.S_IMODE(p.stat().st_mode)
            for p in Path(destdir).rglob("*") if p.is_file()}


def modules_dir():
    return subprocess.run(["apxs", "-q", "LIBEXECDIR"], check=True, capture_output=True, text=True).stdout.strip()


def test_install_puts_every_file_under_destdir_and_the_module_works(site_factory, tmp_serverroot):
    destdir = tmp_serverroot / "destdir"
    installed = make_install(destdir)
    module = modules_dir().lstrip("/") + "/mod_bbauth.so"
    assert installed == {
        module: 0o644,
        "etc/apache2/mods-available/bbauth.load": 0o644,
        "etc/apache2/mods-available/bbauth.conf": 0o644,
        "usr/local/sbin/bbauth-keygen": 0o755,
    }
    load = (destdir / "etc/apache2/mods-available/bbauth.load").read_text()
    assert re.search(rf"^LoadModule bbauth_module /{re.escape(module)}$", load, re.M)

    keygen = subprocess.run([str(destdir / "usr/local/sbin/bbauth-keygen"), str(tmp_serverroot / "keys")],
                            capture_output=True, text=True, timeout=60)
    assert keygen.returncode == 0 and "-----BEGIN PUBLIC KEY-----" in keygen.stdout

    for d in [destdir, *destdir.rglob("*")]:  # Apache's children read the module from there
        if d.is_dir():
            os.chmod(d, 0o755)
    site = site_factory(bbauth_module=str(destdir / module))
    s = site.session()
    site.login(s, "/packages/echo", user="bob")
    assert site.echo(s)["remote_user"] == "bob"


def test_loaded_without_any_bbauth_directive_apache_serves_as_before(apache_factory):
    """Issue 17: installing the package enables the module in an Apache whose configuration does not use it (no key,
    no BBAuth line): the configuration still passes and the sites are served as before, with nothing logged."""
    a = apache_factory(start=False)
    a.write_htdoc("index.html", "plain\n")
    assert a.configtest()[0] == 0
    a.start()
    a.restart(graceful=True)
    r = requests.get(a.url("/index.html"), headers={"Authorization": "Bearer BBDC-notChecked"})
    assert r.status_code == 200 and r.text == "plain\n" and "Set-Cookie" not in r.headers
    log = a.error_log_since(a.start_mark)
    assert "mod_bbauth/" in log and not re.search(r"\[bbauth:|mod_bbauth: ", log)
