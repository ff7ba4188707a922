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
