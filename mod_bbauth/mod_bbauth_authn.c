/* mod_bbauth_authn.c: AuthType Bitbucket: the session cookie check, identity for the upstream app, and what anonymous requests get. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>

#include "mod_bbauth.h"
#include "bb_cookie.h"
#include "bb_table.h"
#include "bb_url.h"

static int uses_bitbucket_auth(request_rec *r)
{
    const char *type = ap_auth_type(r);
    return type && !strcasecmp(type, BBAUTH_AUTH_TYPE);
}

static const bbauth_server_conf *server_conf(request_rec *r)
{
    return ap_get_module_config(r->server->module_config, &bbauth_module);
}

static const bbauth_dir_conf *dir_conf(request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &bbauth_module);
}

static const char *header_prefix(const bbauth_dir_conf *dconf)
{
    return dconf->header_prefix ? dconf->header_prefix : BBAUTH_DEFAULT_PREFIX;
}

void bbauth_note_credential(request_rec *r, const char *token, const char *sid)
{
    bbauth_credential *cred = apr_pcalloc(r->pool, sizeof(*cred));

    cred->token = token;
    cred->sid = sid;
    ap_set_module_config(r->request_config, &bbauth_module, cred);
}

const bbauth_credential *bbauth_request_credential(request_rec *r)
{
    static const bbauth_credential none = { NULL, NULL };
    const bbauth_credential *cred = ap_get_module_config(r->request_config, &bbauth_module);

    /* Subrequests and internal redirects are authenticated anew, but ask the original for its credential. */
    while (!cred && r->main) {
        r = r->main;
        cred = ap_get_module_config(r->request_config, &bbauth_module);
    }
    return cred ? cred : &none;
}

/* Slides the idle window: re-issues the cookie once a tenth of the idle timeout has passed since it was made. */
static void refresh_session_cookie(request_rec *r, const bbauth_server_conf *conf, bb_session_t *session)
{
    const char *value;

    if (!ap_is_initial_req(r) || bbauth_other_cookies_cleared(r)
        || !bb_session_needs_refresh(&conf->policy, session, bbauth_now())) {
        return;
    }
    value = bb_session_encode(r->pool, conf->session_keys, &conf->policy, session, bbauth_now());
    if (value) {
        bbauth_set_cookie(r, bbauth_session_cookie(r, conf, value, (long)conf->max_age));
    }
}

/* s without control characters (a header or CGI variable must not carry them); s itself when it has none, which
 * is always for what Bitbucket sends, so no copy is made on every request. */
static const char *without_controls(apr_pool_t *p, const char *s)
{
    const unsigned char *c;

    for (c = (const unsigned char *)(s ? s : ""); *c; c++) {
        if (*c < 0x20 || *c == 0x7f) {
            return bb_strip_controls(p, s);
        }
    }
    return s ? s : "";
}

/* "<prefix><field>"; no allocation for the default prefix (this runs on every authenticated request). */
static const char *identity_header(request_rec *r, const bbauth_dir_conf *dconf, const char *field,
                                   const char *default_name)
{
    return dconf->header_prefix ? apr_pstrcat(r->pool, dconf->header_prefix, field, NULL) : default_name;
}

/* Hands the identity to the upstream app: r->user, headers with the configured prefix (the signed assertion among
 * them when there is one), CGI variables. The client's headers of the prefix were stripped before (see
 * strip_identity_headers), so each table is scanned once for them, not once per entry: this runs on every
 * authenticated request. */
