/* bb_keys: reads the session key file into a key ring (hex or base64 lines, kid from SHA-256) and derives purpose rings. */
#include <string.h>
#include <apr_file_io.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include "bb_util.h"
#include "bb_keys.h"

#define KID_BYTES      8                  /* 16 hex digits */
#define KEY_FILE_MAX   (64 * 1024)        /* a key file is a few lines; anything bigger is the wrong file */

/* kid: the first 16 hex digits of SHA-256 over the raw key bytes. Public: it only names the key. */
static const char *kid_of(apr_pool_t *p, const unsigned char *secret, apr_size_t len)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];

    SHA256(secret, len, digest);
    return bb_hex_encode(p, digest, KID_BYTES);
}

static void ring_add(apr_pool_t *p, bb_keyring_t *ring, const unsigned char *secret, apr_size_t len)
{
    bb_key_t *key = apr_array_push(ring->keys);

    key->kid = kid_of(p, secret, len);
    key->secret = secret;
    key->len = len;
    key->hmac = bb_hmac_key_create(p, secret, len);
}

static bb_keyring_t *ring_make(apr_pool_t *p, int nkeys)
{
    bb_keyring_t *ring = apr_pcalloc(p, sizeof(*ring));

    ring->keys = apr_array_make(p, nkeys, sizeof(bb_key_t));
    return ring;
}

static int is_hex_text(const char *s, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        if (!apr_isxdigit(s[i])) {
            return 0;
        }
    }
    return 1;
}

static unsigned char *hex_decode(apr_pool_t *p, const char *s, apr_size_t len, apr_size_t *out_len)
{
    unsigned char *out = apr_palloc(p, len / 2 + 1);
    apr_size_t i;

    for (i = 0; i < len / 2; i++) {
        int high = OPENSSL_hexchar2int((unsigned char)s[2 * i]);
        int low = OPENSSL_hexchar2int((unsigned char)s[2 * i + 1]);
        out[i] = (unsigned char)(high << 4 | low);
    }
    *out_len = len / 2;
    return out;
}

/* Base64 in either alphabet (not both mixed in one key), with or without '=' padding: normalised to unpadded
 * base64url for the strict decoder, which also rejects any other character and non-zero trailing bits. */
static unsigned char *base64_any_decode(apr_pool_t *p, const char *s, apr_size_t len, apr_size_t *out_len)
{
    char *digits = apr_pstrmemdup(p, s, len);
    unsigned char *secret;
    apr_size_t ndigits = len, i;
    int standard = 0, url_safe = 0;

    while (ndigits > 0 && len - ndigits < 2 && digits[ndigits - 1] == '=') {
        ndigits--;
    }
    if (ndigits < len && len % 4 != 0) {
        return NULL;                /* padded, but not to a multiple of 4 */
    }
    for (i = 0; i < ndigits; i++) {
        if (digits[i] == '+' || digits[i] == '/') {
            standard = 1;
            digits[i] = digits[i] == '+' ? '-' : '_';
        }
        else if (digits[i] == '-' || digits[i] == '_') {
            url_safe = 1;
        }
    }
    secret = standard && url_safe ? NULL : bb_base64url_decode(p, digits, ndigits, out_len);
    OPENSSL_cleanse(digits, len);
    return secret;
}

