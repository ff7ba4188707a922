/* bb_hostflight: one question to Bitbucket at a time per key on a host, in a table of shared memory. */
#include "bb_hostflight.h"
#include "bb_util.h"

/* The outcome of a question still asked. */
#define PENDING 0x7fffffffu
/* How often a waiter looks at the slot again. */
#define POLL apr_time_from_msec(10)
/* Tries at taking a slot another process is taking at the same instant. */
#define CLAIM_TRIES 4

static apr_uint64_t state_of(apr_int64_t until, apr_uint32_t outcome)
{
    return ((apr_uint64_t)until << 32) | outcome;
}

static apr_int64_t until_of(apr_uint64_t state)
{
    return (apr_int64_t)(state >> 32);
}

static apr_uint32_t outcome_of(apr_uint64_t state)
{
    return (apr_uint32_t)(state & 0xffffffffu);
}

static bb_hostflight_slot_t *way(bb_hostflights_t *table, apr_uint64_t key, int i)
{
    return &table->slots[(key + (apr_uint64_t)i) % BB_HOSTFLIGHT_SLOTS];
}

/* The key's slot, or one taken for it (a free or ended one); NULL when every slot of the key is in use. */
static bb_hostflight_slot_t *slot_for(bb_hostflights_t *table, apr_uint64_t key, apr_int64_t now)
{
    int i;

    for (i = 0; i < BB_HOSTFLIGHT_WAYS; i++) {
        if (apr_atomic_read64(&way(table, key, i)->key) == key) {
            return way(table, key, i);
        }
    }
    for (i = 0; i < BB_HOSTFLIGHT_WAYS; i++) {
        bb_hostflight_slot_t *slot = way(table, key, i);
        apr_uint64_t old = apr_atomic_read64(&slot->key);

        if (until_of(apr_atomic_read64(&slot->state)) <= now && apr_atomic_cas64(&slot->key, key, old) == old) {
            return slot;
        }
    }
    return NULL;
}

/* Waits (polling) until the question in slot lands, its key changes or `wait` runs out. */
static bb_hostflight_role_t wait_for(bb_hostflight_slot_t *slot, apr_uint64_t key, apr_interval_time_t wait,
                                     int *outcome)
{
    apr_time_t deadline = apr_time_now() + wait;

    do {
        apr_uint64_t state = apr_atomic_read64(&slot->state);

        if (apr_atomic_read64(&slot->key) != key) {
            break;                                  /* taken for another question: the answer is gone */
        }
        if (outcome_of(state) != PENDING) {
            *outcome = (int)outcome_of(state);
            return BB_HOSTFLIGHT_LANDED;
        }
        apr_sleep(POLL);
    } while (apr_time_now() < deadline);
    return BB_HOSTFLIGHT_BUSY;
}

bb_hostflight_role_t bb_hostflight_join(bb_hostflights_t *table, const char *key, apr_int64_t now,
                                        apr_int64_t expires, apr_interval_time_t wait, bb_hostflight_t *flight,
                                        int *outcome)
{
    int tries;

    flight->slot = NULL;
    flight->key = bb_digest64(key);
    for (tries = 0; table != NULL && key != NULL && tries < CLAIM_TRIES; tries++) {
        bb_hostflight_slot_t *slot = slot_for(table, flight->key, now);
        apr_uint64_t seen;

        if (slot == NULL) {
            break;
        }
        seen = apr_atomic_read64(&slot->state);
        if (until_of(seen) > now) {
            if (outcome_of(seen) != PENDING) {
                *outcome = (int)outcome_of(seen);
                return BB_HOSTFLIGHT_LANDED;
            }
            return wait_for(slot, flight->key, wait, outcome);
        }
        if (apr_atomic_cas64(&slot->state, state_of(now + expires, PENDING), seen) == seen) {
            flight->slot = slot;
            return BB_HOSTFLIGHT_LEAD;
        }
    }
    return BB_HOSTFLIGHT_LEAD;                      /* untracked */
}

void bb_hostflight_land(const bb_hostflight_t *flight, int outcome, apr_int64_t now)
{
    if (flight->slot != NULL && apr_atomic_read64(&flight->slot->key) == flight->key) {
        apr_atomic_set64(&flight->slot->state, state_of(now + BB_HOSTFLIGHT_KEEP, (apr_uint32_t)outcome));
    }
}
