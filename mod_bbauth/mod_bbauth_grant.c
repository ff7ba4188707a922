/* mod_bbauth_grant.c: a browser session's OAuth 2 tokens, kept server-side so that Require lines can ask Bitbucket. */
#include <apr_strings.h>
#include <http_core.h>
#include <http_request.h>

#include "mod_bbauth.h"
#include "bb_grant.h"

/* Refresh an access token this many seconds before it expires, so that no request uses one on its last breath. */
#define REFRESH_MARGIN 30

static apr_time_t session_end(const bbauth_server_conf *conf)
{
    return apr_time_from_sec(bbauth_now() + conf->max_age);
}

static bb_grant_t grant_of(const bb_oauth2_tokens_t *tokens)
{
    bb_grant_t grant = { tokens->access_token, tokens->refresh_token ? tokens->refresh_token : "",
                         tokens->expires_in > 0 ? bbauth_now() + tokens->expires_in : 0 };
    return grant;
}

void bbauth_grant_save(request_rec *r, const bbauth_server_conf *conf, const char *sid,
                       const bb_oauth2_tokens_t *tokens)
{
    bb_grant_t grant = grant_of(tokens);
    apr_status_t rv = bb_grant_store(r->pool, bbauth_cache(), conf->grant_sealer, sid, &grant, session_end(conf));

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, "mod_bbauth: cannot keep the session's Bitbucket grant in "
                      "the shared cache (BBAuthCache): Require bitbucket-repo/-project/-group will deny this user");
    }
}

/* Bitbucket rotates both tokens on a refresh: the new pair replaces the old one. */
static const char *refresh(request_rec *r, const bbauth_server_conf *conf, const char *sid, const bb_grant_t *old,
                           const char **errmsg, int *unavailable)
{
    bb_oauth2_tokens_t *tokens = NULL;
    bb_status_t status;

    if (!*old->refresh_token) {
        *errmsg = "the session's access token expired and Bitbucket gave no refresh token: log in again";
        return NULL;
    }
    status = bb_oauth2_refresh(r->pool, &conf->oauth2, &conf->http, old->refresh_token, &tokens, errmsg);
    if (status != BB_OK) {
        *unavailable = status != BB_DENIED;
        if (status == BB_DENIED) {
            bbauth_grant_forget(r, sid);
        }
        return NULL;
    }
    bbauth_grant_save(r, conf, sid, tokens);
    return tokens->access_token;
}

const char *bbauth_grant_access_token(request_rec *r, const bbauth_server_conf *conf, const char *sid,
                                      int force_refresh, const char **errmsg, int *unavailable)
{
    bb_grant_t *grant = bb_grant_load(r->pool, bbauth_cache(), conf->grant_sealer, sid);

    *unavailable = 0;
    if (!grant) {
        *errmsg = "no Bitbucket grant is kept for this session (made before a restart emptied the cache, or "
                  "revoked): the user must log in again";
        return NULL;
    }
    if (force_refresh || (grant->expires_at && grant->expires_at - REFRESH_MARGIN <= bbauth_now())) {
        return refresh(r, conf, sid, grant, errmsg, unavailable);
    }
    return grant->access_token;
}

void bbauth_grant_forget(request_rec *r, const char *sid)
{
    bb_grant_remove(r->pool, bbauth_cache(), sid);
}
