/* bb_memo: a per-process, mutex-protected, set-associative LRU table from a key string to a few strings and numbers. */
#include <string.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include "bb_util.h"
#include "bb_memo.h"

#define NULL_STRING 0xffffffffu
#define SLOT_SIZE   (BB_MEMO_MAX_KEY + BB_MEMO_MAX_VALUE + BB_MEMO_STRINGS * (sizeof(apr_uint32_t) + 1))
/* Entries a key may take: the least recently used of its set's ways makes room. */
#define WAYS        8

typedef struct {
    apr_uint64_t hash;             /* of the key: only a slot whose hash matches has its key compared */
    apr_uint64_t used;             /* the memo's clock when last read or written: the least is replaced */
    char *buf;                     /* key bytes, then the strings, each as a 4-byte length, its bytes and a NUL */
    apr_size_t capacity;           /* bytes buf holds */
    apr_size_t key_len;            /* 0: empty slot */
    apr_size_t value_len;
    apr_int64_t expires;
    apr_int64_t n[BB_MEMO_NUMBERS];
} memo_slot_t;

struct bb_memo_t {
    apr_pool_t *pool;              /* slot buffers come from here, under the lock */
#if APR_HAS_THREADS
    apr_thread_mutex_t *lock;
#endif
    memo_slot_t *slots;
    unsigned int nsets;
    unsigned int ways;
    apr_uint64_t seed;             /* random: which set a key falls in cannot be chosen from outside */
    apr_uint64_t clock;
};

bb_memo_t *bb_memo_create(apr_pool_t *p, unsigned int slots)
{
#if APR_HAS_THREADS
    bb_memo_t *memo = apr_pcalloc(p, sizeof(*memo));

    if (slots == 0 || apr_pool_create(&memo->pool, p) != APR_SUCCESS
        || apr_thread_mutex_create(&memo->lock, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS
        || apr_generate_random_bytes((unsigned char *)&memo->seed, sizeof(memo->seed)) != APR_SUCCESS) {
        return NULL;
    }
    memo->ways = slots < WAYS ? slots : WAYS;
    memo->nsets = (slots + memo->ways - 1) / memo->ways;
    memo->slots = apr_pcalloc(p, (apr_size_t)memo->nsets * memo->ways * sizeof(memo_slot_t));
    return memo;
#else
    return NULL;
#endif
}

/* Bytes at each end of a key that its hash reads: a key shorter than twice this is hashed whole. */
#define HASHED_END 32

static apr_uint64_t mix(apr_uint64_t h, const char *bytes, apr_size_t len)
{
    apr_uint64_t word;
    apr_size_t i;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&word, bytes + i, 8);
        h = (h ^ word) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    word = 0;
    memcpy(&word, bytes + i, len - i);
    return (h ^ word) * 0xc4ceb9fe1a85ec53ULL;
}

/* A hash, under a random seed, of the key's length and of its first and last HASHED_END bytes: both ends, so that
 * neither a part that many keys begin with (a cookie's JWS header) nor one they end with (an assertion's audience)
 * chooses the set alone, and every key the module uses differs at one end or the other (a cookie's signature, a
 * session id, a token's HMAC). Reading the ends only keeps a hit cheap: a cookie is some 400 bytes. */
static apr_uint64_t hash_of(const bb_memo_t *memo, const char *key, apr_size_t len)
{
    apr_uint64_t h = memo->seed ^ (len * 0x9e3779b97f4a7c15ULL);

    if (len <= 2 * HASHED_END) {
        h = mix(h, key, len);
    }
    else {
        h = mix(mix(h, key, HASHED_END), key + len - HASHED_END, HASHED_END);
    }
    return h ^ (h >> 29);
}

static memo_slot_t *set_of(const bb_memo_t *memo, apr_uint64_t hash)
{
    return &memo->slots[(hash % memo->nsets) * memo->ways];
}

/* The slot of the set that holds key, or NULL. Keys are compared in full and in constant time. */
static memo_slot_t *find(const bb_memo_t *memo, memo_slot_t *set, apr_uint64_t hash, const char *key,
                         apr_size_t key_len)
{
    unsigned int i;

    for (i = 0; i < memo->ways; i++) {
        if (set[i].key_len != 0 && set[i].hash == hash && bb_secure_equals(set[i].buf, set[i].key_len, key, key_len)) {
            return &set[i];
        }
    }
    return NULL;
}

