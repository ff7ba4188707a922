/* test_authzcache: Bitbucket's answers to Require questions in the cache: hits, misses, expiry, keys, forgeries. */
#include "unit.h"
#include "bb_util.h"
#include "bb_authzcache.h"
#include "fake_cache.h"

#define NOW       1700000000
#define PRINCIPAL "sid:q1w2e3r4t5y6u7i8o9p0aa"
#define QUESTION  "repo PROJ/alpha"

typedef struct {
    keyed_cache_t kc;
    bb_authzcache_t ac;
} fixture_t;

static fixture_t *fixture(apr_pool_t *p, unsigned char secret_byte)
{
    fixture_t *f = apr_pcalloc(p, sizeof(*f));

    keyed_cache_init(&f->kc, p, NOW, secret_byte);
    f->ac.cache = &f->kc.cache;
    f->ac.key = &f->kc.key;
    return f;
}

static bb_authzcache_result_t lookup(apr_pool_t *p, fixture_t *f, const char *principal, const char *question,
                                     apr_int64_t now)
{
    f->kc.fc.now = apr_time_from_sec(now);
    return bb_authzcache_lookup(p, &f->ac, principal, question, now);
}

static fake_entry_t *entry_of(apr_pool_t *p, fixture_t *f, const char *principal, const char *question)
{
    const char *key = bb_authzcache_key(p, &f->ac, principal, question);
    return apr_hash_get(f->kc.fc.entries, key, (apr_ssize_t)strlen(key));
}

static void test_granted_and_denied(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 7);

    assert_int_equal(lookup(p, f, PRINCIPAL, QUESTION, NOW), BB_AUTHZCACHE_MISS);
    assert_int_equal(bb_authzcache_store(p, &f->ac, PRINCIPAL, QUESTION, 1, NOW, 300), APR_SUCCESS);
    assert_int_equal(bb_authzcache_store(p, &f->ac, PRINCIPAL, "group developers", 0, NOW, 300), APR_SUCCESS);
    assert_int_equal(lookup(p, f, PRINCIPAL, QUESTION, NOW + 299), BB_AUTHZCACHE_GRANTED);
    assert_int_equal(lookup(p, f, PRINCIPAL, "group developers", NOW), BB_AUTHZCACHE_DENIED);
    /* Another credential, another question: nothing is known. */
    assert_int_equal(lookup(p, f, "sid:another", QUESTION, NOW), BB_AUTHZCACHE_MISS);
    assert_int_equal(lookup(p, f, PRINCIPAL, "repo PROJ/beta", NOW), BB_AUTHZCACHE_MISS);
    /* The answer changes when it is stored again. */
    bb_authzcache_store(p, &f->ac, PRINCIPAL, QUESTION, 0, NOW, 300);
    assert_int_equal(lookup(p, f, PRINCIPAL, QUESTION, NOW), BB_AUTHZCACHE_DENIED);
}

/* Expired at now + ttl, even in a cache that keeps entries longer. */
static void test_expiry(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 7);

    bb_authzcache_store(p, &f->ac, PRINCIPAL, QUESTION, 1, NOW, 300);
    assert_int_equal(entry_of(p, f, PRINCIPAL, QUESTION)->expiry, apr_time_from_sec(NOW + 300));
    f->kc.fc.keeps_expired = 1;
    assert_int_equal(lookup(p, f, PRINCIPAL, QUESTION, NOW + 300), BB_AUTHZCACHE_MISS);
    assert_int_equal(bb_authzcache_store(p, &f->ac, PRINCIPAL, QUESTION, 1, NOW, 0), APR_EINVAL);
}

/* Keys are keyed hashes: the same for the same secret (every host of a farm), never the principal in clear. */
static void test_keys(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 7), *g = fixture(p, 7), *h = fixture(p, 8);
    const char *key = bb_authzcache_key(p, &f->ac, PRINCIPAL, QUESTION);

    assert_non_null(key);
    assert_int_equal(strlen(key), 43 + strlen(":authz"));
    assert_string_equal(key + 43, ":authz");          /* the keyed hash first: shmcb spreads by the first byte */
    assert_null(strstr(key, "q1w2e3"));
    assert_string_equal(key, bb_authzcache_key(p, &g->ac, PRINCIPAL, QUESTION));
    assert_string_not_equal(key, bb_authzcache_key(p, &h->ac, PRINCIPAL, QUESTION));
    /* The separator keeps ("a", "bc") and ("ab", "c") apart. */
    assert_string_not_equal(bb_authzcache_key(p, &f->ac, "a", "bc"), bb_authzcache_key(p, &f->ac, "ab", "c"));
    assert_null(bb_authzcache_key(p, &f->ac, NULL, QUESTION));
    assert_null(bb_authzcache_key(p, &f->ac, PRINCIPAL, NULL));
    f->kc.key.len = BB_CACHE_MIN_SECRET - 1;
    assert_null(bb_authzcache_key(p, &f->ac, PRINCIPAL, QUESTION));
    assert_int_equal(bb_authzcache_store(p, &f->ac, PRINCIPAL, QUESTION, 1, NOW, 300), APR_EINVAL);
    assert_int_equal(lookup(p, f, PRINCIPAL, QUESTION, NOW), BB_AUTHZCACHE_MISS);
}

