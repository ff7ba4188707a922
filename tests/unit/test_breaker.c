/* test_breaker: the per-process call limits, 429 holds per holder, the circuit (opening, cool-down, probe), Retry-After. */
#include "unit.h"
#include <apr_date.h>
#include "bb_breaker.h"

#define NOW 1700000000

typedef struct {
    int lines;
    char last[512];
} log_t;

static void remember(void *baton, const char *line)
{
    log_t *log = baton;

    log->lines++;
    apr_cpystrn(log->last, line, sizeof(log->last));
}

static bb_breaker_t *breaker(apr_pool_t *p, bb_breaker_state_t *state, log_t *log, apr_uint32_t max_calls)
{
    bb_breaker_t *b = bb_breaker_create(p, state, "https://bitbucket.example.com", 3, 30, max_calls);

    memset(state, 0, sizeof(*state));
    memset(log, 0, sizeof(*log));
    b->notify = remember;
    b->baton = log;
    return b;
}

/* One call at now with this outcome. */
static void call(bb_breaker_t *b, apr_int64_t now, bb_call_outcome_t outcome)
{
    apr_int64_t retry;
    bb_breaker_admit_t admit = bb_breaker_enter(b, NULL, now, &retry);

    assert_true(admit == BB_BREAKER_GO || admit == BB_BREAKER_PROBE);
    bb_breaker_leave(b, NULL, admit, outcome, now, 0);
}

static void test_calls_in_flight_are_limited_per_process(void **state)
{
    bb_breaker_state_t st;
    log_t log;
    bb_breaker_t *b = breaker(*state, &st, &log, 2);
    apr_int64_t retry;

    assert_int_equal(bb_breaker_enter(b, NULL, NOW, &retry), BB_BREAKER_GO);
    assert_int_equal(bb_breaker_enter(b, NULL, NOW, &retry), BB_BREAKER_GO);
    assert_int_equal(bb_breaker_enter(b, NULL, NOW, &retry), BB_BREAKER_FULL);
    assert_int_equal(retry, 1);
    bb_breaker_leave(b, NULL, BB_BREAKER_GO, BB_CALL_ANSWERED, NOW, 0);
    assert_int_equal(bb_breaker_enter(b, NULL, NOW, &retry), BB_BREAKER_GO);
    /* A refused call is never left; no limit at 0; no breaker at all always goes. */
    bb_breaker_leave(b, NULL, BB_BREAKER_FULL, BB_CALL_FAILED, NOW, 0);
    assert_int_equal(b->in_flight, 2);
    b->max_calls = 0;
    assert_int_equal(bb_breaker_enter(b, NULL, NOW, &retry), BB_BREAKER_GO);
    assert_int_equal(bb_breaker_enter(NULL, NULL, NOW, &retry), BB_BREAKER_GO);
    bb_breaker_leave(NULL, NULL, BB_BREAKER_GO, BB_CALL_FAILED, NOW, 0);
}

