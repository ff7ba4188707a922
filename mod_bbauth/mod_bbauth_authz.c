/* mod_bbauth_authz.c: Require providers that follow Bitbucket: bitbucket-user, bitbucket-repo, bitbucket-project, bitbucket-group. */
#include <apr_strings.h>
#include <ap_provider.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_auth.h>

#include "mod_bbauth.h"
#include "bb_authzcache.h"
#include "bb_url.h"

/* The names of a "Require bitbucket-user" line, split once at startup. */
static const char *parse_user_list(cmd_parms *cmd, const char *require_args, const void **parsed)
{
    apr_array_header_t *names = apr_array_make(cmd->pool, 4, sizeof(const char *));
    const char *line = require_args;
    const char *word;

    while (*(word = ap_getword_conf(cmd->pool, &line))) {
        APR_ARRAY_PUSH(names, const char *) = word;
    }
    if (names->nelts == 0) {
        return "Require bitbucket-user needs at least one Bitbucket username";
    }
    *parsed = names;
    return NULL;
}

static authz_status check_user_list(request_rec *r, const char *require_args, const void *parsed)
{
    const apr_array_header_t *names = parsed;
    int i;

    if (!r->user) {
        return AUTHZ_DENIED_NO_USER;
    }
    for (i = 0; i < names->nelts; i++) {
        /* Bitbucket usernames are case-insensitive: Alice and alice are one account. */
        if (!strcasecmp(r->user, APR_ARRAY_IDX(names, i, const char *))) {
            return AUTHZ_GRANTED;
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "mod_bbauth: %s is not in Require bitbucket-user", r->user);
    return AUTHZ_DENIED;
}

static const authz_provider user_list_provider = { check_user_list, parse_user_list };

/* ---- Require bitbucket-repo PROJ/repo, bitbucket-project PROJ, bitbucket-group NAME: asked of Bitbucket ---- */

typedef enum { ASK_REPO, ASK_PROJECT, ASK_GROUP } ask_kind;

static const char *const ask_names[] = { "bitbucket-repo", "bitbucket-project", "bitbucket-group" };

typedef struct {
    ask_kind kind;
    const char *what;          /* "PROJ/repo", "PROJ" or the group name, as written */
    const char *project;
    const char *repo;
} ask_t;

static const char *parse_ask(cmd_parms *cmd, const char *require_args, const void **parsed, ask_kind kind)
{
    const char *line = require_args;
    ask_t *ask = apr_pcalloc(cmd->pool, sizeof(*ask));
    const char *slash;

    ask->kind = kind;
    ask->what = ap_getword_conf(cmd->pool, &line);
    if (!*ask->what || *ap_getword_conf(cmd->pool, &line)) {
        return apr_psprintf(cmd->pool, "Require %s takes exactly one %s", ask_names[kind],
                            kind == ASK_REPO ? "PROJECT/repository" : kind == ASK_PROJECT ? "project key" : "group");
    }
    slash = strchr(ask->what, '/');
    if (kind == ASK_REPO) {
        if (!slash || slash == ask->what || !slash[1] || strchr(slash + 1, '/')) {
            return "Require bitbucket-repo wants PROJECT/repository, e.g. PROJ/my-repo";
        }
        ask->project = apr_pstrmemdup(cmd->pool, ask->what, (apr_size_t)(slash - ask->what));
        ask->repo = slash + 1;
    }
    else if (kind == ASK_PROJECT) {
        if (slash) {
            return "Require bitbucket-project wants a project key, e.g. PROJ";
        }
        ask->project = ask->what;
    }
    /* Browser sessions ask with their OAuth grant here: check_authn sends one without it through the login. */
    ((bbauth_dir_conf *)ap_set_config_vectors(cmd->server, cmd->context, cmd->path, &bbauth_module,
                                              cmd->pool))->needs_grant = 1;
    *parsed = ask;
    return NULL;
}

static const char *parse_repo(cmd_parms *cmd, const char *line, const void **parsed)
{
    return parse_ask(cmd, line, parsed, ASK_REPO);
}

static const char *parse_project(cmd_parms *cmd, const char *line, const void **parsed)
{
    return parse_ask(cmd, line, parsed, ASK_PROJECT);
}

static const char *parse_group(cmd_parms *cmd, const char *line, const void **parsed)
{
    return parse_ask(cmd, line, parsed, ASK_GROUP);
}

/* Decisions are shared through the cache for BBAuthAuthzCacheTTL, per user and question, and for access tokens per
 * token too (each may be limited to less than its owner may do). Keyed and authenticated by HMAC under the
 * server's secret (bb_authzcache): whoever can write to a memcached or redis cannot forge a "yes", and no token
 * goes into a key even hashed plain. */
typedef struct {
    bb_authzcache_t cache;
    const char *principal;
    const char *question;
} decision_t;

/* The decision about `question` for `user`, with the access token the request was authenticated with (or none:
 * a browser session). */
static decision_t *decision_for(request_rec *r, const bbauth_server_conf *conf, const char *user, const char *token,
                                const char *question)
{
    const bb_key_t *key = conf->session_state.key;
    decision_t *d = apr_pcalloc(r->pool, sizeof(*d));
    bb_tokencache_t tc = { bbauth_cache(), key, NULL, 0 };

    d->cache.cache = bbauth_cache();
    d->cache.key = key;
    d->principal = apr_pstrcat(r->pool, user, "\n",
                               token ? bb_tokencache_key(r->pool, &tc, token) : "(session)", NULL);
    d->question = question;
    return d;
}

static decision_t *decision_of(request_rec *r, const bbauth_server_conf *conf, const ask_t *ask)
{
    return decision_for(r, conf, r->user, bbauth_request_credential(r)->token,
                        apr_pstrcat(r->pool, ask_names[ask->kind], " ", ask->what, NULL));
}

/* -1 when nothing usable is cached, else 0 or 1. */
static int cached_decision(request_rec *r, const decision_t *d)
{
    switch (bb_authzcache_lookup(r->pool, &d->cache, d->principal, d->question, bbauth_now())) {
    case BB_AUTHZCACHE_GRANTED:
        return 1;
    case BB_AUTHZCACHE_DENIED:
        return 0;
    default:
        return -1;
    }
}

static void remember_decision(request_rec *r, const bbauth_server_conf *conf, const decision_t *d, int granted)
{
    bb_authzcache_store(r->pool, &d->cache, d->principal, d->question, granted, bbauth_now(), conf->authz_cache_ttl);
}

/* The token to ask Bitbucket with: the client's access token, or the session's OAuth grant. */
static const char *asking_token(request_rec *r, const bbauth_server_conf *conf, int force_refresh,
                                const char **errmsg, int *unavailable)
{
    const bbauth_credential *cred = bbauth_request_credential(r);

    *unavailable = 0;
    if (cred->token) {
        return cred->token;
    }
    if (cred->sid) {
        return bbauth_grant_access_token(r, conf, cred->sid, force_refresh, errmsg, unavailable);
    }
    *errmsg = "the request has no Bitbucket credential to ask with";
    return NULL;
}

static bb_status_t ask_bitbucket(request_rec *r, const bbauth_server_conf *conf, const ask_t *ask,
                                 const char *token, const char **errmsg)
{
    bb_bitbucket_t bb = { conf->bitbucket_url, &conf->http, bb_bearer_authorizer, (void *)token };

    if (ask->kind == ASK_GROUP) {
        return bb_bitbucket_in_group(r->pool, &bb, r->user, ask->what, errmsg);
    }
    return bb_bitbucket_may_read(r->pool, &bb, ask->project, ask->repo, errmsg);
}

/* Bitbucket answers an expired or revoked token as if it were nobody, so a "no" is only a "no" when whoami still
 * knows the token. */
static int token_still_known(request_rec *r, const bbauth_server_conf *conf, const char *token)
{
    bb_bitbucket_t bb = { conf->bitbucket_url, &conf->http, bb_bearer_authorizer, (void *)token };
    const char *owner = NULL, *errmsg = NULL;

    return bb_bitbucket_whoami(r->pool, &bb, &owner, &errmsg) != BB_DENIED;
}

/* The Require line that refused the request, for the answer that explains it (explain_denial). */
#define DENIED_NOTE "bbauth-denied"

static authz_status denied(request_rec *r, const decision_t *decision)
{
    apr_table_setn(r->notes, DENIED_NOTE, decision->question);
    return AUTHZ_DENIED;
}

/* A Require provider can only make httpd answer 500 (AUTHZ_GENERAL_ERROR); the request notes that Bitbucket was
 * the cause, and the status becomes 503 as the error answer starts (see unavailable_status). */
#define UNAVAILABLE_NOTE "bbauth-bitbucket-unavailable"

static authz_status bitbucket_unavailable(request_rec *r)
{
    bbauth_count(BB_M_REQUIRE_UNAVAILABLE);
    apr_table_setn(r->notes, UNAVAILABLE_NOTE, "1");
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    bbauth_retry_after(r, ap_get_module_config(r->server->module_config, &bbauth_module));
    if (!bbauth_has_error_document(r, HTTP_SERVICE_UNAVAILABLE)) {
        ap_custom_response(r, HTTP_INTERNAL_SERVER_ERROR, "Bitbucket cannot be asked right now: try again later.\n");
    }
    return AUTHZ_GENERAL_ERROR;
}

static void unavailable_status(request_rec *r)
{
    if (r->status == HTTP_INTERNAL_SERVER_ERROR && apr_table_get(r->notes, UNAVAILABLE_NOTE)) {
        r->status = HTTP_SERVICE_UNAVAILABLE;
    }
}

/* Fails closed: when Bitbucket cannot answer, nobody is let in on this line. */
static authz_status check_ask(request_rec *r, const char *require_args, const void *parsed)
{
    const ask_t *ask = parsed;
    const bbauth_server_conf *conf = ap_get_module_config(r->server->module_config, &bbauth_module);
    const char *token, *errmsg = NULL;
    const decision_t *decision;
    int cached, unavailable;
    bb_status_t status;

    if (!r->user) {
        return AUTHZ_DENIED_NO_USER;
    }
    /* The startup check sees no .htaccess: a Require line there, in a server without the settings, ends here. */
    if (conf->missing) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_bbauth: Require %s for %s but this server lacks %s",
                      ask_names[ask->kind], r->uri, conf->missing);
        return AUTHZ_GENERAL_ERROR;
    }
    decision = decision_of(r, conf, ask);
    cached = cached_decision(r, decision);
    if (cached >= 0) {
        bbauth_count(cached ? BB_M_REQUIRE_CACHED_GRANTED : BB_M_REQUIRE_CACHED_DENIED);
        return cached ? AUTHZ_GRANTED : denied(r, decision);
    }
    token = asking_token(r, conf, 0, &errmsg, &unavailable);
    status = token ? ask_bitbucket(r, conf, ask, token, &errmsg) : BB_UNAVAILABLE;
    if (status == BB_DENIED && bbauth_request_credential(r)->sid && !token_still_known(r, conf, token)) {
        token = asking_token(r, conf, 1, &errmsg, &unavailable);
        status = token ? ask_bitbucket(r, conf, ask, token, &errmsg) : BB_UNAVAILABLE;
    }
    if (!token) {
        ap_log_rerror(APLOG_MARK, unavailable ? APLOG_ERR : APLOG_INFO, 0, r, "mod_bbauth: Require %s %s for %s: %s",
                      ask_names[ask->kind], ask->what, r->user, errmsg);
        return unavailable ? bitbucket_unavailable(r) : AUTHZ_DENIED;
    }
    if (status == BB_OK || status == BB_DENIED) {
        bbauth_count(status == BB_OK ? BB_M_REQUIRE_ASKED_GRANTED : BB_M_REQUIRE_ASKED_DENIED);
        remember_decision(r, conf, decision, status == BB_OK);
        if (status == BB_DENIED) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "mod_bbauth: Require %s %s denies %s: %s",
                          ask_names[ask->kind], ask->what, r->user, errmsg);
        }
        return status == BB_OK ? AUTHZ_GRANTED : denied(r, decision);
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_bbauth: Require %s %s for %s: Bitbucket cannot say: %s",
                  ask_names[ask->kind], ask->what, r->user, errmsg);
    return bitbucket_unavailable(r);
}

