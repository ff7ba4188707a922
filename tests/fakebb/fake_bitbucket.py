#!/usr/bin/python3
"""Fake Bitbucket Data Center for mod_bbauth's integration tests.

A strict, standard-library HTTPS server (plus Debian's python3-oauthlib / python3-jwt /
python3-cryptography for OAuth 1.0a RSA-SHA1 verification) that behaves like the parts of
Bitbucket DC that mod_bbauth talks to.  Listens on 127.0.0.1 only, TLS 1.2+.

CLI
===
    /usr/bin/python3 fake_bitbucket.py --cert server.pem --key server.key [--port 0] [--port-file F]
        [--users users.json] [--context-path /bitbucket]
        [--oauth2-client-id ID --oauth2-client-secret S --redirect-uri URI [--redirect-uri URI2]
         [--oauth2-scope REPO_ADMIN]]
        [--oauth1-consumer-key KEY --oauth1-public-key pub.pem [--oauth1-callback URI]]
        [--no-auto-approve] [--quiet]

    Prints "fake bitbucket listening on https://127.0.0.1:PORT<context>" (flushed) once listening and, with
    --port-file, writes PORT there (atomically).  The CLI OAuth 2 client / OAuth 1 consumer are added to the
    ones in users.json (replacing an entry with the same id).  SIGTERM/SIGINT stop it.

In-process:  fb = FakeBitbucket(cert=..., key=..., users="users.json", context_path="/bitbucket",
                                oauth2_clients=[{...}], oauth1_consumers=[{...}]); fb.start(); ...; fb.stop()
             fb.base_url, fb.root_url, fb.port
As a subprocess from pytest (the usual way; see tests/fakebb/test_fake_bitbucket.py for fixtures):
    import sys; sys.path.insert(0, "<repo>/tests/fakebb"); import testca, fake_bitbucket
    pki = testca.make_ca_and_cert(tmpdir)      # {"ca", "cert", "key", ...}
    with fake_bitbucket.FakeBitbucketProcess(tmpdir, pki["cert"], pki["key"], pki["ca"],
            context_path="/bitbucket", oauth2_client_id="cid", oauth2_client_secret="sec",
            redirect_uris=["https://127.0.0.1:8443/cb"], oauth1_consumer_key="ck",
            oauth1_public_key="pub.pem") as fb:
        fb.base_url / fb.root_url / fb.port / fb.proc (Popen) / fb.log_path (its stderr)
        fb.reset(); fb.set_mode("whoami", "down"); fb.settings(auto_approve=False); fb.calls()
        fb.control("POST", "/_fake/tokens", {"user": "bob", "kind": "personal"})
    Pitfall: requests.Session().verify is overridden by REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE from the
    environment (set on this machine); use session.trust_env = False or pass verify= on every call.

Base URL = https://127.0.0.1:PORT<context>.  Every Bitbucket endpoint lives under the context path (anything
else -> 404); the control API lives at the root (/_fake/...).  /rest/api/latest/... is an alias of
/rest/api/1.0/..., and /rest/oauth2/1.0/... of /rest/oauth2/latest/....

Endpoints (relative to the base URL)                                  call-counter name
-------------------------------------                                 -----------------
GET  /login?next=...      HTML login form: <form method=post action=<ctx>/j_atl_security_check>,   login
                          inputs j_username, j_password, hidden next, <input type=submit id=submit>
POST /j_atl_security_check  login; sets cookie BITBUCKETSESSIONID (Path=<ctx or />, HttpOnly, Secure)  login
                          then 303 to next (only same-origin paths under the context) ; bad -> 200 form
GET|POST /j_atl_security_logout                                                                    logout
GET  /                    tiny "dashboard" page                                                     home
GET  /rest/oauth2/latest/authorize   OAuth 2 authorization endpoint (see below)                    authorize
GET|POST /plugins/servlet/oauth2/consent  consent page: buttons id/name "approve" and "deny"        consent
POST /rest/oauth2/latest/token       token endpoint (authorization_code, refresh_token)           token
POST /rest/oauth2/latest/revoke      RFC 7009-ish revoke (token, client_id, client_secret)         revoke
GET  /rest/oauth2/latest/.well-known/oauth-authorization-server   RFC 8414 metadata              oauth2_metadata
GET  /rest/oauth2/1.0/client         always 401 (GCM's "OAuth 2 plugin present" probe)            oauth2_client_probe
GET  /plugins/servlet/applinks/whoami   200 text/plain username; 200 EMPTY body if anonymous     whoami
GET  /rest/api/1.0/application-properties   no auth                                              application_properties
GET  /rest/api/1.0/users?filter=&start=&limit=&avatarSize=   authenticated only; paged            users
GET  /rest/api/1.0/users/{slug}[?avatarSize=]                                                     user
GET  /rest/api/1.0/projects?name=&permission=                                                     projects
GET  /rest/api/1.0/projects/{key}                                                                 project
GET  /rest/api/1.0/projects/{key}/repos                                                           project_repos
GET  /rest/api/1.0/projects/{key}/repos/{slug}                                                    repo
GET  /rest/api/1.0/repos?permission=&projectkey=&name=&projectname=&visibility=                   repos
GET  /rest/api/1.0/admin/users/more-members?context=<user>&filter=   groups of a user             user_groups
GET  /rest/api/1.0/admin/groups/more-members?context=<group>&filter=  members of a group          group_members
GET  /rest/api/1.0/groups?filter=                                                                 groups
POST /plugins/servlet/oauth/request-token   OAuth 1.0a (GET -> 200 empty, like the real servlet)  oauth1_request_token
GET|POST /plugins/servlet/oauth/authorize   OAuth 1.0a consent (HTML)                            oauth1_authorize
POST /plugins/servlet/oauth/access-token    OAuth 1.0a (GET -> 200 empty)                         oauth1_access_token
POST /plugins/servlet/twofactor/verify      the 2FA page's form target; never succeeds           twofactor
anything else under the context -> 404 (REST paths: errors JSON; others: HTML)                    not_found
Only the methods listed are allowed (405 otherwise); REST endpoints are GET-only.

OAuth 2 behaviour (Bitbucket's "incoming application link")
  authorize: validation order client_id (known), redirect_uri (EXACT string equality with a registered
  one), response_type ("" -> invalid_request, not "code" -> unsupported_response_type), scope (space
  separated, non-empty, each in PUBLIC_REPOS < REPO_READ < REPO_WRITE < REPO_ADMIN < PROJECT_ADMIN and <= the
  client's ceiling, else invalid_scope), PKCE (code_challenge_method S256/plain, case-insensitive; blank
  method -> PKCE silently NOT applied; with a method the challenge must match [0-9a-zA-Z~._-]{43,128}).
  Repeated parameters -> invalid_request.  EVERY authorize error is a 400 text/html page (the error code is
  in <code id="error"> and in the header X-Fake-OAuth-Error) and never a redirect.  Responses carry
  Cache-Control: no-store, Pragma: no-cache.
  Not logged in -> 303 to <ctx>/login?next=<authorize URL>.  Logged in + auto_approve -> 302 to
  redirect_uri?code=..&state=.. ; otherwise 303 to the consent page; approve -> 302 redirect_uri?code&state,
  deny -> 302 redirect_uri?error=access_denied&error_description=..&state=.. (state omitted if absent).
  Codes: single use, code_ttl (60 s), bound to client, redirect_uri, user, scope, PKCE challenge.
  token: application/x-www-form-urlencoded body only (query string ignored; other content type -> 415);
  client_secret_post only (HTTP Basic client auth is ignored -> invalid_client).  Errors: JSON
  {"error","error_description"}, 400 (invalid_client: 401).  A code is consumed by the first exchange
  attempt that reaches it (even if that attempt then fails, e.g. PKCE mismatch); a replay -> invalid_grant
  and revokes every token issued from that code (including refreshed descendants).  Success: 200 JSON
  {"access_token","token_type":"bearer","expires_in","refresh_token","scope"} (setting scopes_key), no-store.
  Tokens are random JWT-looking strings.  Refresh rotates both tokens (old pair deleted).
  Presenting: "Authorization: Bearer <t>" (scheme case-sensitive) or "Basic base64(anything:<t>)".
  Unknown/expired/revoked credentials silently make the request anonymous.

HTTP access tokens: personal (Bearer, or Basic <owner>:<token>; another username -> anonymous), project/repo
  (Bearer only; Basic -> anonymous) acting as a SERVICE user limited to that project/repo.  Revoked/expired
  tokens or inactive owners -> anonymous.  HTTP tokens get 401 on /admin/... endpoints (setting
  http_tokens_admin).  Basic user:password (the users.json password) also works (setting basic_password_auth);
  a Basic secret that matches nothing -> 401 IncorrectPasswordAuthenticationException on REST.

Authenticated responses carry X-AUSERNAME, X-AUSERID (+ "Vary: X-AUSERNAME", "Vary: X-AUSERID") and, for
OAuth 2 token requests, Cache-Control: private.  REST errors: {"errors":[{"context":null,"message":..,
"exceptionName":..}]}; anonymous or not permitted -> 401 com.atlassian.bitbucket.AuthorisationException
"You are not permitted to access this resource"; missing -> 404 NoSuch{User,Project,Repository}Exception.

Permissions: levels public-read(1) < REPO_READ(2) < REPO_WRITE(3) < REPO_ADMIN(4) < PROJECT_ADMIN(5).
  Project grants PROJECT_READ/WRITE/ADMIN map to 2/3/5 on all its repos; repo grants REPO_READ/WRITE/ADMIN;
  group grants count like user grants; globalPermission ADMIN/SYS_ADMIN = 5 everywhere; "public": true gives
  everyone (anonymous too) level 1, which is below REPO_READ (so /repos?permission=REPO_READ does not list
  repos that are only public).  The credential caps the level: OAuth 2 scope (PUBLIC_REPOS -> public only),
  HTTP token "permission".  Project view = level >= 1 on the project or on any of its repos.
  Project keys and repo slugs are matched case-insensitively; user slugs too (user names are not slugs).
  /admin/users/more-members needs a LICENSED (licensed: true) NORMAL user -> else 401.
  /users lists NORMAL users only (service users are not listed, but /users/{slug} finds them); inactive
  users are listed with "active": false.  An inactive user can't log in and their credentials are anonymous.

OAuth 1.0a: RSA-SHA1 only; every signed request is verified with oauthlib (collect_parameters, normalize_
  parameters, base_string_uri over the server's own base https://127.0.0.1:PORT<ctx><path> [setting
  oauth1_base_uri overrides the scheme/host/port part], verify_rsa_sha1).  Checks, in order: oauth_version
  (1.0 if present) -> version_rejected; duplicated oauth_* -> parameter_rejected; missing params ->
  parameter_absent; method != RSA-SHA1 -> signature_method_rejected; consumer -> consumer_key_unknown;
  |timestamp - now| > 300 s -> timestamp_refused; signature -> signature_invalid; (consumer, nonce) reuse ->
  nonce_used.  Errors: status per net.oauth (400/401/503), WWW-Authenticate: OAuth realm="<base>",
  oauth_problem="..", body oauth_problem=..&... (text/plain).  request-token: oauth_callback (http(s) or oob;
  else parameter_rejected + oauth_parameters_rejected=oauth_callback); absent = legacy 1.0 (no verifier).
  Response oauth_token, oauth_token_secret, oauth_callback_confirmed=true.  Request tokens expire after
  request_token_ttl (600 s) -> token_expired, single use (token_used).  authorize (browser, login needed,
  HTML error pages for token_rejected/token_used/token_expired): approve -> 302 callback?oauth_token&
  oauth_verifier=<6 alnum>, deny -> oauth_verifier=denied; oob -> HTML page showing the verifier.
  access-token: token_expired, permission_unknown (not approved), permission_denied (denied), token_rejected
  (consumer/verifier mismatch); returns oauth_token, oauth_token_secret, oauth_expires_in,
  oauth_session_handle, oauth_authorization_expires_in; renewal with an access token + oauth_session_handle.
  Signed REST/whoami calls with an access token run as its user (bad signature etc. -> OAuth error, 401).
  2-legged (no oauth_token): the consumer's two_lo_user, or xoauth_requestor_id if two_lo_impersonation.

users.json (all keys optional; see the bundled file)
  {"users": [{"name", "id", "slug" (default: name lower-cased, chars outside [a-z0-9._-] -> "_"),
              "displayName", "emailAddress", "password", "active" (true), "licensed" (true),
              "type" ("NORMAL"), "globalPermission" ("LICENSED_USER"|"PROJECT_CREATE"|"ADMIN"|"SYS_ADMIN"),
              "groups": [..]}],
   "groups": ["extra-group-names"],
   "projects": [{"key", "id", "name", "description", "public": false,
                 "permissions": {"users": {name: PROJECT_READ|PROJECT_WRITE|PROJECT_ADMIN},
                                 "groups": {group: ...}},
                 "repos": [{"slug", "id", "name", "public": false,
                            "permissions": {"users": {name: REPO_READ|REPO_WRITE|REPO_ADMIN}, "groups": {..}}}]}],
   "tokens": [{"token", "kind": "personal"|"project"|"repo", "user" (personal), "project", "repo",
               "permission" (REPO_READ|REPO_WRITE|REPO_ADMIN|PROJECT_READ|PROJECT_WRITE|PROJECT_ADMIN,
               default REPO_READ), "expires": epoch seconds or null, "revoked": false,
               "service_user": {"name", "id", "displayName"} (project/repo tokens)}],
   "oauth2_clients": [{"client_id", "client_secret", "redirect_uris": [..], "scope": "REPO_ADMIN", "name"}],
   "oauth1_consumers": [{"consumer_key", "name", "public_key": "PEM" | "public_key_file": path,
                         "callback": null, "allow_3lo": true, "two_lo_user": null,
                         "two_lo_impersonation": false}],
   "settings": {...any setting below...}}

Control API (root of the same TLS port, NOT under the context path, no auth; JSON in and out)
  POST /_fake/reset                     everything back to the start state (users.json + CLI clients,
                                        default settings, no modes, counters/log/sessions/tokens cleared)
  GET  /_fake/mode                      the active modes
  POST /_fake/mode {"group", "mode", "seconds", "times", "bytes"}
        group: an endpoint name (table above) or oauth2 | users | permissions | groups | oauth1 | rest |
               login | all.  The most specific active mode wins (endpoint > group > all).
        mode: normal (clears that group; group "all" + normal clears everything) | down (close the
              connection without answering) | slow (sleep `seconds`, then answer normally) | garbage
              (200 application/json, invalid JSON) | wrong_type (200 text/html) | wrong_shape (valid JSON of
              the wrong shape, served with the endpoint's usual content type (HTML endpoints:
              application/json): {"unexpected":true,
              "values":"not-a-list","access_token":12345,"name":null,...}) | oversized (200, `bytes` (2 MiB)
              body with the usual content type: JSON endpoints {"padding":"xxx..."}, text ones "aaa...") |
              redirect (302 to https://evil.example/<path>) | twofactor (200 text/html 2FA form) |
              status:NNN (that status with an errors JSON body) | drop_after (handle the request, with all its
              effects, e.g. a code used up, then close the connection without answering: a connection that
              died after the server processed the request)
        times: apply only N times, then the mode clears itself (default: until changed)
        retry_after: with status:NNN, a Retry-After header with this value (e.g. 429 with "120")
  GET  /_fake/calls                     {"token": 3, "whoami": 5, ...} (control API not counted)
  GET  /_fake/calls/by_user             {"bob": 2, "anonymous": 7}: REST and whoami calls with Bearer or Basic
                                        credentials, by the user they name ("anonymous": credentials nobody
                                        issued), 429s included
  POST /_fake/ratelimit {"user", "retry_after"}   Bitbucket's per-user rate limit (protocol sheet §10): every REST
                                        or whoami call with Bearer or Basic credentials of that user ("anonymous": credentials
                                        nobody issued) answers 429 with Retry-After (null: no header) until
                                        cleared with {"user", "clear": true}; /_fake/reset clears all
  POST /_fake/calls/reset               clears the calls and the connection counters
  GET  /_fake/connections               {"accepted": TCP connections accepted, "tls_handshakes": TLS handshakes
                                        completed ("tls_resumed": how many of them resumed a TLS session),
                                        "api_connections" / "api_handshakes" / "api_resumed": the same for the
                                        connections that carried at least one request outside the control API
                                        (what a client of Bitbucket opened), "by_agent": {"mod_bbauth":
                                        {"connections", "handshakes", "resumed"}} (the User-Agent of a
                                        connection's first such request, up to its first '/')}
  GET  /_fake/settings ; POST /_fake/settings {...}   settings (defaults):
        code_ttl 60, access_token_ttl 3600, refresh_token_ttl 7776000, auto_approve true,
        scopes_key "scope" ("scope" | "scopes" | "both" | "none"), require_redirect_on_refresh false,
        request_token_ttl 600, oauth1_access_token_ttl 157680000, oauth1_authorization_ttl 157680000,
        oauth1_timestamp_window 300, oauth1_base_uri null, validate_client_secret true,
        token_via_basic true, basic_password_auth true, http_tokens_admin false,
        oauth2_admin_endpoints true, public_access true, clock_offset 0,
        max_keepalive_requests null (as Tomcat's maxKeepAliveRequests: the Nth request on a connection is
        answered with "Connection: close" and the connection closed), keepalive_timeout null (as Tomcat's
        keepAliveTimeout, 20 s there: a connection waiting longer than this many seconds for its next request
        is closed); null: a connection is kept until the client closes it (60 s idle at most)
  POST /_fake/clock {"offset": seconds} or {"advance": seconds}   shifts the fake's clock used for every
        expiry (codes, tokens, sessions) — but NOT for the OAuth 1 timestamp check (clients use real time)
  POST /_fake/users {user record}       add or update (merge) a user
  POST /_fake/users/<name>/deactivate | /activate      (deactivation also ends the user's web sessions)
  POST /_fake/users/<name>/groups {"groups": [..]}
  POST /_fake/projects/<key>/permissions {"user"|"group": .., "permission": "PROJECT_READ"|..|null}
  POST /_fake/projects/<key>/repos/<slug>/permissions {"user"|"group": .., "permission": "REPO_READ"|..|null}
  POST /_fake/tokens {"user", "kind": personal|project|repo, "project", "repo", "permission",
                      "expires_in"} -> {"token", "kind", "user"}   mint an HTTP access token
  GET  /_fake/tokens                    every credential the fake currently holds (oauth2 access/refresh,
                                        codes, http tokens, oauth1 tokens) with owner, expiry, state
  POST /_fake/tokens/revoke {"token": ..} | {"user": ..}   revoke one credential of any kind, or everything a
                                        user holds (OAuth 2 tokens + codes, HTTP tokens, OAuth 1 tokens)
  POST /_fake/tokens/expire {"token": ..}   make one credential expired now
  POST /_fake/login {"user"} -> {"cookie": "BITBUCKETSESSIONID", "value": ...}   a web session, no form
  POST /_fake/oauth2/clients {"client_id", "client_secret", "redirect_uris" | "redirect_uri", "scope"}
  POST /_fake/oauth1/consumers {"consumer_key", "public_key": PEM, ...}
  GET  /_fake/log[?endpoint=&limit=]    the last 1000 requests, oldest first: time, method, path, endpoint,
                                        status, query {name: [values]}, query_names, headers, header_names,
                                        form {name: [values]}, form_names, body (first 4 KiB), principal
  POST /_fake/log/reset
  GET  /_fake/health                    {"ok": true, "base_url": ...}
"""

