/* mod_bbauth_breaker.c: limits of calls to Bitbucket, 429 holds and the circuit breaker, shared by a host's processes. */
#include <apr_shm.h>
#include <apr_strings.h>
#include <http_protocol.h>

#include "mod_bbauth.h"

static void log_state(void *baton, const char *line)
{
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, (server_rec *)baton, "mod_bbauth: %s", line);
    bbauth_audit_circuit((server_rec *)baton, line);
}

/* An earlier server's breaker for the same Bitbucket and settings, or NULL. */
static bb_breaker_t *breaker_like(server_rec *s, server_rec *upto, const bbauth_server_conf *conf)
{
    for (; s != upto; s = s->next) {
        const bbauth_server_conf *other = ap_get_module_config(s->module_config, &bbauth_module);

        if (other->http.breaker && !strcmp(other->bitbucket_url, conf->bitbucket_url)
            && other->max_calls == conf->max_calls && other->circuit_failures == conf->circuit_failures
            && other->circuit_cooldown == conf->circuit_cooldown) {
            return other->http.breaker;
        }
    }
    return NULL;
}

/* One anonymous segment (mapped before the fork, so every child shares it; made again at each restart) with a
 * state per server: apr atomics on shared memory are cheaper than a socache round trip on every call, and the
 * breaker only needs to be shared within a host (each host sees Bitbucket from where it stands). */
/* The host's tables, made at each start before the children are forked (NULL when no shared memory could be made:
 * the limit is not applied, or each process checks a new token for itself): anonymous checks per client address
 * (BBAuthAnonymousChecksPerMinute), and token checks in progress. */
static bb_ratelimit_t *anonymous_checks;
static bb_hostflights_t *token_hostflights;

/* A zeroed anonymous shared memory segment of pconf, or NULL (logged: `without` says what then). */
static void *shared_zeroed(apr_pool_t *pconf, server_rec *s, apr_size_t size, const char *without)
{
    apr_shm_t *shm = NULL;
    apr_status_t rv = apr_shm_create(&shm, size, NULL, pconf);
    void *base;

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, "mod_bbauth: cannot make a shared memory segment: %s", without);
        return NULL;
    }
    base = apr_shm_baseaddr_get(shm);
    memset(base, 0, size);
    return base;
}

bb_hostflights_t *bbauth_token_hostflights(void)
{
    return token_hostflights;
}

int bbauth_anonymous_check_allowed(request_rec *r, const bbauth_server_conf *conf, apr_int64_t *retry_after)
{
    return bb_ratelimit_take(anonymous_checks, r->useragent_ip, (apr_uint32_t)conf->anonymous_checks, bbauth_now(),
                             retry_after);
}

apr_status_t bbauth_breaker_post_config(apr_pool_t *pconf, server_rec *s)
{
    bb_breaker_state_t *states;
    apr_size_t count = 0, i = 0;
    server_rec *v;

    anonymous_checks = shared_zeroed(pconf, s, sizeof(*anonymous_checks), "BBAuthAnonymousChecksPerMinute is not "
                                     "applied");
    token_hostflights = shared_zeroed(pconf, s, sizeof(*token_hostflights), "each process checks a new access "
                                      "token at Bitbucket for itself");
    for (v = s; v; v = v->next) {
        count++;
    }
    states = shared_zeroed(pconf, s, count * sizeof(*states), "no circuit breaker nor 429 holds, each call to "
                           "Bitbucket is only limited per process (BBAuthBitbucketMaxCalls)");
    for (v = s; v; v = v->next, i++) {
        bbauth_server_conf *conf = ap_get_module_config(v->module_config, &bbauth_module);

        if (conf->bitbucket_url == NULL) {
            continue;
        }
        conf->http.breaker = breaker_like(s, v, conf);
        if (conf->http.breaker == NULL) {
            conf->http.breaker = bb_breaker_create(pconf, states ? &states[i] : NULL, conf->bitbucket_url,
                                                   (apr_uint32_t)conf->circuit_failures,
                                                   (apr_uint32_t)conf->circuit_cooldown,
                                                   (apr_uint32_t)conf->max_calls);
            conf->http.breaker->notify = log_state;
            conf->http.breaker->baton = v;
        }
    }
    return APR_SUCCESS;
}

/* The request's holder (bbauth_http_for), for its Retry-After. */
#define HOLDER_NOTE "bbauth-holder"

const bb_http_opts_t *bbauth_http_for(request_rec *r, const bbauth_server_conf *conf, const char *user)
{
    bb_http_opts_t *opts = apr_pmemdup(r->pool, &conf->http, sizeof(conf->http));

    if (!strcmp(user, BB_HOLDER_ANONYMOUS)) {
        opts->holder = BB_HOLDER_ANONYMOUS;
    }
    else {
        opts->holder = bb_cache_key(r->pool, conf->session_state.key, "hold", user, strlen(user));
        if (opts->holder == NULL) {     /* no key long enough to name cache entries: the name itself */
            opts->holder = apr_pstrcat(r->pool, "user ", user, NULL);
        }
    }
    apr_table_setn(r->notes, HOLDER_NOTE, opts->holder);
    return opts;
}

void bbauth_retry_after(request_rec *r, const bbauth_server_conf *conf)
{
    apr_int64_t seconds = bb_breaker_retry_after(conf->http.breaker, apr_table_get(r->notes, HOLDER_NOTE),
                                                 bbauth_now());

    apr_table_setn(r->err_headers_out, "Retry-After",
                   apr_psprintf(r->pool, "%" APR_INT64_T_FMT, seconds > 0 ? seconds : 1));
}