/* ---- denials that explain ---- */

/* A question as the denial page names it ("bitbucket-repo PROJ/alpha"), split: 1 when it is one a Require line
 * can ask (a known kind, then one word without controls, at most 512 bytes). */
static int parse_question(apr_pool_t *p, const char *question, ask_t *ask)
{
    const char *space = question ? strchr(question, ' ') : NULL;
    const char *c;
    int kind;

    if (!space || strlen(question) > 512) {
        return 0;
    }
    for (c = space + 1; *c; c++) {
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) {
            return 0;
        }
    }
    for (kind = ASK_REPO; kind <= ASK_GROUP; kind++) {
        if (!strncmp(question, ask_names[kind], (apr_size_t)(space - question))
            && strlen(ask_names[kind]) == (apr_size_t)(space - question)) {
            const char *slash = strchr(space + 1, '/');
            ask->kind = (ask_kind)kind;
            ask->what = space + 1;
            ask->project = kind == ASK_REPO && slash ? apr_pstrmemdup(p, ask->what, (apr_size_t)(slash - ask->what))
                                                     : ask->what;
            ask->repo = kind == ASK_REPO && slash ? slash + 1 : NULL;
            return *ask->what && (kind != ASK_REPO || (slash && slash[1]));
        }
    }
    return 0;
}

