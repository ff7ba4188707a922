/* bb_authzcache: Bitbucket's answers to Require questions in the shared cache, keyed and authenticated by HMAC. */
#include <string.h>
#include <stdio.h>
#include <apr_strings.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "bb_util.h"
#include "bb_authzcache.h"

#define KEY_NAMESPACE "authz:"
#define MAC_LEN       32
/* "v1 1 " and up to 20 digits of expiry. */
#define MAX_TEXT      32

/* HMAC-SHA256 of a NUL b; the NUL keeps (a, b) pairs apart. */
static int mac_pair(apr_pool_t *p, const bb_authzcache_t *ac, const char *a, const void *b, apr_size_t blen,
                    unsigned char mac[MAC_LEN])
{
    apr_size_t alen = strlen(a) + 1;
    unsigned char *msg = apr_palloc(p, alen + blen);
    unsigned int len = 0;

    memcpy(msg, a, alen);
    memcpy(msg + alen, b, blen);
    return HMAC(EVP_sha256(), ac->secret, (int)ac->secret_len, msg, alen + blen, mac, &len) != NULL
        && len == MAC_LEN;
}

const char *bb_authzcache_key(apr_pool_t *p, const bb_authzcache_t *ac, const char *principal,
                              const char *question)
{
    unsigned char mac[MAC_LEN];

    if (ac == NULL || ac->cache == NULL || ac->secret == NULL || ac->secret_len < BB_AUTHZCACHE_MIN_SECRET
        || principal == NULL || question == NULL
        || !mac_pair(p, ac, principal, question, strlen(question), mac)) {
        return NULL;
    }
    return apr_pstrcat(p, KEY_NAMESPACE, bb_base64url_encode(p, mac, MAC_LEN), NULL);
}

apr_status_t bb_authzcache_store(apr_pool_t *p, const bb_authzcache_t *ac, const char *principal,
                                 const char *question, int granted, apr_int64_t now, apr_int64_t ttl)
{
    const char *key = bb_authzcache_key(p, ac, principal, question);
    unsigned char value[MAC_LEN + MAX_TEXT];
    int len;

    if (key == NULL || ttl <= 0) {
        return APR_EINVAL;
    }
    len = snprintf((char *)value + MAC_LEN, MAX_TEXT, "v1 %d %" APR_INT64_T_FMT, granted ? 1 : 0, now + ttl);
    if (len <= 0 || len >= MAX_TEXT || !mac_pair(p, ac, key, value + MAC_LEN, (apr_size_t)len, value)) {
        return APR_EGENERAL;
    }
    return ac->cache->store(ac->cache->baton, (const unsigned char *)key, (unsigned int)strlen(key),
                            apr_time_from_sec(now + ttl), value, (unsigned int)(MAC_LEN + len), p);
}

bb_authzcache_result_t bb_authzcache_lookup(apr_pool_t *p, const bb_authzcache_t *ac, const char *principal,
                                            const char *question, apr_int64_t now)
{
    const char *key = bb_authzcache_key(p, ac, principal, question);
    unsigned char value[MAC_LEN + MAX_TEXT];
    unsigned int len = sizeof(value) - 1;
    unsigned char mac[MAC_LEN];
    char text[MAX_TEXT];
    apr_int64_t expiry;
    int granted, end = 0;

    if (key == NULL
        || ac->cache->retrieve(ac->cache->baton, (const unsigned char *)key, (unsigned int)strlen(key), value,
                               &len, p) != APR_SUCCESS
        || len <= MAC_LEN || len >= sizeof(value)) {
        return BB_AUTHZCACHE_MISS;
    }
    /* Authenticate before reading: only this server's own records are ever parsed. */
    if (!mac_pair(p, ac, key, value + MAC_LEN, len - MAC_LEN, mac) || !bb_secure_equals(mac, MAC_LEN, value, MAC_LEN)) {
        return BB_AUTHZCACHE_MISS;
    }
    memcpy(text, value + MAC_LEN, len - MAC_LEN);
    text[len - MAC_LEN] = '\0';
    if (sscanf(text, "v1 %d %" APR_INT64_T_FMT "%n", &granted, &expiry, &end) != 2 || text[end] != '\0'
        || (granted != 0 && granted != 1) || now >= expiry) {
        return BB_AUTHZCACHE_MISS;
    }
    return granted ? BB_AUTHZCACHE_GRANTED : BB_AUTHZCACHE_DENIED;
}
