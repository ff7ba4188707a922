/* mod_bbauth_account.c: SetHandler bbauth-account: the logged-in user's page (who, until when, log out, how to set up each package client, check a token). */
#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>

#include "mod_bbauth.h"
#include "bb_clientsetup.h"
#include "bb_url.h"

#define ACCOUNT_HANDLER   "bbauth-account"
#define MAX_FORM_BODY     4096            /* bytes of a form post read; a longer one is refused */
#define FORM_MAC_LABEL    "account-form"  /* what the form token is the MAC of, beside the session id */
#define SCRIPT_QUERY      "copy.js"       /* ?copy.js: the copy buttons' script (served here: the CSP allows 'self') */
#define CHECK_QUERY       "check-token"   /* ?check-token: the token check for curl */

/* The copy buttons: a progressive enhancement; the page is whole without it. */
static const char copy_script[] =
    "document.querySelectorAll('pre.snippet').forEach(function (pre) {\n"
    "  if (!navigator.clipboard) return;\n"
    "  var b = document.createElement('button');\n"
    "  b.type = 'button'; b.textContent = 'Copy';\n"
    "  b.addEventListener('click', function () {\n"
    "    navigator.clipboard.writeText(pre.textContent).then(function () { b.textContent = 'Copied'; });\n"
    "  });\n"
    "  pre.parentNode.insertBefore(b, pre.nextSibling);\n"
    "});\n";

static const char *esc(request_rec *r, const char *s)
{
    return ap_escape_html2(r->pool, s ? s : "", 1);
}

static void page_headers(request_rec *r)
{
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->err_headers_out, "Content-Security-Policy",
                   "default-src 'none'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                   "base-uri 'none'");
    apr_table_setn(r->err_headers_out, "Referrer-Policy", "no-referrer");
}

/* "2026-12-07 09:30 UTC" */
static const char *utc_time(request_rec *r, apr_int64_t unix_seconds)
{
    apr_time_exp_t t;
    char buf[32];
    apr_size_t len = 0;

    apr_time_exp_gmt(&t, apr_time_from_sec(unix_seconds));
    apr_strftime(buf, &len, sizeof(buf), "%Y-%m-%d %H:%M UTC", &t);
    return apr_pstrmemdup(r->pool, buf, len);
}

/* A MAC of the session id, so that only a page this server showed to this session can post (the same-origin check
 * comes first; this is the second lock). */
const char *bbauth_account_form_token(request_rec *r, const bbauth_server_conf *conf, const char *sid)
{
    unsigned char mac[BB_HMAC_LEN];

    if (!bb_cache_mac(r->pool, conf->session_state.key, FORM_MAC_LABEL, sid, strlen(sid), mac)) {
        return NULL;
    }
    return bb_base64url_encode(r->pool, mac, sizeof(mac));
}

/* The form body (application/x-www-form-urlencoded, at most MAX_FORM_BODY bytes) as a table; NULL when there is
 * none, it is too long or cannot be read. */
static apr_table_t *read_form(request_rec *r)
{
    const char *type = apr_table_get(r->headers_in, "Content-Type");
    char *body = apr_palloc(r->pool, MAX_FORM_BODY + 1);
    apr_size_t len = 0;
    long got;

    if (!type || strncasecmp(type, "application/x-www-form-urlencoded", 33)
        || ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK) != OK || !ap_should_client_block(r)) {
        return NULL;
    }
    while ((got = ap_get_client_block(r, body + len, MAX_FORM_BODY + 1 - len)) > 0) {
        len += (apr_size_t)got;
        if (len > MAX_FORM_BODY) {
            return NULL;
        }
    }
    if (got < 0) {
        return NULL;
    }
    body[len] = '\0';
    return bb_url_parse_query(r->pool, body);
}

