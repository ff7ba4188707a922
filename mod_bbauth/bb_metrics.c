/* bb_metrics: a fixed table of counters and a Bitbucket latency histogram in a memory block all processes share, updated atomically, shown as Prometheus text or mod_status lines. */
#include <string.h>
#include <apr_atomic.h>
#include <apr_strings.h>
#include "bb_metrics.h"
#include "bb_bitbucket.h"
#include "bb_oauth1.h"
#include "bb_oauth2.h"

/* A cell is updated by many processes through shared memory: only lock-free atomics work there (a mutex-based
 * fallback would lock within one process only). 64-bit cells where the CPU has them, else APR's 32-bit ones. */
#if defined(__GCC_ATOMIC_LLONG_LOCK_FREE) && __GCC_ATOMIC_LLONG_LOCK_FREE == 2
typedef apr_uint64_t cell_t;
#define CELL_ADD(cell, n) ((void)__atomic_fetch_add((cell), (apr_uint64_t)(n), __ATOMIC_RELAXED))
#define CELL_READ(cell)   ((apr_uint64_t)__atomic_load_n((cell), __ATOMIC_RELAXED))
#else
typedef apr_uint32_t cell_t;  /* wraps at 2^32 */
#define CELL_ADD(cell, n) ((void)apr_atomic_add32((cell), (apr_uint32_t)(n)))
#define CELL_READ(cell)   ((apr_uint64_t)apr_atomic_read32((volatile apr_uint32_t *)(cell)))
#endif

/* Tells a block laid out by this code from one of another version (graceful restart into a new module). */
#define LAYOUT_MAGIC 0x62626d6574726963ULL   /* "bbmetric" */

struct bb_metrics_t {
    apr_uint64_t magic;
    apr_uint64_t size;                                    /* sizeof(bb_metrics_t) when laid out */
    cell_t counters[BB_M_COUNT];
    cell_t calls[BB_CALL_KINDS][BB_CALL_OUTCOMES];
    cell_t buckets[BB_CALL_KINDS][BB_METRICS_BUCKETS + 1]; /* per bucket, not cumulative; the last is +Inf */
    cell_t sum_us[BB_CALL_KINDS];                         /* microseconds */
};

typedef struct {
    const char *family;
    const char *labels;
} counter_t;

#define BB_METRICS_ROW(id, family, labels) { family, labels },
static const counter_t counters[BB_M_COUNT] = { BB_METRICS_COUNTERS(BB_METRICS_ROW) };
#undef BB_METRICS_ROW

typedef struct {
    const char *family;
    const char *help;
} family_t;

static const family_t families[] = {
    { "logins_started_total", "Logins sent to Bitbucket's authorize page." },
    { "logins_completed_total", "Logins that ended with a session cookie." },
    { "logins_failed_total", "Logins that ended without a session, by cause." },
    { "sessions_refused_total", "Session cookies refused, by reason." },
    { "token_verdicts_total", "HTTP access tokens checked (BBAuthTokenAuth), by outcome." },
    { "require_decisions_total", "Require bitbucket-repo/-project/-group decisions, by source and decision." },
    { "cache_operations_total", "Operations on the shared cache (BBAuthCache), by result." },
    { "logouts_total", "Sessions ended by the logout handler." },
};

static const char *const kind_names[BB_CALL_KINDS] = {
    "oauth2_token", "oauth2_revoke", "oauth1_token", "whoami", "user", "group", "permission", "other"
};
static const char *const outcome_names[BB_CALL_OUTCOMES] = {
    "ok", "redirect", "refused", "client_error", "server_error", "unavailable", "too_large"
};
static const apr_interval_time_t bucket_bounds_us[BB_METRICS_BUCKETS] = {
    5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000
};
static const char *const bucket_labels[BB_METRICS_BUCKETS] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"
};

#define CALLS_HELP    "Requests sent to Bitbucket, by endpoint and outcome."
#define DURATION_HELP "Time Bitbucket took to answer (or to fail), by endpoint."

apr_size_t bb_metrics_size(void)
{
    return sizeof(bb_metrics_t);
}

bb_metrics_t *bb_metrics_init(void *mem, apr_size_t size)
{
    bb_metrics_t *m = mem;

    if (!mem || size < sizeof(*m)) {
        return NULL;
    }
    memset(m, 0, sizeof(*m));
    m->magic = LAYOUT_MAGIC;
    m->size = sizeof(*m);
    return m;
}

