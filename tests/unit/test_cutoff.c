/* test_cutoff: a user's "not before" record over an in-memory cache, as processes of two hosts see it. */
#include "unit.h"
#include "fake_cache.h"
#include "bb_cutoff.h"

#define NOW 1700000000

static bb_cutoff_t process(apr_pool_t *p, keyed_cache_t *kc, const char *space)
{
    bb_cutoff_t co = { &kc->cache, space, &kc->key, bb_memo_create(p, 64), apr_pcalloc(p, sizeof(bb_cutoff_gate_t)),
                       5 };
    return co;
}

/* Two processes of one integration over one cache: the admin's, and another (of this host or another). */
typedef struct {
    keyed_cache_t kc;
    bb_cutoff_t admin, other;
} two_processes_t;

static void two_processes(apr_pool_t *p, two_processes_t *t)
{
    keyed_cache_init(&t->kc, p, NOW, 0x42);
    t->admin = process(p, &t->kc, "prod");
    t->other = process(p, &t->kc, "prod");
}

static int retrieves;

static apr_status_t counting_retrieve(void *baton, const unsigned char *key, unsigned int keylen,
                                      unsigned char *value, unsigned int *vallen, apr_pool_t *p)
{
    retrieves++;
    return fake_retrieve(baton, key, keylen, value, vallen, p);
}

/* While nobody is cut off (the usual case), a process asks the cache once per `recheck` seconds, whatever the
 * number of users; once someone is, per user through the memo. */
static void test_gate_spares_per_user_lookups(void **state)
{
    apr_pool_t *p = *state;
    two_processes_t t;
    apr_int64_t not_before = 0;
    int i;

    two_processes(p, &t);
    t.kc.cache.retrieve = counting_retrieve;
    retrieves = 0;
    for (i = 0; i < 100; i++) {
        assert_false(bb_cutoff_voids(p, &t.other, apr_psprintf(p, "user%d", i), NOW - 100, NOW + i % 5));
    }
    assert_int_equal(retrieves, 1);
    assert_int_equal(bb_cutoff_set(p, &t.admin, "user7", NOW, NOW + 100, &not_before), APR_SUCCESS);
    /* Believed for `recheck` seconds, then read again: the cut-off is seen. */
    assert_false(bb_cutoff_voids(p, &t.other, "user7", NOW - 100, NOW + 4));
    assert_true(bb_cutoff_voids(p, &t.other, "user7", NOW - 100, NOW + 5));
    assert_false(bb_cutoff_voids(p, &t.other, "user8", NOW - 100, NOW + 5));
    /* The admin's own process at once. */
    assert_true(bb_cutoff_voids(p, &t.admin, "user7", NOW - 100, NOW));
}

static void test_cut_off_everywhere_within_recheck(void **state)
{
    apr_pool_t *p = *state;
    two_processes_t t;
    apr_int64_t not_before = 0;

    two_processes(p, &t);
    assert_false(bb_cutoff_voids(p, &t.other, "alice", NOW - 100, NOW));

    assert_int_equal(bb_cutoff_set(p, &t.admin, "alice", NOW, NOW + 28800, &not_before), APR_SUCCESS);
    assert_int_equal(not_before, NOW + 1);
    /* Kept as long as the longest session. */
    assert_int_equal(((fake_entry_t *)apr_hash_get(t.kc.fc.entries, bb_cache_name(p, "prod", "cutoff", "alice"),
                                                   APR_HASH_KEY_STRING))->expiry, apr_time_from_sec(NOW + 28800));
    /* The admin's process: at once, for everything issued up to and within this second. */
    assert_true(bb_cutoff_voids(p, &t.admin, "alice", NOW - 100, NOW));
    assert_true(bb_cutoff_voids(p, &t.admin, "alice", NOW, NOW));
    assert_false(bb_cutoff_voids(p, &t.admin, "alice", NOW + 1, NOW + 1));
    /* Another process believes its memo's "never cut off" for `recheck` seconds, then reads the record. */
    assert_false(bb_cutoff_voids(p, &t.other, "alice", NOW - 100, NOW + 4));
    assert_true(bb_cutoff_voids(p, &t.other, "alice", NOW - 100, NOW + 5));
    /* A login after the cut-off counts; other users are untouched. */
    assert_false(bb_cutoff_voids(p, &t.other, "alice", NOW + 6, NOW + 6));
    assert_false(bb_cutoff_voids(p, &t.other, "bob", NOW - 100, NOW + 6));
    /* Bitbucket user names are case-insensitive: ALICE is alice. */
    assert_true(bb_cutoff_voids(p, &t.other, "ALICE", NOW - 100, NOW + 6));
    assert_true(bb_cutoff_voids(p, &t.admin, "Alice", NOW - 100, NOW));
}

