/* test_jws: HS256 JWS: round trip, PyJWT vectors, every tampering, alg/typ/kid confusion, form and size limits, key rotation. */
#include "unit.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "bb_util.h"
#include "bb_keys.h"
#include "bb_jws.h"

#define K11_HEX  "1111111111111111111111111111111111111111111111111111111111111111"
#define K11_KID  "02d449a31fbb267c"
#define K22_HEX  "2222222222222222222222222222222222222222222222222222222222222222"
#define K22_KID  "9f72ea0cf49536e3"
#define SEQ_HEX  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define SEQ_KID  "630dcd2966c43366"

#define HEADER_K11  "{\"alg\":\"HS256\",\"kid\":\"" K11_KID "\",\"typ\":\"JWT\"}"
#define PAYLOAD     "{\"sub\":\"alice\",\"uid\":42}"

/* Made by PyJWT 2.6 (jwt.encode(claims, bytes(range(32)), "HS256", headers={"kid": SEQ_KID, "typ": "JWT"})) with
 * the claims in sorted order, so that bb_jws_sign must produce exactly the same string. */
#define PYJWT_SORTED \
    "eyJhbGciOiJIUzI1NiIsImtpZCI6IjYzMGRjZDI5NjZjNDMzNjYiLCJ0eXAiOiJKV1QifQ." \
    "eyJhdXRoX3RpbWUiOjE3MDAwMDAwMDAsImVtYWlsIjoiYWxpY2VAZXhhbXBsZS5jb20iLCJleHAiOjE3MDAwMDM2MDAsImlhdCI6MTcwMDAw" \
    "MDAwMCwiaXNzIjoiaHR0cHM6Ly9taXJyb3IuZXhhbXBsZS5jb20iLCJuYW1lIjoiQWxpY2UgTGlkZGVsbCIsInNpZCI6IkFBRUNBd1FGQmdj" \
    "SUNRb0xEQTBPRHciLCJzdWIiOiJhbGljZSIsInVpZCI6NDJ9." \
    "d4ggkVJZI4dFZRFghg6lEllobNLSS6cru9lXbXYI8lE"
/* PyJWT again, claims in another order and a non-ASCII name written as "Zo\u00eb". */
#define PYJWT_UNSORTED \
    "eyJhbGciOiJIUzI1NiIsImtpZCI6IjYzMGRjZDI5NjZjNDMzNjYiLCJ0eXAiOiJKV1QifQ." \
    "eyJzdWIiOiJ6b2UiLCJ1aWQiOjcsIm5hbWUiOiJab1x1MDBlYiIsImVtYWlsIjoiIiwic2lkIjoiYzJsa0xYSmhibVJ2YlEiLCJpc3MiOiJo" \
    "dHRwczovL21pcnJvci5leGFtcGxlLmNvbSIsImF1dGhfdGltZSI6MTcwMDAwMDAwMCwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjE3MDAwMDM2" \
    "MDB9." \
    "JGoLhKwC8OPMrG019zhUQn9HdVO63-vPeCpPFV6RFDg"

static bb_keyring_t *ring_of(apr_pool_t *p, const char *key_file)
{
    const char *err = NULL;
    bb_keyring_t *ring = bb_keyring_parse(p, key_file, strlen(key_file), &err);

    assert_non_null(ring);
    return ring;
}

static json_t *json_of(apr_pool_t *p, const char *text)
{
    json_t *json = bb_json_parse(p, text, strlen(text));

    assert_non_null(json);
    return json;
}

static char *b64(apr_pool_t *p, const char *text)
{
    return bb_base64url_encode(p, (const unsigned char *)text, strlen(text));
}

/* "<header_part>.<payload_part>.<HMAC-SHA256 under key_hex>", made with OpenSSL directly and not with
 * bb_jws_sign: a validly signed token around whatever parts a test needs, however hostile. */
