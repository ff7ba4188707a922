/* test_keys: key file parsing (hex, base64 in both alphabets, comments, errors with line numbers), kids, loading, derivation. */
#include "unit.h"
#include <apr_file_io.h>
#include "bb_util.h"
#include "bb_keys.h"

/* Key 00 01 .. 1f in each accepted spelling; kid and HMAC values computed independently with Python's hashlib. */
#define SEQ_HEX      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define SEQ_B64      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define SEQ_KID      "630dcd2966c43366"
#define K11_HEX      "1111111111111111111111111111111111111111111111111111111111111111"
#define K11_KID      "02d449a31fbb267c"
#define K22_HEX      "2222222222222222222222222222222222222222222222222222222222222222"
#define K22_KID      "9f72ea0cf49536e3"
/* HMAC-SHA256(key 11..11, "mod_bbauth login state v1") */
#define K11_STATE_HEX "7226c29fb54ae1e4a5a09a72b26281d983cb074bcfb23eb0eb74b292623c3b62"

static bb_keyring_t *parse(apr_pool_t *p, const char *text, const char **err)
{
    *err = NULL;
    return bb_keyring_parse(p, text, strlen(text), err);
}

static bb_keyring_t *parse_ok(apr_pool_t *p, const char *text)
{
    const char *err = NULL;
    bb_keyring_t *ring = bb_keyring_parse(p, text, strlen(text), &err);

    if (ring == NULL) {
        fail_msg("key file refused: %s", err);
    }
    return ring;
}

static const bb_key_t *key_at(const bb_keyring_t *ring, int i)
{
    assert_true(i < ring->keys->nelts);
    return &APR_ARRAY_IDX(ring->keys, i, bb_key_t);
}

static void assert_seq_key(const bb_key_t *key)
{
    unsigned char expected[32];
    int i;

    for (i = 0; i < 32; i++) {
        expected[i] = (unsigned char)i;
    }
    assert_int_equal(key->len, 32);
    assert_memory_equal(key->secret, expected, 32);
    assert_string_equal(key->kid, SEQ_KID);
}

/* Parses a one-key file and checks it is the 00..1f key. */
static void assert_parses_to_seq_key(apr_pool_t *p, const char *text)
{
    bb_keyring_t *ring = parse_ok(p, text);

    assert_int_equal(ring->keys->nelts, 1);
    assert_seq_key(key_at(ring, 0));
}

/* Expects the file to be refused with exactly this message. */
static void assert_refused(apr_pool_t *p, const char *text, const char *message)
{
    const char *err;

    assert_null(parse(p, text, &err));
    assert_non_null(err);
    assert_string_equal(err, message);
}

static void test_hex_key(void **state)
{
    assert_parses_to_seq_key(*state, SEQ_HEX "\n");
    assert_parses_to_seq_key(*state, SEQ_HEX);                        /* no final newline */
    assert_parses_to_seq_key(*state, "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\n");
}

