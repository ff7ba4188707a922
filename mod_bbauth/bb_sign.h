/* bb_sign: asymmetric signing keys (EC P-256 for ES256, Ed25519 for EdDSA): load, sign and verify JWS signatures. */
#ifndef BB_SIGN_H
#define BB_SIGN_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <openssl/evp.h>

typedef enum {
    BB_SIGN_ES256 = 0,      /* EC P-256, ECDSA with SHA-256, raw r||s signature (RFC 7518 3.4) */
    BB_SIGN_EDDSA           /* Ed25519 (RFC 8037) */
} bb_sign_alg_t;

typedef struct {
    bb_sign_alg_t alg;
    const char *kid;        /* RFC 7638 JWK thumbprint (bb_jwk_thumbprint) */
    const char *x;          /* public key, base64url: EC x coordinate (32 bytes) or the Ed25519 key */
    const char *y;          /* EC y coordinate, base64url; NULL for Ed25519 */
    EVP_PKEY *pkey;         /* private key, freed with the pool it was loaded into */
} bb_signkey_t;

/* The signing key in PEM text. NULL with *err naming `name` (and what is wrong) for no key, an encrypted or
 * public-only one, RSA, an EC curve other than P-256, or any other type. */
bb_signkey_t *bb_signkey_from_pem(apr_pool_t *p, const char *pem, apr_size_t len, const char *name,
                                  const char **err);
/* bb_signkey_from_pem of the file at path. */
bb_signkey_t *bb_signkey_load(apr_pool_t *p, const char *path, const char **err);

/* "ES256" or "EdDSA": the JWS alg of the key. */
const char *bb_signkey_alg_name(const bb_signkey_t *key);

/* The JWS signature of data (ES256: 64 bytes r||s; EdDSA: 64 bytes), base64url, or NULL. */
char *bb_signkey_sign(apr_pool_t *p, const bb_signkey_t *key, const char *data, apr_size_t len);

/* 1 when sig (raw, as decoded from base64url) is key's valid signature over data; 0 otherwise, also for a
 * signature of the wrong length. */
int bb_signkey_verify(apr_pool_t *p, const bb_signkey_t *key, const char *data, apr_size_t len,
                      const unsigned char *sig, apr_size_t sig_len);

/* The key named kid in an array of bb_signkey_t *, or NULL. */
const bb_signkey_t *bb_signkeys_find(const apr_array_header_t *keys, const char *kid);

#endif
