/* bb_grant: a browser session's OAuth 2 tokens, kept server-side in the shared cache, sealed, under the session id. */
#ifndef BB_GRANT_H
#define BB_GRANT_H

#include <apr_pools.h>
#include <apr_time.h>
#include "bb_cache.h"
#include "bb_seal.h"

typedef struct {
    const char *access_token;
    const char *refresh_token;     /* may be "" */
    apr_int64_t expires_at;        /* unix time the access token expires; 0 = not said */
} bb_grant_t;

/* Seals {"at","rt","exp"} with AES-GCM (fresh IV; the sid is the associated data, so a sealed grant moved to
 * another session's key does not open) and stores it until `expiry` under bb_cache_name(space, "grant", sid).
 * APR_EINVAL for a grant without an access token; otherwise what the cache's store returns. */
apr_status_t bb_grant_store(apr_pool_t *p, const bb_cache_t *cache, const char *space, const bb_sealer_t *sealer,
                            const char *sid, const bb_grant_t *grant, apr_time_t expiry);

/* The session's grant, or NULL when there is none, or it does not open (other key, changed, garbage). */
bb_grant_t *bb_grant_load(apr_pool_t *p, const bb_cache_t *cache, const char *space, const bb_sealer_t *sealer,
                          const char *sid);

/* Forgets the session's grant. */
void bb_grant_remove(apr_pool_t *p, const bb_cache_t *cache, const char *space, const char *sid);

#endif
