/* test_cache: hashed cache keys and the one-use marker over an in-memory bb_cache_t, with expiry and failing caches. */
#include "unit.h"
#include "fake_cache.h"
#include <apr_hash.h>
#include "bb_cache.h"

#define NOW_SEC  1700000000
#define ABC_KEY  "state:ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"     /* base64url(SHA-256("abc")) */

typedef struct {
    fake_cache_t fc;
    bb_cache_t cache;
} fixture_t;

static fixture_t *fixture(apr_pool_t *p)
{
    fixture_t *f = apr_pcalloc(p, sizeof(*f));

    fake_cache_init(&f->fc, &f->cache, p, NOW_SEC);
    f->cache.remove = NULL;             /* the one-use marker is never removed: it expires */
    return f;
}

static fake_entry_t *entry(const fixture_t *f, const char *key)
{
    return apr_hash_get(f->fc.entries, key, APR_HASH_KEY_STRING);
}

/* ---- Tests ---- */

static void test_key(void **state)
{
    apr_pool_t *p = *state;
    char *long_id = apr_palloc(p, 10001);

    memset(long_id, 's', 10000);
    long_id[10000] = '\0';
    assert_string_equal(bb_cache_key(p, "state", "abc"), ABC_KEY);
    assert_string_not_equal(bb_cache_key(p, "state", "abc"), bb_cache_key(p, "token", "abc"));
    assert_string_not_equal(bb_cache_key(p, "state", "abc"), bb_cache_key(p, "state", "abd"));
    /* Same short length whatever the id, and no trace of the id itself. */
    assert_int_equal(strlen(bb_cache_key(p, "state", long_id)), strlen(ABC_KEY));
    assert_int_equal(strlen(bb_cache_key(p, "state", "")), strlen(ABC_KEY));
    assert_null(strstr(bb_cache_key(p, "ns", "secret-token-value"), "secret"));
    assert_null(bb_cache_key(p, "state", NULL));
    assert_null(bb_cache_key(p, NULL, "abc"));
}

static void test_use_once(void **state)
{
    fixture_t *f = fixture(*state);
    apr_pool_t *p = *state;
    apr_time_t expiry = apr_time_from_sec(NOW_SEC + 600);

    assert_int_equal(bb_cache_use_once(&f->cache, "state", "abc", expiry, p), APR_SUCCESS);
    assert_int_equal(bb_cache_use_once(&f->cache, "state", "abc", expiry, p), APR_EEXIST);
    assert_int_equal(bb_cache_use_once(&f->cache, "state", "abc", expiry, p), APR_EEXIST);
    /* Another id, or the same id in another namespace, is another marker. */
    assert_int_equal(bb_cache_use_once(&f->cache, "state", "abd", expiry, p), APR_SUCCESS);
    assert_int_equal(bb_cache_use_once(&f->cache, "code", "abc", expiry, p), APR_SUCCESS);
    /* The marker: under the hashed key, one byte, until the given expiry. */
    assert_non_null(entry(f, ABC_KEY));
    assert_int_equal(entry(f, ABC_KEY)->len, 1);
    assert_true(entry(f, ABC_KEY)->expiry == expiry);
    assert_int_equal(apr_hash_count(f->fc.entries), 3);
}

/* A marker is usable again only once it has expired. The callers give it the lifetime of what it guards (the
 * state cookie's exp), so by then that has expired too and is refused on its own account. */
static void test_marker_lasts_until_expiry(void **state)
{
    fixture_t *f = fixture(*state);
    apr_pool_t *p = *state;
    apr_time_t expiry = apr_time_from_sec(NOW_SEC + 600);

    assert_int_equal(bb_cache_use_once(&f->cache, "state", "abc", expiry, p), APR_SUCCESS);
    f->fc.now = expiry - 1;
    assert_int_equal(bb_cache_use_once(&f->cache, "state", "abc", expiry, p), APR_EEXIST);
    f->fc.now = expiry;
    assert_int_equal(bb_cache_use_once(&f->cache, "state", "abc", expiry + apr_time_from_sec(600), p),
                     APR_SUCCESS);
}

static void test_retrieve_failure_fails_closed(void **state)
{
    fixture_t *f = fixture(*state);
    apr_pool_t *p = *state;

    f->fc.retrieve_fails_with = APR_EGENERAL;
    assert_int_equal(bb_cache_use_once(&f->cache, "state", "abc", apr_time_from_sec(NOW_SEC + 600), p),
                     APR_EGENERAL);
    assert_int_equal(f->fc.stores, 0);
    f->fc.retrieve_fails_with = APR_ETIMEDOUT;
    assert_int_equal(bb_cache_use_once(&f->cache, "state", "abc", apr_time_from_sec(NOW_SEC + 600), p),
                     APR_ETIMEDOUT);
}

static void test_store_failure_fails_closed(void **state)
{
    fixture_t *f = fixture(*state);
    apr_pool_t *p = *state;

    f->fc.store_fails_with = APR_EGENERAL;
    assert_int_equal(bb_cache_use_once(&f->cache, "state", "abc", apr_time_from_sec(NOW_SEC + 600), p),
                     APR_EGENERAL);
    assert_int_equal(f->fc.stores, 1);
    /* Nothing was recorded, so once the cache works the id is still unused. */
    f->fc.store_fails_with = APR_SUCCESS;
    assert_int_equal(bb_cache_use_once(&f->cache, "state", "abc", apr_time_from_sec(NOW_SEC + 600), p),
                     APR_SUCCESS);
}

static void test_unexpected_value_fails_closed(void **state)
{
    fixture_t *f = fixture(*state);
    apr_pool_t *p = *state;
    static const unsigned char big[] = "not a marker";

    /* Something bigger than a marker under the key: the provider cannot hand it over, and that is no "unused". */
    fake_store(&f->fc, (const unsigned char *)ABC_KEY, strlen(ABC_KEY), apr_time_from_sec(NOW_SEC + 600), big,
               sizeof(big), p);
    assert_int_equal(bb_cache_use_once(&f->cache, "state", "abc", apr_time_from_sec(NOW_SEC + 600), p), APR_ENOSPC);
}

static void test_no_cache(void **state)
{
    fixture_t *f = fixture(*state);
    apr_pool_t *p = *state;

    assert_int_equal(bb_cache_use_once(NULL, "state", "abc", apr_time_from_sec(NOW_SEC + 600), p), APR_EINVAL);
    assert_int_equal(bb_cache_use_once(&f->cache, "state", NULL, apr_time_from_sec(NOW_SEC + 600), p), APR_EINVAL);
    assert_int_equal(f->fc.stores, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_key),
        UNIT_TEST(test_use_once),
        UNIT_TEST(test_marker_lasts_until_expiry),
        UNIT_TEST(test_retrieve_failure_fails_closed),
        UNIT_TEST(test_store_failure_fails_closed),
        UNIT_TEST(test_unexpected_value_fails_closed),
        UNIT_TEST(test_no_cache),
    };
    return UNIT_RUN("cache", tests);
}
