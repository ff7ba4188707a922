/* test_tokencache: the validated-token cache over an in-memory bb_cache_t: hits, misses, expiry, keys, forgeries. */
#include "unit.h"
#include "fake_cache.h"
#include <apr_hash.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "bb_util.h"
#include "bb_tokencache.h"
#include "bb_hmac.h"
#include "bb_memo.h"

#define NOW    1700000000
#define TOKEN  "BBDC-MzE2NjY5NTk4NzU5OrJl4m+Ju/w7rQ=="
#define OTHER  "NjQ5MTk2NzQ0MjE1OrHr3b5SJQyxqMTEwl1x"

/* ---- Fixtures ---- */

typedef struct {
    keyed_cache_t kc;
    bb_tokencache_t tc;
} fixture_t;

static fixture_t *fixture(apr_pool_t *p, unsigned char secret_byte)
{
    fixture_t *f = apr_pcalloc(p, sizeof(*f));

    keyed_cache_init(&f->kc, p, NOW, secret_byte);
    f->tc.cache = &f->kc.cache;
    f->tc.key = &f->kc.key;
    return f;
}

static const bb_user_t alice = {
    "alice@example.com", "alice_example.com", "Alice Liddell", "alice@example.com", "NORMAL", 103, 1
};

static bb_tokencache_result_t lookup(apr_pool_t *p, fixture_t *f, const char *token, apr_int64_t now,
                                     bb_tokencache_entry_t **entry)
{
    f->kc.fc.now = apr_time_from_sec(now);
    return bb_tokencache_lookup(p, &f->tc, token, now, entry);
}

/* Puts raw bytes in the cache under the token's key, as anyone who can write to the cache could. */
static void put_raw(apr_pool_t *p, fixture_t *f, const char *token, const void *value, apr_size_t len)
{
    const char *key = bb_tokencache_key(p, &f->tc, token);
    fake_store(&f->kc.fc, (const unsigned char *)key, (unsigned int)strlen(key), apr_time_from_sec(NOW + 300),
               value, (unsigned int)len, p);
}

/* A record MAC'd the documented way (HMAC-SHA256(secret, key NUL json) then json): passes authentication, so
 * what the JSON says is what is tested. */
static void put_authentic(apr_pool_t *p, fixture_t *f, const char *token, const char *json)
{
    const char *key = bb_tokencache_key(p, &f->tc, token);
    apr_size_t key_len = strlen(key) + 1, json_len = strlen(json);
    unsigned char *msg = apr_palloc(p, key_len + json_len);
    unsigned char *value = apr_palloc(p, 32 + json_len);
    unsigned int mac_len = 0;

    memcpy(msg, key, key_len);
    memcpy(msg + key_len, json, json_len);
    HMAC(EVP_sha256(), f->kc.secret, sizeof(f->kc.secret), msg, key_len + json_len, value, &mac_len);
    memcpy(value + 32, json, json_len);
    put_raw(p, f, token, value, 32 + json_len);
}

static fake_entry_t *only_entry(fixture_t *f)
{
    apr_hash_index_t *hi = apr_hash_first(f->kc.fc.pool, f->kc.fc.entries);
    assert_int_equal(apr_hash_count(f->kc.fc.entries), 1);
    return apr_hash_this_val(hi);
}

/* entry is alice's verdict, every field as stored, validated at NOW for 300 s. */
static void assert_alice_validated_at_now(const bb_tokencache_entry_t *entry)
{
    assert_string_equal(entry->user->name, "alice@example.com");
    assert_string_equal(entry->user->slug, "alice_example.com");
    assert_string_equal(entry->user->display_name, "Alice Liddell");
    assert_string_equal(entry->user->email, "alice@example.com");
    assert_string_equal(entry->user->type, "NORMAL");
    assert_int_equal(entry->user->id, 103);
    assert_int_equal(entry->user->active, 1);
    assert_int_equal(entry->validated_at, NOW);
    assert_int_equal(entry->expires, NOW + 300);
}

/* ---- Tests ---- */

