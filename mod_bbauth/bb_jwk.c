/* bb_jwk: public JWKs, their RFC 7638 thumbprints, and the JWK Set of the signing keys. */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <openssl/sha.h>
#include "bb_util.h"
#include "bb_jwk.h"

json_t *bb_jwk_public(apr_pool_t *p, const char *kty, const char *crv, const char *x, const char *y)
{
    json_t *jwk = bb_json_pool_own(p, json_pack("{s:s, s:s, s:s}", "crv", crv, "kty", kty, "x", x));

    if (jwk && y && json_object_set_new(jwk, "y", json_string(y)) != 0) {
        return NULL;
    }
    return jwk;
}

json_t *bb_jwk_of_key(apr_pool_t *p, const bb_signkey_t *key)
{
    return key->alg == BB_SIGN_ES256 ? bb_jwk_public(p, "EC", "P-256", key->x, key->y)
                                     : bb_jwk_public(p, "OKP", "Ed25519", key->x, NULL);
}

char *bb_jwk_thumbprint(apr_pool_t *p, const json_t *jwk)
{
    /* RFC 7638 3.2: the required members only (bb_jwk_public makes no others), sorted, no whitespace. The
     * values are base64url and curve names, so jansson's escaping never changes them. */
    char *text = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char *thumbprint = NULL;

    if (text) {
        SHA256((const unsigned char *)text, strlen(text), digest);
        thumbprint = bb_base64url_encode(p, digest, sizeof(digest));
        free(text);
    }
    return thumbprint;
}

/* The public JWK of a signing key with kid, alg and use; NULL on failure. */
static json_t *published_jwk(apr_pool_t *p, const bb_signkey_t *key)
{
    json_t *jwk = bb_jwk_of_key(p, key);

    if (jwk == NULL
        || json_object_set_new(jwk, "kid", json_string(key->kid)) != 0
        || json_object_set_new(jwk, "alg", json_string(bb_signkey_alg_name(key))) != 0
        || json_object_set_new(jwk, "use", json_string("sig")) != 0) {
        return NULL;
    }
    return jwk;
}

char *bb_jwk_set(apr_pool_t *p, const apr_array_header_t *signkeys)
{
    json_t *keys = bb_json_pool_own(p, json_array());
    json_t *set = bb_json_pool_own(p, json_object());
    char *text, *copy;
    int i;

    if (keys == NULL || set == NULL) {
        return NULL;
    }
    for (i = 0; signkeys && i < signkeys->nelts; i++) {
        json_t *jwk = published_jwk(p, APR_ARRAY_IDX(signkeys, i, const bb_signkey_t *));
        if (jwk == NULL || json_array_append(keys, jwk) != 0) {
            return NULL;
        }
    }
    if (json_object_set(set, "keys", keys) != 0) {
        return NULL;
    }
    text = json_dumps(set, JSON_COMPACT);
    copy = text ? apr_pstrdup(p, text) : NULL;
    free(text);
    return copy;
}
