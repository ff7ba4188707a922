/* mod_bbauth_denial.c: denials that explain: the answer to a user refused by a Require bitbucket-* line says which requirement failed, in words (a page for browsers, text for clients). */
#include <apr_strings.h>
#include <apr_buckets.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

#include "mod_bbauth.h"
#include "bb_requirement.h"
#include "bb_url.h"

#define DENIAL_FILTER "BBAUTH_DENIAL"

/* The explanation made when the error response starts, and its type. */
typedef struct {
    const char *body;
    const char *content_type;
} denial_t;

/* For a command-line client (an access token): one sentence and the link. */
static const char *denial_text(request_rec *r, const bbauth_server_conf *conf, const bb_requirement_t *req)
{
    const char *link = bb_requirement_link(r->pool, conf->bitbucket_url, req);

    return apr_psprintf(r->pool, "Access denied: %s is authenticated, but needs %s.%s%s\n",
                        bb_strip_controls(r->pool, r->user), bb_requirement_missing(r->pool, req),
                        link ? " Ask for it at " : "", link ? link : "");
}

/* "Check again": a form to the account page with its form token (and a link there); none without an account
 * page. */
static const char *recheck_form(request_rec *r, const bbauth_server_conf *conf, const char *question)
{
    const char *sid = bbauth_request_credential(r)->sid;
    const char *token = sid ? bbauth_account_form_token(r, conf, sid) : NULL;
    const char *back = bb_url_safe_return(r->unparsed_uri);
    const char *account;

    if (!conf->account_path || !token) {
        return "";
    }
    account = ap_escape_html2(r->pool, conf->account_path, 1);
    return apr_psprintf(r->pool, "<form method=\"post\" action=\"%s\" id=\"recheck\">\n"
                        "<input type=\"hidden\" name=\"action\" value=\"recheck\">\n"
                        "<input type=\"hidden\" name=\"form\" value=\"%s\">\n"
                        "<input type=\"hidden\" name=\"question\" value=\"%s\">\n"
                        "<input type=\"hidden\" name=\"return\" value=\"%s\">\n"
                        "<button type=\"submit\">Check again</button> (once you have been given access; at most "
                        "once a minute)</form>\n<p><a id=\"account\" href=\"%s\">Your account</a></p>\n",
                        account, token, ap_escape_html2(r->pool, question, 1),
                        ap_escape_html2(r->pool, back ? back : "/", 1), account);
}

/* For a browser session: a short page with the same sentence, the link and "check again". */
static const char *denial_page(request_rec *r, const bbauth_server_conf *conf, const bb_requirement_t *req,
                               const char *question)
{
    const char *link = bb_requirement_link(r->pool, conf->bitbucket_url, req);
    const char *ask_at = "";

    if (link) {
        link = ap_escape_html2(r->pool, link, 1);
        ask_at = apr_pstrcat(r->pool, "<p>Ask the project's administrators for it: <a id=\"bitbucket-link\" href=\"",
                             link, "\">", link, "</a></p>\n", NULL);
    }
    return apr_psprintf(r->pool, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%d Access "
                        "denied</title></head>\n<body>\n<h1>Access denied</h1>\n<p id=\"reason\">You are logged in as "
                        "<b>%s</b>, but you need %s.</p>\n%s%s</body></html>\n",
                        r->status, ap_escape_html2(r->pool, r->user, 1),
                        ap_escape_html2(r->pool, bb_requirement_missing(r->pool, req), 1), ask_at,
                        recheck_form(r, conf, question));
}

/* Replaces httpd's error body with the explanation, and its type (httpd sets text/html after the error filters
 * are inserted, before the first byte reaches this filter). */
static apr_status_t denial_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    const denial_t *denial = f->ctx;
    apr_bucket *b;
    int eos = 0;

    for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
        eos |= APR_BUCKET_IS_EOS(b);
    }
    apr_brigade_cleanup(bb);
    if (!eos) {
        return APR_SUCCESS;
    }
    ap_remove_output_filter(f);
    ap_set_content_type(f->r, denial->content_type);
    if (!f->r->header_only) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_pool_create(denial->body, strlen(denial->body), f->r->pool,
                                                           f->c->bucket_alloc));
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(f->c->bucket_alloc));
    return ap_pass_brigade(f->next, bb);
}

/* A Require bitbucket-* line refused an authenticated user: the answer says which, in words. An access token that
 * Bitbucket accepts but that lacks the permission gets 403 (never a 401 that makes pip, composer or npm ask for
 * other credentials). The admin's ErrorDocument wins; an anonymous request never gets here (no user). */
static void explain_denial(request_rec *r)
{
    const char *question = apr_table_get(r->notes, BBAUTH_DENIED_NOTE);
    const bbauth_server_conf *conf = ap_get_module_config(r->server->module_config, &bbauth_module);
    const bbauth_credential *cred = bbauth_request_credential(r);
    const bb_requirement_t *req = question ? bb_requirement_parse(r->pool, question) : NULL;
    denial_t *denial;

    /* The admin's ErrorDocument for the status httpd chose wins: then nothing changes. */
    if (!req || !r->user || (r->status != HTTP_UNAUTHORIZED && r->status != HTTP_FORBIDDEN)
        || bbauth_has_error_document(r, r->status)) {
        return;
    }
    if (cred->token && r->status == HTTP_UNAUTHORIZED) {
        r->status = HTTP_FORBIDDEN;
        r->status_line = NULL;
        apr_table_unset(r->err_headers_out, "WWW-Authenticate");
    }
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
    denial = apr_pcalloc(r->pool, sizeof(*denial));
    if (cred->token) {
        denial->body = denial_text(r, conf, req);
        denial->content_type = "text/plain; charset=utf-8";
    }
    else {
        denial->body = denial_page(r, conf, req, question);
        denial->content_type = "text/html; charset=utf-8";
        apr_table_setn(r->err_headers_out, "Content-Security-Policy",
                       "default-src 'none'; form-action 'self'; frame-ancestors 'none'");
    }
    ap_add_output_filter(DENIAL_FILTER, denial, r, r->connection);
}

void bbauth_register_denial_hooks(void)
{
    ap_hook_insert_error_filter(explain_denial, NULL, NULL, APR_HOOK_MIDDLE);
    ap_register_output_filter(DENIAL_FILTER, denial_filter, NULL, AP_FTYPE_RESOURCE);
}