static char *signed_parts(apr_pool_t *p, const char *key_hex, const char *header_part, const char *payload_part)
{
    const char *err = NULL;
    bb_keyring_t *ring = bb_keyring_parse(p, key_hex, strlen(key_hex), &err);
    const bb_key_t *key = &APR_ARRAY_IDX(ring->keys, 0, bb_key_t);
    char *input = apr_pstrcat(p, header_part, ".", payload_part, NULL);
    unsigned char mac[32];
    unsigned int mac_len = 0;

    assert_non_null(HMAC(EVP_sha256(), key->secret, (int)key->len, (const unsigned char *)input, strlen(input),
                         mac, &mac_len));
    return apr_pstrcat(p, input, ".", bb_base64url_encode(p, mac, mac_len), NULL);
}

/* signed_parts over JSON texts. */
static char *signed_json(apr_pool_t *p, const char *key_hex, const char *header, const char *payload)
{
    return signed_parts(p, key_hex, b64(p, header), b64(p, payload));
}

static bb_jws_status_t verify(apr_pool_t *p, const bb_keyring_t *ring, const char *typ, const char *token)
{
    json_t *claims = (json_t *)1;
    bb_jws_status_t status = bb_jws_verify(p, ring, typ, token, strlen(token), &claims);

    if (status == BB_JWS_OK) {
        assert_true(json_is_object(claims));
    }
    else {
        assert_null(claims);
    }
    return status;
}

/* Verifies against the 11..11 ring, typ "JWT". */
static bb_jws_status_t verify_k11(apr_pool_t *p, const char *token)
{
    return verify(p, ring_of(p, K11_HEX), "JWT", token);
}

/* The token with part `index` (0..2) replaced. */
static char *with_part(apr_pool_t *p, const char *token, int index, const char *part)
{
    char *copy = apr_pstrdup(p, token), *last = NULL;
    char *parts[3];

    parts[0] = apr_strtok(copy, ".", &last);
    parts[1] = apr_strtok(NULL, ".", &last);
    parts[2] = apr_strtok(NULL, ".", &last);
    parts[index] = (char *)part;
    return apr_pstrcat(p, parts[0], ".", parts[1], ".", parts[2], NULL);
}

static void test_roundtrip(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p, K11_HEX);
    char *token = bb_jws_sign(p, ring, "JWT", json_of(p, PAYLOAD));
    json_t *claims = NULL;
    char *header_part;

    assert_non_null(token);
    header_part = apr_pstrmemdup(p, token, (apr_size_t)(strchr(token, '.') - token));
    assert_string_equal(header_part, b64(p, HEADER_K11));
    assert_int_equal(bb_jws_verify(p, ring, "JWT", token, strlen(token), &claims), BB_JWS_OK);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), "alice");
    assert_int_equal(json_integer_value(json_object_get(claims, "uid")), 42);
    assert_int_equal(json_object_size(claims), 2);
}

static void test_sign_matches_pyjwt(void **state)
{
    apr_pool_t *p = *state;
    /* Members deliberately not in sorted order: the signer sorts them. */
    json_t *claims = json_of(p, "{\"sub\":\"alice\",\"uid\":42,\"name\":\"Alice Liddell\","
                                "\"email\":\"alice@example.com\",\"sid\":\"AAECAwQFBgcICQoLDA0ODw\","
                                "\"iss\":\"https://mirror.example.com\",\"auth_time\":1700000000,"
                                "\"iat\":1700000000,\"exp\":1700003600}");

    assert_string_equal(bb_jws_sign(p, ring_of(p, SEQ_HEX), "JWT", claims), PYJWT_SORTED);
}

static void test_verify_accepts_pyjwt(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p, SEQ_HEX);
    json_t *claims = NULL;

    assert_int_equal(bb_jws_verify(p, ring, "JWT", PYJWT_UNSORTED, strlen(PYJWT_UNSORTED), &claims), BB_JWS_OK);
    assert_string_equal(bb_jws_claim_string(claims, "name"), "Zo\xc3\xab");
    assert_int_equal(verify(p, ring, "JWT", PYJWT_SORTED), BB_JWS_OK);
    /* The same token under another key ring: its kid is unknown there. */
    assert_int_equal(verify_k11(p, PYJWT_SORTED), BB_JWS_UNKNOWN_KID);
}