import argparse
import base64
import binascii
import collections
import copy
import hashlib
import hmac
import html
import http.server
import json
import os
import re
import secrets
import signal
import socket
import ssl
import string
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import urllib.parse
import urllib.request

try:
    from oauthlib.oauth1.rfc5849 import signature as o1sig
    from oauthlib.oauth1.rfc5849 import utils as o1utils
except ImportError:  # pragma: no cover - Debian's python3-oauthlib is expected
    o1sig = None
    o1utils = None

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------------------------------------------------
# constants

SCOPES = ["PUBLIC_REPOS", "REPO_READ", "REPO_WRITE", "REPO_ADMIN", "PROJECT_ADMIN"]
SCOPE_RANK = {s: i + 1 for i, s in enumerate(SCOPES)}

L_NONE, L_PUBLIC, L_READ, L_WRITE, L_ADMIN, L_PROJECT_ADMIN = 0, 1, 2, 3, 4, 5
GRANT_LEVEL = {"REPO_READ": L_READ, "REPO_WRITE": L_WRITE, "REPO_ADMIN": L_ADMIN,
               "PROJECT_READ": L_READ, "PROJECT_WRITE": L_WRITE, "PROJECT_ADMIN": L_PROJECT_ADMIN}
PROJECT_GRANTS = ("PROJECT_READ", "PROJECT_WRITE", "PROJECT_ADMIN")
REPO_GRANTS = ("REPO_READ", "REPO_WRITE", "REPO_ADMIN")
SCOPE_CAP = {"PUBLIC_REPOS": L_PUBLIC, "REPO_READ": L_READ, "REPO_WRITE": L_WRITE,
             "REPO_ADMIN": L_ADMIN, "PROJECT_ADMIN": L_PROJECT_ADMIN}
GLOBAL_PERMS = ("LICENSED_USER", "PROJECT_CREATE", "ADMIN", "SYS_ADMIN")

CHALLENGE_RE = re.compile(r"[0-9a-zA-Z~._-]{43,128}")
VERIFIER_RE = CHALLENGE_RE

SESSION_COOKIE = "BITBUCKETSESSIONID"
SESSION_TTL = 8 * 3600
MAX_BODY = 1024 * 1024
LOG_MAX = 1000

EXC_AUTHZ = "com.atlassian.bitbucket.AuthorisationException"
EXC_BADPW = "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException"
EXC_NO_USER = "com.atlassian.bitbucket.user.NoSuchUserException"
EXC_NO_GROUP = "com.atlassian.bitbucket.user.NoSuchGroupException"
EXC_NO_PROJECT = "com.atlassian.bitbucket.project.NoSuchProjectException"
EXC_NO_REPO = "com.atlassian.bitbucket.repository.NoSuchRepositoryException"
EXC_BAD_ARG = "com.atlassian.bitbucket.validation.ArgumentValidationException"
MSG_NOT_PERMITTED = "You are not permitted to access this resource"
MSG_BADPW = "Authentication failed. Please check your credentials and try again."

O1_STATUS = {
    "version_rejected": 400, "parameter_absent": 400, "parameter_rejected": 400,
    "timestamp_refused": 400, "signature_method_rejected": 400,
    "nonce_used": 401, "token_used": 401, "token_expired": 401, "token_revoked": 401,
    "token_rejected": 401, "signature_invalid": 401, "consumer_key_unknown": 401,
    "consumer_key_rejected": 401, "permission_unknown": 401, "permission_denied": 401,
    "additional_authorization_required": 401,
    "user_refused": 503, "consumer_key_refused": 503,
}
O1_REQUIRED = ("oauth_consumer_key", "oauth_signature_method", "oauth_signature", "oauth_timestamp",
               "oauth_nonce")

DEFAULT_SETTINGS = {
    "code_ttl": 60,
    "access_token_ttl": 3600,
    "refresh_token_ttl": 90 * 24 * 3600,
    "auto_approve": True,
    "scopes_key": "scope",
    "require_redirect_on_refresh": False,
    "request_token_ttl": 600,
    "oauth1_access_token_ttl": 5 * 365 * 24 * 3600,
    "oauth1_authorization_ttl": 5 * 365 * 24 * 3600,
    "oauth1_timestamp_window": 300,
    "oauth1_base_uri": None,
    "validate_client_secret": True,
    "token_via_basic": True,
    "basic_password_auth": True,
    "http_tokens_admin": False,
    "oauth2_admin_endpoints": True,
    "public_access": True,
    "clock_offset": 0,
    "max_keepalive_requests": None,
    "keepalive_timeout": None,
}

MODES = ("down", "slow", "garbage", "wrong_type", "wrong_shape", "oversized", "redirect", "twofactor",
         "drop_after")

# endpoint name -> kind of body it normally serves ("json", "text", "html")
ENDPOINT_KIND = {
    "login": "html", "logout": "html", "home": "html", "authorize": "html", "consent": "html",
    "token": "json", "revoke": "json", "oauth2_metadata": "json", "oauth2_client_probe": "json",
    "whoami": "text", "application_properties": "json", "users": "json", "user": "json",
    "projects": "json", "project": "json", "project_repos": "json", "repo": "json", "repos": "json",
    "user_groups": "json", "group_members": "json", "groups": "json",
    "oauth1_request_token": "text", "oauth1_authorize": "html", "oauth1_access_token": "text",
    "twofactor": "html", "not_found": "html",
}
REST_ENDPOINTS = {"application_properties", "users", "user", "projects", "project", "project_repos",
                  "repo", "repos", "user_groups", "group_members", "groups"}
MODE_GROUPS = {
    "oauth2": {"authorize", "consent", "token", "revoke", "oauth2_metadata", "oauth2_client_probe"},
    "users": {"users", "user"},
    "permissions": {"projects", "project", "project_repos", "repo", "repos"},
    "groups": {"user_groups", "group_members", "groups"},
    "oauth1": {"oauth1_request_token", "oauth1_authorize", "oauth1_access_token"},
    "rest": set(REST_ENDPOINTS),
    "login": {"login", "logout", "home"},
}

# ---------------------------------------------------------------------------------------------------------
# small helpers


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_like(kind):
    """A random, opaque token that looks like a JWT (three base64url parts)."""
    header = b64u(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")))
    payload = b64u(json.dumps({"id": secrets.token_hex(16), "kind": kind, "n": secrets.token_hex(4)},
                              separators=(",", ":")))
    return f"{header}.{payload}.{b64u(secrets.token_bytes(32))}"


def default_slug(name):
    return re.sub(r"[^a-z0-9._-]", "_", name.lower())


def add_query(uri, params):
    q = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    if not q:
        return uri
    return uri + ("&" if "?" in uri else "?") + q


def esc(s):
    return html.escape("" if s is None else str(s), quote=True)


def page(title, body):
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + esc(title) +
            " - Fake Bitbucket</title></head>\n<body>\n<h1>" + esc(title) + "</h1>\n" + body +
            "\n</body></html>\n").encode("utf-8")


def errors_body(message, exception=None, context=None):
    return {"errors": [{"context": context, "message": message, "exceptionName": exception}]}


def parse_form(raw):
    """Strictly parse an x-www-form-urlencoded body into a list of pairs (raises ValueError)."""
    text = raw.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if not text:
        return []
    return urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=False,
                                  encoding="utf-8", errors="strict")


def is_valid_redirect_registration(uri, allow_http_localhost=True):
    try:
        p = urllib.parse.urlsplit(uri)
    except ValueError:
        return False
    if p.fragment or "#" in uri or len(uri) > 450 or not p.netloc:
        return False
    if p.scheme == "https":
        return True
    return (p.scheme == "http" and allow_http_localhost and
            (p.hostname or "") in ("localhost", "127.0.0.1", "::1"))


class Principal:
    """Who a request runs as."""

    def __init__(self, user=None, kind="anonymous", cap=L_PROJECT_ADMIN, token=None, bad_credentials=False):
        self.user = user          # user dict or None
        self.kind = kind          # anonymous|session|password|oauth2|personal|project|repo|oauth1|oauth1-2lo
        self.cap = cap
        self.token = token        # the credential record, if any
        self.bad_credentials = bad_credentials

    @property
    def name(self):
        return self.user["name"] if self.user else None

    @property
    def http_token(self):
        return self.kind in ("personal", "project", "repo")


class OAuth1Problem(Exception):
    def __init__(self, problem, extra=None, html_page=False):
        super().__init__(problem)
        self.problem = problem
        self.extra = extra or {}
        self.html_page = html_page


