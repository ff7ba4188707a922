/* test_memo: the per-process memo (hit, miss, expiry, replacement, limits) and session decoding through it. */
#include "unit.h"
#include "bb_util.h"
#include "bb_keys.h"
#include "bb_jws.h"
#include "bb_memo.h"
#include "bb_session.h"

#define NOW     1700000000
#define ISSUER  "https://mirror.example.com"
#define KEY_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static const bb_session_policy_t policy = { ISSUER, 28800, 3600 };

static bb_memo_value_t value_of(const char *a, const char *b, apr_int64_t n0)
{
    bb_memo_value_t v;

    memset(&v, 0, sizeof(v));
    v.s[0] = a;
    v.s[1] = b;
    v.n[0] = n0;
    return v;
}

static void test_memo_hit_miss_expiry(void **state)
{
    apr_pool_t *p = *state;
    bb_memo_t *memo = bb_memo_create(p, 16);
    bb_memo_value_t v = value_of("alice", "", 42), out;

    assert_non_null(memo);
    assert_false(bb_memo_get(memo, p, "k1", 2, NOW, &out));
    bb_memo_put(memo, "k1", 2, NOW + 10, &v);
    memset(&out, 0, sizeof(out));
    assert_true(bb_memo_get(memo, p, "k1", 2, NOW + 9, &out));
    assert_string_equal(out.s[0], "alice");
    assert_string_equal(out.s[1], "");
    assert_null(out.s[2]);
    assert_int_equal(out.n[0], 42);
    assert_false(bb_memo_get(memo, p, "k1", 2, NOW + 10, &out));    /* expired */
    assert_false(bb_memo_get(memo, p, "k", 1, NOW, &out));          /* a prefix is another key */
    assert_false(bb_memo_get(memo, p, "k1x", 3, NOW, &out));
    assert_false(bb_memo_get(NULL, p, "k1", 2, NOW, &out));
    bb_memo_put(NULL, "k1", 2, NOW + 10, &v);                        /* no memo: nothing happens */
}

static void test_memo_one_slot_keeps_the_latest(void **state)
{
    apr_pool_t *p = *state;
    bb_memo_t *memo = bb_memo_create(p, 1);
    bb_memo_value_t a = value_of("a", NULL, 1), b = value_of("b", NULL, 2), out;

    bb_memo_put(memo, "key-a", 5, NOW + 10, &a);
    bb_memo_put(memo, "key-b", 5, NOW + 10, &b);
    assert_false(bb_memo_get(memo, p, "key-a", 5, NOW, &out));
    assert_true(bb_memo_get(memo, p, "key-b", 5, NOW, &out));
    assert_string_equal(out.s[0], "b");
}

/* A slot first sized for a short entry takes a long one later, and a short one again. */
static void test_memo_slot_grows(void **state)
{
    apr_pool_t *p = *state;
    bb_memo_t *memo = bb_memo_create(p, 1);
    char *long_key = apr_palloc(p, 1001), *long_value = apr_palloc(p, 601);
    bb_memo_value_t small = value_of("s", NULL, 1), big, out;

    memset(long_key, 'k', 1000);
    long_key[1000] = '\0';
    memset(long_value, 'v', 600);
    long_value[600] = '\0';
    big = value_of(long_value, "second", 2);
    bb_memo_put(memo, "k", 1, NOW + 10, &small);
    bb_memo_put(memo, long_key, 1000, NOW + 10, &big);
    assert_true(bb_memo_get(memo, p, long_key, 1000, NOW, &out));
    assert_string_equal(out.s[0], long_value);
    assert_string_equal(out.s[1], "second");
    bb_memo_put(memo, "k", 1, NOW + 10, &small);
    assert_true(bb_memo_get(memo, p, "k", 1, NOW, &out));
    assert_string_equal(out.s[0], "s");
    assert_int_equal(out.n[0], 1);
}

