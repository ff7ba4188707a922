/* test_cache: hashed cache keys, the one-use marker and authenticated records over an in-memory bb_cache_t, with
 * expiry and failing caches. */
#include "unit.h"
#include "fake_cache.h"
#include <apr_hash.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "bb_cache.h"

#define NOW_SEC  1700000000
/* base64url(HMAC-SHA256(32 bytes 0x42, "state" NUL "abc")) ":state", computed with Python's hmac. */
#define ABC_KEY  "TRBpAduvSQFg46-L6yQ_y9Hu4Czjf-dx6_l4jTTVI68:state"

/* base64url(SHA-256("integration" NUL "state" NUL "abc")) ":state", computed with Python's hashlib. */
#define SPACE    "integration"
#define ABC_NAME "ajFhrWXW62gltNoFQTLk2mTNdRuk7GfoylYNeNVpnDo:state"

typedef keyed_cache_t fixture_t;

static fixture_t *fixture(apr_pool_t *p)
{
    fixture_t *f = apr_pcalloc(p, sizeof(*f));

    keyed_cache_init(f, p, NOW_SEC, 0x42);
    f->cache.remove = NULL;             /* the one-use marker is never removed: it expires */
    return f;
}

static fake_entry_t *entry(const fixture_t *f, const char *key)
{
    return apr_hash_get(f->fc.entries, key, APR_HASH_KEY_STRING);
}

/* ---- Tests ---- */

static const char *key_of(apr_pool_t *p, const bb_key_t *key, const char *ns, const char *id)
{
    return bb_cache_key(p, key, ns, id, id ? strlen(id) : 0);
}

static void test_key(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p);
    keyed_cache_t other;
    char *long_id = apr_palloc(p, 10001);
    unsigned char first_chars[256] = { 0 };
    int i, distinct = 0;

    keyed_cache_init(&other, p, NOW_SEC, 0x43);
    memset(long_id, 's', 10000);
    long_id[10000] = '\0';
    assert_string_equal(key_of(p, &f->key, "state", "abc"), ABC_KEY);
    assert_string_not_equal(key_of(p, &f->key, "state", "abc"), key_of(p, &f->key, "token", "abc"));
    assert_string_not_equal(key_of(p, &f->key, "state", "abc"), key_of(p, &f->key, "state", "abd"));
    /* Another integration's key: another cache key for the same id. */
    assert_string_not_equal(key_of(p, &f->key, "state", "abc"), key_of(p, &other.key, "state", "abc"));
    /* Same short length whatever the id, and no trace of the id itself. */
    assert_int_equal(strlen(key_of(p, &f->key, "state", long_id)), strlen(ABC_KEY));
    assert_int_equal(strlen(key_of(p, &f->key, "state", "")), strlen(ABC_KEY));
    assert_null(strstr(key_of(p, &f->key, "ns", "secret-token-value"), "secret"));
    assert_null(key_of(p, &f->key, "state", NULL));
    assert_null(key_of(p, &f->key, NULL, "abc"));
    assert_null(key_of(p, NULL, "state", "abc"));
    /* The first character (shmcb chooses its subcache by the first byte) varies with the id, whatever the
     * namespace: 1,000 ids of one namespace start with nearly all 64 base64url characters. */
    for (i = 0; i < 1000; i++) {
        unsigned char c = (unsigned char)key_of(p, &f->key, "ended", apr_itoa(p, i))[0];
        distinct += !first_chars[c];
        first_chars[c] = 1;
    }
    assert_true(distinct >= 60);
}

static void test_name(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_cache_name(p, SPACE, "state", "abc"), ABC_NAME);
    assert_string_not_equal(bb_cache_name(p, SPACE, "state", "abc"), bb_cache_name(p, "other", "state", "abc"));
    assert_string_not_equal(bb_cache_name(p, SPACE, "state", "abc"), bb_cache_name(p, SPACE, "ended", "abc"));
    /* The NULs keep the parts apart. */
    assert_string_not_equal(bb_cache_name(p, "a", "bc", "d"), bb_cache_name(p, "ab", "c", "d"));
    assert_null(bb_cache_name(p, NULL, "state", "abc"));
    assert_null(bb_cache_name(p, SPACE, NULL, "abc"));
    assert_null(bb_cache_name(p, SPACE, "state", NULL));
}

