/* bb_ratelimit: at most n events per key and minute on a host, counted in a bounded table of shared memory. */
#ifndef BB_RATELIMIT_H
#define BB_RATELIMIT_H

#include <apr_atomic.h>
#include <apr_time.h>

/* Keys a table counts at once, the slots one key may use, and the window (seconds) events are counted in. */
#define BB_RATELIMIT_SLOTS  1024
#define BB_RATELIMIT_WAYS   8
#define BB_RATELIMIT_WINDOW 60

/* One key's count. Written with apr atomics, without a lock: two new keys taking the same slot at the same instant
 * share its count for that window (each then gets fewer events, never more). */
typedef struct {
    volatile apr_uint64_t key;            /* bb_digest64 of the key; 0: free */
    volatile apr_uint64_t window;         /* the window's start (unix time) << 32 | events counted in it */
} bb_ratelimit_slot_t;

/* Made by the glue in a shared memory segment before the children are forked; zeroed: nothing counted. When every
 * slot a new key may use is taken, the one whose window started first gives way. */
typedef struct {
    bb_ratelimit_slot_t slots[BB_RATELIMIT_SLOTS];
} bb_ratelimit_t;

/* Counts one event of key (e.g. a client address) at unix time now: 1 when it is one of the first `limit` of its
 * window (limit 0, or a NULL table: always 1), else 0 with *retry_after set to the seconds until the window ends
 * (at least 1); an event refused is not counted. */
int bb_ratelimit_take(bb_ratelimit_t *table, const char *key, apr_uint32_t limit, apr_int64_t now,
                      apr_int64_t *retry_after);

#endif
