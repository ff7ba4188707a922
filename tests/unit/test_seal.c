/* test_seal: AES-256-GCM sealing: round trips, fresh IVs, tampering, associated data, key rotation, bad input. */
#include "unit.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "bb_util.h"
#include "bb_keys.h"
#include "bb_seal.h"

#define KEY1 "1111111111111111111111111111111111111111111111111111111111111111\n"
#define KEY2 "2222222222222222222222222222222222222222222222222222222222222222\n"
#define AAD  "oauth:tok:0123456789abcdef"
#define SECRET "access=ya29.secret&refresh=rt-secret"
#define OVERHEAD 45     /* version 1 + kid 16 + IV 12 + tag 16 */

static bb_keyring_t *ring_of(apr_pool_t *p, const char *key_file)
{
    const char *err = NULL;
    bb_keyring_t *ring = bb_keyring_parse(p, key_file, strlen(key_file), &err);
    assert_non_null(ring);
    return ring;
}

static bb_sealer_t *sealer_of(apr_pool_t *p, const char *key_file)
{
    bb_sealer_t *sealer = bb_sealer_create(p, ring_of(p, key_file));
    assert_non_null(sealer);
    return sealer;
}

static char *seal_str(apr_pool_t *p, const bb_sealer_t *sealer, const char *aad, const char *plain)
{
    char *sealed = bb_seal(p, sealer, aad, plain, strlen(plain));
    assert_non_null(sealed);
    return sealed;
}

static unsigned char *open_str(apr_pool_t *p, const bb_sealer_t *sealer, const char *aad, const char *sealed,
                               apr_size_t *len)
{
    return bb_seal_open(p, sealer, aad, sealed, strlen(sealed), len);
}

static unsigned char *raw(apr_pool_t *p, const char *sealed, apr_size_t *len)
{
    unsigned char *blob = bb_base64url_decode(p, sealed, strlen(sealed), len);
    assert_non_null(blob);
    return blob;
}

static void test_round_trip(void **state)
{
    apr_pool_t *p = *state;
    bb_sealer_t *sealer = sealer_of(p, KEY1);
    apr_size_t len = 0;
    unsigned char *plain = open_str(p, sealer, AAD, seal_str(p, sealer, AAD, SECRET), &len);

    assert_non_null(plain);
    assert_int_equal(len, strlen(SECRET));
    assert_string_equal((const char *)plain, SECRET);
}

static void test_round_trip_binary_and_empty(void **state)
{
    apr_pool_t *p = *state;
    bb_sealer_t *sealer = sealer_of(p, KEY1);
    static const unsigned char binary[] = { 0, 1, 2, 0xff, 0, 0x80, '\n' };
    apr_size_t len = 99;
    char *sealed = bb_seal(p, sealer, "", binary, sizeof(binary));
    unsigned char *plain = bb_seal_open(p, sealer, "", sealed, strlen(sealed), &len);

    assert_non_null(plain);
    assert_int_equal(len, sizeof(binary));
    assert_memory_equal(plain, binary, sizeof(binary));

    sealed = bb_seal(p, sealer, AAD, "", 0);
    assert_non_null(sealed);
    plain = open_str(p, sealer, AAD, sealed, &len);
    assert_non_null(plain);
    assert_int_equal(len, 0);
    assert_string_equal((const char *)plain, "");
}

static void test_format(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p, KEY1);
    bb_sealer_t *sealer = bb_sealer_create(p, ring);
    const bb_key_t *key = &APR_ARRAY_IDX(ring->keys, 0, bb_key_t);
    char *sealed = seal_str(p, sealer, AAD, SECRET);
    apr_size_t len;
    unsigned char *blob = raw(p, sealed, &len);

    assert_int_equal(len, OVERHEAD + strlen(SECRET));
    assert_int_equal(blob[0], BB_SEAL_VERSION);
    assert_memory_equal(blob + 1, key->kid, 16);
    /* Nothing of the plaintext shows. */
    assert_null(strstr(sealed, "secret"));
    assert_null(memmem(blob, len, "secret", 6));
}

static void test_every_seal_has_a_fresh_iv(void **state)
{
    apr_pool_t *p = *state;
    bb_sealer_t *sealer = sealer_of(p, KEY1);
    apr_size_t len1, len2;
    unsigned char *a = raw(p, seal_str(p, sealer, AAD, SECRET), &len1);
    unsigned char *b = raw(p, seal_str(p, sealer, AAD, SECRET), &len2);

    assert_int_equal(len1, len2);
    assert_memory_not_equal(a + 17, b + 17, 12);             /* IV */
    assert_memory_not_equal(a + 29, b + 29, len1 - 29);      /* ciphertext and tag */
}

