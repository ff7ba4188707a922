/* bb_connshare: per-process libcurl shares (connection cache, TLS sessions, DNS) for the threads of a child. */
#include <string.h>
#include <apr_thread_mutex.h>
#include "bb_connshare.h"

typedef struct {
    const char *ca_pem;                             /* whose share it is (compared as a pointer) */
    CURLSH *share;
    apr_thread_mutex_t *locks[CURL_LOCK_DATA_LAST]; /* one per kind of shared data, as libcurl advises */
} connshare_t;

/* The process's shares. `pool` is a subpool of the one given to bb_connshare_init, used only under `mutex`. */
static struct {
    apr_pool_t *pool;
    apr_thread_mutex_t *mutex;
    connshare_t shares[BB_CONNSHARE_MAX];
    int count;
} registry;

static void lock_data(CURL *handle, curl_lock_data data, curl_lock_access access, void *baton)
{
    connshare_t *cs = baton;

    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST) {
        apr_thread_mutex_lock(cs->locks[data]);
    }
}

static void unlock_data(CURL *handle, curl_lock_data data, void *baton)
{
    connshare_t *cs = baton;

    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST) {
        apr_thread_mutex_unlock(cs->locks[data]);
    }
}

/* Registered after the share's mutexes, so it runs before they are destroyed (cleanups run last-in first-out):
 * curl_share_cleanup still takes the locks while it closes the cached connections. */
static apr_status_t cleanup_share(void *baton)
{
    connshare_t *cs = baton;

    curl_share_cleanup(cs->share);
    cs->share = NULL;
    return APR_SUCCESS;
}

/* Registered first, so it runs last: nothing is handed out once the pool is going. */
static apr_status_t forget_registry(void *unused)
{
    memset(&registry, 0, sizeof(registry));
    return APR_SUCCESS;
}

static CURLSH *new_share(connshare_t *cs)
{
    int i;

    for (i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        if (apr_thread_mutex_create(&cs->locks[i], APR_THREAD_MUTEX_DEFAULT, registry.pool) != APR_SUCCESS) {
            return NULL;
        }
    }
    cs->share = curl_share_init();
    if (cs->share == NULL) {
        return NULL;
    }
    apr_pool_cleanup_register(registry.pool, cs, cleanup_share, apr_pool_cleanup_null);
    if (curl_share_setopt(cs->share, CURLSHOPT_LOCKFUNC, lock_data) != CURLSHE_OK
        || curl_share_setopt(cs->share, CURLSHOPT_UNLOCKFUNC, unlock_data) != CURLSHE_OK
        || curl_share_setopt(cs->share, CURLSHOPT_USERDATA, cs) != CURLSHE_OK
        || curl_share_setopt(cs->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK
        || curl_share_setopt(cs->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK
        || curl_share_setopt(cs->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
        apr_pool_cleanup_run(registry.pool, cs, cleanup_share);
        return NULL;
    }
    return cs->share;
}

apr_status_t bb_connshare_init(apr_pool_t *p)
{
#if APR_HAS_THREADS
    apr_status_t rv;

    memset(&registry, 0, sizeof(registry));
    rv = apr_pool_create(&registry.pool, p);
    if (rv == APR_SUCCESS) {
        apr_pool_cleanup_register(registry.pool, NULL, forget_registry, apr_pool_cleanup_null);
        rv = apr_thread_mutex_create(&registry.mutex, APR_THREAD_MUTEX_DEFAULT, registry.pool);
    }
    if (rv != APR_SUCCESS) {
        registry.mutex = NULL;
    }
    return rv;
#else
    return APR_ENOTIMPL;
#endif
}

CURLSH *bb_connshare_for(const char *ca_pem)
{
    CURLSH *share = NULL;
    int i;

    if (registry.mutex == NULL || apr_thread_mutex_lock(registry.mutex) != APR_SUCCESS) {
        return NULL;
    }
    for (i = 0; i < registry.count && share == NULL; i++) {
        if (registry.shares[i].ca_pem == ca_pem) {
            share = registry.shares[i].share;
        }
    }
    if (share == NULL && registry.count < BB_CONNSHARE_MAX) {
        connshare_t *cs = &registry.shares[registry.count];

        cs->ca_pem = ca_pem;
        share = new_share(cs);
        registry.count += share != NULL;   /* a failed slot is tried again next time */
    }
    apr_thread_mutex_unlock(registry.mutex);
    return share;
}