/* Decodes one trimmed, non-comment line into raw key bytes; NULL and *err on failure. */
static unsigned char *decode_key_line(apr_pool_t *p, const char *s, apr_size_t len, int lineno, apr_size_t *out_len,
                                      const char **err)
{
    unsigned char *secret;

    if (is_hex_text(s, len)) {
        /* An odd count is a hex key with a digit missing, not base64 that happens to use only hex letters. */
        if (len % 2 != 0) {
            *err = apr_psprintf(p, "line %d: odd number of hex digits", lineno);
            return NULL;
        }
        secret = hex_decode(p, s, len, out_len);
    }
    else {
        secret = base64_any_decode(p, s, len, out_len);
        if (secret == NULL) {
            *err = apr_psprintf(p, "line %d: neither hex nor base64", lineno);
            return NULL;
        }
    }
    if (*out_len < BB_KEY_MIN_BYTES) {
        *err = apr_psprintf(p, "line %d: key is only %" APR_SIZE_T_FMT " bytes; BBAuthSessionKey needs at least "
                            "%d random bytes per line (e.g. openssl rand -hex 32)", lineno, *out_len,
                            BB_KEY_MIN_BYTES);
        return NULL;
    }
    return secret;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

bb_keyring_t *bb_keyring_parse(apr_pool_t *p, const char *text, apr_size_t len, const char **err)
{
    bb_keyring_t *ring = ring_make(p, 2);       /* usually the current key and, during a rotation, the old one */
    const char *end = text + len, *line = text;
    int lineno = 0;

    while (line < end) {
        const char *eol = memchr(line, '\n', (apr_size_t)(end - line));
        const char *next = eol ? eol + 1 : end, *last = eol ? eol : end;
        unsigned char *secret;
        apr_size_t secret_len;

        lineno++;
        while (line < last && is_blank(*line)) {
            line++;
        }
        while (last > line && is_blank(last[-1])) {
            last--;
        }
        if (line < last && *line != '#') {
            secret = decode_key_line(p, line, (apr_size_t)(last - line), lineno, &secret_len, err);
            if (secret == NULL) {
                return NULL;
            }
            ring_add(p, ring, secret, secret_len);
        }
        line = next;
    }
    if (ring->keys->nelts == 0) {
        *err = "no key found";
        return NULL;
    }
    return ring;
}

/* Reads at most KEY_FILE_MAX bytes of the file into `scratch`; NULL and *err (in p, without the path) on failure. */
static char *read_key_file(apr_pool_t *p, apr_pool_t *scratch, const char *path, apr_size_t *len, const char **err)
{
    char *text = apr_palloc(scratch, KEY_FILE_MAX + 1);
    apr_file_t *file;
    apr_status_t rv;
    char errbuf[120];

    rv = apr_file_open(&file, path, APR_FOPEN_READ | APR_FOPEN_BINARY, APR_OS_DEFAULT, scratch);
    if (rv == APR_SUCCESS) {
        /* One byte more than allowed, to tell a file of exactly the limit from a bigger one. */
        rv = apr_file_read_full(file, text, KEY_FILE_MAX + 1, len);
        apr_file_close(file);
        if (rv == APR_EOF) {
            rv = APR_SUCCESS;
        }
    }
    if (rv != APR_SUCCESS) {
        *err = apr_pstrdup(p, apr_strerror(rv, errbuf, sizeof(errbuf)));
        return NULL;
    }
    if (*len > KEY_FILE_MAX) {
        *err = apr_psprintf(p, "larger than %d KiB, not a key file", KEY_FILE_MAX / 1024);
        return NULL;
    }
    return text;
}

bb_keyring_t *bb_keyring_load(apr_pool_t *p, const char *path, const char **err)
{
    apr_pool_t *scratch;
    apr_size_t len = 0;
    char *text;
    bb_keyring_t *ring = NULL;

    if (apr_pool_create(&scratch, p) != APR_SUCCESS) {
        *err = apr_psprintf(p, "key file %s: out of memory", path);
        return NULL;
    }
    text = read_key_file(p, scratch, path, &len, err);
    if (text) {
        ring = bb_keyring_parse(p, text, len, err);
        OPENSSL_cleanse(text, len);     /* the ring keeps the decoded keys; no copy of them in text form lingers */
    }
    apr_pool_destroy(scratch);
    if (ring == NULL) {
        *err = apr_psprintf(p, "key file %s: %s", path, *err);
    }
    return ring;
}

const bb_key_t *bb_keyring_find(const bb_keyring_t *ring, const char *kid)
{
    int i;

    if (ring == NULL || kid == NULL) {
        return NULL;
    }
    for (i = 0; i < ring->keys->nelts; i++) {
        const bb_key_t *key = &APR_ARRAY_IDX(ring->keys, i, bb_key_t);
        if (strcmp(key->kid, kid) == 0) {
            return key;
        }
    }
    return NULL;
}

bb_keyring_t *bb_keyring_with_signers(apr_pool_t *p, const bb_keyring_t *ring, const apr_array_header_t *signers)
{
    bb_keyring_t *copy;

    if (ring == NULL) {
        return NULL;
    }
    copy = apr_pmemdup(p, ring, sizeof(*ring));
    copy->signers = signers && signers->nelts > 0 ? signers : NULL;
    return copy;
}

bb_keyring_t *bb_keyring_derive(apr_pool_t *p, const bb_keyring_t *ring, const char *label)
{
    bb_keyring_t *derived;
    int i;

    if (ring == NULL || label == NULL) {
        return NULL;
    }
    derived = ring_make(p, ring->keys->nelts);
    for (i = 0; i < ring->keys->nelts; i++) {
        const bb_key_t *key = &APR_ARRAY_IDX(ring->keys, i, bb_key_t);
        bb_key_t *derived_key = apr_array_push(derived->keys);
        unsigned char *secret = apr_palloc(p, SHA256_DIGEST_LENGTH);
        unsigned int secret_len = 0;

        if (HMAC(EVP_sha256(), key->secret, (int)key->len, (const unsigned char *)label, strlen(label), secret,
                 &secret_len) == NULL) {
            return NULL;
        }
        derived_key->kid = key->kid;
        derived_key->secret = secret;
        derived_key->len = secret_len;
        derived_key->hmac = bb_hmac_key_create(p, secret, secret_len);
    }
    return derived;
}
