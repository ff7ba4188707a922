/* test_ratelimit: events per key and minute: the limit, new windows, keys apart, a bounded table that gives way. */
#include "unit.h"
#include "bb_ratelimit.h"

#define NOW 1700000000

static bb_ratelimit_t *table(apr_pool_t *p)
{
    return apr_pcalloc(p, sizeof(bb_ratelimit_t));
}

static void test_the_first_n_of_a_minute_pass_then_until_its_end(void **state)
{
    bb_ratelimit_t *t = table(*state);
    apr_int64_t retry;
    int i;

    for (i = 0; i < 3; i++) {
        assert_true(bb_ratelimit_take(t, "192.0.2.1", 3, NOW + i, &retry));
        assert_int_equal(retry, 0);
    }
    assert_false(bb_ratelimit_take(t, "192.0.2.1", 3, NOW + 10, &retry));
    assert_int_equal(retry, 50);
    assert_false(bb_ratelimit_take(t, "192.0.2.1", 3, NOW + 59, &retry));
    assert_int_equal(retry, 1);
    assert_true(bb_ratelimit_take(t, "192.0.2.1", 3, NOW + 60, &retry));        /* a new window */
    assert_true(bb_ratelimit_take(t, "192.0.2.1", 3, NOW + 61, &retry));
}

static void test_keys_are_counted_apart(void **state)
{
    bb_ratelimit_t *t = table(*state);
    apr_int64_t retry;

    assert_true(bb_ratelimit_take(t, "192.0.2.1", 1, NOW, &retry));
    assert_false(bb_ratelimit_take(t, "192.0.2.1", 1, NOW, &retry));
    assert_true(bb_ratelimit_take(t, "192.0.2.2", 1, NOW, &retry));
    assert_true(bb_ratelimit_take(t, "2001:db8::1", 1, NOW, &retry));
}

static void test_no_limit_and_no_table_always_pass(void **state)
{
    bb_ratelimit_t *t = table(*state);
    apr_int64_t retry;
    int i;

    for (i = 0; i < 100; i++) {
        assert_true(bb_ratelimit_take(t, "192.0.2.1", 0, NOW, &retry));
        assert_true(bb_ratelimit_take(NULL, "192.0.2.1", 1, NOW, &retry));
    }
}

/* Many more keys than slots: the table stays bounded, the newest keys are counted, the oldest windows give way. */
static void test_a_flood_of_keys_pushes_out_the_oldest_windows(void **state)
{
    bb_ratelimit_t *t = table(*state);
    apr_int64_t retry;
    int i;

    assert_true(bb_ratelimit_take(t, "192.0.2.1", 1, NOW, &retry));
    for (i = 0; i < 4 * BB_RATELIMIT_SLOTS; i++) {
        assert_true(bb_ratelimit_take(t, apr_psprintf(*state, "10.0.%d.%d", i / 256, i % 256), 1, NOW + 1, &retry));
    }
    assert_false(bb_ratelimit_take(t, "10.0.15.255", 1, NOW + 1, &retry));      /* the last one is counted */
    assert_true(bb_ratelimit_take(t, "192.0.2.1", 1, NOW + 1, &retry));          /* the first was pushed out */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_the_first_n_of_a_minute_pass_then_until_its_end),
        UNIT_TEST(test_keys_are_counted_apart),
        UNIT_TEST(test_no_limit_and_no_table_always_pass),
        UNIT_TEST(test_a_flood_of_keys_pushes_out_the_oldest_windows),
    };

    return UNIT_RUN("ratelimit", tests);
}
