/* bb_memo: a per-process, mutex-protected, direct-mapped table from a key string to a few strings and numbers. */
#include <string.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include "bb_util.h"
#include "bb_memo.h"

#define NULL_STRING 0xffffffffu
#define SLOT_SIZE   (BB_MEMO_MAX_KEY + BB_MEMO_MAX_VALUE + BB_MEMO_STRINGS * (sizeof(apr_uint32_t) + 1))

typedef struct {
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
    unsigned int nslots;
};

bb_memo_t *bb_memo_create(apr_pool_t *p, unsigned int slots)
{
#if APR_HAS_THREADS
    bb_memo_t *memo = apr_pcalloc(p, sizeof(*memo));

    if (slots == 0 || apr_pool_create(&memo->pool, p) != APR_SUCCESS
        || apr_thread_mutex_create(&memo->lock, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        return NULL;
    }
    memo->slots = apr_pcalloc(p, slots * sizeof(memo_slot_t));
    memo->nslots = slots;
    return memo;
#else
    return NULL;
#endif
}

/* Bytes at the end of a key that choose its slot: the keys end in something random (a cookie's signature, a
 * token), and a collision costs nothing but a verification. */
#define HASHED_TAIL 32

/* FNV-1a over the length and the last HASHED_TAIL bytes. */
static memo_slot_t *slot_of(bb_memo_t *memo, const char *key, apr_size_t len)
{
    apr_uint64_t h = (14695981039346656037ULL ^ len) * 1099511628211ULL;
    apr_size_t i;

    for (i = len > HASHED_TAIL ? len - HASHED_TAIL : 0; i < len; i++) {
        h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
    }
    return &memo->slots[h % memo->nslots];
}

int bb_memo_get(bb_memo_t *memo, apr_pool_t *p, const char *key, apr_size_t key_len, apr_int64_t now,
                bb_memo_value_t *out)
{
#if APR_HAS_THREADS
    memo_slot_t *slot;
    const char *at;
    int i, hit;

    if (memo == NULL || key_len == 0 || key_len > BB_MEMO_MAX_KEY) {
        return 0;
    }
    slot = slot_of(memo, key, key_len);
    if (apr_thread_mutex_lock(memo->lock) != APR_SUCCESS) {
        return 0;
    }
    hit = slot->key_len != 0 && now < slot->expires && bb_secure_equals(slot->buf, slot->key_len, key, key_len);
    if (hit) {
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
    slot = slot_of(memo, key, key_len);
    if (apr_thread_mutex_lock(memo->lock) != APR_SUCCESS) {
        return;
    }
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
    slot->key_len = key_len;
    slot->value_len = value_len;
    slot->expires = expires;
    memcpy(slot->n, value->n, sizeof(slot->n));
    apr_thread_mutex_unlock(memo->lock);
#endif
}
