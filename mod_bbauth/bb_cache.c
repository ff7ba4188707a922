/* bb_cache: hashed cache keys, the one-use marker (e.g. a completed OAuth state) and authenticated records over the
 * shared cache. */
#include <string.h>
#include <apr_strings.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include "bb_util.h"
#include "bb_cache.h"

/* What a used marker holds: its presence is the information. */
static const unsigned char used_marker[1] = { '1' };

const char *bb_cache_key(apr_pool_t *p, const bb_key_t *key, const char *ns, const void *id, apr_size_t id_len)
{
    unsigned char mac[BB_HMAC_LEN];

    if (!bb_cache_secret_usable(key) || ns == NULL || id == NULL || !bb_cache_mac(p, key, ns, id, id_len, mac)) {
        return NULL;
    }
    return apr_pstrcat(p, bb_base64url_encode(p, mac, sizeof(mac)), ":", ns, NULL);
}

const char *bb_cache_name(apr_pool_t *p, const char *space, const char *ns, const char *id)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    EVP_MD_CTX *ctx;
    int ok;

    if (space == NULL || ns == NULL || id == NULL || (ctx = EVP_MD_CTX_new()) == NULL) {
        return NULL;
    }
    /* Each part with its NUL: the parts cannot run into each other. */
    ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) && EVP_DigestUpdate(ctx, space, strlen(space) + 1)
         && EVP_DigestUpdate(ctx, ns, strlen(ns) + 1) && EVP_DigestUpdate(ctx, id, strlen(id))
         && EVP_DigestFinal_ex(ctx, digest, NULL);
    EVP_MD_CTX_free(ctx);
    return ok ? apr_pstrcat(p, bb_base64url_encode(p, digest, sizeof(digest)), ":", ns, NULL) : NULL;
}

apr_status_t bb_cache_has_marker(const bb_cache_t *cache, const char *cache_key, apr_pool_t *p)
{
    unsigned char found[sizeof(used_marker)];
    unsigned int found_len = sizeof(found);

    return cache->retrieve(cache->baton, (const unsigned char *)cache_key, (unsigned int)strlen(cache_key), found,
                           &found_len, p);
}

apr_status_t bb_cache_store_marker(const bb_cache_t *cache, const char *cache_key, apr_time_t expiry, apr_pool_t *p)
{
    return cache->store(cache->baton, (const unsigned char *)cache_key, (unsigned int)strlen(cache_key), expiry,
                        used_marker, sizeof(used_marker), p);
}

/* APR_EEXIST when the marker is there, APR_SUCCESS when not, or the cache's error. */
static apr_status_t check_unused(const bb_cache_t *cache, const char *cache_key, apr_pool_t *p)
{
    apr_status_t rv;

    if (cache == NULL || cache_key == NULL) {
        return APR_EINVAL;
    }
    rv = bb_cache_has_marker(cache, cache_key, p);
    return rv == APR_SUCCESS ? APR_EEXIST : rv == APR_NOTFOUND ? APR_SUCCESS : rv;
}

apr_status_t bb_cache_check_unused(const bb_cache_t *cache, const char *space, const char *ns, const char *id,
                                   apr_pool_t *p)
{
    return check_unused(cache, bb_cache_name(p, space, ns, id), p);
}

apr_status_t bb_cache_use_once(const bb_cache_t *cache, const char *space, const char *ns, const char *id,
                               apr_time_t expiry, apr_pool_t *p)
{
    const char *cache_key = bb_cache_name(p, space, ns, id);
    apr_status_t rv = check_unused(cache, cache_key, p);

    if (rv != APR_SUCCESS) {
        return rv;              /* used already, or the cache cannot tell: the caller fails closed */
    }
    return bb_cache_store_marker(cache, cache_key, expiry, p);
}

int bb_cache_secret_usable(const bb_key_t *key)
{
    return key != NULL && key->secret != NULL && key->len >= BB_CACHE_MIN_SECRET;
}

int bb_cache_mac(apr_pool_t *p, const bb_key_t *key, const char *a, const void *b, apr_size_t blen,
                 unsigned char mac[BB_HMAC_LEN])
{
    apr_size_t alen = strlen(a) + (b ? 1 : 0);   /* with b, a's NUL too */
    const unsigned char *msg = (const unsigned char *)a;
    unsigned int one_shot_len = 0;

    if (b) {
        unsigned char *joined = apr_palloc(p, alen + blen);
        memcpy(joined, a, alen);
        memcpy(joined + alen, b, blen);
        msg = joined;
    }
    else {
        blen = 0;
    }
    if (key->hmac) {
        return bb_hmac_sha256(key->hmac, msg, alen + blen, mac);
    }
    return HMAC(EVP_sha256(), key->secret, (int)key->len, msg, alen + blen, mac, &one_shot_len) != NULL
           && one_shot_len == BB_HMAC_LEN;
}

apr_status_t bb_cache_store_authentic(apr_pool_t *p, const bb_cache_t *cache, const bb_key_t *key,
                                      const char *cache_key, apr_int64_t expiry, const void *body, apr_size_t len)
{
    unsigned char *value;

    if (cache == NULL || !bb_cache_secret_usable(key) || cache_key == NULL || body == NULL) {
        return APR_EINVAL;
    }
    if (len > BB_CACHE_MAX_VALUE - BB_HMAC_LEN) {
        return APR_ENOSPC;
    }
    value = apr_palloc(p, BB_HMAC_LEN + len);
    memcpy(value + BB_HMAC_LEN, body, len);
    if (!bb_cache_mac(p, key, cache_key, body, len, value)) {
        return APR_EGENERAL;
    }
    return cache->store(cache->baton, (const unsigned char *)cache_key, (unsigned int)strlen(cache_key),
                        apr_time_from_sec(expiry), value, (unsigned int)(BB_HMAC_LEN + len), p);
}

const unsigned char *bb_cache_retrieve_authentic(apr_pool_t *p, const bb_cache_t *cache, const bb_key_t *key,
                                                 const char *cache_key, apr_size_t max_len, apr_size_t *len)
{
    unsigned char *value;
    unsigned int value_len;
    unsigned char mac[BB_HMAC_LEN];

    if (cache == NULL || !bb_cache_secret_usable(key) || cache_key == NULL) {
        return NULL;
    }
    if (max_len > BB_CACHE_MAX_VALUE - BB_HMAC_LEN) {
        max_len = BB_CACHE_MAX_VALUE - BB_HMAC_LEN;
    }
    value_len = (unsigned int)(BB_HMAC_LEN + max_len);
    value = apr_palloc(p, value_len + 1);
    /* A record longer than the buffer fails to be read (the cache says APR_ENOSPC): nothing. */
    if (cache->retrieve(cache->baton, (const unsigned char *)cache_key, (unsigned int)strlen(cache_key), value,
                        &value_len, p) != APR_SUCCESS
        || value_len <= BB_HMAC_LEN || value_len > BB_HMAC_LEN + max_len) {
        return NULL;
    }
    /* Authenticate before anything reads the body. */
    if (!bb_cache_mac(p, key, cache_key, value + BB_HMAC_LEN, value_len - BB_HMAC_LEN, mac)
        || !bb_secure_equals(mac, BB_HMAC_LEN, value, BB_HMAC_LEN)) {
        return NULL;
    }
    value[value_len] = '\0';
    *len = value_len - BB_HMAC_LEN;
    return value + BB_HMAC_LEN;
}
