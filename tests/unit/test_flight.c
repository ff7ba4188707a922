/* test_flight: single-flight per process (lead, wait, land, busy, bounds) and the in-progress marks in the cache. */
#include "unit.h"
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <apr_atomic.h>
#include <apr_thread_proc.h>
#include "bb_flight.h"
#include "fake_cache.h"

#define NOW 1700000000

static void test_first_leads_then_the_key_is_free_again(void **state)
{
    bb_flights_t *flights = bb_flights_create(*state);
    bb_flight_t lead, other;
    int outcome = 99;

    assert_non_null(flights);
    assert_int_equal(bb_flight_join(flights, "tok:a", 0, &lead, &outcome), BB_FLIGHT_LEAD);
    assert_true(lead.slot >= 0);
    assert_int_equal(outcome, BB_FLIGHT_UNKNOWN);
    /* The same key is busy (no wait asked), another key leads on its own. */
    assert_int_equal(bb_flight_join(flights, "tok:a", 0, &other, &outcome), BB_FLIGHT_BUSY);
    assert_int_equal(bb_flight_join(flights, "tok:b", 0, &other, &outcome), BB_FLIGHT_LEAD);
    bb_flight_land(flights, &lead, 3);
    assert_int_equal(bb_flight_join(flights, "tok:a", 0, &lead, &outcome), BB_FLIGHT_LEAD);
}

static void test_a_waiter_times_out_while_the_leader_is_still_asking(void **state)
{
    bb_flights_t *flights = bb_flights_create(*state);
    bb_flight_t lead, waiter;
    int outcome;

    assert_int_equal(bb_flight_join(flights, "tok:a", 0, &lead, &outcome), BB_FLIGHT_LEAD);
    assert_int_equal(bb_flight_join(flights, "tok:a", apr_time_from_msec(20), &waiter, &outcome), BB_FLIGHT_BUSY);
    assert_int_equal(waiter.slot, -1);
}

typedef struct {
    bb_flights_t *flights;
    bb_flight_role_t role;
    int outcome;
    volatile apr_uint32_t tid;    /* the thread's Linux id, once it is about to join */
} waiter_t;

