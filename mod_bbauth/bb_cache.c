/* bb_cache: hashed cache keys and the one-use marker (e.g. a completed OAuth state) over the shared cache. */
#include <string.h>
#include <apr_strings.h>
#include <openssl/sha.h>
#include "bb_util.h"
#include "bb_cache.h"

/* What a used marker holds: its presence is the information. */
static const unsigned char used_marker[1] = { '1' };

const char *bb_cache_key(apr_pool_t *p, const char *ns, const char *id)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];

    if (ns == NULL || id == NULL) {
        return NULL;
    }
    SHA256((const unsigned char *)id, strlen(id), digest);
    return apr_pstrcat(p, ns, ":", bb_base64url_encode(p, digest, sizeof(digest)), NULL);
}

apr_status_t bb_cache_use_once(const bb_cache_t *cache, const char *ns, const char *id, apr_time_t expiry,
                               apr_pool_t *p)
{
    const char *key = bb_cache_key(p, ns, id);
    unsigned char found[sizeof(used_marker)];
    unsigned int found_len = sizeof(found);
    apr_status_t rv;

    if (cache == NULL || key == NULL) {
        return APR_EINVAL;
    }
    rv = cache->retrieve(cache->baton, (const unsigned char *)key, (unsigned int)strlen(key), found, &found_len, p);
    if (rv == APR_SUCCESS) {
        return APR_EEXIST;
    }
    if (rv != APR_NOTFOUND) {
        return rv;              /* the cache cannot tell: the caller fails closed */
    }
    return cache->store(cache->baton, (const unsigned char *)key, (unsigned int)strlen(key), expiry, used_marker,
                        sizeof(used_marker), p);
}
