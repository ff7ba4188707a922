/* bb_hmac: HMAC-SHA256 with the key schedule done once: an EVP_MAC_CTX template duplicated for each MAC. */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include "bb_hmac.h"

struct bb_hmac_key_t {
    EVP_MAC_CTX *ctx;              /* initialised with the key; never updated, only duplicated; NULL: one-shot */
    const unsigned char *secret;
    apr_size_t len;
};

static apr_status_t free_key(void *data)
{
    bb_hmac_key_t *key = data;

    EVP_MAC_CTX_free(key->ctx);
    key->ctx = NULL;
    return APR_SUCCESS;
}

bb_hmac_key_t *bb_hmac_key_create(apr_pool_t *p, const unsigned char *secret, apr_size_t len)
{
    bb_hmac_key_t *key = apr_pcalloc(p, sizeof(*key));
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    OSSL_PARAM params[2];

    key->secret = secret;
    key->len = len;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    key->ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac);             /* the context holds its own reference */
    if (key->ctx && !EVP_MAC_init(key->ctx, secret, len, params)) {
        EVP_MAC_CTX_free(key->ctx);
        key->ctx = NULL;
    }
    if (key->ctx) {
        apr_pool_cleanup_register(p, key, free_key, apr_pool_cleanup_null);
    }
    return key;
}

int bb_hmac_sha256(const bb_hmac_key_t *key, const void *data, apr_size_t len, unsigned char mac[BB_HMAC_LEN])
{
    EVP_MAC_CTX *ctx;
    size_t mac_len = 0;
    unsigned int one_shot_len = 0;
    int ok;

    if (key->ctx == NULL) {
        return HMAC(EVP_sha256(), key->secret, (int)key->len, data, len, mac, &one_shot_len) != NULL
               && one_shot_len == BB_HMAC_LEN;
    }
    ctx = EVP_MAC_CTX_dup(key->ctx);
    ok = ctx != NULL && EVP_MAC_update(ctx, data, len) && EVP_MAC_final(ctx, mac, &mac_len, BB_HMAC_LEN)
         && mac_len == BB_HMAC_LEN;
    EVP_MAC_CTX_free(ctx);
    return ok;
}