/* Where key goes in its set: its own slot, else an empty one, else the least recently used. */
static memo_slot_t *room_for(const bb_memo_t *memo, memo_slot_t *set, apr_uint64_t hash, const char *key,
                             apr_size_t key_len)
{
    memo_slot_t *slot = find(memo, set, hash, key, key_len), *oldest = &set[0];
    unsigned int i;

    for (i = 0; !slot && i < memo->ways; i++) {
        if (set[i].key_len == 0) {
            return &set[i];
        }
        if (set[i].used < oldest->used) {
            oldest = &set[i];
        }
    }
    return slot ? slot : oldest;
}

int bb_memo_get(bb_memo_t *memo, apr_pool_t *p, const char *key, apr_size_t key_len, apr_int64_t now,
                bb_memo_value_t *out)
{
#if APR_HAS_THREADS
    memo_slot_t *slot;
    apr_uint64_t hash;
    const char *at;
    int i, hit;

    if (memo == NULL || key_len == 0 || key_len > BB_MEMO_MAX_KEY) {
        return 0;
    }
    hash = hash_of(memo, key, key_len);
    if (apr_thread_mutex_lock(memo->lock) != APR_SUCCESS) {
        return 0;
    }
    slot = find(memo, set_of(memo, hash), hash, key, key_len);
    hit = slot != NULL && now < slot->expires;
    if (hit) {
        slot->used = ++memo->clock;
        /* One copy of all the strings (stored with their NULs), then pointers into it. */
        at = apr_pmemdup(p, slot->buf + slot->key_len, slot->value_len);
        for (i = 0; i < BB_MEMO_STRINGS; i++) {
            apr_uint32_t len;
            memcpy(&len, at, sizeof(len));
            at += sizeof(len);
            out->s[i] = len == NULL_STRING ? NULL : at;
            at += len == NULL_STRING ? 0 : len + 1;
        }
        memcpy(out->n, slot->n, sizeof(out->n));
    }
    apr_thread_mutex_unlock(memo->lock);
    return hit;
#else
    return 0;
#endif
}

void bb_memo_put(bb_memo_t *memo, const char *key, apr_size_t key_len, apr_int64_t expires,
                 const bb_memo_value_t *value)
{
#if APR_HAS_THREADS
    apr_size_t value_len = 0, text_len = 0;
    memo_slot_t *slot;
    apr_uint64_t hash;
    char *at;
    int i;

    if (memo == NULL || key_len == 0 || key_len > BB_MEMO_MAX_KEY) {
        return;
    }
    for (i = 0; i < BB_MEMO_STRINGS; i++) {
        text_len += value->s[i] ? strlen(value->s[i]) : 0;
        value_len += sizeof(apr_uint32_t) + (value->s[i] ? strlen(value->s[i]) + 1 : 0);
    }
    if (text_len > BB_MEMO_MAX_VALUE) {
        return;
    }
    hash = hash_of(memo, key, key_len);
    if (apr_thread_mutex_lock(memo->lock) != APR_SUCCESS) {
        return;
    }
    slot = room_for(memo, set_of(memo, hash), hash, key, key_len);
    /* A slot gets just the room its first entry needs (a table of short keys stays small), and the largest
     * room any entry can need the first time more is wanted: each slot allocates at most twice. */
    if (slot->capacity < key_len + value_len) {
        slot->capacity = slot->buf == NULL ? key_len + value_len : SLOT_SIZE;
        slot->buf = apr_palloc(memo->pool, slot->capacity);
    }
    memcpy(slot->buf, key, key_len);
    at = slot->buf + key_len;
    for (i = 0; i < BB_MEMO_STRINGS; i++) {
        apr_uint32_t len = value->s[i] ? (apr_uint32_t)strlen(value->s[i]) : NULL_STRING;
        memcpy(at, &len, sizeof(len));
        at += sizeof(len);
        if (value->s[i]) {
            memcpy(at, value->s[i], len + 1);
            at += len + 1;
        }
    }
    slot->hash = hash;
    slot->used = ++memo->clock;
    slot->key_len = key_len;
    slot->value_len = value_len;
    slot->expires = expires;
    memcpy(slot->n, value->n, sizeof(slot->n));
    apr_thread_mutex_unlock(memo->lock);
#endif
}