bb_metrics_t *bb_metrics_attach(void *mem, apr_size_t size)
{
    bb_metrics_t *m = mem;

    if (!mem || size < sizeof(*m) || m->magic != LAYOUT_MAGIC || m->size != sizeof(*m)) {
        return NULL;
    }
    return m;
}

void bb_metrics_inc(bb_metrics_t *m, bb_metric_id id)
{
    if ((unsigned)id < BB_M_COUNT) {
        CELL_ADD(&m->counters[id], 1);
    }
}

apr_uint64_t bb_metrics_value(const bb_metrics_t *m, bb_metric_id id)
{
    return (unsigned)id < BB_M_COUNT ? CELL_READ(&m->counters[id]) : 0;
}

/* The first bucket whose bound is at least elapsed (Prometheus' le), BB_METRICS_BUCKETS for +Inf. */
static int bucket_of(apr_interval_time_t elapsed)
{
    int i = 0;

    while (i < BB_METRICS_BUCKETS && elapsed > bucket_bounds_us[i]) {
        i++;
    }
    return i;
}

void bb_metrics_observe_call(bb_metrics_t *m, bb_call_kind kind, bb_call_outcome outcome,
                             apr_interval_time_t elapsed)
{
    if ((unsigned)kind >= BB_CALL_KINDS || (unsigned)outcome >= BB_CALL_OUTCOMES) {
        return;
    }
    elapsed = elapsed > 0 ? elapsed : 0;   /* the clock may step back */
    CELL_ADD(&m->calls[kind][outcome], 1);
    CELL_ADD(&m->buckets[kind][bucket_of(elapsed)], 1);
    CELL_ADD(&m->sum_us[kind], elapsed);
}

apr_uint64_t bb_metrics_calls(const bb_metrics_t *m, bb_call_kind kind, bb_call_outcome outcome)
{
    return (unsigned)kind < BB_CALL_KINDS && (unsigned)outcome < BB_CALL_OUTCOMES
           ? CELL_READ(&m->calls[kind][outcome]) : 0;
}

bb_call_kind bb_metrics_call_kind(const char *url)
{
    /* Only the path counts: a query (a user name, for one) never names the kind. Path segments that come from
     * requests (project and repository keys) are percent-encoded, so they cannot hold a '/' that would match. */
    static const struct { const char *path; bb_call_kind kind; } paths[] = {
        { BB_OAUTH2_TOKEN_PATH, BB_CALL_OAUTH2_TOKEN },
        { BB_OAUTH2_REVOKE_PATH, BB_CALL_OAUTH2_REVOKE },
        { BB_OAUTH1_REQUEST_TOKEN_PATH, BB_CALL_OAUTH1_TOKEN },
        { BB_OAUTH1_ACCESS_TOKEN_PATH, BB_CALL_OAUTH1_TOKEN },
        { BB_WHOAMI_PATH, BB_CALL_WHOAMI },
        { BB_GROUPS_OF_USER_PATH, BB_CALL_GROUP },
        { BB_USERS_PATH, BB_CALL_USER },
        { BB_PROJECTS_PATH, BB_CALL_PERMISSION },
    };
    const char *query = url ? strchr(url, '?') : NULL;
    apr_size_t len = url ? (query ? (apr_size_t)(query - url) : strlen(url)) : 0;
    apr_size_t i;

    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        const char *at = url ? strstr(url, paths[i].path) : NULL;
        if (at && (apr_size_t)(at - url) + strlen(paths[i].path) <= len) {
            return paths[i].kind;
        }
    }
    return BB_CALL_OTHER;
}

bb_call_outcome bb_metrics_call_outcome(bb_status_t status, int http_status)
{
    if (status == BB_UNAVAILABLE) {
        return BB_CALL_UNAVAILABLE;
    }
    if (status != BB_OK) {
        return BB_CALL_TOO_LARGE;       /* bb_http_request's only other failure */
    }
    if (http_status >= 200 && http_status < 300) {
        return BB_CALL_OK;
    }
    if (http_status >= 300 && http_status < 400) {
        return BB_CALL_REDIRECT;
    }
    if (http_status == 401 || http_status == 403) {
        return BB_CALL_REFUSED;
    }
    return http_status >= 400 && http_status < 500 ? BB_CALL_CLIENT_ERROR : BB_CALL_SERVER_ERROR;
}