apr_status_t bbauth_authz_recheck(request_rec *r, const bbauth_server_conf *conf, const char *user,
                                  const char *question)
{
    const decision_t *decision;
    ask_t ask;

    if (!user || !parse_question(r->pool, question, &ask)) {
        return APR_EINVAL;
    }
    decision = decision_for(r, conf, user, NULL, question);
    return bb_authzcache_forget(r->pool, &decision->cache, decision->principal, question, bbauth_now());
}

/* What is missing, in words. */
static const char *missing_access(request_rec *r, const ask_t *ask)
{
    switch (ask->kind) {
    case ASK_REPO:
        return apr_psprintf(r->pool, "read access to repository %s in Bitbucket", ask->what);
    case ASK_PROJECT:
        return apr_psprintf(r->pool, "access to project %s in Bitbucket", ask->what);
    default:
        return apr_psprintf(r->pool, "membership of the Bitbucket group %s", ask->what);
    }
}

/* Where in Bitbucket to ask for it: the repository's or project's page (a group has none a user may see). */
static const char *bitbucket_link(request_rec *r, const bbauth_server_conf *conf, const ask_t *ask)
{
    if (ask->kind == ASK_GROUP) {
        return NULL;
    }
    return apr_pstrcat(r->pool, conf->bitbucket_url, "/projects/", bb_url_encode(r->pool, ask->project),
                       ask->repo ? "/repos/" : "", ask->repo ? bb_url_encode(r->pool, ask->repo) : "", NULL);
}

