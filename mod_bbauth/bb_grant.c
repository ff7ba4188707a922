/* bb_grant: a browser session's OAuth 2 tokens, kept server-side in the shared cache, sealed, under the session id. */
#include <string.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include "bb_grant.h"
#include "bb_util.h"

#define GRANT_NS "grant"

static const char *aad_of(apr_pool_t *p, const char *sid)
{
    return apr_pstrcat(p, "grant:", sid, NULL);
}

static const char *grant_key(apr_pool_t *p, const char *space, const char *sid)
{
    return bb_cache_name(p, space, GRANT_NS, sid);
}

apr_status_t bb_grant_store(apr_pool_t *p, const bb_cache_t *cache, const char *space, const bb_sealer_t *sealer,
                            const char *sid, const bb_grant_t *grant, apr_time_t expiry)
{
    json_t *obj;
    char *plain, *sealed;
    const char *cache_key = grant_key(p, space, sid);

    if (cache_key == NULL || !grant->access_token || !*grant->access_token) {
        return APR_EINVAL;
    }
    obj = json_pack("{s:s, s:s, s:I}", "at", grant->access_token, "rt", grant->refresh_token ? grant->refresh_token : "",
                    "exp", (json_int_t)grant->expires_at);
    plain = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!plain) {
        return APR_EINVAL;
    }
    sealed = bb_seal(p, sealer, aad_of(p, sid), plain, strlen(plain));
    OPENSSL_cleanse(plain, strlen(plain));   /* the tokens in clear go no further than this */
    free(plain);
    if (!sealed || strlen(sealed) > BB_CACHE_MAX_VALUE) {
        return APR_ENOSPC;
    }
    return cache->store(cache->baton, (const unsigned char *)cache_key, (unsigned int)strlen(cache_key), expiry,
                        (const unsigned char *)sealed, (unsigned int)strlen(sealed), p);
}

bb_grant_t *bb_grant_load(apr_pool_t *p, const bb_cache_t *cache, const char *space, const bb_sealer_t *sealer,
                          const char *sid)
{
    const char *cache_key = grant_key(p, space, sid);
    unsigned int len = BB_CACHE_MAX_VALUE;
    unsigned char *buf = apr_palloc(p, len + 1);
    unsigned char *plain;
    apr_size_t plain_len;
    json_t *obj;
    bb_grant_t *grant;

    if (cache_key == NULL
        || cache->retrieve(cache->baton, (const unsigned char *)cache_key, (unsigned int)strlen(cache_key), buf, &len,
                           p) != APR_SUCCESS) {
        return NULL;
    }
    plain = bb_seal_open(p, sealer, aad_of(p, sid), (const char *)buf, len, &plain_len);
    obj = plain ? bb_json_parse(p, (const char *)plain, plain_len) : NULL;
    if (!json_is_object(obj) || !json_is_integer(json_object_get(obj, "exp"))) {
        return NULL;
    }
    grant = apr_pcalloc(p, sizeof(*grant));
    grant->access_token = bb_json_string(p, obj, "at");
    grant->refresh_token = bb_json_string(p, obj, "rt");
    grant->expires_at = (apr_int64_t)json_integer_value(json_object_get(obj, "exp"));
    return grant->access_token && *grant->access_token && grant->refresh_token ? grant : NULL;
}

void bb_grant_remove(apr_pool_t *p, const bb_cache_t *cache, const char *space, const char *sid)
{
    const char *cache_key = grant_key(p, space, sid);

    if (cache_key) {
        cache->remove(cache->baton, (const unsigned char *)cache_key, (unsigned int)strlen(cache_key), p);
    }
}
