/* mod_bbauth_login.c: the login: what both OAuth versions share, OAuth 2's start and callback (answered wherever BBAuthRedirectURI points), the login and logout handlers. */
#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>

#include "mod_bbauth.h"
#include "bb_bitbucket.h"
#include "bb_cookie.h"
#include "bb_pkce.h"
#include "bb_state.h"
#include "bb_url.h"

#define LOGIN_HANDLER   "bbauth-login"
#define LOGOUT_HANDLER  "bbauth-logout"
#define STATE_NS        "state"      /* cache namespace of the login states already completed */

static const bbauth_server_conf *server_conf(request_rec *r)
{
    return ap_get_module_config(r->server->module_config, &bbauth_module);
}

/* Set-Cookie for a login-state cookie; max_age 0 deletes it. Host-only with Path=/: a __Host- name requires it,
 * and a login starts anywhere on the site, where the pending ones must be seen to be bounded. Always SameSite=Lax:
 * the callback is a cross-site navigation from Bitbucket, which a Strict cookie would not come along with. */
static const char *state_cookie_named(request_rec *r, const bbauth_server_conf *conf, const char *name,
                                      const char *value, long max_age)
{
    bb_cookie_attrs_t attrs;

    attrs.path = "/";
    attrs.domain = NULL;
    attrs.same_site = "Lax";
    attrs.max_age = max_age;
    attrs.secure = conf->cookie_secure;
    attrs.http_only = 1;
    return bb_cookie_make(r->pool, name, value, &attrs);
}

static const char *state_cookie(request_rec *r, const bbauth_server_conf *conf, const char *state,
                                const char *value, long max_age)
{
    return state_cookie_named(r, conf, bb_login_state_cookie_name(r->pool, conf->cookie_name, state), value,
                              max_age);
}

/* At most BBAUTH_MAX_PENDING_LOGINS login-state cookies per browser: the oldest make room for a new one, so that
 * abandoned logins never make the Cookie header too large for httpd. */
static void evict_pending_logins(request_rec *r, const bbauth_server_conf *conf)
{
    apr_array_header_t *pending = bb_cookie_pairs_with_prefix(r->pool, apr_table_get(r->headers_in, "Cookie"),
                                                              apr_pstrcat(r->pool, conf->cookie_name, "_st_", NULL));
    apr_array_header_t *evicted = bb_login_state_evict(r->pool, conf->state_keys, pending,
                                                       BBAUTH_MAX_PENDING_LOGINS);
    int i;

    for (i = 0; i < evicted->nelts; i++) {
        bbauth_set_cookie(r, state_cookie_named(r, conf, APR_ARRAY_IDX(evicted, i, const char *), "", 0));
    }
}

int bbauth_set_login_state(request_rec *r, const bbauth_server_conf *conf, const bb_login_state_t *login)
{
    const char *value = bb_login_state_encode(r->pool, conf->state_keys, login);

    if (!value) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_bbauth: cannot start a login: the login-state cookie "
                      "cannot be signed");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    evict_pending_logins(r, conf);
    bbauth_set_cookie(r, state_cookie(r, conf, login->state, value, (long)(login->exp - bbauth_now())));
    bbauth_count(BB_M_LOGIN_STARTED);
    return OK;
}

int bbauth_start_login(request_rec *r, const bbauth_server_conf *conf, const char *return_to)
{
    bb_login_state_t *login;

    bbauth_audit(r, "login.started", "redirected", "to Bitbucket", NULL);
    if (conf->oauth_version == 1) {
        return bbauth_oauth1_start_login(r, conf, return_to);
    }
    login = bb_login_state_new(r->pool, return_to, bbauth_now(), BBAUTH_LOGIN_TTL);
    if (!login) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_bbauth: cannot start a login: no random numbers "
                      "from OpenSSL (check the system's entropy source)");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (bbauth_set_login_state(r, conf, login) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return bbauth_redirect(r, bb_oauth2_authorize_url(r->pool, &conf->oauth2, login->state,
                                                      bb_pkce_challenge_s256(r->pool, login->verifier)));
}