static void test_miss_when_empty(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 0x5a);
    bb_tokencache_entry_t *entry = NULL;

    assert_int_equal(lookup(p, f, TOKEN, NOW, &entry), BB_TOKENCACHE_MISS);
    assert_null(entry);
}

static void test_valid_hit_has_every_field(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 0x5a);
    bb_tokencache_entry_t *entry = NULL;

    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &alice, NOW, 300), APR_SUCCESS);
    assert_int_equal(lookup(p, f, TOKEN, NOW + 10, &entry), BB_TOKENCACHE_HIT_VALID);
    assert_non_null(entry->user);
    assert_alice_validated_at_now(entry);
    /* Another token is not this one. */
    assert_int_equal(lookup(p, f, OTHER, NOW + 10, &entry), BB_TOKENCACHE_MISS);
}

static void test_service_user_with_missing_strings(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 0x5a);
    bb_user_t svc = { "project-key-bot", NULL, "Project token", NULL, "SERVICE", 9007199254740993LL, 0 };
    bb_tokencache_entry_t *entry = NULL;

    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &svc, NOW, 300), APR_SUCCESS);
    assert_int_equal(lookup(p, f, TOKEN, NOW, &entry), BB_TOKENCACHE_HIT_VALID);
    assert_string_equal(entry->user->slug, "");
    assert_string_equal(entry->user->email, "");
    assert_string_equal(entry->user->type, "SERVICE");
    assert_int_equal(entry->user->id, 9007199254740993LL);
    assert_int_equal(entry->user->active, 0);
}

static void test_invalid_hit(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 0x5a);
    bb_tokencache_entry_t *entry = NULL;

    /* Refusals are kept in this process only: without a memo, nowhere; with one, never in the shared cache,
     * where tokens nobody issued would push out what security rests on. */
    assert_int_equal(bb_tokencache_store_invalid(p, &f->tc, TOKEN, NOW, 30), APR_ENOTIMPL);
    f->tc.memo = bb_memo_create(p, 16);
    assert_int_equal(bb_tokencache_store_invalid(p, &f->tc, TOKEN, NOW, 30), APR_SUCCESS);
    assert_int_equal(f->kc.fc.stores, 0);
    assert_int_equal(lookup(p, f, TOKEN, NOW + 29, &entry), BB_TOKENCACHE_HIT_INVALID);
    assert_null(entry->user);
    assert_int_equal(entry->validated_at, NOW);
    assert_int_equal(entry->expires, NOW + 30);
    /* A later verdict replaces it. */
    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &alice, NOW + 29, 300), APR_SUCCESS);
    assert_int_equal(lookup(p, f, TOKEN, NOW + 29, &entry), BB_TOKENCACHE_HIT_VALID);
}

static void test_expiry(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 0x5a);
    bb_tokencache_entry_t *entry = NULL;

    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &alice, NOW, 300), APR_SUCCESS);
    assert_int_equal(only_entry(f)->expiry, apr_time_from_sec(NOW + 300));
    assert_int_equal(lookup(p, f, TOKEN, NOW + 299, &entry), BB_TOKENCACHE_HIT_VALID);
    assert_int_equal(lookup(p, f, TOKEN, NOW + 300, &entry), BB_TOKENCACHE_MISS);
    /* The record's own expiry holds even when the cache keeps it longer (or an old copy is put back). */
    f->kc.fc.keeps_expired = 1;
    assert_int_equal(lookup(p, f, TOKEN, NOW + 300, &entry), BB_TOKENCACHE_MISS);
    /* A refusal (kept in the memo) ends at its own expiry too. */
    f = fixture(p, 0x5a);
    f->tc.memo = bb_memo_create(p, 16);
    assert_int_equal(bb_tokencache_store_invalid(p, &f->tc, TOKEN, NOW, 30), APR_SUCCESS);
    assert_int_equal(lookup(p, f, TOKEN, NOW + 29, &entry), BB_TOKENCACHE_HIT_INVALID);
    assert_int_equal(lookup(p, f, TOKEN, NOW + 30, &entry), BB_TOKENCACHE_MISS);
}

