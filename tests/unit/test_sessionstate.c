/* test_sessionstate: a session's ended mark, revalidation mark and grant over an in-memory cache, as several
 * processes and hosts see them through their memos. */
#include "unit.h"
#include "fake_cache.h"
#include "bb_sessionstate.h"

#define NOW     1700000000
#define SID     "c2Vzc2lvbi1pZC0xMjM0NTY"
#define KEYFILE "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"

/* One process: its own memo, the shared cache and its host's count of ended sessions; the cache key's secret
 * (0x42 or another byte) tells which of two integrations it belongs to. */
static bb_sessionstate_t process(apr_pool_t *p, keyed_cache_t *kc, volatile apr_uint32_t *host_ends)
{
    const char *err = NULL;
    bb_keyring_t *ring = bb_keyring_parse(p, KEYFILE, strlen(KEYFILE), &err);
    bb_sessionstate_t ss = { &kc->cache, kc->key.secret[0] == 0x42 ? "staging" : "production", &kc->key,
                             bb_sealer_create(p, ring), bb_memo_create(p, 64), host_ends, 5 };
    return ss;
}

static void test_live_until_ended_everywhere(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;
    volatile apr_uint32_t host_a = 0, host_b = 0;
    bb_sessionstate_t a1, a2, b1;

    keyed_cache_init(&kc, p, NOW, 0x42);
    a1 = process(p, &kc, &host_a);
    a2 = process(p, &kc, &host_a);
    b1 = process(p, &kc, &host_b);
    assert_int_equal(bb_sessionstate_liveness(p, &a2, SID, NOW, NOW, NULL), BB_SESSION_LIVE);
    assert_int_equal(bb_sessionstate_liveness(p, &b1, SID, NOW, NOW, NULL), BB_SESSION_LIVE);

    assert_int_equal(bb_sessionstate_end(p, &a1, SID, NOW, NOW + 28800), APR_SUCCESS);
    /* The mark lives until the session's own end. */
    assert_int_equal(((fake_entry_t *)apr_hash_get(kc.fc.entries,
                                                   bb_cache_name(p, "staging", "ended", SID),
                                                   APR_HASH_KEY_STRING))->expiry, apr_time_from_sec(NOW + 28800));
    /* This process and every other process of this host: at once. */
    assert_int_equal(bb_sessionstate_liveness(p, &a1, SID, NOW, NOW, NULL), BB_SESSION_ENDED);
    assert_int_equal(bb_sessionstate_liveness(p, &a2, SID, NOW, NOW, NULL), BB_SESSION_ENDED);
    /* Another host believes its memo for `recheck` seconds, then reads the mark. */
    assert_int_equal(bb_sessionstate_liveness(p, &b1, SID, NOW, NOW + 4, NULL), BB_SESSION_LIVE);
    assert_int_equal(bb_sessionstate_liveness(p, &b1, SID, NOW, NOW + 5, NULL), BB_SESSION_ENDED);
    assert_int_equal(bb_sessionstate_liveness(p, &b1, SID, NOW, NOW + 28000, NULL), BB_SESSION_ENDED);
}

/* "Not ended" comes from the memo for `recheck` seconds: one cache lookup per session per process per period. */
static void test_memo_spares_the_cache(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;
    bb_sessionstate_t ss;

    keyed_cache_init(&kc, p, NOW, 0x42);
    ss = process(p, &kc, NULL);
    assert_int_equal(bb_sessionstate_liveness(p, &ss, SID, NOW, NOW, NULL), BB_SESSION_LIVE);
    kc.fc.retrieve_fails_with = APR_EGENERAL;        /* any lookup now would fail */
    assert_int_equal(bb_sessionstate_liveness(p, &ss, SID, NOW, NOW + 4, NULL), BB_SESSION_LIVE);
    /* Past the period the cache is asked, and an error is no "not ended". */
    assert_int_equal(bb_sessionstate_liveness(p, &ss, SID, NOW, NOW + 5, NULL), BB_SESSION_UNKNOWN);
    ss.recheck = 0;
    ss.memo = NULL;
    kc.fc.retrieve_fails_with = APR_SUCCESS;
    assert_int_equal(bb_sessionstate_liveness(p, &ss, SID, NOW, NOW, NULL), BB_SESSION_LIVE);
    kc.fc.retrieve_fails_with = APR_ETIMEDOUT;
    assert_int_equal(bb_sessionstate_liveness(p, &ss, SID, NOW, NOW, NULL), BB_SESSION_UNKNOWN);
}

