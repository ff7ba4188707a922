/* fuzz_return_url: the return-URL check (bb_url_safe_return) with the properties an accepted path must have, and
 * the checks of configured URLs (bb_url_check_base, bb_url_check_redirect, bb_url_for_log). */
#include "fuzz.h"
#include <apr_uri.h>
#include "bb_url.h"

/* An accepted return path must stay on this site however it is read: as written, once percent-decoded (a
 * decoding proxy), and by a URL parser. */
static void check_accepted(apr_pool_t *p, const char *path)
{
    const char *c;
    const char *decoded;
    apr_uri_t uri;

    FUZZ_ASSERT(path[0] == '/' && path[1] != '/' && path[1] != '\\');
    FUZZ_ASSERT(strlen(path) <= BB_URL_MAX_RETURN);
    for (c = path; *c; c++) {
        FUZZ_ASSERT((unsigned char)*c > 0x20 && (unsigned char)*c < 0x7f && *c != '\\');
    }
    decoded = bb_url_decode(p, path, strlen(path), 0);
    if (decoded) {
        FUZZ_ASSERT(decoded[0] == '/' && decoded[1] != '/' && decoded[1] != '\\');
        FUZZ_ASSERT(!fuzz_has_control(decoded) && strchr(decoded, '\\') == NULL);
    }
    memset(&uri, 0, sizeof(uri));
    if (apr_uri_parse(p, path, &uri) == APR_SUCCESS) {
        FUZZ_ASSERT(uri.scheme == NULL && uri.hostname == NULL && uri.hostinfo == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *s = apr_pstrmemdup(p, (const char *)data, size);
    const char *err = NULL, *origin = NULL, *path = NULL, *safe, *base, *redirect;

    safe = bb_url_safe_return(s);
    if (safe) {
        FUZZ_ASSERT(safe == s);
        check_accepted(p, safe);
    }
    base = bb_url_check_base(p, s, &err);
    FUZZ_ASSERT(base != NULL || err != NULL);
    if (base) {
        FUZZ_ASSERT(strncasecmp(base, "https://", 8) == 0 && !fuzz_has_control(base));
        FUZZ_ASSERT(base[strlen(base) - 1] != '/');
    }
    err = NULL;
    redirect = bb_url_check_redirect(p, s, &origin, &path, &err);
    FUZZ_ASSERT(redirect != NULL || err != NULL);
    if (redirect) {
        FUZZ_ASSERT(origin && path && *path && strlen(redirect) <= 450 && !fuzz_has_control(origin));
    }
    FUZZ_ASSERT(!fuzz_has_control(bb_url_for_log(p, s)));
    apr_pool_destroy(p);
    return 0;
}
