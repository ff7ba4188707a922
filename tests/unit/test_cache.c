/* test_cache: hashed cache keys and the one-use marker over an in-memory bb_cache_t, with expiry and failing caches. */
#include "unit.h"
#include <apr_hash.h>
#include "bb_cache.h"

#define NOW_SEC  1700000000
#define ABC_KEY  "state:ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"     /* base64url(SHA-256("abc")) */

/* ---- An in-memory bb_cache_t over apr_hash_t, with a clock of its own and switchable failures. ---- */

typedef struct {
    apr_pool_t *pool;
    apr_hash_t *entries;
    apr_time_t now;
    apr_status_t retrieve_fails_with;   /* APR_SUCCESS: works */
    apr_status_t store_fails_with;
    int stores;
} fake_cache_t;

typedef struct {
    apr_time_t expiry;
    unsigned char *value;
    unsigned int len;
} fake_entry_t;

static apr_status_t fake_store(void *baton, const unsigned char *key, unsigned int keylen, apr_time_t expiry,
                               const unsigned char *value, unsigned int vallen, apr_pool_t *p)
{
    fake_cache_t *fc = baton;
    fake_entry_t *e;

    fc->stores++;
    if (fc->store_fails_with != APR_SUCCESS) {
        return fc->store_fails_with;
    }
    e = apr_pcalloc(fc->pool, sizeof(*e));
    e->expiry = expiry;
    e->value = apr_pmemdup(fc->pool, value, vallen);
    e->len = vallen;
    apr_hash_set(fc->entries, apr_pmemdup(fc->pool, key, keylen), keylen, e);
    return APR_SUCCESS;
}

static apr_status_t fake_retrieve(void *baton, const unsigned char *key, unsigned int keylen, unsigned char *value,
                                  unsigned int *vallen, apr_pool_t *p)
{
    fake_cache_t *fc = baton;
    fake_entry_t *e = apr_hash_get(fc->entries, key, keylen);

    if (fc->retrieve_fails_with != APR_SUCCESS) {
        return fc->retrieve_fails_with;
    }
    if (e == NULL || fc->now >= e->expiry) {
        return APR_NOTFOUND;
    }
    if (e->len > *vallen) {
        return APR_ENOSPC;
    }
    memcpy(value, e->value, e->len);
    *vallen = e->len;
    return APR_SUCCESS;
}

typedef struct {
    fake_cache_t fc;
    bb_cache_t cache;
} fixture_t;

static fixture_t *fixture(apr_pool_t *p)
{
    fixture_t *f = apr_pcalloc(p, sizeof(*f));

    f->fc.pool = p;
    f->fc.entries = apr_hash_make(p);
    f->fc.now = apr_time_from_sec(NOW_SEC);
    f->cache.baton = &f->fc;
    f->cache.store = fake_store;
    f->cache.retrieve = fake_retrieve;
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
