/* bb_tokencache: keeps Bitbucket's verdict on an HTTP access token (its owner, or invalid) in the shared cache. */
#include <string.h>
#include <apr_strings.h>
#include <apr_time.h>
#include <jansson.h>
#include "bb_util.h"
#include "bb_tokencache.h"

#define KEY_NAMESPACE  "tok"
#define RECORD_VERSION 1

const char *bb_tokencache_key(apr_pool_t *p, const bb_tokencache_t *tc, const char *token)
{
    if (tc == NULL || tc->cache == NULL || token == NULL) {
        return NULL;
    }
    return bb_cache_key(p, tc->key, KEY_NAMESPACE, token, strlen(token));
}

/* The memo's key of a token: two SipHash-2-4 of it with the memo secret (128 bits, a PRF under a key that never
 * leaves the process: as unguessable as the HMAC, for a fraction of its cost), or `cache_key` without a secret. */
static const char *memo_key_of(apr_pool_t *p, const bb_tokencache_t *tc, const char *token, const char *cache_key)
{
    unsigned char digest[16];
    apr_uint64_t half;
    int i, j;

    if (tc->memo_secret == NULL || token == NULL) {
        return cache_key;
    }
    for (i = 0; i < 2; i++) {
        half = bb_siphash(tc->memo_secret + 16 * i, token, strlen(token));
        for (j = 0; j < 8; j++) {
            digest[8 * i + j] = (unsigned char)(half >> (8 * j));
        }
    }
    return bb_base64url_encode(p, digest, sizeof(digest));
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* The JSON record of a valid token, pool-owned; NULL when a string is not UTF-8. */
static json_t *make_record(apr_pool_t *p, const bb_user_t *user, apr_int64_t now, apr_int64_t ttl)
{
    return bb_json_pool_own(p, json_pack("{s:i,s:b,s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:I,s:b}", "v", RECORD_VERSION,
                                         "valid", 1, "at", (json_int_t)now, "exp", (json_int_t)(now + ttl),
                                         "name", user->name, "slug", or_empty(user->slug),
                                         "display_name", or_empty(user->display_name),
                                         "email", or_empty(user->email), "type", or_empty(user->type),
                                         "id", (json_int_t)user->id, "active", user->active));
}

/* A user in a memo value (strings: name, slug, display name, email, type; numbers 2 and 3: id, active), and back. */
static void memo_user(bb_memo_value_t *v, const bb_user_t *u)
{
    v->s[0] = u->name;
    v->s[1] = or_empty(u->slug);
    v->s[2] = or_empty(u->display_name);
    v->s[3] = or_empty(u->email);
    v->s[4] = or_empty(u->type);
    v->n[2] = u->id;
    v->n[3] = u->active;
}

static bb_user_t *remembered_user(apr_pool_t *p, const bb_memo_value_t *v)
{
    bb_user_t *u = apr_pcalloc(p, sizeof(*u));

    u->name = v->s[0];
    u->slug = v->s[1];
    u->display_name = v->s[2];
    u->email = v->s[3];
    u->type = v->s[4];
    u->id = v->n[2];
    u->active = (int)v->n[3];
    return u;
}

/* A verdict as a memo value (the owner as memo_user; numbers 0, 1 and 4: validated_at, valid, expires), and back. */
static void memo_verdict(const bb_tokencache_t *tc, const char *key, const bb_tokencache_entry_t *entry)
{
    bb_memo_value_t v;

    memset(&v, 0, sizeof(v));
    v.n[0] = entry->validated_at;
    v.n[1] = entry->user != NULL;
    v.n[4] = entry->expires;
    if (entry->user) {
        memo_user(&v, entry->user);
    }
    bb_memo_put(tc->memo, key, strlen(key), entry->expires, &v);
}

static bb_tokencache_entry_t *remembered_verdict(apr_pool_t *p, const bb_tokencache_t *tc, const char *key,
                                                 apr_int64_t now)
{
    bb_memo_value_t v;
    bb_tokencache_entry_t *entry;

    if (!bb_memo_get(tc->memo, p, key, strlen(key), now, &v)) {
        return NULL;
    }
    entry = apr_pcalloc(p, sizeof(*entry));
    entry->from_memo = 1;
    entry->validated_at = v.n[0];
    entry->expires = v.n[4];
    entry->user = v.n[1] ? remembered_user(p, &v) : NULL;
    return entry;
}

/* The users memo's key of a name: a prefix no other key of it has. */
static const char *user_key(apr_pool_t *p, const char *name)
{
    return apr_pstrcat(p, "user ", name, NULL);
}

void bb_tokencache_remember_user(apr_pool_t *p, const bb_tokencache_t *tc, const bb_user_t *user,
                                 apr_int64_t expires)
{
    const char *key;
    bb_memo_value_t v;

    if (tc == NULL || user == NULL || user->name == NULL) {
        return;
    }
    key = user_key(p, user->name);
    memset(&v, 0, sizeof(v));
    memo_user(&v, user);
    bb_memo_put(tc->users, key, strlen(key), expires, &v);
}

bb_user_t *bb_tokencache_known_user(apr_pool_t *p, const bb_tokencache_t *tc, const char *name, apr_int64_t now)
{
    const char *key;
    bb_memo_value_t v;

    if (tc == NULL || name == NULL) {
        return NULL;
    }
    key = user_key(p, name);
    return bb_memo_get(tc->users, p, key, strlen(key), now, &v) ? remembered_user(p, &v) : NULL;
}

/* Stores the JSON record of a valid token under its key until now + ttl. */
static apr_status_t store_record(apr_pool_t *p, const bb_tokencache_t *tc, const char *token,
                                 const bb_user_t *user, apr_int64_t now, apr_int64_t ttl)
{
    const char *key = bb_tokencache_key(p, tc, token);
    json_t *rec = key && ttl > 0 ? make_record(p, user, now, ttl) : NULL;
    char *json;
    size_t json_len;
    apr_status_t rv;

    if (rec == NULL) {
        return APR_EINVAL;
    }
    json = apr_palloc(p, BB_CACHE_MAX_VALUE);
    /* json_dumpb returns the length the JSON needs even when it does not fit. */
    json_len = json_dumpb(rec, json, BB_CACHE_MAX_VALUE, JSON_COMPACT);
    if (json_len == 0 || json_len > BB_CACHE_MAX_VALUE) {
        return APR_ENOSPC;
    }
    rv = bb_cache_store_authentic(p, tc->cache, tc->key, key, now + ttl + (user && tc->stale_grace > 0 ?
                                                                          tc->stale_grace : 0), json, json_len);
    if (rv == APR_SUCCESS) {
        bb_tokencache_entry_t stored = { now, now + ttl, (bb_user_t *)user, 0 };
        memo_verdict(tc, memo_key_of(p, tc, token, key), &stored);
    }
    return rv;
}

apr_status_t bb_tokencache_store_valid(apr_pool_t *p, const bb_tokencache_t *tc, const char *token,
                                       const bb_user_t *user, apr_int64_t now, apr_int64_t ttl)
{
    if (user == NULL || user->name == NULL || user->name[0] == '\0') {
        return APR_EINVAL;
    }
    return store_record(p, tc, token, user, now, ttl);
}

apr_status_t bb_tokencache_store_invalid(apr_pool_t *p, const bb_tokencache_t *tc, const char *token,
                                         apr_int64_t now, apr_int64_t ttl)
{
    const char *key = bb_tokencache_key(p, tc, token);
    bb_tokencache_entry_t refused = { now, now + ttl, NULL, 0 };

    if (key == NULL || ttl <= 0) {
        return APR_EINVAL;
    }
    if (tc->stale_grace > 0) {
        /* Bitbucket's "no" voids its earlier "yes" on every process and host, so that no stale-if-error use of
         * it outlives the refusal. A removal writes nothing: it can push nothing out of the cache. */
        tc->cache->remove(tc->cache->baton, (const unsigned char *)key, (unsigned int)strlen(key), p);
    }
    if (tc->memo == NULL) {
        return APR_ENOTIMPL;
    }
    memo_verdict(tc, memo_key_of(p, tc, token, key), &refused);
    return APR_SUCCESS;
}

/* The owner in a valid record, with every field present and of the right type; NULL otherwise. */
static bb_user_t *parse_user(apr_pool_t *p, json_t *rec)
{
    bb_user_t *user = apr_pcalloc(p, sizeof(*user));
    json_int_t id;

    if (json_unpack(rec, "{s:s,s:s,s:s,s:s,s:s,s:I,s:b}", "name", &user->name, "slug", &user->slug,
                    "display_name", &user->display_name, "email", &user->email, "type", &user->type,
                    "id", &id, "active", &user->active) != 0
        || user->name[0] == '\0') {
        return NULL;
    }
    user->id = (apr_int64_t)id;
    return user;
}

/* An authenticated record's JSON → entry, or NULL when it is malformed or expired at now (a valid verdict: grace
 * seconds after its expiry). The strings point into the pool-owned JSON. */
static bb_tokencache_entry_t *parse_record(apr_pool_t *p, const unsigned char *json, apr_size_t len,
                                           apr_int64_t now, apr_int64_t grace)
{
    json_t *rec = bb_json_parse(p, (const char *)json, len);
    json_int_t version, at, exp;
    int valid;
    bb_tokencache_entry_t *entry;

    if (rec == NULL
        || json_unpack(rec, "{s:I,s:b,s:I,s:I}", "v", &version, "valid", &valid, "at", &at, "exp", &exp) != 0
        || version != RECORD_VERSION || now >= exp + (valid ? grace : 0)) {
        return NULL;
    }
    entry = apr_pcalloc(p, sizeof(*entry));
    entry->validated_at = (apr_int64_t)at;
    entry->expires = (apr_int64_t)exp;
    /* Only valid tokens' verdicts are shared (refusals stay in the process that heard them). */
    if (!valid || (entry->user = parse_user(p, rec)) == NULL) {
        return NULL;
    }
    return entry;
}

bb_tokencache_result_t bb_tokencache_lookup(apr_pool_t *p, const bb_tokencache_t *tc, const char *token,
                                            apr_int64_t now, bb_tokencache_entry_t **entry)
{
    /* A memo hit needs no cache key: without a memo secret the memo is keyed by it, so it is made first. */
    const char *key = tc && tc->memo_secret ? NULL : bb_tokencache_key(p, tc, token);
    const char *memo_key = tc ? memo_key_of(p, tc, token, key) : NULL;
    const unsigned char *json;
    apr_size_t len;
    bb_tokencache_entry_t *found;

    if (memo_key == NULL || tc->cache == NULL) {
        return BB_TOKENCACHE_MISS;
    }
    found = remembered_verdict(p, tc, memo_key, now);
    if (found == NULL) {
        key = key ? key : bb_tokencache_key(p, tc, token);
        json = key ? bb_cache_retrieve_authentic(p, tc->cache, tc->key, key, BB_CACHE_MAX_VALUE, &len) : NULL;
        found = json ? parse_record(p, json, len, now, 0) : NULL;
        if (found == NULL) {
            return BB_TOKENCACHE_MISS;
        }
        memo_verdict(tc, memo_key, found);
    }
    *entry = found;
    return found->user ? BB_TOKENCACHE_HIT_VALID : BB_TOKENCACHE_HIT_INVALID;
}

int bb_tokencache_lookup_stale(apr_pool_t *p, const bb_tokencache_t *tc, const char *token, apr_int64_t now,
                               bb_tokencache_entry_t **entry)
{
    const char *key = tc && tc->stale_grace > 0 ? bb_tokencache_key(p, tc, token) : NULL;
    const unsigned char *json;
    apr_size_t len;
    bb_tokencache_entry_t *found;

    if (key == NULL) {
        return 0;
    }
    json = bb_cache_retrieve_authentic(p, tc->cache, tc->key, key, BB_CACHE_MAX_VALUE, &len);
    found = json ? parse_record(p, json, len, now, tc->stale_grace) : NULL;
    if (found == NULL || found->user == NULL) {
        return 0;
    }
    *entry = found;
    return 1;
}