static void test_consecutive_failures_open_then_one_probe_decides(void **state)
{
    bb_breaker_state_t st;
    log_t log;
    bb_breaker_t *b = breaker(*state, &st, &log, 8);
    apr_int64_t retry;
    bb_breaker_admit_t probe;

    call(b, NOW, BB_CALL_FAILED);
    call(b, NOW, BB_CALL_FAILED);
    call(b, NOW, BB_CALL_ANSWERED);   /* an answer in between: the count starts again */
    call(b, NOW, BB_CALL_FAILED);
    call(b, NOW, BB_CALL_FAILED);
    assert_int_equal(log.lines, 0);
    call(b, NOW, BB_CALL_FAILED);
    assert_int_equal(log.lines, 1);
    assert_non_null(strstr(log.last, "circuit open until "));
    assert_non_null(strstr(log.last, "3 consecutive failed calls"));
    assert_int_equal(bb_breaker_enter(b, NULL, NOW + 10, &retry), BB_BREAKER_OPEN);
    assert_int_equal(retry, 20);
    assert_int_equal(bb_breaker_retry_after(b, NULL, NOW + 10), 20);
    /* After the cool-down one request probes; the others are still refused meanwhile. */
    probe = bb_breaker_enter(b, NULL, NOW + 30, &retry);
    assert_int_equal(probe, BB_BREAKER_PROBE);
    assert_int_equal(bb_breaker_enter(b, NULL, NOW + 30, &retry), BB_BREAKER_OPEN);
    assert_int_equal(retry, 1);
    bb_breaker_leave(b, NULL, probe, BB_CALL_FAILED, NOW + 31, 0);   /* reopened for another cool-down */
    assert_int_equal(log.lines, 2);
    assert_non_null(strstr(log.last, "the probe call failed"));
    assert_int_equal(bb_breaker_enter(b, NULL, NOW + 40, &retry), BB_BREAKER_OPEN);
    probe = bb_breaker_enter(b, NULL, NOW + 61, &retry);
    assert_int_equal(probe, BB_BREAKER_PROBE);
    bb_breaker_leave(b, NULL, probe, BB_CALL_ANSWERED, NOW + 61, 0);
    assert_non_null(strstr(log.last, "circuit closed"));
    assert_int_equal(bb_breaker_enter(b, NULL, NOW + 61, &retry), BB_BREAKER_GO);
    assert_int_equal(bb_breaker_retry_after(b, NULL, NOW + 61), 0);
}

/* A 429 holds back the holder it was for, for its Retry-After (or the cool-down); everyone else goes on. */
static void test_a_429_holds_back_only_its_holder(void **state)
{
    bb_breaker_state_t st;
    log_t log;
    bb_breaker_t *b = breaker(*state, &st, &log, 8);
    apr_int64_t retry;
    bb_breaker_admit_t admit = bb_breaker_enter(b, "bob", NOW, &retry);

    bb_breaker_leave(b, "bob", admit, BB_CALL_RATE_LIMITED, NOW, 90);
    assert_string_equal(log.last, "rate-limited by Bitbucket, retrying after 90 s for one user only "
                                  "(https://bitbucket.example.com answered 429)");
    assert_int_equal(bb_breaker_enter(b, "bob", NOW + 89, &retry), BB_BREAKER_HELD);
    assert_int_equal(retry, 1);
    assert_int_equal(bb_breaker_retry_after(b, "bob", NOW + 30), 60);
    assert_int_equal(bb_breaker_retry_after(b, "alice", NOW + 30), 0);
    call(b, NOW + 1, BB_CALL_ANSWERED);                                       /* the module's own calls */
    assert_int_equal(bb_breaker_enter(b, "alice", NOW + 1, &retry), BB_BREAKER_GO);
    assert_int_equal(bb_breaker_enter(b, BB_HOLDER_ANONYMOUS, NOW + 1, &retry), BB_BREAKER_GO);
    assert_int_equal(st.open_until, 0);
    assert_int_equal(bb_breaker_enter(b, "bob", NOW + 90, &retry), BB_BREAKER_GO);
}

static void test_a_429_without_retry_after_holds_for_the_cooldown(void **state)
{
    bb_breaker_state_t st;
    log_t log;
    bb_breaker_t *b = breaker(*state, &st, &log, 8);
    apr_int64_t retry;
    bb_breaker_admit_t admit = bb_breaker_enter(b, BB_HOLDER_ANONYMOUS, NOW, &retry);

    bb_breaker_leave(b, BB_HOLDER_ANONYMOUS, admit, BB_CALL_RATE_LIMITED, NOW, 0);
    assert_int_equal(bb_breaker_retry_after(b, BB_HOLDER_ANONYMOUS, NOW), 30);
    assert_int_equal(bb_breaker_retry_after(b, "bob", NOW), 0);
    assert_non_null(strstr(log.last, "for checks of credentials nobody confirmed (anonymous) only"));
}