class Reply(Exception):
    """Raised to answer immediately with (status, body, content type, headers)."""

    def __init__(self, status, body=b"", ctype=None, headers=None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.ctype = ctype
        self.headers = headers or []


# ---------------------------------------------------------------------------------------------------------
# the request wrapper


class Request:
    def __init__(self, handler, fake):
        self.h = handler
        self.method = handler.command
        self.raw_target = handler.path
        target = handler.path
        if not target.startswith("/"):  # absolute-form (or "*"): keep only path and query
            sp = urllib.parse.urlsplit(target)
            target = (sp.path or "/") + ("?" + sp.query if sp.query else "")
        path, _, query = target.partition("?")
        self.raw_path = path.split("#", 1)[0]
        self.query_string = query.split("#", 1)[0]
        self.is_head = self.method == "HEAD"
        if self.is_head:
            self.method = "GET"
        try:
            self.query = urllib.parse.parse_qsl(self.query_string, keep_blank_values=True, errors="strict")
        except (ValueError, UnicodeDecodeError):
            self.query = None  # malformed
        self.headers = handler.headers
        self.body = b""
        self.drop_after = False   # mode drop_after: handled, then the connection closed without an answer
        self.form = None
        self.form_error = False
        self.cookies = {}
        for c in self.headers.get_all("Cookie") or []:
            for part in c.split(";"):
                if "=" in part:
                    k, v = part.split("=", 1)
                    self.cookies.setdefault(k.strip(), v.strip())
        self.path = None   # context-relative, percent-decoded segments are decoded per route
        self.endpoint = "not_found"
        self.principal = None

    @property
    def content_type(self):
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks, total = [], 0
            while True:
                line = self.h.rfile.readline(1024)
                if not line:
                    raise ConnectionError("eof in chunked body")
                try:
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    self.h.close_connection = True
                    raise Reply(400, b"bad chunked encoding", "text/plain")
                if size == 0:
                    while True:  # trailers
                        t = self.h.rfile.readline(8192)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                total += size
                if total > MAX_BODY:
                    raise Reply(413, b"request body too large", "text/plain")
                chunk = self.h.rfile.read(size)
                if len(chunk) < size:
                    raise ConnectionError("eof in chunked body")
                chunks.append(chunk)
                self.h.rfile.readline(8)
            self.body = b"".join(chunks)
        else:
            cl = self.headers.get("Content-Length")
            if cl:
                try:
                    n = int(cl)
                except ValueError:
                    raise Reply(400, b"bad Content-Length", "text/plain")
                if n < 0:
                    raise Reply(400, b"bad Content-Length", "text/plain")
                if n > MAX_BODY:
                    self.h.close_connection = True
                    raise Reply(413, b"request body too large", "text/plain")
                self.body = self.h.rfile.read(n)
                if len(self.body) < n:
                    raise ConnectionError("client closed the connection before sending the whole body")
        if self.content_type == "application/x-www-form-urlencoded":
            try:
                self.form = parse_form(self.body)
            except ValueError:
                self.form = []
                self.form_error = True

    def qfirst(self, name, default=None):
        for k, v in self.query or []:
            if k == name:
                return v
        return default

    def qall(self, name):
        return [v for k, v in (self.query or []) if k == name]

    def ffirst(self, name, default=None):
        for k, v in self.form or []:
            if k == name:
                return v
        return default

    def fall(self, name):
        return [v for k, v in (self.form or []) if k == name]


# ---------------------------------------------------------------------------------------------------------
# the server


class _TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, handler_cls, fake):
        self.fake = fake
        super().__init__(addr, handler_cls)

    def get_request(self):
        sock, addr = self.socket.accept()
        self.fake.count_connection("accepted")
        # As Tomcat does (tcpNoDelay): a small answer written in two pieces must not wait for a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.fake.ssl_ctx is not None:
            sock = self.fake.ssl_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, socket.timeout, TimeoutError, OSError)):
            self.fake.logline(f"{client_address[0]} connection error: {type(exc).__name__}: {exc}")
        else:
            self.fake.logline(f"{client_address[0]} unhandled error: {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeBitbucket/1.0"
    sys_version = ""
    timeout = 60

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        self.resumed = False
        self.counted_as_api = False
        self.requests_served = 0
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()
            self.resumed = bool(self.connection.session_reused)
            self.server.fake.count_connection("tls_handshakes", "tls_resumed" if self.resumed else None)

    def log_message(self, fmt, *args):  # only used by BaseHTTPRequestHandler.send_error paths
        self.server.fake.logline(f"{self.client_address[0]} " + (fmt % args))

    def log_request(self, code="-", size="-"):
        pass

    def handle_one_request(self):
        # Like Tomcat's keepAliveTimeout: waiting for the next request (its line and headers) is bounded by the
        # setting, then the connection is closed (a timeout ends BaseHTTPRequestHandler's loop).
        idle = self.server.fake.settings.get("keepalive_timeout")
        self.connection.settimeout(float(idle) if idle else self.timeout)
        super().handle_one_request()

    def _go(self):
        self.connection.settimeout(self.timeout)
        self.server.fake.handle(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _go


class FakeBitbucket:
    """The fake Bitbucket DC server (in-process).  Thread-safe; start() serves in a background thread."""

    def __init__(self, cert=None, key=None, users=None, port=0, host="127.0.0.1", context_path="",
                 oauth2_clients=None, oauth1_consumers=None, settings=None, quiet=False):
        if users is None:
            users = os.path.join(HERE, "users.json")
        if isinstance(users, (str, os.PathLike)):
            with open(users, "r", encoding="utf-8") as f:
                self.initial = json.load(f)
        else:
            self.initial = copy.deepcopy(users)
        self.extra_clients = list(oauth2_clients or [])
        self.extra_consumers = list(oauth1_consumers or [])
        self.extra_settings = dict(settings or {})
        ctx = (context_path or "").strip()
        if ctx and not ctx.startswith("/"):
            ctx = "/" + ctx
        self.ctx = ctx.rstrip("/")
        self.host = host
        self.quiet = quiet
        self.lock = threading.RLock()
        self.stop_event = threading.Event()
        self.ssl_ctx = None
        if cert:
            ctxt = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctxt.minimum_version = ssl.TLSVersion.TLSv1_2
            ctxt.load_cert_chain(cert, key)
            self.ssl_ctx = ctxt
        self.httpd = _TLSServer((host, port), _Handler, self)
        self.port = self.httpd.server_address[1]
        self.thread = None
        self.reset()

    # -- addresses ----------------------------------------------------------------------------------------
    @property
    def scheme(self):
        return "https" if self.ssl_ctx else "http"

    @property
    def root_url(self):
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def base_url(self):
        return self.root_url + self.ctx

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="fake-bitbucket", daemon=True)
        self.thread.start()
        return self

    def serve_forever(self):
        self.httpd.serve_forever(poll_interval=0.1)

    def stop(self):
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def logline(self, msg):
        if not self.quiet:
            try:
                sys.stderr.write(f"fakebb {time.strftime('%H:%M:%S')} {msg}\n")
                sys.stderr.flush()
            except Exception:
                pass

    def now(self):
        return time.time() + float(self.settings.get("clock_offset") or 0)

    # -- state --------------------------------------------------------------------------------------------
    def reset(self):
        with self.lock:
            data = copy.deepcopy(self.initial)
            self.settings = dict(DEFAULT_SETTINGS)
            self.settings.update(data.get("settings") or {})
            self.settings.update(self.extra_settings)
            self.users = {}
            self.extra_groups = set(data.get("groups") or [])
            for u in data.get("users") or []:
                self._put_user(u)
            self.projects = {}
            for p in data.get("projects") or []:
                self._put_project(p)
            self.http_tokens = {}
            self._svc_seq = 9000
            for t in data.get("tokens") or []:
                self._put_http_token(t)
            self.clients = {}
            for c in (data.get("oauth2_clients") or []) + self.extra_clients:
                self._put_client(c)
            self.consumers = {}
            for c in (data.get("oauth1_consumers") or []) + self.extra_consumers:
                self._put_consumer(c)
            self.sessions = {}
            self.pending = {}
            self.codes = {}
            self.access_tokens = {}
            self.refresh_tokens = {}
            self.o1_request_tokens = {}
            self.o1_access_tokens = {}
            self.o1_nonces = {}
            self.modes = {}
            self.rate_limits = {}
            self.user_calls = collections.Counter()
            self.calls = collections.Counter()
            self.connections = collections.Counter()
            self.agents = {}
            self.log = collections.deque(maxlen=LOG_MAX)

    def count_connection(self, *names):
        with self.lock:
            for name in names:
                if name:
                    self.connections[name] += 1

    def count_api_connection(self, h):
        """Counts h's connection once, at its first request outside the control API."""
        if getattr(h, "counted_as_api", True):
            return
        h.counted_as_api = True
        tls = isinstance(h.connection, ssl.SSLSocket)
        self.count_connection("api_connections", "api_handshakes" if tls else None,
                              "api_resumed" if tls and h.resumed else None)
        agent = (h.headers.get("User-Agent") or "").split("/")[0][:40]
        with self.lock:
            seen = self.agents.setdefault(agent, collections.Counter())
            seen["connections"] += 1
            seen["handshakes"] += tls
            seen["resumed"] += tls and h.resumed

    def _put_user(self, u, merge=False):
        name = u.get("name")
        if not name or not isinstance(name, str):
            raise ValueError("user needs a name")
        old = self.users.get(name) if merge else None
        rec = dict(old) if old else {}
        rec.update(u)
        rec.setdefault("slug", default_slug(name))
        rec.setdefault("displayName", name)
        rec.setdefault("active", True)
        rec.setdefault("type", "NORMAL")
        rec.setdefault("licensed", rec["type"] == "NORMAL")
        rec.setdefault("globalPermission", "LICENSED_USER" if rec["licensed"] else None)
        rec.setdefault("groups", [])
        rec.setdefault("password", None)
        if "id" not in rec:
            rec["id"] = max([x["id"] for x in self.users.values()] + [100]) + 1
        self.users[name] = rec
        return rec

    def _put_project(self, p):
        rec = dict(p)
        rec.setdefault("id", len(self.projects) + 1)
        rec.setdefault("name", rec["key"])
        rec.setdefault("description", "")
        rec.setdefault("public", False)
        perms = rec.setdefault("permissions", {})
        perms.setdefault("users", {})
        perms.setdefault("groups", {})
        repos = {}
        for r in rec.get("repos") or []:
            rr = dict(r)
            rr.setdefault("name", rr["slug"])
            rr.setdefault("id", rec["id"] * 100 + len(repos) + 1)
            rr.setdefault("public", False)
            rp = rr.setdefault("permissions", {})
            rp.setdefault("users", {})
            rp.setdefault("groups", {})
            repos[rr["slug"].lower()] = rr
        rec["repos"] = repos
        self.projects[rec["key"].upper()] = rec

    def _put_http_token(self, t):
        rec = dict(t)
        kind = rec.get("kind", "personal")
        if kind not in ("personal", "project", "repo"):
            raise ValueError("kind must be personal, project or repo")
        rec["kind"] = kind
        rec.setdefault("token", "BBDC-" + b64u(secrets.token_bytes(33)))
        rec.setdefault("permission", "REPO_READ")
        if rec["permission"] not in GRANT_LEVEL:
            raise ValueError("bad permission " + str(rec["permission"]))
        rec.setdefault("expires", None)
        rec.setdefault("revoked", False)
        rec.setdefault("created", time.time())
        if kind == "personal":
            if rec.get("user") not in self.users:
                raise ValueError("personal token needs a known user")
        else:
            key = (rec.get("project") or "").upper()
            if key not in self.projects:
                raise ValueError("project/repo token needs a known project")
            rec["project"] = key
            if kind == "repo" and (rec.get("repo") or "").lower() not in self.projects[key]["repos"]:
                raise ValueError("repo token needs a known repo")
            self._svc_seq += 1
            svc = dict(rec.get("service_user") or {})
            svc.setdefault("name", f"{kind}-token-{key.lower()}-{self._svc_seq}")
            svc.setdefault("displayName", f"{key}{'/' + rec['repo'] if kind == 'repo' else ''} {kind} token")
            svc.setdefault("id", self._svc_seq)
            svc.update({"type": "SERVICE", "licensed": False, "globalPermission": None, "groups": [],
                        "password": None, "active": True})
            svc.setdefault("slug", default_slug(svc["name"]))
            self.users[svc["name"]] = svc
            rec["user"] = svc["name"]
        self.http_tokens[rec["token"]] = rec
        return rec

    def _put_client(self, c):
        rec = dict(c)
        if not rec.get("client_id"):
            raise ValueError("client_id required")
        uris = list(rec.get("redirect_uris") or [])
        if rec.get("redirect_uri"):
            uris.append(rec.pop("redirect_uri"))
        for u in uris:
            if not is_valid_redirect_registration(u):
                raise ValueError(f"redirect URL not acceptable for an incoming link: {u!r}")
        rec["redirect_uris"] = uris
        rec.setdefault("client_secret", "")
        rec.setdefault("scope", "REPO_ADMIN")
        if rec["scope"] not in SCOPE_RANK:
            raise ValueError("bad scope ceiling " + rec["scope"])
        rec.setdefault("name", rec["client_id"])
        self.clients[rec["client_id"]] = rec
        return rec

    def _put_consumer(self, c):
        rec = dict(c)
        if not rec.get("consumer_key"):
            raise ValueError("consumer_key required")
        if rec.get("public_key_file") and not rec.get("public_key"):
            with open(rec["public_key_file"], "r", encoding="ascii") as f:
                rec["public_key"] = f.read()
        if not rec.get("public_key"):
            raise ValueError("consumer needs public_key")
        rec.setdefault("name", rec["consumer_key"])
        rec.setdefault("callback", None)
        rec.setdefault("allow_3lo", True)
        rec.setdefault("two_lo_user", None)
        rec.setdefault("two_lo_impersonation", False)
        self.consumers[rec["consumer_key"]] = rec
        return rec

    # -- lookups ------------------------------------------------------------------------------------------
    def user_by_slug(self, slug):
        s = slug.lower()
        for u in self.users.values():
            if u["slug"].lower() == s:
                return u
        return None

    def group_names(self):
        g = set(self.extra_groups)
        for u in self.users.values():
            g.update(u.get("groups") or [])
        return g

    def find_project(self, key):
        return self.projects.get((key or "").upper())

    # -- permissions --------------------------------------------------------------------------------------
    def _grant_level(self, perms, user):
        lv = GRANT_LEVEL.get(perms["users"].get(user["name"]), 0)
        for g in user.get("groups") or []:
            lv = max(lv, GRANT_LEVEL.get(perms["groups"].get(g), 0))
        return lv

    def level(self, principal, project, repo=None):
        """Effective level of a principal on a project (repo=None: project-level grants only) or repo."""
        public = bool(repo["public"] if repo is not None else project["public"])
        u = principal.user
        lv = 0
        if u is not None and u.get("active", True):
            if u["type"] == "SERVICE":
                t = principal.token or {}
                if t.get("project") == project["key"].upper():
                    if t.get("kind") == "project":
                        lv = GRANT_LEVEL[t["permission"]]
                    elif t.get("kind") == "repo" and repo is not None and \
                            repo["slug"].lower() == (t.get("repo") or "").lower():
                        lv = GRANT_LEVEL[t["permission"]]
            else:
                if u.get("globalPermission") in ("ADMIN", "SYS_ADMIN"):
                    lv = L_PROJECT_ADMIN
                lv = max(lv, self._grant_level(project["permissions"], u))
                if repo is not None:
                    lv = max(lv, self._grant_level(repo["permissions"], u))
            if principal.cap < L_READ:
                lv = 0
            else:
                lv = min(lv, principal.cap)
        if public and (u is not None or self.settings["public_access"]):
            lv = max(lv, L_PUBLIC)
        return lv

    def project_view_level(self, principal, project):
        lv = self.level(principal, project)
        for r in project["repos"].values():
            lv = max(lv, self.level(principal, project, r))
        return lv

    # -- credentials --------------------------------------------------------------------------------------
    def _usable_user(self, name):
        u = self.users.get(name)
        if u is None or not u.get("active", True):
            return None
        return u

    def _oauth2_principal(self, tok):
        at = self.access_tokens.get(tok)
        if not at or at["expires"] <= self.now():
            return None
        u = self._usable_user(at["user"])
        if not u:
            return None
        top = max(SCOPE_RANK[s] for s in at["scope"].split())
        cap = SCOPE_CAP[SCOPES[top - 1]]
        return Principal(u, "oauth2", cap, at)

    def _http_token_principal(self, tok, basic_user=None):
        t = self.http_tokens.get(tok)
        if not t or t["revoked"] or (t["expires"] is not None and t["expires"] <= self.now()):
            return None
        if basic_user is not None:
            if t["kind"] != "personal":
                return None  # project/repo tokens are Bearer-only
            if basic_user.lower() != t["user"].lower():
                return None
        u = self._usable_user(t["user"])
        if not u:
            return None
        return Principal(u, t["kind"], GRANT_LEVEL[t["permission"]], t)

    def authenticate(self, rq):
        """Resolve the request's principal.  Raises OAuth1Problem for bad OAuth 1 signed requests."""
        auth = rq.headers.get("Authorization")
        if auth:
            scheme, _, cred = auth.strip().partition(" ")
            cred = cred.strip()
            if scheme == "Bearer":
                p = self._oauth2_principal(cred) or self._http_token_principal(cred)
                return p or Principal()
            if scheme.lower() == "basic":
                try:
                    raw = base64.b64decode(cred, validate=True).decode("utf-8")
                except (binascii.Error, ValueError):
                    return Principal(bad_credentials=True)
                user, sep, secret = raw.partition(":")
                if not sep:
                    return Principal(bad_credentials=True)
                if self.settings["token_via_basic"]:
                    p = self._oauth2_principal(secret)
                    if p:
                        return p
                if secret in self.http_tokens:
                    return self._http_token_principal(secret, basic_user=user) or Principal()
                if self.settings["basic_password_auth"]:
                    u = self.users.get(user)
                    if u and u.get("password") and u["type"] == "NORMAL" and \
                            hmac.compare_digest(u["password"].encode(), secret.encode()):
                        if u.get("active", True):
                            return Principal(u, "password")
                return Principal(bad_credentials=True)
            if scheme.lower() == "oauth":
                return self.oauth1_principal(rq)
            return Principal()
        sid = rq.cookies.get(SESSION_COOKIE)
        s = self.session(sid)
        if s:
            return Principal(self.users[s["user"]], "session")
        return Principal()

    def session(self, sid):
        if not sid:
            return None
        s = self.sessions.get(sid)
        if not s or s["expires"] <= self.now():
            return None
        if not self._usable_user(s["user"]):
            return None
        return s

    def new_session(self, user):
        sid = secrets.token_hex(16).upper()
        self.sessions[sid] = {"user": user, "xsrf": secrets.token_hex(20), "created": self.now(),
                              "expires": self.now() + SESSION_TTL}
        return sid

    # -- OAuth 2 token bookkeeping ------------------------------------------------------------------------
    def issue_oauth2_pair(self, user, client_id, scope, grant, redirect_uri):
        now = self.now()
        at = jwt_like("access")
        rt = jwt_like("refresh")
        self.access_tokens[at] = {"token": at, "user": user, "client_id": client_id, "scope": scope,
                                  "created": now, "expires": now + float(self.settings["access_token_ttl"]),
                                  "grant": grant, "refresh": rt}
        self.refresh_tokens[rt] = {"token": rt, "user": user, "client_id": client_id, "scope": scope,
                                   "created": now,
                                   "expires": now + float(self.settings["refresh_token_ttl"]),
                                   "grant": grant, "access": at, "redirect_uri": redirect_uri}
        return at, rt

    def revoke_grant(self, grant):
        for d in (self.access_tokens, self.refresh_tokens):
            for k in [k for k, v in d.items() if v["grant"] == grant]:
                del d[k]

    def revoke_user(self, name):
        n = 0
        for d in (self.access_tokens, self.refresh_tokens):
            for k in [k for k, v in d.items() if v["user"] == name]:
                del d[k]
                n += 1
        for c in self.codes.values():
            if c["user"] == name and not c["revoked"]:
                c["revoked"] = True
                n += 1
        for t in self.http_tokens.values():
            if t["kind"] == "personal" and t["user"] == name and not t["revoked"]:
                t["revoked"] = True
                n += 1
        for k in [k for k, v in self.o1_access_tokens.items() if v["user"] == name]:
            del self.o1_access_tokens[k]
            n += 1
        for v in self.o1_request_tokens.values():
            if v.get("user") == name and v["state"] != "used":
                v["state"] = "used"
                n += 1
        return n

    def revoke_token(self, tok):
        if tok in self.access_tokens:
            rt = self.access_tokens.pop(tok)["refresh"]
            self.refresh_tokens.pop(rt, None)
            return "oauth2_access"
        if tok in self.refresh_tokens:
            at = self.refresh_tokens.pop(tok)["access"]
            self.access_tokens.pop(at, None)
            return "oauth2_refresh"
        if tok in self.codes:
            self.codes[tok]["revoked"] = True
            self.revoke_grant(tok)
            return "oauth2_code"
        if tok in self.http_tokens:
            self.http_tokens[tok]["revoked"] = True
            return "http_token"
        if tok in self.o1_access_tokens:
            del self.o1_access_tokens[tok]
            return "oauth1_access"
        if tok in self.o1_request_tokens:
            self.o1_request_tokens[tok]["state"] = "used"
            return "oauth1_request"
        return None

    def expire_token(self, tok):
        past = self.now() - 1
        for d, name in ((self.access_tokens, "oauth2_access"), (self.refresh_tokens, "oauth2_refresh"),
                        (self.codes, "oauth2_code"), (self.http_tokens, "http_token"),
                        (self.o1_access_tokens, "oauth1_access"), (self.o1_request_tokens, "oauth1_request")):
            if tok in d:
                d[tok]["expires"] = past
                return name
        return None

    # -- OAuth 1 verification -----------------------------------------------------------------------------
    def o1_base_uri(self, rq):
        root = self.settings.get("oauth1_base_uri") or self.root_url
        return root.rstrip("/") + rq.raw_path

    def oauth1_verify(self, rq):
        """Verify a signed OAuth 1.0a request.  Returns (oauth params dict, consumer) or raises."""
        if o1sig is None:
            raise OAuth1Problem("signature_method_rejected")
        header = rq.headers.get("Authorization") or ""
        if header and header[:6].lower() != "oauth ":
            header = ""
        # duplicate detection on the raw sources (oauthlib's header parser collapses duplicates)
        names = []
        if header:
            for item in urllib.request.parse_http_list(header[6:]):
                if "=" in item:
                    names.append(item.split("=", 1)[0].strip())
        names += [k for k, _ in rq.query or []]
        form_body = None
        if rq.content_type == "application/x-www-form-urlencoded" and rq.body:
            try:
                form_body = rq.body.decode("utf-8")
            except UnicodeDecodeError:
                raise OAuth1Problem("parameter_rejected")
            names += [k for k, _ in rq.form or []]
        dups = sorted({n for n in names if n.startswith("oauth_") and names.count(n) > 1})
        if dups:
            raise OAuth1Problem("parameter_rejected", {"oauth_parameters_rejected": "&".join(dups)})
        try:
            params = o1sig.collect_parameters(uri_query=rq.query_string, body=form_body,
                                              headers={"Authorization": header} if header else None,
                                              exclude_oauth_signature=False)
        except (ValueError, TypeError):
            raise OAuth1Problem("parameter_rejected")
        op = {k: v for k, v in params if k.startswith("oauth_")}
        version = op.get("oauth_version")
        if version is not None and version != "1.0":
            raise OAuth1Problem("version_rejected", {"oauth_acceptable_versions": "1.0-1.0"})
        missing = [p for p in O1_REQUIRED if not op.get(p)]
        if missing:
            raise OAuth1Problem("parameter_absent", {"oauth_parameters_absent": "&".join(missing)})
        if op["oauth_signature_method"] != "RSA-SHA1":
            raise OAuth1Problem("signature_method_rejected")
        consumer = self.consumers.get(op["oauth_consumer_key"])
        if consumer is None:
            raise OAuth1Problem("consumer_key_unknown")
        window = float(self.settings["oauth1_timestamp_window"])
        real_now = time.time()
        try:
            ts = int(op["oauth_timestamp"])
        except ValueError:
            raise OAuth1Problem("parameter_rejected", {"oauth_parameters_rejected": "oauth_timestamp"})
        if abs(real_now - ts) > window:
            raise OAuth1Problem("timestamp_refused", {
                "oauth_acceptable_timestamps": f"{int(real_now - window)}-{int(real_now + window)}"})
        sig_params = [(k, v) for k, v in params if k != "oauth_signature"]
        request = types.SimpleNamespace(params=sig_params, uri=self.o1_base_uri(rq),
                                        http_method=rq.method, signature=op["oauth_signature"])
        try:
            ok = o1sig.verify_rsa_sha1(request, consumer["public_key"])
        except Exception:
            ok = False
        if not ok:
            try:
                base = o1sig.signature_base_string(rq.method, o1sig.base_string_uri(request.uri),
                                                   o1sig.normalize_parameters(sig_params))
            except Exception:
                base = "?"
            raise OAuth1Problem("signature_invalid", {"oauth_signature_base_string": base})
        # nonce uniqueness per consumer (pruned after twice the timestamp window)
        for k in [k for k, t in self.o1_nonces.items() if t < real_now - 2 * window]:
            del self.o1_nonces[k]
        nk = (consumer["consumer_key"], op["oauth_nonce"])
        if nk in self.o1_nonces:
            raise OAuth1Problem("nonce_used")
        self.o1_nonces[nk] = real_now
        return op, consumer

    def oauth1_principal(self, rq):
        op, consumer = self.oauth1_verify(rq)
        tok = op.get("oauth_token")
        if tok:
            at = self.o1_access_tokens.get(tok)
            if at is None:
                raise OAuth1Problem("token_rejected")
            if at["consumer_key"] != consumer["consumer_key"]:
                raise OAuth1Problem("token_rejected")
            if at["expires"] <= self.now():
                raise OAuth1Problem("token_expired")
            if not consumer.get("allow_3lo", True):
                raise OAuth1Problem("permission_denied")
            u = self._usable_user(at["user"])
            if not u:
                raise OAuth1Problem("permission_denied")
            return Principal(u, "oauth1", L_PROJECT_ADMIN, at)
        # 2-legged
        name = consumer.get("two_lo_user")
        requestor = rq.qfirst("xoauth_requestor_id")
        if requestor and consumer.get("two_lo_impersonation"):
            name = requestor
        if name:
            u = self._usable_user(name)
            if u:
                return Principal(u, "oauth1-2lo", L_PROJECT_ADMIN, None)
            raise OAuth1Problem("permission_denied")
        return Principal(kind="oauth1-2lo")

    # -- request handling ---------------------------------------------------------------------------------
    def handle(self, h):
        rq = Request(h, self)
        t0 = time.monotonic()
        status = None
        h.requests_served += 1
        limit = self.settings.get("max_keepalive_requests")
        if limit and h.requests_served >= int(limit):
            h.close_connection = True   # send() says "Connection: close", as Tomcat does on the last request
        try:
            try:
                rq.read_body()
                status = self.dispatch(h, rq)
            except Reply as r:
                if rq.drop_after:
                    status = self.drop_connection(h, "dropped_after")
                else:
                    status = self.send(h, rq, r.status, r.body, r.ctype, r.headers)
        except (ConnectionError, ssl.SSLError, socket.timeout, TimeoutError, BrokenPipeError) as e:
            h.close_connection = True
            status = f"conn:{type(e).__name__}"
        except Exception as e:  # never crash: log and answer 500
            traceback.print_exc(file=sys.stderr)
            try:
                status = self.send(h, rq, 500, {"error": "oauth2.rest.error.unknown",
                                                "error_description": f"internal error: {type(e).__name__}"})
            except Exception:
                h.close_connection = True
                status = "500!"
        finally:
            dt = (time.monotonic() - t0) * 1000
            who = rq.principal.name if rq.principal and rq.principal.user else "-"
            qn = ",".join(sorted({k for k, _ in rq.query or []}))
            self.logline(f'{h.client_address[0]} "{rq.method} {rq.raw_path}{"?[" + qn + "]" if qn else ""}" '
                         f'{status} endpoint={rq.endpoint} user={who} {dt:.1f}ms')
            if not rq.raw_path.startswith("/_fake/"):
                self.record(rq, status)

    def record(self, rq, status):
        try:
            body_text = None
            if rq.body and rq.form is None:
                body_text = rq.body[:4096].decode("utf-8", "replace")
            entry = {
                "time": time.time(), "method": rq.method, "path": rq.raw_path, "endpoint": rq.endpoint,
                "status": status,
                "query": _multidict(rq.query or []), "query_names": sorted({k for k, _ in rq.query or []}),
                "headers": {k: v for k, v in rq.headers.items()},
                "header_names": sorted({k.lower() for k in rq.headers.keys()}),
                "form": _multidict(rq.form) if rq.form is not None else None,
                "form_names": sorted({k for k, _ in rq.form}) if rq.form is not None else [],
                "body": body_text,
                "principal": (rq.principal.name if rq.principal and rq.principal.user else None),
                "auth_kind": rq.principal.kind if rq.principal else None,
            }
            with self.lock:
                self.log.append(entry)
        except Exception:
            traceback.print_exc(file=sys.stderr)

    def send(self, h, rq, status, body=b"", ctype=None, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode("utf-8")
            ctype = ctype or "application/json;charset=UTF-8"
        elif isinstance(body, str):
            body = body.encode("utf-8")
        headers = list(headers or [])
        h.send_response(status)
        if ctype:
            h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("X-AREQUESTID", secrets.token_hex(4))
        p = rq.principal
        if p is not None and p.user is not None:
            h.send_header("X-AUSERNAME", urllib.parse.quote(p.user["name"], safe="@._-+~!$'()*,;=:"))
            h.send_header("X-AUSERID", str(p.user["id"]))
            h.send_header("Vary", "X-AUSERNAME")
            h.send_header("Vary", "X-AUSERID")
            if p.kind == "oauth2" and not any(k.lower() == "cache-control" for k, _ in headers):
                headers.append(("Cache-Control", "private"))
        for k, v in headers:
            h.send_header(k, v)
        if h.close_connection:
            h.send_header("Connection", "close")
        h.end_headers()
        if not rq.is_head and body:
            h.wfile.write(body)
        h.wfile.flush()
        return status

    def json_reply(self, status, obj, headers=None):
        return Reply(status, json.dumps(obj).encode("utf-8"), "application/json;charset=UTF-8", headers)

    def html_reply(self, status, title, body, headers=None):
        return Reply(status, page(title, body), "text/html;charset=UTF-8", headers)

    # -- routing ------------------------------------------------------------------------------------------
    def dispatch(self, h, rq):
        path = rq.raw_path
        if path == "/_fake" or path.startswith("/_fake/"):
            rq.endpoint = "control"
            return self.control(h, rq)
        self.count_api_connection(h)
        if self.ctx:
            if path == self.ctx:
                path = "/"
            elif path.startswith(self.ctx + "/"):
                path = path[len(self.ctx):]
            else:
                raise self.html_reply(404, "Not found", "<p>Nothing here (outside the context path).</p>")
        path = re.sub(r"^/rest/api/latest/", "/rest/api/1.0/", path)
        path = re.sub(r"^/rest/oauth2/1\.0/(?!client$)", "/rest/oauth2/latest/", path)
        rq.path = path
        route = self.route(path)
        if route is None:
            rq.endpoint = "not_found"
            with self.lock:
                self.calls["not_found"] += 1
            if path.startswith("/rest/"):
                raise self.json_reply(404, errors_body(f"Could not find resource {path}", None))
            raise self.html_reply(404, "Not found", "<p>Page not found.</p>")
        endpoint, methods, fn, args = route
        rq.endpoint = endpoint
        with self.lock:
            self.calls[endpoint] += 1
            mode = self.take_mode(endpoint)
        if mode is not None:
            r = self.misbehave(h, rq, endpoint, mode)
            if r is not None:
                return r
        limited = self.rate_limit_of(rq) if endpoint in REST_ENDPOINTS or endpoint == "whoami" else None
        if limited is not None:
            raise limited
        if rq.method not in methods:
            hdr = [("Allow", ", ".join(methods))]
            if endpoint in REST_ENDPOINTS or path.startswith("/rest/"):
                raise self.json_reply(405, errors_body(f"Method {rq.method} is not allowed"), hdr)
            raise Reply(405, b"", "text/plain", hdr)
        if rq.query is None:
            if path.startswith("/rest/"):
                raise self.json_reply(400, errors_body("Malformed query string"))
            raise self.html_reply(400, "Bad request", "<p>Malformed query string.</p>")
        try:
            result = fn(rq, *args)
        except OAuth1Problem as p:
            result = self.oauth1_error(rq, p)
        if isinstance(result, Reply):
            raise result
        return result

    ROUTES = [
        (r"/", "home", ("GET",), "h_home"),
        (r"/login", "login", ("GET",), "h_login_page"),
        (r"/j_atl_security_check", "login", ("POST",), "h_login_post"),
        (r"/j_atl_security_logout", "logout", ("GET", "POST"), "h_logout"),
        (r"/rest/oauth2/latest/authorize", "authorize", ("GET",), "h_authorize"),
        (r"/plugins/servlet/oauth2/consent", "consent", ("GET", "POST"), "h_consent"),
        (r"/rest/oauth2/latest/token", "token", ("POST",), "h_token"),
        (r"/rest/oauth2/latest/revoke", "revoke", ("POST",), "h_revoke"),
        (r"/rest/oauth2/latest/\.well-known/oauth-authorization-server", "oauth2_metadata", ("GET",),
         "h_oauth2_metadata"),
        (r"/rest/oauth2/1\.0/client", "oauth2_client_probe", ("GET",), "h_client_probe"),
        (r"/plugins/servlet/applinks/whoami", "whoami", ("GET",), "h_whoami"),
        (r"/rest/api/1\.0/application-properties", "application_properties", ("GET",), "h_app_props"),
        (r"/rest/api/1\.0/users", "users", ("GET",), "h_users"),
        (r"/rest/api/1\.0/users/([^/]+)", "user", ("GET",), "h_user"),
        (r"/rest/api/1\.0/projects", "projects", ("GET",), "h_projects"),
        (r"/rest/api/1\.0/projects/([^/]+)", "project", ("GET",), "h_project"),
        (r"/rest/api/1\.0/projects/([^/]+)/repos", "project_repos", ("GET",), "h_project_repos"),
        (r"/rest/api/1\.0/projects/([^/]+)/repos/([^/]+)", "repo", ("GET",), "h_repo"),
        (r"/rest/api/1\.0/repos", "repos", ("GET",), "h_repos"),
        (r"/rest/api/1\.0/admin/users/more-members", "user_groups", ("GET",), "h_user_groups"),
        (r"/rest/api/1\.0/admin/groups/more-members", "group_members", ("GET",), "h_group_members"),
        (r"/rest/api/1\.0/groups", "groups", ("GET",), "h_groups"),
        (r"/plugins/servlet/oauth/request-token", "oauth1_request_token", ("GET", "POST"),
         "h_o1_request_token"),
        (r"/plugins/servlet/oauth/authorize", "oauth1_authorize", ("GET", "POST"), "h_o1_authorize"),
        (r"/plugins/servlet/oauth/access-token", "oauth1_access_token", ("GET", "POST"),
         "h_o1_access_token"),
        (r"/plugins/servlet/twofactor/verify", "twofactor", ("GET", "POST"), "h_twofactor"),
    ]

    def route(self, path):
        for pattern, endpoint, methods, fn in self.ROUTES:
            m = re.fullmatch(pattern, path)
            if m:
                args = []
                for g in m.groups():
                    try:
                        args.append(urllib.parse.unquote(g, errors="strict"))
                    except UnicodeDecodeError:
                        args.append(g)
                return endpoint, methods, getattr(self, fn), args
        return None

    # -- per-user rate limits (protocol sheet §10) ----------------------------------------------------------
    def bearer_or_basic_user(self, rq):
        """The user a Bearer or Basic credential names ("anonymous" when nobody issued it), or None without one."""
        scheme, _, cred = (rq.headers.get("Authorization") or "").strip().partition(" ")
        cred = cred.strip()
        if scheme == "Bearer":
            p = self._oauth2_principal(cred) or self._http_token_principal(cred)
        elif scheme.lower() == "basic":
            try:
                user, _, secret = base64.b64decode(cred, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, ValueError):
                return "anonymous"
            p = self._oauth2_principal(secret) or self._http_token_principal(secret, basic_user=user)
        else:
            return None
        return p.user["name"] if p and p.user else "anonymous"

    def rate_limit_of(self, rq):
        """Counts the call by user; the 429 to answer when that user is rate-limited, else None."""
        user = self.bearer_or_basic_user(rq)
        if user is None:
            return None
        with self.lock:
            self.user_calls[user] += 1
            if user not in self.rate_limits:
                return None
            retry_after = self.rate_limits[user]
        return self.json_reply(429, errors_body("Rate limit exceeded"),
                               [("Retry-After", str(retry_after))] if retry_after is not None else None)

    # -- misbehaviour modes -------------------------------------------------------------------------------
    @staticmethod
    def drop_connection(h, status):
        """Closes h's connection without a byte of answer; returns status (what the log records)."""
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return status

    def take_mode(self, endpoint):
        """The active mode for an endpoint (endpoint > group > all); decrements `times`."""
        candidates = [endpoint] + [g for g, members in MODE_GROUPS.items() if endpoint in members] + ["all"]
        for g in candidates:
            m = self.modes.get(g)
            if m:
                if m.get("times") is not None:
                    m["times"] -= 1
                    if m["times"] <= 0:
                        del self.modes[g]
                return dict(m)
        return None

    def misbehave(self, h, rq, endpoint, m):
        mode = m["mode"]
        kind = ENDPOINT_KIND.get(endpoint, "json")
        natural = {"json": "application/json;charset=UTF-8", "text": "text/plain;charset=UTF-8",
                   "html": "text/html;charset=UTF-8"}[kind]
        if mode == "down":
            return self.drop_connection(h, "down")
        if mode == "drop_after":
            rq.drop_after = True
            return None  # handled normally, then handle() drops the answer
        if mode == "slow":
            self.stop_event.wait(float(m.get("seconds") or 5))
            return None  # then answer normally
        if mode == "garbage":
            raise Reply(200, b'{"access_token": "abc", "values": [1, 2,, <<garbage>> \x00\xff', "application/json")
        if mode == "wrong_type":
            raise Reply(200, page("Bitbucket", "<p>This is an HTML page, not what you asked for.</p>"),
                        "text/html;charset=UTF-8")
        if mode == "wrong_shape":
            body = json.dumps({"unexpected": True, "values": "not-a-list", "access_token": 12345,
                               "token_type": ["bearer"], "expires_in": "soon", "name": None,
                               "size": "many", "errors": "none"}).encode()
            raise Reply(200, body, natural if kind != "html" else "application/json")
        if mode == "oversized":
            n = int(m.get("bytes") or 2 * 1024 * 1024)
            if kind == "json":
                body = b'{"padding":"' + b"x" * max(0, n - 14) + b'"}'
            else:
                body = b"a" * n
            raise Reply(200, body, natural)
        if mode == "redirect":
            raise Reply(302, b"", None, [("Location", "https://evil.example" + rq.raw_target)])
        if mode == "twofactor":
            raise Reply(200, page("Two-step verification", (
                f'<form method="post" action="{esc(self.ctx)}/plugins/servlet/twofactor/verify" id="totp-form">'
                '<p>Enter the 6-digit code from your authenticator app.</p>'
                '<input type="text" name="totp_code" id="totp-code" autocomplete="one-time-code">'
                '<button type="submit" id="verify">Verify</button></form>')), "text/html;charset=UTF-8",
                [("Cache-Control", "no-store")])
        if mode.startswith("status:"):
            code = int(mode.split(":", 1)[1])
            retry_after = m.get("retry_after")
            raise self.json_reply(code, errors_body(f"Simulated HTTP {code}", None),
                                  [("Retry-After", str(retry_after))] if retry_after is not None else None)
        return None

    # -- web pages: login / home --------------------------------------------------------------------------
    def safe_next(self, nxt):
        base = self.ctx + "/"
        if not nxt or not nxt.startswith(base) or nxt.startswith("//") or "\\" in nxt:
            return base
        if any(ord(c) < 0x21 for c in nxt):
            return base
        return nxt

    def login_form(self, nxt, error=None, status=200):
        err = f'<p class="error" id="error">{esc(error)}</p>' if error else ""
        body = (err + f'<form method="post" action="{esc(self.ctx)}/j_atl_security_check" id="form-login">\n'
                '<label for="j_username">Username</label>'
                '<input type="text" name="j_username" id="j_username" autocomplete="username">\n'
                '<label for="j_password">Password</label>'
                '<input type="password" name="j_password" id="j_password" autocomplete="current-password">\n'
                f'<input type="hidden" name="next" value="{esc(nxt)}">\n'
                '<input type="submit" id="submit" value="Log in">\n</form>')
        return self.html_reply(status, "Log in", body, [("Cache-Control", "no-store")])

    def h_home(self, rq):
        with self.lock:
            s = self.session(rq.cookies.get(SESSION_COOKIE))
        if s:
            return self.html_reply(200, "Dashboard", f'<p id="user">Logged in as {esc(s["user"])}</p>')
        return self.html_reply(200, "Dashboard", f'<p><a href="{esc(self.ctx)}/login">Log in</a></p>')

    def h_login_page(self, rq):
        return self.login_form(self.safe_next(rq.qfirst("next")))

    def h_login_post(self, rq):
        if rq.form is None:
            return self.login_form(self.ctx + "/", "Bad request", 400)
        name = rq.ffirst("j_username") or ""
        pw = rq.ffirst("j_password") or ""
        nxt = self.safe_next(rq.ffirst("next"))
        with self.lock:
            u = self.users.get(name)
            ok = (u is not None and u["type"] == "NORMAL" and u.get("active", True) and u.get("password")
                  and hmac.compare_digest(u["password"].encode("utf-8"), pw.encode("utf-8")))
            if not ok:
                return self.login_form(nxt, "Invalid username or password.")
            sid = self.new_session(name)
        cookie = f"{SESSION_COOKIE}={sid}; Path={self.ctx or '/'}; Secure; HttpOnly; SameSite=Lax"
        return Reply(303, b"", None, [("Location", nxt), ("Set-Cookie", cookie), ("Cache-Control", "no-store")])

    def h_logout(self, rq):
        with self.lock:
            self.sessions.pop(rq.cookies.get(SESSION_COOKIE), None)
        cookie = f"{SESSION_COOKIE}=; Path={self.ctx or '/'}; Max-Age=0; Secure; HttpOnly"
        return Reply(303, b"", None, [("Location", self.ctx + "/login"), ("Set-Cookie", cookie)])

    def h_twofactor(self, rq):
        return self.html_reply(200, "Two-step verification", '<p id="error">Invalid verification code.</p>')

    # -- OAuth 2 ------------------------------------------------------------------------------------------
    NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]

    def authorize_error(self, error, description):
        body = (f'<p>The application\'s request could not be processed.</p>'
                f'<p>Error: <code id="error">{esc(error)}</code></p>'
                f'<p id="error_description">{esc(description)}</p>')
        return self.html_reply(400, "Authorization failed", body,
                               self.NO_STORE + [("X-Fake-OAuth-Error", error)])

    def h_authorize(self, rq):
        for p in ("client_id", "redirect_uri", "response_type", "scope", "state", "code_challenge",
                  "code_challenge_method"):
            if len(rq.qall(p)) > 1:
                return self.authorize_error("invalid_request", f"parameter {p} repeated")
        client_id = rq.qfirst("client_id", "")
        redirect_uri = rq.qfirst("redirect_uri", "")
        with self.lock:
            if not client_id:
                return self.authorize_error("invalid_request", "missing required parameter: client_id")
            client = self.clients.get(client_id)
            if client is None:
                return self.authorize_error("invalid_request", "client_id is not valid")
            if not redirect_uri:
                return self.authorize_error("invalid_request", "missing required parameter: redirect_uri")
            if redirect_uri not in client["redirect_uris"]:
                return self.authorize_error("invalid_request",
                                            "redirect_uri does not match a registered redirect URL")
            rt = rq.qfirst("response_type", "")
            if rt == "":
                return self.authorize_error("invalid_request", "missing required parameter: response_type")
            if rt != "code":
                return self.authorize_error("unsupported_response_type",
                                            f"response_type {rt!r} is not supported")
            scopes = [s for s in rq.qfirst("scope", "").split(" ") if s]
            if not scopes:
                return self.authorize_error("invalid_scope", "scope must not be empty")
            for s in scopes:
                if s not in SCOPE_RANK:
                    return self.authorize_error("invalid_scope", f"unknown scope {s}")
                if SCOPE_RANK[s] > SCOPE_RANK[client["scope"]]:
                    return self.authorize_error("invalid_scope", f"scope {s} is not valid for client")
            method = rq.qfirst("code_challenge_method", "").strip()
            challenge = rq.qfirst("code_challenge", "")
            pkce = None
            if method:
                m = method.upper()
                if m not in ("S256", "PLAIN"):
                    return self.authorize_error("invalid_request", "unsupported code_challenge_method")
                if not CHALLENGE_RE.fullmatch(challenge or ""):
                    return self.authorize_error("invalid_request", "invalid code_challenge")
                pkce = {"method": m, "challenge": challenge}
            state = rq.qfirst("state")
            req = {"client_id": client_id, "redirect_uri": redirect_uri, "scope": " ".join(scopes),
                   "state": state, "pkce": pkce}
            sid = rq.cookies.get(SESSION_COOKIE)
            s = self.session(sid)
            if s is None:
                nxt = self.ctx + rq.path + ("?" + rq.query_string if rq.query_string else "")
                loc = self.ctx + "/login?" + urllib.parse.urlencode({"next": nxt})
                return Reply(303, b"", None, [("Location", loc)] + self.NO_STORE)
            rq.principal = Principal(self.users[s["user"]], "session")
            if self.settings["auto_approve"]:
                return self.approve(req, s["user"])
            pid = secrets.token_urlsafe(16)
            req.update({"sid": sid, "user": s["user"], "created": self.now()})
            self.pending[pid] = req
        return Reply(303, b"", None, [("Location", self.ctx + "/plugins/servlet/oauth2/consent?" +
                                       urllib.parse.urlencode({"request": pid}))] + self.NO_STORE)

    def approve(self, req, user):
        code = secrets.token_urlsafe(32)
        now = self.now()
        self.codes[code] = {"code": code, "client_id": req["client_id"], "redirect_uri": req["redirect_uri"],
                            "user": user, "scope": req["scope"], "pkce": req["pkce"], "created": now,
                            "expires": now + float(self.settings["code_ttl"]), "used": False,
                            "revoked": False}
        params = [("code", code)]
        if req["state"] is not None:
            params.append(("state", req["state"]))
        return Reply(302, b"", None, [("Location", add_query(req["redirect_uri"], params))] + self.NO_STORE)

    def h_consent(self, rq):
        with self.lock:
            sid = rq.cookies.get(SESSION_COOKIE)
            s = self.session(sid)
            pid = rq.qfirst("request") if rq.method == "GET" else rq.ffirst("request")
            req = self.pending.get(pid or "")
            if s is None:
                nxt = self.ctx + rq.path + ("?" + rq.query_string if rq.query_string else "")
                return Reply(303, b"", None, [("Location", self.ctx + "/login?" +
                                               urllib.parse.urlencode({"next": nxt}))] + self.NO_STORE)
            rq.principal = Principal(self.users[s["user"]], "session")
            if req is None or req["sid"] != sid or req["created"] + 600 < self.now():
                return self.html_reply(400, "Authorization failed",
                                       '<p>Error: <code id="error">invalid_request</code></p>'
                                       '<p>Unknown or expired authorization request.</p>', self.NO_STORE)
            client = self.clients.get(req["client_id"])
            if rq.method == "GET":
                scopes = "".join(f"<li>{esc(x)}</li>" for x in req["scope"].split())
                body = (f'<p id="client">{esc(client["name"] if client else req["client_id"])} wants to access '
                        f'your Bitbucket account (<span id="user">{esc(s["user"])}</span>).</p><ul id="scopes">'
                        f'{scopes}</ul>'
                        f'<form method="post" action="{esc(self.ctx)}/plugins/servlet/oauth2/consent" '
                        f'id="consent-form"><input type="hidden" name="request" value="{esc(pid)}">'
                        f'<input type="hidden" name="atl_token" value="{esc(s["xsrf"])}">'
                        '<button type="submit" name="approve" id="approve" value="approve">Allow</button>'
                        '<button type="submit" name="deny" id="deny" value="deny">Deny</button></form>')
                return self.html_reply(200, "Authorize application", body, self.NO_STORE)
            if rq.form is None or not hmac.compare_digest((rq.ffirst("atl_token") or "").encode(),
                                                          s["xsrf"].encode()):
                return self.html_reply(403, "XSRF check failed", "<p>XSRF token missing or wrong.</p>",
                                       self.NO_STORE)
            del self.pending[pid]
            if rq.ffirst("approve") is not None and rq.ffirst("deny") is None:
                return self.approve(req, s["user"])
            params = [("error", "access_denied"), ("error_description", "The user denied the request")]
            if req["state"] is not None:
                params.append(("state", req["state"]))
            return Reply(302, b"", None, [("Location", add_query(req["redirect_uri"], params))] + self.NO_STORE)

    def token_error(self, error, description, status=400):
        return self.json_reply(status, {"error": error, "error_description": description}, self.NO_STORE)

    def _client_auth(self, rq, client_id):
        client = self.clients.get(client_id)
        if client is None:
            return None, self.token_error("invalid_client", "client authentication failed", 401)
        if self.settings["validate_client_secret"]:
            secret = rq.ffirst("client_secret") or ""
            if not secret or not hmac.compare_digest(secret.encode("utf-8"),
                                                     client["client_secret"].encode("utf-8")):
                return None, self.token_error("invalid_client", "client authentication failed", 401)
        return client, None

    def _token_form(self, rq):
        if rq.content_type != "application/x-www-form-urlencoded":
            return self.token_error("invalid_request",
                                    "Content-Type must be application/x-www-form-urlencoded", 415)
        if rq.form_error:
            return self.token_error("invalid_request", "malformed form body")
        names = [k for k, _ in rq.form]
        for n in set(names):
            if names.count(n) > 1:
                return self.token_error("invalid_request", f"parameter {n} repeated")
        return None

    def token_success(self, at, rt, scope):
        body = {"access_token": at, "token_type": "bearer",
                "expires_in": int(float(self.settings["access_token_ttl"])), "refresh_token": rt}
        key = self.settings["scopes_key"]
        if key in ("scope", "both"):
            body["scope"] = scope
        if key in ("scopes", "both"):
            body["scopes"] = scope
        return self.json_reply(200, body, self.NO_STORE)

    def h_token(self, rq):
        err = self._token_form(rq)
        if err:
            return err
        gt = rq.ffirst("grant_type") or ""
        if not gt:
            return self.token_error("invalid_request", "missing required parameter: grant_type")
        if gt == "authorization_code":
            return self.token_code(rq)
        if gt == "refresh_token":
            return self.token_refresh(rq)
        return self.token_error("unsupported_grant_type", f"grant_type {gt!r} is not supported")

    def token_code(self, rq):
        for p in ("code", "redirect_uri", "client_id"):
            if not rq.ffirst(p):
                return self.token_error("invalid_request", f"missing required parameter: {p}")
        code = rq.ffirst("code")
        redirect_uri = rq.ffirst("redirect_uri")
        client_id = rq.ffirst("client_id")
        with self.lock:
            client, err = self._client_auth(rq, client_id)
            if err:
                return err
            c = self.codes.get(code)
            if c is None or c["revoked"]:
                return self.token_error("invalid_grant", "invalid authorization code")
            if c["used"]:
                self.revoke_grant(code)
                c["revoked"] = True
                return self.token_error("invalid_grant",
                                        "authorization code already used; tokens issued from it are revoked")
            c["used"] = True
            if c["expires"] <= self.now():
                return self.token_error("invalid_grant", "authorization code expired")
            if c["client_id"] != client_id:
                return self.token_error("invalid_grant", "authorization code was issued to another client")
            if c["redirect_uri"] != redirect_uri:
                return self.token_error("invalid_grant", "redirect_uri does not match the authorization request")
            if redirect_uri not in client["redirect_uris"]:
                return self.token_error("invalid_client", "redirect_uri is no longer registered", 401)
            if c["pkce"]:
                verifier = rq.ffirst("code_verifier")
                if not verifier:
                    return self.token_error("invalid_grant", "code verifier missing")
                if not VERIFIER_RE.fullmatch(verifier):
                    return self.token_error("invalid_grant", "code verifier invalid")
                if c["pkce"]["method"] == "S256":
                    computed = b64u(hashlib.sha256(verifier.encode("ascii")).digest())
                else:
                    computed = verifier
                if not hmac.compare_digest(computed.encode(), c["pkce"]["challenge"].encode()):
                    return self.token_error("invalid_grant", "code verifier mismatch")
            if not self._usable_user(c["user"]):
                return self.token_error("invalid_grant", "user is not active")
            at, rt = self.issue_oauth2_pair(c["user"], client_id, c["scope"], code, redirect_uri)
            return self.token_success(at, rt, c["scope"])

    def token_refresh(self, rq):
        for p in ("refresh_token", "client_id"):
            if not rq.ffirst(p):
                return self.token_error("invalid_request", f"missing required parameter: {p}")
        client_id = rq.ffirst("client_id")
        with self.lock:
            client, err = self._client_auth(rq, client_id)
            if err:
                return err
            old = self.refresh_tokens.get(rq.ffirst("refresh_token"))
            if old is None or old["expires"] <= self.now() or old["client_id"] != client_id:
                return self.token_error("invalid_grant", "invalid refresh token")
            ru = rq.ffirst("redirect_uri")
            if ru is None or ru == "":
                if self.settings["require_redirect_on_refresh"]:
                    return self.token_error("invalid_grant", "")
            elif ru != old["redirect_uri"]:
                return self.token_error("invalid_grant", "invalid refresh token")
            if not self._usable_user(old["user"]):
                return self.token_error("invalid_grant", "invalid refresh token")
            del self.refresh_tokens[old["token"]]
            self.access_tokens.pop(old["access"], None)
            at, rt = self.issue_oauth2_pair(old["user"], client_id, old["scope"], old["grant"],
                                            old["redirect_uri"])
            return self.token_success(at, rt, old["scope"])

    def h_revoke(self, rq):
        err = self._token_form(rq)
        if err:
            return err
        client_id = rq.ffirst("client_id") or ""
        tok = rq.ffirst("token") or ""
        if not client_id or not tok:
            return self.token_error("invalid_request", "missing required parameter")
        with self.lock:
            _, err = self._client_auth(rq, client_id)
            if err:
                return err
            rec = self.access_tokens.get(tok) or self.refresh_tokens.get(tok)
            if rec and rec["client_id"] == client_id:
                self.revoke_token(tok)
        return Reply(200, b"", None, self.NO_STORE)

    def h_oauth2_metadata(self, rq):
        b = self.base_url + "/rest/oauth2/latest"
        return self.json_reply(200, {
            "issuer": self.base_url, "authorization_endpoint": b + "/authorize",
            "token_endpoint": b + "/token", "revocation_endpoint": b + "/revoke",
            "response_types_supported": ["code"], "grant_types_supported": ["authorization_code",
                                                                             "refresh_token"],
            "code_challenge_methods_supported": ["plain", "S256"], "scopes_supported": SCOPES,
            "token_endpoint_auth_methods_supported": ["client_secret_post"]})

    def h_client_probe(self, rq):
        return self.json_reply(401, errors_body(MSG_NOT_PERMITTED, EXC_AUTHZ))

    # -- identity / REST ----------------------------------------------------------------------------------
    def rest_auth(self, rq, required=True):
        with self.lock:
            p = self.authenticate(rq)
        rq.principal = p
        if p.bad_credentials:
            raise self.json_reply(401, errors_body(MSG_BADPW, EXC_BADPW),
                                  [("WWW-Authenticate", 'Basic realm="Bitbucket"')])
        if required and p.user is None:
            raise self.json_reply(401, errors_body(MSG_NOT_PERMITTED, EXC_AUTHZ))
        return p

    def h_whoami(self, rq):
        with self.lock:
            p = self.authenticate(rq)
        rq.principal = p
        body = p.user["name"].encode("utf-8") if p.user else b""
        return Reply(200, body, "text/plain;charset=UTF-8")

    def h_app_props(self, rq):
        self.rest_auth(rq, required=False)
        return self.json_reply(200, {"version": "8.19.1", "buildNumber": "8019001",
                                     "buildDate": "1700000000000", "displayName": "Bitbucket"})

    def rest_user(self, u, avatar=None):
        d = {"name": u["name"], "emailAddress": u.get("emailAddress"), "active": bool(u.get("active", True)),
             "displayName": u.get("displayName", u["name"]), "id": u["id"], "slug": u["slug"],
             "type": u["type"],
             "links": {"self": [{"href": f"{self.base_url}/users/{urllib.parse.quote(u['slug'])}"}]}}
        if d["emailAddress"] is None:
            del d["emailAddress"]
        if avatar:
            d["avatarUrl"] = f"{self.base_url}/users/{urllib.parse.quote(u['slug'])}/avatar.png?s={avatar}"
        return d

    def paged(self, rq, values):
        try:
            start = max(0, int(rq.qfirst("start", "0")))
        except ValueError:
            start = 0
        try:
            limit = int(rq.qfirst("limit", "25"))
            limit = min(max(limit, 1), 1000)
        except ValueError:
            limit = 25
        chunk = values[start:start + limit]
        last = start + limit >= len(values)
        body = {"size": len(chunk), "limit": limit, "isLastPage": last, "start": start, "values": chunk}
        if not last:
            body["nextPageStart"] = start + len(chunk)
        return self.json_reply(200, body)

    def _avatar(self, rq):
        a = rq.qfirst("avatarSize")
        return a if a and a.isdigit() else None

    def h_users(self, rq):
        self.rest_auth(rq)
        f = (rq.qfirst("filter") or "").strip().lower()
        with self.lock:
            out = []
            for u in sorted(self.users.values(), key=lambda x: x["name"].lower()):
                if u["type"] != "NORMAL":
                    continue
                hay = [u["name"], u.get("displayName") or "", u.get("emailAddress") or ""]
                if f and not any(f in x.lower() for x in hay):
                    continue
                out.append(self.rest_user(u, self._avatar(rq)))
        return self.paged(rq, out)

    def h_user(self, rq, slug):
        self.rest_auth(rq)
        with self.lock:
            u = self.user_by_slug(slug)
            if u is None:
                return self.json_reply(404, errors_body(f"User {slug} does not exist.", EXC_NO_USER))
            return self.json_reply(200, self.rest_user(u, self._avatar(rq)))

    def rest_project(self, p):
        return {"key": p["key"], "id": p["id"], "name": p["name"], "description": p.get("description", ""),
                "public": bool(p["public"]), "type": "NORMAL",
                "links": {"self": [{"href": f"{self.base_url}/projects/{p['key']}"}]}}

    def rest_repo(self, p, r):
        href = f"{self.base_url}/scm/{p['key'].lower()}/{r['slug']}.git"
        return {"slug": r["slug"], "id": r["id"], "name": r["name"], "hierarchyId": f"{r['id']:020x}"[-20:],
                "scmId": "git", "state": "AVAILABLE", "statusMessage": "Available", "forkable": True,
                "project": self.rest_project(p), "public": bool(r["public"]), "archived": False,
                "links": {"clone": [{"href": href, "name": "http"}],
                          "self": [{"href": f"{self.base_url}/projects/{p['key']}/repos/{r['slug']}/browse"}]}}

    @staticmethod
    def wanted_level(perm, grants):
        """The level a ?permission= filter asks for (public when absent), or None for a permission Bitbucket refuses."""
        if not perm:
            return L_PUBLIC
        return GRANT_LEVEL[perm] if perm in grants else None

    def viewable_project(self, rq, key):
        """(project, None), or (None, the 404/401 reply Bitbucket gives); call with self.lock held."""
        p = self.find_project(key)
        if p is None:
            return None, self.json_reply(404, errors_body(f"Project {key} does not exist.", EXC_NO_PROJECT))
        if self.project_view_level(rq.principal, p) < L_PUBLIC:
            return None, self.json_reply(401, errors_body(MSG_NOT_PERMITTED, EXC_AUTHZ))
        return p, None

    def h_projects(self, rq):
        self.rest_auth(rq, required=False)
        perm = rq.qfirst("permission")
        need = self.wanted_level(perm, PROJECT_GRANTS)
        if need is None:
            return self.json_reply(400, errors_body(f"Invalid permission {perm}", EXC_BAD_ARG))
        name = (rq.qfirst("name") or "").strip().lower()
        with self.lock:
            out = []
            for p in sorted(self.projects.values(), key=lambda x: x["key"]):
                if name and name not in p["name"].lower():
                    continue
                lv = self.level(rq.principal, p) if perm else self.project_view_level(rq.principal, p)
                if lv >= need:
                    out.append(self.rest_project(p))
        return self.paged(rq, out)

    def h_project(self, rq, key):
        self.rest_auth(rq, required=False)
        with self.lock:
            p, refusal = self.viewable_project(rq, key)
            if refusal:
                return refusal
            return self.json_reply(200, self.rest_project(p))

    def h_project_repos(self, rq, key):
        self.rest_auth(rq, required=False)
        with self.lock:
            p, refusal = self.viewable_project(rq, key)
            if refusal:
                return refusal
            out = [self.rest_repo(p, r) for r in sorted(p["repos"].values(), key=lambda x: x["slug"])
                   if self.level(rq.principal, p, r) >= L_PUBLIC]
        return self.paged(rq, out)

    def h_repo(self, rq, key, slug):
        self.rest_auth(rq, required=False)
        with self.lock:
            p = self.find_project(key)
            if p is None:
                return self.json_reply(404, errors_body(f"Project {key} does not exist.", EXC_NO_PROJECT))
            r = p["repos"].get(slug.lower())
            if r is None:
                return self.json_reply(404, errors_body(f"Repository {key}/{slug} does not exist.",
                                                        EXC_NO_REPO))
            if self.level(rq.principal, p, r) < L_PUBLIC:
                return self.json_reply(401, errors_body(MSG_NOT_PERMITTED, EXC_AUTHZ))
            return self.json_reply(200, self.rest_repo(p, r))

    def h_repos(self, rq):
        self.rest_auth(rq, required=False)
        perm = rq.qfirst("permission")
        need = self.wanted_level(perm, REPO_GRANTS)
        if need is None:
            return self.json_reply(400, errors_body(f"Invalid permission {perm}", EXC_BAD_ARG))
        pk = (rq.qfirst("projectkey") or "").strip().upper()
        name = (rq.qfirst("name") or "").strip().lower()
        pname = (rq.qfirst("projectname") or "").strip().lower()
        vis = (rq.qfirst("visibility") or "").strip().lower()
        if vis and vis not in ("public", "private"):
            return self.json_reply(400, errors_body(f"Invalid visibility {vis}", EXC_BAD_ARG))
        with self.lock:
            out = []
            for p in sorted(self.projects.values(), key=lambda x: x["key"]):
                if pk and p["key"].upper() != pk:
                    continue
                if pname and pname not in p["name"].lower():
                    continue
                for r in sorted(p["repos"].values(), key=lambda x: x["slug"]):
                    if name and name not in r["name"].lower():
                        continue
                    if vis and (vis == "public") != bool(r["public"]):
                        continue
                    if self.level(rq.principal, p, r) >= need:
                        out.append(self.rest_repo(p, r))
        return self.paged(rq, out)

    def admin_auth(self, rq):
        p = self.rest_auth(rq)
        u = p.user
        if p.http_token and not self.settings["http_tokens_admin"]:
            raise self.json_reply(401, errors_body(MSG_NOT_PERMITTED, EXC_AUTHZ))
        if p.kind == "oauth2" and not self.settings["oauth2_admin_endpoints"]:
            raise self.json_reply(401, errors_body(MSG_NOT_PERMITTED, EXC_AUTHZ))
        if u["type"] != "NORMAL" or not u.get("licensed") or not u.get("globalPermission"):
            raise self.json_reply(401, errors_body(MSG_NOT_PERMITTED, EXC_AUTHZ))
        return p

    def h_user_groups(self, rq):
        self.admin_auth(rq)
        ctx = rq.qfirst("context")
        if not ctx:
            return self.json_reply(400, errors_body("The context parameter is required", EXC_BAD_ARG))
        f = (rq.qfirst("filter") or "").lower()
        with self.lock:
            u = self.users.get(ctx)
            if u is None:
                return self.json_reply(404, errors_body(f"User {ctx} does not exist.", EXC_NO_USER))
            groups = sorted(g for g in (u.get("groups") or []) if f in g.lower())
        return self.paged(rq, [{"name": g, "deletable": True} for g in groups])

    def h_group_members(self, rq):
        self.admin_auth(rq)
        ctx = rq.qfirst("context")
        if not ctx:
            return self.json_reply(400, errors_body("The context parameter is required", EXC_BAD_ARG))
        f = (rq.qfirst("filter") or "").lower()
        with self.lock:
            if ctx not in self.group_names():
                return self.json_reply(404, errors_body(f"Group {ctx} does not exist.", EXC_NO_GROUP))
            out = []
            for u in sorted(self.users.values(), key=lambda x: x["name"].lower()):
                if ctx in (u.get("groups") or []) and (not f or f in u["name"].lower() or
                                                      f in (u.get("displayName") or "").lower()):
                    d = self.rest_user(u)
                    d.update({"directoryName": "Bitbucket Internal Directory", "deletable": True,
                              "mutableDetails": True, "mutableGroups": True})
                    out.append(d)
        return self.paged(rq, out)

    def h_groups(self, rq):
        self.admin_auth(rq)
        f = (rq.qfirst("filter") or "").lower()
        with self.lock:
            out = sorted(g for g in self.group_names() if f in g.lower())
        return self.paged(rq, out)

    # -- OAuth 1.0a ---------------------------------------------------------------------------------------
    def oauth1_error(self, rq, p):
        status = O1_STATUS.get(p.problem, 401)
        www = f'OAuth realm="{self.base_url}", oauth_problem="{p.problem}"'
        if p.html_page:
            body = (f'<p>OAuth problem: <code id="error">{esc(p.problem)}</code></p>')
            return self.html_reply(status, "OAuth error", body, [("WWW-Authenticate", www)])
        body = urllib.parse.urlencode([("oauth_problem", p.problem)] + list(p.extra.items()),
                                      quote_via=urllib.parse.quote)
        return Reply(status, body.encode("utf-8"), "text/plain;charset=UTF-8", [("WWW-Authenticate", www)])

    def h_o1_request_token(self, rq):
        if rq.method == "GET":
            return Reply(200, b"", None)  # the real servlet's GET handler is empty
        with self.lock:
            op, consumer = self.oauth1_verify(rq)
            if not consumer.get("allow_3lo", True):
                raise OAuth1Problem("permission_denied")
            cb = op.get("oauth_callback")
            version = "1.0"
            if cb is not None:
                version = "1.0a"
                if cb != "oob":
                    try:
                        u = urllib.parse.urlsplit(cb)
                        good = u.scheme in ("http", "https") and bool(u.netloc) and " " not in cb
                    except ValueError:
                        good = False
                    if not good:
                        raise OAuth1Problem("parameter_rejected", {
                            "oauth_parameters_rejected": "oauth_callback",
                            "oauth_problem_advice": "oauth_callback must be an absolute http(s) URI or 'oob'"})
            tok = secrets.token_urlsafe(24)
            now = self.now()
            self.o1_request_tokens[tok] = {
                "token": tok, "secret": secrets.token_urlsafe(24), "consumer_key": consumer["consumer_key"],
                "callback": cb, "version": version, "created": now,
                "expires": now + float(self.settings["request_token_ttl"]), "state": "pending",
                "user": None, "verifier": None}
            rec = self.o1_request_tokens[tok]
        out = [("oauth_token", tok), ("oauth_token_secret", rec["secret"])]
        if version == "1.0a":
            out.append(("oauth_callback_confirmed", "true"))
        return Reply(200, urllib.parse.urlencode(out).encode(), "text/plain;charset=UTF-8")

    def h_o1_authorize(self, rq):
        tok = rq.qfirst("oauth_token") if rq.method == "GET" else (rq.ffirst("oauth_token") or
                                                                   rq.qfirst("oauth_token"))
        with self.lock:
            sid = rq.cookies.get(SESSION_COOKIE)
            s = self.session(sid)
            if s is None:
                nxt = self.ctx + rq.path + ("?" + rq.query_string if rq.query_string else "")
                return Reply(303, b"", None, [("Location", self.ctx + "/login?" +
                                               urllib.parse.urlencode({"next": nxt}))])
            rq.principal = Principal(self.users[s["user"]], "session")
            rt = self.o1_request_tokens.get(tok or "")
            if rt is None:
                raise OAuth1Problem("token_rejected", html_page=True)
            if rt["state"] != "pending":
                raise OAuth1Problem("token_used", html_page=True)
            if rt["expires"] <= self.now():
                raise OAuth1Problem("token_expired", html_page=True)
            consumer = self.consumers.get(rt["consumer_key"]) or {}
            legacy_cb = rq.qfirst("oauth_callback") if rt["version"] == "1.0" else None
            if rq.method == "GET" and not self.settings["auto_approve"]:
                body = (f'<p id="client">{esc(consumer.get("name", rt["consumer_key"]))} wants to access your '
                        f'Bitbucket account (<span id="user">{esc(s["user"])}</span>).</p>'
                        f'<form method="post" action="{esc(self.ctx)}/plugins/servlet/oauth/authorize" '
                        f'id="consent-form"><input type="hidden" name="oauth_token" value="{esc(tok)}">'
                        + (f'<input type="hidden" name="oauth_callback" value="{esc(legacy_cb)}">'
                           if legacy_cb else "") +
                        f'<input type="hidden" name="atl_token" value="{esc(s["xsrf"])}">'
                        '<button type="submit" name="approve" id="approve" value="Allow">Allow</button>'
                        '<button type="submit" name="deny" id="deny" value="Deny">Deny</button></form>')
                return self.html_reply(200, "Authorize application", body, [("Cache-Control", "no-store")])
            if rq.method == "POST":
                if rq.form is None or not hmac.compare_digest((rq.ffirst("atl_token") or "").encode(),
                                                              s["xsrf"].encode()):
                    return self.html_reply(403, "XSRF check failed", "<p>XSRF token missing or wrong.</p>")
                approved = rq.ffirst("approve") is not None and rq.ffirst("deny") is None
                legacy_cb = rq.ffirst("oauth_callback") if rt["version"] == "1.0" else None
            else:
                approved = True  # auto_approve
            rt["user"] = s["user"]
            if approved:
                rt["state"] = "approved"
                rt["verifier"] = "".join(secrets.choice(string.ascii_letters + string.digits)
                                         for _ in range(6))
            else:
                rt["state"] = "denied"
                rt["verifier"] = "denied"
            cb = rt["callback"] if rt["version"] == "1.0a" else legacy_cb
            if not cb or cb == "oob":
                cb = consumer.get("callback")
            if not cb or cb == "oob":
                what = (f'<p>Your verification code is <code id="verifier">{esc(rt["verifier"])}</code></p>'
                        if approved else '<p id="denied">Access denied.</p>')
                return self.html_reply(200, "Authorization complete", what)
            params = [("oauth_token", tok)]
            if rt["version"] == "1.0a":
                params.append(("oauth_verifier", rt["verifier"]))
            return Reply(302, b"", None, [("Location", add_query(cb, params))])

    def h_o1_access_token(self, rq):
        if rq.method == "GET":
            return Reply(200, b"", None)
        with self.lock:
            op, consumer = self.oauth1_verify(rq)
            tok = op.get("oauth_token")
            if not tok:
                raise OAuth1Problem("parameter_absent", {"oauth_parameters_absent": "oauth_token"})
            now = self.now()
            rt = self.o1_request_tokens.get(tok)
            if rt is not None:
                if rt["state"] == "used":
                    raise OAuth1Problem("token_used")
                if rt["expires"] <= now:
                    raise OAuth1Problem("token_expired")
                if rt["state"] == "pending":
                    raise OAuth1Problem("permission_unknown")
                if rt["state"] == "denied":
                    raise OAuth1Problem("permission_denied")
                if rt["consumer_key"] != consumer["consumer_key"]:
                    raise OAuth1Problem("token_rejected")
                if rt["version"] == "1.0a" and op.get("oauth_verifier") != rt["verifier"]:
                    raise OAuth1Problem("token_rejected")
                if not self._usable_user(rt["user"]):
                    raise OAuth1Problem("permission_denied")
                rt["state"] = "used"
                return self._o1_issue_access(rt["user"], consumer["consumer_key"], None)
            at = self.o1_access_tokens.get(tok)
            handle = op.get("oauth_session_handle")
            if at is not None and handle and at["consumer_key"] == consumer["consumer_key"] and \
                    hmac.compare_digest(handle.encode(), at["session_handle"].encode()):
                if at["auth_expires"] <= now:
                    raise OAuth1Problem("permission_denied")
                if not self._usable_user(at["user"]):
                    raise OAuth1Problem("permission_denied")
                del self.o1_access_tokens[tok]
                return self._o1_issue_access(at["user"], consumer["consumer_key"], at)
            raise OAuth1Problem("token_rejected")

    def _o1_issue_access(self, user, consumer_key, previous):
        now = self.now()
        tok = secrets.token_urlsafe(24)
        ttl = float(self.settings["oauth1_access_token_ttl"])
        auth_expires = previous["auth_expires"] if previous else now + float(
            self.settings["oauth1_authorization_ttl"])
        rec = {"token": tok, "secret": secrets.token_urlsafe(24), "consumer_key": consumer_key, "user": user,
               "created": now, "expires": now + ttl,
               "session_handle": previous["session_handle"] if previous else secrets.token_urlsafe(24),
               "auth_expires": auth_expires}
        self.o1_access_tokens[tok] = rec
        out = [("oauth_token", tok), ("oauth_token_secret", rec["secret"]), ("oauth_expires_in", str(int(ttl))),
               ("oauth_session_handle", rec["session_handle"]),
               ("oauth_authorization_expires_in", str(int(max(0, auth_expires - now))))]
        return Reply(200, urllib.parse.urlencode(out).encode(), "text/plain;charset=UTF-8")

    # -- control API --------------------------------------------------------------------------------------
    def control(self, h, rq):
        try:
            result = self._control(rq)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            result = (400, {"error": f"{type(e).__name__}: {e}"})
        status, obj = result
        return self.send(h, rq, status, obj)

    def _control(self, rq):
        path = rq.raw_path[len("/_fake"):]
        m = rq.method
        data = {}
        if m == "POST" and rq.body:
            try:
                data = json.loads(rq.body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                return 400, {"error": "body must be JSON"}
            if not isinstance(data, dict):
                return 400, {"error": "body must be a JSON object"}
        with self.lock:
            if path == "/health" and m == "GET":
                return 200, {"ok": True, "base_url": self.base_url, "root_url": self.root_url, "port": self.port}
            if path == "/reset" and m == "POST":
                self.reset()
                return 200, {"ok": True}
            if path == "/mode":
                if m == "GET":
                    return 200, {"modes": self.modes}
                if m == "POST":
                    return self._set_mode(data)
            if path == "/calls" and m == "GET":
                return 200, dict(self.calls)
            if path == "/calls/by_user" and m == "GET":
                return 200, dict(self.user_calls)
            if path == "/ratelimit" and m == "POST":
                if data.get("clear"):
                    self.rate_limits.pop(str(data["user"]), None)
                else:
                    self.rate_limits[str(data["user"])] = data.get("retry_after")
                return 200, {"rate_limits": self.rate_limits}
            if path == "/calls/reset" and m == "POST":
                self.calls.clear()
                self.user_calls.clear()
                self.connections.clear()
                self.agents.clear()
                return 200, {"ok": True}
            if path == "/connections" and m == "GET":
                names = ("accepted", "tls_handshakes", "tls_resumed", "api_connections", "api_handshakes",
                         "api_resumed")
                counts = {name: self.connections[name] for name in names}
                counts["by_agent"] = {agent: dict(seen) for agent, seen in self.agents.items()}
                return 200, counts
            if path == "/settings":
                if m == "GET":
                    return 200, dict(self.settings)
                if m == "POST":
                    unknown = [k for k in data if k not in DEFAULT_SETTINGS]
                    if unknown:
                        return 400, {"error": f"unknown settings {unknown}"}
                    if "scopes_key" in data and data["scopes_key"] not in ("scope", "scopes", "both", "none"):
                        return 400, {"error": "scopes_key must be scope|scopes|both|none"}
                    for key in ("max_keepalive_requests", "keepalive_timeout"):
                        if data.get(key) is not None and (isinstance(data[key], bool) or
                                                          not isinstance(data[key], (int, float)) or data[key] <= 0):
                            return 400, {"error": f"{key} must be a positive number or null"}
                    self.settings.update(data)
                    return 200, dict(self.settings)
            if path == "/clock" and m == "POST":
                if "offset" in data:
                    self.settings["clock_offset"] = float(data["offset"])
                if "advance" in data:
                    self.settings["clock_offset"] = float(self.settings["clock_offset"]) + float(data["advance"])
                return 200, {"clock_offset": self.settings["clock_offset"]}
            if path == "/users" and m == "POST":
                u = self._put_user(data, merge=True)
                return 200, {k: v for k, v in u.items() if k != "password"}
            mm = re.fullmatch(r"/users/([^/]+)/(deactivate|activate|groups)", path)
            if mm and m == "POST":
                name = urllib.parse.unquote(mm.group(1))
                u = self.users.get(name)
                if u is None:
                    return 404, {"error": f"no user {name}"}
                if mm.group(2) == "groups":
                    u["groups"] = list(data.get("groups") or [])
                else:
                    u["active"] = mm.group(2) == "activate"
                    if not u["active"]:
                        for sid in [k for k, s in self.sessions.items() if s["user"] == name]:
                            del self.sessions[sid]
                return 200, {"name": name, "active": u["active"], "groups": u["groups"]}
            mm = re.fullmatch(r"/projects/([^/]+)(?:/repos/([^/]+))?/permissions", path)
            if mm and m == "POST":
                return self._set_permission(urllib.parse.unquote(mm.group(1)),
                                            urllib.parse.unquote(mm.group(2)) if mm.group(2) else None, data)
            if path == "/tokens":
                if m == "GET":
                    return 200, self._dump_tokens()
                if m == "POST":
                    t = dict(data)
                    exp = t.pop("expires_in", None)
                    if exp is not None:
                        t["expires"] = self.now() + float(exp)
                    t.pop("token", None)
                    rec = self._put_http_token(t)
                    return 200, {"token": rec["token"], "kind": rec["kind"], "user": rec["user"]}
            if path == "/tokens/revoke" and m == "POST":
                if data.get("token"):
                    what = self.revoke_token(data["token"])
                    return (200, {"revoked": what}) if what else (404, {"error": "unknown token"})
                if data.get("user"):
                    if data["user"] not in self.users:
                        return 404, {"error": "unknown user"}
                    return 200, {"revoked": self.revoke_user(data["user"])}
                return 400, {"error": "give token or user"}
            if path == "/tokens/expire" and m == "POST":
                what = self.expire_token(data.get("token") or "")
                return (200, {"expired": what}) if what else (404, {"error": "unknown token"})
            if path == "/login" and m == "POST":
                name = data.get("user")
                if name not in self.users:
                    return 404, {"error": "unknown user"}
                sid = self.new_session(name)
                return 200, {"cookie": SESSION_COOKIE, "value": sid, "path": self.ctx or "/"}
            if path == "/oauth2/clients" and m == "POST":
                c = self._put_client(data)
                return 200, c
            if path == "/oauth1/consumers" and m == "POST":
                c = self._put_consumer(data)
                return 200, {k: v for k, v in c.items()}
            if path == "/log":
                if m == "GET":
                    entries = list(self.log)
                    ep = rq.qfirst("endpoint")
                    if ep:
                        entries = [e for e in entries if e["endpoint"] == ep]
                    lim = rq.qfirst("limit")
                    if lim and lim.isdigit():
                        entries = entries[-int(lim):]
                    return 200, {"entries": entries}
            if path == "/log/reset" and m == "POST":
                self.log.clear()
                return 200, {"ok": True}
        return 404, {"error": f"no control endpoint {m} {rq.raw_path}"}

    def _set_mode(self, data):
        group = data.get("group") or "all"
        mode = data.get("mode") or "normal"
        valid_groups = set(ENDPOINT_KIND) | set(MODE_GROUPS) | {"all"}
        if group not in valid_groups:
            return 400, {"error": f"unknown group {group}; one of {sorted(valid_groups)}"}
        if mode == "normal":
            if group == "all":
                self.modes.clear()
            else:
                self.modes.pop(group, None)
            return 200, {"modes": self.modes}
        if mode.startswith("status:"):
            try:
                code = int(mode.split(":", 1)[1])
                if not 100 <= code <= 599:
                    raise ValueError
            except ValueError:
                return 400, {"error": "status:NNN needs a 3-digit status"}
        elif mode not in MODES:
            return 400, {"error": f"unknown mode {mode}; one of {list(MODES) + ['status:NNN', 'normal']}"}
        rec = {"mode": mode}
        for k in ("seconds", "bytes", "times", "retry_after"):
            if data.get(k) is not None:
                rec[k] = data[k]
        self.modes[group] = rec
        return 200, {"modes": self.modes}

    def _set_permission(self, key, slug, data):
        p = self.find_project(key)
        if p is None:
            return 404, {"error": "no such project"}
        target = p
        allowed = PROJECT_GRANTS
        if slug is not None:
            target = p["repos"].get(slug.lower())
            if target is None:
                return 404, {"error": "no such repo"}
            allowed = REPO_GRANTS
        perm = data.get("permission")
        if perm is not None and perm not in allowed:
            return 400, {"error": f"permission must be one of {allowed} or null"}
        if data.get("user"):
            bucket, who = target["permissions"]["users"], data["user"]
        elif data.get("group"):
            bucket, who = target["permissions"]["groups"], data["group"]
        else:
            return 400, {"error": "give user or group"}
        if perm is None:
            bucket.pop(who, None)
        else:
            bucket[who] = perm
        return 200, {"permissions": target["permissions"]}

    def _dump_tokens(self):
        def pub(d, keys):
            return [{k: v.get(k) for k in keys} for v in d.values()]
        return {
            "oauth2_access": pub(self.access_tokens, ("token", "user", "client_id", "scope", "expires", "grant")),
            "oauth2_refresh": pub(self.refresh_tokens, ("token", "user", "client_id", "scope", "expires",
                                                        "grant")),
            "oauth2_codes": pub(self.codes, ("code", "user", "client_id", "scope", "expires", "used",
                                             "revoked")),
            "http_tokens": pub(self.http_tokens, ("token", "kind", "user", "project", "repo", "permission",
                                                  "expires", "revoked")),
            "oauth1_request": pub(self.o1_request_tokens, ("token", "consumer_key", "user", "state", "version",
                                                           "expires")),
            "oauth1_access": pub(self.o1_access_tokens, ("token", "consumer_key", "user", "expires")),
            "now": self.now(),
        }


def _multidict(pairs):
    d = {}
    for k, v in pairs:
        d.setdefault(k, []).append(v)
    return d


# ---------------------------------------------------------------------------------------------------------
# subprocess helper for pytest


class FakeBitbucketProcess:
    """Run fake_bitbucket.py as a subprocess (the normal way in tests).

        with FakeBitbucketProcess(workdir, cert, key, ca, context_path="/bitbucket",
                                  oauth2_client_id="c", oauth2_client_secret="s",
                                  redirect_uris=["https://127.0.0.1:8443/cb"],
                                  oauth1_consumer_key="k", oauth1_public_key="pub.pem") as fb:
            fb.base_url, fb.root_url, fb.port
            fb.control("POST", "/_fake/mode", {"group": "whoami", "mode": "down"})
            fb.reset()

    Output (the request log) goes to workdir/fakebb.log.  Uses only the standard library.
    """

    def __init__(self, workdir, cert, key, ca, users=None, context_path="", oauth2_client_id=None,
                 oauth2_client_secret=None, redirect_uris=(), oauth2_scope=None, oauth1_consumer_key=None,
                 oauth1_public_key=None, oauth1_callback=None, extra_args=(), python="/usr/bin/python3",
                 startup_timeout=15):
        self.workdir = str(workdir)
        self.ca = ca
        os.makedirs(self.workdir, exist_ok=True)
        self.port_file = os.path.join(self.workdir, f"fakebb-{os.getpid()}-{id(self)}.port")
        self.log_path = os.path.join(self.workdir, "fakebb.log")
        args = [python, os.path.abspath(__file__), "--port", "0", "--port-file", self.port_file,
                "--cert", cert, "--key", key, "--context-path", context_path or ""]
        if users:
            args += ["--users", str(users)]
        if oauth2_client_id:
            args += ["--oauth2-client-id", oauth2_client_id, "--oauth2-client-secret", oauth2_client_secret or ""]
            for r in redirect_uris:
                args += ["--redirect-uri", r]
            if oauth2_scope:
                args += ["--oauth2-scope", oauth2_scope]
        if oauth1_consumer_key:
            args += ["--oauth1-consumer-key", oauth1_consumer_key, "--oauth1-public-key", str(oauth1_public_key)]
            if oauth1_callback:
                args += ["--oauth1-callback", oauth1_callback]
        args += list(extra_args)
        self.args = args
        self.context_path = (context_path or "").rstrip("/")
        self.startup_timeout = startup_timeout
        self.proc = None
        self.port = None

    def start(self):
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + self.startup_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fake bitbucket exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with open(self.port_file) as f:
                    txt = f.read().strip()
                if txt:
                    self.port = int(txt)
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"fake bitbucket did not start; see {self.log_path}")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def root_url(self):
        return f"https://127.0.0.1:{self.port}"

    @property
    def base_url(self):
        return self.root_url + self.context_path

    def control(self, method, path, body=None):
        """Call the control API; returns the decoded JSON.  Raises on non-2xx."""
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request(self.root_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        ctx = ssl.create_default_context(cafile=self.ca)
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return json.loads(r.read().decode() or "null")

    def reset(self):
        return self.control("POST", "/_fake/reset", {})

    def set_mode(self, group, mode, **kw):
        return self.control("POST", "/_fake/mode", dict(group=group, mode=mode, **kw))

    def settings(self, **kw):
        return self.control("POST", "/_fake/settings", kw)

    def calls(self):
        return self.control("GET", "/_fake/calls")

    def calls_by_user(self):
        return self.control("GET", "/_fake/calls/by_user")

    def rate_limit(self, user, retry_after=None, clear=False):
        return self.control("POST", "/_fake/ratelimit", {"user": user, "retry_after": retry_after, "clear": clear})

    def connections(self):
        return self.control("GET", "/_fake/connections")


# ---------------------------------------------------------------------------------------------------------
# CLI


def main(argv=None):
    ap = argparse.ArgumentParser(description="fake Bitbucket Data Center for mod_bbauth tests")
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port (printed)")
    ap.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    ap.add_argument("--cert", help="server certificate PEM (default: make a throw-away CA with testca.py)")
    ap.add_argument("--key", help="server key PEM")
    ap.add_argument("--users", default=os.path.join(HERE, "users.json"))
    ap.add_argument("--context-path", default="")
    ap.add_argument("--port-file")
    ap.add_argument("--oauth2-client-id")
    ap.add_argument("--oauth2-client-secret", default="")
    ap.add_argument("--redirect-uri", action="append", default=[])
    ap.add_argument("--oauth2-scope", default="REPO_ADMIN", help="the link's scope ceiling")
    ap.add_argument("--oauth1-consumer-key")
    ap.add_argument("--oauth1-public-key", help="PEM file with the consumer's RSA public key")
    ap.add_argument("--oauth1-callback", help="the consumer's configured callback (optional)")
    ap.add_argument("--no-auto-approve", action="store_true", help="always show the consent page")
    ap.add_argument("--quiet", action="store_true", help="no per-request log lines")
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        ap.error("the fake listens on loopback only")

    cert, key = args.cert, args.key
    if not cert:
        sys.path.insert(0, HERE)
        import testca  # noqa: E402
        d = tempfile.mkdtemp(prefix="fakebb-pki-")
        paths = testca.make_ca_and_cert(d)
        cert, key = paths["cert"], paths["key"]
        sys.stderr.write(f"fakebb: no --cert given; made a CA at {paths['ca']}\n")

    clients = []
    if args.oauth2_client_id:
        if not args.redirect_uri:
            ap.error("--oauth2-client-id needs --redirect-uri")
        clients.append({"client_id": args.oauth2_client_id, "client_secret": args.oauth2_client_secret,
                        "redirect_uris": args.redirect_uri, "scope": args.oauth2_scope,
                        "name": "mod_bbauth (" + args.oauth2_client_id + ")"})
    consumers = []
    if args.oauth1_consumer_key:
        if not args.oauth1_public_key:
            ap.error("--oauth1-consumer-key needs --oauth1-public-key")
        consumers.append({"consumer_key": args.oauth1_consumer_key, "public_key_file": args.oauth1_public_key,
                          "callback": args.oauth1_callback})
    settings = {"auto_approve": False} if args.no_auto_approve else {}
    try:
        fb = FakeBitbucket(cert=cert, key=key, users=args.users, port=args.port, host=args.host,
                           context_path=args.context_path, oauth2_clients=clients,
                           oauth1_consumers=consumers, settings=settings, quiet=args.quiet)
    except (ValueError, OSError) as e:
        sys.stderr.write(f"fakebb: cannot start: {e}\n")
        return 2

    def _term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{fb.port}\n")
        os.replace(tmp, args.port_file)
    print(f"fake bitbucket listening on {fb.base_url}", flush=True)
    try:
        fb.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fb.stop_event.set()
        fb.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
