/* fuzz_cache: what comes back from the shared cache, which whoever can write to a memcached or redis controls
 * (bb_tokencache_lookup, bb_seal_open), and the session key file (bb_keyring_parse). The first byte picks, mod 4:
 *   '0'  a raw token-cache value
 *   '1'  a token-cache record (JSON text) with a valid MAC, made here, so the record parser is reached
 *   '2'  a sealed value (bb_seal_open)
 *   '3'  key-file text (bb_keyring_parse) */
#include "fuzz.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "bb_util.h"
#include "bb_keys.h"
#include "bb_seal.h"
#include "bb_tokencache.h"

#define NOW    1700000000
#define TOKEN  "BBDC-alicePersonalReadToken0000000000000000001"
#define SECRET "0123456789abcdef0123456789abcdef"
#define KEYS   "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"

/* A cache that answers every lookup with one value. */
typedef struct {
    const unsigned char *value;
    size_t len;
} one_value_t;

static apr_status_t retrieve(void *baton, const unsigned char *key, unsigned int keylen, unsigned char *value,
                             unsigned int *vallen, apr_pool_t *p)
{
    const one_value_t *v = baton;

    if (v->len > *vallen) {
        return APR_ENOSPC;
    }
    memcpy(value, v->value, v->len);
    *vallen = (unsigned int)v->len;
    return APR_SUCCESS;
}

static void lookup(apr_pool_t *p, const unsigned char *value, size_t len)
{
    one_value_t v = { value, len };
    bb_cache_t cache = { &v, NULL, retrieve, NULL };
    bb_key_t server_key = { "fuzz", (const unsigned char *)SECRET, strlen(SECRET), NULL };
    bb_tokencache_t tc = { &cache, &server_key, NULL };
    bb_tokencache_entry_t *entry = NULL;
    bb_tokencache_result_t result = bb_tokencache_lookup(p, &tc, TOKEN, NOW, &entry);

    FUZZ_ASSERT((result == BB_TOKENCACHE_MISS) == (entry == NULL));
    if (entry) {
        FUZZ_ASSERT(entry->expires > NOW);
        FUZZ_ASSERT((result == BB_TOKENCACHE_HIT_VALID) == (entry->user != NULL));
        if (entry->user) {
            FUZZ_ASSERT(entry->user->name && *entry->user->name && entry->user->slug && entry->user->email
                        && entry->user->display_name && entry->user->type);
        }
    }
}

/* MAC | json, as bb_tokencache stores it for TOKEN. */
static void lookup_authentic(apr_pool_t *p, const char *json, size_t len)
{
    bb_cache_t cache = { NULL, NULL, retrieve, NULL };
    bb_key_t server_key = { "fuzz", (const unsigned char *)SECRET, strlen(SECRET), NULL };
    bb_tokencache_t tc = { &cache, &server_key, NULL };
    const char *key = bb_tokencache_key(p, &tc, TOKEN);
    size_t key_len = strlen(key) + 1;
    unsigned char *msg = apr_palloc(p, key_len + len), *value = apr_palloc(p, 32 + len);
    unsigned int mac_len = 0;

    memcpy(msg, key, key_len);
    memcpy(msg + key_len, json, len);
    if (HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), msg, key_len + len, value, &mac_len) == NULL) {
        abort();
    }
    memcpy(value + 32, json, len);
    lookup(p, value, 32 + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bb_sealer_t *sealer;
    static apr_pool_t *keep;
    apr_pool_t *p = fuzz_pool();
    const char *rest = apr_pstrmemdup(p, (const char *)data + (size > 0), size - (size > 0));
    size_t rest_len = size - (size > 0);
    const char *err = NULL;
    apr_size_t len = 0;
    bb_keyring_t *ring;
    unsigned char *plain;

    if (sealer == NULL) {
        FUZZ_KEEP_BEGIN();
        keep = fuzz_pool();
        sealer = bb_sealer_create(keep, bb_keyring_parse(keep, KEYS, strlen(KEYS), &err));
        FUZZ_KEEP_END();
        if (sealer == NULL) {
            abort();
        }
    }
    switch (size ? data[0] % 4 : 0) {
    case 0:
        lookup(p, (const unsigned char *)rest, rest_len);
        break;
    case 1:
        lookup_authentic(p, rest, rest_len);
        break;
    case 2:
        plain = bb_seal_open(p, sealer, "oauth:key", rest, rest_len, &len);
        FUZZ_ASSERT(plain == NULL);   /* nothing forged without the key opens */
        break;
    default:
        ring = bb_keyring_parse(p, rest, rest_len, &err);
        FUZZ_ASSERT((ring == NULL) == (err != NULL));
        if (ring) {
            int i;
            FUZZ_ASSERT(ring->keys->nelts > 0);
            for (i = 0; i < ring->keys->nelts; i++) {
                const bb_key_t *k = &APR_ARRAY_IDX(ring->keys, i, bb_key_t);
                FUZZ_ASSERT(k->len >= BB_KEY_MIN_BYTES && strlen(k->kid) == 16);
            }
        }
        else {
            FUZZ_ASSERT(strstr(err, "line") != NULL || strstr(err, "no key") != NULL);
        }
        break;
    }
    apr_pool_destroy(p);
    return 0;
}