static void test_key_hides_the_token(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 0x5a), *g = fixture(p, 0xa5);
    const char *key = bb_tokencache_key(p, &f->tc, TOKEN);
    fake_entry_t *e;
    const void *stored_key;
    apr_ssize_t stored_len;
    bb_tokencache_entry_t *entry = NULL;
    unsigned char digest[32];
    const char *plain_hash;

    assert_int_equal(EVP_Digest(TOKEN, strlen(TOKEN), digest, NULL, EVP_sha256(), NULL), 1);
    plain_hash = bb_base64url_encode(p, digest, sizeof(digest));
    assert_non_null(key);
    assert_int_equal(strlen(key), 47);
    assert_string_equal(key + 43, ":tok");           /* the keyed hash first: shmcb spreads by the first byte */
    assert_null(strstr(key, "BBDC"));
    assert_string_equal(key, bb_tokencache_key(p, &f->tc, TOKEN));
    assert_string_not_equal(key, bb_tokencache_key(p, &f->tc, OTHER));
    assert_string_not_equal(key, bb_tokencache_key(p, &g->tc, TOKEN));
    /* Not a plain hash either. */
    assert_memory_not_equal(key, plain_hash, 43);

    /* Neither the stored key nor the stored value holds the token. */
    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &alice, NOW, 300), APR_SUCCESS);
    e = only_entry(f);
    apr_hash_this(apr_hash_first(p, f->kc.fc.entries), &stored_key, &stored_len, NULL);
    assert_int_equal(stored_len, 47);
    assert_memory_equal(stored_key, key, 47);
    assert_null(memmem(e->value, e->len, "MzE2NjY5NTk4NzU5", 16));
    /* Records made under one secret are misses under another. */
    g->kc.fc.entries = f->kc.fc.entries;
    assert_int_equal(lookup(p, g, TOKEN, NOW, &entry), BB_TOKENCACHE_MISS);
}

static void test_malformed_values_are_misses(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 0x5a);
    bb_tokencache_entry_t *entry = NULL;
    static const char *const forged_json[] = {
        "{\"v\":1,\"valid\":true,\"at\":1700000000,\"exp\":1700000300}",
        "{\"v\":1,\"valid\":\"yes\",\"at\":1700000000,\"exp\":1700000300}",
        "{\"v\":2,\"valid\":false,\"at\":1700000000,\"exp\":1700000300}",
        "{\"v\":1,\"valid\":false,\"at\":1700000000}",
        "{\"v\":1,\"valid\":false,\"at\":1700000000,\"exp\":\"1700000300\"}",
        "{\"v\":1,\"valid\":false,\"at\":1700000000,\"exp\":1700000300,\"exp\":1800000000}",
        "{\"v\":1,\"valid\":true,\"at\":1700000000,\"exp\":1700000300,\"name\":\"\",\"slug\":\"\","
            "\"display_name\":\"\",\"email\":\"\",\"type\":\"NORMAL\",\"id\":1,\"active\":true}",
        "{\"v\":1,\"valid\":true,\"at\":1700000000,\"exp\":1700000300,\"name\":\"admin\",\"slug\":\"admin\","
            "\"display_name\":\"A\",\"email\":\"\",\"type\":\"NORMAL\",\"id\":\"1\",\"active\":true}",
        "{\"v\":1,\"valid\":true,\"at\":1700000000,\"exp\":1700000300,\"name\":null,\"slug\":\"admin\","
            "\"display_name\":\"A\",\"email\":\"\",\"type\":\"NORMAL\",\"id\":1,\"active\":true}",
        "[1,true,1700000000,1700000300]",
        "{\"v\":1,\"valid\":false,\"at\":1700000000,\"exp\":1700000300",
        "",
        /* Well-formed, but refusals are never shared: none in the cache is believed. */
        "{\"v\":1,\"valid\":false,\"at\":1700000000,\"exp\":1700000300}",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(forged_json) / sizeof(forged_json[0]); i++) {
        put_authentic(p, f, TOKEN, forged_json[i]);
        if (lookup(p, f, TOKEN, NOW, &entry) != BB_TOKENCACHE_MISS) {
            fail_msg("accepted: %s", forged_json[i]);
        }
    }
    /* Without the MAC, or too short to hold one. */
    put_raw(p, f, TOKEN, forged_json[0], strlen(forged_json[0]));
    assert_int_equal(lookup(p, f, TOKEN, NOW, &entry), BB_TOKENCACHE_MISS);
    put_raw(p, f, TOKEN, "garbage", 7);
    assert_int_equal(lookup(p, f, TOKEN, NOW, &entry), BB_TOKENCACHE_MISS);
    put_raw(p, f, TOKEN, "", 0);
    assert_int_equal(lookup(p, f, TOKEN, NOW, &entry), BB_TOKENCACHE_MISS);
    /* The forgery helper itself is right: the same way, a well-formed record is a hit. */
    put_authentic(p, f, TOKEN, "{\"v\":1,\"valid\":true,\"at\":1700000000,\"exp\":1700000300,\"name\":\"admin\","
                  "\"slug\":\"admin\",\"display_name\":\"A\",\"email\":\"\",\"type\":\"NORMAL\",\"id\":1,\"active\":true}");
    assert_int_equal(lookup(p, f, TOKEN, NOW, &entry), BB_TOKENCACHE_HIT_VALID);
    assert_string_equal(entry->user->name, "admin");
}

