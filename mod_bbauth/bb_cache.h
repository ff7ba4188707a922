/* bb_cache: the core's view of the shared cache (an httpd socache provider behind it) and the one-use marker. */
#ifndef BB_CACHE_H
#define BB_CACHE_H

#include <apr_pools.h>
#include <apr_time.h>
#include "bb_keys.h"

/* Longest value the core stores. */
#define BB_CACHE_MAX_VALUE 4096

/* Implemented by the httpd glue over ap_socache_provider_t, and by an in-memory table in the unit tests. */
typedef struct bb_cache_t {
    void *baton;
    apr_status_t (*store)(void *baton, const unsigned char *key, unsigned int keylen, apr_time_t expiry,
                          const unsigned char *value, unsigned int vallen, apr_pool_t *p);
    /* *vallen is the buffer size in, the value's length out; APR_NOTFOUND when absent or expired. */
    apr_status_t (*retrieve)(void *baton, const unsigned char *key, unsigned int keylen,
                             unsigned char *value, unsigned int *vallen, apr_pool_t *p);
    apr_status_t (*remove)(void *baton, const unsigned char *key, unsigned int keylen, apr_pool_t *p);
} bb_cache_t;

/* The cache key of an id in a namespace of one integration: base64url(HMAC-SHA256(key, ns NUL id)) ":" ns, 46
 * characters and the namespace. Keyed by the integration's key (derived with its Bitbucket URL and client id), so
 * integrations never share an entry and a copy of the cache gives no way to test guesses of ids offline; no secret
 * (state, token) is ever a key. The high-entropy bytes come first: shmcb chooses a subcache by a key's first byte,
 * and a namespace in front would put all of one kind in one subcache. NULL when key is unusable (see
 * bb_cache_secret_usable), ns or id is NULL. */
const char *bb_cache_key(apr_pool_t *p, const bb_key_t *key, const char *ns, const void *id, apr_size_t id_len);

/* A marker (presence is the information, e.g. "this session was logged out") under cache_key until expiry: what
 * the cache's store returns. */
apr_status_t bb_cache_store_marker(const bb_cache_t *cache, const char *cache_key, apr_time_t expiry, apr_pool_t *p);

/* APR_SUCCESS when the marker under cache_key is there, APR_NOTFOUND when not, or the cache's error: a caller for
 * whom presence is the proof must treat an error as neither. */
apr_status_t bb_cache_has_marker(const bb_cache_t *cache, const char *cache_key, apr_pool_t *p);

/* The cache name of an id in a namespace of one integration's space (its Bitbucket URL and client id):
 * base64url(SHA-256(space NUL ns NUL id)) ":" ns. For ids that are random and no secret of their own (session ids,
 * login states): the name stays the same across key rotations, so a logout mark is found for as long as any copy of
 * the session's cookie is valid, whichever key signed it. High-entropy bytes first, as with bb_cache_key. NULL when
 * space, ns or id is NULL. */
const char *bb_cache_name(apr_pool_t *p, const char *space, const char *ns, const char *id);

/* Whether (ns, id) was marked used: APR_EEXIST when it was, APR_SUCCESS when not, another error when the cache
 * cannot tell (the caller must then refuse: fail closed). */
apr_status_t bb_cache_check_unused(const bb_cache_t *cache, const char *space, const char *ns, const char *id,
                                   apr_pool_t *p);

/* Marks (ns, id) as used until `expiry`. APR_SUCCESS the first time; APR_EEXIST when it was already used;
 * another error when the cache failed (the caller must then refuse: fail closed). After `expiry` the id counts as
 * unused again, so give the marker the lifetime of what it guards (e.g. the state cookie's exp): by then that is
 * refused on its own account.
 * socache has no atomic add, so two processes racing on the same id within microseconds could both pass;
 * the callers' second line of defence is that Bitbucket's codes and tokens are themselves single-use. */
apr_status_t bb_cache_use_once(const bb_cache_t *cache, const char *space, const char *ns, const char *id,
                               apr_time_t expiry, apr_pool_t *p);

/* Shortest secret that keys and authenticates records (bb_key_t.len); with a shorter one nothing is stored or read. */
#define BB_CACHE_MIN_SECRET 32

/* 1 when key is there with a secret of at least BB_CACHE_MIN_SECRET bytes. */
int bb_cache_secret_usable(const bb_key_t *key);

/* HMAC-SHA256 under key (its prepared hmac when set, else one-shot from its secret) of a, then, when b is not NULL,
 * a NUL and b's blen bytes: the NUL keeps (a, b) pairs apart and apart from a alone. 1 on success. */
int bb_cache_mac(apr_pool_t *p, const bb_key_t *key, const char *a, const void *b, apr_size_t blen,
                 unsigned char mac[BB_HMAC_LEN]);

/* Stores HMAC(cache key NUL body) then body under cache_key until expiry (unix seconds), so that only a holder of
 * the secret can write a record bb_cache_retrieve_authentic accepts, and a record copied to another cache key is
 * refused. APR_ENOSPC when the record exceeds BB_CACHE_MAX_VALUE; otherwise what the cache's store returns. */
apr_status_t bb_cache_store_authentic(apr_pool_t *p, const bb_cache_t *cache, const bb_key_t *key,
                                      const char *cache_key, apr_int64_t expiry, const void *body, apr_size_t len);

/* The body of the authentic record under cache_key (pool-owned, NUL-terminated, *len its length), or NULL when it is
 * absent, longer than max_len (at most BB_CACHE_MAX_VALUE - BB_HMAC_LEN), cannot be read or is not authentic: nothing
 * that this server did not write is handed on to a parser. max_len sizes the buffer: small records stay cheap. */
const unsigned char *bb_cache_retrieve_authentic(apr_pool_t *p, const bb_cache_t *cache, const bb_key_t *key,
                                                 const char *cache_key, apr_size_t max_len, apr_size_t *len);

#endif
