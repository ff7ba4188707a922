/* mod_bbauth_token.c: BBAuthTokenAuth: Bitbucket HTTP access tokens sent by command-line clients, checked at Bitbucket and cached. */
#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>

#include "mod_bbauth.h"
#include "bb_credential.h"

/* Seconds a token Bitbucket refused stays refused without asking again (a typo is retried soon). */
#define TOKEN_NEGATIVE_TTL 30

static bb_tokencache_t token_cache_of(const bbauth_server_conf *conf)
{
    bb_tokencache_t tc = { bbauth_cache(), conf->session_state.key, conf->token_memo };
    return tc;
}

/* Project and repository tokens act as a service user that /users does not list: whoami's name is all there is. */
static bb_user_t *service_user(apr_pool_t *p, const char *username)
{
    bb_user_t *user = apr_pcalloc(p, sizeof(*user));

    user->name = username;
    user->slug = username;
    user->display_name = username;
    user->email = "";
    user->type = "SERVICE";
    user->active = 1;
    return user;
}

/* Who owns the token, as Bitbucket says (the token itself is the credential of both calls). */
static bb_status_t ask_bitbucket(request_rec *r, const bbauth_server_conf *conf, const char *token,
                                 bb_user_t **user, const char **errmsg)
{
    bb_bitbucket_t bb = { conf->bitbucket_url, &conf->http, bb_bearer_authorizer, (void *)token };
    const char *username;
    bb_status_t status = bb_bitbucket_whoami(r->pool, &bb, &username, errmsg);

    if (status != BB_OK) {
        return status;
    }
    status = bb_bitbucket_user(r->pool, &bb, username, user, errmsg);
    if (status == BB_NOT_FOUND) {
        *user = service_user(r->pool, username);
        return BB_OK;
    }
    if (status == BB_OK && !(*user)->active) {
        *errmsg = "the token's owner is deactivated in Bitbucket";
        return BB_DENIED;
    }
    return status;
}

static int refused(request_rec *r, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "mod_bbauth: access token refused: %s", why);
    return HTTP_UNAUTHORIZED;
}

/* Bitbucket takes project and repository tokens as Bearer only, never with a username in Basic: neither does
 * the module, whatever their owner (a service user) may do. */
static int accepted(request_rec *r, const bb_credential_t *cred, const bb_user_t *user, const bb_user_t **owner)
{
    if (cred->scheme == BB_CRED_SCHEME_BASIC && !strcmp(user->type, "SERVICE")) {
        return refused(r, "a project or repository token sent as Basic: Bitbucket takes them as Bearer only");
    }
    *owner = user;
    return OK;
}

const char *bbauth_token_of(request_rec *r)
{
    bb_credential_t *cred = NULL;
    const char *header = apr_table_get(r->headers_in, "Authorization");

    return bb_credential_parse(r->pool, header, &cred) == BB_CRED_OK ? cred->token : NULL;
}

int bbauth_token_authenticate(request_rec *r, const bbauth_server_conf *conf, const bb_user_t **owner)
{
    const char *header = apr_table_get(r->headers_in, "Authorization");
    bb_tokencache_t tc = token_cache_of(conf);
    bb_tokencache_entry_t *entry = NULL;
    bb_credential_t *cred = NULL;
    bb_cred_status_t parsed;
    bb_user_t *user = NULL;
    const char *errmsg = NULL;
    apr_int64_t now = bbauth_now();
    bb_status_t status;

    if (!header) {
        return DECLINED;
    }
    parsed = bb_credential_parse(r->pool, header, &cred);
    if (parsed != BB_CRED_OK) {
        bbauth_count(BB_M_TOKEN_MALFORMED);
        return refused(r, bb_credential_reason(parsed));
    }
    switch (bb_tokencache_lookup(r->pool, &tc, cred->token, now, &entry)) {
    case BB_TOKENCACHE_HIT_VALID:
        bbauth_count(entry->from_memo ? BB_M_TOKEN_MEMO_VALID : BB_M_TOKEN_CACHED_VALID);
        return accepted(r, cred, entry->user, owner);
    case BB_TOKENCACHE_HIT_INVALID:
        bbauth_count(entry->from_memo ? BB_M_TOKEN_MEMO_REFUSED : BB_M_TOKEN_CACHED_REFUSED);
        return refused(r, "Bitbucket refused it recently (cached)");
    default:
        break;
    }
    status = ask_bitbucket(r, conf, cred->token, &user, &errmsg);
    if (status == BB_DENIED) {
        bbauth_count(BB_M_TOKEN_REFUSED);
        bb_tokencache_store_invalid(r->pool, &tc, cred->token, now, TOKEN_NEGATIVE_TTL);
        return refused(r, errmsg ? errmsg : "Bitbucket does not know it");
    }
    if (status != BB_OK) {
        bbauth_count(BB_M_TOKEN_UNAVAILABLE);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_bbauth: cannot check an access token: %s", errmsg);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    bbauth_count(BB_M_TOKEN_VALID);
    bb_tokencache_store_valid(r->pool, &tc, cred->token, user, now, conf->token_cache_ttl);
    return accepted(r, cred, user, owner);
}
