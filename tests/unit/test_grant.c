/* test_grant: a session's OAuth tokens sealed in the cache: round trip, bound to the sid, other keys, garbage. */
#include "unit.h"
#include "fake_cache.h"
#include "bb_grant.h"

#define NOW 1700000000
#define KEY_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
#define KEY_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n"

static bb_sealer_t *sealer_for(apr_pool_t *p, const char *key_file)
{
    const char *err = NULL;
    bb_keyring_t *ring = bb_keyring_parse(p, key_file, strlen(key_file), &err);
    assert_non_null(ring);
    return bb_sealer_create(p, ring);
}

static void test_round_trip_and_nothing_in_clear(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;
    bb_sealer_t *sealer = sealer_for(p, KEY_A);
    bb_grant_t grant = { "access-TOKEN-1", "refresh-TOKEN-1", NOW + 3600 };
    bb_grant_t *back;
    apr_hash_index_t *hi;
    const void *stored;
    apr_ssize_t len;

    keyed_cache_init(&kc, p, NOW, 0x42);
    assert_int_equal(bb_grant_store(p, &kc.cache, "space", sealer, "sid-1", &grant, apr_time_from_sec(NOW + 60)), APR_SUCCESS);
    back = bb_grant_load(p, &kc.cache, "space", sealer, "sid-1");
    assert_non_null(back);
    assert_string_equal(back->access_token, "access-TOKEN-1");
    assert_string_equal(back->refresh_token, "refresh-TOKEN-1");
    assert_int_equal(back->expires_at, NOW + 3600);

    hi = apr_hash_first(p, kc.fc.entries);
    apr_hash_this(hi, &stored, &len, NULL);
    assert_null(strstr((const char *)stored, "sid-1"));                   /* the key is a hash of the sid */
    assert_null(memmem(((fake_entry_t *)apr_hash_this_val(hi))->value,
                       ((fake_entry_t *)apr_hash_this_val(hi))->len, "TOKEN", 5));

    bb_grant_remove(p, &kc.cache, "space", "sid-1");
    assert_null(bb_grant_load(p, &kc.cache, "space", sealer, "sid-1"));
}

static void test_bound_to_its_session_and_key(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;
    bb_sealer_t *sealer = sealer_for(p, KEY_A);
    bb_grant_t grant = { "at", "", 0 };
    const char *key_1, *key_2;
    fake_entry_t *e;

    keyed_cache_init(&kc, p, NOW, 0x42);
    key_1 = bb_cache_name(p, "space", "grant", "sid-1");
    key_2 = bb_cache_name(p, "space", "grant", "sid-2");
    assert_int_equal(bb_grant_store(p, &kc.cache, "space", sealer, "sid-1", &grant, apr_time_from_sec(NOW + 60)), APR_SUCCESS);
    assert_null(bb_grant_load(p, &kc.cache, "space", sealer_for(p, KEY_B), "sid-1"));   /* another key */
    /* The sealed value copied under another session's key does not open there. */
    e = apr_hash_get(kc.fc.entries, key_1, APR_HASH_KEY_STRING);
    fake_store(&kc.fc, (const unsigned char *)key_2, (unsigned int)strlen(key_2), e->expiry, e->value, e->len, p);
    assert_null(bb_grant_load(p, &kc.cache, "space", sealer, "sid-2"));
    /* Garbage in the cache is no grant. */
    fake_store(&kc.fc, (const unsigned char *)key_1, (unsigned int)strlen(key_1), e->expiry,
               (const unsigned char *)"garbage", 7, p);
    assert_null(bb_grant_load(p, &kc.cache, "space", sealer, "sid-1"));
    assert_null(bb_grant_load(p, &kc.cache, "space", sealer, "nothing-stored"));
}

static void test_refuses_a_grant_without_access_token(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t kc;
    bb_grant_t empty = { "", "rt", 0 }, none = { NULL, "rt", 0 };

    keyed_cache_init(&kc, p, NOW, 0x42);
    assert_int_equal(bb_grant_store(p, &kc.cache, "space", sealer_for(p, KEY_A), "s", &empty, 0), APR_EINVAL);
    assert_int_equal(bb_grant_store(p, &kc.cache, "space", sealer_for(p, KEY_A), "s", &none, 0), APR_EINVAL);
    assert_int_equal(kc.fc.stores, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_round_trip_and_nothing_in_clear),
        UNIT_TEST(test_bound_to_its_session_and_key),
        UNIT_TEST(test_refuses_a_grant_without_access_token),
    };
    return UNIT_RUN("bb_grant", tests);
}
