/* test_table: bb_table_setn_prefixed leaves a table as apr_table_setn would, with and without entries of the prefix. */
#include "unit.h"
#include "bb_table.h"

static const char *const keys[] = { "X-Bitbucket-User", "X-Bitbucket-Name", "X-Bitbucket-Id" };
static const char *const values[] = { "bob", "Bob Builder", "42" };

/* The number of entries named key (any case) in t. */
static int count_of(const apr_table_t *t, const char *key)
{
    const apr_array_header_t *fields = apr_table_elts(t);
    const apr_table_entry_t *entry = (const apr_table_entry_t *)fields->elts;
    int i, n = 0;

    for (i = 0; i < fields->nelts; i++) {
        n += !strcasecmp(entry[i].key, key);
    }
    return n;
}

static void assert_set_once(const apr_table_t *t)
{
    int i;

    for (i = 0; i < 3; i++) {
        assert_int_equal(count_of(t, keys[i]), 1);
        assert_string_equal(apr_table_get(t, keys[i]), values[i]);
    }
}

static void test_adds_to_a_table_without_the_prefix(void **state)
{
    apr_table_t *t = apr_table_make(*state, 4);

    apr_table_setn(t, "Host", "example.org");
    apr_table_setn(t, "X-Forwarded-For", "192.0.2.1");
    bb_table_setn_prefixed(t, "X-Bitbucket-", 3, keys, values);
    assert_set_once(t);
    assert_int_equal(apr_table_elts(t)->nelts, 5);
    assert_string_equal(apr_table_get(t, "X-Forwarded-For"), "192.0.2.1");
}

static void test_replaces_what_is_there(void **state)
{
    apr_table_t *t = apr_table_make(*state, 4);

    /* A client's copy (any case), twice, and one of the set only: each key ends up once, with our value. */
    apr_table_addn(t, "x-bitbucket-user", "mallory");
    apr_table_addn(t, "X-BITBUCKET-USER", "eve");
    apr_table_addn(t, "X-Bitbucket-Id", "1");
    bb_table_setn_prefixed(t, "X-Bitbucket-", 3, keys, values);
    assert_set_once(t);
    assert_int_equal(apr_table_elts(t)->nelts, 3);
}

static void test_another_key_of_the_prefix_is_kept(void **state)
{
    apr_table_t *t = apr_table_make(*state, 4);

    apr_table_setn(t, "X-Bitbucket-Assertion", "eyJ");
    bb_table_setn_prefixed(t, "X-Bitbucket-", 3, keys, values);
    assert_set_once(t);
    assert_string_equal(apr_table_get(t, "X-Bitbucket-Assertion"), "eyJ");
}

static void test_a_shorter_key_is_not_of_the_prefix(void **state)
{
    apr_table_t *t = apr_table_make(*state, 4);

    apr_table_setn(t, "X-Bitbucket", "not ours");
    apr_table_setn(t, "X-B", "nor this");
    bb_table_setn_prefixed(t, "X-Bitbucket-", 3, keys, values);
    assert_set_once(t);
    assert_int_equal(apr_table_elts(t)->nelts, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_adds_to_a_table_without_the_prefix),
        UNIT_TEST(test_replaces_what_is_there),
        UNIT_TEST(test_another_key_of_the_prefix_is_kept),
        UNIT_TEST(test_a_shorter_key_is_not_of_the_prefix),
    };
    return UNIT_RUN("table", tests);
}