/* Two integrations sharing a cache (and a key file) share no mark. */
static void test_integrations_apart(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t staging, production;
    bb_sessionstate_t s, prod;

    keyed_cache_init(&staging, p, NOW, 0x42);
    keyed_cache_init(&production, p, NOW, 0x43);
    production.fc.entries = staging.fc.entries;
    s = process(p, &staging, NULL);
    prod = process(p, &production, NULL);
    assert_int_equal(bb_sessionstate_end(p, &s, SID, NOW, NOW + 60), APR_SUCCESS);
    assert_int_equal(bb_sessionstate_mark_checked(p, &s, SID, NOW, NOW + 900), APR_SUCCESS);
    assert_int_equal(bb_sessionstate_liveness(p, &prod, SID, NOW, NOW, NULL), BB_SESSION_LIVE);
    assert_false(bb_sessionstate_checked(p, &prod, SID, NOW));
}

/* The session key rotates (a new first key): marks and grants are named by the integration, not by the key, so
 * a logout made before still holds for the cookies the old key signed, and the grant still opens. */
static void test_marks_outlive_a_key_rotation(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc, rotated;
    bb_sessionstate_t before, after;
    bb_grant_t grant = { "access-1", "refresh-1", NOW + 3600 };

    keyed_cache_init(&kc, p, NOW, 0x42);
    keyed_cache_init(&rotated, p, NOW, 0x99);
    before = process(p, &kc, NULL);
    after = process(p, &kc, NULL);
    after.key = &rotated.key;
    assert_int_equal(bb_sessionstate_save_grant(p, &before, SID, &grant, NOW, NOW + 600), APR_SUCCESS);
    assert_non_null(bb_sessionstate_load_grant(p, &after, SID, NOW));
    assert_int_equal(bb_sessionstate_end(p, &before, "another-session-id", NOW, NOW + 600), APR_SUCCESS);
    assert_int_equal(bb_sessionstate_liveness(p, &after, "another-session-id", NOW, NOW, NULL), BB_SESSION_ENDED);
}

static void test_checked_marks(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;
    bb_sessionstate_t a, b;
    const char *key;

    keyed_cache_init(&kc, p, NOW, 0x42);
    a = process(p, &kc, NULL);
    b = process(p, &kc, NULL);
    assert_false(bb_sessionstate_checked(p, &a, SID, NOW));
    assert_int_equal(bb_sessionstate_mark_checked(p, &a, SID, NOW, NOW + 900), APR_SUCCESS);
    assert_true(bb_sessionstate_checked(p, &b, SID, NOW + 899));
    kc.fc.keeps_expired = 1;
    assert_false(bb_sessionstate_checked(p, &b, SID, NOW + 900));
    /* Whoever can write to the cache cannot forge one. */
    key = bb_cache_name(p, "staging", "checked", SID);
    fake_store(&kc.fc, (const unsigned char *)key, (unsigned int)strlen(key), apr_time_from_sec(NOW + 9999),
               (const unsigned char *)"1800000000", 10, p);
    b = process(p, &kc, NULL);
    assert_false(bb_sessionstate_checked(p, &b, SID, NOW));
}

/* Liveness tells, in its one memo lookup, what this process knows of the checked mark; never more. */
static void test_liveness_tells_what_the_memo_knows_of_checks(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;
    bb_sessionstate_t a, b;
    int checked = -1;

    keyed_cache_init(&kc, p, NOW, 0x42);
    a = process(p, &kc, NULL);
    b = process(p, &kc, NULL);
    assert_int_equal(bb_sessionstate_liveness(p, &a, SID, NOW, NOW, &checked), BB_SESSION_LIVE);
    assert_int_equal(checked, 0);
    assert_int_equal(bb_sessionstate_mark_checked(p, &a, SID, NOW, NOW + 900), APR_SUCCESS);
    assert_int_equal(bb_sessionstate_liveness(p, &a, SID, NOW, NOW + 1, &checked), BB_SESSION_LIVE);
    assert_int_equal(checked, 1);
    assert_int_equal(bb_sessionstate_liveness(p, &a, SID, NOW, NOW + 900, &checked), BB_SESSION_LIVE);
    assert_int_equal(checked, 0);
    /* Another process has not seen the mark yet: "not known", and bb_sessionstate_checked asks the cache. */
    assert_int_equal(bb_sessionstate_liveness(p, &b, SID, NOW, NOW + 1, &checked), BB_SESSION_LIVE);
    assert_int_equal(checked, 0);
    assert_true(bb_sessionstate_checked(p, &b, SID, NOW + 1));
    assert_int_equal(bb_sessionstate_liveness(p, &b, SID, NOW, NOW + 2, &checked), BB_SESSION_LIVE);
    assert_int_equal(checked, 1);
}

