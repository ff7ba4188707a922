/* bb_authzcache: keeps Bitbucket's answers to Require questions (may this credential read PROJ/repo, ...) in the shared cache, authenticated. */
#ifndef BB_AUTHZCACHE_H
#define BB_AUTHZCACHE_H

#include <apr_pools.h>
#include "bb_cache.h"

/* Where answers go and the server key they are keyed and authenticated with (the glue derives it from the session
 * key ring with a label of its own, so every host of a farm has the same one). With a key shorter than
 * BB_CACHE_MIN_SECRET nothing is cached (every lookup misses, every store fails). */
typedef struct {
    const bb_cache_t *cache;
    const bb_key_t *key;
} bb_authzcache_t;

typedef enum {
    BB_AUTHZCACHE_MISS = 0,        /* nothing usable cached: ask Bitbucket */
    BB_AUTHZCACHE_GRANTED,
    BB_AUTHZCACHE_DENIED
} bb_authzcache_result_t;

/* The cache key of a question asked for a principal (a string naming the credential, e.g. "sid:<session id>"):
 * bb_cache_key(key, "authz", principal NUL question). NULL when ac has no cache or too short a
 * key, or principal or question is NULL. */
const char *bb_authzcache_key(apr_pool_t *p, const bb_authzcache_t *ac, const char *principal,
                              const char *question);

/* The answer remembered at unix time now. Anything that is not an authentic, unexpired record for this very key
 * (cache errors, garbage, a record copied from another key, a forged one) is a MISS. */
bb_authzcache_result_t bb_authzcache_lookup(apr_pool_t *p, const bb_authzcache_t *ac, const char *principal,
                                            const char *question, apr_int64_t now);

/* Remembers the answer for ttl seconds as an authentic record (bb_cache_store_authentic) of the text
 * "v1 <0|1> <expiry>". APR_EINVAL for an unusable ac or ttl <= 0; otherwise what the cache's store returns. */
apr_status_t bb_authzcache_store(apr_pool_t *p, const bb_authzcache_t *ac, const char *principal,
                                 const char *question, int granted, apr_int64_t now, apr_int64_t ttl);

/* Seconds between two "check again" of one principal and question. */
#define BB_AUTHZCACHE_RECHECK_INTERVAL 60

/* "Check again": removes the remembered answer, so that the next request asks Bitbucket. At most once per
 * BB_AUTHZCACHE_RECHECK_INTERVAL per principal and question (a marker in the cache counts), so that the button
 * cannot be used to send Bitbucket a question per click. APR_SUCCESS when removed (or nothing was cached),
 * APR_EBUSY when the last one was less than the interval ago, APR_EINVAL for an unusable ac, or the cache's
 * error. */
apr_status_t bb_authzcache_forget(apr_pool_t *p, const bb_authzcache_t *ac, const char *principal,
                                  const char *question, apr_int64_t now);

#endif