static void test_any_changed_byte_is_refused(void **state)
{
    apr_pool_t *p = *state;
    bb_sealer_t *sealer = sealer_of(p, KEY1 KEY2);
    apr_size_t len, i;
    unsigned char *blob = raw(p, seal_str(p, sealer, AAD, SECRET), &len);

    /* Version (0), kid (1-16), IV (17-28), ciphertext, tag (last 16): each byte, two different changes. */
    for (i = 0; i < len; i++) {
        static const unsigned char flips[] = { 0x01, 0x80 };
        apr_size_t f;
        for (f = 0; f < sizeof(flips); f++) {
            unsigned char *copy = apr_pmemdup(p, blob, len);
            char *tampered;
            copy[i] ^= flips[f];
            tampered = bb_base64url_encode(p, copy, len);
            if (open_str(p, sealer, AAD, tampered, NULL) != NULL) {
                fail_msg("byte %lu ^ 0x%02x opened", (unsigned long)i, flips[f]);
            }
        }
    }
}

static void test_kid_of_another_ring_key_is_refused(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p, KEY1 KEY2);
    bb_sealer_t *sealer = bb_sealer_create(p, ring);
    const bb_key_t *other = &APR_ARRAY_IDX(ring->keys, 1, bb_key_t);
    apr_size_t len;
    unsigned char *blob = raw(p, seal_str(p, sealer, AAD, SECRET), &len);

    /* A known kid, but not the one the value was sealed with. */
    memcpy(blob + 1, other->kid, 16);
    assert_null(open_str(p, sealer, AAD, bb_base64url_encode(p, blob, len), NULL));
}

static void test_wrong_aad_is_refused(void **state)
{
    apr_pool_t *p = *state;
    bb_sealer_t *sealer = sealer_of(p, KEY1);
    char *sealed = seal_str(p, sealer, AAD, SECRET);

    assert_null(open_str(p, sealer, "oauth:tok:0123456789abcdeF", sealed, NULL));
    assert_null(open_str(p, sealer, "oauth:tok:0123456789abcde", sealed, NULL));
    assert_null(open_str(p, sealer, AAD "x", sealed, NULL));
    assert_null(open_str(p, sealer, "", sealed, NULL));
    assert_null(open_str(p, sealer, NULL, sealed, NULL));
    assert_non_null(open_str(p, sealer, AAD, sealed, NULL));
}

static void test_rotation(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *new_ring = ring_of(p, KEY2 KEY1);
    bb_sealer_t *old_sealer = sealer_of(p, KEY1);
    bb_sealer_t *new_sealer = bb_sealer_create(p, new_ring);
    char *old_value = seal_str(p, old_sealer, AAD, SECRET);
    char *new_value = seal_str(p, new_sealer, AAD, SECRET);
    apr_size_t len;

    /* Sealed before the rotation, opened after it. */
    assert_string_equal((const char *)open_str(p, new_sealer, AAD, old_value, NULL), SECRET);
    /* New values use the new first key. */
    assert_memory_equal(raw(p, new_value, &len) + 1, APR_ARRAY_IDX(new_ring->keys, 0, bb_key_t).kid, 16);
    assert_string_equal((const char *)open_str(p, new_sealer, AAD, new_value, NULL), SECRET);
    /* Once the old key leaves the ring, its values no longer open. */
    assert_null(open_str(p, sealer_of(p, KEY2), AAD, old_value, NULL));
    assert_null(open_str(p, old_sealer, AAD, new_value, NULL));
}

/* Opens a sealed value the way the header documents it, with OpenSSL alone: AES-256-GCM under aes_key, IV after
 * version and kid, tag at the end, associated data = version | kid | aad. 1 when the tag checks. */
static int open_by_spec(apr_pool_t *p, const unsigned char *aes_key, const char *aad, const char *sealed,
                        unsigned char *plain)
{
    apr_size_t len;
    unsigned char *blob = raw(p, sealed, &len);
    int outl, ok;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

    ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, aes_key, blob + 17) == 1
        && EVP_DecryptUpdate(ctx, NULL, &outl, blob, 17) == 1
        && EVP_DecryptUpdate(ctx, NULL, &outl, (const unsigned char *)aad, (int)strlen(aad)) == 1
        && EVP_DecryptUpdate(ctx, plain, &outl, blob + 29, (int)(len - OVERHEAD)) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, blob + len - 16) == 1
        && EVP_DecryptFinal_ex(ctx, plain + outl, &outl) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