static void set_identity(request_rec *r, const bbauth_dir_conf *dconf, const char *username,
                         const char *display_name, const char *email_address, apr_int64_t user_id,
                         const char *assertion)
{
    static const char *const env_names[] = { "BITBUCKET_USER", "BITBUCKET_NAME", "BITBUCKET_EMAIL", "BITBUCKET_ID" };
    const char *user = without_controls(r->pool, username);
    const char *name = without_controls(r->pool, display_name);
    const char *email = without_controls(r->pool, email_address);
    const char *uid = apr_off_t_toa(r->pool, (apr_off_t)user_id);
    const char *values[] = { user, name, email, uid, assertion };
    const char *headers[] = {
        identity_header(r, dconf, "User", BBAUTH_DEFAULT_PREFIX "User"),
        identity_header(r, dconf, "Name", BBAUTH_DEFAULT_PREFIX "Name"),
        identity_header(r, dconf, "Email", BBAUTH_DEFAULT_PREFIX "Email"),
        identity_header(r, dconf, "Id", BBAUTH_DEFAULT_PREFIX "Id"),
        assertion ? identity_header(r, dconf, "Assertion", BBAUTH_DEFAULT_PREFIX "Assertion") : NULL
    };

    r->user = (char *)user;
    r->ap_auth_type = (char *)BBAUTH_AUTH_TYPE;
    /* Names and values already live in r->pool (or are literals): nothing is copied. */
    bb_table_setn_prefixed(r->headers_in, header_prefix(dconf), assertion ? 5 : 4, headers, values);
    bb_table_setn_prefixed(r->subprocess_env, "BITBUCKET_", 4, env_names, values);
}

static void set_session_identity(request_rec *r, const bbauth_server_conf *conf, const bbauth_dir_conf *dconf,
                                 const bb_session_t *session)
{
    set_identity(r, dconf, session->sub, session->name, session->email, session->uid,
                 bbauth_assertion(r, conf, dconf, session, session->sid));
    bbauth_note_credential(r, NULL, session->sid);
}

static int token_auth_on(const bbauth_dir_conf *dconf)
{
    return dconf->token_auth == 1;
}

/* 1 when an Accept header takes text/html at full preference (no q, or q=1): browsers put it first, while pip,
 * for one, lists it at q=0.01 after its JSON types. */
static int prefers_html(apr_pool_t *p, const char *accept)
{
    char *list = apr_pstrdup(p, accept), *state = NULL, *entry;

    for (entry = apr_strtok(list, ",", &state); entry; entry = apr_strtok(NULL, ",", &state)) {
        char *params = strchr(entry, ';');
        const char *q;
        if (params) {
            *params++ = '\0';
        }
        apr_collapse_spaces(entry, entry);   /* returns the end of the string, not its start */
        if (strcasecmp(entry, "text/html")) {
            continue;
        }
        q = params ? ap_strcasestr(params, "q=") : NULL;
        return q == NULL || apr_atoi64(q + 2) >= 1;
    }
    return 0;
}

/* A browser navigating to a page, as opposed to a script, an XHR/fetch call or a command-line client. */
static int is_browser_navigation(request_rec *r)
{
    const char *accept = apr_table_get(r->headers_in, "Accept");
    const char *requested_with = apr_table_get(r->headers_in, "X-Requested-With");
    const char *fetch_mode = apr_table_get(r->headers_in, "Sec-Fetch-Mode");

    if (r->method_number != M_GET) {        /* HEAD is M_GET with header_only */
        return 0;
    }
    if (requested_with && !strcasecmp(requested_with, "XMLHttpRequest")) {
        return 0;
    }
    if (fetch_mode && strcasecmp(fetch_mode, "navigate")) {
        return 0;
    }
    return accept && prefers_html(r->pool, accept);
}

/* WWW-Authenticate for this location: Basic with BBAuthTokenAuth, so that composer, pip and npm send their
 * configured token; else the module's own scheme. */
static void set_challenge(request_rec *r, const bbauth_dir_conf *dconf)
{
    const char *realm = ap_escape_quotes(r->pool, ap_auth_name(r) ? ap_auth_name(r) : BBAUTH_AUTH_TYPE);

    apr_table_setn(r->err_headers_out, "WWW-Authenticate",
                   apr_psprintf(r->pool, "%s realm=\"%s\"", token_auth_on(dconf) ? "Basic" : BBAUTH_AUTH_TYPE,
                                realm));
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
}

