/* test_sign: ES256/EdDSA signing keys: loading and refusals, RFC 7638 kids (PyJWT-computed), JWS with signers
 * (PyJWT vectors), every alg/key confusion refused, HS256 keys still verifying, the JWK Set without private parts. */
#include "unit.h"
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "bb_util.h"
#include "bb_keys.h"
#include "bb_jws.h"
#include "bb_jwk.h"
#include "bb_pkey.h"
#include "bb_sign.h"
#include "bb_session.h"
#include "sign_keys.h"

#define HMAC_KEY_FILE "1111111111111111111111111111111111111111111111111111111111111111\n"

#define P256_PUBLIC_PEM \
    "-----BEGIN PUBLIC KEY-----\n" \
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE5M9olnnuvNIfCcB8ddm1HH/x33mR\n" \
    "RT5NZ04wydvBCjGkwOjHrIKj0KAQafe8V3lvzYGpUR48sILPRQZGFyWm7A==\n" \
    "-----END PUBLIC KEY-----\n"
/* Python: jwt.algorithms.ECAlgorithm.to_jwk of the public key, thumbprint per RFC 7638 with hashlib. */
#define P256_KID "ftBe_MbZ2fsb9ngowhkVPbKX8KSfoWVUK3Io5smmI2s"
#define P256_X   "5M9olnnuvNIfCcB8ddm1HH_x33mRRT5NZ04wydvBCjE"
#define P256_Y   "pMDox6yCo9CgEGn3vFd5b82BqVEePLCCz0UGRhclpuw"

/* A key whose x coordinate starts with a zero byte: RFC 7518 keeps it (32 bytes), and so must the kid. */
#define P256_ZERO_X_PEM \
    "-----BEGIN PRIVATE KEY-----\n" \
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPv+i+TD4Mtztd/xc\n" \
    "GdR4SKVxgYz/itk9i8YtqPgG3gmhRANCAAQAir9akuihGm/RfIBURbrCn20jK3fT\n" \
    "mINiu4pChLzdCN0JFBA3Y1Ak1dFsK0xVLdImCFsjNM+A3hLw8wntt5/B\n" \
    "-----END PRIVATE KEY-----\n"
#define P256_ZERO_X     "AIq_WpLooRpv0XyAVEW6wp9tIyt305iDYruKQoS83Qg"
#define P256_ZERO_X_KID "lyOiFCf23hheM_w2jU8LnSF-8ILHBvwmEVVjojsHnc4"

#define ED25519_KID "Kh90yQjP8mNd6sSwQHMcCMeq-B1piEBqeiezcMw-3TM"
#define ED25519_X   "jxt5wlPYl3XlMVXPSbLcRYIX1zZx6q-ln_d5FcRjOvY"

/* PyJWT 2.6: jwt.encode({"sub":"alice","uid":42}, <key>, alg, headers={"kid": <kid>, "typ": "JWT"}). */
#define PYJWT_ES256 \
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImZ0QmVfTWJaMmZzYjluZ293aGtWUGJLWDhLU2ZvV1ZVSzNJbzVzbW1JMnMiLCJ0eXAiOiJKV1QifQ." \
    "eyJzdWIiOiJhbGljZSIsInVpZCI6NDJ9." \
    "syProgd-dBe3fueoZtQoZTedYQjMmRU4gKBP5lvp6T4CwygTLD-f-rf2i1bdvypvLKVlS8glj7fCLHFjeI0vvg"
#define PYJWT_EDDSA \
    "eyJhbGciOiJFZERTQSIsImtpZCI6IktoOTB5UWpQOG1OZDZzU3dRSE1jQ01lcS1CMXBpRUJxZWllemNNdy0zVE0iLCJ0eXAiOiJKV1QifQ." \
    "eyJzdWIiOiJhbGljZSIsInVpZCI6NDJ9." \
    "96u1CxAY4RL_ZDYV-TSo6T0rrGSScMKMda6jgX8SSFAQOFX7h2ppAKuyc6SDyGjVALAWvDEkPoiy-3oJtg6bCQ"

static bb_signkey_t *key_of(apr_pool_t *p, const char *pem)
{
    const char *err = NULL;
    bb_signkey_t *key = bb_signkey_from_pem(p, pem, strlen(pem), "test.pem", &err);

    assert_non_null(key);
    assert_null(err);
    return key;
}