static void test_format_matches_the_documentation(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p, KEY1);
    const bb_key_t *session_key = &APR_ARRAY_IDX(ring->keys, 0, bb_key_t);
    char *sealed = seal_str(p, bb_sealer_create(p, ring), AAD, SECRET);
    unsigned char sealing_key[32], plain[sizeof(SECRET)] = { 0 };
    unsigned int key_len = 0;

    /* The sealing key is HMAC-SHA256(session key, "mod_bbauth seal v1"), never the session key itself. */
    HMAC(EVP_sha256(), session_key->secret, (int)session_key->len, (const unsigned char *)"mod_bbauth seal v1",
         18, sealing_key, &key_len);
    assert_true(open_by_spec(p, sealing_key, AAD, sealed, plain));
    assert_memory_equal(plain, SECRET, strlen(SECRET));
    assert_false(open_by_spec(p, sealing_key, "", sealed, plain));
    assert_false(open_by_spec(p, session_key->secret, AAD, sealed, plain));
}

static void test_bad_input_is_refused(void **state)
{
    apr_pool_t *p = *state;
    bb_sealer_t *sealer = sealer_of(p, KEY1);
    char *sealed = seal_str(p, sealer, AAD, SECRET);
    apr_size_t len, cut;
    unsigned char *blob = raw(p, sealed, &len);
    unsigned char garbage[80];

    assert_null(bb_seal_open(p, sealer, AAD, "", 0, NULL));
    assert_null(bb_seal_open(p, sealer, AAD, NULL, 0, NULL));
    assert_null(open_str(p, sealer, AAD, "not base64url!", NULL));
    assert_null(open_str(p, sealer, AAD, apr_pstrcat(p, sealed, "=", NULL), NULL));
    assert_null(open_str(p, sealer, AAD, apr_pstrcat(p, sealed, "AAAA", NULL), NULL));
    /* Every truncation, both of the text and of the bytes. */
    for (cut = 0; cut < strlen(sealed); cut++) {
        assert_null(bb_seal_open(p, sealer, AAD, sealed, cut, NULL));
    }
    for (cut = 0; cut < len; cut++) {
        assert_null(open_str(p, sealer, AAD, bb_base64url_encode(p, blob, cut), NULL));
    }
    /* Random bytes behind a valid version and kid. */
    assert_int_equal(bb_random_bytes(garbage, sizeof(garbage)), APR_SUCCESS);
    memcpy(garbage, blob, 17);
    assert_null(open_str(p, sealer, AAD, bb_base64url_encode(p, garbage, sizeof(garbage)), NULL));
    /* An unknown kid. */
    memcpy(blob + 1, "0123456789abcdef", 16);
    assert_null(open_str(p, sealer, AAD, bb_base64url_encode(p, blob, len), NULL));
}

static void test_limits_and_misuse(void **state)
{
    apr_pool_t *p = *state;
    bb_sealer_t *sealer = sealer_of(p, KEY1);
    apr_size_t big = BB_SEAL_MAX_LEN + 1;
    char *huge = apr_pcalloc(p, big + 1);

    assert_non_null(bb_seal(p, sealer, AAD, huge, BB_SEAL_MAX_LEN));
    assert_null(bb_seal(p, sealer, AAD, huge, big));
    memset(huge, 'a', big);
    assert_null(bb_seal(p, sealer, huge, SECRET, strlen(SECRET)));
    assert_null(bb_seal(p, sealer, NULL, SECRET, strlen(SECRET)));
    assert_null(bb_seal(p, NULL, AAD, SECRET, strlen(SECRET)));
    assert_null(bb_sealer_create(p, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_round_trip),
        UNIT_TEST(test_round_trip_binary_and_empty),
        UNIT_TEST(test_format),
        UNIT_TEST(test_every_seal_has_a_fresh_iv),
        UNIT_TEST(test_any_changed_byte_is_refused),
        UNIT_TEST(test_kid_of_another_ring_key_is_refused),
        UNIT_TEST(test_wrong_aad_is_refused),
        UNIT_TEST(test_rotation),
        UNIT_TEST(test_format_matches_the_documentation),
        UNIT_TEST(test_bad_input_is_refused),
        UNIT_TEST(test_limits_and_misuse),
    };
    return UNIT_RUN("seal", tests);
}
