/* bb_flight: one question to Bitbucket at a time per key in a process: concurrent askers wait for the first's answer. */
#include <string.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_general.h>
#include "bb_flight.h"

/* A mark holds random bytes of its writer's; the writer reads it back after MARK_SETTLE to know it won. */
#define MARK_LEN    8
#define MARK_SETTLE apr_time_from_msec(10)

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

/* Reads the mark's value into found: what the cache's retrieve says. */
static apr_status_t read_mark(apr_pool_t *p, const bb_cache_t *cache, const char *mark,
                              unsigned char found[MARK_LEN], unsigned int *len)
{
    *len = MARK_LEN;
    return cache->retrieve(cache->baton, (const unsigned char *)mark, (unsigned int)strlen(mark), found, len, p);
}

apr_status_t bb_flight_mark(apr_pool_t *p, const bb_cache_t *cache, const char *mark, apr_int64_t expiry)
{
    unsigned char mine[MARK_LEN], found[MARK_LEN];
    unsigned int len;
    apr_status_t rv;

    if (cache == NULL || mark == NULL) {
        return APR_EINVAL;
    }
    rv = read_mark(p, cache, mark, found, &len);
    if (rv != APR_NOTFOUND) {
        return rv == APR_SUCCESS ? APR_EEXIST : rv;     /* another's mark, or a cache that cannot tell */
    }
    if ((rv = apr_generate_random_bytes(mine, sizeof(mine))) != APR_SUCCESS
        || (rv = cache->store(cache->baton, (const unsigned char *)mark, (unsigned int)strlen(mark),
                              apr_time_from_sec(expiry), mine, sizeof(mine), p)) != APR_SUCCESS) {
        return rv;
    }
    /* Askers of a herd arrive together and may all have found no mark: the last one stored wins, the others see
     * its value once their own writes have settled, and wait. */
    apr_sleep(MARK_SETTLE);
    rv = read_mark(p, cache, mark, found, &len);
    if (rv == APR_SUCCESS && len == sizeof(mine) && memcmp(found, mine, sizeof(mine)) == 0) {
        return APR_SUCCESS;
    }
    return rv == APR_SUCCESS || rv == APR_NOTFOUND ? APR_EEXIST : rv;
}

int bb_flight_marked(apr_pool_t *p, const bb_cache_t *cache, const char *mark)
{
    unsigned char found[MARK_LEN];
    unsigned int len;

    return cache != NULL && mark != NULL && read_mark(p, cache, mark, found, &len) == APR_SUCCESS;
}

void bb_flight_unmark(apr_pool_t *p, const bb_cache_t *cache, const char *mark)
{
    if (cache != NULL && mark != NULL) {
        cache->remove(cache->baton, (const unsigned char *)mark, (unsigned int)strlen(mark), p);
    }
}