/* For a command-line client (an access token): one sentence and the link. */
static const char *denial_text(request_rec *r, const bbauth_server_conf *conf, const ask_t *ask)
{
    const char *link = bitbucket_link(r, conf, ask);

    return apr_psprintf(r->pool, "Access denied: %s is authenticated, but needs %s.%s%s\n",
                        bb_strip_controls(r->pool, r->user), missing_access(r, ask), link ? " Ask for it at " : "",
                        link ? link : "");
}

/* "Check again": a same-origin form to the account page, with its form token; none without an account page. */
static const char *recheck_form(request_rec *r, const bbauth_server_conf *conf, const char *question)
{
    const char *sid = bbauth_request_credential(r)->sid;
    const char *token = sid ? bbauth_account_form_token(r, conf, sid) : NULL;
    const char *back = bb_url_safe_return(r->unparsed_uri);

    if (!conf->account_path || !token) {
        return "";
    }
    return apr_psprintf(r->pool, "<form method=\"post\" action=\"%s\" id=\"recheck\">\n"
                        "<input type=\"hidden\" name=\"action\" value=\"recheck\">\n"
                        "<input type=\"hidden\" name=\"form\" value=\"%s\">\n"
                        "<input type=\"hidden\" name=\"question\" value=\"%s\">\n"
                        "<input type=\"hidden\" name=\"return\" value=\"%s\">\n"
                        "<button type=\"submit\">Check again</button> (once you have been given access; at most "
                        "once a minute)</form>\n<p><a id=\"account\" href=\"%s\">Your account</a></p>\n",
                        ap_escape_html2(r->pool, conf->account_path, 1), token, ap_escape_html2(r->pool, question, 1),
                        ap_escape_html2(r->pool, back ? back : "/", 1), ap_escape_html2(r->pool, conf->account_path, 1));
}

