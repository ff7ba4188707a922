/* bb_sign: ES256 and EdDSA signing keys: PEM loading with clear refusals, JWS signatures in their raw form. */
#include <string.h>
#include <apr_strings.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include "bb_jwk.h"
#include "bb_pkey.h"
#include "bb_util.h"
#include "bb_sign.h"

#define P256_COORD_LEN   32             /* bytes of an x or y coordinate, and of r and s */
#define ES256_SIG_LEN    (2 * P256_COORD_LEN)
#define ED25519_KEY_LEN  32
#define ED25519_SIG_LEN  64

static apr_status_t md_ctx_cleanup(void *ctx)
{
    EVP_MD_CTX_free(ctx);
    return APR_SUCCESS;
}

static apr_status_t bn_cleanup(void *bn)
{
    BN_free(bn);
    return APR_SUCCESS;
}

/* A digest context freed with the pool, or NULL. */
static EVP_MD_CTX *pool_md_ctx(apr_pool_t *p)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (ctx) {
        apr_pool_cleanup_register(p, ctx, md_ctx_cleanup, apr_pool_cleanup_null);
    }
    return ctx;
}

/* BIGNUM parameter `param` of pkey as exactly `len` big-endian bytes, base64url; NULL on failure. */
static const char *coordinate(apr_pool_t *p, const EVP_PKEY *pkey, const char *param)
{
    BIGNUM *bn = NULL;
    unsigned char bytes[P256_COORD_LEN];

    if (!EVP_PKEY_get_bn_param(pkey, param, &bn)) {
        return NULL;
    }
    apr_pool_cleanup_register(p, bn, bn_cleanup, apr_pool_cleanup_null);
    return BN_bn2binpad(bn, bytes, sizeof(bytes)) == sizeof(bytes)
        ? bb_base64url_encode(p, bytes, sizeof(bytes)) : NULL;
}

/* Fills key->x/y from an EC key; the message when it is not on P-256. */
static const char *ec_public(apr_pool_t *p, bb_signkey_t *key, const char *name)
{
    char group[64];

    if (!EVP_PKEY_get_utf8_string_param(key->pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL)
        || strcmp(group, SN_X9_62_prime256v1) != 0) {
        return apr_psprintf(p, "%s: the EC key is not on curve P-256 (prime256v1); ES256 needs P-256 "
                            "(bbauth-keygen --signing makes one)", name);
    }
    key->alg = BB_SIGN_ES256;
    key->x = coordinate(p, key->pkey, OSSL_PKEY_PARAM_EC_PUB_X);
    key->y = coordinate(p, key->pkey, OSSL_PKEY_PARAM_EC_PUB_Y);
    return key->x && key->y ? NULL : apr_psprintf(p, "%s: cannot read the EC public key", name);
}

/* Fills key->x from an Ed25519 key. */
static const char *ed25519_public(apr_pool_t *p, bb_signkey_t *key, const char *name)
{
    unsigned char raw[ED25519_KEY_LEN];
    size_t len = sizeof(raw);

    key->alg = BB_SIGN_EDDSA;
    if (!EVP_PKEY_get_raw_public_key(key->pkey, raw, &len) || len != sizeof(raw)) {
        return apr_psprintf(p, "%s: cannot read the Ed25519 public key", name);
    }
    key->x = bb_base64url_encode(p, raw, len);
    return NULL;
}

/* Fills key's alg and public members; the message when the key is of no type this module signs with. */
static const char *describe_key(apr_pool_t *p, bb_signkey_t *key, const char *name)
{
    if (EVP_PKEY_is_a(key->pkey, "EC")) {
        return ec_public(p, key, name);
    }
    if (EVP_PKEY_is_a(key->pkey, "ED25519")) {
        return ed25519_public(p, key, name);
    }
    return apr_psprintf(p, "%s: the key is of type %s; BBAuthSigningKey takes an EC P-256 (ES256) or Ed25519 "
                        "(EdDSA) private key (bbauth-keygen --signing makes one)", name, EVP_PKEY_get0_type_name(key->pkey));
}

/* Completes a loaded key: type checked, public members, kid. */
static bb_signkey_t *signkey_of(apr_pool_t *p, EVP_PKEY *pkey, const char *name, const char **err)
{
    bb_signkey_t *key;
    json_t *jwk;

    if (pkey == NULL) {
        return NULL;
    }
    key = apr_pcalloc(p, sizeof(*key));
    key->pkey = pkey;
    *err = describe_key(p, key, name);
    if (*err) {
        return NULL;
    }
    jwk = bb_jwk_of_key(p, key);
    key->kid = jwk ? bb_jwk_thumbprint(p, jwk) : NULL;
    if (key->kid == NULL) {
        *err = apr_psprintf(p, "%s: cannot compute the key's thumbprint", name);
        return NULL;
    }
    return key;
}

