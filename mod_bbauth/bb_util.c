/* bb_util: base64url, hex, constant-time comparison, random values, pool-owned JSON and status names. */
#include <string.h>
#include <apr_strings.h>
#include <openssl/rand.h>
#include "bb_util.h"

const char *bb_status_name(bb_status_t status)
{
    switch (status) {
    case BB_OK:           return "ok";
    case BB_DENIED:       return "denied";
    case BB_NOT_FOUND:    return "not found";
    case BB_UNAVAILABLE:  return "unavailable";
    case BB_BAD_RESPONSE: return "bad response";
    }
    return "unknown";
}

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b64std_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *bb_base64url_encode(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    char *out = apr_palloc(p, (len + 2) / 3 * 4 + 1);
    char *o = out;
    apr_size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        *o++ = b64url_alphabet[data[i] >> 2];
        *o++ = b64url_alphabet[((data[i] & 0x03) << 4) | (data[i + 1] >> 4)];
        *o++ = b64url_alphabet[((data[i + 1] & 0x0f) << 2) | (data[i + 2] >> 6)];
        *o++ = b64url_alphabet[data[i + 2] & 0x3f];
    }
    if (len - i == 1) {
        *o++ = b64url_alphabet[data[i] >> 2];
        *o++ = b64url_alphabet[(data[i] & 0x03) << 4];
    }
    else if (len - i == 2) {
        *o++ = b64url_alphabet[data[i] >> 2];
        *o++ = b64url_alphabet[((data[i] & 0x03) << 4) | (data[i + 1] >> 4)];
        *o++ = b64url_alphabet[(data[i + 1] & 0x0f) << 2];
    }
    *o = '\0';
    return out;
}

/* Value of one base64 digit in the given alphabet, or -1. The alphabets share their first 62 digits. */
static int b64_digit(const char *alphabet, char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == alphabet[62] ? 62 : c == alphabet[63] ? 63 : -1;
}

/* Decodes unpadded digits of one alphabet. Rejects lengths of 1 mod 4 and non-zero trailing bits, so that
 * every byte string has exactly one accepted encoding. */
static unsigned char *b64_decode_digits(apr_pool_t *p, const char *alphabet, const char *s, apr_size_t slen,
                                        apr_size_t *out_len)
{
    unsigned char *out = apr_palloc(p, slen / 4 * 3 + 3);
    apr_size_t n = 0, i;
    unsigned int acc = 0;
    int bits = 0;

    if (slen % 4 == 1) {
        return NULL;
    }
    for (i = 0; i < slen; i++) {
        int d = b64_digit(alphabet, s[i]);
        if (d < 0) {
            return NULL;
        }
        acc = (acc << 6) | (unsigned int)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) {
        return NULL;
    }
    out[n] = '\0';
    if (out_len) {
        *out_len = n;
    }
    return out;
}

unsigned char *bb_base64url_decode(apr_pool_t *p, const char *s, apr_size_t slen, apr_size_t *out_len)
{
    return b64_decode_digits(p, b64url_alphabet, s, slen, out_len);
}

unsigned char *bb_base64_decode(apr_pool_t *p, const char *s, apr_size_t slen, apr_size_t *out_len)
{
    apr_size_t digits = slen;

    if (slen % 4 != 0) {
        return NULL;
    }
    while (digits > 0 && slen - digits < 2 && s[digits - 1] == '=') {
        digits--;
    }
    return b64_decode_digits(p, b64std_alphabet, s, digits, out_len);
}

char *bb_hex_encode(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *out = apr_palloc(p, len * 2 + 1);
    apr_size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = hex[data[i] >> 4];
        out[2 * i + 1] = hex[data[i] & 0x0f];
    }
    out[2 * len] = '\0';
    return out;
}

/* v, which the optimizer can no longer reason about: a loop that accumulates through this cannot stop early whatever
 * it has seen. In a register (an empty asm that claims to change it), where a volatile variable would be stored and
 * loaded again at each step. */
static apr_uint64_t opaque(apr_uint64_t v)
{
#if defined(__GNUC__)
    __asm__("" : "+r"(v));
    return v;
#else
    volatile apr_uint64_t kept = v;
    return kept;
#endif
}

/* The eight bytes at p + i as one word (any alignment). */
static apr_uint64_t word_at(const unsigned char *p, apr_size_t i)
{
    apr_uint64_t word;

    memcpy(&word, p + i, sizeof(word));
    return word;
}