bb_metric_id bb_metrics_login_failure(bb_status_t status, const char *errmsg)
{
    if (status == BB_OK) {
        return BB_M_COUNT;
    }
    if (bb_http_is_foreign_page(errmsg)) {
        return BB_M_LOGIN_FAILED_TWO_FACTOR;
    }
    switch (status) {
    case BB_DENIED:
    case BB_NOT_FOUND:
        return BB_M_LOGIN_FAILED_TOKEN_REFUSED;
    case BB_UNAVAILABLE:
        return BB_M_LOGIN_FAILED_UNAVAILABLE;
    default:
        return BB_M_LOGIN_FAILED_BAD_RESPONSE;
    }
}

bb_metric_id bb_metrics_session_refusal(bb_session_status_t status)
{
    switch (status) {
    case BB_SESSION_EXPIRED:
        return BB_M_SESSION_REFUSED_EXPIRED;
    case BB_SESSION_INVALID:
        return BB_M_SESSION_REFUSED_INVALID;
    default:
        return BB_M_COUNT;
    }
}

bb_metric_id bb_metrics_cache_result(bb_cache_op op, apr_status_t rv)
{
    static const bb_metric_id results[][3] = {   /* ok, miss, error */
        { BB_M_CACHE_STORE_OK, BB_M_CACHE_STORE_ERROR, BB_M_CACHE_STORE_ERROR },
        { BB_M_CACHE_RETRIEVE_HIT, BB_M_CACHE_RETRIEVE_MISS, BB_M_CACHE_RETRIEVE_ERROR },
        { BB_M_CACHE_REMOVE_OK, BB_M_CACHE_REMOVE_MISS, BB_M_CACHE_REMOVE_ERROR },
    };
    if ((unsigned)op > BB_CACHE_OP_REMOVE) {
        return BB_M_COUNT;
    }
    return results[op][rv == APR_SUCCESS ? 0 : rv == APR_NOTFOUND ? 1 : 2];
}

static const char *help_of(const char *family)
{
    apr_size_t i;

    for (i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        if (!strcmp(families[i].family, family)) {
            return families[i].help;
        }
    }
    return "";
}

/* "name" or "name{labels}", with an extra label (NULL: none) appended. */
static const char *sample(apr_pool_t *p, const char *name, const char *labels, const char *extra)
{
    const char *sep = *labels && extra ? "," : "";

    if (!*labels && !extra) {
        return apr_pstrcat(p, "bbauth_", name, NULL);
    }
    return apr_pstrcat(p, "bbauth_", name, "{", labels, sep, extra ? extra : "", "}", NULL);
}

static void push(apr_array_header_t *out, const char *text)
{
    APR_ARRAY_PUSH(out, const char *) = text;
}

static void header(apr_pool_t *p, apr_array_header_t *out, const char *name, const char *type, const char *help)
{
    push(out, apr_psprintf(p, "# HELP bbauth_%s %s\n# TYPE bbauth_%s %s\n", name, help, name, type));
}

static const char *seconds(apr_pool_t *p, apr_uint64_t us)
{
    return apr_psprintf(p, "%" APR_UINT64_T_FMT ".%06" APR_UINT64_T_FMT, us / 1000000, us % 1000000);
}

static void render_counters(apr_pool_t *p, apr_array_header_t *out, const bb_metrics_t *m)
{
    int i;

    for (i = 0; i < BB_M_COUNT; i++) {
        const char *family = counters[i].family;
        if (i == 0 || strcmp(family, counters[i - 1].family)) {
            header(p, out, family, "counter", help_of(family));
        }
        push(out, apr_psprintf(p, "%s %" APR_UINT64_T_FMT "\n", sample(p, family, counters[i].labels, NULL),
                               CELL_READ(&m->counters[i])));
    }
}

static const char *endpoint_label(apr_pool_t *p, int kind)
{
    return apr_pstrcat(p, "endpoint=\"", kind_names[kind], "\"", NULL);
}

static void render_calls(apr_pool_t *p, apr_array_header_t *out, const bb_metrics_t *m)
{
    int kind, outcome;

    header(p, out, "bitbucket_calls_total", "counter", CALLS_HELP);
    for (kind = 0; kind < BB_CALL_KINDS; kind++) {
        for (outcome = 0; outcome < BB_CALL_OUTCOMES; outcome++) {
            const char *extra = apr_pstrcat(p, "outcome=\"", outcome_names[outcome], "\"", NULL);
            push(out, apr_psprintf(p, "%s %" APR_UINT64_T_FMT "\n",
                                   sample(p, "bitbucket_calls_total", endpoint_label(p, kind), extra),
                                   CELL_READ(&m->calls[kind][outcome])));
        }
    }
}

