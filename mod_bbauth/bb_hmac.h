/* bb_hmac: HMAC-SHA256 under a key set up once (OpenSSL's MAC context duplicated per use), for per-request MACs. */
#ifndef BB_HMAC_H
#define BB_HMAC_H

#include <apr_pools.h>

#define BB_HMAC_LEN 32

typedef struct bb_hmac_key_t bb_hmac_key_t;

/* The key, set up once; freed with the pool; read-only afterwards, so threads may use it at once. Never NULL:
 * when OpenSSL cannot set it up, bb_hmac_sha256 computes each MAC from the secret (kept, not copied) instead. */
bb_hmac_key_t *bb_hmac_key_create(apr_pool_t *p, const unsigned char *secret, apr_size_t len);

/* HMAC-SHA256 of data under key; 1 on success. */
int bb_hmac_sha256(const bb_hmac_key_t *key, const void *data, apr_size_t len, unsigned char mac[BB_HMAC_LEN]);

#endif