static void test_changed_or_moved_records_are_misses(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 0x5a);
    bb_tokencache_entry_t *entry = NULL;
    fake_entry_t *e;
    unsigned char *edited;
    char *name;
    unsigned int i;

    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &alice, NOW, 300), APR_SUCCESS);
    e = only_entry(f);
    /* The user name changed in place ("alice" → "admin"). */
    edited = apr_pmemdup(p, e->value, e->len);
    name = memmem(edited, e->len, "\"name\":\"alice", 13);
    assert_non_null(name);
    memcpy(name + 8, "admin", 5);
    put_raw(p, f, TOKEN, edited, e->len);
    assert_int_equal(lookup(p, f, TOKEN, NOW, &entry), BB_TOKENCACHE_MISS);
    /* alice's genuine record copied under another token's key. */
    put_raw(p, f, OTHER, e->value, e->len);
    assert_int_equal(lookup(p, f, OTHER, NOW, &entry), BB_TOKENCACHE_MISS);
    /* Every single changed byte. */
    for (i = 0; i < e->len; i++) {
        unsigned char *copy = apr_pmemdup(p, e->value, e->len);
        copy[i] ^= 0x01;
        put_raw(p, f, TOKEN, copy, e->len);
        if (lookup(p, f, TOKEN, NOW, &entry) != BB_TOKENCACHE_MISS) {
            fail_msg("byte %u changed and still a hit", i);
        }
    }
}

static void test_refused_stores(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 0x5a);
    bb_tokencache_entry_t *entry = NULL;
    bb_user_t big = alice, nameless = alice;
    char *long_name = apr_palloc(p, BB_CACHE_MAX_VALUE + 1);

    memset(long_name, 'x', BB_CACHE_MAX_VALUE);
    long_name[BB_CACHE_MAX_VALUE] = '\0';
    big.display_name = long_name;
    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &big, NOW, 300), APR_ENOSPC);
    nameless.name = "";
    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &nameless, NOW, 300), APR_EINVAL);
    nameless.name = NULL;
    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &nameless, NOW, 300), APR_EINVAL);
    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, NULL, NOW, 300), APR_EINVAL);
    big.display_name = "\xff\xfe not UTF-8";
    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &big, NOW, 300), APR_EINVAL);
    assert_int_equal(bb_tokencache_store_invalid(p, &f->tc, TOKEN, NOW, 0), APR_EINVAL);
    assert_int_equal(apr_hash_count(f->kc.fc.entries), 0);
    assert_int_equal(lookup(p, f, TOKEN, NOW, &entry), BB_TOKENCACHE_MISS);
}