static void test_memo_limits(void **state)
{
    apr_pool_t *p = *state;
    bb_memo_t *memo = bb_memo_create(p, 4);
    char *big_key = apr_palloc(p, BB_MEMO_MAX_KEY + 2);
    char *big_value = apr_palloc(p, BB_MEMO_MAX_VALUE + 2);
    bb_memo_value_t v = value_of("x", NULL, 0), large, out;

    memset(big_key, 'k', BB_MEMO_MAX_KEY + 1);
    big_key[BB_MEMO_MAX_KEY + 1] = '\0';
    memset(big_value, 'v', BB_MEMO_MAX_VALUE + 1);
    big_value[BB_MEMO_MAX_VALUE + 1] = '\0';
    large = value_of(big_value, NULL, 0);
    bb_memo_put(memo, big_key, BB_MEMO_MAX_KEY + 1, NOW + 10, &v);
    assert_false(bb_memo_get(memo, p, big_key, BB_MEMO_MAX_KEY + 1, NOW, &out));
    bb_memo_put(memo, "k", 1, NOW + 10, &large);
    assert_false(bb_memo_get(memo, p, "k", 1, NOW, &out));
    bb_memo_put(memo, big_key, BB_MEMO_MAX_KEY, NOW + 10, &v);       /* exactly at the limits: kept */
    assert_true(bb_memo_get(memo, p, big_key, BB_MEMO_MAX_KEY, NOW, &out));
    bb_memo_put(memo, "", 0, NOW + 10, &v);
    assert_false(bb_memo_get(memo, p, "", 0, NOW, &out));
}

/* A full set gives up its least recently used entry, not the one read last. */
static void test_memo_replaces_the_least_recently_used(void **state)
{
    apr_pool_t *p = *state;
    bb_memo_t *memo = bb_memo_create(p, 8);          /* one set of 8 ways */
    bb_memo_value_t v = value_of("x", NULL, 0), out;
    int i;

    for (i = 0; i < 8; i++) {
        bb_memo_put(memo, apr_psprintf(p, "key-%d", i), 5, NOW + 10, &v);
    }
    assert_true(bb_memo_get(memo, p, "key-0", 5, NOW, &out));
    bb_memo_put(memo, "key-8", 5, NOW + 10, &v);
    assert_true(bb_memo_get(memo, p, "key-0", 5, NOW, &out));
    assert_false(bb_memo_get(memo, p, "key-1", 5, NOW, &out));
    for (i = 2; i <= 8; i++) {
        assert_true(bb_memo_get(memo, p, apr_psprintf(p, "key-%d", i), 5, NOW, &out));
    }
}

/* How many of a thousand keys "<prefix><i><suffix>" a memo of the size the module uses keeps. */
static int kept_of_a_thousand(apr_pool_t *p, const char *prefix, const char *suffix)
{
    bb_memo_t *memo = bb_memo_create(p, 4096);
    bb_memo_value_t v = value_of("x", NULL, 0), out;
    int i, kept = 0;

    for (i = 0; i < 1000; i++) {
        const char *key = apr_psprintf(p, "%s%06d%s", prefix, i, suffix);
        bb_memo_put(memo, key, strlen(key), NOW + 10, &v);
    }
    for (i = 0; i < 1000; i++) {
        const char *key = apr_psprintf(p, "%s%06d%s", prefix, i, suffix);
        kept += bb_memo_get(memo, p, key, strlen(key), NOW, &out);
    }
    return kept;
}

/* A thousand sessions' assertions for one audience (keys that share a long tail) and a thousand cookies (keys that
 * share a long head: the JWS header) all fit: no part they share chooses where they go. 8-way sets a quarter full
 * overflow rarely. */
static void test_memo_holds_a_thousand_keys_sharing_a_head_or_a_tail(void **state)
{
    apr_pool_t *p = *state;
    const char *shared = "https://mirror.example.com/packages/and/a/long/location/path/shared/by/every/entry";

    assert_true(kept_of_a_thousand(p, "sid-", apr_pstrcat(p, "\n", shared, NULL)) >= 990);
    assert_true(kept_of_a_thousand(p, apr_pstrcat(p, shared, ".", NULL), ".signature") >= 990);
}

