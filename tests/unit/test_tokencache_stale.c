/* test_tokencache_stale: BBAuthStaleIfError's lookup: valid verdicts kept past their TTL, never refused ones. */
#include "unit.h"
#include "fake_cache.h"
#include "bb_tokencache.h"

#define NOW    1700000000
#define TOKEN  "BBDC-MzE2NjY5NTk4NzU5OrJl4m+Ju/w7rQ=="
#define TTL    300
#define GRACE  600

static const bb_user_t bob = { "bob", "bob", "Bob", "bob@example.com", "NORMAL", 7, 1 };

/* A token cache over kc whose clock reads now for the lookups. */
static bb_tokencache_t cache_at(keyed_cache_t *kc, apr_int64_t grace, apr_int64_t now)
{
    bb_tokencache_t tc = { &kc->cache, &kc->key, NULL, grace };

    kc->fc.now = apr_time_from_sec(now);
    return tc;
}

static void test_a_valid_verdict_is_kept_and_found_through_the_grace(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;
    bb_tokencache_t tc;
    bb_tokencache_entry_t *entry = NULL;

    keyed_cache_init(&kc, p, NOW, 7);
    tc = cache_at(&kc, GRACE, NOW);
    assert_int_equal(bb_tokencache_store_valid(p, &tc, TOKEN, &bob, NOW, TTL), APR_SUCCESS);
    /* Past the TTL: an ordinary lookup misses, the stale one finds it until the grace ends. */
    tc = cache_at(&kc, GRACE, NOW + TTL + 10);
    assert_int_equal(bb_tokencache_lookup(p, &tc, TOKEN, NOW + TTL + 10, &entry), BB_TOKENCACHE_MISS);
    assert_true(bb_tokencache_lookup_stale(p, &tc, TOKEN, NOW + TTL + 10, &entry));
    assert_string_equal(entry->user->name, "bob");
    assert_int_equal(entry->validated_at, NOW);
    assert_int_equal(entry->expires, NOW + TTL);
    tc = cache_at(&kc, GRACE, NOW + TTL + GRACE - 1);
    assert_true(bb_tokencache_lookup_stale(p, &tc, TOKEN, NOW + TTL + GRACE - 1, &entry));
    /* The cache itself keeps it no longer than that, and the record says so too where a cache keeps more. */
    tc = cache_at(&kc, GRACE, NOW + TTL + GRACE);
    assert_false(bb_tokencache_lookup_stale(p, &tc, TOKEN, NOW + TTL + GRACE, &entry));
    kc.fc.keeps_expired = 1;
    assert_false(bb_tokencache_lookup_stale(p, &tc, TOKEN, NOW + TTL + GRACE, &entry));
}

static void test_refused_tokens_are_never_stale_hits(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;
    bb_tokencache_t tc;
    bb_tokencache_entry_t *entry = NULL;

    keyed_cache_init(&kc, p, NOW, 7);
    kc.fc.keeps_expired = 1;
    tc = cache_at(&kc, GRACE, NOW);
    assert_int_equal(bb_tokencache_store_invalid(p, &tc, TOKEN, NOW, 30), APR_SUCCESS);
    assert_false(bb_tokencache_lookup_stale(p, &tc, TOKEN, NOW + 31, &entry));
    assert_false(bb_tokencache_lookup_stale(p, &tc, TOKEN, NOW + 1, &entry));   /* not even while current */
    /* A token accepted, then refused (its owner deactivated): the refusal replaced the verdict for good. */
    assert_int_equal(bb_tokencache_store_valid(p, &tc, TOKEN, &bob, NOW, TTL), APR_SUCCESS);
    assert_int_equal(bb_tokencache_store_invalid(p, &tc, TOKEN, NOW + TTL, 30), APR_SUCCESS);
    assert_false(bb_tokencache_lookup_stale(p, &tc, TOKEN, NOW + TTL + 40, &entry));
}

static void test_off_without_a_grace(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;
    bb_tokencache_t tc;
    bb_tokencache_entry_t *entry = NULL;

    keyed_cache_init(&kc, p, NOW, 7);
    kc.fc.keeps_expired = 1;
    tc = cache_at(&kc, 0, NOW);
    assert_int_equal(bb_tokencache_store_valid(p, &tc, TOKEN, &bob, NOW, TTL), APR_SUCCESS);
    assert_false(bb_tokencache_lookup_stale(p, &tc, TOKEN, NOW + TTL + 1, &entry));
    assert_false(bb_tokencache_lookup_stale(p, &tc, TOKEN, NOW + 1, &entry));
    assert_false(bb_tokencache_lookup_stale(p, NULL, TOKEN, NOW + 1, &entry));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_a_valid_verdict_is_kept_and_found_through_the_grace),
        UNIT_TEST(test_refused_tokens_are_never_stale_hits),
        UNIT_TEST(test_off_without_a_grace),
    };

    return UNIT_RUN("tokencache_stale", tests);
}
