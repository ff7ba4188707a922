/* bb_seal: AES-256-GCM sealing and opening of values the server keeps in the shared cache (e.g. OAuth tokens). */
#include <string.h>
#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "bb_util.h"
#include "bb_seal.h"

#define SEAL_LABEL      "mod_bbauth seal v1"
#define SEAL_KEY_LEN    32                      /* AES-256; HMAC-SHA256 derivation gives exactly this */
#define SEAL_KID_LEN    16
#define SEAL_HEADER_LEN (1 + SEAL_KID_LEN)      /* version | kid */
#define SEAL_IV_LEN     12
#define SEAL_TAG_LEN    16
#define SEAL_OVERHEAD   (SEAL_HEADER_LEN + SEAL_IV_LEN + SEAL_TAG_LEN)

struct bb_sealer_t {
    const bb_keyring_t *ring;    /* derived keys, SEAL_KEY_LEN bytes each */
};

bb_sealer_t *bb_sealer_create(apr_pool_t *p, const bb_keyring_t *ring)
{
    bb_sealer_t *sealer;
    int i;

    if (ring == NULL || ring->keys->nelts == 0) {
        return NULL;
    }
    sealer = apr_pcalloc(p, sizeof(*sealer));
    sealer->ring = bb_keyring_derive(p, ring, SEAL_LABEL);
    for (i = 0; i < sealer->ring->keys->nelts; i++) {
        const bb_key_t *key = &APR_ARRAY_IDX(sealer->ring->keys, i, bb_key_t);
        if (key->len != SEAL_KEY_LEN || strlen(key->kid) != SEAL_KID_LEN) {
            return NULL;
        }
    }
    return sealer;
}

/* One AES-256-GCM pass over len bytes: encrypt writes the tag, decrypt checks it. The version and kid header
 * goes into the associated data before the caller's aad (fixed length, so the two cannot be confused).
 * Returns 1 on success; the context is freed before returning. */
static int gcm_pass(int encrypt, const unsigned char *key, const unsigned char *iv, const unsigned char *header,
                    const char *aad, const unsigned char *in, apr_size_t len, unsigned char *out,
                    unsigned char *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int outl = 0, finl = 0;
    int ok = ctx != NULL
        && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_IV_LEN, NULL) == 1
        && EVP_CipherInit_ex(ctx, NULL, NULL, key, iv, encrypt) == 1
        && EVP_CipherUpdate(ctx, NULL, &outl, header, SEAL_HEADER_LEN) == 1
        && EVP_CipherUpdate(ctx, NULL, &outl, (const unsigned char *)aad, (int)strlen(aad)) == 1
        && EVP_CipherUpdate(ctx, out, &outl, in, (int)len) == 1
        && (encrypt || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tag) == 1)
        && EVP_CipherFinal_ex(ctx, out + outl, &finl) == 1
        && (!encrypt || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, tag) == 1);

    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

char *bb_seal(apr_pool_t *p, const bb_sealer_t *sealer, const char *aad, const void *plain, apr_size_t len)
{
    const bb_key_t *key;
    unsigned char *blob, *iv, *ciphertext;

    if (sealer == NULL || aad == NULL || len > BB_SEAL_MAX_LEN || strlen(aad) > BB_SEAL_MAX_LEN) {
        return NULL;
    }
    key = &APR_ARRAY_IDX(sealer->ring->keys, 0, bb_key_t);
    blob = apr_palloc(p, SEAL_OVERHEAD + len);
    blob[0] = BB_SEAL_VERSION;
    memcpy(blob + 1, key->kid, SEAL_KID_LEN);
    iv = blob + SEAL_HEADER_LEN;
    ciphertext = iv + SEAL_IV_LEN;
    /* A fresh random IV every time: GCM loses all confidentiality and integrity if an IV repeats under one key.
     * Random 96-bit IVs stay safe for well over 2^32 seals per key; key rotation starts the count again. */
    if (bb_random_bytes(iv, SEAL_IV_LEN) != APR_SUCCESS
        || !gcm_pass(1, key->secret, iv, blob, aad, plain, len, ciphertext, ciphertext + len)) {
        return NULL;
    }
    return bb_base64url_encode(p, blob, SEAL_OVERHEAD + len);
}

unsigned char *bb_seal_open(apr_pool_t *p, const bb_sealer_t *sealer, const char *aad, const char *sealed,
                            apr_size_t sealed_len, apr_size_t *len)
{
    apr_size_t blob_len, plain_len;
    unsigned char *blob, *ciphertext, *plain;
    const bb_key_t *key;

    if (sealer == NULL || aad == NULL || sealed == NULL || strlen(aad) > BB_SEAL_MAX_LEN) {
        return NULL;
    }
    blob = bb_base64url_decode(p, sealed, sealed_len, &blob_len);
    if (blob == NULL || blob_len < SEAL_OVERHEAD || blob_len - SEAL_OVERHEAD > BB_SEAL_MAX_LEN
        || blob[0] != BB_SEAL_VERSION) {
        return NULL;
    }
    key = bb_keyring_find(sealer->ring, apr_pstrmemdup(p, (const char *)blob + 1, SEAL_KID_LEN));
    if (key == NULL) {
        return NULL;
    }
    plain_len = blob_len - SEAL_OVERHEAD;
    ciphertext = blob + SEAL_HEADER_LEN + SEAL_IV_LEN;
    plain = apr_palloc(p, plain_len + 1);
    if (!gcm_pass(0, key->secret, blob + SEAL_HEADER_LEN, blob, aad, ciphertext, plain_len, plain,
                  ciphertext + plain_len)) {
        /* Under the right key but the wrong aad this holds the real secret, unauthenticated: do not leave it. */
        OPENSSL_cleanse(plain, plain_len);
        return NULL;
    }
    plain[plain_len] = '\0';
    if (len) {
        *len = plain_len;
    }
    return plain;
}
