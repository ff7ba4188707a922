/* bb_pkey: private keys from PEM files: read as root at startup, encrypted and public-only files refused clearly. */
#include <string.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include "bb_pkey.h"

static apr_status_t pkey_cleanup(void *pkey)
{
    EVP_PKEY_free(pkey);
    return APR_SUCCESS;
}

static apr_status_t bio_cleanup(void *bio)
{
    BIO_free(bio);
    return APR_SUCCESS;
}

BIO *bb_pool_bio(apr_pool_t *p, const char *data, apr_size_t len)
{
    BIO *bio = data ? BIO_new_mem_buf(data, (int)len) : BIO_new(BIO_s_mem());

    if (bio) {
        apr_pool_cleanup_register(p, bio, bio_cleanup, apr_pool_cleanup_null);
    }
    return bio;
}

/* PEM passphrase callback that never supplies one, so an encrypted key is refused instead of prompted for
 * (OpenSSL's default callback would read the terminal). Notes that a passphrase was wanted. */
static int refuse_passphrase(char *buf, int size, int rwflag, void *passphrase_wanted)
{
    *(int *)passphrase_wanted = 1;
    return -1;
}

/* 1 when the text holds a PEM public key (which is no use where a private key is wanted). */
static int holds_public_key(const char *pem, apr_size_t len)
{
    static const char marker[] = "PUBLIC KEY-----";
    apr_size_t i;

    for (i = 0; i + sizeof(marker) - 1 <= len; i++) {
        if (memcmp(pem + i, marker, sizeof(marker) - 1) == 0) {
            return 1;
        }
    }
    return 0;
}

EVP_PKEY *bb_pkey_from_pem(apr_pool_t *p, const char *pem, apr_size_t len, const char *name, const char **err)
{
    int passphrase_wanted = 0;
    BIO *bio = len <= BB_PKEY_FILE_MAX ? bb_pool_bio(p, pem, len) : NULL;
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, refuse_passphrase, &passphrase_wanted) : NULL;

    /* The failed decoders' errors would otherwise stay in this thread's queue and confuse later TLS calls. */
    ERR_clear_error();
    if (pkey != NULL) {
        apr_pool_cleanup_register(p, pkey, pkey_cleanup, apr_pool_cleanup_null);
        return pkey;
    }
    if (passphrase_wanted) {
        *err = apr_psprintf(p, "%s: the key is encrypted; remove the passphrase (openssl pkey -in %s -out %s.plain) "
                            "and use the new file", name, name, name);
    }
    else if (len <= BB_PKEY_FILE_MAX && holds_public_key(pem, len)) {
        *err = apr_psprintf(p, "%s: no PEM private key found, only a public key (the private key file is needed)",
                            name);
    }
    else {
        *err = apr_psprintf(p, "%s: no PEM private key found (expected \"-----BEGIN PRIVATE KEY-----\" or "
                            "\"-----BEGIN RSA PRIVATE KEY-----\")", name);
    }
    return NULL;
}

static const char *cannot_read(apr_pool_t *p, const char *path, apr_status_t rv)
{
    char reason[120];
    return apr_psprintf(p, "%s: cannot read the key file: %s", path, apr_strerror(rv, reason, sizeof(reason)));
}

/* The whole file, NUL-terminated, or NULL with *err. */
static char *read_key_file(apr_pool_t *p, const char *path, apr_size_t *len, const char **err)
{
    apr_file_t *file;
    apr_finfo_t info;
    char *text = NULL;
    apr_status_t rv = apr_file_open(&file, path, APR_FOPEN_READ | APR_FOPEN_BINARY, APR_FPROT_OS_DEFAULT, p);

    if (rv != APR_SUCCESS) {
        *err = cannot_read(p, path, rv);
        return NULL;
    }
    rv = apr_file_info_get(&info, APR_FINFO_SIZE, file);
    if (rv == APR_SUCCESS && info.size <= BB_PKEY_FILE_MAX) {
        text = apr_palloc(p, (apr_size_t)info.size + 1);
        rv = apr_file_read_full(file, text, (apr_size_t)info.size, len);
    }
    apr_file_close(file);
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        *err = cannot_read(p, path, rv);
        return NULL;
    }
    if (text == NULL) {
        *err = apr_psprintf(p, "%s: %" APR_OFF_T_FMT " bytes is too large for a PEM key", path, info.size);
        return NULL;
    }
    text[*len] = '\0';
    return text;
}

EVP_PKEY *bb_pkey_load(apr_pool_t *p, const char *path, const char **err)
{
    apr_size_t len = 0;
    char *pem = read_key_file(p, path, &len, err);
    EVP_PKEY *pkey;

    if (pem == NULL) {
        return NULL;
    }
    pkey = bb_pkey_from_pem(p, pem, len, path, err);
    /* The pool outlives this call (it is the configuration pool): do not leave the key's text in it. */
    OPENSSL_cleanse(pem, len);
    return pkey;
}
