/* bb_keys: the session key ring: reads the key file (one key per line, hex or base64) and names each key by a kid. */
#ifndef BB_KEYS_H
#define BB_KEYS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include "bb_hmac.h"
#include "bb_sign.h"

#define BB_KEY_MIN_BYTES 32

typedef struct {
    const char *kid;              /* first 16 hex digits of SHA-256 over the raw key bytes */
    const unsigned char *secret;  /* raw key bytes */
    apr_size_t len;
    const bb_hmac_key_t *hmac;    /* the secret set up for HMAC-SHA256 (bb_hmac.h) */
} bb_key_t;

typedef struct {
    apr_array_header_t *keys;     /* of bb_key_t; keys[0] signs (HS256) unless there are signers, every key verifies */
    const apr_array_header_t *signers; /* of bb_signkey_t * (BBAuthSigningKey), or NULL: when there are any,
                                        * signers[0] signs (ES256/EdDSA), and every signer verifies too */
} bb_keyring_t;

/* Parses key-file text: each line is trimmed of surrounding whitespace; blank lines and lines starting with '#'
 * are skipped; a line of hex digits (even count) is hex, anything else must be base64 (standard or url-safe, not
 * both in one line, padding optional). A line of hex digits with an odd count is refused (a digit is missing: it
 * is not read as base64). Every key must decode to at least BB_KEY_MIN_BYTES bytes. On failure returns NULL and
 * sets *err to a message naming the line number ("line 3: ..."), never the key; "no key found" for no key. */
bb_keyring_t *bb_keyring_parse(apr_pool_t *p, const char *text, apr_size_t len, const char **err);
/* Reads (at most 64 KiB) and parses a key file; *err is "key file <path>: <reason>" on failure. */
bb_keyring_t *bb_keyring_load(apr_pool_t *p, const char *path, const char **err);
/* The key named kid, or NULL. */
const bb_key_t *bb_keyring_find(const bb_keyring_t *ring, const char *kid);
/* A copy of ring (same HMAC keys) whose tokens are signed by signers[0] and verified by any of them as well as by
 * the HMAC keys (so switching from HS256 logs nobody out). signers NULL or empty: the ring's HS256 alone. */
bb_keyring_t *bb_keyring_with_signers(apr_pool_t *p, const bb_keyring_t *ring, const apr_array_header_t *signers);
/* A ring of keys for another purpose: each secret becomes HMAC-SHA256(secret, label); kids are kept, so rotation
 * works the same way; the derived ring has no signers. Used so that a login-state cookie can never pass for a
 * session cookie. NULL for a NULL ring. */
bb_keyring_t *bb_keyring_derive(apr_pool_t *p, const bb_keyring_t *ring, const char *label);

#endif