/* The login attempt this browser started for `state`, or NULL; its cookie is deleted either way. */
static bb_login_state_t *take_login_state(request_rec *r, const bbauth_server_conf *conf, const char *state)
{
    const char *cookies = apr_table_get(r->headers_in, "Cookie");
    const char *name = bb_login_state_cookie_name(r->pool, conf->cookie_name, state);
    apr_array_header_t *values = bb_cookie_values(r->pool, cookies, name);
    int i;

    bbauth_set_cookie(r, state_cookie(r, conf, state, "", 0));
    for (i = 0; i < values->nelts; i++) {
        bb_login_state_t *login = NULL;
        if (bb_login_state_decode(r->pool, conf->state_keys, APR_ARRAY_IDX(values, i, const char *), state,
                                  bbauth_now(), &login) == BB_STATE_VALID) {
            return login;
        }
    }
    return NULL;
}

/* The module's endpoints are links a browser follows: GET (and HEAD) only. */
static int method_not_allowed(request_rec *r)
{
    apr_table_setn(r->err_headers_out, "Allow", "GET, HEAD");
    return bbauth_page(r, HTTP_METHOD_NOT_ALLOWED, "Method not allowed", "Only GET is answered here.", NULL);
}

int bbauth_login_failed(request_rec *r, int status, const char *errmsg, const char *again)
{
    const char *message = "Bitbucket could not complete the login. The administrator has been told why in the "
                          "server's error log.";

    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_bbauth: login failed: %s", errmsg);
    bbauth_audit(r, "login.failed", "failure", errmsg, NULL);
    if (bb_http_held_back(errmsg)) {
        /* The circuit breaker is open (or too many calls are out): a temporary state, with a time to come back. */
        status = HTTP_SERVICE_UNAVAILABLE;
        bbauth_retry_after(r, ap_get_module_config(r->server->module_config, &bbauth_module));
    }
    if (status == HTTP_FORBIDDEN) {
        message = "Your Bitbucket account may not log in here.";
    }
    else if (bb_http_is_foreign_page(errmsg)) {
        message = "Bitbucket answered with a web page or a redirect where the login expects data. A two-factor "
                  "authentication plugin (such as \"U2F & TOTP\") whose OAuth whitelist is off usually causes "
                  "this: a Bitbucket administrator must enable that whitelist. Details are in the server's "
                  "error log.";
    }
    return bbauth_page(r, status, status == HTTP_FORBIDDEN ? "Access denied" : "Login failed", message, again);
}

int bbauth_login_denied(request_rec *r, const char *again)
{
    bbauth_count(BB_M_LOGIN_FAILED_ACCESS_DENIED);
    bbauth_audit(r, "login.failed", "failure", "the user denied access at Bitbucket", NULL);
    return bbauth_page(r, HTTP_FORBIDDEN, "Access denied",
                       "You did not allow this site to use your Bitbucket account.", again);
}

/* Where the browser goes once logged in. With SameSite=Strict a redirect would arrive without the new cookie
 * (the chain began at Bitbucket, another site), so the last hop is a same-site page instead. */
static int finish_login(request_rec *r, const bbauth_server_conf *conf, const char *return_to)
{
    const char *escaped;

    if (strcmp(conf->cookie_samesite, "Strict")) {
        return bbauth_redirect(r, return_to);
    }
    escaped = ap_escape_html2(r->pool, return_to, 1);
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    ap_set_content_type(r, "text/html; charset=utf-8");
    ap_rprintf(r, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
               "<meta http-equiv=\"refresh\" content=\"0;url=%s\"><title>Logged in</title></head>\n"
               "<body><p><a href=\"%s\">Continue</a></p></body></html>\n", escaped, escaped);
    return OK;
}