/* 401 with the challenge and, unless the admin set an ErrorDocument, a short text instead of httpd's HTML page. */
static int unauthorized_because(request_rec *r, const bbauth_dir_conf *dconf, const char *text)
{
    set_challenge(r, dconf);
    if (!bbauth_has_error_document(r, HTTP_UNAUTHORIZED)) {
        ap_custom_response(r, HTTP_UNAUTHORIZED, text);
    }
    return HTTP_UNAUTHORIZED;
}

static int unauthorized(request_rec *r, const bbauth_dir_conf *dconf)
{
    return unauthorized_because(r, dconf, token_auth_on(dconf)
                                ? "Authentication required: send a Bitbucket HTTP access token, or log in with "
                                  "Bitbucket in a browser.\n"
                                : "Authentication required: log in with Bitbucket in a browser.\n");
}

/* A Require line refused an authenticated user and httpd answers 401 (unless AuthzSendForbiddenOnFailure): a 401
 * carries a challenge (RFC 7235), which httpd asks of the AuthType. */
static int note_auth_failure(request_rec *r, const char *auth_type)
{
    if (strcasecmp(auth_type, BBAUTH_AUTH_TYPE)) {
        return DECLINED;
    }
    set_challenge(r, dir_conf(r));
    if (r->user && !bbauth_has_error_document(r, HTTP_UNAUTHORIZED)) {
        /* httpd sends this text as HTML: the name is escaped. */
        ap_custom_response(r, HTTP_UNAUTHORIZED, apr_psprintf(r->pool, "Logged in with Bitbucket as %s, who may not "
                                                              "access this.\n", ap_escape_html(r->pool, r->user)));
    }
    return OK;
}

/* The URL to come back to after the login: this request's own path and query, when it is a local one. */
static const char *return_url(request_rec *r)
{
    const char *safe = bb_url_safe_return(r->unparsed_uri);
    return safe ? safe : "/";
}

static int unauthenticated(request_rec *r, const bbauth_server_conf *conf, const bbauth_dir_conf *dconf)
{
    switch (dconf->unauth_action) {
    case BBAUTH_UNAUTH_REDIRECT:
        return bbauth_start_login(r, conf, return_url(r));
    case BBAUTH_UNAUTH_401:
    case BBAUTH_UNAUTH_PASS:   /* here only when the Require lines want a user: anonymous cannot pass them */
        return unauthorized(r, dconf);
    default:
        return is_browser_navigation(r) ? bbauth_start_login(r, conf, return_url(r)) : unauthorized(r, dconf);
    }
}

/* BBAuthTokenAuth: a client that sends credentials gets 401 (never a login redirect) when they are refused. */
static int check_token(request_rec *r, const bbauth_server_conf *conf, const bbauth_dir_conf *dconf)
{
    const bb_user_t *owner = NULL;
    const char *token = NULL;
    int status = bbauth_token_authenticate(r, conf, &owner, &token);

    switch (status) {
    case OK:
        set_identity(r, dconf, owner->name, owner->display_name, owner->email, owner->id,
                     bbauth_assertion_for_token(r, conf, dconf, owner, token));
        bbauth_note_credential(r, token, NULL);
        return OK;
    case DECLINED:
        return unauthenticated(r, conf, dconf);
    case HTTP_SERVICE_UNAVAILABLE:
    case HTTP_TOO_MANY_REQUESTS:
        return status;
    default:
        return unauthorized_because(r, dconf, "The credentials sent were refused: Bitbucket does not accept this "
                                    "access token (unknown, expired or revoked; project and repository tokens "
                                    "only as Bearer).\n");
    }
}

/* A client that sends an Authorization header where tokens are taken means it: the header alone is judged, never
 * a session cookie beside it (which a browser adds unasked), so the answer never silently mixes the two. */
static int sends_authorization(request_rec *r, const bbauth_dir_conf *dconf)
{
    return token_auth_on(dconf) && apr_table_get(r->headers_in, "Authorization") != NULL;
}

