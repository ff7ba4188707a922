/* bb_flight: one question to Bitbucket at a time per key in a process: concurrent askers wait for the first's answer. */
#include <string.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include "bb_flight.h"

/* The namespace of the in-progress marks in the shared cache. */
#define MARK_NS "flight"

typedef struct {
    char key[BB_FLIGHT_MAX_KEY + 1];
    int busy;
    apr_uint64_t generation;      /* bumped each time the slot is taken, so a waiter knows its own question */
    apr_uint64_t landed;          /* the generation of the last leader that landed here, and its answer: kept */
    int outcome;                  /* while the slot is taken again, so late-waking waiters still find it */
} slot_t;

struct bb_flights_t {
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *landed;    /* broadcast at every landing; waiters check their slot */
    apr_uint64_t generations;
    slot_t slots[BB_FLIGHT_SLOTS];
};

bb_flights_t *bb_flights_create(apr_pool_t *p)
{
#if APR_HAS_THREADS
    bb_flights_t *flights = apr_pcalloc(p, sizeof(*flights));

    if (apr_thread_mutex_create(&flights->mutex, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS
        || apr_thread_cond_create(&flights->landed, p) != APR_SUCCESS) {
        return NULL;
    }
    return flights;
#else
    return NULL;
#endif
}

static slot_t *slot_asking(bb_flights_t *flights, const char *key)
{
    int i;

    for (i = 0; i < BB_FLIGHT_SLOTS; i++) {
        if (flights->slots[i].busy && strcmp(flights->slots[i].key, key) == 0) {
            return &flights->slots[i];
        }
    }
    return NULL;
}

/* Takes a free slot for key (the mutex held); the flight stays untracked when there is none. */
static void take_slot(bb_flights_t *flights, const char *key, bb_flight_t *flight)
{
    int i;

    for (i = 0; i < BB_FLIGHT_SLOTS; i++) {
        slot_t *s = &flights->slots[i];

        if (!s->busy) {
            s->busy = 1;
            s->generation = ++flights->generations;
            strcpy(s->key, key);
            flight->slot = i;
            flight->generation = s->generation;
            return;
        }
    }
}

/* Waits (the mutex held) until slot s no longer carries `generation`, or the deadline passes. */
static bb_flight_role_t wait_for(bb_flights_t *flights, slot_t *s, apr_uint64_t generation, apr_time_t deadline,
                                 int *outcome)
{
    while (s->busy && s->generation == generation) {
        apr_time_t now = apr_time_now();

        if (now >= deadline) {
            return BB_FLIGHT_BUSY;
        }
        apr_thread_cond_timedwait(flights->landed, flights->mutex, deadline - now);
    }
    *outcome = s->landed == generation ? s->outcome : BB_FLIGHT_UNKNOWN;
    return BB_FLIGHT_LANDED;
}

bb_flight_role_t bb_flight_join(bb_flights_t *flights, const char *key, apr_interval_time_t wait,
                                bb_flight_t *flight, int *outcome)
{
    bb_flight_role_t role = BB_FLIGHT_LEAD;
    slot_t *s;

    flight->slot = -1;
    flight->generation = 0;
    *outcome = BB_FLIGHT_UNKNOWN;
    if (flights == NULL || key == NULL || strlen(key) > BB_FLIGHT_MAX_KEY
        || apr_thread_mutex_lock(flights->mutex) != APR_SUCCESS) {
        return BB_FLIGHT_LEAD;
    }
    s = slot_asking(flights, key);
    if (s == NULL) {
        take_slot(flights, key, flight);
    }
    else if (wait <= 0) {
        role = BB_FLIGHT_BUSY;
    }
    else {
        role = wait_for(flights, s, s->generation, apr_time_now() + wait, outcome);
    }
    apr_thread_mutex_unlock(flights->mutex);
    return role;
}

void bb_flight_land(bb_flights_t *flights, const bb_flight_t *flight, int outcome)
{
    slot_t *s;

    if (flights == NULL || flight->slot < 0 || flight->slot >= BB_FLIGHT_SLOTS
        || apr_thread_mutex_lock(flights->mutex) != APR_SUCCESS) {
        return;
    }
    s = &flights->slots[flight->slot];
    if (s->busy && s->generation == flight->generation) {
        s->busy = 0;
        s->landed = flight->generation;
        s->outcome = outcome;
        apr_thread_cond_broadcast(flights->landed);
    }
    apr_thread_mutex_unlock(flights->mutex);
}

apr_status_t bb_flight_mark(apr_pool_t *p, const bb_cache_t *cache, const char *key, apr_int64_t expiry)
{
    return bb_cache_use_once(cache, MARK_NS, key, apr_time_from_sec(expiry), p);
}

int bb_flight_marked(apr_pool_t *p, const bb_cache_t *cache, const char *key)
{
    const char *mark = cache ? bb_cache_key(p, MARK_NS, key) : NULL;
    unsigned char found[16];
    unsigned int found_len = sizeof(found);

    return mark != NULL && cache->retrieve(cache->baton, (const unsigned char *)mark, (unsigned int)strlen(mark),
                                           found, &found_len, p) == APR_SUCCESS;
}

void bb_flight_unmark(apr_pool_t *p, const bb_cache_t *cache, const char *key)
{
    const char *mark = cache ? bb_cache_key(p, MARK_NS, key) : NULL;

    if (mark) {
        cache->remove(cache->baton, (const unsigned char *)mark, (unsigned int)strlen(mark), p);
    }
}
