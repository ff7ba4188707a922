/* bb_jws: JWS compact serialization (RFC 7515) of a JSON claims object, signed and verified with HS256, ES256 or EdDSA. */
#ifndef BB_JWS_H
#define BB_JWS_H

#include <apr_pools.h>
#include <jansson.h>
#include "bb_keys.h"

/* Longest token bb_jws_verify looks at; anything longer is malformed without further work. */
#define BB_JWS_MAX_LEN 4096

/* Latest time a claim may hold (9999-12-31T23:59:59Z): anything later is an attack or a bug, not a date. */
#define BB_JWS_MAX_TIME 253402300799LL

typedef enum {
    BB_JWS_OK = 0,
    BB_JWS_MALFORMED,      /* not three base64url parts, header or payload not a JSON object, too long,
                            * header members other than alg, typ and kid */
    BB_JWS_BAD_ALG,        /* alg is not exactly "HS256", "ES256" or "EdDSA" (none, RS256, ...), names a key of
                            * another type, or typ is not the expected one */
    BB_JWS_UNKNOWN_KID,    /* kid missing or not in the key ring (HS256: its HMAC keys; others: its signers) */
    BB_JWS_BAD_SIGNATURE
} bb_jws_status_t;

/* Header {"alg":"HS256","kid":<kid of keys[0]>,"typ":typ} (compact, members sorted, as PyJWT writes it), signed
 * with keys[0]; when the ring has signers, alg "ES256" or "EdDSA" and the kid of signers[0], which signs. NULL if claims cannot be encoded, or if the token would be longer than BB_JWS_MAX_LEN (which
 * bb_jws_verify would refuse). */
char *bb_jws_sign(apr_pool_t *p, const bb_keyring_t *ring, const char *typ, const json_t *claims);

/* Checks form, alg, typ (exact match), kid and signature (constant time) before it parses the payload.
 * On BB_JWS_OK *claims is the pool-owned payload object. */
bb_jws_status_t bb_jws_verify(apr_pool_t *p, const bb_keyring_t *ring, const char *typ,
                              const char *token, apr_size_t len, json_t **claims);

/* Readers for the members of a verified payload. */
/* The string member `name`, or NULL when it is missing or not a string. The pointer lives as long as obj. A
 * payload from bb_jws_verify holds no "\u0000" (bb_json_parse refuses it), so the C string is the whole value. */
const char *bb_jws_claim_string(const json_t *obj, const char *name);
/* 1, with *out set, when member `name` is a JSON integer (not a real) in [0, max]; 0 otherwise. */
int bb_jws_claim_int(const json_t *obj, const char *name, apr_int64_t max, apr_int64_t *out);

#endif
