/* mod_bbauth_cache.c: the shared cache: an httpd socache provider (dbm, shmcb, memcache, redis) behind the core's bb_cache_t, its canary, and the host's count of ended sessions. */
#include <apr_strings.h>
#include <apr_shm.h>
#include <ap_provider.h>
#include <ap_socache.h>
#include <util_mutex.h>

#include "mod_bbauth.h"

#define CACHE_MUTEX_TYPE   "bbauth-cache"
/* The default keeps its entries on disk, so that a reload or a restart forgets no logout (README: shared cache);
 * shmcb, emptied by every reload, only when mod_socache_dbm is not loaded. */
#define DEFAULT_PROVIDER   "dbm"
#define FALLBACK_PROVIDER  "shmcb"
/* memcached reads a relative expiry over 30 days as an absolute unix time, long past: such entries vanish. */
#define MEMCACHE_MAX_TTL   (30 * 86400)
/* How long a process believes "not logged out" by default when the cache is this host's alone (shmcb, dbm): only
 * this host's processes write to it, and a logout here voids every process's memory at once (host_ends), so the
 * recheck only bounds rarer surprises (a second Apache given the same dbm file, the file removed by hand). Each
 * recheck is a cache read, and mod_socache_dbm opens its file for every one, under a mutex. */
#define HOST_LOCAL_SESSION_RECHECK 60
/* shmcb's own default (512 KB) holds a few hundred sessions; this holds tens of thousands (README: sizing). */
#define DEFAULT_SHMCB_SIZE (16 * 1024 * 1024)

/* One cache for the whole server, like SSLSessionCache: state markers are checked wherever the callback lands. */
typedef struct {
    const ap_socache_provider_t *provider;
    ap_socache_instance_t *instance;
    apr_global_mutex_t *mutex;       /* only for providers that are not safe across processes (shmcb) */
    server_rec *server;
    const char *name;                /* the provider's name, as in BBAuthCache */
    int spread;                      /* shmcb: one byte in front of each key chooses the subcache (provider_key) */
    int on_disk;                     /* dbm: its files outlive the server (never destroyed, which unlinks them),
                                      * and its retrieve says APR_EGENERAL for a key it does not have */
    int host_local;                  /* shmcb, dbm: no other host reads or writes it */
    apr_shm_t *ends_shm;             /* this host's count of ended sessions (bb_sessionstate_t.host_ends) */
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
    cache.name = apr_pstrdup(pconf, name);
    cache.spread = !strcmp(name, "shmcb");
    cache.on_disk = !strcmp(name, "dbm");
    cache.host_local = cache.spread || cache.on_disk;
    if (cache.spread && (!args || !*args)) {
        /* The path is only used where anonymous shared memory is not available. */
        args = apr_psprintf(ptemp, "%s(%d)", ap_runtime_dir_relative(ptemp, "bbauth-cache"), DEFAULT_SHMCB_SIZE);
    }
    if (cache.on_disk && (!args || !*args)) {
        /* The runtime directory (Debian: /var/run/apache2) outlives reloads and restarts, not a reboot. */
        args = ap_runtime_dir_relative(ptemp, "bbauth-cache");
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
    if (cache.provider && cache.instance && !cache.on_disk) {
        cache.provider->destroy(cache.instance, cache.server);
    }
    cache.provider = NULL;
    cache.instance = NULL;
    cache.mutex = NULL;
    cache.ends_shm = NULL;           /* made in pconf too, and gone with it */
    return APR_SUCCESS;
}

/* The value 0-63 of a base64url character. */
static unsigned char base64url_value(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '-' ? 62 : 63;
}

/* The key as the provider gets it. shmcb chooses a subcache by a key's first byte (masked to the subcache count,
 * up to 256); the core's keys start with base64url, 64 values, which would leave most subcaches of a large cache
 * unused. So shmcb gets one byte more in front: the first byte of the key's HMAC, which its first two characters
 * encode. memcache and redis hash the whole key and get it as it is. */
static const unsigned char *provider_key(const unsigned char *key, unsigned int *keylen, apr_pool_t *p)
{
    unsigned char *spread;

    if (!cache.spread || *keylen < 2) {
        return key;
    }
    spread = apr_palloc(p, *keylen + 1);
    spread[0] = (unsigned char)(base64url_value(key[0]) << 2 | base64url_value(key[1]) >> 4);
    memcpy(spread + 1, key, *keylen);
    (*keylen)++;
    return spread;
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

    key = provider_key(key, &keylen, p);
    /* The provider API takes a non-const buffer but does not write to it. */
    CACHE_LOCKED(cache.provider->store(cache.instance, cache.server, key, keylen, expiry,
                                       (unsigned char *)value, vallen, p));
    return bbauth_count_cache(BB_CACHE_OP_STORE, rv);
}

static apr_status_t cache_retrieve(void *baton, const unsigned char *key, unsigned int keylen,
                                   unsigned char *value, unsigned int *vallen, apr_pool_t *p)
{
    apr_status_t rv;

    key = provider_key(key, &keylen, p);
    CACHE_LOCKED(cache.provider->retrieve(cache.instance, cache.server, key, keylen, value, vallen, p));
    if (cache.on_disk && rv == APR_EGENERAL) {
        rv = APR_NOTFOUND;          /* mod_socache_dbm's answer for an absent key (a real failure is another) */
    }
    return bbauth_count_cache(BB_CACHE_OP_RETRIEVE, rv);
}

static apr_status_t cache_remove(void *baton, const unsigned char *key, unsigned int keylen, apr_pool_t *p)
{
    apr_status_t rv;

    key = provider_key(key, &keylen, p);
    CACHE_LOCKED(cache.provider->remove(cache.instance, cache.server, key, keylen, p));
    return bbauth_count_cache(BB_CACHE_OP_REMOVE, rv);
}

apr_status_t bbauth_cache_post_config(apr_pool_t *pconf, server_rec *s)
{
    /* Keys are 47 to 52 bytes; values 1 (marks) to about 250 (grants, token verdicts), some 90 on average. */
    static const struct ap_socache_hints hints = { 50, 90, apr_time_from_sec(60) };
    apr_status_t rv;
    const char *err;

    if (!cache.instance) {
        err = bbauth_cache_configure(pconf, pconf, ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, DEFAULT_PROVIDER,
                                                                      AP_SOCACHE_PROVIDER_VERSION)
                                                   ? DEFAULT_PROVIDER : FALLBACK_PROVIDER);
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
    rv = apr_shm_create(&cache.ends_shm, sizeof(apr_uint32_t), NULL, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_bbauth: cannot create the shared memory for logouts");
        return rv;
    }
    *(apr_uint32_t *)apr_shm_baseaddr_get(cache.ends_shm) = 0;
    cache.view.store = cache_store;
    cache.view.retrieve = cache_retrieve;
    cache.view.remove = cache_remove;
    return APR_SUCCESS;
}

/* Writes the server's canary into a cache that has none, so that the sessions made from now on are after its
 * epoch; a cache that cannot be reached now is logged, and the first request that needs it asks again. */
static void start_epoch(apr_pool_t *p, server_rec *s, const bbauth_server_conf *conf)
{
    apr_int64_t epoch;
    apr_status_t rv;

    if (!conf->session_state.key || !conf->session_state.cache) {
        return;
    }
    rv = bb_sessionstate_epoch(p, &conf->session_state, bbauth_now(), &epoch);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, "mod_bbauth: the shared cache (BBAuthCache %s) cannot be "
                     "read or written now: sessions get 503 until it can; check that it runs and is reachable",
                     cache.name);
    }
}