static int check_authn(request_rec *r)
{
    const bbauth_server_conf *conf;
    const bbauth_dir_conf *dconf = dir_conf(r);
    bb_session_t *session;
    int rc;

    if (!uses_bitbucket_auth(r)) {
        return DECLINED;
    }
    conf = server_conf(r);
    if (conf->missing) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "mod_bbauth: AuthType Bitbucket for %s but this server lacks %s",
                      r->uri, conf->missing);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (sends_authorization(r, dconf)) {
        return check_token(r, conf, dconf);
    }
    /* Internal requests (ErrorDocument, per-directory rewrites, SSI includes) revalidate too: after the client's
     * request did, its checked mark makes that a memo read. */
    rc = bbauth_request_session(r, conf, 1, &session);
    if (rc != OK && rc != DECLINED) {
        return rc;
    }
    /* A Require line here asks Bitbucket with the session's grant: without it (evicted, or Bitbucket refused to
     * refresh it) the browser goes through the login again, which makes a new one. */
    if (session && dconf->needs_grant && !bbauth_grant_kept(r, conf, session->sid)) {
        bbauth_count(BB_M_SESSION_REFUSED_NO_GRANT);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "mod_bbauth: no Bitbucket grant is kept for the session of %s "
                      "any more (evicted from the shared cache, or grant revoked): logging in again",
                      bb_strip_controls(r->pool, session->sub));
        session = NULL;
    }
    if (session) {
        set_session_identity(r, conf, dconf, session);
        refresh_session_cookie(r, conf, session);
        return OK;
    }
    if (token_auth_on(dconf)) {
        return check_token(r, conf, dconf);
    }
    return unauthenticated(r, conf, dconf);
}


/* BBAuthUnauthAction pass with "Require all granted": httpd runs no authentication, so the identity of a
 * valid session is set here, before the handler, with the same checks as check_authn (revalidation too); a
 * session that fails them leaves the request anonymous, and a cache that cannot say answers 503. */
static int fixups_pass(request_rec *r)
{
    const bbauth_dir_conf *dconf;
    const bbauth_server_conf *conf;
    bb_session_t *session;
    int rc;

    if (r->user || !uses_bitbucket_auth(r)) {
        return DECLINED;
    }
    dconf = dir_conf(r);
    conf = server_conf(r);
    if (dconf->unauth_action != BBAUTH_UNAUTH_PASS || conf->missing) {
        return DECLINED;
    }
    rc = bbauth_request_session(r, conf, 1, &session);
    if (rc == HTTP_SERVICE_UNAVAILABLE) {
        return rc;
    }
    if (session) {
        set_session_identity(r, conf, dconf, session);
        refresh_session_cookie(r, conf, session);
    }
    return DECLINED;
}

int bbauth_authenticated_here(request_rec *r)
{
    return r->user && r->ap_auth_type && !strcmp(r->ap_auth_type, BBAUTH_AUTH_TYPE);
}

/* Once the module has authenticated a request, the client's credentials stop here: the upstream app gets the
 * identity, never the token or the Basic password (BBAuthPassAuthorization On keeps them for an app that needs
 * them). Runs last among the fixups, after fixups_pass has set a pass location's identity. */
static int strip_authorization(request_rec *r)
{
    if (bbauth_authenticated_here(r) && dir_conf(r)->pass_authorization != 1) {
        apr_table_unset(r->headers_in, "Authorization");
    }
    return DECLINED;
}

/* 1 when a header name starts with the prefix, ignoring case and treating '_' as '-'
 * (X_Bitbucket_User reaches CGI and many proxies' back ends as X-Bitbucket-User). */
static int has_identity_prefix(const char *name, const char *prefix)
{
    for (; *prefix; name++, prefix++) {
        char n = *name == '_' ? '-' : (char)apr_tolower(*name);
        char p = *prefix == '_' ? '-' : (char)apr_tolower(*prefix);
        if (!*name || n != p) {
            return 0;
        }
    }
    return 1;
}

/* 1 when two prefixes name the same headers. */
static int same_prefix(const char *a, const char *b)
{
    return strlen(a) == strlen(b) && has_identity_prefix(a, b);
}

