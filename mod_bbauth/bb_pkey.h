/* bb_pkey: private keys from PEM files (OpenSSL EVP_PKEY owned by a pool): read, refuse encrypted ones, say why. */
#ifndef BB_PKEY_H
#define BB_PKEY_H

#include <apr_pools.h>
#include <openssl/bio.h>
#include <openssl/evp.h>

/* A PEM key file is a few KB even for 16384-bit RSA; anything bigger is not a key. */
#define BB_PKEY_FILE_MAX (64 * 1024)

/* A memory BIO freed with the pool: over `len` bytes of data, or empty and writable when data is NULL. */
BIO *bb_pool_bio(apr_pool_t *p, const char *data, apr_size_t len);

/* The private key in PEM text, freed with pool p. NULL with *err naming `name` when the text holds none, only a
 * public key, or an encrypted one (never prompted for: the message says how to remove the passphrase). */
EVP_PKEY *bb_pkey_from_pem(apr_pool_t *p, const char *pem, apr_size_t len, const char *name, const char **err);

/* Reads the file at path (at most BB_PKEY_FILE_MAX bytes) and parses it with bb_pkey_from_pem; the file's text is
 * wiped from the pool afterwards. *err starts with the path. */
EVP_PKEY *bb_pkey_load(apr_pool_t *p, const char *path, const char **err);

#endif