/* A private key made now, as PEM (optionally encrypted with a passphrase). */
static const char *fresh_pem(apr_pool_t *p, EVP_PKEY *pkey, int encrypted)
{
    BIO *bio = bb_pool_bio(p, NULL, 0);
    char *data;
    long len;

    assert_non_null(pkey);
    assert_int_equal(encrypted ? PEM_write_bio_PKCS8PrivateKey(bio, pkey, EVP_aes_256_cbc(), NULL, 0, NULL, "pass")
                               : PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
    EVP_PKEY_free(pkey);
    len = BIO_get_mem_data(bio, &data);
    return apr_pstrmemdup(p, data, (apr_size_t)len);
}

static void assert_refused(apr_pool_t *p, const char *pem, const char *says)
{
    const char *err = NULL;

    assert_null(bb_signkey_from_pem(p, pem, strlen(pem), "/etc/keys/sign.pem", &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "/etc/keys/sign.pem"));
    if (strstr(err, says) == NULL) {
        fail_msg("'%s' does not say '%s'", err, says);
    }
}

/* A ring of the HMAC test key with these signers (the first signs). */
static bb_keyring_t *ring_with(apr_pool_t *p, bb_signkey_t *first, bb_signkey_t *second)
{
    const char *err = NULL;
    bb_keyring_t *ring = bb_keyring_parse(p, HMAC_KEY_FILE, strlen(HMAC_KEY_FILE), &err);
    apr_array_header_t *signers = apr_array_make(p, 2, sizeof(bb_signkey_t *));

    assert_non_null(ring);
    if (first) {
        APR_ARRAY_PUSH(signers, bb_signkey_t *) = first;
    }
    if (second) {
        APR_ARRAY_PUSH(signers, bb_signkey_t *) = second;
    }
    return bb_keyring_with_signers(p, ring, signers);
}

static bb_jws_status_t verify(apr_pool_t *p, const bb_keyring_t *ring, const char *token)
{
    json_t *claims = NULL;
    return bb_jws_verify(p, ring, "JWT", token, strlen(token), &claims);
}

static char *b64(apr_pool_t *p, const char *text)
{
    return bb_base64url_encode(p, (const unsigned char *)text, strlen(text));
}

/* A token with any header, signed by key over "<header>.<payload>" (not through bb_jws_sign). */
static char *token_signed_by(apr_pool_t *p, const bb_signkey_t *key, const char *header)
{
    char *input = apr_pstrcat(p, b64(p, header), ".", b64(p, "{\"sub\":\"alice\"}"), NULL);
    char *signature = bb_signkey_sign(p, key, input, strlen(input));

    assert_non_null(signature);
    return apr_pstrcat(p, input, ".", signature, NULL);
}

static void test_p256_key_and_kid(void **state)
{
    apr_pool_t *p = *state;
    bb_signkey_t *key = key_of(p, P256_PEM);

    assert_int_equal(key->alg, BB_SIGN_ES256);
    assert_string_equal(bb_signkey_alg_name(key), "ES256");
    assert_string_equal(key->kid, P256_KID);
    assert_string_equal(key->x, P256_X);
    assert_string_equal(key->y, P256_Y);
}

static void test_coordinates_keep_leading_zeros(void **state)
{
    apr_pool_t *p = *state;
    bb_signkey_t *key = key_of(p, P256_ZERO_X_PEM);

    assert_string_equal(key->x, P256_ZERO_X);
    assert_string_equal(key->kid, P256_ZERO_X_KID);
}

static void test_ed25519_key_and_kid(void **state)
{
    apr_pool_t *p = *state;
    bb_signkey_t *key = key_of(p, ED25519_PEM);

    assert_int_equal(key->alg, BB_SIGN_EDDSA);
    assert_string_equal(bb_signkey_alg_name(key), "EdDSA");
    assert_string_equal(key->kid, ED25519_KID);
    assert_string_equal(key->x, ED25519_X);
    assert_null(key->y);
}

static void test_thumbprint_is_over_canonical_members(void **state)
{
    apr_pool_t *p = *state;
    /* The same members given in another order make the same canonical text, hence the same thumbprint. */
    json_t *jwk = bb_jwk_public(p, "EC", "P-256", P256_X, P256_Y);

    assert_non_null(jwk);
    assert_string_equal(bb_jwk_thumbprint(p, jwk), P256_KID);
}

static void test_refusals(void **state)
{
    apr_pool_t *p = *state;

    assert_refused(p, fresh_pem(p, EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024), 0), "of type RSA");
    assert_refused(p, fresh_pem(p, EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"), 0), "not on curve P-256");
    assert_refused(p, fresh_pem(p, EVP_PKEY_Q_keygen(NULL, NULL, "X25519"), 0), "of type X25519");
    assert_refused(p, fresh_pem(p, EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), 1), "the key is encrypted");
    assert_refused(p, P256_PUBLIC_PEM, "only a public key");
    assert_refused(p, "not a key\n", "no PEM private key found");
    assert_refused(p, "", "no PEM private key found");
}

static void test_load_unreadable_names_the_file(void **state)
{
    apr_pool_t *p = *state;
    const char *err = NULL;

    assert_null(bb_signkey_load(p, "/nonexistent/sign.pem", &err));
    assert_non_null(strstr(err, "/nonexistent/sign.pem: cannot read the key file"));
}

static void test_pyjwt_vectors_verify(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_with(p, key_of(p, P256_PEM), key_of(p, ED25519_PEM));
    json_t *claims = NULL;

    assert_int_equal(bb_jws_verify(p, ring, "JWT", PYJWT_ES256, strlen(PYJWT_ES256), &claims), BB_JWS_OK);
    assert_string_equal(bb_jws_claim_string(claims, "sub"), "alice");
    assert_int_equal(verify(p, ring, PYJWT_EDDSA), BB_JWS_OK);
    /* Without the signers the same tokens name no key. */
    assert_int_equal(verify(p, ring_with(p, NULL, NULL), PYJWT_ES256), BB_JWS_UNKNOWN_KID);
}

static void test_round_trip_first_signer_signs(void **state)
{
    apr_pool_t *p = *state;
    bb_signkey_t *ec = key_of(p, P256_PEM), *ed = key_of(p, ED25519_PEM);
    json_t *claims = bb_json_parse(p, "{\"sub\":\"bob\"}", 13);
    char *es_token = bb_jws_sign(p, ring_with(p, ec, ed), "JWT", claims);
    char *ed_token = bb_jws_sign(p, ring_with(p, ed, ec), "JWT", claims);

    assert_non_null(es_token);
    assert_non_null(ed_token);
    assert_non_null(strstr(es_token, b64(p, "{\"alg\":\"ES256\",\"kid\":\"" P256_KID "\",\"typ\":\"JWT\"}")));
    assert_non_null(strstr(ed_token, b64(p, "{\"alg\":\"EdDSA\",\"kid\":\"" ED25519_KID "\",\"typ\":\"JWT\"}")));
    /* Rotation: each verifies with both keys published, in either order. */
    assert_int_equal(verify(p, ring_with(p, ed, ec), es_token), BB_JWS_OK);
    assert_int_equal(verify(p, ring_with(p, ec, ed), ed_token), BB_JWS_OK);
    /* Once its key is gone, a token no longer verifies. */
    assert_int_equal(verify(p, ring_with(p, ed, NULL), es_token), BB_JWS_UNKNOWN_KID);
}

static void test_hs256_still_verifies_with_signers(void **state)
{
    apr_pool_t *p = *state;
    json_t *claims = bb_json_parse(p, "{\"sub\":\"bob\"}", 13);
    char *hs_token = bb_jws_sign(p, ring_with(p, NULL, NULL), "JWT", claims);

    assert_non_null(strstr(hs_token, b64(p, "{\"alg\":\"HS256\"")));
    assert_int_equal(verify(p, ring_with(p, key_of(p, P256_PEM), NULL), hs_token), BB_JWS_OK);
}

static void test_alg_confusion_refused(void **state)
{
    apr_pool_t *p = *state;
    bb_signkey_t *ec = key_of(p, P256_PEM), *ed = key_of(p, ED25519_PEM);
    bb_signkey_t *other = key_of(p, fresh_pem(p, EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), 0));
    bb_keyring_t *ring = ring_with(p, ec, ed);
    const char *payload = b64(p, "{\"sub\":\"alice\"}");
    char *input, *hs_token;
    unsigned char mac[BB_HMAC_LEN];

    /* HS256 with the public key (PEM, as many libraries would take it) as the secret, kid of the EC key. */
    input = apr_pstrcat(p, b64(p, "{\"alg\":\"HS256\",\"kid\":\"" P256_KID "\",\"typ\":\"JWT\"}"), ".", payload,
                        NULL);
    assert_true(bb_hmac_sha256(bb_hmac_key_create(p, (const unsigned char *)P256_PUBLIC_PEM,
                                                  strlen(P256_PUBLIC_PEM)), input, strlen(input), mac));
    hs_token = apr_pstrcat(p, input, ".", bb_base64url_encode(p, mac, sizeof(mac)), NULL);
    assert_int_equal(verify(p, ring, hs_token), BB_JWS_UNKNOWN_KID);
    /* alg none, with and without a signature. */
    input = apr_pstrcat(p, b64(p, "{\"alg\":\"none\",\"kid\":\"" P256_KID "\",\"typ\":\"JWT\"}"), ".", payload,
                        NULL);
    assert_int_equal(verify(p, ring, apr_pstrcat(p, input, ".", NULL)), BB_JWS_BAD_ALG);
    assert_int_equal(verify(p, ring, token_signed_by(p, ec, "{\"alg\":\"none\",\"kid\":\"" P256_KID
                                                          "\",\"typ\":\"JWT\"}")), BB_JWS_BAD_ALG);
    /* Ed25519 signature claiming the P-256 kid (alg EdDSA or ES256), and the other way round. */
    assert_int_equal(verify(p, ring, token_signed_by(p, ed, "{\"alg\":\"EdDSA\",\"kid\":\"" P256_KID
                                                          "\",\"typ\":\"JWT\"}")), BB_JWS_BAD_ALG);
    assert_int_equal(verify(p, ring, token_signed_by(p, ed, "{\"alg\":\"ES256\",\"kid\":\"" P256_KID
                                                          "\",\"typ\":\"JWT\"}")), BB_JWS_BAD_SIGNATURE);
    assert_int_equal(verify(p, ring, token_signed_by(p, ec, "{\"alg\":\"ES256\",\"kid\":\"" ED25519_KID
                                                          "\",\"typ\":\"JWT\"}")), BB_JWS_BAD_ALG);
    /* ES256 by another P-256 key under our kid; and under its own kid, which is not published. */
    assert_int_equal(verify(p, ring, token_signed_by(p, other, "{\"alg\":\"ES256\",\"kid\":\"" P256_KID
                                                             "\",\"typ\":\"JWT\"}")), BB_JWS_BAD_SIGNATURE);
    assert_int_equal(verify(p, ring, token_signed_by(p, other, apr_pstrcat(p, "{\"alg\":\"ES256\",\"kid\":\"",
                                                     other->kid, "\",\"typ\":\"JWT\"}", NULL))), BB_JWS_UNKNOWN_KID);
    /* An HMAC kid with alg ES256 names no signer. */
    assert_int_equal(verify(p, ring, token_signed_by(p, ec, "{\"alg\":\"ES256\",\"kid\":\"02d449a31fbb267c\","
                                                          "\"typ\":\"JWT\"}")), BB_JWS_UNKNOWN_KID);
}