static void test_base64_keys_in_every_spelling(void **state)
{
    apr_pool_t *p = *state;

    assert_parses_to_seq_key(p, SEQ_B64 "\n");                          /* standard, padded */
    assert_parses_to_seq_key(p, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n");   /* unpadded */
    /* Bytes fb ff bf .. give the two digits in which the alphabets differ. */
    {
        bb_keyring_t *std = parse_ok(p, "+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/\n");
        bb_keyring_t *url = parse_ok(p, "-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_\n");
        assert_int_equal(key_at(std, 0)->len, 33);
        assert_int_equal(key_at(url, 0)->len, 33);
        assert_memory_equal(key_at(std, 0)->secret, key_at(url, 0)->secret, 33);
        assert_string_equal(key_at(std, 0)->kid, key_at(url, 0)->kid);
        assert_int_equal(key_at(std, 0)->secret[0], 0xfb);
    }
}

static void test_base64_refuses_malformed(void **state)
{
    apr_pool_t *p = *state;

    /* Both alphabets in one key: a corrupted line, not a key. */
    assert_refused(p, "+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/-_\n", "line 1: neither hex nor base64");
    assert_refused(p, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==\n", "line 1: neither hex nor base64");
    assert_refused(p, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=\n", "line 1: neither hex nor base64");
    assert_refused(p, "AAECAwQFBgcICQoL DA0ODxAREhMUFRYXGBkaGxwdHh8=\n", "line 1: neither hex nor base64");
    assert_refused(p, "AAECAwQFBgcICQoL=DA0ODxAREhMUFRYXGBkaGxwdHh8\n", "line 1: neither hex nor base64");
    assert_refused(p, "key: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n", "line 1: neither hex nor base64");
}

static void test_comments_blank_lines_and_whitespace(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = parse_ok(p, "# session keys, newest first\n"
                                     "\n"
                                     "   \t\n"
                                     "  " K22_HEX "  \r\n"
                                     "\t# the old key, remove after MaxAge\n"
                                     "\t" K11_HEX "\r\n"
                                     "\n");

    assert_int_equal(ring->keys->nelts, 2);
    assert_string_equal(key_at(ring, 0)->kid, K22_KID);
    assert_string_equal(key_at(ring, 1)->kid, K11_KID);
    assert_int_equal(key_at(ring, 0)->secret[0], 0x22);
    assert_int_equal(key_at(ring, 1)->secret[31], 0x11);
}

static void test_short_key_names_line_and_size(void **state)
{
    apr_pool_t *p = *state;

    assert_refused(p, "# a comment\n\n" "00112233445566778899aabbccddeeff00112233445566778899aabbccddee\n",
                   "line 3: key is only 31 bytes; BBAuthSessionKey needs at least 32 random bytes per line "
                   "(e.g. openssl rand -hex 32)");
    assert_refused(p, K11_HEX "\nc2VjcmV0\n",
                   "line 2: key is only 6 bytes; BBAuthSessionKey needs at least 32 random bytes per line "
                   "(e.g. openssl rand -hex 32)");
}

static void test_odd_hex_is_not_base64(void **state)
{
    /* 63 hex digits would decode as 47 bytes of base64: a typo must not become a different key. */
    assert_refused(*state, "111111111111111111111111111111111111111111111111111111111111111\n",
                   "line 1: odd number of hex digits");
}

static void test_errors_do_not_show_the_key(void **state)
{
    apr_pool_t *p = *state;
    const char *err;

    assert_null(parse(p, "topsecretpassword\n", &err));
    assert_null(strstr(err, "topsecret"));
    assert_null(parse(p, "c2VjcmV0\n", &err));
    assert_null(strstr(err, "c2VjcmV0"));
}

static void test_empty_ring(void **state)
{
    apr_pool_t *p = *state;

    assert_refused(p, "", "no key found");
    assert_refused(p, "\n\n  \n", "no key found");
    assert_refused(p, "# " K11_HEX "\n", "no key found");
}

static void test_nul_in_text_refused(void **state)
{
    const char text[] = K11_HEX "\0" "00\n";
    const char *err = NULL;

    assert_null(bb_keyring_parse(*state, text, sizeof(text) - 1, &err));
    assert_string_equal(err, "line 1: neither hex nor base64");
}

static void test_find(void **state)
{
    bb_keyring_t *ring = parse_ok(*state, K22_HEX "\n" K11_HEX "\n");

    assert_ptr_equal(bb_keyring_find(ring, K22_KID), key_at(ring, 0));
    assert_ptr_equal(bb_keyring_find(ring, K11_KID), key_at(ring, 1));
    assert_null(bb_keyring_find(ring, SEQ_KID));
    assert_null(bb_keyring_find(ring, "02d449a31fbb267"));     /* a prefix is not the kid */
    assert_null(bb_keyring_find(ring, ""));
    assert_null(bb_keyring_find(ring, NULL));
    assert_null(bb_keyring_find(NULL, K11_KID));
}

static void test_derive(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = parse_ok(p, K11_HEX "\n" K22_HEX "\n");
    bb_keyring_t *derived = bb_keyring_derive(p, ring, "mod_bbauth login state v1");
    bb_keyring_t *other = bb_keyring_derive(p, ring, "mod_bbauth seal v1");

    assert_non_null(derived);
    assert_int_equal(derived->keys->nelts, 2);
    /* Kids stay, so a token names its key the same way in every ring. */
    assert_string_equal(key_at(derived, 0)->kid, K11_KID);
    assert_string_equal(key_at(derived, 1)->kid, K22_KID);
    assert_int_equal(key_at(derived, 0)->len, 32);
    assert_string_equal(bb_hex_encode(p, key_at(derived, 0)->secret, 32), K11_STATE_HEX);
    /* Another label, another key; the source ring is untouched. */
    assert_memory_not_equal(key_at(other, 0)->secret, key_at(derived, 0)->secret, 32);
    assert_memory_not_equal(key_at(derived, 1)->secret, key_at(ring, 1)->secret, 32);
    assert_int_equal(key_at(ring, 0)->secret[0], 0x11);
}

/* Writes text to a fresh temporary file and returns its path. */
static const char *temp_key_file(apr_pool_t *p, const char *text, apr_size_t len)
{
    const char *dir = NULL;
    char *path;
    apr_file_t *file;
    apr_size_t written = 0;

    assert_int_equal(apr_temp_dir_get(&dir, p), APR_SUCCESS);
    path = apr_pstrcat(p, dir, "/test_keys.XXXXXX", NULL);
    assert_int_equal(apr_file_mktemp(&file, path, APR_FOPEN_CREATE | APR_FOPEN_WRITE | APR_FOPEN_EXCL, p),
                     APR_SUCCESS);
    assert_int_equal(apr_file_write_full(file, text, len, &written), APR_SUCCESS);
    assert_int_equal(apr_file_close(file), APR_SUCCESS);
    return path;
}

static void test_load(void **state)
{
    apr_pool_t *p = *state;
    const char *text = "# keys\n" K22_HEX "\n" SEQ_B64 "\n";
    const char *path = temp_key_file(p, text, strlen(text));
    const char *err = NULL;
    bb_keyring_t *ring = bb_keyring_load(p, path, &err);

    apr_file_remove(path, p);
    assert_non_null(ring);
    assert_null(err);
    assert_int_equal(ring->keys->nelts, 2);
    assert_string_equal(key_at(ring, 0)->kid, K22_KID);
    assert_seq_key(key_at(ring, 1));
}

static void test_load_errors_name_the_file(void **state)
{
    apr_pool_t *p = *state;
    const char *text = "\n" "c2VjcmV0" "\n";
    const char *path = temp_key_file(p, text, strlen(text));
    const char *err = NULL;

    assert_null(bb_keyring_load(p, path, &err));
    apr_file_remove(path, p);
    assert_string_equal(err, apr_pstrcat(p, "key file ", path, ": line 2: key is only 6 bytes; BBAuthSessionKey "
                                         "needs at least 32 random bytes per line (e.g. openssl rand -hex 32)",
                                         NULL));

    assert_null(bb_keyring_load(p, "/nonexistent/bbauth/session.key", &err));
    assert_non_null(strstr(err, "key file /nonexistent/bbauth/session.key: "));
    assert_non_null(strstr(err, "No such file"));
}

static void test_load_size_cap(void **state)
{
    apr_pool_t *p = *state;
    apr_size_t cap = 64 * 1024;
    char *text = apr_palloc(p, cap + 1);
    const char *path, *err = NULL;
    bb_keyring_t *ring;

    /* Exactly 64 KiB: one key and then comment lines. */
    memset(text, '#', cap);
    memcpy(text, K11_HEX "\n", 65);
    text[cap - 1] = '\n';
    path = temp_key_file(p, text, cap);
    ring = bb_keyring_load(p, path, &err);
    apr_file_remove(path, p);
    assert_non_null(ring);
    assert_string_equal(key_at(ring, 0)->kid, K11_KID);

    /* One byte more: not a key file. */
    text[cap] = '\n';
    path = temp_key_file(p, text, cap + 1);
    assert_null(bb_keyring_load(p, path, &err));
    apr_file_remove(path, p);
    assert_string_equal(err, apr_pstrcat(p, "key file ", path, ": larger than 64 KiB, not a key file", NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_hex_key),
        UNIT_TEST(test_base64_keys_in_every_spelling),
        UNIT_TEST(test_base64_refuses_malformed),
        UNIT_TEST(test_comments_blank_lines_and_whitespace),
        UNIT_TEST(test_short_key_names_line_and_size),
        UNIT_TEST(test_odd_hex_is_not_base64),
        UNIT_TEST(test_errors_do_not_show_the_key),
        UNIT_TEST(test_empty_ring),
        UNIT_TEST(test_nul_in_text_refused),
        UNIT_TEST(test_find),
        UNIT_TEST(test_derive),
        UNIT_TEST(test_load),
        UNIT_TEST(test_load_errors_name_the_file),
        UNIT_TEST(test_load_size_cap),
    };
    return UNIT_RUN("keys", tests);
}
