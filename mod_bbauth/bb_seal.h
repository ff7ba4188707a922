/* bb_seal: AES-256-GCM sealing and opening of values the server keeps in the shared cache (e.g. OAuth tokens). */
#ifndef BB_SEAL_H
#define BB_SEAL_H

#include <apr_pools.h>
#include "bb_keys.h"

/* First byte of every sealed value; a new format gets a new version. */
#define BB_SEAL_VERSION 1
/* Longest plaintext, and longest associated data, that is sealed or opened. */
#define BB_SEAL_MAX_LEN 65536

/* Sealing keys: each key of the session ring through bb_keyring_derive(label "mod_bbauth seal v1"), so that a
 * sealing key is never a signing key. Kids are kept: a value sealed before a key rotation still opens while its
 * key is in the ring. */
typedef struct bb_sealer_t bb_sealer_t;

/* Derives the sealing keys once (at configuration time). NULL when the ring is NULL or empty. */
bb_sealer_t *bb_sealer_create(apr_pool_t *p, const bb_keyring_t *ring);

/* Seals len bytes with the ring's first key and a fresh random 96-bit IV:
 *   base64url(version (1 byte) | kid (16 hex characters) | IV (12 bytes) | ciphertext (len bytes) | tag (16 bytes))
 * i.e. 4 * (45 + len) / 3 characters, rounded up, unpadded. aad says what the value is for and whose it is
 * (e.g. "oauth:" + the cache key): it is authenticated with version and kid but not stored, and opening needs
 * the same aad, so that a value cannot be moved to another cache entry. NULL when there is no randomness or
 * len or aad exceed BB_SEAL_MAX_LEN. */
char *bb_seal(apr_pool_t *p, const bb_sealer_t *sealer, const char *aad, const void *plain, apr_size_t len);

/* The plaintext (NUL-terminated; its length in *len unless len is NULL), or NULL when sealed is not base64url,
 * is truncated, has another version, names a kid no longer in the ring, was sealed with another aad or was
 * changed in any way. */
unsigned char *bb_seal_open(apr_pool_t *p, const bb_sealer_t *sealer, const char *aad, const char *sealed,
                            apr_size_t sealed_len, apr_size_t *len);

#endif
