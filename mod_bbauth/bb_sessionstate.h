/* bb_sessionstate: what every host must agree on about a browser session (ended? checked at Bitbucket lately? its grant), in the shared cache with a per-process memo in front. */
#ifndef BB_SESSIONSTATE_H
#define BB_SESSIONSTATE_H

#include <apr_pools.h>
#include "bb_cache.h"
#include "bb_grant.h"
#include "bb_memo.h"
#include "bb_seal.h"

/* One integration's session state. Every entry is named by bb_cache_name in `space`, so integrations never share. */
typedef struct {
    const bb_cache_t *cache;
    const char *space;                 /* the integration: Bitbucket URL and client id (names the entries) */
    const bb_key_t *key;               /* the integration's cache key: authenticates revalidation marks */
    const bb_sealer_t *sealer;         /* seals grants */
    bb_memo_t *memo;                   /* this process's memo by session id, or NULL: every question reads the cache */
    volatile apr_uint32_t *host_ends;  /* a count, shared by the processes of this host, of the sessions ended here
                                        * (NULL: none): a change voids every process's memo of "not ended" at once */
    apr_int64_t recheck;               /* seconds this process believes the cache's "not ended" (and "has a grant"):
                                        * how late a logout on another host is seen here at worst */
} bb_sessionstate_t;

typedef enum {
    BB_SESSION_LIVE = 0,               /* not ended */
    BB_SESSION_ENDED,                  /* logged out (or ended by revalidation) on some host */
    BB_SESSION_UNKNOWN,                /* the cache cannot say: refuse (fail closed) */
    BB_SESSION_UNVERIFIED              /* the cache was emptied since the session began: its logout mark may be
                                        * lost, so the session must be made again (a quiet login) */
} bb_session_liveness_t;

/* Whether the session that began (logged in) at `began` was ended, at unix time now: from the memo while its
 * answer is younger than ss->recheck (and no session ended on this host since), else from the cache: its ended
 * mark and, when there is none, the cache's epoch (bb_sessionstate_epoch): "not found" only counts as "not ended"
 * when the cache can be seen and was not emptied since the session began. *checked (unless NULL) tells what
 * bb_sessionstate_checked would from this process's memo alone, in the same lookup: 1 when the session is known
 * to have been checked at Bitbucket until later than now, 0 when it is not known (ask bb_sessionstate_checked). */
bb_session_liveness_t bb_sessionstate_liveness(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid,
                                               apr_int64_t began, apr_int64_t now, int *checked);

/* The cache's epoch for this integration: the unix time at which its canary entry was written into a cache that
 * did not have it (first start, or the cache was emptied: a restart of memcached, a reload with shmcb). A cache
 * that answers "not found" for everything (mod_socache_memcache and _redis once they marked the server dead) has
 * no canary either, and cannot keep one: the canary is written and read back, and APR_SUCCESS with *epoch set only
 * when that works; otherwise the cache's error (blind: fail closed). The canary is rewritten (same epoch) once a
 * minute at most, so a cache that evicts its oldest entries first keeps it. */
apr_status_t bb_sessionstate_epoch(apr_pool_t *p, const bb_sessionstate_t *ss, apr_int64_t now, apr_int64_t *epoch);

/* Ends the session on every host until `until` (the session's own end, auth_time + max age, so that no copy of its
 * cookie, refreshed or not, outlives the mark) and forgets its grant. Seen at once by every process of this host,
 * within ss->recheck seconds by the others. What the cache's store of the mark returns. */
apr_status_t bb_sessionstate_end(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid, apr_int64_t now,
                                 apr_int64_t until);

/* 1 when the session was checked at Bitbucket (on any host) and that check holds until later than now. */
int bb_sessionstate_checked(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid, apr_int64_t now);

/* Records that Bitbucket accepted the session's grant, a check that holds until `until`. */
apr_status_t bb_sessionstate_mark_checked(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid,
                                          apr_int64_t now, apr_int64_t until);

/* Keeps the session's grant (sealed) until `until`. What bb_grant_store returns. */
apr_status_t bb_sessionstate_save_grant(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid,
                                        const bb_grant_t *grant, apr_int64_t now, apr_int64_t until);

/* The session's grant, or NULL when none is kept (never saved, forgotten, evicted or unreadable). */
bb_grant_t *bb_sessionstate_load_grant(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid, apr_int64_t now);

/* 1 when a grant is kept for the session: the memo's answer while younger than ss->recheck, else a load. */
int bb_sessionstate_has_grant(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid, apr_int64_t now);

void bb_sessionstate_forget_grant(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid);

#endif
