/* bb_metrics: a fixed table of counters and a Bitbucket latency histogram in a memory block all processes share, updated atomically, shown as Prometheus text or mod_status lines. */
#ifndef BB_METRICS_H
#define BB_METRICS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include "bb_util.h"
#include "bb_session.h"

/* Every counter: its id, its family (the exposed name without the bbauth_ prefix) and its labels. The rows of one
 * family are adjacent; a label value never comes from a request (no user name, token, address or URL). */
#define BB_METRICS_COUNTERS(X) \
    X(LOGIN_STARTED,               "logins_started_total",     "") \
    X(LOGIN_COMPLETED,             "logins_completed_total",   "") \
    X(LOGIN_FAILED_STATE_EXPIRED,  "logins_failed_total",      "cause=\"state_expired\"") \
    X(LOGIN_FAILED_STATE_REPLAYED, "logins_failed_total",      "cause=\"state_replayed\"") \
    X(LOGIN_FAILED_BAD_ANSWER,     "logins_failed_total",      "cause=\"bad_answer\"") \
    X(LOGIN_FAILED_ACCESS_DENIED,  "logins_failed_total",      "cause=\"access_denied\"") \
    X(LOGIN_FAILED_AUTHORIZE_ERROR,"logins_failed_total",      "cause=\"authorize_error\"") \
    X(LOGIN_FAILED_TOKEN_REFUSED,  "logins_failed_total",      "cause=\"token_refused\"") \
    X(LOGIN_FAILED_UNAVAILABLE,    "logins_failed_total",      "cause=\"bitbucket_unavailable\"") \
    X(LOGIN_FAILED_BAD_RESPONSE,   "logins_failed_total",      "cause=\"bad_response\"") \
    X(LOGIN_FAILED_TWO_FACTOR,     "logins_failed_total",      "cause=\"two_factor_page\"") \
    X(LOGIN_FAILED_DEACTIVATED,    "logins_failed_total",      "cause=\"user_deactivated\"") \
    X(LOGIN_FAILED_CACHE_ERROR,    "logins_failed_total",      "cause=\"cache_error\"") \
    X(SESSION_REFUSED_EXPIRED,     "sessions_refused_total",   "reason=\"expired\"") \
    X(SESSION_REFUSED_INVALID,     "sessions_refused_total",   "reason=\"bad_signature\"") \
    X(SESSION_REFUSED_LOGGED_OUT,  "sessions_refused_total",   "reason=\"logged_out\"") \
    X(SESSION_REFUSED_REVALIDATION,"sessions_refused_total",   "reason=\"revalidation_ended\"") \
    X(SESSION_REFUSED_NO_GRANT,    "sessions_refused_total",   "reason=\"grant_missing\"") \
    X(SESSION_REFUSED_CACHE_ERROR, "sessions_refused_total",   "reason=\"cache_error\"") \
    X(SESSION_REFUSED_CACHE_EMPTIED,"sessions_refused_total",  "reason=\"cache_emptied\"") \
    X(TOKEN_MEMO_VALID,            "token_verdicts_total",     "outcome=\"memo_hit_valid\"") \
    X(TOKEN_MEMO_REFUSED,          "token_verdicts_total",     "outcome=\"memo_hit_refused\"") \
    X(TOKEN_CACHED_VALID,          "token_verdicts_total",     "outcome=\"cache_hit_valid\"") \
    X(TOKEN_CACHED_REFUSED,        "token_verdicts_total",     "outcome=\"cache_hit_refused\"") \
    X(TOKEN_VALID,                 "token_verdicts_total",     "outcome=\"valid\"") \
    X(TOKEN_REFUSED,               "token_verdicts_total",     "outcome=\"refused\"") \
    X(TOKEN_UNAVAILABLE,           "token_verdicts_total",     "outcome=\"unavailable\"") \
    X(TOKEN_MALFORMED,             "token_verdicts_total",     "outcome=\"malformed\"") \
    X(TOKEN_RATE_LIMITED,          "token_verdicts_total",     "outcome=\"rate_limited\"") \
    X(TOKEN_ADDRESS_LIMITED,       "token_verdicts_total",     "outcome=\"address_limited\"") \
    X(REQUIRE_CACHED_GRANTED,      "require_decisions_total",  "source=\"cache\",decision=\"granted\"") \
    X(REQUIRE_CACHED_DENIED,       "require_decisions_total",  "source=\"cache\",decision=\"denied\"") \
    X(REQUIRE_ASKED_GRANTED,       "require_decisions_total",  "source=\"bitbucket\",decision=\"granted\"") \
    X(REQUIRE_ASKED_DENIED,        "require_decisions_total",  "source=\"bitbucket\",decision=\"denied\"") \
    X(REQUIRE_UNAVAILABLE,         "require_decisions_total",  "source=\"bitbucket\",decision=\"unavailable\"") \
    X(CACHE_STORE_OK,              "cache_operations_total",   "op=\"store\",result=\"ok\"") \
    X(CACHE_STORE_ERROR,           "cache_operations_total",   "op=\"store\",result=\"error\"") \
    X(CACHE_RETRIEVE_HIT,          "cache_operations_total",   "op=\"retrieve\",result=\"hit\"") \
    X(CACHE_RETRIEVE_MISS,         "cache_operations_total",   "op=\"retrieve\",result=\"miss\"") \
    X(CACHE_RETRIEVE_ERROR,        "cache_operations_total",   "op=\"retrieve\",result=\"error\"") \
    X(CACHE_REMOVE_OK,             "cache_operations_total",   "op=\"remove\",result=\"ok\"") \
    X(CACHE_REMOVE_MISS,           "cache_operations_total",   "op=\"remove\",result=\"miss\"") \
    X(CACHE_REMOVE_ERROR,          "cache_operations_total",   "op=\"remove\",result=\"error\"") \
    X(LOGOUT,                      "logouts_total",            "")