/* The page for a state the cache cannot check or mark: the login fails closed. */
static int state_unavailable(request_rec *r, apr_status_t rv, const char *return_to)
{
    bbauth_count(BB_M_LOGIN_FAILED_CACHE_ERROR);
    bbauth_audit(r, "login.failed", "failure", "the shared cache could not check the login state", NULL);
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "mod_bbauth: login failed: the shared cache (BBAuthCache) could not "
                  "check or record the login state; check that it runs and is reachable");
    return bbauth_page(r, HTTP_SERVICE_UNAVAILABLE, "Login unavailable", "The login cannot be completed right now.",
                       return_to);
}

static int state_used(request_rec *r, const char *return_to)
{
    bbauth_count(BB_M_LOGIN_FAILED_STATE_REPLAYED);
    bbauth_audit(r, "login.failed", "failure", "login answer replayed (state already used)", NULL);
    return bbauth_page(r, HTTP_BAD_REQUEST, "Login already used", "This login answer was already used. Start again.",
                       return_to);
}

/* Marks the login's state used until the state cookie expires: 1, or 0 with a page answered. A concurrent replay
 * that got this far too is stopped here, and before that by Bitbucket's single-use codes and tokens. */
static int mark_login_used(request_rec *r, const bbauth_server_conf *conf, const bb_login_state_t *login)
{
    apr_status_t rv = bb_cache_use_once(bbauth_cache(), conf->session_state.space, STATE_NS, login->state,
                                        apr_time_from_sec(login->exp), r->pool);

    if (rv == APR_SUCCESS) {
        return 1;
    }
    if (rv == APR_EEXIST) {
        state_used(r, login->return_to);
    }
    else {
        state_unavailable(r, rv, login->return_to);
    }
    return 0;
}

int bbauth_login_identified(request_rec *r, const bbauth_server_conf *conf, const bb_login_state_t *login,
                            bb_authorizer_fn *authorize, void *baton, const bb_oauth2_tokens_t *grant)
{
    bb_user_t *user = NULL;
    bb_bitbucket_t api;
    bb_session_t *session;
    const char *errmsg = NULL, *value;
    bb_status_t status;

    api.base_url = conf->bitbucket_url;
    api.http = &conf->http;
    api.authorize = authorize;
    api.baton = baton;
    status = bbauth_count_login_step(bb_bitbucket_identify(r->pool, &api, &user, &errmsg), &errmsg);
    if (status == BB_DENIED) {
        errmsg = apr_pstrcat(r->pool, errmsg, " (a token Bitbucket had just issued: check that no proxy in front of "
                             "Bitbucket drops the Authorization header)", NULL);
    }
    if (status != BB_OK) {
        return bbauth_login_failed(r, HTTP_BAD_GATEWAY, errmsg, login->return_to);
    }
    if (!user->active) {
        bbauth_count(BB_M_LOGIN_FAILED_DEACTIVATED);
        return bbauth_login_failed(r, HTTP_FORBIDDEN, apr_psprintf(r->pool, "Bitbucket user %s is deactivated",
                                                                 bb_strip_controls(r->pool, user->name)), NULL);
    }
    if (!mark_login_used(r, conf, login)) {
        return OK;
    }
    bbauth_session_before_new(r, conf);
    session = bb_session_new(r->pool, user->name, user->id, user->display_name, user->email, bbauth_now());
    if (session) {
        session->grant = grant != NULL;
        session->slug = user->slug;
    }
    value = session ? bb_session_encode(r->pool, conf->session_keys, &conf->policy, session, bbauth_now()) : NULL;
    if (!value) {
        return bbauth_login_failed(r, HTTP_INTERNAL_SERVER_ERROR, "cannot create the session cookie", NULL);
    }
    bbauth_set_cookie(r, bbauth_session_cookie(r, conf, value, (long)conf->max_age));
    if (grant) {
        bbauth_grant_save(r, conf, session->sid, grant);
    }
    bbauth_count(BB_M_LOGIN_COMPLETED);
    bbauth_audit(r, "login.completed", "success", NULL, user->name);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "mod_bbauth: %s logged in",
                  bb_strip_controls(r->pool, user->name));
    return finish_login(r, conf, login->return_to);
}