static void test_grants(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;
    bb_sessionstate_t a, b;
    bb_grant_t grant = { "access-1", "refresh-1", NOW + 3600 }, *back;

    keyed_cache_init(&kc, p, NOW, 0x42);
    a = process(p, &kc, NULL);
    b = process(p, &kc, NULL);
    assert_false(bb_sessionstate_has_grant(p, &b, SID, NOW));
    assert_int_equal(bb_sessionstate_save_grant(p, &a, SID, &grant, NOW, NOW + 28800), APR_SUCCESS);
    back = bb_sessionstate_load_grant(p, &b, SID, NOW);
    assert_non_null(back);
    assert_string_equal(back->refresh_token, "refresh-1");
    /* "Has a grant" is remembered for `recheck` seconds, then asked again. */
    apr_hash_clear(kc.fc.entries);
    assert_true(bb_sessionstate_has_grant(p, &b, SID, NOW + 4));
    assert_false(bb_sessionstate_has_grant(p, &b, SID, NOW + 5));
    /* Ending the session forgets its grant. */
    assert_int_equal(bb_sessionstate_save_grant(p, &a, SID, &grant, NOW, NOW + 28800), APR_SUCCESS);
    assert_int_equal(bb_sessionstate_end(p, &a, SID, NOW, NOW + 28800), APR_SUCCESS);
    assert_null(bb_sessionstate_load_grant(p, &b, SID, NOW));
    assert_false(bb_sessionstate_has_grant(p, &a, SID, NOW));
}

/* A cache emptied since a session began (memcached restarted, shmcb reloaded) may have lost its logout mark:
 * "not found" is then no "not ended"; sessions that began after the emptying are live. */
static void test_an_emptied_cache_is_no_not_logged_out(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;
    bb_sessionstate_t a, b;
    apr_int64_t epoch = 0;

    keyed_cache_init(&kc, p, NOW, 0x42);
    a = process(p, &kc, NULL);
    assert_int_equal(bb_sessionstate_epoch(p, &a, NOW, &epoch), APR_SUCCESS);
    assert_int_equal(epoch, NOW);
    assert_int_equal(bb_sessionstate_end(p, &a, SID, NOW + 1, NOW + 28800), APR_SUCCESS);
    apr_hash_clear(kc.fc.entries);                  /* the restart */
    b = process(p, &kc, NULL);
    assert_int_equal(bb_sessionstate_liveness(p, &b, SID, NOW, NOW + 10, NULL), BB_SESSION_UNVERIFIED);
    assert_int_equal(bb_sessionstate_epoch(p, &b, NOW + 20, &epoch), APR_SUCCESS);
    assert_int_equal(epoch, NOW + 10);
    /* Not remembered as live: asked again, still unverified. */
    assert_int_equal(bb_sessionstate_liveness(p, &b, SID, NOW, NOW + 11, NULL), BB_SESSION_UNVERIFIED);
    assert_int_equal(bb_sessionstate_liveness(p, &b, "a-later-session", NOW + 10, NOW + 11, NULL), BB_SESSION_LIVE);
}

/* mod_socache_memcache once it marked the server dead: "not found" for every read, an error for every write. The
 * canary cannot be kept: unknown (503), never "not ended"; and when the server answers again (not restarted), the
 * old epoch holds: nobody logs in again. */
