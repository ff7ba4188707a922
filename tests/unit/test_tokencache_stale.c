/* test_tokencache_stale: BBAuthStaleIfError's lookup: valid verdicts kept past their TTL, never refused ones. */
#include "unit.h"
#include "fake_cache.h"
#include "bb_tokencache.h"

#define NOW    1700000000
#define TOKEN  "BBDC-MzE2NjY5NTk4NzU5OrJl4m+Ju/w7rQ=="
#define TTL    300
#define GRACE  600

static const bb_user_t bob = { "bob", "bob", "Bob", "bob@example.com", "NORMAL", 7, 1 };

/* A token cache with this grace over a fake cache (keeping expired entries or not), clock at NOW. */
typedef struct {
    keyed_cache_t kc;
    bb_tokencache_t tc;
    bb_tokencache_entry_t *entry;
} fixture_t;

static fixture_t *fixture(apr_pool_t *p, apr_int64_t grace, int keeps_expired)
{
    fixture_t *f = apr_pcalloc(p, sizeof(*f));

    keyed_cache_init(&f->kc, p, NOW, 7);
    f->kc.fc.keeps_expired = keeps_expired;
    f->tc.cache = &f->kc.cache;
    f->tc.key = &f->kc.key;
    f->tc.memo = bb_memo_create(p, 16);   /* where this process keeps refusals */
    f->tc.stale_grace = grace;
    return f;
}

/* The stale lookup at `now` (the fake cache's clock too). */
static int stale_at(apr_pool_t *p, fixture_t *f, apr_int64_t now)
{
    f->kc.fc.now = apr_time_from_sec(now);
    return bb_tokencache_lookup_stale(p, &f->tc, TOKEN, now, &f->entry);
}

static void test_a_valid_verdict_is_kept_and_found_through_the_grace(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, GRACE, 0);

    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &bob, NOW, TTL), APR_SUCCESS);
    /* Past the TTL: an ordinary lookup misses, the stale one finds it until the grace ends. */
    f->kc.fc.now = apr_time_from_sec(NOW + TTL + 10);
    assert_int_equal(bb_tokencache_lookup(p, &f->tc, TOKEN, NOW + TTL + 10, &f->entry), BB_TOKENCACHE_MISS);
    assert_true(stale_at(p, f, NOW + TTL + 10));
    assert_string_equal(f->entry->user->name, "bob");
    assert_int_equal(f->entry->validated_at, NOW);
    assert_int_equal(f->entry->expires, NOW + TTL);
    assert_true(stale_at(p, f, NOW + TTL + GRACE - 1));
    /* The cache itself keeps it no longer than that, and the record says so too where a cache keeps more. */
    assert_false(stale_at(p, f, NOW + TTL + GRACE));
    f->kc.fc.keeps_expired = 1;
    assert_false(stale_at(p, f, NOW + TTL + GRACE));
}

static void test_refused_tokens_are_never_stale_hits(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, GRACE, 1);

    assert_int_equal(bb_tokencache_store_invalid(p, &f->tc, TOKEN, NOW, 30), APR_SUCCESS);
    assert_false(stale_at(p, f, NOW + 31));
    assert_false(stale_at(p, f, NOW + 1));   /* not even while current */
    /* A token accepted, then refused (its owner deactivated): the refusal removed the verdict for good, from the
     * shared cache too (other processes have no memo of the refusal). */
    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &bob, NOW, TTL), APR_SUCCESS);
    assert_int_equal(bb_tokencache_store_invalid(p, &f->tc, TOKEN, NOW + TTL, 30), APR_SUCCESS);
    assert_false(stale_at(p, f, NOW + TTL + 40));
    assert_int_equal(apr_hash_count(f->kc.fc.entries), 0);
}

static void test_off_without_a_grace(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 0, 1);

    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &bob, NOW, TTL), APR_SUCCESS);
    assert_false(stale_at(p, f, NOW + TTL + 1));
    assert_false(stale_at(p, f, NOW + 1));
    assert_false(bb_tokencache_lookup_stale(p, NULL, TOKEN, NOW + 1, &f->entry));
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