static void test_short_secret_caches_nothing(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 0x5a);
    bb_tokencache_entry_t *entry = NULL;

    f->kc.key.len = BB_CACHE_MIN_SECRET - 1;
    assert_null(bb_tokencache_key(p, &f->tc, TOKEN));
    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &alice, NOW, 300), APR_EINVAL);
    assert_int_equal(lookup(p, f, TOKEN, NOW, &entry), BB_TOKENCACHE_MISS);
    f->tc.cache = NULL;
    f->kc.key.len = sizeof(f->kc.secret);
    assert_int_equal(bb_tokencache_lookup(p, &f->tc, TOKEN, NOW, &entry), BB_TOKENCACHE_MISS);
    assert_int_equal(bb_tokencache_store_invalid(p, &f->tc, TOKEN, NOW, 30), APR_EINVAL);
}

/* With this process's memo, a verdict stored or read once is served without the shared cache (here emptied
 * behind its back) until its own expiry, with every field; the MAC key set up once gives the same keys. */
static void test_memo_serves_verdicts(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 0x5a), *other_host = fixture(p, 0x5a);
    bb_tokencache_entry_t *entry = NULL;
    const char *plain_key = bb_tokencache_key(p, &f->tc, TOKEN);

    f->kc.key.hmac = bb_hmac_key_create(p, f->kc.secret, sizeof(f->kc.secret));
    f->tc.memo = bb_memo_create(p, 16);
    assert_string_equal(bb_tokencache_key(p, &f->tc, TOKEN), plain_key);
    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &alice, NOW, 300), APR_SUCCESS);
    apr_hash_clear(f->kc.fc.entries);
    assert_int_equal(lookup(p, f, TOKEN, NOW + 299, &entry), BB_TOKENCACHE_HIT_VALID);
    assert_alice_validated_at_now(entry);
    assert_int_equal(entry->from_memo, 1);
    assert_int_equal(lookup(p, f, TOKEN, NOW + 300, &entry), BB_TOKENCACHE_MISS);
    assert_int_equal(lookup(p, f, OTHER, NOW, &entry), BB_TOKENCACHE_MISS);

    /* A refusal is remembered too, for its own 30 s. */
    assert_int_equal(bb_tokencache_store_invalid(p, &f->tc, OTHER, NOW, 30), APR_SUCCESS);
    apr_hash_clear(f->kc.fc.entries);
    assert_int_equal(lookup(p, f, OTHER, NOW + 29, &entry), BB_TOKENCACHE_HIT_INVALID);
    assert_null(entry->user);
    assert_int_equal(lookup(p, f, OTHER, NOW + 30, &entry), BB_TOKENCACHE_MISS);

    /* A verdict another host stored in the shared cache is remembered once read. */
    other_host->kc.fc.entries = f->kc.fc.entries;
    assert_int_equal(bb_tokencache_store_valid(p, &other_host->tc, TOKEN, &alice, NOW + 400, 300), APR_SUCCESS);
    assert_int_equal(lookup(p, f, TOKEN, NOW + 400, &entry), BB_TOKENCACHE_HIT_VALID);
    assert_int_equal(entry->from_memo, 0);
    apr_hash_clear(f->kc.fc.entries);
    assert_int_equal(lookup(p, f, TOKEN, NOW + 401, &entry), BB_TOKENCACHE_HIT_VALID);
    assert_int_equal(entry->from_memo, 1);
    assert_int_equal(entry->validated_at, NOW + 400);
}

