/* mod_bbauth_cache.c: the shared cache: an httpd socache provider (shmcb, memcache, redis) behind the core's bb_cache_t. */
#include <apr_strings.h>
#include <ap_provider.h>
#include <ap_socache.h>
#include <util_mutex.h>

#include "mod_bbauth.h"

#define CACHE_MUTEX_TYPE   "bbauth-cache"
#define DEFAULT_PROVIDER   "shmcb"

/* One cache for the whole server, like SSLSessionCache: state markers are checked wherever the callback lands. */
typedef struct {
    const ap_socache_provider_t *provider;
    ap_socache_instance_t *instance;
    apr_global_mutex_t *mutex;       /* only for providers that are not safe across processes (shmcb) */
    server_rec *server;
    bb_cache_t view;
} bbauth_cache_state;

static bbauth_cache_state cache;

/* Looks up the provider and creates its instance; an error message for BBAuthCache, or NULL. */
const char *bbauth_cache_configure(apr_pool_t *pconf, apr_pool_t *ptemp, const char *spec)
{
    const char *sep = strchr(spec, ':');
    const char *name = sep ? apr_pstrmemdup(ptemp, spec, sep - spec) : spec;
    const char *args = sep ? sep + 1 : NULL;
    const char *err;

    cache.provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, name, AP_SOCACHE_PROVIDER_VERSION);
    if (!cache.provider) {
        return apr_psprintf(ptemp, "unknown socache provider '%s': load mod_socache_%s (a2enmod socache_%s)",
                            name, name, name);
    }
    err = cache.provider->create(&cache.instance, args, ptemp, pconf);
    if (err) {
        return apr_psprintf(ptemp, "socache provider %s: %s", name, err);
    }
    return NULL;
}

void bbauth_cache_register_mutex(apr_pool_t *pconf)
{
    ap_mutex_register(pconf, CACHE_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0);
}

static apr_status_t cache_destroy(void *data)
{
    if (cache.provider && cache.instance) {
        cache.provider->destroy(cache.instance, cache.server);
    }
    cache.provider = NULL;
    cache.instance = NULL;
    cache.mutex = NULL;
    return APR_SUCCESS;
}

/* Runs a provider call under the mutex when the provider needs one. */
#define CACHE_LOCKED(call) do {                                         \
        apr_status_t lock_rv_ = APR_SUCCESS;                            \
        if (cache.mutex) lock_rv_ = apr_global_mutex_lock(cache.mutex); \
        if (lock_rv_ != APR_SUCCESS) return lock_rv_;                   \
        rv = (call);                                                    \
        if (cache.mutex) apr_global_mutex_unlock(cache.mutex);          \
    } while (0)

static apr_status_t cache_store(void *baton, const unsigned char *key, unsigned int keylen, apr_time_t expiry,
                                const unsigned char *value, unsigned int vallen, apr_pool_t *p)
{
    apr_status_t rv;
    /* The provider API takes a non-const buffer but does not write to it. */
    CACHE_LOCKED(cache.provider->store(cache.instance, cache.server, key, keylen, expiry,
                                       (unsigned char *)value, vallen, p));
    return bbauth_count_cache(BB_CACHE_OP_STORE, rv);
}

static apr_status_t cache_retrieve(void *baton, const unsigned char *key, unsigned int keylen,
                                   unsigned char *value, unsigned int *vallen, apr_pool_t *p)
{
    apr_status_t rv;
    CACHE_LOCKED(cache.provider->retrieve(cache.instance, cache.server, key, keylen, value, vallen, p));
    return bbauth_count_cache(BB_CACHE_OP_RETRIEVE, rv);
}

static apr_status_t cache_remove(void *baton, const unsigned char *key, unsigned int keylen, apr_pool_t *p)
{
    apr_status_t rv;
    CACHE_LOCKED(cache.provider->remove(cache.instance, cache.server, key, keylen, p));
    return bbauth_count_cache(BB_CACHE_OP_REMOVE, rv);
}

apr_status_t bbauth_cache_post_config(apr_pool_t *pconf, server_rec *s)
{
    static const struct ap_socache_hints hints = { 48, 1024, apr_time_from_sec(60) };
    apr_status_t rv;
    const char *err;

    if (!cache.instance) {
        err = bbauth_cache_configure(pconf, pconf, DEFAULT_PROVIDER);
        if (err) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "mod_bbauth: BBAuthCache: %s", err);
            return APR_EGENERAL;
        }
    }
    cache.server = s;
    if (cache.provider->flags & AP_SOCACHE_FLAG_NOTMPSAFE) {
        rv = ap_global_mutex_create(&cache.mutex, NULL, CACHE_MUTEX_TYPE, NULL, s, pconf, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_bbauth: cannot create the cache mutex");
            return rv;
        }
    }
    rv = cache.provider->init(cache.instance, "mod_bbauth", &hints, s, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     "mod_bbauth: cannot initialise the %s cache (BBAuthCache)", cache.provider->name);
        return rv;
    }
    apr_pool_cleanup_register(pconf, NULL, cache_destroy, apr_pool_cleanup_null);
    cache.view.store = cache_store;
    cache.view.retrieve = cache_retrieve;
    cache.view.remove = cache_remove;
    return APR_SUCCESS;
}

void bbauth_cache_child_init(apr_pool_t *pchild, server_rec *s)
{
    if (cache.mutex) {
        apr_status_t rv = apr_global_mutex_child_init(&cache.mutex,
                                                      apr_global_mutex_lockfile(cache.mutex), pchild);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "mod_bbauth: cannot attach to the cache mutex");
        }
    }
}

const bb_cache_t *bbauth_cache(void)
{
    return cache.instance ? &cache.view : NULL;
}
