/* test_util: base64url/base64 (RFC 4648 vectors, strict rejection), hex, constant-time equality, randomness, JSON, strip_controls. */
#include "unit.h"
#include <apr_hash.h>
#include "bb_util.h"

/* RFC 4648 §10 test vectors: base64url without padding (the alphabet differs only in two digits not used here). */
static const char *const rfc4648_plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
static const char *const rfc4648_b64url[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
static const char *const rfc4648_b64std[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };

static unsigned char *url_decode(apr_pool_t *p, const char *s, apr_size_t *len)
{
    return bb_base64url_decode(p, s, strlen(s), len);
}

static void test_base64url_encode_rfc4648(void **state)
{
    apr_pool_t *p = *state;
    size_t i;

    for (i = 0; i < sizeof(rfc4648_plain) / sizeof(rfc4648_plain[0]); i++) {
        assert_string_equal(bb_base64url_encode(p, (const unsigned char *)rfc4648_plain[i],
                                                strlen(rfc4648_plain[i])), rfc4648_b64url[i]);
    }
}

static void test_base64url_encode_uses_url_alphabet(void **state)
{
    static const unsigned char bytes[] = { 0xfb, 0xff, 0xbf };

    assert_string_equal(bb_base64url_encode(*state, bytes, sizeof(bytes)), "-_-_");
}

static void test_base64url_decode_rfc4648(void **state)
{
    apr_pool_t *p = *state;
    size_t i;

    for (i = 0; i < sizeof(rfc4648_plain) / sizeof(rfc4648_plain[0]); i++) {
        apr_size_t len = 99;
        unsigned char *out = url_decode(p, rfc4648_b64url[i], &len);
        assert_non_null(out);
        assert_int_equal(len, strlen(rfc4648_plain[i]));
        assert_memory_equal(out, rfc4648_plain[i], len);
        assert_int_equal(out[len], '\0');
    }
}

static void test_base64url_roundtrip_all_bytes(void **state)
{
    apr_pool_t *p = *state;
    unsigned char bytes[256];
    apr_size_t n, len;

    for (n = 0; n < sizeof(bytes); n++) {
        bytes[n] = (unsigned char)(255 - n);
    }
    for (n = 0; n <= sizeof(bytes); n++) {
        char *encoded = bb_base64url_encode(p, bytes, n);
        unsigned char *decoded = url_decode(p, encoded, &len);
        assert_non_null(decoded);
        assert_int_equal(len, n);
        assert_memory_equal(decoded, bytes, n);
    }
}

static void test_base64url_decode_rejects_bad_input(void **state)
{
    apr_pool_t *p = *state;
    static const char *const bad[] = {
        "Zm9v+g",       /* standard alphabet */
        "Zm9v/g",
        "Zg==",         /* padding */
        "Zg=",
        "Zm9 v",        /* whitespace */
        "Zm9v\n",
        "Z",            /* 1 mod 4: no byte string encodes to this, even when the lone digit has no bits set */
        "A",
        "Zm9vY",
        "Zm9vA",
        "Zh",           /* non-zero trailing bits: "Zg" is the only encoding of "f" */
        "Zm9",
        "Zm.v",
        "Zm\xc3\xa9v",  /* non-ASCII */
    };
    apr_size_t i, len;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(url_decode(p, bad[i], &len));
    }
    /* A NUL inside the given length is a bad character, not the end of the input. */
    assert_null(bb_base64url_decode(p, "Zm\0v", 4, &len));
    /* Only slen bytes are read: a valid prefix of a longer buffer decodes. */
    assert_non_null(bb_base64url_decode(p, "Zm9v!!!!", 4, &len));
    assert_int_equal(len, 3);
}

static void test_base64_std_decode(void **state)
{
    apr_pool_t *p = *state;
    static const unsigned char bytes[] = { 0xfb, 0xff, 0xbf };
    apr_size_t i, len;
    unsigned char *out;

    for (i = 0; i < sizeof(rfc4648_plain) / sizeof(rfc4648_plain[0]); i++) {
        out = bb_base64_decode(p, rfc4648_b64std[i], strlen(rfc4648_b64std[i]), &len);
        assert_non_null(out);
        assert_int_equal(len, strlen(rfc4648_plain[i]));
        assert_memory_equal(out, rfc4648_plain[i], len);
    }
    out = bb_base64_decode(p, "+/+/", 4, &len);
    assert_non_null(out);
    assert_int_equal(len, 3);
    assert_memory_equal(out, bytes, 3);
}