/* The memo spares the cache: one lookup per user per process per `recheck` seconds. */
static void test_memo_spares_the_cache(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;
    bb_cutoff_t co;
    apr_int64_t not_before = 0;

    keyed_cache_init(&kc, p, NOW, 0x42);
    co = process(p, &kc, "prod");
    assert_int_equal(bb_cutoff_set(p, &co, "alice", NOW, NOW + 100, &not_before), APR_SUCCESS);
    kc.fc.retrieve_fails_with = APR_EGENERAL;
    assert_int_equal(bb_cutoff_not_before(p, &co, "alice", NOW + 4), NOW + 1);
    assert_int_equal(bb_cutoff_not_before(p, &co, "bob", NOW + 4), 0);
}

/* A record written by another integration, or forged by whoever can write to the cache, is no cut-off; one that
 * expired neither. */
static void test_only_this_integrations_records(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc, other_kc;
    bb_cutoff_t prod, staging, forger;
    apr_int64_t not_before = 0;
    const char *key;

    keyed_cache_init(&kc, p, NOW, 0x42);
    prod = process(p, &kc, "prod");
    staging = process(p, &kc, "staging");
    assert_int_equal(bb_cutoff_set(p, &staging, "alice", NOW, NOW + 100, &not_before), APR_SUCCESS);
    assert_int_equal(bb_cutoff_not_before(p, &prod, "alice", NOW), 0);

    /* Same name, another key: not authentic. */
    keyed_cache_init(&other_kc, p, NOW, 0x43);
    other_kc.fc.entries = kc.fc.entries;
    forger = process(p, &other_kc, "prod");
    forger.cache = &kc.cache;
    assert_int_equal(bb_cutoff_set(p, &forger, "bob", NOW, NOW + 100, &not_before), APR_SUCCESS);
    assert_int_equal(bb_cutoff_not_before(p, &prod, "bob", NOW), 0);

    /* Garbage under the name. */
    key = bb_cache_name(p, "prod", "cutoff", "carol");
    kc.cache.store(kc.cache.baton, (const unsigned char *)key, (unsigned int)strlen(key),
                   apr_time_from_sec(NOW + 100), (const unsigned char *)"9999999999", 10, p);
    assert_int_equal(bb_cutoff_not_before(p, &prod, "carol", NOW), 0);

    /* Expired. */
    prod = process(p, &kc, "prod");
    assert_int_equal(bb_cutoff_set(p, &prod, "dave", NOW, NOW + 10, &not_before), APR_SUCCESS);
    prod = process(p, &kc, "prod");
    kc.fc.now = apr_time_from_sec(NOW + 11);
    assert_int_equal(bb_cutoff_not_before(p, &prod, "dave", NOW + 11), 0);
}

static void test_refuses_without_cache_or_user(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;
    bb_cutoff_t co;
    apr_int64_t not_before = 0;

    keyed_cache_init(&kc, p, NOW, 0x42);
    co = process(p, &kc, "prod");
    assert_int_equal(bb_cutoff_set(p, &co, NULL, NOW, NOW + 10, &not_before), APR_EINVAL);
    assert_int_equal(bb_cutoff_not_before(p, &co, NULL, NOW), 0);
    co.cache = NULL;
    assert_int_equal(bb_cutoff_set(p, &co, "alice", NOW, NOW + 10, &not_before), APR_EINVAL);
    assert_int_equal(bb_cutoff_not_before(p, &co, "alice", NOW), 0);
    kc.fc.store_fails_with = APR_EGENERAL;
    co = process(p, &kc, "prod");
    assert_int_equal(bb_cutoff_set(p, &co, "alice", NOW, NOW + 10, &not_before), APR_EGENERAL);
    assert_int_equal(bb_cutoff_not_before(p, &co, "alice", NOW), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_cut_off_everywhere_within_recheck),
        UNIT_TEST(test_memo_spares_the_cache),
        UNIT_TEST(test_gate_spares_per_user_lookups),
        UNIT_TEST(test_only_this_integrations_records),
        UNIT_TEST(test_refuses_without_cache_or_user),
    };
    return UNIT_RUN("bb_cutoff", tests);
}