static bb_keyring_t *ring_of(apr_pool_t *p)
{
    const char *err = NULL;
    bb_keyring_t *ring = bb_keyring_parse(p, KEY_HEX, strlen(KEY_HEX), &err);

    assert_non_null(ring);
    return ring;
}

/* Through the memo, a session decodes exactly as without it, the time rules are applied at every hit, and
 * nothing but a valid cookie is remembered. */
static void test_session_decode_memo(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p);
    bb_memo_t *memo = bb_memo_create(p, 8);
    bb_session_t *s = bb_session_new(p, "alice", 42, "Alice", "alice@example.com", NOW), *out = NULL;
    char *cookie = bb_session_encode(p, ring, &policy, s, NOW);
    char *tampered = apr_pstrdup(p, cookie);
    int i;

    assert_non_null(cookie);
    for (i = 0; i < 2; i++) {           /* the first verifies and remembers, the second comes from the memo */
        assert_int_equal(bb_session_decode_memo(p, memo, ring, &policy, cookie, NOW + 1, &out), BB_SESSION_VALID);
        assert_string_equal(out->sub, "alice");
        assert_string_equal(out->name, "Alice");
        assert_string_equal(out->email, "alice@example.com");
        assert_string_equal(out->sid, s->sid);
        assert_int_equal(out->uid, 42);
        assert_int_equal(out->auth_time, NOW);
        assert_int_equal(out->iat, NOW);
        assert_int_equal(out->exp, NOW + 3600);
    }
    /* idle timeout and MaxAge still end it */
    assert_int_equal(bb_session_decode_memo(p, memo, ring, &policy, cookie, NOW + 3600, &out), BB_SESSION_EXPIRED);
    assert_null(out);
    /* a tampered cookie is verified (and refused), never matched */
    tampered[strlen(tampered) - 2] = tampered[strlen(tampered) - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(bb_session_decode_memo(p, memo, ring, &policy, tampered, NOW + 1, &out), BB_SESSION_INVALID);
    assert_int_equal(bb_session_decode_memo(p, memo, ring, &policy, NULL, NOW + 1, &out), BB_SESSION_INVALID);
    assert_int_equal(bb_session_decode_memo(p, NULL, ring, &policy, cookie, NOW + 1, &out), BB_SESSION_VALID);
}

/* A cookie remembered under one ring is not taken by a memo user with another ring only because the memo
 * is separate: the glue keeps one memo per server configuration. Here: a new ring with a new memo refuses it. */
static void test_session_memo_is_per_ring(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p);
    const char *other_hex = "1111111111111111111111111111111111111111111111111111111111111111";
    const char *err = NULL;
    bb_keyring_t *other = bb_keyring_parse(p, other_hex, strlen(other_hex), &err);
    bb_session_t *s = bb_session_new(p, "alice", 42, "Alice", "", NOW), *out = NULL;
    char *cookie = bb_session_encode(p, ring, &policy, s, NOW);

    assert_int_equal(bb_session_decode_memo(p, bb_memo_create(p, 8), ring, &policy, cookie, NOW, &out),
                     BB_SESSION_VALID);
    assert_int_equal(bb_session_decode_memo(p, bb_memo_create(p, 8), other, &policy, cookie, NOW, &out),
                     BB_SESSION_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_memo_hit_miss_expiry),
        UNIT_TEST(test_memo_one_slot_keeps_the_latest),
        UNIT_TEST(test_memo_slot_grows),
        UNIT_TEST(test_memo_limits),
        UNIT_TEST(test_memo_replaces_the_least_recently_used),
        UNIT_TEST(test_memo_holds_a_thousand_keys_sharing_a_head_or_a_tail),
        UNIT_TEST(test_session_decode_memo),
        UNIT_TEST(test_session_memo_is_per_ring),
    };
    return UNIT_RUN("memo", tests);
}
