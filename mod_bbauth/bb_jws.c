/* bb_jws: HS256, ES256 and EdDSA JWS compact tokens: signs a claims object; verifies form, header and signature before the payload is parsed. */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "bb_hmac.h"
#include "bb_util.h"
#include "bb_jws.h"

#define JWS_HMAC_ALG    "HS256"
#define JWS_MAC_LEN     BB_HMAC_LEN
#define JWS_HEADER_SIZE 3               /* alg, kid, typ: the only members this module writes or accepts */

/* The key a token names: an HMAC key (HS256) or a signing key (ES256/EdDSA), never both. */
typedef struct {
    const bb_key_t *hmac;
    const bb_signkey_t *signer;
} jws_key_t;

/* HMAC-SHA256 of data under key; 1 on success. */
static int hs256(const bb_key_t *key, const char *data, apr_size_t len, unsigned char mac[JWS_MAC_LEN])
{
    return bb_hmac_sha256(key->hmac, data, len, mac);
}

/* base64url of the compact JSON text of value, or NULL. Sorted members: the header comes out byte for byte as
 * PyJWT writes it, and a token does not depend on the order in which the claims were added. */
static char *encode_json_part(apr_pool_t *p, const json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS);
    char *part = text ? bb_base64url_encode(p, (const unsigned char *)text, strlen(text)) : NULL;

    free(text);
    return part;
}

/* The pool-owned JSON object a base64url part holds, or NULL (bad base64url, bad JSON, not an object). */
static json_t *decode_json_part(apr_pool_t *p, const char *part, apr_size_t len)
{
    apr_size_t text_len = 0;
    unsigned char *text = bb_base64url_decode(p, part, len, &text_len);
    json_t *value = text ? bb_json_parse(p, (const char *)text, text_len) : NULL;

    return json_is_object(value) ? value : NULL;
}

/* Exact comparison. bb_json_parse refuses "\u0000", so the C string is the whole JSON string. */
static int json_string_is(const json_t *value, const char *expected)
{
    return json_is_string(value) && expected != NULL && strcmp(json_string_value(value), expected) == 0;
}

/* The signature part over signing_input: with the ring's first signer when it has signers, else HS256. */
static char *signature_part(apr_pool_t *p, const bb_keyring_t *ring, const char *signing_input)
{
    unsigned char mac[JWS_MAC_LEN];

    if (ring->signers) {
        return bb_signkey_sign(p, APR_ARRAY_IDX(ring->signers, 0, const bb_signkey_t *), signing_input,
                               strlen(signing_input));
    }
    if (!hs256(&APR_ARRAY_IDX(ring->keys, 0, bb_key_t), signing_input, strlen(signing_input), mac)) {
        return NULL;
    }
    return bb_base64url_encode(p, mac, sizeof(mac));
}

char *bb_jws_sign(apr_pool_t *p, const bb_keyring_t *ring, const char *typ, const json_t *claims)
{
    const char *alg, *kid;
    json_t *header;
    char *header_part, *payload_part, *signing_input, *signature, *token;

    if (ring == NULL || ring->keys->nelts == 0 || typ == NULL || !json_is_object(claims)) {
        return NULL;
    }
    if (ring->signers) {
        const bb_signkey_t *signer = APR_ARRAY_IDX(ring->signers, 0, const bb_signkey_t *);
        alg = bb_signkey_alg_name(signer);
        kid = signer->kid;
    }
    else {
        alg = JWS_HMAC_ALG;
        kid = APR_ARRAY_IDX(ring->keys, 0, bb_key_t).kid;
    }
    header = bb_json_pool_own(p, json_pack("{s:s, s:s, s:s}", "alg", alg, "kid", kid, "typ", typ));
    header_part = header ? encode_json_part(p, header) : NULL;
    payload_part = encode_json_part(p, claims);
    if (header_part == NULL || payload_part == NULL) {
        return NULL;
    }
    signing_input = apr_pstrcat(p, header_part, ".", payload_part, NULL);
    signature = signature_part(p, ring, signing_input);
    if (signature == NULL) {
        return NULL;
    }
    token = apr_pstrcat(p, signing_input, ".", signature, NULL);
    return strlen(token) <= BB_JWS_MAX_LEN ? token : NULL;
}

/* The key named kid for alg: HS256 looks among the HMAC keys only, ES256 and EdDSA among the signers only, and a
 * signer must be of the alg's type (an EdDSA token cannot name a P-256 key, nor an HS256 token a public key).
 * BB_JWS_BAD_ALG for an alg this module does not accept, BB_JWS_UNKNOWN_KID for no such key. */
