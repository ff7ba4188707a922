/* bb_jws: JWS compact serialization (RFC 7515) of a JSON claims object, signed and verified with HS256. */
#ifndef BB_JWS_H
#define BB_JWS_H

#include <apr_pools.h>
#include <jansson.h>
#include "bb_keys.h"

/* Longest token bb_jws_verify looks at; anything longer is malformed without further work. */
#define BB_JWS_MAX_LEN 4096

typedef enum {
    BB_JWS_OK = 0,
    BB_JWS_MALFORMED,      /* not three base64url parts, header or payload not a JSON object, too long */
    BB_JWS_BAD_ALG,        /* alg is not exactly "HS256" (none, RS256, ...), or typ is not the expected one */
    BB_JWS_UNKNOWN_KID,    /* kid missing or not in the key ring */
    BB_JWS_BAD_SIGNATURE
} bb_jws_status_t;

/* Header {"alg":"HS256","typ":typ,"kid":<kid of keys[0]>}, signed with keys[0]. NULL if claims cannot be encoded. */
char *bb_jws_sign(apr_pool_t *p, const bb_keyring_t *ring, const char *typ, const json_t *claims);

/* Checks form, alg, typ (exact match), kid and signature (constant time) before it parses the payload.
 * On BB_JWS_OK *claims is the pool-owned payload object. */
bb_jws_status_t bb_jws_verify(apr_pool_t *p, const bb_keyring_t *ring, const char *typ,
                              const char *token, apr_size_t len, json_t **claims);

#endif
