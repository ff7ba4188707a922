/* fake_cache.h: an in-memory bb_cache_t over apr_hash_t for the unit tests, with a clock of its own and
 * switchable failures. */
#ifndef BB_FAKE_CACHE_H
#define BB_FAKE_CACHE_H

#include <string.h>
#include <apr_hash.h>
#include "bb_cache.h"

typedef struct {
    apr_pool_t *pool;
    apr_hash_t *entries;
    apr_time_t now;
    int keeps_expired;                  /* 1: behaves like a cache that keeps entries past their expiry */
    apr_status_t retrieve_fails_with;   /* APR_SUCCESS: works */
    apr_status_t store_fails_with;
    int stores;
} fake_cache_t;

typedef struct {
    apr_time_t expiry;
    unsigned char *value;
    unsigned int len;
} fake_entry_t;

static apr_status_t fake_store(void *baton, const unsigned char *key, unsigned int keylen, apr_time_t expiry,
                               const unsigned char *value, unsigned int vallen, apr_pool_t *p)
{
    fake_cache_t *fc = baton;
    fake_entry_t *e;

    fc->stores++;
    if (fc->store_fails_with != APR_SUCCESS) {
        return fc->store_fails_with;
    }
    e = apr_pcalloc(fc->pool, sizeof(*e));
    e->expiry = expiry;
    e->value = apr_pmemdup(fc->pool, value, vallen);
    e->len = vallen;
    apr_hash_set(fc->entries, apr_pmemdup(fc->pool, key, keylen), keylen, e);
    return APR_SUCCESS;
}

static apr_status_t fake_retrieve(void *baton, const unsigned char *key, unsigned int keylen, unsigned char *value,
                                  unsigned int *vallen, apr_pool_t *p)
{
    fake_cache_t *fc = baton;
    fake_entry_t *e = apr_hash_get(fc->entries, key, keylen);

    if (fc->retrieve_fails_with != APR_SUCCESS) {
        return fc->retrieve_fails_with;
    }
    if (e == NULL || (!fc->keeps_expired && fc->now >= e->expiry)) {
        return APR_NOTFOUND;
    }
    if (e->len > *vallen) {
        return APR_ENOSPC;
    }
    memcpy(value, e->value, e->len);
    *vallen = e->len;
    return APR_SUCCESS;
}

static apr_status_t fake_remove(void *baton, const unsigned char *key, unsigned int keylen, apr_pool_t *p)
{
    fake_cache_t *fc = baton;
    apr_hash_set(fc->entries, key, keylen, NULL);
    return APR_SUCCESS;
}

/* Sets up fc (empty, clock at now_sec) and cache over it. */
static void fake_cache_init(fake_cache_t *fc, bb_cache_t *cache, apr_pool_t *p, apr_int64_t now_sec)
{
    memset(fc, 0, sizeof(*fc));
    fc->pool = p;
    fc->entries = apr_hash_make(p);
    fc->now = apr_time_from_sec(now_sec);
    cache->baton = fc;
    cache->store = fake_store;
    cache->retrieve = fake_retrieve;
    cache->remove = fake_remove;
}

/* A fake cache and a 32-byte server key of one repeated byte: what the caches keyed by a server secret need. */
typedef struct {
    fake_cache_t fc;
    bb_cache_t cache;
    unsigned char secret[32];
    bb_key_t key;
} keyed_cache_t;

static void keyed_cache_init(keyed_cache_t *kc, apr_pool_t *p, apr_int64_t now_sec, unsigned char secret_byte)
{
    fake_cache_init(&kc->fc, &kc->cache, p, now_sec);
    memset(kc->secret, secret_byte, sizeof(kc->secret));
    kc->key.kid = "test";
    kc->key.secret = kc->secret;
    kc->key.len = sizeof(kc->secret);
    kc->key.hmac = NULL;
}

#endif