static void test_use_once(void **state)
{
    fixture_t *f = fixture(*state);
    apr_pool_t *p = *state;
    apr_time_t expiry = apr_time_from_sec(NOW_SEC + 600);

    assert_int_equal(bb_cache_use_once(&f->cache, SPACE, "state", "abc", expiry, p), APR_SUCCESS);
    assert_int_equal(bb_cache_use_once(&f->cache, SPACE, "state", "abc", expiry, p), APR_EEXIST);
    assert_int_equal(bb_cache_use_once(&f->cache, SPACE, "state", "abc", expiry, p), APR_EEXIST);
    /* Another id, or the same id in another namespace, is another marker; checking one writes nothing. */
    assert_int_equal(bb_cache_check_unused(&f->cache, SPACE, "state", "abc", p), APR_EEXIST);
    assert_int_equal(bb_cache_check_unused(&f->cache, SPACE, "state", "abz", p), APR_SUCCESS);
    assert_int_equal(f->fc.stores, 1);
    assert_int_equal(bb_cache_use_once(&f->cache, SPACE, "state", "abd", expiry, p), APR_SUCCESS);
    assert_int_equal(bb_cache_use_once(&f->cache, SPACE, "code", "abc", expiry, p), APR_SUCCESS);
    /* The marker: under the hashed key, one byte, until the given expiry. */
    assert_non_null(entry(f, ABC_NAME));
    assert_int_equal(entry(f, ABC_NAME)->len, 1);
    assert_true(entry(f, ABC_NAME)->expiry == expiry);
    assert_int_equal(apr_hash_count(f->fc.entries), 3);
}

/* A marker is usable again only once it has expired. The callers give it the lifetime of what it guards (the
 * state cookie's exp), so by then that has expired too and is refused on its own account. */
static void test_marker_lasts_until_expiry(void **state)
{
    fixture_t *f = fixture(*state);
    apr_pool_t *p = *state;
    apr_time_t expiry = apr_time_from_sec(NOW_SEC + 600);

    assert_int_equal(bb_cache_use_once(&f->cache, SPACE, "state", "abc", expiry, p), APR_SUCCESS);
    f->fc.now = expiry - 1;
    assert_int_equal(bb_cache_use_once(&f->cache, SPACE, "state", "abc", expiry, p), APR_EEXIST);
    f->fc.now = expiry;
    assert_int_equal(bb_cache_use_once(&f->cache, SPACE, "state", "abc", expiry + apr_time_from_sec(600), p),
                     APR_SUCCESS);
}

static void test_retrieve_failure_fails_closed(void **state)
{
    fixture_t *f = fixture(*state);
    apr_pool_t *p = *state;

    f->fc.retrieve_fails_with = APR_EGENERAL;
    assert_int_equal(bb_cache_check_unused(&f->cache, SPACE, "state", "abc", p), APR_EGENERAL);
    assert_int_equal(bb_cache_use_once(&f->cache, SPACE, "state", "abc", apr_time_from_sec(NOW_SEC + 600), p),
                     APR_EGENERAL);
    assert_int_equal(f->fc.stores, 0);
    f->fc.retrieve_fails_with = APR_ETIMEDOUT;
    assert_int_equal(bb_cache_use_once(&f->cache, SPACE, "state", "abc", apr_time_from_sec(NOW_SEC + 600), p),
                     APR_ETIMEDOUT);
}

static void test_store_failure_fails_closed(void **state)
{
    fixture_t *f = fixture(*state);
    apr_pool_t *p = *state;

    f->fc.store_fails_with = APR_EGENERAL;
    assert_int_equal(bb_cache_use_once(&f->cache, SPACE, "state", "abc", apr_time_from_sec(NOW_SEC + 600), p),
                     APR_EGENERAL);
    assert_int_equal(f->fc.stores, 1);
    /* Nothing was recorded, so once the cache works the id is still unused. */
    f->fc.store_fails_with = APR_SUCCESS;
    assert_int_equal(bb_cache_use_once(&f->cache, SPACE, "state", "abc", apr_time_from_sec(NOW_SEC + 600), p),
                     APR_SUCCESS);
}

static void test_unexpected_value_fails_closed(void **state)
{
    fixture_t *f = fixture(*state);
    apr_pool_t *p = *state;
    static const unsigned char big[] = "not a marker";

    /* Something bigger than a marker under the key: the provider cannot hand it over, and that is no "unused". */
    fake_store(&f->fc, (const unsigned char *)ABC_NAME, strlen(ABC_NAME), apr_time_from_sec(NOW_SEC + 600), big,
               sizeof(big), p);
    assert_int_equal(bb_cache_use_once(&f->cache, SPACE, "state", "abc", apr_time_from_sec(NOW_SEC + 600), p), APR_ENOSPC);
}

static void test_no_cache(void **state)
{
    fixture_t *f = fixture(*state);
    apr_pool_t *p = *state;

    assert_int_equal(bb_cache_use_once(NULL, SPACE, "state", "abc", apr_time_from_sec(NOW_SEC + 600), p), APR_EINVAL);
    assert_int_equal(bb_cache_use_once(&f->cache, SPACE, "state", NULL, apr_time_from_sec(NOW_SEC + 600), p), APR_EINVAL);
    assert_int_equal(f->fc.stores, 0);
}

/* An authenticated record is HMAC-SHA256(secret, cache key NUL body) then the body, computed here with OpenSSL
 * directly; it reads back whole, and any change to it, a copy under another key or another secret reads nothing. */
