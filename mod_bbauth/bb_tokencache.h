/* bb_tokencache: keeps Bitbucket's verdict on an HTTP access token (its owner, or invalid) in the shared cache. */
#ifndef BB_TOKENCACHE_H
#define BB_TOKENCACHE_H

#include <apr_pools.h>
#include "bb_cache.h"
#include "bb_bitbucket.h"
#include "bb_memo.h"

/* Where verdicts go and the server key they are keyed and authenticated with (e.g. keys[0] of
 * bb_keyring_derive(session ring, a label of its own)); a new key simply empties the cache. With a key shorter than
 * BB_CACHE_MIN_SECRET nothing is cached (every lookup misses). */
typedef struct {
    const bb_cache_t *cache;
    const bb_key_t *key;
    bb_memo_t *memo;               /* this process's memo of verdicts read or stored here (keyed by the cache key,
                                    * never by the token), or NULL: every lookup reads the shared cache */
    apr_int64_t stale_grace;       /* seconds a valid verdict stays in the cache past its expiry, for
                                    * bb_tokencache_lookup_stale (BBAuthStaleIfError); 0: none */
    bb_memo_t *users;              /* this process's memo of the users Bitbucket confirmed, by name (see
                                    * bb_tokencache_remember_user), or NULL */
    const unsigned char *memo_secret; /* BB_TOKENCACHE_MEMO_SECRET random bytes of this server: the memo is keyed by
                                    * two SipHash-2-4 of the token with them (a memo hit costs no HMAC), or NULL:
                                    * by the token's cache key */
} bb_tokencache_t;

#define BB_TOKENCACHE_MEMO_SECRET 32

typedef enum {
    BB_TOKENCACHE_MISS = 0,        /* nothing usable cached: ask Bitbucket */
    BB_TOKENCACHE_HIT_VALID,       /* Bitbucket accepted the token recently; entry->user is its owner */
    BB_TOKENCACHE_HIT_INVALID      /* Bitbucket refused the token recently */
} bb_tokencache_result_t;

typedef struct {
    apr_int64_t validated_at;      /* unix time Bitbucket gave the verdict */
    apr_int64_t expires;           /* unix time the verdict stops being used */
    bb_user_t *user;               /* HIT_VALID: the owner (every field set; email may be ""); else NULL */
    int from_memo;                 /* 1 when this process's memo answered, 0 when the shared cache did */
} bb_tokencache_entry_t;

/* The cache key of a token: bb_cache_key(key, "tok", token), 47 characters. Keyed, not a plain
 * hash, so that a copy of the cache gives no way to test guesses of tokens offline. NULL when tc has no cache
 * or its key is shorter than BB_CACHE_MIN_SECRET. */
const char *bb_tokencache_key(apr_pool_t *p, const bb_tokencache_t *tc, const char *token);

/* Looks the token up at unix time now. A hit sets *entry. Everything that is not a well-formed, authentic,
 * unexpired record for this very key is a MISS: cache errors, garbage, a record copied from another key or
 * changed by whoever can write to the cache, one past its expiry. With a memo, a verdict this process read or
 * stored before is taken from there until the same expiry, without the shared cache. */
bb_tokencache_result_t bb_tokencache_lookup(apr_pool_t *p, const bb_tokencache_t *tc, const char *token,
                                            apr_int64_t now, bb_tokencache_entry_t **entry);

/* While Bitbucket cannot answer: a valid verdict of the shared cache (never the memo) that expired less than
 * tc->stale_grace seconds before now. A refused token is never found here, nor one refused since (the refusal
 * removed the verdict). 1 with *entry set, else 0. */
int bb_tokencache_lookup_stale(apr_pool_t *p, const bb_tokencache_t *tc, const char *token, apr_int64_t now,
                               bb_tokencache_entry_t **entry);

/* Remembers for ttl seconds (the glue uses 300) that Bitbucket accepted the token as user's (name must be set;
 * a NULL string field is kept as ""). The stored value is an authentic record (bb_cache_store_authentic) of
 * the JSON {"v":1,"valid":true,"at":now,"exp":now+ttl,"name","slug","display_name","email","type","id","active"},
 * kept in the cache until exp + tc->stale_grace.
 * APR_EINVAL for an unusable tc, ttl <= 0, no user name or strings that are not UTF-8; APR_ENOSPC when the
 * value would exceed BB_CACHE_MAX_VALUE; otherwise what the cache's store returns. */
apr_status_t bb_tokencache_store_valid(apr_pool_t *p, const bb_tokencache_t *tc, const char *token,
                                       const bb_user_t *user, apr_int64_t now, apr_int64_t ttl);

/* Remembers for ttl seconds (the glue uses 30) that Bitbucket refused the token, in this process's memo only, never
 * in the shared cache: anyone can send tokens nobody issued, and refusals there would push out what security rests
 * on (logout marks, grants). With a stale_grace, the token's valid record is removed from the shared cache, so
 * that bb_tokencache_lookup_stale finds it nowhere any more. APR_EINVAL for an unusable tc or ttl <= 0, APR_ENOTIMPL
 * without a memo. */
apr_status_t bb_tokencache_store_invalid(apr_pool_t *p, const bb_tokencache_t *tc, const char *token,
                                         apr_int64_t now, apr_int64_t ttl);

/* Remembers, in this process, the identity details (bb_user_t) of a user Bitbucket confirmed (with a token of theirs:
 * never what a client sent alone) until `expires`, so that another token of theirs needs only whoami to name its
 * owner. Nothing for a NULL tc->users. */
void bb_tokencache_remember_user(apr_pool_t *p, const bb_tokencache_t *tc, const bb_user_t *user,
                                 apr_int64_t expires);

/* The user of that name remembered at unix time now (strings in pool p), or NULL. */
bb_user_t *bb_tokencache_known_user(apr_pool_t *p, const bb_tokencache_t *tc, const char *name, apr_int64_t now);

#endif
