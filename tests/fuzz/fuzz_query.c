/* fuzz_query: query-string and form parsing (bb_url_parse_query, bb_url_query_single, bb_url_decode), percent-
 * encoding round trips (bb_url_encode, bb_url_with_query, bb_url_form) and Cookie headers (bb_cookie_values). */
#include "fuzz.h"
#include "bb_url.h"
#include "bb_cookie.h"

static int check_entry(void *p, const char *key, const char *value)
{
    FUZZ_ASSERT(key && *key && value);
    return 1;
}

/* Whatever a value holds, encoding it into a URL and parsing the URL's query gives it back. */
static void check_round_trip(apr_pool_t *p, const char *value)
{
    char *url = bb_url_with_query(p, "https://bb.example.com/a?x=1", "v", value, "w", "2", (char *)NULL);
    const char *query = strchr(url, '?') + 1;
    apr_table_t *parsed = bb_url_parse_query(p, query);
    const char *back = bb_url_query_single(parsed, "v");
    const char *encoded = bb_url_encode(p, value);

    FUZZ_ASSERT(back && strcmp(back, value) == 0);
    FUZZ_ASSERT(strcmp(bb_url_query_single(parsed, "x"), "1") == 0);
    FUZZ_ASSERT(strcmp(bb_url_decode(p, encoded, strlen(encoded), 0), value) == 0);
    parsed = bb_url_parse_query(p, bb_url_form(p, "code", value, (char *)NULL));
    FUZZ_ASSERT(strcmp(bb_url_query_single(parsed, "code"), value) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *s = apr_pstrmemdup(p, (const char *)data, size);
    apr_table_t *query = bb_url_parse_query(p, s);
    apr_array_header_t *cookies;
    const char *names[] = { "state", "code", "error", "return", "oauth_token", "oauth_verifier" };
    const char *decoded;
    size_t i;

    apr_table_do(check_entry, p, query, NULL);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = bb_url_query_single(query, names[i]);
        FUZZ_ASSERT(v == NULL || apr_table_get(query, names[i]) == v);
    }
    decoded = bb_url_decode(p, (const char *)data, size, 1);
    FUZZ_ASSERT(decoded == NULL || strlen(decoded) <= size);
    decoded = bb_url_decode(p, (const char *)data, size, 0);
    FUZZ_ASSERT(decoded == NULL || strlen(decoded) <= size);
    check_round_trip(p, s);
    cookies = bb_cookie_values(p, s, "bbauth_session");
    /* No cap on their number (issue 19), but each takes its name and an "=" in the header. */
    FUZZ_ASSERT((size_t)cookies->nelts <= strlen(s) / (sizeof("bbauth_session=") - 1));
    for (i = 0; i < (size_t)cookies->nelts; i++) {
        const char *v = APR_ARRAY_IDX(cookies, i, const char *);
        FUZZ_ASSERT(v && strchr(v, ';') == NULL);
    }
    apr_pool_destroy(p);
    return 0;
}