static void print_identity(request_rec *r, const bbauth_server_conf *conf, const bb_session_t *session)
{
    ap_rprintf(r, "<h2>You</h2>\n<dl id=\"identity\">\n<dt>Name</dt><dd id=\"display-name\">%s</dd>\n"
               "<dt>Bitbucket username</dt><dd id=\"username\">%s</dd>\n",
               esc(r, session->name), esc(r, session->sub));
    if (session->slug) {
        ap_rprintf(r, "<dt>Slug (in Bitbucket URLs)</dt><dd id=\"slug\">%s</dd>\n", esc(r, session->slug));
    }
    ap_rprintf(r, "</dl>\n<p id=\"session-end\">Your session here ends at <b>%s</b> at the latest",
               utc_time(r, session->auth_time + conf->max_age));
    if (conf->idle_timeout > 0) {
        ap_rprintf(r, ", or after %" APR_INT64_T_FMT " minutes without a request (with none from now on: at %s)",
                   conf->idle_timeout / 60, utc_time(r, session->exp));
    }
    ap_rputs(".</p>\n", r);
}

static void print_logout(request_rec *r, const char *token)
{
    ap_rprintf(r, "<form method=\"post\" action=\"%s\" id=\"logout\">\n"
               "<input type=\"hidden\" name=\"action\" value=\"logout\">\n"
               "<input type=\"hidden\" name=\"form\" value=\"%s\">\n"
               "<button type=\"submit\">Log out</button></form>\n", esc(r, r->uri), esc(r, token));
}

/* Bitbucket's token page for this user: by slug (in the cookie since the login that set it); else the account
 * page, where "HTTP access tokens" is one click away. */
static const char *token_page(request_rec *r, const bbauth_server_conf *conf, const bb_session_t *session)
{
    return session->slug ? bb_clientsetup_token_page(r->pool, conf->bitbucket_url, session->slug)
                         : apr_pstrcat(r->pool, conf->bitbucket_url, "/account", NULL);
}

static void print_token_steps(request_rec *r, const bbauth_server_conf *conf, const bb_session_t *session)
{
    ap_rprintf(r, "<h2>Set up your package clients</h2>\n<ol>\n"
               "<li><a id=\"token-page\" href=\"%s\">Create a Bitbucket HTTP access token</a> "
               "(Bitbucket &rarr; Manage account &rarr; HTTP access tokens &rarr; Create token). Give it:\n<ul>\n"
               "<li><b>Project permissions: Project read</b> and <b>Repository permissions: Repository read</b>. "
               "Read is all a package client needs; a read-only token that leaks cannot push code or change "
               "anything.</li>\n<li>An expiry date, and a name that says where it is used (e.g. "
               "&ldquo;laptop composer&rdquo;).</li>\n</ul>\nBitbucket shows the token once: copy it.</li>\n"
               "<li>Paste the lines below where each says, with your token in place of "
               "<code>&lt;token&gt;</code>. This page never shows a token.</li>\n</ol>\n",
               esc(r, token_page(r, conf, session)));
}

static void print_snippets(request_rec *r, const bbauth_server_conf *conf, const bb_session_t *session)
{
    int i;

    if (!conf->client_setups) {
        ap_rputs("<p id=\"no-clients\">The administrator has not listed this mirror's package clients "
                 "(<code>BBAuthClientSetup</code>).</p>\n", r);
        return;
    }
    for (i = 0; i < conf->client_setups->nelts; i++) {
        const bbauth_client_setup *entry = &APR_ARRAY_IDX(conf->client_setups, i, bbauth_client_setup);
        const bb_clientsetup_t *setup = bb_clientsetup_make(r->pool, entry->client, entry->url, session->sub);

        if (!setup) {
            continue;
        }
        ap_rprintf(r, "<section class=\"client\" id=\"client-%d\" data-client=\"%s\">\n<h3>%s: <code>%s</code></h3>\n"
                   "<p>In <span class=\"where\">%s</span>:</p>\n<pre class=\"snippet\">%s</pre>\n</section>\n",
                   i, esc(r, setup->client), esc(r, setup->client), esc(r, entry->url), esc(r, setup->where),
                   esc(r, setup->text));
    }
}

