/* bb_cache: the core's view of the shared cache (an httpd socache provider behind it) and the one-use marker. */
#ifndef BB_CACHE_H
#define BB_CACHE_H

#include <apr_pools.h>
#include <apr_time.h>

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

/* The cache key for an id in a namespace: "<ns>:" + base64url(SHA-256(id)), so that no secret (state, token)
 * is ever stored or logged as a key, and every key has the same short length. */
const char *bb_cache_key(apr_pool_t *p, const char *ns, const char *id);

/* Marks (ns, id) as used until `expiry`. APR_SUCCESS the first time; APR_EEXIST when it was already used;
 * another error when the cache failed (the caller must then refuse: fail closed). After `expiry` the id counts as
 * unused again, so give the marker the lifetime of what it guards (e.g. the state cookie's exp): by then that is
 * refused on its own account.
 * socache has no atomic add, so two processes racing on the same id within microseconds could both pass;
 * the callers' second line of defence is that Bitbucket's codes and tokens are themselves single-use. */
apr_status_t bb_cache_use_once(const bb_cache_t *cache, const char *ns, const char *id, apr_time_t expiry,
                               apr_pool_t *p);

#endif