/* Only reads the cache: the state is marked used once Bitbucket has authenticated the user (mark_login_used), so
 * that callbacks anyone can send with a state of their own and a made-up code write nothing to the shared cache. */
int bbauth_claim_login(request_rec *r, const bbauth_server_conf *conf, const char *state, bb_login_state_t **login)
{
    bb_login_state_t *taken = take_login_state(r, conf, state);
    apr_status_t rv;

    *login = NULL;
    if (!taken) {
        bbauth_count(BB_M_LOGIN_FAILED_STATE_EXPIRED);
        bbauth_audit(r, "login.failed", "failure", "no valid login state for this browser (expired or foreign)",
                     NULL);
        return bbauth_page(r, HTTP_BAD_REQUEST, "Login expired",
                           "This login has expired, was already completed, or began in another browser.", "/");
    }
    rv = bb_cache_check_unused(bbauth_cache(), conf->session_state.space, STATE_NS, state, r->pool);
    if (rv == APR_EEXIST) {
        return state_used(r, taken->return_to);
    }
    if (rv != APR_SUCCESS) {
        return state_unavailable(r, rv, taken->return_to);
    }
    *login = taken;
    return OK;
}

/* OAuth 2: ?code&state, or ?error&state when the user declined. */
static int oauth2_callback(request_rec *r, const bbauth_server_conf *conf)
{
    apr_table_t *query = bb_url_parse_query(r->pool, r->args);
    const char *state = bb_url_query_single(query, "state");
    const char *code = bb_url_query_single(query, "code");
    const char *error = bb_url_query_single(query, "error");
    bb_oauth2_tokens_t *tokens = NULL;
    bb_login_state_t *login;
    const char *errmsg = NULL;
    int rc;

    if (!state || !*state || (!error && (!code || !*code))) {
        bbauth_count(BB_M_LOGIN_FAILED_BAD_ANSWER);
        return bbauth_page(r, HTTP_BAD_REQUEST, "Bad login answer",
                           "This is not a complete answer from Bitbucket (one state and one code expected).", "/");
    }
    rc = bbauth_claim_login(r, conf, state, &login);
    if (!login) {
        return rc;
    }
    if (error) {
        if (!strcmp(error, "access_denied")) {
            return bbauth_login_denied(r, login->return_to);
        }
        bbauth_count(BB_M_LOGIN_FAILED_AUTHORIZE_ERROR);
        return bbauth_login_failed(r, HTTP_BAD_GATEWAY,
                                   apr_psprintf(r->pool, "Bitbucket's authorize page answered error=%s: check the "
                                                "application link (redirect URL, scope %s)",
                                                ap_escape_logitem(r->pool, error), conf->scope), login->return_to);
    }
    if (bbauth_count_login_step(bb_oauth2_exchange_code(r->pool, &conf->oauth2, &conf->http, code,
                                                        login->verifier, &tokens, &errmsg), &errmsg) != BB_OK) {
        return bbauth_login_failed(r, HTTP_BAD_GATEWAY, errmsg, login->return_to);
    }
    return bbauth_login_identified(r, conf, login, bb_bearer_authorizer, (void *)tokens->access_token, tokens);
}

/* Bitbucket sends the browser back here, in the shape of the configured OAuth version. */
static int handle_callback(request_rec *r, const bbauth_server_conf *conf)
{
    /* The code or verifier in this URL must not travel on as a Referer. */
    apr_table_setn(r->err_headers_out, "Referrer-Policy", "no-referrer");
    if (r->method_number != M_GET) {
        return method_not_allowed(r);
    }
    return conf->oauth_version == 1 ? bbauth_oauth1_callback(r, conf) : oauth2_callback(r, conf);
}

