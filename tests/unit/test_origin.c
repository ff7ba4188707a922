/* test_origin: same-origin requests told from cross-site ones by Sec-Fetch-Site and Origin. */
#include "unit.h"
#include "bb_origin.h"

static const char *const site[] = { "https://mirror.example.test", NULL, "http://127.0.0.1:8080" };

static bb_origin_t of(const char *fetch_site, const char *origin)
{
    return bb_origin_of(fetch_site, origin, site, 3);
}

static void test_fetch_metadata_decides(void **state)
{
    (void)state;
    assert_int_equal(of("same-origin", NULL), BB_ORIGIN_SAME);
    assert_int_equal(of("Same-Origin", "https://evil.example.test"), BB_ORIGIN_SAME);
    assert_int_equal(of("same-site", "https://mirror.example.test"), BB_ORIGIN_CROSS);
    assert_int_equal(of("cross-site", "https://mirror.example.test"), BB_ORIGIN_CROSS);
    assert_int_equal(of("none", NULL), BB_ORIGIN_CROSS);
    assert_int_equal(of("", NULL), BB_ORIGIN_CROSS);
}

static void test_origin_when_no_fetch_metadata(void **state)
{
    (void)state;
    assert_int_equal(of(NULL, "https://mirror.example.test"), BB_ORIGIN_SAME);
    assert_int_equal(of(NULL, "HTTPS://MIRROR.example.test"), BB_ORIGIN_SAME);
    assert_int_equal(of(NULL, "http://127.0.0.1:8080"), BB_ORIGIN_SAME);
    assert_int_equal(of(NULL, "http://mirror.example.test"), BB_ORIGIN_CROSS);
    assert_int_equal(of(NULL, "https://mirror.example.test:8443"), BB_ORIGIN_CROSS);
    assert_int_equal(of(NULL, "https://mirror.example.test.evil.test"), BB_ORIGIN_CROSS);
    assert_int_equal(of(NULL, "https://evil.example.test"), BB_ORIGIN_CROSS);
    assert_int_equal(of(NULL, "null"), BB_ORIGIN_CROSS);
    assert_int_equal(of(NULL, ""), BB_ORIGIN_CROSS);
    assert_int_equal(of(NULL, NULL), BB_ORIGIN_UNKNOWN);
    assert_int_equal(bb_origin_of(NULL, "https://mirror.example.test", NULL, 0), BB_ORIGIN_CROSS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_fetch_metadata_decides),
        UNIT_TEST(test_origin_when_no_fetch_metadata),
    };
    return UNIT_RUN("origin", tests);
}
