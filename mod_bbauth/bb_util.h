/* bb_util: base64url, hex, constant-time comparison, random values, pool-owned JSON and the status codes the core returns. */
#ifndef BB_UTIL_H
#define BB_UTIL_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

/* Outcome of anything that talks to Bitbucket or checks what it said. */
typedef enum {
    BB_OK = 0,
    BB_DENIED,        /* Bitbucket said no: unknown/expired credential, denied grant, no permission */
    BB_NOT_FOUND,     /* the thing asked about does not exist (user, project, repository) */
    BB_UNAVAILABLE,   /* Bitbucket could not be reached: DNS, connect, TLS, timeout */
    BB_BAD_RESPONSE   /* reached, but the answer was unusable: 5xx, wrong type, bad JSON, oversized, HTML or a redirect */
} bb_status_t;

/* Name of a status for log lines ("denied", "unavailable", ...). */
const char *bb_status_name(bb_status_t status);

/* base64url without padding (RFC 4648 §5). */
char *bb_base64url_encode(apr_pool_t *p, const unsigned char *data, apr_size_t len);
/* Strict decoder: NULL on any character outside the alphabet, on '=' padding or on an impossible length.
 * The result is NUL-terminated (not counted in *out_len) so text payloads can be used directly. */
unsigned char *bb_base64url_decode(apr_pool_t *p, const char *s, apr_size_t slen, apr_size_t *out_len);

/* Standard base64 (RFC 4648 §4, with padding) decoder: NULL on malformed input. NUL-terminated result. */
unsigned char *bb_base64_decode(apr_pool_t *p, const char *s, apr_size_t slen, apr_size_t *out_len);

/* Lower-case hex of the bytes. */
char *bb_hex_encode(apr_pool_t *p, const unsigned char *data, apr_size_t len);

/* 1 when a and b are byte-for-byte equal; the time taken does not depend on where they differ. */
int bb_secure_equals(const void *a, apr_size_t alen, const void *b, apr_size_t blen);
/* bb_secure_equals for NUL-terminated strings; NULL never equals anything. */
int bb_secure_streq(const char *a, const char *b);

/* Fills buf from the OS CSPRNG (OpenSSL RAND_bytes); APR_EGENERAL when it is not available. */
apr_status_t bb_random_bytes(unsigned char *buf, apr_size_t len);
/* base64url of nbytes fresh random bytes, or NULL when no randomness is available. */
char *bb_random_token(apr_pool_t *p, apr_size_t nbytes);

/* Hands a JSON value's reference to the pool: json_decref runs when the pool is cleared. Returns json. */
json_t *bb_json_pool_own(apr_pool_t *p, json_t *json);
/* Parses a JSON document of at most len bytes into a pool-owned value; NULL on any error. */
json_t *bb_json_parse(apr_pool_t *p, const char *text, apr_size_t len);
/* The string member `key` of obj copied into the pool, or NULL if missing or not a string. */
const char *bb_json_string(apr_pool_t *p, const json_t *obj, const char *key);

/* SipHash-2-4 (Aumasson and Bernstein) of data with a 16-byte key: a keyed hash (a PRF) far cheaper than an HMAC,
 * for naming entries of tables that never leave the process (with a key of its own, made at random). */
apr_uint64_t bb_siphash(const unsigned char key[16], const void *data, apr_size_t len);

/* A 64-bit digest of a string (FNV-1a), never 0, to name a slot of a bounded table: not a secret-keyed hash, so only
 * for keys that already are one, or are no secret (a client address). NULL is "". */
apr_uint64_t bb_digest64(const char *s);

/* Removes control characters (bytes < 0x20 and 0x7f) so that a value can go into a header or a log line. */
char *bb_strip_controls(apr_pool_t *p, const char *s);

#endif