static void test_signature_forms_refused(void **state)
{
    apr_pool_t *p = *state;
    bb_signkey_t *ec = key_of(p, P256_PEM);
    bb_keyring_t *ring = ring_with(p, ec, NULL);
    const char *token = token_signed_by(p, ec, "{\"alg\":\"ES256\",\"kid\":\"" P256_KID "\",\"typ\":\"JWT\"}");
    apr_size_t len = strlen(token), input_len = (apr_size_t)(strrchr(token, '.') - token);
    char *flipped = apr_pstrdup(p, token);
    apr_size_t sig_len = 0;
    unsigned char *sig = bb_base64url_decode(p, token + input_len + 1, len - input_len - 1, &sig_len), *longer;

    assert_int_equal(verify(p, ring, token), BB_JWS_OK);
    /* The signature less its last byte, and with a byte more: the length alone refuses them. */
    assert_int_equal(sig_len, 64);
    assert_int_equal(verify(p, ring, apr_pstrcat(p, apr_pstrndup(p, token, input_len + 1),
                                                 bb_base64url_encode(p, sig, 63), NULL)), BB_JWS_BAD_SIGNATURE);
    longer = apr_pcalloc(p, 65);
    memcpy(longer, sig, 64);
    assert_int_equal(verify(p, ring, apr_pstrcat(p, apr_pstrndup(p, token, input_len + 1),
                                                 bb_base64url_encode(p, longer, 65), NULL)), BB_JWS_BAD_SIGNATURE);
    /* A changed last character. */
    flipped[len - 2] = flipped[len - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(p, ring, flipped), BB_JWS_BAD_SIGNATURE);
}

