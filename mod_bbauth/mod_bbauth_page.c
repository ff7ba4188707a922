/* mod_bbauth_page.c: what the module answers itself: short escaped pages, redirects and Set-Cookie headers. */
#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>

#include "mod_bbauth.h"
#include "bb_cookie.h"

apr_int64_t bbauth_now(void)
{
    return (apr_int64_t)apr_time_sec(apr_time_now());
}

/* Nothing the module answers may be cached: it is either personal or a one-time step of a login. */
static void no_store(request_rec *r)
{
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->err_headers_out, "Pragma", "no-cache");
}

/* "<p><a href=path>text</a></p>", or "" without a path. */
static const char *link_to(request_rec *r, const char *path, const char *text)
{
    return path ? apr_pstrcat(r->pool, "<p><a href=\"", ap_escape_html2(r->pool, path, 1), "\">", text,
                              "</a></p>\n", NULL) : "";
}

/* The page with `tail` (HTML, already escaped) after the message, under the given Content-Security-Policy. */
static int page_with(request_rec *r, int status, const char *title, const char *message, const char *tail,
                     const char *csp)
{
    const char *escaped_title = ap_escape_html2(r->pool, title, 1);

    no_store(r);
    r->status = status;
    ap_set_content_type(r, "text/html; charset=utf-8");
    apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->err_headers_out, "Content-Security-Policy", csp);
    if (!r->header_only) {
        ap_rprintf(r, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%d %s</title></head>\n"
                   "<body><h1>%s</h1>\n<p>%s</p>\n%s</body></html>\n",
                   status, escaped_title, escaped_title, ap_escape_html2(r->pool, message, 1), tail);
    }
    return OK;
}

int bbauth_page(request_rec *r, int status, const char *title, const char *message, const char *again)
{
    const bbauth_server_conf *conf = ap_get_module_config(r->server->module_config, &bbauth_module);
    const char *links = apr_pstrcat(r->pool, link_to(r, again, "Try again"),
                                    link_to(r, conf->account_path, "Your account"), NULL);

    return page_with(r, status, title, message, links, "default-src 'none'");
}

int bbauth_form_page(request_rec *r, const char *title, const char *message, const char *action,
                     const char *button)
{
    const char *form = apr_pstrcat(r->pool, "<form method=\"post\" action=\"", ap_escape_html2(r->pool, action, 1),
                                   "\"><button type=\"submit\">", ap_escape_html2(r->pool, button, 1),
                                   "</button></form>\n", NULL);

    /* No other site may frame the page (to make the button clicked) nor receive the form. */
    return page_with(r, HTTP_OK, title, message, form,
                     "default-src 'none'; form-action 'self'; frame-ancestors 'none'");
}

int bbauth_page_handler_begin(request_rec *r, const char *handler, const bbauth_server_conf **conf, int *rc)
{
    if (!r->handler || strcmp(r->handler, handler)) {
        *rc = DECLINED;
        return 0;
    }
    if (r->method_number != M_GET && r->method_number != M_POST) {
        apr_table_setn(r->err_headers_out, "Allow", "GET, HEAD, POST");
        *rc = bbauth_page(r, HTTP_METHOD_NOT_ALLOWED, "Method not allowed", "Only GET and POST are answered here.",
                          NULL);
        return 0;
    }
    *conf = ap_get_module_config(r->server->module_config, &bbauth_module);
    if ((*conf)->missing) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_bbauth: SetHandler %s but this server lacks %s", handler,
                      (*conf)->missing);
        *rc = HTTP_INTERNAL_SERVER_ERROR;
        return 0;
    }
    return 1;
}

bb_origin_t bbauth_request_origin(request_rec *r, const bbauth_server_conf *conf)
{
    const char *site_origins[2];

    site_origins[0] = conf->redirect_origin;
    site_origins[1] = ap_construct_url(r->pool, "", r);   /* "scheme://host[:port]" as this server names itself */
    return bb_origin_of(apr_table_get(r->headers_in, "Sec-Fetch-Site"), apr_table_get(r->headers_in, "Origin"),
                        site_origins, 2);
}

int bbauth_from_this_site(request_rec *r, const bbauth_server_conf *conf)
{
    return bbauth_request_origin(r, conf) != BB_ORIGIN_CROSS;
}

int bbauth_redirect(request_rec *r, const char *location)
{
    no_store(r);
    /* headers_out: httpd's redirect response takes Location from there (and keeps err_headers_out too). */
    apr_table_setn(r->headers_out, "Location", location);
    return HTTP_MOVED_TEMPORARILY;
}

void bbauth_set_cookie(request_rec *r, const char *set_cookie)
{
    if (set_cookie) {
        apr_table_addn(r->err_headers_out, "Set-Cookie", set_cookie);
        bbauth_no_store(r);
    }
}

const char *bbauth_session_cookie(request_rec *r, const bbauth_server_conf *conf, const char *value, long max_age)
{
    bb_cookie_attrs_t attrs;

    attrs.path = conf->cookie_path;
    attrs.domain = conf->cookie_domain;
    attrs.same_site = conf->cookie_samesite;
    attrs.max_age = max_age;
    attrs.secure = conf->cookie_secure;
    attrs.http_only = 1;
    return bb_cookie_make(r->pool, conf->cookie_name, value, &attrs);
}

#define COOKIES_CLEARED_NOTE "bbauth-cookies-cleared"

void bbauth_clear_other_cookies(request_rec *r, const bbauth_server_conf *conf, int conflict)
{
    apr_array_header_t *scopes = bb_cookie_scopes(r->pool, conf->cookie_name, r->hostname, r->parsed_uri.path);
    int i;

    if (conflict) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "mod_bbauth: the request carries cookies %s of different "
                      "sessions, likely one set by another host under a parent domain (cookie tossing): none is "
                      "used, and those this host can reach are deleted; use a __Host- BBAuthCookieName over HTTPS",
                      conf->cookie_name);
    }
    for (i = 0; i < scopes->nelts; i++) {
        bb_cookie_attrs_t *scope = &APR_ARRAY_IDX(scopes, i, bb_cookie_attrs_t);
        int own = !strcmp(scope->path, conf->cookie_path)
            && (scope->domain && conf->cookie_domain ? !strcasecmp(scope->domain, conf->cookie_domain)
                                                     : scope->domain == conf->cookie_domain);

        if (own && !conflict) {
            continue;
        }
        scope->same_site = conf->cookie_samesite;
        scope->max_age = 0;
        scope->secure = conf->cookie_secure;
        scope->http_only = 1;
        bbauth_set_cookie(r, bb_cookie_make(r->pool, conf->cookie_name, "", scope));
    }
    apr_table_setn(r->notes, COOKIES_CLEARED_NOTE, "1");
}

int bbauth_other_cookies_cleared(request_rec *r)
{
    return apr_table_get(r->notes, COOKIES_CLEARED_NOTE) != NULL;
}

int bbauth_has_error_document(request_rec *r, int status)
{
    const core_dir_config *core = ap_get_core_module_config(r->per_dir_config);
    int index = ap_index_of_response(status);

    /* ErrorDocument keeps its (expression) values here, keyed by the status's index, since httpd 2.4.13. */
    return core->response_code_exprs && apr_hash_get(core->response_code_exprs, &index, sizeof(index)) != NULL;
}
