/* test_hostflight: one leader per key on a host, its answer for the others, expiry of a lost leader, a full table. */
#include "unit.h"
#include "bb_hostflight.h"

#define NOW 1700000000

static bb_hostflights_t *table(apr_pool_t *p)
{
    return apr_pcalloc(p, sizeof(bb_hostflights_t));
}

static void test_one_leads_the_others_take_its_answer(void **state)
{
    bb_hostflights_t *t = table(*state);
    bb_hostflight_t lead, other;
    int outcome = 0;

    assert_int_equal(bb_hostflight_join(t, "tok:A", NOW, 10, 0, &lead, &outcome), BB_HOSTFLIGHT_LEAD);
    assert_non_null(lead.slot);
    assert_int_equal(bb_hostflight_join(t, "tok:A", NOW, 10, 0, &other, &outcome), BB_HOSTFLIGHT_BUSY);
    assert_int_equal(bb_hostflight_join(t, "tok:B", NOW, 10, 0, &other, &outcome), BB_HOSTFLIGHT_LEAD);
    bb_hostflight_land(&lead, -2, NOW + 1);
    assert_int_equal(bb_hostflight_join(t, "tok:A", NOW + 1, 10, 0, &other, &outcome), BB_HOSTFLIGHT_LANDED);
    assert_int_equal(outcome, -2);
    /* The answer is kept BB_HOSTFLIGHT_KEEP seconds, then the key is asked again. */
    assert_int_equal(bb_hostflight_join(t, "tok:A", NOW + 1 + BB_HOSTFLIGHT_KEEP, 10, 0, &other, &outcome),
                     BB_HOSTFLIGHT_LEAD);
}

static void test_a_lost_leader_expires(void **state)
{
    bb_hostflights_t *t = table(*state);
    bb_hostflight_t lead, other;
    int outcome;

    assert_int_equal(bb_hostflight_join(t, "tok:A", NOW, 5, 0, &lead, &outcome), BB_HOSTFLIGHT_LEAD);
    assert_int_equal(bb_hostflight_join(t, "tok:A", NOW + 4, 5, 0, &other, &outcome), BB_HOSTFLIGHT_BUSY);
    assert_int_equal(bb_hostflight_join(t, "tok:A", NOW + 5, 5, 0, &other, &outcome), BB_HOSTFLIGHT_LEAD);
    assert_non_null(other.slot);
}

static void test_a_waiter_wakes_with_the_answer(void **state)
{
    bb_hostflights_t *t = table(*state);
    bb_hostflight_t lead, other;
    int outcome = 0;

    assert_int_equal(bb_hostflight_join(t, "tok:A", NOW, 10, 0, &lead, &outcome), BB_HOSTFLIGHT_LEAD);
    /* A wait that runs out says BUSY; once landed, LANDED with the answer. */
    assert_int_equal(bb_hostflight_join(t, "tok:A", NOW, 10, apr_time_from_msec(30), &other, &outcome),
                     BB_HOSTFLIGHT_BUSY);
    bb_hostflight_land(&lead, 7, NOW);
    assert_int_equal(bb_hostflight_join(t, "tok:A", NOW, 10, apr_time_from_msec(30), &other, &outcome),
                     BB_HOSTFLIGHT_LANDED);
    assert_int_equal(outcome, 7);
}

/* Without a table or key every caller leads, untracked; a full table leaves new keys untracked, never wrong. */
static void test_untracked_questions_always_lead(void **state)
{
    bb_hostflights_t *t = table(*state);
    bb_hostflight_t flight;
    int outcome, i;

    assert_int_equal(bb_hostflight_join(NULL, "tok:A", NOW, 10, 0, &flight, &outcome), BB_HOSTFLIGHT_LEAD);
    assert_null(flight.slot);
    bb_hostflight_land(&flight, 1, NOW);
    assert_int_equal(bb_hostflight_join(t, NULL, NOW, 10, 0, &flight, &outcome), BB_HOSTFLIGHT_LEAD);
    for (i = 0; i < 2 * BB_HOSTFLIGHT_SLOTS; i++) {
        assert_int_equal(bb_hostflight_join(t, apr_psprintf(*state, "tok:%d", i), NOW, 10, 0, &flight, &outcome),
                         BB_HOSTFLIGHT_LEAD);
    }
    assert_int_equal(bb_hostflight_join(t, "tok:0", NOW, 10, 0, &flight, &outcome), BB_HOSTFLIGHT_BUSY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_one_leads_the_others_take_its_answer),
        UNIT_TEST(test_a_lost_leader_expires),
        UNIT_TEST(test_a_waiter_wakes_with_the_answer),
        UNIT_TEST(test_untracked_questions_always_lead),
    };

    return UNIT_RUN("hostflight", tests);
}
