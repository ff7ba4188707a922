/* bb_memo: a small per-process table of results already verified (session cookies, token verdicts), shared by threads. */
#ifndef BB_MEMO_H
#define BB_MEMO_H

#include <apr_pools.h>

/* Longest key, and most bytes of strings in one value, that are remembered; longer ones are simply not. */
#define BB_MEMO_MAX_KEY     2048
#define BB_MEMO_MAX_VALUE   1024
#define BB_MEMO_STRINGS     6
#define BB_MEMO_NUMBERS     6

/* What is remembered for a key: a few strings (each may be NULL) and numbers. */
typedef struct {
    const char *s[BB_MEMO_STRINGS];
    apr_int64_t n[BB_MEMO_NUMBERS];
} bb_memo_value_t;

typedef struct bb_memo_t bb_memo_t;

/* A table of `slots` entries, made in pool p and living as long as it: set-associative (sets of 8 ways, or one set
 * of `slots` ways when fewer), the set chosen by a seeded hash of both ends of the key (its first and last 32
 * bytes: neither a shared prefix nor a shared suffix chooses it alone); a new key takes an empty way of its set,
 * else the least recently used one. A slot's buffer is taken from p the first time it is used (the entry's size,
 * then once at most BB_MEMO_MAX_KEY + BB_MEMO_MAX_VALUE and some bytes when a larger entry comes), so an idle table
 * costs little and a full one is bounded. Safe for the threads of one process; after a fork each process has its
 * own copy. NULL when the platform has no threads or no mutex could be made: callers then simply do the work every
 * time. */
bb_memo_t *bb_memo_create(apr_pool_t *p, unsigned int slots);

/* 1, with *out filled (strings copied into pool p), when key is remembered and now < its expiry; else 0.
 * Keys are compared in full and in constant time, so a lookup tells nothing about the keys remembered.
 * A NULL memo never has anything. */
int bb_memo_get(bb_memo_t *memo, apr_pool_t *p, const char *key, apr_size_t key_len, apr_int64_t now,
                bb_memo_value_t *out);

/* Remembers value for key until `expires` (unix time), replacing whatever was in its slot. Does nothing for a
 * NULL memo, a key over BB_MEMO_MAX_KEY or strings over BB_MEMO_MAX_VALUE bytes in all. */
void bb_memo_put(bb_memo_t *memo, const char *key, apr_size_t key_len, apr_int64_t expires,
                 const bb_memo_value_t *value);

#endif