bb_signkey_t *bb_signkey_from_pem(apr_pool_t *p, const char *pem, apr_size_t len, const char *name,
                                  const char **err)
{
    return signkey_of(p, bb_pkey_from_pem(p, pem, len, name, err), name, err);
}

bb_signkey_t *bb_signkey_load(apr_pool_t *p, const char *path, const char **err)
{
    return signkey_of(p, bb_pkey_load(p, path, err), path, err);
}

const char *bb_signkey_alg_name(const bb_signkey_t *key)
{
    return key->alg == BB_SIGN_ES256 ? "ES256" : "EdDSA";
}

/* ECDSA's DER signature as JWS wants it: r and s, 32 bytes each (RFC 7518 3.4). */
static int der_to_raw(const unsigned char *der, size_t der_len, unsigned char raw[ES256_SIG_LEN])
{
    const unsigned char *cursor = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &cursor, (long)der_len);
    int ok = sig != NULL
        && BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, P256_COORD_LEN) == P256_COORD_LEN
        && BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + P256_COORD_LEN, P256_COORD_LEN) == P256_COORD_LEN;

    ECDSA_SIG_free(sig);
    return ok;
}

/* The DER form of a raw r||s signature, in the pool, or NULL. */
static unsigned char *raw_to_der(apr_pool_t *p, const unsigned char raw[ES256_SIG_LEN], size_t *der_len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, P256_COORD_LEN, NULL);
    BIGNUM *s = BN_bin2bn(raw + P256_COORD_LEN, P256_COORD_LEN, NULL);
    unsigned char *der = NULL, *cursor;
    int len;

    if (sig == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(sig, r, s)) {
        ECDSA_SIG_free(sig);
        BN_free(r);
        BN_free(s);
        return NULL;
    }
    len = i2d_ECDSA_SIG(sig, NULL);
    if (len > 0) {
        der = cursor = apr_palloc(p, (apr_size_t)len);
        *der_len = (size_t)i2d_ECDSA_SIG(sig, &cursor);
    }
    ECDSA_SIG_free(sig);
    return der;
}

/* The digest ES256 signs with; EdDSA hashes inside the algorithm (NULL). */
static const EVP_MD *digest_of(const bb_signkey_t *key)
{
    return key->alg == BB_SIGN_ES256 ? EVP_sha256() : NULL;
}

char *bb_signkey_sign(apr_pool_t *p, const bb_signkey_t *key, const char *data, apr_size_t len)
{
    EVP_MD_CTX *ctx = pool_md_ctx(p);
    unsigned char *sig, raw[ES256_SIG_LEN];
    size_t sig_len = 0;

    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, digest_of(key), NULL, key->pkey) != 1
        || EVP_DigestSign(ctx, NULL, &sig_len, (const unsigned char *)data, len) != 1) {
        ERR_clear_error();
        return NULL;
    }
    sig = apr_palloc(p, sig_len);
    if (EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)data, len) != 1) {
        ERR_clear_error();
        return NULL;
    }
    if (key->alg == BB_SIGN_EDDSA) {
        return bb_base64url_encode(p, sig, sig_len);
    }
    return der_to_raw(sig, sig_len, raw) ? bb_base64url_encode(p, raw, sizeof(raw)) : NULL;
}

int bb_signkey_verify(apr_pool_t *p, const bb_signkey_t *key, const char *data, apr_size_t len,
                      const unsigned char *sig, apr_size_t sig_len)
{
    EVP_MD_CTX *ctx;
    const unsigned char *checked = sig;
    size_t checked_len = sig_len;
    int ok;

    /* Both algorithms have 64-byte signatures; any other length (a DER ECDSA signature too) is refused. */
    if (sig_len != (key->alg == BB_SIGN_ES256 ? ES256_SIG_LEN : ED25519_SIG_LEN)) {
        return 0;
    }
    if (key->alg == BB_SIGN_ES256) {
        checked = raw_to_der(p, sig, &checked_len);
        if (checked == NULL) {
            return 0;
        }
    }
    ctx = pool_md_ctx(p);
    ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, digest_of(key), NULL, key->pkey) == 1
         && EVP_DigestVerify(ctx, checked, checked_len, (const unsigned char *)data, len) == 1;
    ERR_clear_error();
    return ok;
}

const bb_signkey_t *bb_signkeys_find(const apr_array_header_t *keys, const char *kid)
{
    int i;

    for (i = 0; kid && keys && i < keys->nelts; i++) {
        const bb_signkey_t *key = APR_ARRAY_IDX(keys, i, const bb_signkey_t *);
        if (strcmp(key->kid, kid) == 0) {
            return key;
        }
    }
    return NULL;
}
