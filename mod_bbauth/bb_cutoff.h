/* bb_cutoff: a user's "not before" time in the shared cache (an admin cut them off), read through a per-process memo. */
#ifndef BB_CUTOFF_H
#define BB_CUTOFF_H

#include <apr_pools.h>
#include "bb_cache.h"
#include "bb_memo.h"

/* What this process last read of the integration's latest cut-off (of anyone), as apr atomics: while it says "none"
 * (the usual case) a request's check costs two atomic reads, no memo lookup. */
typedef struct {
    volatile apr_uint32_t checked_until;   /* unix time until which `latest` is believed */
    volatile apr_uint32_t latest;          /* the latest "not before" of any user still kept; 0: none */
} bb_cutoff_gate_t;

/* One integration's cut-off records: named by bb_cache_name in `space`, authenticated with `key`. */
typedef struct {
    const bb_cache_t *cache;
    const char *space;             /* the integration: Bitbucket URL and client id */
    const bb_key_t *key;           /* authenticates the records: only the admin action of this integration writes */
    bb_memo_t *memo;               /* this process's memo by user name, or NULL: every question reads the cache */
    bb_cutoff_gate_t *gate;        /* this process's (zeroed at first), or NULL: every question looks per user */
    apr_int64_t recheck;           /* seconds this process believes what it read: how late a cut-off made on
                                    * another host (or process) is seen here at worst */
} bb_cutoff_t;

/* The user's "not before" (unix time: what was issued to them before it is void), 0 when they were never cut off
 * (or the record expired, or the cache cannot be read: the callers' other shared-cache checks fail closed). While
 * the gate says that nobody is cut off, nothing more is asked; else from the memo while younger than co->recheck,
 * else one cache lookup. The gate itself is read from the cache once per co->recheck seconds. */
apr_int64_t bb_cutoff_not_before(apr_pool_t *p, const bb_cutoff_t *co, const char *user, apr_int64_t now);

/* 1 when something issued to user at unix time issued_at (a session's login, a token verdict) is void. */
int bb_cutoff_voids(apr_pool_t *p, const bb_cutoff_t *co, const char *user, apr_int64_t issued_at, apr_int64_t now);

/* Cuts user off: everything issued to them before now + 1 (the whole current second, which a session's or a
 * verdict's whole-second time cannot place before or after the action) is void on every host, the record kept
 * until keep_until (the longest a session or verdict lives); the integration's "latest cut-off" record (the gates')
 * is written after it, with the same lifetime. Seen at once by this process. *not_before is set to the time
 * written. What the cache's store returns (APR_EINVAL without a cache, a usable key or a user). */
apr_status_t bb_cutoff_set(apr_pool_t *p, const bb_cutoff_t *co, const char *user, apr_int64_t now,
                           apr_int64_t keep_until, apr_int64_t *not_before);

#endif
