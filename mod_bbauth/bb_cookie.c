/* bb_cookie: reads the values of one cookie name out of a Cookie header and writes Set-Cookie header values. */
#include <string.h>
#include <apr_strings.h>
#include "bb_cookie.h"

#define EXPIRES_IN_THE_PAST "Thu, 01 Jan 1970 00:00:00 GMT"

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Narrows [*start, *end) to exclude the optional whitespace at either end. */
static void trim_ows(const char **start, const char **end)
{
    while (*start < *end && is_ows(**start)) {
        (*start)++;
    }
    while (*end > *start && is_ows((*end)[-1])) {
        (*end)--;
    }
}

/* The value in [start, end), without the double quotes RFC 6265 allows around it. */
static const char *pair_value(apr_pool_t *p, const char *start, const char *end)
{
    if (end - start >= 2 && *start == '"' && end[-1] == '"') {
        start++;
        end--;
    }
    return apr_pstrmemdup(p, start, (apr_size_t)(end - start));
}

/* The value of the pair in [pair, pair_end) when its name is exactly `name`; NULL otherwise or without '='. */
static const char *pair_value_of(apr_pool_t *p, const char *pair, const char *pair_end, const char *name,
                                 apr_size_t name_len)
{
    const char *eq = memchr(pair, '=', (apr_size_t)(pair_end - pair));
    const char *name_end = eq, *value_start = eq ? eq + 1 : NULL, *value_end = pair_end;

    if (eq == NULL) {
        return NULL;
    }
    trim_ows(&pair, &name_end);
    if ((apr_size_t)(name_end - pair) != name_len || memcmp(pair, name, name_len) != 0) {
        return NULL;
    }
    trim_ows(&value_start, &value_end);
    return pair_value(p, value_start, value_end);
}

apr_array_header_t *bb_cookie_values(apr_pool_t *p, const char *cookie_header, const char *name)
{
    apr_array_header_t *values = apr_array_make(p, 1, sizeof(const char *));
    apr_size_t name_len = name ? strlen(name) : 0;
    const char *pair = cookie_header;

    if (cookie_header == NULL || name_len == 0) {
        return values;
    }
    /* One pass over the header: each pair is looked at once, whatever the number of cookies. */
    while (*pair && values->nelts < BB_COOKIE_MAX_SAME_NAME) {
        const char *pair_end = strchr(pair, ';');
        const char *value;

        if (pair_end == NULL) {
            pair_end = pair + strlen(pair);
        }
        value = pair_value_of(p, pair, pair_end, name, name_len);
        if (value != NULL) {
            APR_ARRAY_PUSH(values, const char *) = value;
        }
        pair = *pair_end ? pair_end + 1 : pair_end;
    }
    return values;
}

/* RFC 7230 token: what a cookie name may consist of. */
static int is_token_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?={}", c) == NULL;
}

/* RFC 6265 cookie-octet: printable ASCII except space, '"', ',', ';' and '\'. */
static int is_cookie_octet(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != ',' && c != ';' && c != '\\';
}

/* RFC 6265 attribute value (Path, Domain, SameSite): no control characters and no ';'. */
static int is_attr_char(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != ';';
}

/* 1 when s is NULL or every character passes the test. */
static int all_chars(const char *s, int (*test)(unsigned char))
{
    for (; s && *s; s++) {
        if (!test((unsigned char)*s)) {
            return 0;
        }
    }
    return 1;
}

char *bb_cookie_make(apr_pool_t *p, const char *name, const char *value, const bb_cookie_attrs_t *attrs)
{
    static const bb_cookie_attrs_t no_attrs = { NULL, NULL, NULL, -1, 0, 0 };
    const bb_cookie_attrs_t *a = attrs ? attrs : &no_attrs;

    /* A header value is built from these: anything that could end an attribute or the header is refused. */
    if (name == NULL || *name == '\0' || value == NULL || !all_chars(name, is_token_char)
        || !all_chars(value, is_cookie_octet) || !all_chars(a->path, is_attr_char)
        || !all_chars(a->domain, is_attr_char) || !all_chars(a->same_site, is_attr_char)) {
        return NULL;
    }
    return apr_pstrcat(p, name, "=", value,
                       a->path ? "; Path=" : "", a->path ? a->path : "",
                       a->domain ? "; Domain=" : "", a->domain ? a->domain : "",
                       a->max_age >= 0 ? "; Max-Age=" : "", a->max_age >= 0 ? apr_ltoa(p, a->max_age) : "",
                       a->max_age == 0 ? "; Expires=" EXPIRES_IN_THE_PAST : "",
                       a->secure ? "; Secure" : "",
                       a->http_only ? "; HttpOnly" : "",
                       a->same_site ? "; SameSite=" : "", a->same_site ? a->same_site : "",
                       NULL);
}
