/* fuzz.h: what every libFuzzer target of the core includes: APR once, a pool per input, input splitting, oracles. */
#ifndef BB_FUZZ_H
#define BB_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_tables.h>
#include <sanitizer/lsan_interface.h>

/* A fresh pool for one input (destroy it at the end: ASan then sees use-after-free of pool memory). */
static inline apr_pool_t *fuzz_pool(void)
{
    static apr_pool_t *root = NULL;
    apr_pool_t *p = NULL;

    if (root == NULL) {
        if (apr_initialize() != APR_SUCCESS || apr_pool_create(&root, NULL) != APR_SUCCESS) {
            abort();
        }
    }
    if (apr_pool_create(&p, root) != APR_SUCCESS) {
        abort();
    }
    return p;
}

/* What a target sets up once and keeps for every input (key rings, a memo) lives in a pool that is never
 * destroyed; the OpenSSL contexts it holds are referenced only from pool memory, which APR may take with mmap
 * where LeakSanitizer does not look. So the set-up runs with leak detection off: between these two calls. */
#define FUZZ_KEEP_BEGIN() __lsan_disable()
#define FUZZ_KEEP_END()   __lsan_enable()

/* Reads an input from the front: lines for short fields, the rest for a body. */
typedef struct {
    const char *at;
    size_t left;
} fuzz_input_t;

/* The next line (without its '\n') as a pool string; "" once the input is used up. A NUL inside ends the C
 * string early, as it would for a header value. */
static inline const char *fuzz_line(apr_pool_t *p, fuzz_input_t *in)
{
    const char *nl = in->left ? memchr(in->at, '\n', in->left) : NULL;
    size_t len = nl ? (size_t)(nl - in->at) : in->left;
    const char *line = apr_pstrmemdup(p, in->at, len);

    in->at += len + (nl != NULL);
    in->left -= len + (nl != NULL);
    return line;
}

/* The rest as a pool copy with a NUL after it (the length is in *len, NULs inside are kept). */
static inline const char *fuzz_rest(apr_pool_t *p, fuzz_input_t *in, size_t *len)
{
    const char *rest = apr_pstrmemdup(p, in->at, in->left);

    *len = in->left;
    in->at += in->left;
    in->left = 0;
    return rest;
}

/* An oracle failed: a property the header promises does not hold. Crash so that libFuzzer keeps the input. */
#define FUZZ_ASSERT(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

/* 1 when s holds a byte < 0x20 or 0x7f. */
static inline int fuzz_has_control(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return 1;
        }
    }
    return 0;
}

#ifdef BB_HTTP_H
/* An answer from Bitbucket, as bb_http_request hands it over, read from the input:
 *   line 1  the status (digits; anything else is 200)
 *   line 2  the Content-Type header (reduced to the lower-case media type, or "", as bb_http does)
 *   line 3  the value of response header `header_name` (left out when empty)
 *   rest    the body (NULs kept, NUL-terminated) */
static inline bb_http_response_t *fuzz_response(apr_pool_t *p, fuzz_input_t *in, const char *header_name)
{
    bb_http_response_t *resp = apr_pcalloc(p, sizeof(*resp));
    const char *status = fuzz_line(p, in);
    const char *type = fuzz_line(p, in);
    const char *header = fuzz_line(p, in);
    char *media;
    size_t i;

    resp->status = *status ? atoi(status) : 200;
    type += strspn(type, " \t");
    media = apr_pstrmemdup(p, type, strcspn(type, "; \t"));
    for (i = 0; media[i]; i++) {
        media[i] = (char)apr_tolower(media[i]);
        if (!apr_isalnum(media[i]) && strchr("!#$%&'*+-.^_`|~/", media[i]) == NULL) {
            media = "";
            break;
        }
    }
    resp->content_type = strlen(media) <= 100 ? media : "";
    resp->headers = apr_table_make(p, 2);
    if (*header) {
        apr_table_addn(resp->headers, header_name, header);
    }
    resp->body = fuzz_rest(p, in, &resp->body_len);
    return resp;
}
#endif

#endif