/* For a browser session: a short page with the same sentence, the link and "check again". */
static const char *denial_page(request_rec *r, const bbauth_server_conf *conf, const ask_t *ask,
                               const char *question)
{
    const char *link = bitbucket_link(r, conf, ask);
    const char *esc_link = link ? ap_escape_html2(r->pool, link, 1) : NULL;

    return apr_pstrcat(r->pool, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>",
                       apr_itoa(r->pool, r->status), " Access denied</title></head>\n<body>\n<h1>Access denied</h1>\n"
                       "<p id=\"reason\">You are logged in as <b>", ap_escape_html2(r->pool, r->user, 1),
                       "</b>, but you need ", ap_escape_html2(r->pool, missing_access(r, ask), 1), ".</p>\n",
                       link ? "<p>Ask the project's administrators for it: <a id=\"bitbucket-link\" href=\"" : "",
                       link ? esc_link : "", link ? "\">" : "", link ? esc_link : "", link ? "</a></p>\n" : "",
                       recheck_form(r, conf, question), "</body></html>\n", NULL);
}

/* The explanation made when the error response started, and its type. */
typedef struct {
    const char *body;
    const char *content_type;
} denial_t;

/* Replaces httpd's error body (and its type: httpd sets text/html after the error filters are inserted). */
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

#define DENIAL_FILTER "BBAUTH_DENIAL"

/* A Require bitbucket-* line refused an authenticated user: the answer says which, in words. An access token that
 * Bitbucket accepts but that lacks the permission gets 403 (never a 401 that makes pip, composer or npm ask for
 * other credentials). The admin's ErrorDocument wins; an anonymous request never gets here (no user). */
static void explain_denial(request_rec *r)
{
    const char *question = apr_table_get(r->notes, DENIED_NOTE);
    const bbauth_server_conf *conf = ap_get_module_config(r->server->module_config, &bbauth_module);
    const bbauth_credential *cred = bbauth_request_credential(r);
    denial_t *denial;
    ask_t ask;

    if (!question || !r->user || (r->status != HTTP_UNAUTHORIZED && r->status != HTTP_FORBIDDEN)
        || !parse_question(r->pool, question, &ask)) {
        return;
    }
    if (cred->token && r->status == HTTP_UNAUTHORIZED) {
        r->status = HTTP_FORBIDDEN;
        r->status_line = NULL;
        apr_table_unset(r->err_headers_out, "WWW-Authenticate");
    }
    if (bbauth_has_error_document(r, r->status)) {
        return;
    }
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
    denial = apr_pcalloc(r->pool, sizeof(*denial));
    if (cred->token) {
        denial->body = denial_text(r, conf, &ask);
        denial->content_type = "text/plain; charset=utf-8";
    }
    else {
        denial->body = denial_page(r, conf, &ask, question);
        denial->content_type = "text/html; charset=utf-8";
        apr_table_setn(r->err_headers_out, "Content-Security-Policy",
                       "default-src 'none'; form-action 'self'; frame-ancestors 'none'");
    }
    ap_add_output_filter(DENIAL_FILTER, denial, r, r->connection);
}

static const authz_provider repo_provider = { check_ask, parse_repo };
static const authz_provider project_provider = { check_ask, parse_project };
static const authz_provider group_provider = { check_ask, parse_group };

void bbauth_register_authz_providers(apr_pool_t *p)
{
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "bitbucket-user", AUTHZ_PROVIDER_VERSION,
                              &user_list_provider, AP_AUTH_INTERNAL_PER_CONF);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "bitbucket-repo", AUTHZ_PROVIDER_VERSION,
                              &repo_provider, AP_AUTH_INTERNAL_PER_CONF);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "bitbucket-project", AUTHZ_PROVIDER_VERSION,
                              &project_provider, AP_AUTH_INTERNAL_PER_CONF);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "bitbucket-group", AUTHZ_PROVIDER_VERSION,
                              &group_provider, AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_insert_error_filter(unavailable_status, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_insert_error_filter(explain_denial, NULL, NULL, APR_HOOK_MIDDLE);
    ap_register_output_filter(DENIAL_FILTER, denial_filter, NULL, AP_FTYPE_RESOURCE);
}
