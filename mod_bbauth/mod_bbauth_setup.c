/* mod_bbauth_setup.c: SetHandler bbauth-setup: the admin's page with what Bitbucket's forms ask for this integration, and a live check on request; 403 unless a Require line that authenticates protects it. */
#include <apr_strings.h>
#include <apr_uri.h>
#include <http_protocol.h>
#include <http_request.h>

#include "mod_bbauth.h"
#include "bb_probe.h"

#define SETUP_HANDLER "bbauth-setup"

/* The first Bitbucket with OAuth 2 application links (and the "Atlassian product" link type for OAuth 1). */
#define OAUTH2_MAJOR 7
#define OAUTH2_MINOR 21

/* The permission box of an incoming OAuth 2 link that grants each scope. */
static const struct {
    const char *scope;
    const char *label;
} scope_labels[] = {
    { "PUBLIC_REPOS", "no box to tick: PUBLIC_REPOS (public repositories only) is what every link grants" },
    { "REPO_READ", "Repositories: Read" },
    { "REPO_WRITE", "Repositories: Write" },
    { "REPO_ADMIN", "Repositories: Admin" },
    { "PROJECT_ADMIN", "Projects: Admin" },
    { "ACCOUNT_WRITE", "Account: Write" },
    { "ADMIN_WRITE", "Admin: Write" },
    { "SYSTEM_ADMIN", "System admin" },
};

static const char *esc(request_rec *r, const char *s)
{
    return ap_escape_html2(r->pool, s ? s : "", 1);
}

static const char *scope_label(const char *scope)
{
    apr_size_t i;

    for (i = 0; i < sizeof(scope_labels) / sizeof(scope_labels[0]); i++) {
        if (!strcmp(scope_labels[i].scope, scope)) {
            return scope_labels[i].label;
        }
    }
    return scope;
}

/* "<li><b>label</b> (SCOPE)</li>" for each configured scope. */
static void print_permissions(request_rec *r, const char *scopes)
{
    char *copy = apr_pstrdup(r->pool, scopes), *last = NULL, *scope;

    for (scope = apr_strtok(copy, " ", &last); scope; scope = apr_strtok(NULL, " ", &last)) {
        ap_rprintf(r, "<li class=\"permission\"><b>%s</b> (%s)</li>\n", esc(r, scope_label(scope)), esc(r, scope));
    }
}

/* Bitbucket's OAuth 2 provider takes an http Redirect URL for the loopback host only. */
static int redirect_needs_https(request_rec *r, const bbauth_server_conf *conf)
{
    apr_uri_t uri;

    return apr_uri_parse(r->pool, conf->redirect_uri, &uri) == APR_SUCCESS && uri.scheme && uri.hostname
        && !strcasecmp(uri.scheme, "http") && strcasecmp(uri.hostname, "localhost")
        && strcmp(uri.hostname, "127.0.0.1") && strcmp(uri.hostname, "::1");
}

static void print_oauth2_steps(request_rec *r, const bbauth_server_conf *conf)
{
    if (redirect_needs_https(r, conf)) {
        ap_rputs("<p id=\"warning\"><b>Bitbucket refuses an http Redirect URL</b> other than for localhost: make "
                 "<code>BBAuthRedirectURI</code> an https URL.</p>\n", r);
    }
    ap_rprintf(r, "<h2>In Bitbucket: an OAuth 2 application link</h2>\n<ol>\n"
               "<li>Administration &rarr; Application links &rarr; <b>Create link</b>.</li>\n"
               "<li>Application type: <b>External application</b>; Direction: <b>Incoming</b>.</li>\n"
               "<li>Name: anything that tells your users what this is.</li>\n"
               "<li>Redirect URL: <code id=\"redirect-url\">%s</code></li>\n"
               "<li>Application permissions: tick\n<ul>\n", esc(r, conf->redirect_uri));
    print_permissions(r, conf->scope);
    ap_rprintf(r, "</ul></li>\n"
               "<li>Save. Bitbucket then shows a Client ID and a Client secret: the Client ID goes into "
               "<code>BBAuthClientID</code> (now <code id=\"client-id\">%s</code>), the Client secret into "
               "<code>BBAuthClientSecret</code> (this page never shows it).</li>\n</ol>\n", esc(r, conf->client_id));
}