static void test_tampered_payload(void **state)
{
    apr_pool_t *p = *state;
    char *token = bb_jws_sign(p, ring_of(p, K11_HEX), "JWT", json_of(p, PAYLOAD));
    char *flipped = apr_pstrdup(p, token);

    /* A well-formed payload of someone else's choosing, with the original signature. */
    assert_int_equal(verify_k11(p, with_part(p, token, 1, b64(p, "{\"sub\":\"admin\",\"uid\":42}"))),
                     BB_JWS_BAD_SIGNATURE);
    /* One character of the payload part changed (still valid base64url). */
    flipped[strchr(flipped, '.') - flipped + 1] ^= 1;
    assert_int_equal(verify_k11(p, flipped), BB_JWS_BAD_SIGNATURE);
}

static void test_tampered_header(void **state)
{
    apr_pool_t *p = *state;
    char *token = bb_jws_sign(p, ring_of(p, K11_HEX), "JWT", json_of(p, PAYLOAD));
    /* The same members, written with a space: a different signing input. */
    const char *respaced = "{\"alg\":\"HS256\", \"kid\":\"" K11_KID "\",\"typ\":\"JWT\"}";

    assert_int_equal(verify_k11(p, with_part(p, token, 0, b64(p, respaced))), BB_JWS_BAD_SIGNATURE);
}

static void test_tampered_signature(void **state)
{
    apr_pool_t *p = *state;
    char *token = bb_jws_sign(p, ring_of(p, K11_HEX), "JWT", json_of(p, PAYLOAD));
    char *signature = strrchr(token, '.') + 1;
    char *flipped = apr_pstrdup(p, signature);

    flipped[0] = flipped[0] == 'A' ? 'B' : 'A';
    assert_int_equal(verify_k11(p, with_part(p, token, 2, flipped)), BB_JWS_BAD_SIGNATURE);
    assert_int_equal(verify_k11(p, with_part(p, token, 2, apr_pstrndup(p, signature, 40))), BB_JWS_BAD_SIGNATURE);
    assert_int_equal(verify_k11(p, apr_pstrndup(p, token, (apr_size_t)(signature - token))),
                     BB_JWS_BAD_SIGNATURE);     /* empty signature */
    /* Signed with another key under this kid. */
    assert_int_equal(verify_k11(p, signed_json(p, K22_HEX, HEADER_K11, PAYLOAD)), BB_JWS_BAD_SIGNATURE);
    /* The genuine one passes, so the cases above failed for their tampering alone. */
    assert_int_equal(verify_k11(p, token), BB_JWS_OK);
    assert_int_equal(verify_k11(p, signed_json(p, K11_HEX, HEADER_K11, PAYLOAD)), BB_JWS_OK);
}

static void test_alg_none(void **state)
{
    apr_pool_t *p = *state;
    const char *header = "{\"alg\":\"none\",\"kid\":\"" K11_KID "\",\"typ\":\"JWT\"}";
    char *token = apr_pstrcat(p, b64(p, header), ".", b64(p, PAYLOAD), ".", NULL);

    assert_int_equal(verify_k11(p, token), BB_JWS_BAD_ALG);
    assert_int_equal(verify_k11(p, apr_pstrcat(p, b64(p, "{\"alg\":\"none\",\"typ\":\"JWT\"}"), ".",
                                               b64(p, PAYLOAD), ".", NULL)), BB_JWS_BAD_ALG);
}

/* A header that differs from the genuine one only in its alg member, validly signed with the genuine key. */
static bb_jws_status_t verify_with_alg(apr_pool_t *p, const char *alg_json)
{
    const char *header = apr_pstrcat(p, "{\"alg\":", alg_json, ",\"kid\":\"" K11_KID "\",\"typ\":\"JWT\"}", NULL);
    return verify_k11(p, signed_json(p, K11_HEX, header, PAYLOAD));
}

