/* mod_bbauth_grant.c: a browser session's OAuth 2 tokens, kept server-side so that Require lines can ask Bitbucket. */
#include <apr_strings.h>
#include <http_core.h>
#include <http_request.h>

#include "mod_bbauth.h"
#include "bb_grant.h"

/* Refresh an access token this many seconds before it expires, so that no request uses one on its last breath. */
#define REFRESH_MARGIN 30
/* Cache namespace of the sessions checked at Bitbucket within BBAuthSessionRevalidate. */
#define CHECKED_NS "checked"

static apr_time_t session_end(const bbauth_server_conf *conf)
{
    return apr_time_from_sec(bbauth_now() + conf->max_age);
}

static void mark_checked(request_rec *r, const bbauth_server_conf *conf, const char *key);

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
    if (conf->revalidate > 0) {
        mark_checked(r, conf, bb_cache_key(r->pool, CHECKED_NS, sid));   /* Bitbucket has just said yes */
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

/* One refresh per session at a time in a process: Bitbucket rotates the refresh token, so a second refresh with
 * the same one would be refused and end the grant. Concurrent requests wait (at most BBAuthTimeout) and use the
 * grant the first one saved. */
static const char *refresh_once(request_rec *r, const bbauth_server_conf *conf, const char *sid,
                                const bb_grant_t *old, const char **errmsg, int *unavailable)
{
    const char *token;
    bb_grant_t *fresh;
    bb_flight_t flight;
    int outcome;

    switch (bb_flight_join(conf->grant_flights, bb_cache_key(r->pool, "grant-refresh", sid),
                           apr_time_from_sec(conf->timeout), &flight, &outcome)) {
    case BB_FLIGHT_LEAD:
        token = refresh(r, conf, sid, old, errmsg, unavailable);
        bb_flight_land(conf->grant_flights, &flight, token ? BB_OK : *unavailable ? BB_UNAVAILABLE : BB_DENIED);
        return token;
    case BB_FLIGHT_LANDED:
        fresh = bb_grant_load(r->pool, bbauth_cache(), conf->grant_sealer, sid);
        if (fresh && strcmp(fresh->access_token, old->access_token) != 0) {
            return fresh->access_token;
        }
        *errmsg = "a concurrent request of the same session could not refresh its grant";
        *unavailable = outcome != BB_DENIED;
        return NULL;
    default:
        *errmsg = "a concurrent request's refresh of the session's grant did not finish within BBAuthTimeout";
        *unavailable = 1;
        return NULL;
    }
}

const char *bbauth_grant_access_token(request_rec *r, const bbauth_server_conf *conf, const char *sid,
                                      int force_refresh, const char **errmsg, int *unavailable)
{
    bb_grant_t *grant = bb_grant_load(r->pool, bbauth_cache(), conf->grant_sealer, sid);

    *unavailable = 0;
    if (!grant) {
        *errmsg = conf->oauth_version == 1
            ? "sessions from OAuth 1 logins keep no Bitbucket grant to ask with: this needs BBAuthOAuthVersion 2 "
              "(or an access token)"
            : "no Bitbucket grant is kept for this session (made before a restart emptied the cache, or revoked): "
              "the user must log in again";
        return NULL;
    }
    if (force_refresh || (grant->expires_at && grant->expires_at - REFRESH_MARGIN <= bbauth_now())) {
        return refresh_once(r, conf, sid, grant, errmsg, unavailable);
    }
    return grant->access_token;
}

int bbauth_grant_kept(request_rec *r, const bbauth_server_conf *conf, const char *sid)
{
    return conf->oauth_version != 2 || bb_grant_load(r->pool, bbauth_cache(), conf->grant_sealer, sid) != NULL;
}

void bbauth_grant_forget(request_rec *r, const char *sid)
{
    bb_grant_remove(r->pool, bbauth_cache(), sid);
}

void bbauth_grant_revoke(request_rec *r, const bbauth_server_conf *conf, const char *sid)
{
    bb_grant_t *grant = conf->oauth_version == 2 ? bb_grant_load(r->pool, bbauth_cache(), conf->grant_sealer, sid)
                                                 : NULL;
    int refresh = grant && *grant->refresh_token;
    const char *errmsg = NULL;

    if (grant && bb_oauth2_revoke(r->pool, &conf->oauth2, &conf->http,
                                  refresh ? grant->refresh_token : grant->access_token,
                                  refresh ? "refresh_token" : "access_token", &errmsg) != BB_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "mod_bbauth: logout: the session's grant stays valid at "
                      "Bitbucket until it expires: %s", errmsg);
    }
}

/* The session was checked at Bitbucket less than BBAuthSessionRevalidate ago (on any server sharing the cache). */
static int recently_checked(request_rec *r, const char *key)
{
    const bb_cache_t *cache = bbauth_cache();
    unsigned char mark[1];
    unsigned int len = sizeof(mark);

    return cache->retrieve(cache->baton, (const unsigned char *)key, (unsigned int)strlen(key), mark, &len, r->pool)
           == APR_SUCCESS;
}

static void mark_checked(request_rec *r, const bbauth_server_conf *conf, const char *key)
{
    const bb_cache_t *cache = bbauth_cache();
    cache->store(cache->baton, (const unsigned char *)key, (unsigned int)strlen(key),
                 apr_time_from_sec(bbauth_now() + conf->revalidate), (const unsigned char *)"1", 1, r->pool);
}

/* 1 when Bitbucket still takes the grant (refreshed once if it no longer knows the access token), 0 when not,
 * -1 when it cannot say now. A session without a kept grant (the cache was emptied) cannot be checked: 1. */
static int grant_accepted(request_rec *r, const bbauth_server_conf *conf, const char *sid, const char **errmsg)
{
    int unavailable = 0, attempt;

    if (!bb_grant_load(r->pool, bbauth_cache(), conf->grant_sealer, sid)) {
        return 1;
    }
    for (attempt = 0; attempt < 2; attempt++) {
        const char *token = bbauth_grant_access_token(r, conf, sid, attempt, errmsg, &unavailable);
        bb_bitbucket_t bb = { conf->bitbucket_url, &conf->http, bb_bearer_authorizer, (void *)token };
        const char *owner = NULL;
        bb_status_t status;

        if (!token) {
            return unavailable ? -1 : 0;
        }
        status = bb_bitbucket_whoami(r->pool, &bb, &owner, errmsg);
        if (status == BB_OK) {
            return 1;
        }
        if (status != BB_DENIED) {
            return -1;
        }
    }
    return 0;
}

int bbauth_session_revalidate(request_rec *r, const bbauth_server_conf *conf, const bb_session_t *session)
{
    const char *key, *errmsg = NULL;
    int accepted;

    if (conf->revalidate == 0 || conf->oauth_version != 2) {
        return 1;
    }
    key = bb_cache_key(r->pool, CHECKED_NS, session->sid);
    if (recently_checked(r, key)) {
        return 1;
    }
    accepted = grant_accepted(r, conf, session->sid, &errmsg);
    if (accepted < 0) {
        /* A signed, unexpired session goes on while Bitbucket is briefly away; it is checked again next time. */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "mod_bbauth: cannot revalidate the session of %s: %s",
                      bb_strip_controls(r->pool, session->sub), errmsg);
        return 1;
    }
    if (!accepted) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "mod_bbauth: session of %s ended: Bitbucket no longer accepts "
                      "its grant (user deactivated or grant revoked)", bb_strip_controls(r->pool, session->sub));
        bbauth_session_end(r, session);
        return 0;
    }
    mark_checked(r, conf, key);
    return 1;
}
