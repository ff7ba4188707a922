/* mod_bbauth_authz.c: Require providers that follow Bitbucket: bitbucket-user, bitbucket-repo, bitbucket-project, bitbucket-group. */
#include <apr_strings.h>
#include <ap_provider.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_auth.h>

#include "mod_bbauth.h"
#include "bb_authzcache.h"
#include "bb_requirement.h"

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

static authz_status decide_user_list(request_rec *r, const void *parsed)
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

static authz_status check_user_list(request_rec *r, const char *require_args, const void *parsed)
{
    authz_status decision = decide_user_list(r, parsed);

    bbauth_audit_require(r, decision, apr_pstrcat(r->pool, "bitbucket-user ", require_args, NULL));
    return decision;
}

static const authz_provider user_list_provider = { check_user_list, parse_user_list };

/* ---- Require bitbucket-repo PROJ/repo, bitbucket-project PROJ, bitbucket-group NAME: asked of Bitbucket ---- */

/* What a refused argument should look like, per kind. */
static const char *const ask_forms[] = { "PROJECT/repository, e.g. PROJ/my-repo", "a project key, e.g. PROJ",
                                         "a group name" };

static const char *parse_ask(cmd_parms *cmd, const char *require_args, const void **parsed, bb_req_kind_t kind)
{
    const char *line = require_args;
    const char *what = ap_getword_conf(cmd->pool, &line);
    bb_requirement_t *ask;

    if (!*what || *ap_getword_conf(cmd->pool, &line)) {
        return apr_psprintf(cmd->pool, "Require %s takes exactly one %s", bb_requirement_names[kind],
                            kind == BB_REQ_REPO ? "PROJECT/repository"
                            : kind == BB_REQ_PROJECT ? "project key" : "group");
    }
    /* The same text the denial page names it by, and reads back. */
    ask = bb_requirement_parse(cmd->pool, apr_pstrcat(cmd->pool, bb_requirement_names[kind], " ", what, NULL));
    if (!ask) {
        return apr_psprintf(cmd->pool, "Require %s wants %s", bb_requirement_names[kind], ask_forms[kind]);
    }
    /* Browser sessions ask with their OAuth grant here: check_authn sends one without it through the login. */
    ((bbauth_dir_conf *)ap_set_config_vectors(cmd->server, cmd->context, cmd->path, &bbauth_module,
                                              cmd->pool))->needs_grant = 1;
    *parsed = ask;
    return NULL;
}

static const char *parse_repo(cmd_parms *cmd, const char *line, const void **parsed)
{
    return parse_ask(cmd, line, parsed, BB_REQ_REPO);
}

static const char *parse_project(cmd_parms *cmd, const char *line, const void **parsed)
{
    return parse_ask(cmd, line, parsed, BB_REQ_PROJECT);
}

static const char *parse_group(cmd_parms *cmd, const char *line, const void **parsed)
{
    return parse_ask(cmd, line, parsed, BB_REQ_GROUP);
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
    bb_tokencache_t tc = { bbauth_cache(), key, NULL, 0, NULL, NULL };

    d->cache.cache = bbauth_cache();
    d->cache.key = key;
    /* The user's cut-off time is part of the principal: decisions from before an admin cut them off never match. */
    d->principal = apr_psprintf(r->pool, "%s\n%s\n%" APR_INT64_T_FMT, user,
                                token ? bb_tokencache_key(r->pool, &tc, token) : "(session)",
                                bb_cutoff_not_before(r->pool, &conf->cutoff, user, bbauth_now()));
    d->question = question;
    return d;
}

static decision_t *decision_of(request_rec *r, const bbauth_server_conf *conf, const bb_requirement_t *ask)
{
    return decision_for(r, conf, r->user, bbauth_request_credential(r)->token,
                        apr_pstrcat(r->pool, bb_requirement_names[ask->kind], " ", ask->what, NULL));
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

/* Calls with the request's credential are its user's: a 429 for them holds back that user alone. */
static const bb_http_opts_t *as_user(request_rec *r, const bbauth_server_conf *conf)
{
    return bbauth_http_for(r, conf, r->user ? r->user : BB_HOLDER_ANONYMOUS);
}

static bb_status_t ask_bitbucket(request_rec *r, const bbauth_server_conf *conf, const bb_requirement_t *ask,
                                 const char *token, const char **errmsg)
{
    bb_bitbucket_t bb = { conf->bitbucket_url, as_user(r, conf), bb_bearer_authorizer, (void *)token };

    if (ask->kind == BB_REQ_GROUP) {
        return bb_bitbucket_in_group(r->pool, &bb, r->user, ask->what, errmsg);
    }
    return bb_bitbucket_may_read(r->pool, &bb, ask->project, ask->repo, errmsg);
}

/* Bitbucket answers an expired or revoked token as if it were nobody, so a "no" is only a "no" when whoami still
 * knows the token. */
static int token_still_known(request_rec *r, const bbauth_server_conf *conf, const char *token)
{
    bb_bitbucket_t bb = { conf->bitbucket_url, as_user(r, conf), bb_bearer_authorizer, (void *)token };
    const char *owner = NULL, *errmsg = NULL;

    return bb_bitbucket_whoami(r->pool, &bb, &owner, &errmsg) != BB_DENIED;
}

/* Notes the Require line that refused the request, for the answer that explains it (mod_bbauth_denial.c). */
static authz_status denied(request_rec *r, const decision_t *decision)
{
    apr_table_setn(r->notes, BBAUTH_DENIED_NOTE, decision->question);
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
static authz_status decide_ask(request_rec *r, const void *parsed)
{
    const bb_requirement_t *ask = parsed;
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
                      bb_requirement_names[ask->kind], r->uri, conf->missing);
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
                      bb_requirement_names[ask->kind], ask->what, r->user, errmsg);
        return unavailable ? bitbucket_unavailable(r) : AUTHZ_DENIED;
    }
    if (status == BB_OK || status == BB_DENIED) {
        bbauth_count(status == BB_OK ? BB_M_REQUIRE_ASKED_GRANTED : BB_M_REQUIRE_ASKED_DENIED);
        remember_decision(r, conf, decision, status == BB_OK);
        if (status == BB_DENIED) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "mod_bbauth: Require %s %s denies %s: %s",
                          bb_requirement_names[ask->kind], ask->what, r->user, errmsg);
        }
        return status == BB_OK ? AUTHZ_GRANTED : denied(r, decision);
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_bbauth: Require %s %s for %s: Bitbucket cannot say: %s",
                  bb_requirement_names[ask->kind], ask->what, r->user, errmsg);
    return bitbucket_unavailable(r);
}

apr_status_t bbauth_authz_recheck(request_rec *r, const bbauth_server_conf *conf, const char *user,
                                  const char *question)
{
    const decision_t *decision;

    if (!user || !bb_requirement_parse(r->pool, question)) {
        return APR_EINVAL;
    }
    decision = decision_for(r, conf, user, NULL, question);
    return bb_authzcache_forget(r->pool, &decision->cache, decision->principal, question, bbauth_now());
}

static authz_status check_ask(request_rec *r, const char *require_args, const void *parsed)
{
    const bb_requirement_t *ask = parsed;
    authz_status decision = decide_ask(r, parsed);

    bbauth_audit_require(r, decision, apr_pstrcat(r->pool, bb_requirement_names[ask->kind], " ", ask->what, NULL));
    return decision;
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
}
