/* mod_bbauth_session.c: the request's session: its cookie, whether it was ended on any host, revalidation, and ending it. */
#include <apr_strings.h>
#include <http_request.h>

#include "mod_bbauth.h"
#include "bb_cookie.h"

static const char *user_of(request_rec *r, const bb_session_t *session)
{
    return bb_strip_controls(r->pool, session->sub);
}

/* BBAuthSessionRevalidate, when due: OK, or DECLINED when the session must not go on. */
static int revalidated(request_rec *r, const bbauth_server_conf *conf, const bb_session_t *session,
                       int known_checked)
{
    const char *errmsg = "";

    switch (bbauth_grant_revalidate(r, conf, session, known_checked, &errmsg)) {
    case BBAUTH_GRANT_REFUSED:
        bbauth_count(BB_M_SESSION_REFUSED_REVALIDATION);
        bbauth_audit(r, "session.ended", "refused", "Bitbucket no longer accepts its grant", session->sub);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "mod_bbauth: session of %s ended: Bitbucket no longer accepts "
                      "its grant (user deactivated or grant revoked)", user_of(r, session));
        bbauth_session_end(r, conf, session);
        return DECLINED;
    case BBAUTH_GRANT_GONE:
        bbauth_count(BB_M_SESSION_REFUSED_NO_GRANT);
        bbauth_audit(r, "session.refused", "refused", "no Bitbucket grant kept to revalidate it", session->sub);
        /* Without its grant a session cannot be checked, and one that cannot be checked is not accepted: the
         * browser logs in again (quietly: Bitbucket remembers the consent), which makes a new grant. */
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "mod_bbauth: session of %s cannot be revalidated: no Bitbucket "
                      "grant is kept for it (its login kept none, or it was evicted from the shared cache): it must "
                      "log in again; if this is frequent, enlarge BBAuthCache", user_of(r, session));
        return DECLINED;
    case BBAUTH_GRANT_UNAVAILABLE:
        /* A signed, unexpired session goes on while Bitbucket is briefly away; it is checked again next time. */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "mod_bbauth: cannot revalidate the session of %s: %s",
                      user_of(r, session), errmsg);
        return OK;
    default:
        return OK;
    }
}

/* Whether the shared state lets a valid cookie's session go on: OK, DECLINED, or HTTP_SERVICE_UNAVAILABLE. */
static int shared_state_allows(request_rec *r, const bbauth_server_conf *conf, int revalidate,
                               const bb_session_t *session)
{
    int checked = 0;

    switch (bb_sessionstate_liveness(r->pool, &conf->session_state, session->sid, session->auth_time,
                                     bbauth_now(), &checked)) {
    case BB_SESSION_ENDED:
        bbauth_count(BB_M_SESSION_REFUSED_LOGGED_OUT);
        bbauth_audit(r, "session.refused", "refused", "logged out", session->sub);
        return DECLINED;
    case BB_SESSION_UNKNOWN:
        bbauth_count(BB_M_SESSION_REFUSED_CACHE_ERROR);
        bbauth_audit(r, "session.refused", "error", "the shared cache did not answer", session->sub);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_bbauth: cannot tell whether the session of %s was logged "
                      "out: the shared cache (BBAuthCache) did not answer, or cannot keep what it is given; check "
                      "that it runs and is reachable", user_of(r, session));
        return HTTP_SERVICE_UNAVAILABLE;
    case BB_SESSION_UNVERIFIED:
        /* Its logout may have been forgotten with the rest: the browser logs in again (quietly: Bitbucket
         * remembers the consent), scripts get 401. */
        bbauth_count(BB_M_SESSION_REFUSED_CACHE_EMPTIED);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "mod_bbauth: session of %s began before the shared cache "
                      "(BBAuthCache) was emptied (restarted, or reloaded with shmcb): it must log in again",
                      user_of(r, session));
        return DECLINED;
    default:
        if (bbauth_cut_off(r, conf, session->sub, session->auth_time)) {
            return DECLINED;
        }
        return revalidate ? revalidated(r, conf, session, checked) : OK;
    }
}

/* bb_session_pick's view of each value: counted, and the last unusable one's reason kept for the audit line of a
 * request in which no value counted. */
static void seen_value(void *baton, bb_session_status_t status)
{
    const char **unusable = baton;

    bbauth_count_session(status);
    if (status != BB_SESSION_VALID) {
        *unusable = status == BB_SESSION_EXPIRED ? "cookie expired or idle"
                                                 : "cookie invalid (bad signature, key or claims)";
    }
}

int bbauth_request_session(request_rec *r, const bbauth_server_conf *conf, int revalidate, bb_session_t **session)
{
    const char *cookies = apr_table_get(r->headers_in, "Cookie");
    apr_array_header_t *values;
    const char *unusable = NULL;     /* why a cookie of our name was not even looked up (audit) */
    bb_session_t *found = NULL;
    bb_session_pick_t pick;
    int allowed;

    *session = NULL;
    if (!cookies || !conf->session_keys) {
        return DECLINED;
    }
    /* Several cookies of our name can arrive (another path, or a parent domain: set by a sibling host too): only
     * one session may be named, and the extra cookies are deleted where this host can reach them. */
    values = bb_cookie_values(r->pool, cookies, conf->cookie_name);
    pick = bb_session_pick(r->pool, conf->session_memo, conf->session_keys, &conf->policy, values, bbauth_now(),
                           seen_value, &unusable, &found);
    if (values->nelts > 1) {
        bbauth_clear_other_cookies(r, conf, pick == BB_SESSION_PICK_CONFLICT);
    }
    if (pick != BB_SESSION_PICK_ONE) {
        if (pick == BB_SESSION_PICK_CONFLICT) {
            unusable = "cookies of different sessions (one set by another host?)";
        }
        if (unusable) {
            bbauth_audit(r, "session.refused", "refused", unusable, NULL);
        }
        return DECLINED;
    }
    allowed = shared_state_allows(r, conf, revalidate, found);
    if (allowed == OK) {
        *session = found;
    }
    else if (allowed == DECLINED && revalidate) {
        bbauth_set_cookie(r, bbauth_session_cookie(r, conf, "", 0));
    }
    return allowed;
}

void bbauth_session_before_new(request_rec *r, const bbauth_server_conf *conf)
{
    apr_int64_t epoch;

    /* Otherwise, after memcached restarted empty, the first session checked would begin an epoch after the sessions
     * made since, and send them through the login once more. A failure shows when the session is checked. */
    bb_sessionstate_epoch(r->pool, &conf->session_state, bbauth_now(), &epoch);
}

void bbauth_session_end(request_rec *r, const bbauth_server_conf *conf, const bb_session_t *session)
{
    apr_status_t rv = bb_sessionstate_end(r->pool, &conf->session_state, session->sid, bbauth_now(),
                                          session->auth_time + conf->max_age);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "mod_bbauth: logout of %s: cannot mark the session ended in the "
                      "shared cache (BBAuthCache): a copy of its cookie stays valid on other hosts until it expires",
                      user_of(r, session));
    }
}