static void test_authentic_records(void **state)
{
    fixture_t *f = fixture(*state);
    apr_pool_t *p = *state;
    unsigned char secret[32], mac[32];
    bb_key_t key = { "k", secret, sizeof(secret), NULL }, other = key;
    const char msg[] = "rec:1\0v1 body";          /* the cache key, its NUL, the body */
    const unsigned char *body;
    apr_size_t len = 0;
    unsigned int mac_len = 0;
    fake_entry_t *e;

    memset(secret, 0x42, sizeof(secret));
    assert_int_equal(bb_cache_store_authentic(p, &f->cache, &key, "rec:1", NOW_SEC + 60, "v1 body", 7), APR_SUCCESS);
    e = entry(f, "rec:1");
    assert_non_null(HMAC(EVP_sha256(), secret, sizeof(secret), (const unsigned char *)msg, sizeof(msg) - 1, mac,
                         &mac_len));
    assert_int_equal(e->len, 32 + 7);
    assert_memory_equal(e->value, mac, 32);
    assert_memory_equal(e->value + 32, "v1 body", 7);
    assert_int_equal(e->expiry, apr_time_from_sec(NOW_SEC + 60));
    body = bb_cache_retrieve_authentic(p, &f->cache, &key, "rec:1", BB_CACHE_MAX_VALUE, &len);
    assert_non_null(body);
    assert_int_equal(len, 7);
    assert_string_equal((const char *)body, "v1 body");

    /* Copied under another key, or read with another secret: nothing. */
    fake_store(&f->fc, (const unsigned char *)"rec:2", 5, e->expiry, e->value, e->len, p);
    assert_null(bb_cache_retrieve_authentic(p, &f->cache, &key, "rec:2", BB_CACHE_MAX_VALUE, &len));
    other.secret = (const unsigned char *)"another secret of thirty-two bytes";
    assert_null(bb_cache_retrieve_authentic(p, &f->cache, &other, "rec:1", BB_CACHE_MAX_VALUE, &len));
    /* One bit changed in the body or the MAC, or cut to the MAC alone: nothing. */
    e->value[32] ^= 1;
    assert_null(bb_cache_retrieve_authentic(p, &f->cache, &key, "rec:1", BB_CACHE_MAX_VALUE, &len));
    e->value[32] ^= 1;
    e->value[0] ^= 1;
    assert_null(bb_cache_retrieve_authentic(p, &f->cache, &key, "rec:1", BB_CACHE_MAX_VALUE, &len));
    e->value[0] ^= 1;
    e->len = 32;
    assert_null(bb_cache_retrieve_authentic(p, &f->cache, &key, "rec:1", BB_CACHE_MAX_VALUE, &len));
}

/* Too long a body, too short a secret, no cache: refused before the cache is touched. */
static void test_authentic_records_refused(void **state)
{
    fixture_t *f = fixture(*state);
    apr_pool_t *p = *state;
    unsigned char secret[32];
    bb_key_t key = { "k", secret, sizeof(secret), NULL }, short_key = { "s", secret, BB_CACHE_MIN_SECRET - 1, NULL };
    char *big = apr_pcalloc(p, BB_CACHE_MAX_VALUE);
    apr_size_t len;

    memset(secret, 0x42, sizeof(secret));
    assert_int_equal(bb_cache_store_authentic(p, &f->cache, &key, "rec:1", NOW_SEC + 60, big,
                                              BB_CACHE_MAX_VALUE - 32 + 1), APR_ENOSPC);
    assert_int_equal(bb_cache_store_authentic(p, &f->cache, &short_key, "rec:1", NOW_SEC + 60, "x", 1),
                     APR_EINVAL);
    assert_int_equal(bb_cache_store_authentic(p, NULL, &key, "rec:1", NOW_SEC + 60, "x", 1), APR_EINVAL);
    assert_int_equal(f->fc.stores, 0);
    assert_int_equal(bb_cache_store_authentic(p, &f->cache, &key, "rec:1", NOW_SEC + 60, big,
                                              BB_CACHE_MAX_VALUE - 32), APR_SUCCESS);
    assert_non_null(bb_cache_retrieve_authentic(p, &f->cache, &key, "rec:1", BB_CACHE_MAX_VALUE, &len));
    /* A reader that wants less than is there gets nothing, not a cut record. */
    assert_null(bb_cache_retrieve_authentic(p, &f->cache, &key, "rec:1", BB_CACHE_MAX_VALUE - 32 - 1, &len));
    assert_null(bb_cache_retrieve_authentic(p, &f->cache, &short_key, "rec:1", BB_CACHE_MAX_VALUE, &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_key),
        UNIT_TEST(test_name),
        UNIT_TEST(test_use_once),
        UNIT_TEST(test_marker_lasts_until_expiry),
        UNIT_TEST(test_retrieve_failure_fails_closed),
        UNIT_TEST(test_store_failure_fails_closed),
        UNIT_TEST(test_unexpected_value_fails_closed),
        UNIT_TEST(test_no_cache),
        UNIT_TEST(test_authentic_records),
        UNIT_TEST(test_authentic_records_refused),
    };
    return UNIT_RUN("cache", tests);
}