static void test_other_algs(void **state)
{
    apr_pool_t *p = *state;

    assert_int_equal(verify_with_alg(p, "\"HS256\""), BB_JWS_OK);
    assert_int_equal(verify_with_alg(p, "\"HS512\""), BB_JWS_BAD_ALG);
    assert_int_equal(verify_with_alg(p, "\"RS256\""), BB_JWS_BAD_ALG);
    assert_int_equal(verify_with_alg(p, "\"HS384\""), BB_JWS_BAD_ALG);
    assert_int_equal(verify_with_alg(p, "\"hs256\""), BB_JWS_BAD_ALG);
    assert_int_equal(verify_with_alg(p, "\"HS256 \""), BB_JWS_BAD_ALG);
    /* A NUL inside a string: refused by the JSON parser, before anyone compares it with a C string. */
    assert_int_equal(verify_with_alg(p, "\"HS256\\u0000\""), BB_JWS_MALFORMED);
    assert_int_equal(verify_with_alg(p, "[\"HS256\"]"), BB_JWS_BAD_ALG);
    assert_int_equal(verify_with_alg(p, "null"), BB_JWS_BAD_ALG);
    assert_int_equal(verify_k11(p, signed_json(p, K11_HEX, "{\"kid\":\"" K11_KID "\",\"typ\":\"JWT\"}", PAYLOAD)),
                     BB_JWS_BAD_ALG);
}

