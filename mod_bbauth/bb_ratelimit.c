/* bb_ratelimit: at most n events per key and minute on a host, counted in a bounded table of shared memory. */
#include "bb_ratelimit.h"
#include "bb_util.h"

static apr_int64_t start_of(apr_uint64_t window)
{
    return (apr_int64_t)(window >> 32);
}

/* The key's slot: its own, else a free one or the one whose window started first (an ended window first of all). */
static bb_ratelimit_slot_t *slot_for(bb_ratelimit_t *table, apr_uint64_t digest, apr_int64_t now)
{
    bb_ratelimit_slot_t *oldest = NULL;
    apr_int64_t oldest_start = 0;
    int way;

    for (way = 0; way < BB_RATELIMIT_WAYS; way++) {
        bb_ratelimit_slot_t *slot = &table->slots[(digest + (apr_uint64_t)way) % BB_RATELIMIT_SLOTS];
        apr_int64_t start = start_of(apr_atomic_read64(&slot->window));

        if (apr_atomic_read64(&slot->key) == digest) {
            return slot;
        }
        if (oldest == NULL || start < oldest_start) {
            oldest = slot;
            oldest_start = start;
        }
    }
    apr_atomic_set64(&oldest->key, digest);
    apr_atomic_set64(&oldest->window, (apr_uint64_t)now << 32);
    return oldest;
}

int bb_ratelimit_take(bb_ratelimit_t *table, const char *key, apr_uint32_t limit, apr_int64_t now,
                      apr_int64_t *retry_after)
{
    bb_ratelimit_slot_t *slot;
    apr_uint64_t seen, next;

    *retry_after = 0;
    if (table == NULL || limit == 0) {
        return 1;
    }
    slot = slot_for(table, bb_digest64(key), now);
    do {
        seen = apr_atomic_read64(&slot->window);
        if (start_of(seen) + BB_RATELIMIT_WINDOW <= now) {
            next = ((apr_uint64_t)now << 32) | 1;           /* a new window */
        }
        else if ((seen & 0xffffffffu) >= limit) {
            *retry_after = start_of(seen) + BB_RATELIMIT_WINDOW - now;
            return 0;
        }
        else {
            next = seen + 1;
        }
    } while (apr_atomic_cas64(&slot->window, next, seen) != seen);
    return 1;
}