/* Removes every header of r that starts with one of the prefixes (the second may be NULL), but those that start
 * with `keep` (NULL: none). */
static void strip_prefixed(request_rec *r, const char *prefix, const char *other_prefix, const char *keep)
{
    const apr_array_header_t *fields = apr_table_elts(r->headers_in);
    const apr_table_entry_t *entry = (const apr_table_entry_t *)fields->elts;
    apr_array_header_t *spoofed = apr_array_make(r->pool, 2, sizeof(const char *));
    int i;

    for (i = 0; i < fields->nelts; i++) {
        if (entry[i].key && (has_identity_prefix(entry[i].key, prefix)
                             || (other_prefix && has_identity_prefix(entry[i].key, other_prefix)))
            && !(keep && has_identity_prefix(entry[i].key, keep))) {
            APR_ARRAY_PUSH(spoofed, const char *) = entry[i].key;
        }
    }
    /* Unset after the scan: unsetting shifts the table under the loop. */
    for (i = 0; i < spoofed->nelts; i++) {
        apr_table_unset(r->headers_in, APR_ARRAY_IDX(spoofed, i, const char *));
    }
}

/* The prefix whose headers were stripped from the client's request (see strip_identity_headers). */
#define STRIPPED_NOTE "bbauth-stripped-prefix"

/* The request the client sent, that r was made from by internal redirects and subrequests. */
static request_rec *client_request(request_rec *r)
{
    while (r->prev || r->main) {
        r = r->prev ? r->prev : r->main;
    }
    return r;
}

/* Removes every header a client sent that looks like one of ours, so that no one can claim an identity: on the
 * client's request, those of its location's prefix and of the default one. An internal redirect (ErrorDocument)
 * or subrequest carries the same headers, ours among them; where its location names another prefix, the client's
 * headers of that prefix were never stripped, so they are now. */
static int strip_identity_headers(request_rec *r)
{
    const char *prefix = header_prefix(dir_conf(r));
    request_rec *first;

    if (ap_is_initial_req(r)) {
        strip_prefixed(r, prefix, BBAUTH_DEFAULT_PREFIX, NULL);
        apr_table_setn(r->notes, STRIPPED_NOTE, prefix);
        return DECLINED;
    }
    first = client_request(r);
    if (!same_prefix(prefix, header_prefix(dir_conf(first))) && !same_prefix(prefix, BBAUTH_DEFAULT_PREFIX)) {
        strip_prefixed(r, prefix, NULL, NULL);
    }
    return DECLINED;
}

/* A fast internal redirect (mod_dir's DirectoryIndex, MultiViews) gives the client's request the configuration of
 * another location without running post_perdir_config again: where that names another prefix, the client's
 * headers of it are stripped now, before the handler; the identity this module set (with the first prefix, which
 * was stripped of the client's) stays. */
static int strip_after_fast_redirect(request_rec *r)
{
    const char *prefix = header_prefix(dir_conf(r));
    const char *stripped = apr_table_get(r->notes, STRIPPED_NOTE);

    if (ap_is_initial_req(r) && stripped && !same_prefix(prefix, stripped)
        && !same_prefix(prefix, BBAUTH_DEFAULT_PREFIX)) {
        strip_prefixed(r, prefix, NULL, stripped);
    }
    return DECLINED;
}

void bbauth_register_authn_hooks(void)
{
    /* post_perdir_config runs for subrequests too, where header_parser does not. */
    ap_hook_post_perdir_config(strip_identity_headers, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_note_auth_failure(note_auth_failure, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_authn(check_authn, NULL, NULL, APR_HOOK_MIDDLE, AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_fixups(fixups_pass, NULL, NULL, APR_HOOK_FIRST);
    /* After mod_dir's fixup (APR_HOOK_LAST), which may make a fast internal redirect. */
    ap_hook_fixups(strip_after_fast_redirect, NULL, NULL, APR_HOOK_REALLY_LAST);
    ap_hook_fixups(strip_authorization, NULL, NULL, APR_HOOK_LAST);
}