static void *APR_THREAD_FUNC wait_for_a(apr_thread_t *thread, void *baton)
{
    waiter_t *w = baton;
    bb_flight_t flight;

    apr_atomic_set32(&w->tid, (apr_uint32_t)syscall(SYS_gettid));
    w->role = bb_flight_join(w->flights, "tok:a", apr_time_from_sec(10), &flight, &w->outcome);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* Whether the thread is asleep (state S in /proc: blocked, here in the wait for the leader's landing). */
static int asleep(apr_uint32_t tid)
{
    char path[64], stat[256], *state;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/self/task/%u/stat", (unsigned)tid);
    if ((f = fopen(path, "r")) == NULL) {
        return 0;
    }
    n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    state = strrchr(stat, ')');      /* "pid (comm) S ...": the name may hold spaces and parentheses */
    return state != NULL && state[1] == ' ' && state[2] == 'S';
}

/* Waits (at most 10 s) until every waiter has joined and sleeps in its wait: a condition, not a guess of how long
 * starting threads takes on a loaded machine. */
static void until_all_wait(waiter_t *waiters, int count)
{
    apr_time_t deadline = apr_time_now() + apr_time_from_sec(10);
    int i, waiting = 0;

    while (waiting < count && apr_time_now() < deadline) {
        for (i = 0, waiting = 0; i < count; i++) {
            apr_uint32_t tid = apr_atomic_read32(&waiters[i].tid);
            waiting += tid != 0 && asleep(tid);
        }
        if (waiting < count) {
            apr_sleep(apr_time_from_msec(1));
        }
    }
    assert_int_equal(waiting, count);
}

static void test_waiters_wake_with_the_leaders_outcome(void **state)
{
    apr_pool_t *p = *state;
    bb_flights_t *flights = bb_flights_create(p);
    waiter_t waiters[4];
    apr_thread_t *threads[4];
    bb_flight_t lead;
    apr_status_t rv;
    int i, outcome;

    assert_int_equal(bb_flight_join(flights, "tok:a", 0, &lead, &outcome), BB_FLIGHT_LEAD);
    memset(waiters, 0, sizeof(waiters));
    for (i = 0; i < 4; i++) {
        waiters[i].flights = flights;
        waiters[i].role = BB_FLIGHT_LEAD;
        assert_int_equal(apr_thread_create(&threads[i], NULL, wait_for_a, &waiters[i], p), APR_SUCCESS);
    }
    until_all_wait(waiters, 4);
    bb_flight_land(flights, &lead, 7);
    for (i = 0; i < 4; i++) {
        assert_int_equal(apr_thread_join(&rv, threads[i]), APR_SUCCESS);
        assert_int_equal(waiters[i].role, BB_FLIGHT_LANDED);
        assert_int_equal(waiters[i].outcome, 7);
    }
}

/* A waiter that wakes only after a new leader took the slot for the same key still gets its own leader's answer. */
static void test_a_late_waiter_gets_its_leaders_outcome(void **state)
{
    apr_pool_t *p = *state;
    bb_flights_t *flights = bb_flights_create(p);
    waiter_t waiter = { flights, BB_FLIGHT_LEAD, 0, 0 };
    apr_thread_t *thread;
    bb_flight_t lead, next;
    apr_status_t rv;
    int outcome;

    assert_int_equal(bb_flight_join(flights, "tok:a", 0, &lead, &outcome), BB_FLIGHT_LEAD);
    assert_int_equal(apr_thread_create(&thread, NULL, wait_for_a, &waiter, p), APR_SUCCESS);
    until_all_wait(&waiter, 1);
    bb_flight_land(flights, &lead, 5);
    /* Racing the waiter's wake-up: a new question about tok:a takes the freed slot at once. */
    assert_int_not_equal(bb_flight_join(flights, "tok:a", 0, &next, &outcome), BB_FLIGHT_LANDED);
    assert_int_equal(apr_thread_join(&rv, thread), APR_SUCCESS);
    assert_int_equal(waiter.role, BB_FLIGHT_LANDED);
    assert_int_equal(waiter.outcome, 5);
}

static void test_untracked_questions_still_lead(void **state)
{
    apr_pool_t *p = *state;
    bb_flights_t *flights = bb_flights_create(p);
    char long_key[BB_FLIGHT_MAX_KEY + 2];
    bb_flight_t flight;
    int i, outcome;

    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    assert_int_equal(bb_flight_join(NULL, "tok:a", 0, &flight, &outcome), BB_FLIGHT_LEAD);
    assert_int_equal(bb_flight_join(flights, NULL, 0, &flight, &outcome), BB_FLIGHT_LEAD);
    assert_int_equal(bb_flight_join(flights, long_key, 0, &flight, &outcome), BB_FLIGHT_LEAD);
    assert_int_equal(flight.slot, -1);
    bb_flight_land(flights, &flight, 1);   /* nothing to land */
    for (i = 0; i < BB_FLIGHT_SLOTS; i++) {
        assert_int_equal(bb_flight_join(flights, apr_psprintf(p, "tok:%d", i), 0, &flight, &outcome),
                         BB_FLIGHT_LEAD);
        assert_true(flight.slot >= 0);
    }
    /* A full table: the next question leads untracked, and twice the same such key both lead. */
    assert_int_equal(bb_flight_join(flights, "tok:full", 0, &flight, &outcome), BB_FLIGHT_LEAD);
    assert_int_equal(flight.slot, -1);
    assert_int_equal(bb_flight_join(flights, "tok:full", 0, &flight, &outcome), BB_FLIGHT_LEAD);
}

static void test_a_landing_for_a_reused_slot_is_not_taken_for_another(void **state)
{
    bb_flights_t *flights = bb_flights_create(*state);
    bb_flight_t first, second;
    int outcome;

    assert_int_equal(bb_flight_join(flights, "tok:a", 0, &first, &outcome), BB_FLIGHT_LEAD);
    bb_flight_land(flights, &first, 1);
    assert_int_equal(bb_flight_join(flights, "tok:b", 0, &second, &outcome), BB_FLIGHT_LEAD);
    bb_flight_land(flights, &first, 2);    /* a stale landing: tok:b is still being asked */
    assert_int_equal(bb_flight_join(flights, "tok:b", 0, &first, &outcome), BB_FLIGHT_BUSY);
}

static void test_marks_in_the_shared_cache(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;   /* marks need no key: only its cache is used */
    fake_cache_t *fc = &kc.fc;
    bb_cache_t *cache = &kc.cache;

    keyed_cache_init(&kc, p, NOW, 1);
    assert_false(bb_flight_marked(p, cache, "a:flight"));
    assert_int_equal(bb_flight_mark(p, cache, "a:flight", NOW + 5), APR_SUCCESS);
    assert_true(bb_flight_marked(p, cache, "a:flight"));
    assert_false(bb_flight_marked(p, cache, "b:flight"));
    assert_int_equal(bb_flight_mark(p, cache, "a:flight", NOW + 5), APR_EEXIST);
    bb_flight_unmark(p, cache, "a:flight");
    assert_false(bb_flight_marked(p, cache, "a:flight"));
    /* A mark left by a crashed asker lapses. */
    assert_int_equal(bb_flight_mark(p, cache, "a:flight", NOW + 5), APR_SUCCESS);
    fc->now = apr_time_from_sec(NOW + 5);
    assert_false(bb_flight_marked(p, cache, "a:flight"));
    /* A cache that cannot tell is not a mark of ours; no cache or no key at all is never marked. */
    fc->retrieve_fails_with = APR_EGENERAL;
    assert_int_equal(bb_flight_mark(p, cache, "c:flight", NOW + 10), APR_EGENERAL);
    assert_false(bb_flight_marked(p, NULL, "a:flight"));
    assert_int_equal(bb_flight_mark(p, NULL, "a:flight", NOW + 10), APR_EINVAL);
    assert_int_equal(bb_flight_mark(p, cache, NULL, NOW + 10), APR_EINVAL);
    bb_flight_unmark(p, NULL, "a:flight");
    bb_flight_unmark(p, cache, NULL);
}

/* A store after which another asker's mark lands at once, as when a herd arrives at two processes together. */
static apr_status_t store_then_overtaken(void *baton, const unsigned char *key, unsigned int keylen,
                                        apr_time_t expiry, const unsigned char *value, unsigned int vallen,
                                        apr_pool_t *p)
{
    static const unsigned char theirs[8] = "theirs!";

    fake_store(baton, key, keylen, expiry, value, vallen, p);
    return fake_store(baton, key, keylen, expiry, theirs, sizeof(theirs), p);
}

static void test_of_two_marks_written_together_the_last_wins(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;

    keyed_cache_init(&kc, p, NOW, 1);
    kc.cache.store = store_then_overtaken;
    assert_int_equal(bb_flight_mark(p, &kc.cache, "a:flight", NOW + 5), APR_EEXIST);
    assert_true(bb_flight_marked(p, &kc.cache, "a:flight"));
    /* Where nobody overtakes, the mark read back is ours. */
    kc.cache.store = fake_store;
    assert_int_equal(bb_flight_mark(p, &kc.cache, "b:flight", NOW + 5), APR_SUCCESS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_first_leads_then_the_key_is_free_again),
        UNIT_TEST(test_a_waiter_times_out_while_the_leader_is_still_asking),
        UNIT_TEST(test_waiters_wake_with_the_leaders_outcome),
        UNIT_TEST(test_a_late_waiter_gets_its_leaders_outcome),
        UNIT_TEST(test_untracked_questions_still_lead),
        UNIT_TEST(test_a_landing_for_a_reused_slot_is_not_taken_for_another),
        UNIT_TEST(test_marks_in_the_shared_cache),
        UNIT_TEST(test_of_two_marks_written_together_the_last_wins),
    };

    return UNIT_RUN("flight", tests);
}