/* Whoever can write to the cache cannot make a "granted": not by writing one, not by copying another key's,
 * not with another server's secret. */
static void test_forgeries_miss(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 7), *other = fixture(p, 8);
    const char *key = bb_authzcache_key(p, &f->ac, PRINCIPAL, QUESTION);
    fake_entry_t *granted;
    static const char plain[] = "00000000000000000000000000000000v1 1 9999999999";

    f->kc.cache.store(&f->kc.fc, (const unsigned char *)key, (unsigned int)strlen(key), apr_time_from_sec(NOW + 60),
                   (const unsigned char *)plain, sizeof(plain) - 1, p);
    assert_int_equal(lookup(p, f, PRINCIPAL, QUESTION, NOW), BB_AUTHZCACHE_MISS);

    bb_authzcache_store(p, &f->ac, "sid:someone-else", QUESTION, 1, NOW, 300);
    granted = entry_of(p, f, "sid:someone-else", QUESTION);
    f->kc.cache.store(&f->kc.fc, (const unsigned char *)key, (unsigned int)strlen(key), apr_time_from_sec(NOW + 60),
                   granted->value, granted->len, p);
    assert_int_equal(lookup(p, f, PRINCIPAL, QUESTION, NOW), BB_AUTHZCACHE_MISS);

    other->kc.fc.entries = f->kc.fc.entries;          /* one cache, another secret */
    bb_authzcache_store(p, &f->ac, PRINCIPAL, QUESTION, 1, NOW, 300);
    assert_int_equal(lookup(p, other, PRINCIPAL, QUESTION, NOW), BB_AUTHZCACHE_MISS);

    granted = entry_of(p, f, PRINCIPAL, QUESTION);
    granted->value[granted->len - 1] ^= 1;      /* a changed expiry */
    assert_int_equal(lookup(p, f, PRINCIPAL, QUESTION, NOW), BB_AUTHZCACHE_MISS);
}

/* "Check again" drops exactly that answer, at most once a minute per principal and question. */
static void test_forget(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 7);

    bb_authzcache_store(p, &f->ac, PRINCIPAL, QUESTION, 0, NOW, 300);
    bb_authzcache_store(p, &f->ac, PRINCIPAL, "repo PROJ/beta", 0, NOW, 300);
    bb_authzcache_store(p, &f->ac, "sid:someone-else", QUESTION, 0, NOW, 300);
    assert_int_equal(bb_authzcache_forget(p, &f->ac, PRINCIPAL, QUESTION, NOW), APR_SUCCESS);
    assert_int_equal(lookup(p, f, PRINCIPAL, QUESTION, NOW), BB_AUTHZCACHE_MISS);
    assert_int_equal(lookup(p, f, PRINCIPAL, "repo PROJ/beta", NOW), BB_AUTHZCACHE_DENIED);
    assert_int_equal(lookup(p, f, "sid:someone-else", QUESTION, NOW), BB_AUTHZCACHE_DENIED);

    /* Asked again and denied again: the next "check again" waits for the interval. */
    bb_authzcache_store(p, &f->ac, PRINCIPAL, QUESTION, 0, NOW + 1, 300);
    f->kc.fc.now = apr_time_from_sec(NOW + BB_AUTHZCACHE_RECHECK_INTERVAL - 1);
    assert_int_equal(bb_authzcache_forget(p, &f->ac, PRINCIPAL, QUESTION, NOW + BB_AUTHZCACHE_RECHECK_INTERVAL - 1),
                     APR_EBUSY);
    assert_int_equal(lookup(p, f, PRINCIPAL, QUESTION, NOW + 2), BB_AUTHZCACHE_DENIED);
    f->kc.fc.now = apr_time_from_sec(NOW + BB_AUTHZCACHE_RECHECK_INTERVAL);
    assert_int_equal(bb_authzcache_forget(p, &f->ac, PRINCIPAL, QUESTION, NOW + BB_AUTHZCACHE_RECHECK_INTERVAL),
                     APR_SUCCESS);
    /* Nothing cached is no error. */
    assert_int_equal(bb_authzcache_forget(p, &f->ac, PRINCIPAL, "group admins", NOW), APR_SUCCESS);
}

static void test_forget_fails_closed(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 7);

    assert_int_equal(bb_authzcache_forget(p, NULL, PRINCIPAL, QUESTION, NOW), APR_EINVAL);
    assert_int_equal(bb_authzcache_forget(p, &f->ac, NULL, QUESTION, NOW), APR_EINVAL);
    f->kc.fc.retrieve_fails_with = APR_EGENERAL;
    assert_int_equal(bb_authzcache_forget(p, &f->ac, PRINCIPAL, QUESTION, NOW), APR_EGENERAL);
    f->kc.fc.retrieve_fails_with = APR_SUCCESS;
    f->kc.fc.store_fails_with = APR_EGENERAL;
    assert_int_equal(bb_authzcache_forget(p, &f->ac, PRINCIPAL, QUESTION, NOW), APR_EGENERAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_granted_and_denied),
        UNIT_TEST(test_expiry),
        UNIT_TEST(test_keys),
        UNIT_TEST(test_forgeries_miss),
        UNIT_TEST(test_forget),
        UNIT_TEST(test_forget_fails_closed),
    };
    return UNIT_RUN("authzcache", tests);
}
