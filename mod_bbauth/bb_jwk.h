/* bb_jwk: public JWKs of signing keys: RFC 7638 thumbprints (the kids) and the JWK Set (RFC 7517) upstreams fetch. */
#ifndef BB_JWK_H
#define BB_JWK_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>
#include "bb_sign.h"

/* The public JWK members of a key, members sorted as RFC 7638 wants them: {"crv","kty","x","y"} for EC,
 * {"crv","kty","x"} for OKP (y NULL). Pool-owned; NULL on failure. */
json_t *bb_jwk_public(apr_pool_t *p, const char *kty, const char *crv, const char *x, const char *y);

/* bb_jwk_public of a signing key (its x, y, curve and type). */
json_t *bb_jwk_of_key(apr_pool_t *p, const bb_signkey_t *key);

/* RFC 7638 thumbprint: base64url(SHA-256(canonical JSON of the required members)), or NULL. */
char *bb_jwk_thumbprint(apr_pool_t *p, const json_t *jwk);

/* {"keys":[...]} of an array of bb_signkey_t *: each the public JWK plus kid, alg and "use":"sig"; never a
 * private member. Compact JSON text, or NULL. */
char *bb_jwk_set(apr_pool_t *p, const apr_array_header_t *signkeys);

#endif