/* The callback is the module's own endpoint: answered before any access control of the URL space it lies in. */
static int callback_quick_handler(request_rec *r, int lookup_only)
{
    const bbauth_server_conf *conf;

    if (lookup_only || r->main) {
        return DECLINED;
    }
    conf = server_conf(r);
    if (!conf->callback_path || conf->missing || !r->parsed_uri.path
        || strcmp(r->parsed_uri.path, conf->callback_path)) {
        return DECLINED;
    }
    return handle_callback(r, conf);
}

/* ?return=<local path>, or "/" when absent or leading elsewhere. */
static const char *return_parameter(request_rec *r)
{
    const char *wanted = bb_url_query_single(bb_url_parse_query(r->pool, r->args), "return");
    const char *safe = wanted ? bb_url_safe_return(wanted) : NULL;
    return safe ? safe : "/";
}

/* SetHandler bbauth-login: the link to share. Already logged in: straight to ?return; else off to Bitbucket. */
static int login_handler(request_rec *r)
{
    const bbauth_server_conf *conf;
    const char *return_to;
    bb_session_t *session;
    int rc;

    if (!r->handler || strcmp(r->handler, LOGIN_HANDLER)) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        return method_not_allowed(r);
    }
    conf = server_conf(r);
    if (conf->missing) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_bbauth: SetHandler bbauth-login but this server lacks %s",
                      conf->missing);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return_to = return_parameter(r);
    rc = bbauth_request_session(r, conf, 1, &session);
    if (rc == OK) {
        return bbauth_redirect(r, return_to);
    }
    if (rc != DECLINED) {
        return rc;
    }
    return bbauth_start_login(r, conf, return_to);
}

/* Ends the request's session (on every host sharing the cache, and its grant), deletes the cookie, goes to ?return. */
static int log_out(request_rec *r, const bbauth_server_conf *conf)
{
    bb_session_t *session;

    if (!conf->missing && bbauth_request_session(r, conf, 0, &session) == OK) {
        bbauth_count(BB_M_LOGOUT);
        bbauth_audit(r, "logout", "success", NULL, session->sub);
        bbauth_grant_revoke(r, conf, session->sid);
        bbauth_session_end(r, conf, session);
    }
    bbauth_set_cookie(r, bbauth_session_cookie(r, conf, "", 0));
    return bbauth_redirect(r, return_parameter(r));
}

/* A page with a button that POSTs the logout from this site: what a link (or an image) from anywhere gets. */
static int confirm_logout(request_rec *r)
{
    /* r->uri is decoded: encoded again, a '?' or '#' in it stays part of the path. */
    const char *action = bb_url_with_query(r->pool, ap_escape_uri(r->pool, r->uri), "return", return_parameter(r),
                                           NULL);

    return bbauth_form_page(r, "Log out", "Log out of this site?", action, "Log out");
}

/* SetHandler bbauth-logout: a POST from this site's own pages logs out; a GET (a link, an image, another site)
 * only shows the confirmation, so that no other site can end a session, nor chain a login after it. */
static int logout_handler(request_rec *r)
{
    const bbauth_server_conf *conf;

    if (!r->handler || strcmp(r->handler, LOGOUT_HANDLER)) {
        return DECLINED;
    }
    conf = server_conf(r);
    if (r->method_number == M_GET) {
        return confirm_logout(r);
    }
    if (r->method_number != M_POST) {
        apr_table_setn(r->err_headers_out, "Allow", "GET, HEAD, POST");
        return bbauth_page(r, HTTP_METHOD_NOT_ALLOWED, "Method not allowed", "Use the Log out button.", NULL);
    }
    if (ap_discard_request_body(r) != OK) {
        return HTTP_BAD_REQUEST;
    }
    if (!bbauth_from_this_site(r, conf)) {
        return confirm_logout(r);
    }
    return log_out(r, conf);
}

void bbauth_register_login_hooks(void)
{
    ap_hook_quick_handler(callback_quick_handler, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_handler(login_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(logout_handler, NULL, NULL, APR_HOOK_MIDDLE);
}
