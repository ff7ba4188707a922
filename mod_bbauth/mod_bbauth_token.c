/* mod_bbauth_token.c: BBAuthTokenAuth: Bitbucket HTTP access tokens sent by command-line clients, checked at Bitbucket and cached. */
#include <apr_atomic.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>

#include "mod_bbauth.h"
#include "bb_credential.h"
#include "bb_tokencheck.h"

/* Seconds a token Bitbucket refused stays refused without asking again (a typo is retried soon). */
#define TOKEN_NEGATIVE_TTL 30
/* How often a request polls the shared cache for the verdict another server is getting from Bitbucket. */
#define FLIGHT_POLL apr_time_from_msec(25)

static bb_tokencache_t token_cache_of(const bbauth_server_conf *conf)
{
    bb_tokencache_t tc = { bbauth_cache(), conf->session_state.key, conf->token_memo, conf->stale_if_error,
                           conf->user_memo, conf->token_memo_secret };
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

/* Who owns the token, as Bitbucket says (the token itself is the credential of both calls, made as `holder`'s: the
 * owner Bitbucket named before, or BB_HOLDER_ANONYMOUS). The owner's details are asked for once per process and
 * BBAuthTokenCacheTTL: another token of someone seen before costs whoami alone (which refuses the tokens of a
 * deactivated user too). */
static bb_status_t ask_bitbucket(request_rec *r, const bbauth_server_conf *conf, const bb_tokencache_t *tc,
                                 const char *token, const char *holder, bb_user_t **user, const char **errmsg)
{
    bb_bitbucket_t bb = { conf->bitbucket_url, bbauth_http_for(r, conf, holder), bb_bearer_authorizer,
                          (void *)token };
    const char *username;
    bb_status_t status = bb_bitbucket_whoami(r->pool, &bb, &username, errmsg);

    if (status != BB_OK) {
        return status;
    }
    *user = bb_tokencache_known_user(r->pool, tc, username, bbauth_now());
    if (*user != NULL) {
        return BB_OK;
    }
    status = bb_bitbucket_user(r->pool, &bb, username, user, errmsg);
    if (status == BB_NOT_FOUND) {
        *user = service_user(r->pool, username);
        status = BB_OK;
    }
    if (status == BB_OK && !(*user)->active) {
        *errmsg = "the token's owner is deactivated in Bitbucket";
        return BB_DENIED;
    }
    if (status == BB_OK) {
        bb_tokencache_remember_user(r->pool, tc, *user, bbauth_now() + conf->token_cache_ttl);
    }
    return status;
}

static int refused(request_rec *r, const char *why)
{
    bbauth_audit_token(r, "refused", why, NULL);
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

/* What one check of a token found (see bb_tokencheck): Bitbucket's verdict (with the owner), or why there is none. */
typedef struct {
    bb_check_result_t result;
    bb_user_t *user;
    const char *errmsg;
    apr_int64_t retry_after;        /* BB_CHECK_ADDRESS_LIMITED: seconds until the address's minute ends */
} verdict_t;

/* Asks Bitbucket as `holder` and keeps its verdict in the token cache. */
static verdict_t validate(request_rec *r, const bbauth_server_conf *conf, const bb_tokencache_t *tc,
                          const char *token, const char *holder)
{
    verdict_t v = { BB_CHECK_HELD_HERE, NULL, NULL, 0 };
    bb_status_t status;
    apr_int64_t now;

    if (!strcmp(holder, BB_HOLDER_ANONYMOUS) && !bbauth_anonymous_check_allowed(r, conf, &v.retry_after)) {
        v.result = BB_CHECK_ADDRESS_LIMITED;
        v.errmsg = apr_psprintf(r->pool, "not asked: %" APR_INT64_T_FMT " tokens nobody confirmed came from %s "
                                "within a minute (BBAuthAnonymousChecksPerMinute), retry after %" APR_INT64_T_FMT
                                " s", conf->anonymous_checks, r->useragent_ip, v.retry_after);
        return v;
    }
    status = ask_bitbucket(r, conf, tc, token, holder, &v.user, &v.errmsg);
    v.result = bb_tokencheck_result(status, v.errmsg);
    now = bbauth_now();
    if (v.result == BB_CHECK_REFUSED) {
        bb_tokencache_store_invalid(r->pool, tc, token, now, TOKEN_NEGATIVE_TTL);
    }
    else if (v.result == BB_CHECK_VALID) {
        bbauth_audit_token(r, "accepted", "checked at Bitbucket", v.user->name);
        bb_tokencache_store_valid(r->pool, tc, token, v.user, now, conf->token_cache_ttl);
    }
    return v;
}

/* The cached verdict as a verdict_t: 1 when there is one. */
static int cached_verdict(request_rec *r, const bb_tokencache_t *tc, const char *token, verdict_t *v)
{
    bb_tokencache_entry_t *entry = NULL;

    switch (bb_tokencache_lookup(r->pool, tc, token, bbauth_now(), &entry)) {
    case BB_TOKENCACHE_HIT_VALID:
        v->result = BB_CHECK_VALID;
        v->user = entry->user;
        return 1;
    case BB_TOKENCACHE_HIT_INVALID:
        v->result = BB_CHECK_REFUSED;
        v->errmsg = "Bitbucket refused it (checked by a concurrent request)";
        return 1;
    default:
        return 0;
    }
}

/* The shared cache's key for "a server is asking Bitbucket about this token". */
static const char *mark_of(request_rec *r, const bb_tokencache_t *tc, const char *token)
{
    return bb_cache_key(r->pool, tc->key, "flight", token, strlen(token));
}

/* Another process or host marked that it is asking Bitbucket about this token: its verdict, polled from the
 * shared cache while the mark is there (at most BBAuthTimeout). 0 when the mark went without a verdict. */
static int verdict_of_others(request_rec *r, const bbauth_server_conf *conf, const bb_tokencache_t *tc,
                             const char *token, const char *mark, verdict_t *v)
{
    apr_time_t deadline = apr_time_now() + apr_time_from_sec(conf->timeout);

    while (apr_time_now() < deadline) {
        apr_sleep(FLIGHT_POLL);
        if (cached_verdict(r, tc, token, v)) {
            return 1;
        }
        if (!bb_flight_marked(r->pool, tc->cache, mark)) {
            return 0;
        }
    }
    v->result = BB_CHECK_HELD_HERE;
    v->errmsg = "another server's check of this token at Bitbucket did not finish within BBAuthTimeout";
    return 1;
}

/* Asks on behalf of every process and host sharing the cache: waits for another server's verdict when its mark is
 * there, else asks. `confirmed`: Bitbucket accepted this token before, so this server may leave its own mark while
 * asking; a token any client may have made up never writes to the shared cache (it could push out what security
 * rests on), it only looks for the marks of others. */
static verdict_t validate_shared(request_rec *r, const bbauth_server_conf *conf, const bb_tokencache_t *tc,
                                 const char *token, const bb_user_t *confirmed)
{
    const char *mark = mark_of(r, tc, token);
    apr_status_t marked = confirmed ? bb_flight_mark(r->pool, tc->cache, mark, bbauth_now() + conf->timeout + 1)
                                    : bb_flight_marked(r->pool, tc->cache, mark) ? APR_EEXIST : APR_NOTFOUND;
    verdict_t v = { BB_CHECK_HELD_HERE, NULL, NULL, 0 };

    if (marked == APR_EEXIST && verdict_of_others(r, conf, tc, token, mark, &v)) {
        return v;
    }
    v = validate(r, conf, tc, token, bb_tokencheck_holder(confirmed));
    if (confirmed && marked == APR_SUCCESS) {
        bb_flight_unmark(r->pool, tc->cache, mark);
    }
    return v;
}

/* What a concurrent check of the same token (its leader's outcome) leaves to those who waited for it: the verdict
 * it kept (this process's memo or the shared cache), its refusal (kept by the leader's process only: kept here too),
 * or why it had none; a verdict that could not be kept is asked again. */
static verdict_t landed(request_rec *r, const bbauth_server_conf *conf, const bb_tokencache_t *tc, const char *token,
                        const bb_user_t *earlier, int outcome)
{
    verdict_t v = { BB_CHECK_HELD_HERE, NULL, NULL, 0 };

    if (cached_verdict(r, tc, token, &v)) {
        return v;
    }
    if (outcome == BB_CHECK_REFUSED) {
        bb_tokencache_store_invalid(r->pool, tc, token, bbauth_now(), TOKEN_NEGATIVE_TTL);
        v.result = BB_CHECK_REFUSED;
        v.errmsg = "Bitbucket refused it (checked by a concurrent request)";
        return v;
    }
    if (outcome == BB_CHECK_VALID || outcome == BB_FLIGHT_UNKNOWN) {
        return validate(r, conf, tc, token, bb_tokencheck_holder(earlier));   /* a verdict that was not kept */
    }
    /* Another address's limit is not this one's; a 429's hold is the holder's (Retry-After says for how long). */
    v.result = outcome == BB_CHECK_ADDRESS_LIMITED ? BB_CHECK_HELD_HERE : (bb_check_result_t)outcome;
    v.errmsg = "Bitbucket could not say for a concurrent request with the same token";
    return v;
}

/* The process's one check of a token, once per host: the first process asks (see validate_shared), the others wait
 * in a table of the host's shared memory for its outcome (at most BBAuthTimeout). Nothing is written to the shared
 * cache for it, so a token nobody confirmed costs one call per host, not one per process. */
static verdict_t validate_on_host(request_rec *r, const bbauth_server_conf *conf, const bb_tokencache_t *tc,
                                  const char *token, const bb_user_t *earlier)
{
    verdict_t v = { BB_CHECK_HELD_HERE, NULL, NULL, 0 };
    bb_hostflight_t flight;
    int outcome;

    switch (bb_hostflight_join(bbauth_token_hostflights(), bb_tokencache_key(r->pool, tc, token), bbauth_now(),
                               conf->timeout + 1, apr_time_from_sec(conf->timeout), &flight, &outcome)) {
    case BB_HOSTFLIGHT_LEAD:
        v = validate_shared(r, conf, tc, token, earlier);
        bb_hostflight_land(&flight, (int)v.result, bbauth_now());
        return v;
    case BB_HOSTFLIGHT_LANDED:
        return landed(r, conf, tc, token, earlier, outcome);
    default:
        v.errmsg = "another process's check of the same token did not finish within BBAuthTimeout";
        return v;
    }
}

/* A token no cache knows (or whose verdict expired): one request per process asks (see validate_on_host), the
 * others with the same token wait for its verdict, at most BBAuthTimeout. `earlier`: the owner Bitbucket named
 * for it before (a verdict kept for BBAuthStaleIfError), or NULL: nobody confirmed it. */
static verdict_t validate_once(request_rec *r, const bbauth_server_conf *conf, const bb_tokencache_t *tc,
                               const char *token, const bb_user_t *earlier)
{
    verdict_t v = { BB_CHECK_HELD_HERE, NULL, NULL, 0 };
    bb_flight_t flight;
    int outcome;

    switch (bb_flight_join(conf->token_flights, bb_tokencache_key(r->pool, tc, token),
                           apr_time_from_sec(conf->timeout), &flight, &outcome)) {
    case BB_FLIGHT_LEAD:
        v = validate_on_host(r, conf, tc, token, earlier);
        bb_flight_land(conf->token_flights, &flight, (int)v.result);
        return v;
    case BB_FLIGHT_LANDED:
        return landed(r, conf, tc, token, earlier, outcome);
    default:
        v.errmsg = "a concurrent request's check of the same token did not finish within BBAuthTimeout";
        return v;
    }
}

/* Refresh ahead: a valid verdict in the last tenth of its life is renewed by one request of the process (the
 * others, and this one if Bitbucket cannot say, go on using it), so a busy token never meets a miss. Returns
 * the verdict to use. */
static verdict_t renewed(request_rec *r, const bbauth_server_conf *conf, const bb_tokencache_t *tc,
                         const char *token, const bb_tokencache_entry_t *entry, apr_int64_t now)
{
    verdict_t v = { BB_CHECK_VALID, entry->user, NULL, 0 }, fresh;
    const char *key, *mark;
    bb_flight_t flight;
    int outcome;

    if (!bb_tokencheck_renew_due(entry->validated_at, entry->expires, now)) {
        return v;
    }
    key = bb_tokencache_key(r->pool, tc, token);
    if (key == NULL || bb_flight_join(conf->token_flights, key, 0, &flight, &outcome) != BB_FLIGHT_LEAD) {
        return v;
    }
    mark = mark_of(r, tc, token);   /* Bitbucket accepted this token: marking it writes nothing a client made up */
    if (bb_flight_mark(r->pool, tc->cache, mark, now + conf->timeout + 1) == APR_SUCCESS) {
        fresh = validate(r, conf, tc, token, entry->user->name);
        bb_flight_unmark(r->pool, tc->cache, mark);
        if (fresh.result == BB_CHECK_VALID || fresh.result == BB_CHECK_REFUSED) {
            v = fresh;
        }
    }
    bb_flight_land(conf->token_flights, &flight, (int)v.result);
    return v;
}

/* BBAuthStaleIfError: while Bitbucket itself fails, a verdict it confirmed before, up to the grace past its
 * expiry; each use logged (info) and counted. Never when this server held the call back (its budget, a 429's hold)
 * or a wait for a concurrent check ran out: a revoked token would live on whenever junk fills the slots. 1 when *v
 * was replaced by it. */
static int stale_verdict(request_rec *r, const bb_tokencache_t *tc, const char *token, verdict_t *v)
{
    static volatile apr_uint32_t uses;     /* this process's, for the log line */
    bb_tokencache_entry_t *entry = NULL;
    apr_int64_t now = bbauth_now();

    if (!bb_tokencheck_may_use_stale(v->result) || !bb_tokencache_lookup_stale(r->pool, tc, token, now, &entry)
        || bbauth_cut_off(r, ap_get_module_config(r->server->module_config, &bbauth_module), entry->user->name,
                          entry->validated_at)) {
        return 0;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "mod_bbauth: Bitbucket cannot check an access token (%s): accepted "
                  "as %s from Bitbucket's verdict of %" APR_INT64_T_FMT " s ago, %" APR_INT64_T_FMT " s past its "
                  "TTL (BBAuthStaleIfError; stale use %u of this process)", v->errmsg,
                  bb_strip_controls(r->pool, entry->user->name), now - entry->validated_at, now - entry->expires,
                  apr_atomic_inc32(&uses) + 1);
    v->result = BB_CHECK_VALID;
    v->user = entry->user;
    bbauth_audit_token(r, "accepted", "Bitbucket cannot answer: an earlier verdict (BBAuthStaleIfError)",
                       entry->user->name);
    return 1;
}

/* The token_verdicts_total outcome of a check. */
static bb_metric_id outcome_metric(const verdict_t *v)
{
    switch (v->result) {
    case BB_CHECK_VALID:
        return BB_M_TOKEN_VALID;
    case BB_CHECK_REFUSED:
        return BB_M_TOKEN_REFUSED;
    case BB_CHECK_RATE_LIMITED:
        return BB_M_TOKEN_RATE_LIMITED;
    case BB_CHECK_ADDRESS_LIMITED:
        return BB_M_TOKEN_ADDRESS_LIMITED;
    default:
        return BB_M_TOKEN_UNAVAILABLE;
    }
}

/* The request's answer for a verdict. */
static int answer(request_rec *r, const bbauth_server_conf *conf, const bb_credential_t *cred, const verdict_t *v,
                  const bb_user_t **owner)
{
    if (v->result == BB_CHECK_VALID) {
        return accepted(r, cred, v->user, owner);
    }
    if (v->result == BB_CHECK_REFUSED) {
        return refused(r, v->errmsg ? v->errmsg : "Bitbucket does not know it");
    }
    /* While Bitbucket is down the breaker's own line says so once; each request held back (or over a limit of
     * its address) is only info. */
    ap_log_rerror(APLOG_MARK, bb_http_held_back(v->errmsg) || v->result == BB_CHECK_ADDRESS_LIMITED ? APLOG_INFO
                  : APLOG_ERR, 0, r, "mod_bbauth: cannot check an access token: %s", v->errmsg);
    if (v->result == BB_CHECK_ADDRESS_LIMITED) {
        apr_table_setn(r->err_headers_out, "Retry-After", apr_psprintf(r->pool, "%" APR_INT64_T_FMT, v->retry_after));
    }
    else {
        bbauth_retry_after(r, conf);
    }
    return bb_tokencheck_http_status(v->result);
}

const char *bbauth_token_cache_key(request_rec *r, const bbauth_server_conf *conf, const char *token)
{
    bb_tokencache_t tc = token_cache_of(conf);
    return token ? bb_tokencache_key(r->pool, &tc, token) : NULL;
}

int bbauth_token_authenticate(request_rec *r, const bbauth_server_conf *conf, const bb_user_t **owner,
                              const char **token)
{
    const char *header = apr_table_get(r->headers_in, "Authorization");
    bb_tokencache_t tc = token_cache_of(conf);
    bb_tokencache_entry_t *entry = NULL;
    bb_credential_t *cred = NULL;
    bb_cred_status_t parsed;
    apr_int64_t now = bbauth_now();
    verdict_t v;

    if (!header) {
        return DECLINED;
    }
    parsed = bb_credential_parse(r->pool, header, &cred);
    if (parsed != BB_CRED_OK) {
        bbauth_count(BB_M_TOKEN_MALFORMED);
        return refused(r, bb_credential_reason(parsed));
    }
    *token = cred->token;
    switch (bb_tokencache_lookup(r->pool, &tc, cred->token, now, &entry)) {
    case BB_TOKENCACHE_HIT_VALID:
        if (bbauth_cut_off(r, conf, entry->user->name, entry->validated_at)) {
            break;    /* a verdict from before its owner was cut off: Bitbucket is asked again */
        }
        bbauth_count(entry->from_memo ? BB_M_TOKEN_MEMO_VALID : BB_M_TOKEN_CACHED_VALID);
        v = renewed(r, conf, &tc, cred->token, entry, now);
        return answer(r, conf, cred, &v, owner);
    case BB_TOKENCACHE_HIT_INVALID:
        bbauth_count(entry->from_memo ? BB_M_TOKEN_MEMO_REFUSED : BB_M_TOKEN_CACHED_REFUSED);
        return refused(r, "Bitbucket refused it recently (cached)");
    default:
        break;
    }
    if (!bb_tokencache_lookup_stale(r->pool, &tc, cred->token, now, &entry)) {
        entry = NULL;
    }
    v = validate_once(r, conf, &tc, cred->token, entry ? entry->user : NULL);
    stale_verdict(r, &tc, cred->token, &v);
    bbauth_count(outcome_metric(&v));
    return answer(r, conf, cred, &v, owner);
}