static void test_kid(void **state)
{
    apr_pool_t *p = *state;

    /* Validly signed by a key the ring does not hold. */
    assert_int_equal(verify_k11(p, signed_json(p, K22_HEX, "{\"alg\":\"HS256\",\"kid\":\"" K22_KID "\","
                                               "\"typ\":\"JWT\"}", PAYLOAD)), BB_JWS_UNKNOWN_KID);
    assert_int_equal(verify_k11(p, signed_json(p, K11_HEX, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", PAYLOAD)),
                     BB_JWS_UNKNOWN_KID);
    assert_int_equal(verify_k11(p, signed_json(p, K11_HEX, "{\"alg\":\"HS256\",\"kid\":7,\"typ\":\"JWT\"}", PAYLOAD)),
                     BB_JWS_UNKNOWN_KID);
    assert_int_equal(verify_k11(p, signed_json(p, K11_HEX, "{\"alg\":\"HS256\",\"kid\":\"" K11_KID "\\u0000x\","
                                               "\"typ\":\"JWT\"}", PAYLOAD)), BB_JWS_MALFORMED);
    assert_int_equal(verify_k11(p, signed_json(p, K11_HEX, "{\"alg\":\"HS256\",\"kid\":\"02D449A31FBB267C\","
                                               "\"typ\":\"JWT\"}", PAYLOAD)), BB_JWS_UNKNOWN_KID);
}

static void test_typ(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p, K11_HEX);
    char *jwt = bb_jws_sign(p, ring, "JWT", json_of(p, PAYLOAD));
    char *other = bb_jws_sign(p, ring, "bbauth-state", json_of(p, PAYLOAD));

    assert_int_equal(verify(p, ring, "bbauth-state", jwt), BB_JWS_BAD_ALG);
    assert_int_equal(verify(p, ring, "JWT", other), BB_JWS_BAD_ALG);
    assert_int_equal(verify(p, ring, "bbauth-state", other), BB_JWS_OK);
    assert_int_equal(verify(p, ring, "jwt", jwt), BB_JWS_BAD_ALG);
    assert_int_equal(verify_k11(p, signed_json(p, K11_HEX, "{\"alg\":\"HS256\",\"kid\":\"" K11_KID "\"}", PAYLOAD)),
                     BB_JWS_BAD_ALG);
}

static void test_extra_header_members(void **state)
{
    apr_pool_t *p = *state;

    assert_int_equal(verify_k11(p, signed_json(p, K11_HEX, "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"kid\":\""
                                               K11_KID "\",\"typ\":\"JWT\"}", PAYLOAD)), BB_JWS_MALFORMED);
    assert_int_equal(verify_k11(p, signed_json(p, K11_HEX, "{\"alg\":\"HS256\",\"jku\":\"https://evil.example/k\","
                                               "\"kid\":\"" K11_KID "\",\"typ\":\"JWT\"}", PAYLOAD)),
                     BB_JWS_MALFORMED);
    assert_int_equal(verify_k11(p, signed_json(p, K11_HEX, "{\"alg\":\"HS256\",\"alg\":\"HS256\",\"kid\":\""
                                               K11_KID "\",\"typ\":\"JWT\"}", PAYLOAD)), BB_JWS_MALFORMED);
}

static void test_segment_count(void **state)
{
    apr_pool_t *p = *state;
    char *token = bb_jws_sign(p, ring_of(p, K11_HEX), "JWT", json_of(p, PAYLOAD));
    char *two = apr_pstrndup(p, token, (apr_size_t)(strrchr(token, '.') - token));

    assert_int_equal(verify_k11(p, b64(p, HEADER_K11)), BB_JWS_MALFORMED);           /* 1 segment */
    assert_int_equal(verify_k11(p, two), BB_JWS_MALFORMED);                          /* 2 segments */
    assert_int_equal(verify_k11(p, apr_pstrcat(p, token, ".", NULL)), BB_JWS_MALFORMED);
    assert_int_equal(verify_k11(p, apr_pstrcat(p, token, ".AAAA", NULL)), BB_JWS_MALFORMED);
    /* Counted before anything else is looked at: a fourth part makes even a bad alg merely malformed. */
    assert_int_equal(verify_k11(p, apr_pstrcat(p, signed_json(p, K11_HEX, "{\"alg\":\"none\",\"kid\":\"" K11_KID
                                                              "\",\"typ\":\"JWT\"}", PAYLOAD), ".x", NULL)),
                     BB_JWS_MALFORMED);
    assert_int_equal(verify_k11(p, apr_pstrcat(p, b64(p, HEADER_K11), "..", two, NULL)), BB_JWS_MALFORMED);
    assert_int_equal(verify_k11(p, ""), BB_JWS_MALFORMED);
    assert_int_equal(verify_k11(p, ".."), BB_JWS_MALFORMED);
    assert_int_equal(verify_k11(p, "..."), BB_JWS_MALFORMED);
}

static void test_bad_base64url_in_each_segment(void **state)
{
    apr_pool_t *p = *state;
    char *header = b64(p, HEADER_K11), *payload = b64(p, PAYLOAD);
    char *token = signed_parts(p, K11_HEX, header, payload);
    char *signature = strrchr(token, '.') + 1;

    /* Header: padding, standard alphabet, a stray character. */
    assert_int_equal(verify_k11(p, signed_parts(p, K11_HEX, apr_pstrcat(p, header, "=", NULL), payload)),
                     BB_JWS_MALFORMED);
    assert_int_equal(verify_k11(p, signed_parts(p, K11_HEX, apr_pstrcat(p, "+", header + 1, NULL), payload)),
                     BB_JWS_MALFORMED);
    assert_int_equal(verify_k11(p, signed_parts(p, K11_HEX, apr_pstrcat(p, header, "!", NULL), payload)),
                     BB_JWS_MALFORMED);
    /* Payload: validly signed, but not base64url. */
    assert_int_equal(verify_k11(p, signed_parts(p, K11_HEX, header, apr_pstrcat(p, payload, "==", NULL))),
                     BB_JWS_MALFORMED);
    assert_int_equal(verify_k11(p, signed_parts(p, K11_HEX, header, apr_pstrcat(p, payload, " ", NULL))),
                     BB_JWS_MALFORMED);
    /* Payload changed after signing: the signature is checked before the payload is even decoded. */
    assert_int_equal(verify_k11(p, with_part(p, token, 1, apr_pstrcat(p, payload, "*", NULL))),
                     BB_JWS_BAD_SIGNATURE);
    /* Signature: padding, standard alphabet, trailing bits. */
    assert_int_equal(verify_k11(p, with_part(p, token, 2, apr_pstrcat(p, signature, "=", NULL))),
                     BB_JWS_MALFORMED);
    assert_int_equal(verify_k11(p, with_part(p, token, 2, apr_pstrcat(p, "/", signature + 1, NULL))),
                     BB_JWS_MALFORMED);
    assert_int_equal(verify_k11(p, with_part(p, token, 2, apr_pstrcat(p, signature, "AA", NULL))),
                     BB_JWS_MALFORMED);     /* 45 digits: no byte string encodes to 1 mod 4 digits */
    assert_int_equal(verify_k11(p, with_part(p, token, 2, apr_pstrcat(p, signature, "A", NULL))),
                     BB_JWS_BAD_SIGNATURE); /* 44 digits: 33 bytes, well-formed but not the MAC */
    assert_int_equal(verify_k11(p, token), BB_JWS_OK);
}

static void test_payload_not_an_object(void **state)
{
    apr_pool_t *p = *state;
    static const char *const payloads[] = {
        "[\"sub\",\"alice\"]", "\"alice\"", "42", "null", "not json", "{\"sub\":\"alice\"", "",
        "{\"sub\":\"alice\",\"sub\":\"admin\"}",        /* duplicate member */
        "{\"sub\":\"alice\"} {}",                        /* trailing data */
        "{\"sub\":\"\xff\"}",                            /* not UTF-8 */
        "{\"exp\":99999999999999999999}",             /* an integer beyond 64 bits */
    };
    apr_size_t i;

    for (i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        assert_int_equal(verify_k11(p, signed_json(p, K11_HEX, HEADER_K11, payloads[i])), BB_JWS_MALFORMED);
    }
    assert_int_equal(verify_k11(p, signed_json(p, K11_HEX, "[\"HS256\"]", PAYLOAD)), BB_JWS_MALFORMED);
    assert_int_equal(verify_k11(p, signed_json(p, K11_HEX, "", PAYLOAD)), BB_JWS_MALFORMED);
    assert_int_equal(verify_k11(p, signed_json(p, K11_HEX, HEADER_K11, "{}")), BB_JWS_OK);
}

/* Claims {"pad":"xxx..."} with n characters of padding. */
static json_t *padded_claims(apr_pool_t *p, apr_size_t n)
{
    char *pad = apr_palloc(p, n + 1);

    memset(pad, 'x', n);
    pad[n] = '\0';
    return bb_json_pool_own(p, json_pack("{s:s}", "pad", pad));
}

static void test_size_limit(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p, K11_HEX);
    char *longest = NULL, *token, *text;
    apr_size_t n;

    /* The signer refuses exactly the tokens the verifier would refuse. */
    for (n = 2900; (token = bb_jws_sign(p, ring, "JWT", padded_claims(p, n))) != NULL; n++) {
        longest = token;
    }
    assert_non_null(longest);
    assert_in_range(strlen(longest), BB_JWS_MAX_LEN - 3, BB_JWS_MAX_LEN);
    assert_int_equal(verify(p, ring, "JWT", longest), BB_JWS_OK);
    /* A validly signed token a little over the limit. */
    text = json_dumps(padded_claims(p, n + 2), JSON_COMPACT);
    token = signed_json(p, K11_HEX, HEADER_K11, text);
    free(text);
    assert_true(strlen(token) > BB_JWS_MAX_LEN);
    assert_int_equal(verify(p, ring, "JWT", token), BB_JWS_MALFORMED);
}