static void print_oauth1_steps(request_rec *r, const bbauth_server_conf *conf, int has_oauth2)
{
    const char *pem = conf->oauth1_key ? bb_oauth1_public_key_pem(r->pool, conf->oauth1_key) : NULL;

    ap_rprintf(r, "<h2>In Bitbucket: an OAuth 1.0a application link</h2>\n<ol>\n"
               "<li>Administration &rarr; Application links. On Bitbucket 7.21 or later: <b>Create link</b>, "
               "Application type <b id=\"link-type\">Atlassian product</b> (not &ldquo;External "
               "application&rdquo;, which makes an OAuth 2 link). Before 7.21: enter the URL and "
               "<b>Create new link</b>.</li>\n"
               "<li>Application URL: <code id=\"application-url\">%s</code>; continue when Bitbucket says no "
               "response was received from it.</li>\n"
               "<li>Application Name: anything; Application Type: <b>Generic Application</b>; leave every other "
               "field empty; Continue.</li>\n"
               "<li>Edit the new link &rarr; <b>Incoming Authentication</b>:\n<ul>\n"
               "<li>Consumer Key: <code id=\"consumer-key\">%s</code> (the value of <code>BBAuthClientID</code>)"
               "</li>\n<li>Consumer Name: anything.</li>\n"
               "<li>Public Key: all of it, from the BEGIN line to the END line:\n<pre id=\"public-key\">%s</pre>"
               "</li>\n<li>Consumer Callback URL: <b>leave empty</b> (every login names <code>%s</code> "
               "itself).</li>\n<li>Allow 2-Legged OAuth: leave off.</li>\n</ul>\nSave.</li>\n</ol>\n",
               esc(r, conf->redirect_origin), esc(r, conf->client_id),
               pem ? esc(r, pem) : "(cannot derive it from BBAuthOAuth1PrivateKey)", esc(r, conf->redirect_uri));
    if (has_oauth2 == 1) {
        ap_rputs("<p id=\"advice\">This Bitbucket has OAuth 2 application links: prefer them "
                 "(<code>BBAuthOAuthVersion 2</code>); OAuth 1 is the fallback for Bitbucket before 7.21.</p>\n", r);
    }
}

/* The OAuth 1 keys checked for real: a signed request-token request (its token is never used and expires). */
static bb_probe_t *probe_oauth1_keys(request_rec *r, const bbauth_server_conf *conf)
{
    bb_probe_t *probe = apr_pcalloc(r->pool, sizeof(*probe));
    bb_oauth1_token_t *token = NULL;
    const char *errmsg = NULL;

    probe->what = "Consumer Key and Public Key (a signed request-token request)";
    probe->url = apr_pstrcat(r->pool, conf->bitbucket_url, BB_OAUTH1_REQUEST_TOKEN_PATH, NULL);
    probe->ok = bb_oauth1_request_token(r->pool, &conf->oauth1, &conf->http, &token, &errmsg) == BB_OK;
    probe->detail = probe->ok ? "accepted: the application link knows this Consumer Key and its Public Key "
                                "matches BBAuthOAuth1PrivateKey" : errmsg;
    return probe;
}

static void print_checks(request_rec *r, apr_array_header_t *probes)
{
    int i;

    ap_rputs("<h2>Live check</h2>\n<table id=\"checks\" border=\"1\">\n"
             "<tr><th>Check</th><th>URL</th><th>Result</th><th>Detail</th></tr>\n", r);
    for (i = 0; i < probes->nelts; i++) {
        const bb_probe_t *probe = APR_ARRAY_IDX(probes, i, const bb_probe_t *);
        ap_rprintf(r, "<tr class=\"%s\"><td>%s</td><td><code>%s</code></td><td>%s</td><td>%s</td></tr>\n",
                   probe->ok ? "ok" : "failed", esc(r, probe->what), esc(r, probe->url),
                   probe->ok ? "OK" : "FAILED", esc(r, probe->detail));
    }
    ap_rputs("</table>\n", r);
}

static void print_settings(request_rec *r, const bbauth_server_conf *conf)
{
    ap_rprintf(r, "<h2>This server</h2>\n<ul>\n"
               "<li>BBAuthBitbucketURL: <code>%s</code></li>\n"
               "<li>BBAuthOAuthVersion: <code id=\"oauth-version\">%d</code></li>\n"
               "<li>BBAuthRedirectURI: <code>%s</code></li>\n",
               esc(r, conf->bitbucket_url), conf->oauth_version, esc(r, conf->redirect_uri));
    if (conf->oauth_version == 1) {
        ap_rprintf(r, "<li>BBAuthOAuth1PrivateKey: <code>%s</code></li>\n", esc(r, conf->oauth1_key_file));
    }
    ap_rputs("</ul>\n", r);
}

/* Whether the version answered has OAuth 2 links: 1, 0, or -1 when unknown; with a warning when the
 * configuration needs what this Bitbucket lacks. */
