/* mod_bbauth_admin.c: SetHandler bbauth-admin: an admin cuts a Bitbucket user off on every host sharing BBAuthCache (POST, same-origin only); and the cut-off check the request paths call. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_script.h>

#include "mod_bbauth.h"

#define ADMIN_HANDLER  "bbauth-admin"
/* Longest form accepted, and longest user name (Bitbucket's own limit is 255). */
#define ADMIN_MAX_FORM 4096
#define MAX_USER_NAME  255

static const bbauth_server_conf *server_conf(request_rec *r)
{
    return ap_get_module_config(r->server->module_config, &bbauth_module);
}

void bbauth_cutoff_attach(apr_pool_t *pconf, server_rec *s)
{
    for (; s; s = s->next) {
        bbauth_server_conf *conf = ap_get_module_config(s->module_config, &bbauth_module);

        conf->cutoff.cache = bbauth_cache();
        conf->cutoff.space = conf->session_state.space;
        conf->cutoff.key = conf->session_state.key;
        conf->cutoff.recheck = conf->session_recheck;
        conf->cutoff.memo = conf->session_state.key ? bb_memo_create(pconf, BBAUTH_SESSION_STATE_SLOTS) : NULL;
        conf->cutoff.gate = apr_pcalloc(pconf, sizeof(*conf->cutoff.gate));
    }
}

int bbauth_cut_off(request_rec *r, const bbauth_server_conf *conf, const char *user, apr_int64_t issued_at)
{
    if (!bb_cutoff_voids(r->pool, &conf->cutoff, user, issued_at, bbauth_now())) {
        return 0;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "mod_bbauth: %s was cut off by an admin (bbauth-admin): what was "
                  "issued to them before is refused", bb_strip_controls(r->pool, user));
    bbauth_audit(r, "user.refused", "refused", "cut off by an admin: issued before the cut-off", user);
    return 1;
}

/* How long a cut-off must be kept: as long as anything issued before it can live (a session, a token verdict with
 * its stale grace, a Require decision), and then a memo's recheck. */
static apr_int64_t longest_life(const bbauth_server_conf *conf)
{
    apr_int64_t longest = conf->max_age;

    if (conf->token_cache_ttl + conf->stale_if_error > longest) {
        longest = conf->token_cache_ttl + conf->stale_if_error;
    }
    if (conf->authz_cache_ttl > longest) {
        longest = conf->authz_cache_ttl;
    }
    return longest + conf->session_recheck;
}

static int plain_answer(request_rec *r, int status, const char *text)
{
    r->status = status;
    ap_set_content_type(r, "text/plain; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_rputs(text, r);
    return OK;
}

/* The "user" field of the form, or NULL (with *why) when there is none or it cannot be a user name. */
static const char *user_field(request_rec *r, const char **why)
{
    apr_array_header_t *pairs = NULL;
    const char *user = NULL;
    const unsigned char *c;

    *why = "send user=<Bitbucket user name> as a form (application/x-www-form-urlencoded)";
    if (ap_parse_form_data(r, NULL, &pairs, -1, ADMIN_MAX_FORM) != OK || pairs == NULL) {
        return NULL;
    }
    while (pairs->nelts) {
        ap_form_pair_t *pair = (ap_form_pair_t *)apr_array_pop(pairs);
        apr_off_t len;
        apr_size_t size;
        char *value;

        if (strcmp(pair->name, "user")) {
            continue;
        }
        apr_brigade_length(pair->value, 1, &len);
        if (len <= 0 || len > MAX_USER_NAME) {
            *why = "the user name is empty or longer than 255 bytes";
            return NULL;
        }
        size = (apr_size_t)len;
        value = apr_palloc(r->pool, size + 1);
        apr_brigade_flatten(pair->value, value, &size);
        value[size] = '\0';
        user = value;
    }
    for (c = (const unsigned char *)user; c && *c; c++) {
        if (*c < 0x20 || *c == 0x7f) {
            *why = "the user name has control characters";
            return NULL;
        }
    }
    return user;
}

/* GET: a form for a browser; it lists nothing about anyone's sessions. */
static int admin_form(request_rec *r)
{
    ap_set_content_type(r, "text/html; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_rputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Cut a user off</title></head>\n<body>"
             "<h1>Cut a user off</h1>\n<p>Ends every session, cached token verdict and Require decision of this "
             "Bitbucket user issued before now, on every host sharing the cache. They can log in again if "
             "Bitbucket lets them.</p>\n<form method=\"post\"><label>Bitbucket user <input name=\"user\" "
             "required maxlength=\"255\"></label> <button>Cut off</button></form>\n</body></html>\n", r);
    return OK;
}

static int cut_user_off(request_rec *r, const bbauth_server_conf *conf)
{
    const char *why, *user = user_field(r, &why), *shown;
    apr_int64_t not_before = 0;
    apr_status_t rv;
    char date[APR_RFC822_DATE_LEN];

    if (user == NULL) {
        return plain_answer(r, HTTP_BAD_REQUEST, apr_pstrcat(r->pool, "Not done: ", why, ".\n", NULL));
    }
    shown = bb_strip_controls(r->pool, user);
    rv = bb_cutoff_set(r->pool, &conf->cutoff, user, bbauth_now(), bbauth_now() + longest_life(conf), &not_before);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "mod_bbauth: cannot cut %s off: the shared cache (BBAuthCache) "
                      "did not store the record; check that it runs and is reachable", shown);
        return plain_answer(r, HTTP_SERVICE_UNAVAILABLE, "Not done: the shared cache did not answer; try again.\n");
    }
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, "mod_bbauth: %s cut %s off (bbauth-admin)",
                  r->user ? r->user : "an anonymous admin", shown);
    bbauth_audit(r, "user.cutoff", "done", apr_pstrcat(r->pool, "by ", r->user ? r->user : "(anonymous)", NULL),
                 user);
    apr_rfc822_date(date, apr_time_from_sec(not_before));
    return plain_answer(r, HTTP_OK, apr_psprintf(r->pool, "%s is cut off: what was issued to them before %s is "
                                                 "refused on every host within %" APR_INT64_T_FMT " s.\n",
                                                 shown, date, conf->session_recheck));
}

/* SetHandler bbauth-admin. Protect it (Require bitbucket-group ..., Require ip ...): whoever reaches it can cut
 * anyone off. */
static int admin_handler(request_rec *r)
{
    const bbauth_server_conf *conf;

    if (!r->handler || strcmp(r->handler, ADMIN_HANDLER)) {
        return DECLINED;
    }
    conf = server_conf(r);
    if (conf->missing || conf->cutoff.cache == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_bbauth: SetHandler bbauth-admin for %s but this server "
                      "lacks %s", r->uri, conf->missing ? conf->missing : "a shared cache (BBAuthCache)");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (r->method_number == M_GET) {
        return admin_form(r);
    }
    if (r->method_number != M_POST) {
        ap_allow_methods(r, REPLACE_ALLOW, "GET", "POST", NULL);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    /* A cross-site page must not make an admin's browser cut someone off; a script (curl) sends -H 'Origin: ...'. */
    if (bbauth_request_origin(r, conf) != BB_ORIGIN_SAME) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "mod_bbauth: bbauth-admin refused a POST whose Origin is not "
                      "this site's (a cross-site form, or a script without -H 'Origin: ...')");
        return plain_answer(r, HTTP_FORBIDDEN, "Not done: the request's Origin header must be this site's.\n");
    }
    return cut_user_off(r, conf);
}

void bbauth_register_admin_hooks(void)
{
    ap_hook_handler(admin_handler, NULL, NULL, APR_HOOK_MIDDLE);
}