static void test_length_argument(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p, K11_HEX);
    char *token = bb_jws_sign(p, ring, "JWT", json_of(p, PAYLOAD));
    char *followed = apr_pstrcat(p, token, "; other=1", NULL);
    json_t *claims = NULL;

    assert_int_equal(bb_jws_verify(p, ring, "JWT", followed, strlen(token), &claims), BB_JWS_OK);
    assert_int_not_equal(bb_jws_verify(p, ring, "JWT", token, strlen(token) - 1, &claims), BB_JWS_OK);
    assert_int_equal(bb_jws_verify(p, ring, "JWT", NULL, 0, &claims), BB_JWS_MALFORMED);
}

static void test_key_rotation(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *old_ring = ring_of(p, K11_HEX);
    bb_keyring_t *new_ring = ring_of(p, K22_HEX "\n" K11_HEX "\n");
    char *old_token = bb_jws_sign(p, old_ring, "JWT", json_of(p, PAYLOAD));
    char *new_token = bb_jws_sign(p, new_ring, "JWT", json_of(p, PAYLOAD));

    assert_int_equal(verify(p, new_ring, "JWT", old_token), BB_JWS_OK);
    assert_int_equal(verify(p, new_ring, "JWT", new_token), BB_JWS_OK);
    /* New tokens are signed with the first key, which the old ring does not know. */
    assert_int_equal(verify(p, old_ring, "JWT", new_token), BB_JWS_UNKNOWN_KID);
    assert_string_equal(apr_pstrmemdup(p, new_token, (apr_size_t)(strchr(new_token, '.') - new_token)),
                        b64(p, "{\"alg\":\"HS256\",\"kid\":\"" K22_KID "\",\"typ\":\"JWT\"}"));
}