static apr_uint64_t call_count(const bb_metrics_t *m, int kind)
{
    apr_uint64_t count = 0;
    int b;

    for (b = 0; b <= BB_METRICS_BUCKETS; b++) {
        count += CELL_READ(&m->buckets[kind][b]);
    }
    return count;
}

static void render_histogram(apr_pool_t *p, apr_array_header_t *out, const bb_metrics_t *m)
{
    int kind, b;

    header(p, out, "bitbucket_call_duration_seconds", "histogram", DURATION_HELP);
    for (kind = 0; kind < BB_CALL_KINDS; kind++) {
        const char *labels = endpoint_label(p, kind);
        apr_uint64_t cumulative = 0;
        for (b = 0; b <= BB_METRICS_BUCKETS; b++) {
            const char *le = b < BB_METRICS_BUCKETS ? bucket_labels[b] : "+Inf";
            cumulative += CELL_READ(&m->buckets[kind][b]);
            push(out, apr_psprintf(p, "%s %" APR_UINT64_T_FMT "\n",
                                   sample(p, "bitbucket_call_duration_seconds_bucket", labels,
                                          apr_pstrcat(p, "le=\"", le, "\"", NULL)), cumulative));
        }
        /* _count is the +Inf bucket, read above: the two always agree, even while other processes count. */
        push(out, apr_psprintf(p, "%s %s\n", sample(p, "bitbucket_call_duration_seconds_sum", labels, NULL),
                               seconds(p, CELL_READ(&m->sum_us[kind]))));
        push(out, apr_psprintf(p, "%s %" APR_UINT64_T_FMT "\n",
                               sample(p, "bitbucket_call_duration_seconds_count", labels, NULL), cumulative));
    }
}

char *bb_metrics_prometheus(apr_pool_t *p, const bb_metrics_t *m)
{
    apr_array_header_t *out = apr_array_make(p, 256, sizeof(const char *));

    render_counters(p, out, m);
    render_calls(p, out, m);
    render_histogram(p, out, m);
    return apr_array_pstrcat(p, out, 0);
}

/* A label value of the text format: backslash, double quote and line feed escaped. */
static const char *label_value(apr_pool_t *p, const char *value)
{
    char *out = apr_palloc(p, 2 * strlen(value) + 1), *o = out;

    for (; *value; value++) {
        if (*value == '\\' || *value == '"' || *value == '\n') {
            *o++ = '\\';
        }
        *o++ = *value == '\n' ? 'n' : *value;
    }
    *o = '\0';
    return out;
}

char *bb_metrics_build_info(apr_pool_t *p, const char *version)
{
    apr_array_header_t *out = apr_array_make(p, 2, sizeof(const char *));
    const char *labels = apr_pstrcat(p, "version=\"", label_value(p, version), "\"", NULL);

    header(p, out, "build_info", "gauge", "The version of mod_bbauth that answers (always 1).");
    push(out, apr_pstrcat(p, sample(p, "build_info", labels, NULL), " 1\n", NULL));
    return apr_array_pstrcat(p, out, 0);
}

static void add_line(apr_array_header_t *lines, const char *key, const char *value)
{
    bb_metrics_line_t *line = &APR_ARRAY_PUSH(lines, bb_metrics_line_t);

    line->key = key;
    line->value = value;
}

apr_array_header_t *bb_metrics_status_lines(apr_pool_t *p, const bb_metrics_t *m)
{
    apr_array_header_t *lines = apr_array_make(p, BB_M_COUNT + 2 * BB_CALL_KINDS, sizeof(bb_metrics_line_t));
    int i;

    for (i = 0; i < BB_M_COUNT; i++) {
        add_line(lines, sample(p, counters[i].family, counters[i].labels, NULL),
                 apr_psprintf(p, "%" APR_UINT64_T_FMT, CELL_READ(&m->counters[i])));
    }
    for (i = 0; i < BB_CALL_KINDS; i++) {
        const char *labels = endpoint_label(p, i);
        add_line(lines, sample(p, "bitbucket_call_duration_seconds_count", labels, NULL),
                 apr_psprintf(p, "%" APR_UINT64_T_FMT, call_count(m, i)));
        add_line(lines, sample(p, "bitbucket_call_duration_seconds_sum", labels, NULL),
                 seconds(p, CELL_READ(&m->sum_us[i])));
    }
    return lines;
}