static void test_jwk_set_has_public_members_only(void **state)
{
    apr_pool_t *p = *state;
    apr_array_header_t *keys = apr_array_make(p, 2, sizeof(bb_signkey_t *));
    const char *text;
    json_t *set, *first, *second;

    APR_ARRAY_PUSH(keys, bb_signkey_t *) = key_of(p, P256_PEM);
    APR_ARRAY_PUSH(keys, bb_signkey_t *) = key_of(p, ED25519_PEM);
    text = bb_jwk_set(p, keys);
    assert_non_null(text);
    set = bb_json_parse(p, text, strlen(text));
    assert_int_equal(json_object_size(set), 1);
    assert_int_equal(json_array_size(json_object_get(set, "keys")), 2);
    first = json_array_get(json_object_get(set, "keys"), 0);
    second = json_array_get(json_object_get(set, "keys"), 1);
    assert_string_equal(bb_jws_claim_string(first, "kid"), P256_KID);
    assert_string_equal(bb_jws_claim_string(first, "alg"), "ES256");
    assert_string_equal(bb_jws_claim_string(first, "use"), "sig");
    assert_string_equal(bb_jws_claim_string(first, "x"), P256_X);
    assert_string_equal(bb_jws_claim_string(first, "y"), P256_Y);
    assert_int_equal(json_object_size(first), 7);        /* crv kty x y kid alg use */
    assert_string_equal(bb_jws_claim_string(second, "kty"), "OKP");
    assert_string_equal(bb_jws_claim_string(second, "crv"), "Ed25519");
    assert_int_equal(json_object_size(second), 6);       /* crv kty x kid alg use */
    assert_null(strstr(text, "\"d\""));
    assert_string_equal(bb_jwk_set(p, apr_array_make(p, 0, sizeof(bb_signkey_t *))), "{\"keys\":[]}");
}