static void print_check_form(request_rec *r, const char *token)
{
    ap_rprintf(r, "<h2>Check a token</h2>\n<p>Whether Bitbucket accepts a token, whose it is, and whether it may "
               "use this mirror's locations. The token is not stored.</p>\n"
               "<form method=\"post\" action=\"%s\" id=\"check-token\">\n"
               "<input type=\"hidden\" name=\"action\" value=\"check-token\">\n"
               "<input type=\"hidden\" name=\"form\" value=\"%s\">\n"
               "<label>Token <input type=\"password\" name=\"token\" autocomplete=\"off\" required></label>\n"
               "<button type=\"submit\">Check</button></form>\n"
               "<p>Or from a shell:</p>\n<pre class=\"snippet\" id=\"check-curl\">"
               "curl -sS -H 'Authorization: Bearer &lt;token&gt;' '%s'</pre>\n",
               esc(r, r->uri), esc(r, token),
               esc(r, apr_pstrcat(r->pool, ap_construct_url(r->pool, r->uri, r), "?" CHECK_QUERY, NULL)));
}

/* ---- the token check ---- */

typedef struct {
    int status;                      /* as bbauth_token_authenticate: OK, 401, 503 (or a limit's 429) */
    const bb_user_t *owner;
    apr_array_header_t *locations;   /* of const char *: "path: status" for each BBAuthClientSetup location */
} token_check_t;

/* The status the location at url's path answers a request with this token only (no cookie). */
static int location_status(request_rec *r, const char *url)
{
    apr_uri_t uri;
    request_rec *sub;
    int status;

    if (apr_uri_parse(r->pool, url, &uri) != APR_SUCCESS || !uri.path) {
        return HTTP_NOT_FOUND;
    }
    sub = ap_sub_req_method_uri("GET", uri.path, r, NULL);
    status = sub->status;
    ap_destroy_sub_req(sub);
    return status;
}

static const char *location_verdict(request_rec *r, int status)
{
    if (status == HTTP_OK) {
        return "allowed";
    }
    if (status == HTTP_FORBIDDEN || status == HTTP_UNAUTHORIZED) {
        return "refused (no permission, or the location takes no tokens)";
    }
    if (ap_is_HTTP_REDIRECT(status)) {
        return "takes no tokens (a browser login only)";
    }
    return apr_psprintf(r->pool, "answers %d", status);
}

/* Asks with the token as a command-line client would (the token cache, its limits and Bitbucket, as for any
 * token), then each location of BBAuthClientSetup with it alone. r's Authorization and Cookie headers are the
 * token's while it runs, and put back after. */
static token_check_t *check_token(request_rec *r, const bbauth_server_conf *conf, const char *token)
{
    token_check_t *check = apr_pcalloc(r->pool, sizeof(*check));
    const char *authorization = apr_table_get(r->headers_in, "Authorization");
    const char *cookie = apr_table_get(r->headers_in, "Cookie");
    int i;

    apr_table_setn(r->headers_in, "Authorization", apr_pstrcat(r->pool, "Bearer ", token, NULL));
    apr_table_unset(r->headers_in, "Cookie");
    check->status = bbauth_token_authenticate(r, conf, &check->owner, &token);
    check->locations = apr_array_make(r->pool, 4, sizeof(const char *));
    for (i = 0; check->status == OK && conf->client_setups && i < conf->client_setups->nelts; i++) {
        const char *url = APR_ARRAY_IDX(conf->client_setups, i, bbauth_client_setup).url;
        int status = location_status(r, url);
        APR_ARRAY_PUSH(check->locations, const char *) = apr_psprintf(r->pool, "%s: %s", url,
                                                                      location_verdict(r, status));
    }
    if (authorization) {
        apr_table_setn(r->headers_in, "Authorization", authorization);
    }
    else {
        apr_table_unset(r->headers_in, "Authorization");
    }
    if (cookie) {
        apr_table_setn(r->headers_in, "Cookie", cookie);
    }
    return check;
}