static bb_jws_status_t find_key(const bb_keyring_t *ring, const json_t *alg, const char *kid, jws_key_t *key)
{
    if (json_string_is(alg, JWS_HMAC_ALG)) {
        key->hmac = bb_keyring_find(ring, kid);
        return key->hmac ? BB_JWS_OK : BB_JWS_UNKNOWN_KID;
    }
    if (!json_string_is(alg, "ES256") && !json_string_is(alg, "EdDSA")) {
        return BB_JWS_BAD_ALG;
    }
    key->signer = bb_signkeys_find(ring->signers, kid);
    if (key->signer == NULL) {
        return BB_JWS_UNKNOWN_KID;
    }
    return json_string_is(alg, bb_signkey_alg_name(key->signer)) ? BB_JWS_OK : BB_JWS_BAD_ALG;
}

/* Checks the header part: a JSON object with exactly an alg this module accepts, the expected typ and the kid of
 * one of the ring's keys of that alg. */
static bb_jws_status_t check_header(apr_pool_t *p, const bb_keyring_t *ring, const char *typ, const char *part,
                                    apr_size_t len, jws_key_t *key)
{
    json_t *header = decode_json_part(p, part, len);
    bb_jws_status_t status;

    if (header == NULL) {
        return BB_JWS_MALFORMED;
    }
    if (!json_string_is(json_object_get(header, "typ"), typ)) {
        return BB_JWS_BAD_ALG;
    }
    status = find_key(ring, json_object_get(header, "alg"), bb_jws_claim_string(header, "kid"), key);
    if (status != BB_JWS_OK) {
        return status;
    }
    /* Nothing else: no crit, jku, jwk or x5u that some other library reading the same cookie might act on. */
    return json_object_size(header) == JWS_HEADER_SIZE ? BB_JWS_OK : BB_JWS_MALFORMED;
}

/* Checks the signature part over "<header>.<payload>": the signer's public key, or HMAC-SHA256 compared in
 * constant time. */
static bb_jws_status_t check_signature(apr_pool_t *p, const jws_key_t *key, const char *signing_input,
                                       apr_size_t input_len, const char *part, apr_size_t part_len)
{
    unsigned char mac[JWS_MAC_LEN];
    apr_size_t signature_len = 0;
    unsigned char *signature = bb_base64url_decode(p, part, part_len, &signature_len);

    if (signature == NULL) {
        return BB_JWS_MALFORMED;
    }
    if (key->signer) {
        return bb_signkey_verify(p, key->signer, signing_input, input_len, signature, signature_len)
            ? BB_JWS_OK : BB_JWS_BAD_SIGNATURE;
    }
    if (!hs256(key->hmac, signing_input, input_len, mac)) {
        return BB_JWS_BAD_SIGNATURE;
    }
    return bb_secure_equals(mac, sizeof(mac), signature, signature_len) ? BB_JWS_OK : BB_JWS_BAD_SIGNATURE;
}

bb_jws_status_t bb_jws_verify(apr_pool_t *p, const bb_keyring_t *ring, const char *typ,
                              const char *token, apr_size_t len, json_t **claims)
{
    const char *end, *header_end, *payload_end;
    jws_key_t key = { NULL, NULL };
    bb_jws_status_t status;
    json_t *payload;

    *claims = NULL;
    if (token == NULL || len > BB_JWS_MAX_LEN) {
        return BB_JWS_MALFORMED;
    }
    end = token + len;
    header_end = memchr(token, '.', len);
    payload_end = header_end ? memchr(header_end + 1, '.', (apr_size_t)(end - header_end - 1)) : NULL;
    if (payload_end == NULL || memchr(payload_end + 1, '.', (apr_size_t)(end - payload_end - 1)) != NULL) {
        return BB_JWS_MALFORMED;
    }
    status = check_header(p, ring, typ, token, (apr_size_t)(header_end - token), &key);
    if (status == BB_JWS_OK) {
        status = check_signature(p, &key, token, (apr_size_t)(payload_end - token), payload_end + 1,
                                 (apr_size_t)(end - payload_end - 1));
    }
    if (status != BB_JWS_OK) {
        return status;
    }
    /* Only now, with the signature checked, is the payload worth parsing. */
    payload = decode_json_part(p, header_end + 1, (apr_size_t)(payload_end - header_end - 1));
    if (payload == NULL) {
        return BB_JWS_MALFORMED;
    }
    *claims = payload;
    return BB_JWS_OK;
}

const char *bb_jws_claim_string(const json_t *obj, const char *name)
{
    const json_t *value = json_object_get(obj, name);

    return json_is_string(value) ? json_string_value(value) : NULL;
}

int bb_jws_claim_int(const json_t *obj, const char *name, apr_int64_t max, apr_int64_t *out)
{
    const json_t *value = json_object_get(obj, name);
    json_int_t number;

    if (!json_is_integer(value)) {
        return 0;
    }
    number = json_integer_value(value);
    if (number < 0 || number > max) {
        return 0;
    }
    *out = (apr_int64_t)number;
    return 1;
}