static void test_a_blind_cache_is_unknown_until_it_sees_again(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;
    bb_sessionstate_t a;
    apr_int64_t epoch = 0;

    keyed_cache_init(&kc, p, NOW, 0x42);
    a = process(p, &kc, NULL);
    a.memo = NULL;
    assert_int_equal(bb_sessionstate_liveness(p, &a, SID, NOW, NOW, NULL), BB_SESSION_LIVE);
    kc.fc.retrieve_fails_with = APR_NOTFOUND;
    kc.fc.store_fails_with = APR_EGENERAL;
    assert_int_equal(bb_sessionstate_liveness(p, &a, SID, NOW, NOW + 100, NULL), BB_SESSION_UNKNOWN);
    assert_int_not_equal(bb_sessionstate_epoch(p, &a, NOW + 100, &epoch), APR_SUCCESS);
    kc.fc.retrieve_fails_with = APR_SUCCESS;
    kc.fc.store_fails_with = APR_SUCCESS;
    assert_int_equal(bb_sessionstate_liveness(p, &a, SID, NOW, NOW + 200, NULL), BB_SESSION_LIVE);
    assert_int_equal(bb_sessionstate_epoch(p, &a, NOW + 200, &epoch), APR_SUCCESS);
    assert_int_equal(epoch, NOW);
}

/* A cache that takes writes but keeps nothing is as blind. */
static void test_a_cache_that_keeps_nothing_is_unknown(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;
    bb_sessionstate_t a;

    keyed_cache_init(&kc, p, NOW, 0x42);
    a = process(p, &kc, NULL);
    kc.fc.retrieve_fails_with = APR_NOTFOUND;
    assert_int_equal(bb_sessionstate_liveness(p, &a, SID, NOW, NOW, NULL), BB_SESSION_UNKNOWN);
    assert_true(kc.fc.stores > 0);                   /* it took the canary, and could not give it back */
}

/* The canary is rewritten, its epoch kept, at most once a minute (an evicting cache keeps it among its newest
 * entries); it is named by the integration, not the key, so a key rotation starts no new epoch; a value that is
 * not a canary is replaced by a new one. */
static void test_the_canary_is_kept_fresh(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc, rotated;
    bb_sessionstate_t a;
    apr_int64_t epoch = 0;
    int stores;

    keyed_cache_init(&kc, p, NOW, 0x42);
    keyed_cache_init(&rotated, p, NOW, 0x99);
    a = process(p, &kc, NULL);
    assert_int_equal(bb_sessionstate_epoch(p, &a, NOW, &epoch), APR_SUCCESS);
    stores = kc.fc.stores;
    assert_int_equal(bb_sessionstate_epoch(p, &a, NOW + 59, &epoch), APR_SUCCESS);
    assert_int_equal(kc.fc.stores, stores);
    assert_int_equal(bb_sessionstate_epoch(p, &a, NOW + 60, &epoch), APR_SUCCESS);
    assert_int_equal(kc.fc.stores, stores + 1);
    assert_int_equal(epoch, NOW);
    a.key = &rotated.key;
    assert_int_equal(bb_sessionstate_epoch(p, &a, NOW + 61, &epoch), APR_SUCCESS);
    assert_int_equal(epoch, NOW);
    kc.cache.store(&kc.fc, (const unsigned char *)bb_cache_name(p, "staging", "canary", "epoch"),
                (unsigned int)strlen(bb_cache_name(p, "staging", "canary", "epoch")), apr_time_from_sec(NOW + 600),
                (const unsigned char *)"junk", 4, p);
    assert_int_equal(bb_sessionstate_epoch(p, &a, NOW + 70, &epoch), APR_SUCCESS);
    assert_int_equal(epoch, NOW + 70);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_live_until_ended_everywhere),
        UNIT_TEST(test_memo_spares_the_cache),
        UNIT_TEST(test_integrations_apart),
        UNIT_TEST(test_marks_outlive_a_key_rotation),
        UNIT_TEST(test_checked_marks),
        UNIT_TEST(test_liveness_tells_what_the_memo_knows_of_checks),
        UNIT_TEST(test_grants),
        UNIT_TEST(test_an_emptied_cache_is_no_not_logged_out),
        UNIT_TEST(test_a_blind_cache_is_unknown_until_it_sees_again),
        UNIT_TEST(test_a_cache_that_keeps_nothing_is_unknown),
        UNIT_TEST(test_the_canary_is_kept_fresh),
    };
    return UNIT_RUN("bb_sessionstate", tests);
}