static int print_version_advice(request_rec *r, const bbauth_server_conf *conf, const char *version)
{
    int has_oauth2 = bb_probe_version_at_least(version, OAUTH2_MAJOR, OAUTH2_MINOR);

    if (has_oauth2 == 0 && conf->oauth_version == 2) {
        ap_rprintf(r, "<p id=\"warning\"><b>Bitbucket %s has no OAuth 2 application links</b> (they came with "
                   "7.21): use <code>BBAuthOAuthVersion 1</code> and an OAuth 1 link.</p>\n", esc(r, version));
    }
    return has_oauth2;
}

/* The page shows the integration's settings and calls Bitbucket: only for an admin an access rule authenticated
 * (a Require other than "all granted"), never for anyone who finds the URL. */
static int admin_authenticated(request_rec *r)
{
    char *user = r->user;
    int required;

    /* Asked with the user set, the Require lines that want one pass; asked without it, they say they need one,
     * where "all granted" does not. */
    r->user = NULL;
    required = user && ap_some_authn_required(r);
    r->user = user;
    if (required) {
        return 1;
    }
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "mod_bbauth: the setup page (SetHandler bbauth-setup) at %s "
                  "answers 403: no Require line that authenticates protects it; add AuthType Bitbucket and "
                  "Require bitbucket-user <an administrator> to its <Location>", ap_escape_logitem(r->pool, r->uri));
    return 0;
}

/* Bitbucket is called only when an admin presses "Test the connection" (a POST from this site), so that the page
 * is no amplifier: three calls to Bitbucket for every GET. */
static apr_array_header_t *live_checks(request_rec *r, const bbauth_server_conf *conf, const char **version)
{
    apr_array_header_t *probes = apr_array_make(r->pool, 5, sizeof(bb_probe_t *));

    APR_ARRAY_PUSH(probes, bb_probe_t *) = bb_probe_base(r->pool, conf->bitbucket_url, &conf->http, version);
    apr_array_cat(probes, bb_probe_oauth_endpoints(r->pool, conf->bitbucket_url, &conf->http,
                                                   conf->oauth_version));
    if (conf->oauth_version == 1) {
        APR_ARRAY_PUSH(probes, bb_probe_t *) = probe_oauth1_keys(r, conf);
    }
    return probes;
}

static void print_test_button(request_rec *r)
{
    ap_rprintf(r, "<h2>Live check</h2>\n<form id=\"test\" method=\"post\" action=\"%s\"><button type=\"submit\">"
               "Test the connection to Bitbucket</button></form>\n", esc(r, ap_escape_uri(r->pool, r->uri)));
}

static int setup_handler(request_rec *r)
{
    const bbauth_server_conf *conf;
    apr_array_header_t *probes = NULL;
    const char *version = NULL;
    int has_oauth2 = -1, rc;

    if (!bbauth_page_handler_begin(r, SETUP_HANDLER, &conf, &rc)) {
        return rc;
    }
    if (ap_discard_request_body(r) != OK) {
        return HTTP_BAD_REQUEST;
    }
    if (!admin_authenticated(r)) {
        return bbauth_page(r, HTTP_FORBIDDEN, "Forbidden", "This page is for the administrators of this site, and "
                           "must be protected by a Require line that authenticates them.", NULL);
    }
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->err_headers_out, "Content-Security-Policy",
                   "default-src 'none'; form-action 'self'; frame-ancestors 'none'");
    apr_table_setn(r->err_headers_out, "Referrer-Policy", "no-referrer");
    ap_set_content_type(r, "text/html; charset=utf-8");
    if (r->header_only) {
        return OK;
    }
    if (r->method_number == M_POST && bbauth_from_this_site(r, conf)) {
        probes = live_checks(r, conf, &version);
    }
    ap_rputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mod_bbauth setup</title></head>\n<body>\n"
             "<h1>mod_bbauth setup</h1>\n<p>What Bitbucket's forms ask for this server's configuration, and whether "
             "Bitbucket answers. This page shows no secret; keep it for administrators (Require).</p>\n", r);
    print_settings(r, conf);
    if (probes) {
        has_oauth2 = print_version_advice(r, conf, version);
    }
    if (conf->oauth_version == 1) {
        print_oauth1_steps(r, conf, has_oauth2);
    }
    else {
        print_oauth2_steps(r, conf);
    }
    if (probes) {
        print_checks(r, probes);
    }
    else {
        print_test_button(r);
    }
    ap_rputs("</body></html>\n", r);
    return OK;
}

void bbauth_register_setup_hooks(void)
{
    ap_hook_handler(setup_handler, NULL, NULL, APR_HOOK_MIDDLE);
}