/* 429s for many holders at once: Bitbucket limits the module as a whole, the circuit opens for the longest. */
static void test_429s_for_many_users_at_once_open_the_circuit(void **state)
{
    bb_breaker_state_t st;
    log_t log;
    bb_breaker_t *b = breaker(*state, &st, &log, 8);
    const char *users[] = { "u1", "u2", "u3" };
    apr_int64_t retry;
    int i;

    for (i = 0; i < 3; i++) {
        bb_breaker_admit_t admit = bb_breaker_enter(b, users[i], NOW, &retry);

        assert_int_equal(admit, BB_BREAKER_GO);
        bb_breaker_leave(b, users[i], admit, BB_CALL_RATE_LIMITED, NOW, 60 + i);
        assert_int_equal(st.open_until, i < 2 ? 0 : NOW + 62);
    }
    assert_non_null(strstr(log.last, "after 429s for 3 users at once"));
    assert_int_equal(bb_breaker_enter(b, "alice", NOW + 1, &retry), BB_BREAKER_OPEN);
    /* Ended holds no longer count; the same user again is one hold, not two. */
    memset(&st, 0, sizeof(st));
    for (i = 0; i < 3; i++) {
        apr_int64_t at = NOW + 100 * i;
        bb_breaker_admit_t admit = bb_breaker_enter(b, "u1", at, &retry);

        bb_breaker_leave(b, "u1", admit, BB_CALL_RATE_LIMITED, at, 60);
    }
    assert_int_equal(st.open_until, 0);
}

/* A flood of 429s for other holders can push a hold out (the one ending first), never grow the table. */
static void test_holds_are_bounded_and_the_first_to_end_gives_way(void **state)
{
    bb_breaker_state_t st;
    log_t log;
    bb_breaker_t *b = breaker(*state, &st, &log, 8);
    apr_int64_t retry;
    int i;

    b->threshold = 0;                           /* never opens: only the holds are looked at */
    for (i = 0; i < 3 * BB_BREAKER_HOLDS; i++) {
        const char *holder = apr_psprintf(*state, "user%d", i);
        bb_breaker_admit_t admit = bb_breaker_enter(b, holder, NOW, &retry);

        bb_breaker_leave(b, holder, admit, BB_CALL_RATE_LIMITED, NOW, 10 + i);
    }
    assert_int_equal(bb_breaker_retry_after(b, apr_psprintf(*state, "user%d", 3 * BB_BREAKER_HOLDS - 1), NOW),
                     10 + 3 * BB_BREAKER_HOLDS - 1);
    assert_int_equal(bb_breaker_retry_after(b, "user0", NOW), 0);       /* ended first: pushed out */
    assert_int_equal(st.open_until, 0);
}

/* Checks of credentials nobody confirmed have a quarter of the calls in flight; the rest stay for everyone. */
static void test_anonymous_checks_have_a_quarter_of_the_calls(void **state)
{
    bb_breaker_state_t st;
    log_t log;
    bb_breaker_t *b = breaker(*state, &st, &log, 8);
    apr_int64_t retry;
    int i;

    for (i = 0; i < 2; i++) {
        assert_int_equal(bb_breaker_enter(b, BB_HOLDER_ANONYMOUS, NOW, &retry), BB_BREAKER_GO);
    }
    assert_int_equal(bb_breaker_enter(b, BB_HOLDER_ANONYMOUS, NOW, &retry), BB_BREAKER_FULL);
    assert_int_equal(retry, 1);
    for (i = 0; i < 6; i++) {
        assert_int_equal(bb_breaker_enter(b, "alice", NOW, &retry), BB_BREAKER_GO);
    }
    assert_int_equal(bb_breaker_enter(b, "alice", NOW, &retry), BB_BREAKER_FULL);
    bb_breaker_leave(b, BB_HOLDER_ANONYMOUS, BB_BREAKER_GO, BB_CALL_ANSWERED, NOW, 0);
    assert_int_equal(b->anonymous_in_flight, 1);
    assert_int_equal(bb_breaker_enter(b, BB_HOLDER_ANONYMOUS, NOW, &retry), BB_BREAKER_GO);
    /* A limit of one call leaves one to anonymous checks too. */
    assert_int_equal(bb_breaker_create(*state, &st, NULL, 3, 30, 1)->anonymous_calls, 1);
}