/* The verdict in words (never the token). */
static const char *check_verdict(request_rec *r, const token_check_t *check)
{
    if (check->status == HTTP_SERVICE_UNAVAILABLE) {
        return "Bitbucket cannot be asked right now: try again in a minute.";
    }
    if (check->status == HTTP_TOO_MANY_REQUESTS) {
        return "Too many token checks right now: try again in a minute.";
    }
    if (check->status != OK) {
        return "Bitbucket does not accept this token: it is unknown, expired or revoked (or not a Bitbucket "
               "HTTP access token).";
    }
    return apr_psprintf(r->pool, "Bitbucket accepts this token. It belongs to %s (%s).",
                        bb_strip_controls(r->pool, check->owner->display_name),
                        bb_strip_controls(r->pool, check->owner->name));
}

static void print_check_result(request_rec *r, const token_check_t *check)
{
    int i;

    ap_rprintf(r, "<div id=\"check-result\" class=\"%s\"><p>%s</p>\n", check->status == OK ? "ok" : "failed",
               esc(r, check_verdict(r, check)));
    if (check->locations->nelts) {
        ap_rputs("<ul>\n", r);
        for (i = 0; i < check->locations->nelts; i++) {
            ap_rprintf(r, "<li>%s</li>\n", esc(r, APR_ARRAY_IDX(check->locations, i, const char *)));
        }
        ap_rputs("</ul>\n", r);
    }
    ap_rputs("</div>\n", r);
}

/* GET ?check-token with the token in Authorization (curl): the verdict as text. */
static int check_for_curl(request_rec *r, const bbauth_server_conf *conf)
{
    const char *token = bbauth_token_of(r);
    token_check_t *check;
    int i;

    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    ap_set_content_type(r, "text/plain; charset=utf-8");
    if (!token) {
        r->status = HTTP_BAD_REQUEST;
        ap_rputs("Send the token: curl -H 'Authorization: Bearer <token>' ...\n", r);
        return OK;
    }
    check = check_token(r, conf, token);
    ap_rprintf(r, "%s\n", check_verdict(r, check));
    for (i = 0; i < check->locations->nelts; i++) {
        ap_rprintf(r, "%s\n", APR_ARRAY_IDX(check->locations, i, const char *));
    }
    return OK;
}

/* ---- the page and its forms ---- */

static int show_page(request_rec *r, const bbauth_server_conf *conf, const bb_session_t *session,
                     const token_check_t *check)
{
    const char *token = bbauth_account_form_token(r, conf, session->sid);

    if (!token) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    page_headers(r);
    ap_set_content_type(r, "text/html; charset=utf-8");
    if (r->header_only) {
        return OK;
    }
    ap_rprintf(r, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
               "<meta name=\"viewport\" content=\"width=device-width\"><title>Your account</title>"
               "<script src=\"%s?" SCRIPT_QUERY "\" defer></script></head>\n<body>\n<h1>Your account</h1>\n",
               esc(r, r->uri));
    print_identity(r, conf, session);
    print_logout(r, token);
    print_token_steps(r, conf, session);
    print_snippets(r, conf, session);
    print_check_form(r, token);
    if (check) {
        print_check_result(r, check);
    }
    ap_rputs("</body></html>\n", r);
    return OK;
}

/* Log out: the session ends on every host, its grant is revoked, the cookie deleted; then off to "/". */
static int logout(request_rec *r, const bbauth_server_conf *conf, const bb_session_t *session)
{
    bbauth_count(BB_M_LOGOUT);
    bbauth_grant_revoke(r, conf, session->sid);
    bbauth_session_end(r, conf, session);
    bbauth_set_cookie(r, bbauth_session_cookie(r, conf, "", 0));
    return bbauth_redirect(r, "/");
}

static int forbidden_post(request_rec *r, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "mod_bbauth: account page: post refused: %s", why);
    return bbauth_page(r, HTTP_FORBIDDEN, "Refused", "This form only works from this site's own account page: "
                       "open it again and retry.", r->uri);
}