/* A user Bitbucket confirmed is remembered by name until the expiry given, every field kept. */
static void test_users_are_remembered_by_name(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 0x5a);
    bb_user_t *known;

    assert_null(bb_tokencache_known_user(p, &f->tc, alice.name, NOW));          /* no memo: nothing */
    bb_tokencache_remember_user(p, &f->tc, &alice, NOW + 300);
    f->tc.users = bb_memo_create(p, 16);
    assert_null(bb_tokencache_known_user(p, &f->tc, alice.name, NOW));
    bb_tokencache_remember_user(p, &f->tc, &alice, NOW + 300);
    known = bb_tokencache_known_user(p, &f->tc, alice.name, NOW + 299);
    assert_non_null(known);
    assert_string_equal(known->name, alice.name);
    assert_string_equal(known->slug, alice.slug);
    assert_string_equal(known->display_name, alice.display_name);
    assert_string_equal(known->email, alice.email);
    assert_string_equal(known->type, alice.type);
    assert_int_equal(known->id, alice.id);
    assert_int_equal(known->active, 1);
    assert_null(bb_tokencache_known_user(p, &f->tc, alice.name, NOW + 300));
    assert_null(bb_tokencache_known_user(p, &f->tc, "bob", NOW));
    assert_null(bb_tokencache_known_user(p, &f->tc, NULL, NOW));
}

/* With a memo secret the memo is keyed by SipHash of the token (a hit costs no HMAC): it serves the same verdicts,
 * and a verdict read from the shared cache is remembered under it. */
static void test_memo_keyed_by_a_secret_of_its_own(void **state)
{
    apr_pool_t *p = *state;
    fixture_t *f = fixture(p, 0x5a);
    static const unsigned char secret[BB_TOKENCACHE_MEMO_SECRET] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    bb_tokencache_entry_t *entry = NULL;

    f->kc.key.hmac = bb_hmac_key_create(p, f->kc.secret, sizeof(f->kc.secret));
    f->tc.memo = bb_memo_create(p, 16);
    f->tc.memo_secret = secret;
    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &alice, NOW, 300), APR_SUCCESS);
    assert_int_equal(bb_tokencache_store_invalid(p, &f->tc, OTHER, NOW, 30), APR_SUCCESS);
    apr_hash_clear(f->kc.fc.entries);
    assert_int_equal(lookup(p, f, TOKEN, NOW + 1, &entry), BB_TOKENCACHE_HIT_VALID);
    assert_int_equal(entry->from_memo, 1);
    assert_alice_validated_at_now(entry);
    assert_int_equal(lookup(p, f, OTHER, NOW + 1, &entry), BB_TOKENCACHE_HIT_INVALID);
    assert_int_equal(lookup(p, f, "yet-another-token", NOW + 1, &entry), BB_TOKENCACHE_MISS);
    /* A verdict found in the shared cache only is remembered under the memo's own key. */
    f->tc.memo = bb_memo_create(p, 16);
    assert_int_equal(bb_tokencache_store_valid(p, &f->tc, TOKEN, &alice, NOW, 300), APR_SUCCESS);
    f->tc.memo = bb_memo_create(p, 16);
    assert_int_equal(lookup(p, f, TOKEN, NOW + 1, &entry), BB_TOKENCACHE_HIT_VALID);
    assert_int_equal(entry->from_memo, 0);
    apr_hash_clear(f->kc.fc.entries);
    assert_int_equal(lookup(p, f, TOKEN, NOW + 2, &entry), BB_TOKENCACHE_HIT_VALID);
    assert_int_equal(entry->from_memo, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_miss_when_empty),
        UNIT_TEST(test_valid_hit_has_every_field),
        UNIT_TEST(test_service_user_with_missing_strings),
        UNIT_TEST(test_invalid_hit),
        UNIT_TEST(test_expiry),
        UNIT_TEST(test_key_hides_the_token),
        UNIT_TEST(test_malformed_values_are_misses),
        UNIT_TEST(test_changed_or_moved_records_are_misses),
        UNIT_TEST(test_refused_stores),
        UNIT_TEST(test_short_secret_caches_nothing),
        UNIT_TEST(test_memo_serves_verdicts),
        UNIT_TEST(test_users_are_remembered_by_name),
        UNIT_TEST(test_memo_keyed_by_a_secret_of_its_own),
    };
    return UNIT_RUN("tokencache", tests);
}