static void test_a_lost_probe_expires_and_a_full_process_gives_the_probe_up(void **state)
{
    bb_breaker_state_t st;
    log_t log;
    bb_breaker_t *b = breaker(*state, &st, &log, 1);
    apr_int64_t retry;

    apr_atomic_set32(&st.open_until, NOW);
    assert_int_equal(bb_breaker_enter(b, NULL, NOW, &retry), BB_BREAKER_PROBE);   /* its process dies: never left */
    assert_int_equal(bb_breaker_enter(b, NULL, NOW + 60, &retry), BB_BREAKER_OPEN);
    b->in_flight = 0;
    assert_int_equal(bb_breaker_enter(b, NULL, NOW + 200, &retry), BB_BREAKER_PROBE);
    assert_int_equal(bb_breaker_enter(b, NULL, NOW + 250, &retry), BB_BREAKER_OPEN);
    /* This process is full (the probe above is in flight): a probe it elects is given back for another process. */
    apr_atomic_set32(&st.probing, 0);
    assert_int_equal(bb_breaker_enter(b, NULL, NOW + 250, &retry), BB_BREAKER_FULL);
    assert_int_equal(st.probing, 0);
}

static void test_without_shared_state_only_the_limit_applies(void **state)
{
    bb_breaker_t *b = bb_breaker_create(*state, NULL, NULL, 3, 30, 0);
    apr_int64_t retry;
    int i;

    for (i = 0; i < 10; i++) {
        call(b, NOW, BB_CALL_FAILED);
    }
    assert_int_equal(bb_breaker_enter(b, NULL, NOW, &retry), BB_BREAKER_GO);
    assert_int_equal(bb_breaker_retry_after(b, NULL, NOW), 0);
}

static void test_retry_after_values(void **state)
{
    char date[APR_RFC822_DATE_LEN];

    assert_int_equal(bb_breaker_parse_retry_after("120", NOW, 3600), 120);
    assert_int_equal(bb_breaker_parse_retry_after("0", NOW, 3600), 0);
    assert_int_equal(bb_breaker_parse_retry_after("99999999999999999999", NOW, 3600), 3600);
    assert_int_equal(bb_breaker_parse_retry_after(NULL, NOW, 3600), 0);
    assert_int_equal(bb_breaker_parse_retry_after("", NOW, 3600), 0);
    assert_int_equal(bb_breaker_parse_retry_after("-5", NOW, 3600), 0);
    assert_int_equal(bb_breaker_parse_retry_after("12abc", NOW, 3600), 0);
    assert_int_equal(bb_breaker_parse_retry_after("soon", NOW, 3600), 0);
    apr_rfc822_date(date, apr_time_from_sec(NOW + 45));
    assert_int_equal(bb_breaker_parse_retry_after(date, NOW, 3600), 45);
    apr_rfc822_date(date, apr_time_from_sec(NOW - 45));
    assert_int_equal(bb_breaker_parse_retry_after(date, NOW, 3600), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_calls_in_flight_are_limited_per_process),
        UNIT_TEST(test_consecutive_failures_open_then_one_probe_decides),
        UNIT_TEST(test_a_429_holds_back_only_its_holder),
        UNIT_TEST(test_a_429_without_retry_after_holds_for_the_cooldown),
        UNIT_TEST(test_429s_for_many_users_at_once_open_the_circuit),
        UNIT_TEST(test_holds_are_bounded_and_the_first_to_end_gives_way),
        UNIT_TEST(test_anonymous_checks_have_a_quarter_of_the_calls),
        UNIT_TEST(test_a_lost_probe_expires_and_a_full_process_gives_the_probe_up),
        UNIT_TEST(test_without_shared_state_only_the_limit_applies),
        UNIT_TEST(test_retry_after_values),
    };

    return UNIT_RUN("breaker", tests);
}
