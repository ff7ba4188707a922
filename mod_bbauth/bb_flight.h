/* bb_flight: one question to Bitbucket at a time per key in a process: concurrent askers wait for the first's answer. */
#ifndef BB_FLIGHT_H
#define BB_FLIGHT_H

#include <apr_pools.h>
#include <apr_time.h>
#include "bb_cache.h"

/* Questions a process tracks at once (more simply go unshared), and the longest key tracked. */
#define BB_FLIGHT_SLOTS   64
#define BB_FLIGHT_MAX_KEY 128

/* What the first asker's answer was, for those who waited: the caller's own codes (e.g. a bb_status_t), or
 * BB_FLIGHT_UNKNOWN when its slot was taken by another question before the waiter looked. */
#define BB_FLIGHT_UNKNOWN (-1)

typedef struct bb_flights_t bb_flights_t;

/* A question being asked (filled by bb_flight_join for its leader). */
typedef struct {
    int slot;                     /* -1: not tracked (table full, key too long, no table) */
    apr_uint64_t generation;
} bb_flight_t;

typedef enum {
    BB_FLIGHT_LEAD = 0,           /* nobody is asking: the caller asks, then calls bb_flight_land */
    BB_FLIGHT_LANDED,             /* another asker finished while the caller waited; *outcome is its answer */
    BB_FLIGHT_BUSY                /* another asker is still at it after `wait` */
} bb_flight_role_t;

/* A table for the threads of one process (made in pool p, e.g. at configuration, copied by each child at fork).
 * NULL without threads or when no mutex could be made: every caller then leads. */
bb_flights_t *bb_flights_create(apr_pool_t *p);

/* Joins the question `key`: leads it when nobody else is asking (NULL table or key: leads, untracked), else waits
 * up to `wait` (0: not at all) for the leader to land. */
bb_flight_role_t bb_flight_join(bb_flights_t *flights, const char *key, apr_interval_time_t wait,
                                bb_flight_t *flight, int *outcome);

/* The leader is done: its waiters wake with `outcome`; the key can be asked again. Nothing for an untracked one. */
void bb_flight_land(bb_flights_t *flights, const bb_flight_t *flight, int outcome);

/* Across processes and hosts, through the shared cache: marks, under the cache key `mark` (the caller's, e.g.
 * bb_cache_key(..., "flight", id)), that this server is asking until expiry (unix seconds): APR_SUCCESS when the mark
 * is now ours, APR_EEXIST when another asker's is there, another error when the cache cannot tell. socache has no
 * atomic add: the mark holds the writer's random bytes, read back after 10 ms, so of askers arriving together the
 * last writer wins and the others see its mark (two may still both win when one's write takes longer than that,
 * which only costs a second call). A mark is a write to the
 * shared cache: only mark questions about what Bitbucket confirmed before, never what any client may send. */
apr_status_t bb_flight_mark(apr_pool_t *p, const bb_cache_t *cache, const char *mark, apr_int64_t expiry);

/* 1 while someone's mark is in the cache (NULL cache or mark: 0). */
int bb_flight_marked(apr_pool_t *p, const bb_cache_t *cache, const char *mark);

/* Removes our mark once the answer is stored. */
void bb_flight_unmark(apr_pool_t *p, const bb_cache_t *cache, const char *mark);

#endif