/* The canary is written here, in each child, never in the parent: mod_socache_memcache and _redis keep the
 * connection a call opens in a pool that every child inherits at fork, and children that share one connection
 * read each other's answers (one process's "not found" taken as the answer to another's logout-mark lookup). */
void bbauth_cache_child_init(apr_pool_t *pchild, server_rec *s)
{
    server_rec *vhost;

    if (cache.mutex) {
        apr_status_t rv = apr_global_mutex_child_init(&cache.mutex,
                                                      apr_global_mutex_lockfile(cache.mutex), pchild);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "mod_bbauth: cannot attach to the cache mutex");
            return;
        }
    }
    for (vhost = s; vhost; vhost = vhost->next) {
        start_epoch(pchild, vhost, ap_get_module_config(vhost->module_config, &bbauth_module));
    }
}

void bbauth_cache_attach(server_rec *s)
{
    for (; s; s = s->next) {
        bbauth_server_conf *conf = ap_get_module_config(s->module_config, &bbauth_module);
        conf->session_state.cache = bbauth_cache();
        conf->session_state.host_ends = cache.ends_shm ? apr_shm_baseaddr_get(cache.ends_shm) : NULL;
        if (cache.host_local && conf->session_recheck_default) {
            conf->session_state.recheck = HOST_LOCAL_SESSION_RECHECK;
        }
    }
}

int bbauth_cache_check_ttls(server_rec *s)
{
    for (; s; s = s->next) {
        const bbauth_server_conf *conf = ap_get_module_config(s->module_config, &bbauth_module);
        apr_int64_t ttl = conf->max_age;

        /* The longest-lived entries are a session's logout mark and grant (BBAuthSessionMaxAge); the others
         * (login states, token verdicts with stale-if-error, Require decisions, revalidation marks) are shorter
         * by the directives' own limits. */
        if (cache.name && !strcmp(cache.name, "memcache") && ttl > MEMCACHE_MAX_TTL) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "mod_bbauth: BBAuthSessionMaxAge %" APR_INT64_T_FMT " is "
                         "over 2592000 (30 days), the longest expiry memcached keeps (BBAuthCache memcache: a "
                         "longer one is read as a date in the past and the logout marks vanish at once): lower it "
                         "or use another cache", ttl);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

const bb_cache_t *bbauth_cache(void)
{
    return cache.instance ? &cache.view : NULL;
}
