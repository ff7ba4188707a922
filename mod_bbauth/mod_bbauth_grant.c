/* mod_bbauth_grant.c: a browser session's OAuth 2 tokens, kept server-side so that Require lines can ask Bitbucket. */
#include <apr_strings.h>
#include <http_core.h>
#include <http_request.h>

#include "mod_bbauth.h"
#include "bb_grant.h"

/* Refresh an access token this many seconds before it expires, so that no request uses one on its last breath. */
#define REFRESH_MARGIN 30

static apr_int64_t session_end(const bbauth_server_conf *conf)
{
    return bbauth_now() + conf->max_age;
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
    apr_status_t rv = bb_sessionstate_save_grant(r->pool, &conf->session_state, sid, &grant, bbauth_now(),
                                                 session_end(conf));

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, "mod_bbauth: cannot keep the session's Bitbucket grant in "
                      "the shared cache (BBAuthCache): Require bitbucket-repo/-project/-group will deny this user");
    }
    if (conf->revalidate > 0) {      /* Bitbucket has just said yes */
        bb_sessionstate_mark_checked(r->pool, &conf->session_state, sid, bbauth_now(),
                                     bbauth_now() + conf->revalidate);
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
            bb_sessionstate_forget_grant(r->pool, &conf->session_state, sid);
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

    switch (bb_flight_join(conf->grant_flights,
                           bb_cache_key(r->pool, conf->session_state.key, "grant-refresh", sid, strlen(sid)),
                           apr_time_from_sec(conf->timeout), &flight, &outcome)) {
    case BB_FLIGHT_LEAD:
        token = refresh(r, conf, sid, old, errmsg, unavailable);
        bb_flight_land(conf->grant_flights, &flight, token ? BB_OK : *unavailable ? BB_UNAVAILABLE : BB_DENIED);
        return token;
    case BB_FLIGHT_LANDED:
        fresh = bb_sessionstate_load_grant(r->pool, &conf->session_state, sid, bbauth_now());
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
    bb_grant_t *grant = bb_sessionstate_load_grant(r->pool, &conf->session_state, sid, bbauth_now());

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
    return conf->oauth_version != 2 || bb_sessionstate_has_grant(r->pool, &conf->session_state, sid, bbauth_now());
}

void bbauth_grant_revoke(request_rec *r, const bbauth_server_conf *conf, const char *sid)
{
    bb_grant_t *grant = conf->oauth_version == 2
                        ? bb_sessionstate_load_grant(r->pool, &conf->session_state, sid, bbauth_now()) : NULL;
    int refresh = grant && *grant->refresh_token;
    const char *errmsg = NULL;

    if (grant && bb_oauth2_revoke(r->pool, &conf->oauth2, &conf->http,
                                  refresh ? grant->refresh_token : grant->access_token,
                                  refresh ? "refresh_token" : "access_token", &errmsg) != BB_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "mod_bbauth: logout: the session's grant stays valid at "
                      "Bitbucket until it expires: %s", errmsg);
    }
}

/* Whether Bitbucket still takes the session's grant (refreshed once if it no longer knows the access token). */
static bbauth_grant_verdict ask_about_grant(request_rec *r, const bbauth_server_conf *conf, const char *sid,
                                            const char **errmsg)
{
    int unavailable = 0, attempt;

    for (attempt = 0; attempt < 2; attempt++) {
        const char *token = bbauth_grant_access_token(r, conf, sid, attempt, errmsg, &unavailable);
        /* Made with the session's grant: a 429 for it holds back this session alone, not logins and others. */
        bb_bitbucket_t bb = { conf->bitbucket_url, bbauth_http_for(r, conf, sid), bb_bearer_authorizer,
                              (void *)token };
        const char *owner = NULL;
        bb_status_t status;

        if (!token) {
            return unavailable ? BBAUTH_GRANT_UNAVAILABLE : attempt ? BBAUTH_GRANT_REFUSED : BBAUTH_GRANT_GONE;
        }
        status = bb_bitbucket_whoami(r->pool, &bb, &owner, errmsg);
        if (status == BB_OK) {
            bbauth_audit(r, "session.revalidated", "accepted", "Bitbucket still accepts its grant", owner);
            return BBAUTH_GRANT_ACCEPTED;
        }
        if (status != BB_DENIED) {
            return BBAUTH_GRANT_UNAVAILABLE;
        }
    }
    return BBAUTH_GRANT_REFUSED;
}

bbauth_grant_verdict bbauth_grant_revalidate(request_rec *r, const bbauth_server_conf *conf,
                                             const bb_session_t *session, int known_checked, const char **errmsg)
{
    bbauth_grant_verdict verdict;

    if (conf->revalidate == 0 || conf->oauth_version != 2) {
        return BBAUTH_GRANT_ACCEPTED;
    }
    if (!session->grant) {
        /* Its login kept no grant to ask with (a cookie from before the grant claim, or an OAuth 1 login before a
         * move to OAuth 2): Bitbucket vouched for it when it logged in, and once a period has passed since, it
         * logs in again (quietly), which makes a grant. */
        return session->auth_time + conf->revalidate > bbauth_now() ? BBAUTH_GRANT_ACCEPTED : BBAUTH_GRANT_GONE;
    }
    if (known_checked || bb_sessionstate_checked(r->pool, &conf->session_state, session->sid, bbauth_now())) {
        return BBAUTH_GRANT_ACCEPTED;
    }
    verdict = ask_about_grant(r, conf, session->sid, errmsg);
    if (verdict == BBAUTH_GRANT_ACCEPTED) {
        bb_sessionstate_mark_checked(r->pool, &conf->session_state, session->sid, bbauth_now(),
                                     bbauth_now() + conf->revalidate);
    }
    return verdict;
}