static void test_base64_std_decode_rejects_bad_input(void **state)
{
    apr_pool_t *p = *state;
    static const char *const bad[] = {
        "Zg",           /* padding is required */
        "Zg=",
        "Zm8==",
        "Z===",         /* at most two '=' */
        "Zm==Zm9v",     /* '=' only at the end */
        "Zm9vYg=A",
        "-_-_",         /* url-safe alphabet */
        "Zh==",         /* non-zero trailing bits */
        "Zm9=",
        "Zm9v\n",
        "A===",
        "====",
    };
    apr_size_t i, len;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(bb_base64_decode(p, bad[i], strlen(bad[i]), &len));
    }
}

static void test_hex_encode(void **state)
{
    static const unsigned char bytes[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };

    assert_string_equal(bb_hex_encode(*state, bytes, sizeof(bytes)), "00017f80abff");
    assert_string_equal(bb_hex_encode(*state, bytes, 0), "");
}

static void test_secure_equals(void **state)
{
    (void)state;
    assert_true(bb_secure_equals("secret-value", 12, "secret-value", 12));
    assert_false(bb_secure_equals("secret-value", 12, "secret-valuE", 12));
    assert_false(bb_secure_equals("secret-value", 12, "Secret-value", 12));
    assert_false(bb_secure_equals("secret-value", 12, "secret-value!", 13));
    assert_false(bb_secure_equals("secret", 6, "", 0));
    assert_true(bb_secure_equals("", 0, "", 0));
    /* Bytes, not C strings: a difference after a NUL counts. */
    assert_false(bb_secure_equals("a\0b", 3, "a\0c", 3));
}

/* Every length through the 32-, 8- and 1-byte steps, a difference in every byte (and in every bit of it) counts. */
static void test_secure_equals_every_position(void **state)
{
    unsigned char a[100], b[100];
    apr_size_t len, at;
    int bit;

    (void)state;
    for (len = 0; len <= sizeof(a); len++) {
        memset(a, 'x', sizeof(a));
        memset(b, 'x', sizeof(b));
        assert_true(bb_secure_equals(a, len, b, len));
        for (at = 0; at < len; at++) {
            for (bit = 0; bit < 8; bit++) {
                b[at] = (unsigned char)('x' ^ (1 << bit));
                assert_false(bb_secure_equals(a, len, b, len));
            }
            b[at] = 'x';
        }
    }
}

static void test_secure_streq(void **state)
{
    (void)state;
    assert_true(bb_secure_streq("state-abc", "state-abc"));
    assert_false(bb_secure_streq("state-abc", "state-abd"));
    assert_false(bb_secure_streq("state-abc", "state-ab"));
    assert_false(bb_secure_streq("state-ab", "state-abc"));
    assert_false(bb_secure_streq(NULL, "x"));
    assert_false(bb_secure_streq("x", NULL));
    assert_false(bb_secure_streq(NULL, NULL));
    assert_true(bb_secure_streq("", ""));
}

static void test_random_token_length_and_alphabet(void **state)
{
    apr_pool_t *p = *state;
    char *t16 = bb_random_token(p, 16), *t32 = bb_random_token(p, 32), *t64 = bb_random_token(p, 64);
    apr_size_t len;

    assert_non_null(t16);
    assert_non_null(t32);
    assert_non_null(t64);
    assert_int_equal(strlen(t16), 22);
    assert_int_equal(strlen(t32), 43);
    assert_int_equal(strlen(t64), 86);
    assert_non_null(url_decode(p, t32, &len));
    assert_int_equal(len, 32);
    /* More than the buffer it uses: refused, not overrun. */
    assert_null(bb_random_token(p, 65));
}

static void test_random_token_unique(void **state)
{
    apr_pool_t *p = *state;
    apr_hash_t *seen = apr_hash_make(p);
    int i;

    for (i = 0; i < 1000; i++) {
        char *token = bb_random_token(p, 16);
        assert_non_null(token);
        assert_null(apr_hash_get(seen, token, APR_HASH_KEY_STRING));
        apr_hash_set(seen, token, APR_HASH_KEY_STRING, token);
    }
    assert_int_equal(apr_hash_count(seen), 1000);
}