static void test_assertion_claims_and_no_session(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_with(p, key_of(p, P256_PEM), NULL);
    bb_session_policy_t policy = { "https://mirror.example.com", 28800, 3600 };
    bb_session_t *who = bb_session_new(p, "alice", 42, "Alice", "alice@example.com", 1700000000);
    bb_session_t *decoded = NULL;
    json_t *claims = NULL;
    apr_int64_t n = 0;
    char *assertion = bb_session_assertion(p, ring, policy.issuer, "https://mirror.example.com/packages", who,
                                           1700000100);

    assert_non_null(assertion);
    assert_int_equal(bb_jws_verify(p, ring, "JWT", assertion, strlen(assertion), &claims), BB_JWS_OK);
    assert_string_equal(bb_jws_claim_string(claims, "aud"), "https://mirror.example.com/packages");
    assert_string_equal(bb_jws_claim_string(claims, "iss"), "https://mirror.example.com");
    assert_string_equal(bb_jws_claim_string(claims, "email"), "alice@example.com");
    assert_true(bb_jws_claim_int(claims, "exp", BB_JWS_MAX_TIME, &n));
    assert_int_equal(n, 1700000160);
    assert_true(bb_jws_claim_int(claims, "auth_time", BB_JWS_MAX_TIME, &n));
    assert_int_equal(n, 1700000000);
    assert_null(json_object_get(claims, "sid"));
    /* Signed with the cookie's key and typ, yet no session: it has no sid. */
    assert_int_equal(bb_session_decode(p, ring, &policy, assertion, 1700000100, &decoded), BB_SESSION_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_p256_key_and_kid),
        UNIT_TEST(test_coordinates_keep_leading_zeros),
        UNIT_TEST(test_ed25519_key_and_kid),
        UNIT_TEST(test_thumbprint_is_over_canonical_members),
        UNIT_TEST(test_refusals),
        UNIT_TEST(test_load_unreadable_names_the_file),
        UNIT_TEST(test_pyjwt_vectors_verify),
        UNIT_TEST(test_round_trip_first_signer_signs),
        UNIT_TEST(test_hs256_still_verifies_with_signers),
        UNIT_TEST(test_alg_confusion_refused),
        UNIT_TEST(test_signature_forms_refused),
        UNIT_TEST(test_jwk_set_has_public_members_only),
        UNIT_TEST(test_assertion_claims_and_no_session),
    };
    return UNIT_RUN("sign", tests);
}