int bb_secure_equals(const void *a, apr_size_t alen, const void *b, apr_size_t blen)
{
    const unsigned char *x = a, *y = b;
    apr_uint64_t diff = 0;
    apr_size_t i = 0;

    /* Lengths are not secret (they follow from the format); contents are compared in constant time, 32 bytes at a
     * time, then 8, then 1 (a session cookie is compared on every request that the memo answers). */
    if (alen != blen) {
        return 0;
    }
    for (; i + 32 <= alen; i += 32) {
        diff = opaque(diff | (word_at(x, i) ^ word_at(y, i)) | (word_at(x, i + 8) ^ word_at(y, i + 8))
                      | (word_at(x, i + 16) ^ word_at(y, i + 16)) | (word_at(x, i + 24) ^ word_at(y, i + 24)));
    }
    for (; i + 8 <= alen; i += 8) {
        diff = opaque(diff | (word_at(x, i) ^ word_at(y, i)));
    }
    for (; i < alen; i++) {
        diff = opaque(diff | (apr_uint64_t)(x[i] ^ y[i]));
    }
    return diff == 0;
}

int bb_secure_streq(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return 0;
    }
    return bb_secure_equals(a, strlen(a), b, strlen(b));
}

apr_status_t bb_random_bytes(unsigned char *buf, apr_size_t len)
{
    return RAND_bytes(buf, (int)len) == 1 ? APR_SUCCESS : APR_EGENERAL;
}

char *bb_random_token(apr_pool_t *p, apr_size_t nbytes)
{
    unsigned char buf[64];

    if (nbytes > sizeof(buf) || bb_random_bytes(buf, nbytes) != APR_SUCCESS) {
        return NULL;
    }
    return bb_base64url_encode(p, buf, nbytes);
}

static apr_status_t json_decref_cleanup(void *json)
{
    json_decref((json_t *)json);
    return APR_SUCCESS;
}

json_t *bb_json_pool_own(apr_pool_t *p, json_t *json)
{
    if (json) {
        apr_pool_cleanup_register(p, json, json_decref_cleanup, apr_pool_cleanup_null);
    }
    return json;
}

json_t *bb_json_parse(apr_pool_t *p, const char *text, apr_size_t len)
{
    json_error_t error;
    /* JSON_REJECT_DUPLICATES: a payload with two "sub" members is an attack, not a session. */
    json_t *json = json_loadb(text, len, JSON_REJECT_DUPLICATES, &error);
    return bb_json_pool_own(p, json);
}

const char *bb_json_string(apr_pool_t *p, const json_t *obj, const char *key)
{
    const json_t *member = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_string(member) ? apr_pstrdup(p, json_string_value(member)) : NULL;
}

char *bb_strip_controls(apr_pool_t *p, const char *s)
{
    char *out = apr_pstrdup(p, s ? s : "");
    char *o = out;
    const char *i;

    for (i = out; *i; i++) {
        unsigned char c = (unsigned char)*i;
        if (c >= 0x20 && c != 0x7f) {
            *o++ = *i;
        }
    }
    *o = '\0';
    return out;
}

apr_uint64_t bb_digest64(const char *s)
{
    apr_uint64_t h = 14695981039346656037ULL;
    const unsigned char *c = (const unsigned char *)(s ? s : "");

    for (; *c; c++) {
        h = (h ^ *c) * 1099511628211ULL;
    }
    return h ? h : 1;
}

#define ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(v0, v1, v2, v3) do { \
        v0 += v1; v1 = ROTL64(v1, 13); v1 ^= v0; v0 = ROTL64(v0, 32); \
        v2 += v3; v3 = ROTL64(v3, 16); v3 ^= v2; \
        v0 += v3; v3 = ROTL64(v3, 21); v3 ^= v0; \
        v2 += v1; v1 = ROTL64(v1, 17); v1 ^= v2; v2 = ROTL64(v2, 32); \
    } while (0)

static apr_uint64_t le64(const unsigned char *b)
{
    apr_uint64_t v = 0;
    int i;

    for (i = 7; i >= 0; i--) {
        v = (v << 8) | b[i];
    }
    return v;
}

apr_uint64_t bb_siphash(const unsigned char key[16], const void *data, apr_size_t len)
{
    const unsigned char *in = data, *end = in + len - len % 8;
    apr_uint64_t k0 = le64(key), k1 = le64(key + 8), m, last = (apr_uint64_t)len << 56;
    apr_uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    apr_uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    int i;

    for (; in != end; in += 8) {
        m = le64(in);
        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    for (i = (int)(len % 8) - 1; i >= 0; i--) {
        last |= (apr_uint64_t)in[i] << (8 * i);
    }
    v3 ^= last;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    for (i = 0; i < 4; i++) {
        SIPROUND(v0, v1, v2, v3);
    }
    return v0 ^ v1 ^ v2 ^ v3;
}
