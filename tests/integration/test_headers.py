"""Issue 2: identity headers and variables for the upstream app, and that a client can never send its own."""

import pytest

import bbsite

SPOOFS = {"X-Bitbucket-User": "admin", "x-bitbucket-email": "admin@example.com", "X-BITBUCKET-ID": "1",
          "X-Bitbucket-Name": "Admin"}


def identity_headers(headers):
    return {k.lower().replace("_", "-"): v for k, v in headers.items() if k.lower().replace("_", "-")
            .startswith("x-bitbucket-") or k.lower().replace("_", "-").startswith("x-mirror-")}


def test_identity_headers_and_variables(site):
    s = site.session()
    site.login(s, "/packages/", user="alice")
    echo = site.echo(s, headers=SPOOFS)
    assert identity_headers(echo["headers"]) == {"x-bitbucket-user": "alice", "x-bitbucket-name": "Alice Liddell",
                                                 "x-bitbucket-email": "alice@example.com",
                                                 "x-bitbucket-id": echo["bitbucket"]["BITBUCKET_ID"]}
    assert echo["bitbucket"]["BITBUCKET_USER"] == "alice"
    assert echo["env"]["REMOTE_USER"] == "alice" and echo["env"]["AUTH_TYPE"] == "Bitbucket"


@pytest.mark.parametrize("location", ["/maybe/echo", "/public/echo"])
def test_spoofed_headers_removed_for_anonymous_requests(site_factory, location):
    site = site_factory(conf=lambda s: bbsite.protected_conf(s) + "ScriptAlias /public/echo @ECHO@\n")
    echo = site.echo(site.session(), location, headers=SPOOFS)
    assert identity_headers(echo["headers"]) == {}
    assert echo["remote_user"] is None


def test_custom_prefix_and_underscore_spoofs_through_a_proxy(site_factory, echo_backend):
    def conf(s):
        return bbsite.protected_conf(s) + f"""
<Location /app>
    AuthType Bitbucket
    Require valid-user
    BBAuthHeaderPrefix X-Mirror-
    ProxyPass {echo_backend.url}/app
</Location>
"""
    site = site_factory(conf=conf, proxy=True)
    s = site.session()
    site.login(s, "/app/x", user="bob")
    spoofs = {"X_Mirror_User": "admin", "X-MIRROR-USER": "admin", "X_Bitbucket_User": "admin",
              "x-bitbucket-user": "admin"}
    r = s.get(site.url("/app/x"), headers=spoofs, allow_redirects=False)
    assert r.status_code == 200
    seen = echo_backend.requests[-1]["headers"]
    got = identity_headers({k: v for k, v in seen})
    assert got.get("x-mirror-user") == "bob"
    assert "x-bitbucket-user" not in got
    assert [v for k, v in seen if k.lower().replace("_", "-") == "x-mirror-user"] == ["bob"]


def test_headers_of_a_location_reached_by_a_fast_internal_redirect_are_stripped(site_factory):
    # Issue 15 (5): mod_dir (DirectoryIndex) and MultiViews swap the request's per-directory configuration without
    # a new request: the client's headers of the index's own prefix must not reach it as an identity.
    def conf(s):
        return bbsite.protected_conf(s) + """
<Directory "@HTDOCS@/app">
    Options +ExecCGI +MultiViews
    AddHandler cgi-script .cgi
    MultiviewsMatch Handlers
    DirectoryIndex index.cgi
</Directory>
<Location /app>
    AuthType Bitbucket
    Require valid-user
    BBAuthHeaderPrefix X-App-
</Location>
<LocationMatch "^/app/(index|page)\\.cgi">
    BBAuthHeaderPrefix X-Idx-
</LocationMatch>
"""
    site = site_factory(conf=conf, modules=("negotiation",))
    echo = site.apache.echo_script.read_text()
    site.apache.write_htdoc("app/index.cgi", echo, mode=0o755)
    site.apache.write_htdoc("app/page.cgi", echo, mode=0o755)
    s = site.session()
    site.login(s, "/app/", user="alice")
    spoofs = {"X-Idx-User": "admin", "X_Idx_Email": "admin@example.com", "X-App-User": "admin"}
    for path in ("/app/", "/app/page"):                   # DirectoryIndex, MultiViews
        headers = site.echo(s, path, headers=spoofs)["headers"]
        seen = {k.lower().replace("_", "-"): v for k, v in headers.items()}
        assert "admin" not in seen.values(), (path, seen)
        assert seen.get("x-app-user") == "alice"
