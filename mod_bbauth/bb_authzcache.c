/* bb_authzcache: Bitbucket's answers to Require questions in the shared cache, keyed and authenticated by HMAC. */
#include <string.h>
#include <stdio.h>
#include <apr_strings.h>
#include "bb_util.h"
#include "bb_authzcache.h"

#define KEY_NAMESPACE "authz"
#define RECHECK_NAMESPACE "authz-recheck"
/* "v1 1 " and up to 20 digits of expiry. */
#define MAX_TEXT      32

/* The key of (principal, question) in namespace ns: principal NUL question, the NUL keeping the pairs apart. */
static const char *question_key(apr_pool_t *p, const bb_authzcache_t *ac, const char *ns, const char *principal,
                                const char *question)
{
    apr_size_t principal_len;
    char *id;

    if (ac == NULL || ac->cache == NULL || principal == NULL || question == NULL) {
        return NULL;
    }
    principal_len = strlen(principal);
    id = apr_pstrcat(p, principal, "_", question, NULL);
    id[principal_len] = '\0';
    return bb_cache_key(p, ac->key, ns, id, principal_len + 1 + strlen(question));
}

const char *bb_authzcache_key(apr_pool_t *p, const bb_authzcache_t *ac, const char *principal,
                              const char *question)
{
    return question_key(p, ac, KEY_NAMESPACE, principal, question);
}

apr_status_t bb_authzcache_store(apr_pool_t *p, const bb_authzcache_t *ac, const char *principal,
                                 const char *question, int granted, apr_int64_t now, apr_int64_t ttl)
{
    const char *key = bb_authzcache_key(p, ac, principal, question);
    char text[MAX_TEXT];
    int len;

    if (key == NULL || ttl <= 0) {
        return APR_EINVAL;
    }
    len = snprintf(text, sizeof(text), "v1 %d %" APR_INT64_T_FMT, granted ? 1 : 0, now + ttl);
    if (len <= 0 || len >= MAX_TEXT) {
        return APR_EGENERAL;
    }
    return bb_cache_store_authentic(p, ac->cache, ac->key, key, now + ttl, text, (apr_size_t)len);
}

bb_authzcache_result_t bb_authzcache_lookup(apr_pool_t *p, const bb_authzcache_t *ac, const char *principal,
                                            const char *question, apr_int64_t now)
{
    const char *key = bb_authzcache_key(p, ac, principal, question);
    const char *text;
    apr_size_t len;
    apr_int64_t expiry;
    int granted, end = 0;

    text = key ? (const char *)bb_cache_retrieve_authentic(p, ac->cache, ac->key, key, MAX_TEXT - 1, &len) : NULL;
    if (text == NULL
        || sscanf(text, "v1 %d %" APR_INT64_T_FMT "%n", &granted, &expiry, &end) != 2 || (apr_size_t)end != len
        || (granted != 0 && granted != 1) || now >= expiry) {
        return BB_AUTHZCACHE_MISS;
    }
    return granted ? BB_AUTHZCACHE_GRANTED : BB_AUTHZCACHE_DENIED;
}

apr_status_t bb_authzcache_forget(apr_pool_t *p, const bb_authzcache_t *ac, const char *principal,
                                  const char *question, apr_int64_t now)
{
    const char *key = bb_authzcache_key(p, ac, principal, question);
    const char *recheck = question_key(p, ac, RECHECK_NAMESPACE, principal, question);
    apr_status_t rv;

    if (key == NULL || recheck == NULL) {
        return APR_EINVAL;
    }
    rv = bb_cache_has_marker(ac->cache, recheck, p);
    if (rv != APR_NOTFOUND) {
        return rv == APR_SUCCESS ? APR_EBUSY : rv;
    }
    rv = bb_cache_store_marker(ac->cache, recheck, apr_time_from_sec(now + BB_AUTHZCACHE_RECHECK_INTERVAL), p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = ac->cache->remove(ac->cache->baton, (const unsigned char *)key, (unsigned int)strlen(key), p);
    return rv == APR_NOTFOUND ? APR_SUCCESS : rv;
}
