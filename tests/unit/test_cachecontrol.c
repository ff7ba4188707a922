/* test_cachecontrol: an app's Cache-Control merged with private (and no-store), never weaker than the app's. */
#include "unit.h"
#include "bb_cachecontrol.h"

static void test_none_set(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_cache_control_private(p, NULL, 0), "private");
    assert_string_equal(bb_cache_control_private(p, "", 0), "private");
    assert_string_equal(bb_cache_control_private(p, NULL, 1), "private, no-store");
    assert_string_equal(bb_cache_control_private(p, " , ,", 1), "private, no-store");
}

static void test_app_directives_kept(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_cache_control_private(p, "max-age=600", 0), "private, max-age=600");
    assert_string_equal(bb_cache_control_private(p, "no-cache, must-revalidate", 0),
                        "private, no-cache, must-revalidate");
    assert_string_equal(bb_cache_control_private(p, "max-age=600, immutable", 1),
                        "private, no-store, max-age=600, immutable");
    /* The app's own no-store is not said twice. */
    assert_string_equal(bb_cache_control_private(p, "No-Store", 1), "private, No-Store");
    assert_string_equal(bb_cache_control_private(p, "no-store", 0), "private, no-store");
}

static void test_shared_cache_directives_dropped(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_cache_control_private(p, "public, max-age=31536000", 0), "private, max-age=31536000");
    assert_string_equal(bb_cache_control_private(p, "PUBLIC,s-maxage=600,max-age=60", 0), "private, max-age=60");
    assert_string_equal(bb_cache_control_private(p, "private", 0), "private");
    assert_string_equal(bb_cache_control_private(p, "proxy-revalidate, max-age=5", 0), "private, max-age=5");
    /* private limited to some fields shares the rest of the response: it becomes a whole private. */
    assert_string_equal(bb_cache_control_private(p, "private=\"Set-Cookie, X-Y\", max-age=5", 0),
                        "private, max-age=5");
    /* A directive whose name only starts like one of those is kept. */
    assert_string_equal(bb_cache_control_private(p, "publicity", 0), "private, publicity");
}

static void test_quoted_values_stay_whole(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_cache_control_private(p, "no-cache=\"Set-Cookie, public\", max-age=1", 0),
                        "private, no-cache=\"Set-Cookie, public\", max-age=1");
    assert_string_equal(bb_cache_control_private(p, "x=\"a\\\", public\", public", 0), "private, x=\"a\\\", public\"");
    /* An unterminated quote swallows the rest, which is kept as it was sent. */
    assert_string_equal(bb_cache_control_private(p, "x=\"a, public", 1), "private, no-store, x=\"a, public");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_none_set),
        UNIT_TEST(test_app_directives_kept),
        UNIT_TEST(test_shared_cache_directives_dropped),
        UNIT_TEST(test_quoted_values_stay_whole),
    };
    return UNIT_RUN("cachecontrol", tests);
}