/* The denial page's "check again": Bitbucket is asked anew on the way back to the page that was refused. */
static int recheck(request_rec *r, const bbauth_server_conf *conf, const bb_session_t *session, apr_table_t *form)
{
    const char *question = bb_url_query_single(form, "question");
    const char *wanted = bb_url_query_single(form, "return");
    const char *back = wanted ? bb_url_safe_return(wanted) : NULL;
    apr_status_t rv = question ? bbauth_authz_recheck(r, conf, session->sub, question) : APR_EINVAL;

    if (rv == APR_EBUSY) {
        return bbauth_page(r, HTTP_TOO_MANY_REQUESTS, "Checked a moment ago", "Bitbucket was asked again less than "
                           "a minute ago: wait a minute before the next try.", back);
    }
    if (rv == APR_EINVAL) {
        return bbauth_page(r, HTTP_BAD_REQUEST, "Bad request", "There is no such question to check again.", NULL);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "mod_bbauth: check again of %s for %s: the shared cache "
                      "(BBAuthCache) cannot drop the remembered answer", question, session->sub);
        return bbauth_page(r, HTTP_SERVICE_UNAVAILABLE, "Try again later", "The check cannot be repeated right now.",
                           back);
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "mod_bbauth: %s asked Bitbucket again: %s",
                  bb_strip_controls(r->pool, session->sub), bb_strip_controls(r->pool, question));
    return bbauth_redirect(r, back ? back : "/");
}

static int handle_post(request_rec *r, const bbauth_server_conf *conf, const bb_session_t *session)
{
    apr_table_t *form;
    const char *action, *sent, *token;

    if (bbauth_request_origin(r, conf) != BB_ORIGIN_SAME) {
        return forbidden_post(r, "not from this site (Origin / Sec-Fetch-Site)");
    }
    form = read_form(r);
    if (!form) {
        return bbauth_page(r, HTTP_BAD_REQUEST, "Bad request", "The form could not be read.", r->uri);
    }
    sent = bb_url_query_single(form, "form");
    token = bbauth_account_form_token(r, conf, session->sid);
    if (!sent || !token || !bb_secure_streq(sent, token)) {
        return forbidden_post(r, "the form token does not match this session");
    }
    action = bb_url_query_single(form, "action");
    if (action && !strcmp(action, "logout")) {
        return logout(r, conf, session);
    }
    if (action && !strcmp(action, "recheck")) {
        return recheck(r, conf, session, form);
    }
    if (action && !strcmp(action, "check-token") && bb_url_query_single(form, "token")) {
        return show_page(r, conf, session, check_token(r, conf, bb_url_query_single(form, "token")));
    }
    return bbauth_page(r, HTTP_BAD_REQUEST, "Bad request", "Unknown action.", r->uri);
}

static int serve_script(request_rec *r)
{
    apr_table_setn(r->err_headers_out, "Cache-Control", "public, max-age=3600");
    apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
    ap_set_content_type(r, "text/javascript; charset=utf-8");
    if (!r->header_only) {
        ap_rputs(copy_script, r);
    }
    return OK;
}

static int account_handler(request_rec *r)
{
    const bbauth_server_conf *conf;
    bb_session_t *session;
    int rc;

    if (!bbauth_page_handler_begin(r, ACCOUNT_HANDLER, &conf, &rc)) {
        return rc;
    }
    if (r->method_number == M_GET && r->args && !strcmp(r->args, SCRIPT_QUERY)) {
        return serve_script(r);
    }
    if (r->method_number == M_GET && r->args && !strcmp(r->args, CHECK_QUERY)) {
        return check_for_curl(r, conf);
    }
    rc = bbauth_request_session(r, conf, ap_is_initial_req(r), &session);
    if (rc != OK && rc != DECLINED) {
        return rc;
    }
    if (!session) {
        if (r->method_number == M_GET) {
            const char *back = bb_url_safe_return(r->uri);
            return bbauth_start_login(r, conf, back ? back : "/");
        }
        return bbauth_page(r, HTTP_UNAUTHORIZED, "Not logged in", "Your session has ended: log in again.", r->uri);
    }
    return r->method_number == M_POST ? handle_post(r, conf, session) : show_page(r, conf, session, NULL);
}

void bbauth_register_account_hooks(void)
{
    ap_hook_handler(account_handler, NULL, NULL, APR_HOOK_MIDDLE);
}
