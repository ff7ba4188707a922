/* bb_cutoff: reads and writes a user's "not before" record in the shared cache, remembered per process. */
#include <stdio.h>
#include <string.h>
#include <apr_atomic.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include "bb_cutoff.h"

#define CUTOFF_NS  "cutoff"
/* Longest text of a record: the unix time. */
#define CUTOFF_MAX 20
/* The id of the integration's "latest cut-off of anyone" record: no user name has a newline (bbauth-admin refuses
 * control characters). */
#define ANYONE     "\n*"

/* Bitbucket user names are case-insensitive (Alice and alice are one account): records and memo go by lower case. */
static const char *account_of(apr_pool_t *p, const char *user)
{
    const char *c;
    char *lower, *l;

    for (c = user; *c && !apr_isupper(*c); c++) {
    }
    if (!*c) {
        return user;    /* the usual case, on every request: no copy */
    }
    lower = apr_pstrdup(p, user);
    for (l = lower; *l; l++) {
        *l = (char)apr_tolower(*l);
    }
    return lower;
}

static void remember(const bb_cutoff_t *co, const char *user, apr_int64_t now, apr_int64_t not_before)
{
    bb_memo_value_t v;

    memset(&v, 0, sizeof(v));
    v.n[0] = not_before;
    bb_memo_put(co->memo, user, strlen(user), now + co->recheck, &v);
}

/* The record's time, or 0 when there is none that this integration wrote. */
static apr_int64_t read_record(apr_pool_t *p, const bb_cutoff_t *co, const char *user)
{
    const char *key = bb_cache_name(p, co->space, CUTOFF_NS, user);
    const char *text;
    apr_size_t len = 0;
    apr_int64_t not_before;
    int end = 0;

    text = key && co->cache ? (const char *)bb_cache_retrieve_authentic(p, co->cache, co->key, key, CUTOFF_MAX, &len)
                            : NULL;
    if (text == NULL || sscanf(text, "%" APR_INT64_T_FMT "%n", &not_before, &end) != 1 || (apr_size_t)end != len
        || not_before < 0) {
        return 0;
    }
    return not_before;
}

/* Whether anyone may be cut off, as far as this process knows (reading the cache once per recheck period). The
 * latest time is set before the time it holds until: a thread that sees the new period sees its value too. */
static int anyone_cut_off(apr_pool_t *p, const bb_cutoff_t *co, apr_int64_t now)
{
    apr_int64_t latest;

    if (co->gate == NULL) {
        return 1;
    }
    if (now < (apr_int64_t)apr_atomic_read32(&co->gate->checked_until)) {
        return apr_atomic_read32(&co->gate->latest) != 0;
    }
    latest = read_record(p, co, ANYONE);
    apr_atomic_set32(&co->gate->latest, (apr_uint32_t)latest);
    apr_atomic_set32(&co->gate->checked_until, (apr_uint32_t)(now + co->recheck));
    return latest != 0;
}

apr_int64_t bb_cutoff_not_before(apr_pool_t *p, const bb_cutoff_t *co, const char *user, apr_int64_t now)
{
    bb_memo_value_t v;
    apr_int64_t not_before;

    if (user == NULL || !anyone_cut_off(p, co, now)) {
        return 0;
    }
    user = account_of(p, user);
    if (bb_memo_get(co->memo, p, user, strlen(user), now, &v)) {
        return v.n[0];
    }
    not_before = read_record(p, co, user);
    remember(co, user, now, not_before);
    return not_before;
}

int bb_cutoff_voids(apr_pool_t *p, const bb_cutoff_t *co, const char *user, apr_int64_t issued_at, apr_int64_t now)
{
    return issued_at < bb_cutoff_not_before(p, co, user, now);
}

apr_status_t bb_cutoff_set(apr_pool_t *p, const bb_cutoff_t *co, const char *user, apr_int64_t now,
                           apr_int64_t keep_until, apr_int64_t *not_before)
{
    const char *account = user ? account_of(p, user) : NULL;
    const char *key = account ? bb_cache_name(p, co->space, CUTOFF_NS, account) : NULL;
    const char *anyone = bb_cache_name(p, co->space, CUTOFF_NS, ANYONE);
    const char *text;
    apr_status_t rv;

    *not_before = now + 1;
    if (key == NULL || anyone == NULL || co->cache == NULL) {
        return APR_EINVAL;
    }
    text = apr_psprintf(p, "%" APR_INT64_T_FMT, *not_before);
    if (keep_until < *not_before) {
        keep_until = *not_before;
    }
    /* The user's record first: a process that sees the gate's record finds the user's. */
    rv = bb_cache_store_authentic(p, co->cache, co->key, key, keep_until, text, strlen(text));
    if (rv == APR_SUCCESS) {
        rv = bb_cache_store_authentic(p, co->cache, co->key, anyone, keep_until, text, strlen(text));
    }
    if (rv == APR_SUCCESS) {
        remember(co, account, now, *not_before);
        if (co->gate) {
            apr_atomic_set32(&co->gate->latest, (apr_uint32_t)*not_before);
            apr_atomic_set32(&co->gate->checked_until, (apr_uint32_t)(now + co->recheck));
        }
    }
    return rv;
}