static void test_sign_refuses(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p, K11_HEX);

    assert_null(bb_jws_sign(p, ring, "JWT", NULL));
    assert_null(bb_jws_sign(p, ring, "JWT", json_of(p, "[1,2]")));
    assert_null(bb_jws_sign(p, ring, NULL, json_of(p, PAYLOAD)));
    assert_null(bb_jws_sign(p, NULL, "JWT", json_of(p, PAYLOAD)));
}

static void test_claim_string(void **state)
{
    json_t *claims = json_of(*state, "{\"s\":\"alice\",\"e\":\"\",\"n\":1,\"z\":null}");

    assert_string_equal(bb_jws_claim_string(claims, "s"), "alice");
    assert_string_equal(bb_jws_claim_string(claims, "e"), "");
    assert_null(bb_jws_claim_string(claims, "n"));
    assert_null(bb_jws_claim_string(claims, "z"));
    assert_null(bb_jws_claim_string(claims, "missing"));
    assert_null(bb_jws_claim_string(NULL, "s"));
}

static void test_claim_int(void **state)
{
    json_t *claims = json_of(*state, "{\"zero\":0,\"t\":1700000000,\"max\":253402300799,\"over\":253402300800,"
                                     "\"neg\":-1,\"real\":1700000000.0,\"exp\":1.7e9,\"frac\":1.5,\"str\":\"5\","
                                     "\"bool\":true,\"big\":9223372036854775807}");
    apr_int64_t out = -7;

    assert_true(bb_jws_claim_int(claims, "zero", BB_JWS_MAX_TIME, &out));
    assert_int_equal(out, 0);
    assert_true(bb_jws_claim_int(claims, "t", BB_JWS_MAX_TIME, &out));
    assert_int_equal(out, 1700000000);
    assert_true(bb_jws_claim_int(claims, "max", BB_JWS_MAX_TIME, &out));
    assert_int_equal(out, BB_JWS_MAX_TIME);
    out = -7;
    assert_false(bb_jws_claim_int(claims, "over", BB_JWS_MAX_TIME, &out));
    assert_false(bb_jws_claim_int(claims, "neg", BB_JWS_MAX_TIME, &out));
    assert_false(bb_jws_claim_int(claims, "real", BB_JWS_MAX_TIME, &out));
    assert_false(bb_jws_claim_int(claims, "exp", BB_JWS_MAX_TIME, &out));
    assert_false(bb_jws_claim_int(claims, "frac", BB_JWS_MAX_TIME, &out));
    assert_false(bb_jws_claim_int(claims, "str", BB_JWS_MAX_TIME, &out));
    assert_false(bb_jws_claim_int(claims, "bool", BB_JWS_MAX_TIME, &out));
    assert_false(bb_jws_claim_int(claims, "big", BB_JWS_MAX_TIME, &out));
    assert_false(bb_jws_claim_int(claims, "missing", BB_JWS_MAX_TIME, &out));
    assert_int_equal(out, -7);      /* untouched on refusal */
    assert_true(bb_jws_claim_int(claims, "big", APR_INT64_MAX, &out));
    assert_true(out == APR_INT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_roundtrip),
        UNIT_TEST(test_sign_matches_pyjwt),
        UNIT_TEST(test_verify_accepts_pyjwt),
        UNIT_TEST(test_tampered_payload),
        UNIT_TEST(test_tampered_header),
        UNIT_TEST(test_tampered_signature),
        UNIT_TEST(test_alg_none),
        UNIT_TEST(test_other_algs),
        UNIT_TEST(test_kid),
        UNIT_TEST(test_typ),
        UNIT_TEST(test_extra_header_members),
        UNIT_TEST(test_segment_count),
        UNIT_TEST(test_bad_base64url_in_each_segment),
        UNIT_TEST(test_payload_not_an_object),
        UNIT_TEST(test_size_limit),
        UNIT_TEST(test_length_argument),
        UNIT_TEST(test_key_rotation),
        UNIT_TEST(test_sign_refuses),
        UNIT_TEST(test_claim_string),
        UNIT_TEST(test_claim_int),
    };
    return UNIT_RUN("jws", tests);
}