static void test_random_bytes_not_constant(void **state)
{
    unsigned char a[32], b[32];

    (void)state;
    assert_int_equal(bb_random_bytes(a, sizeof(a)), APR_SUCCESS);
    assert_int_equal(bb_random_bytes(b, sizeof(b)), APR_SUCCESS);
    assert_memory_not_equal(a, b, sizeof(a));
}

static void test_strip_controls(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_strip_controls(p, "alice\r\nSet-Cookie: x=1"), "aliceSet-Cookie: x=1");
    assert_string_equal(bb_strip_controls(p, "a\tb\x1b[31mc\x7f" "d"), "ab[31mcd");
    assert_string_equal(bb_strip_controls(p, "Zo\xc3\xab"), "Zo\xc3\xab");   /* UTF-8 is kept */
    assert_string_equal(bb_strip_controls(p, ""), "");
    assert_string_equal(bb_strip_controls(p, NULL), "");
}

static void test_json_parse(void **state)
{
    apr_pool_t *p = *state;
    static const char doc[] = "{\"sub\":\"alice\",\"uid\":42}";
    json_t *json = bb_json_parse(p, doc, strlen(doc));

    assert_non_null(json);
    assert_string_equal(bb_json_string(p, json, "sub"), "alice");
    assert_null(bb_json_string(p, json, "uid"));        /* not a string */
    assert_null(bb_json_string(p, json, "missing"));
    /* Two members of one name: an attack, not a document. */
    assert_null(bb_json_parse(p, "{\"sub\":\"alice\",\"sub\":\"admin\"}", 31));
    assert_null(bb_json_parse(p, "{\"a\":1} trailing", 16));
    assert_null(bb_json_parse(p, "not json", 8));
    /* Only len bytes are parsed. */
    assert_null(bb_json_parse(p, doc, strlen(doc) - 1));
}

static void test_status_name(void **state)
{
    (void)state;
    assert_string_equal(bb_status_name(BB_OK), "ok");
    assert_string_equal(bb_status_name(BB_UNAVAILABLE), "unavailable");
    assert_string_equal(bb_status_name((bb_status_t)99), "unknown");
}

/* The SipHash paper's vectors (key 00..0f, messages 00, 00 01, ..., 00..0e), as in its reference vectors.h. */
static void test_siphash_reference_vectors(void **state)
{
    unsigned char key[16], msg[64];
    int i;

    for (i = 0; i < 16; i++) {
        key[i] = (unsigned char)i;
    }
    for (i = 0; i < 64; i++) {
        msg[i] = (unsigned char)i;
    }
    assert_true(bb_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ULL);
    assert_true(bb_siphash(key, msg, 1) == 0x74f839c593dc67fdULL);
    assert_true(bb_siphash(key, msg, 8) == 0x93f5f5799a932462ULL);
    assert_true(bb_siphash(key, msg, 15) == 0xa129ca6149be45e5ULL);
    assert_true(bb_siphash(key, msg, 63) == 0x958a324ceb064572ULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_base64url_encode_rfc4648),
        UNIT_TEST(test_base64url_encode_uses_url_alphabet),
        UNIT_TEST(test_base64url_decode_rfc4648),
        UNIT_TEST(test_base64url_roundtrip_all_bytes),
        UNIT_TEST(test_base64url_decode_rejects_bad_input),
        UNIT_TEST(test_base64_std_decode),
        UNIT_TEST(test_base64_std_decode_rejects_bad_input),
        UNIT_TEST(test_hex_encode),
        UNIT_TEST(test_secure_equals),
        UNIT_TEST(test_secure_equals_every_position),
        UNIT_TEST(test_secure_streq),
        UNIT_TEST(test_random_token_length_and_alphabet),
        UNIT_TEST(test_random_token_unique),
        UNIT_TEST(test_random_bytes_not_constant),
        UNIT_TEST(test_strip_controls),
        UNIT_TEST(test_json_parse),
        UNIT_TEST(test_status_name),
        UNIT_TEST(test_siphash_reference_vectors),
    };
    return UNIT_RUN("util", tests);
}