#define BB_METRICS_ID(id, family, labels) BB_M_##id,
typedef enum {
    BB_METRICS_COUNTERS(BB_METRICS_ID)
    BB_M_COUNT
} bb_metric_id;
#undef BB_METRICS_ID

/* What a Bitbucket call was for, from its URL's path. */
typedef enum {
    BB_CALL_OAUTH2_TOKEN = 0,   /* code exchange and refresh */
    BB_CALL_OAUTH2_REVOKE,
    BB_CALL_OAUTH1_TOKEN,       /* request and access tokens */
    BB_CALL_WHOAMI,
    BB_CALL_USER,
    BB_CALL_GROUP,
    BB_CALL_PERMISSION,         /* project and repository reads */
    BB_CALL_OTHER,
    BB_CALL_KINDS
} bb_call_kind;

/* How a Bitbucket call ended. */
typedef enum {
    BB_CALL_OK = 0,             /* 2xx */
    BB_CALL_REDIRECT,           /* 3xx */
    BB_CALL_REFUSED,            /* 401, 403 */
    BB_CALL_CLIENT_ERROR,       /* any other 4xx */
    BB_CALL_SERVER_ERROR,       /* 5xx (and anything stranger) */
    BB_CALL_UNAVAILABLE,        /* no answer: DNS, connect, TLS, timeout */
    BB_CALL_TOO_LARGE,          /* an answer over the size caps */
    BB_CALL_OUTCOMES
} bb_call_outcome;

/* Upper bounds (seconds) of the latency buckets; +Inf comes after them. */
#define BB_METRICS_BUCKETS 11

typedef struct bb_metrics_t bb_metrics_t;

/* Bytes of the memory block the table lives in. */
apr_size_t bb_metrics_size(void);
/* Lays the table out in mem (size bytes, at least bb_metrics_size(), aligned for 64-bit words), all zero. */
bb_metrics_t *bb_metrics_init(void *mem, apr_size_t size);
/* The table bb_metrics_init laid out in mem before (another generation of the configuration), or NULL when mem
 * holds no table of this layout (a module of another version made it): the caller makes a new one. */
bb_metrics_t *bb_metrics_attach(void *mem, apr_size_t size);

/* Counts one event; any process may call it at any time (one atomic add). Counters are 64-bit where the CPU
 * has lock-free 64-bit atomics, else 32-bit and wrap at 2^32, which Prometheus' rate() reads as a reset. */
void bb_metrics_inc(bb_metrics_t *m, bb_metric_id id);
/* The counter's current value. */
apr_uint64_t bb_metrics_value(const bb_metrics_t *m, bb_metric_id id);

/* Counts one call to Bitbucket: its kind and outcome, and its duration in the histogram of its kind. */
void bb_metrics_observe_call(bb_metrics_t *m, bb_call_kind kind, bb_call_outcome outcome,
                             apr_interval_time_t elapsed);
/* Calls of a kind that ended so. */
apr_uint64_t bb_metrics_calls(const bb_metrics_t *m, bb_call_kind kind, bb_call_outcome outcome);

/* The kind of call from its URL's path (after any context path; the query is not read). */
bb_call_kind bb_metrics_call_kind(const char *url);
/* The outcome of a bb_http_request: its status and, for BB_OK, the answer's HTTP status. */
bb_call_outcome bb_metrics_call_outcome(bb_status_t status, int http_status);
/* The cause a failed login step is counted under: a page or redirect where data was wanted (bb_http's two-factor
 * hint in errmsg) before the status itself. BB_OK is not a failure: BB_M_COUNT. */
bb_metric_id bb_metrics_login_failure(bb_status_t status, const char *errmsg);
/* The counter of a refused session cookie's decoding status; BB_SESSION_VALID: BB_M_COUNT. */
bb_metric_id bb_metrics_session_refusal(bb_session_status_t status);

/* The operations of the shared cache. */
typedef enum { BB_CACHE_OP_STORE, BB_CACHE_OP_RETRIEVE, BB_CACHE_OP_REMOVE } bb_cache_op;
/* The counter of a cache operation's result: APR_SUCCESS, APR_NOTFOUND (a miss) or an error. */
bb_metric_id bb_metrics_cache_result(bb_cache_op op, apr_status_t rv);

/* The Prometheus text exposition format 0.0.4: HELP and TYPE for every family, names prefixed bbauth_. */
char *bb_metrics_prometheus(apr_pool_t *p, const bb_metrics_t *m);
/* The bbauth_build_info gauge (always 1) whose version label says which module answers, in the same format. */
char *bb_metrics_build_info(apr_pool_t *p, const char *version);

/* One "key: value" line of the mod_status section. */
typedef struct {
    const char *key;            /* the sample's Prometheus name with its labels */
    const char *value;
} bb_metrics_line_t;
/* The counters and each kind's call count and total seconds, as bb_metrics_line_t, for mod_status. */
apr_array_header_t *bb_metrics_status_lines(apr_pool_t *p, const bb_metrics_t *m);

#endif
