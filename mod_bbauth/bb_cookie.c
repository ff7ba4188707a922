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

/* The pair in [pair, pair_end) when its name is `name` (or, with whole_name 0, starts with it and is longer);
 * 0 otherwise or without '='. */
static int pair_named(apr_pool_t *p, const char *pair, const char *pair_end, const char *name, apr_size_t name_len,
                      int whole_name, bb_cookie_pair_t *out)
{
    const char *eq = memchr(pair, '=', (apr_size_t)(pair_end - pair));
    const char *name_end = eq, *value_start = eq ? eq + 1 : NULL, *value_end = pair_end;
    apr_size_t len;

    if (eq == NULL) {
        return 0;
    }
    trim_ows(&pair, &name_end);
    len = (apr_size_t)(name_end - pair);
    if ((whole_name ? len != name_len : len <= name_len) || memcmp(pair, name, name_len) != 0) {
        return 0;
    }
    trim_ows(&value_start, &value_end);
    out->name = whole_name ? name : apr_pstrmemdup(p, pair, len);
    out->value = pair_value(p, value_start, value_end);
    return 1;
}

/* The next pair at or after *cursor in the header that is named `name` (whole_name) or starts with it, moving
 * *cursor past it: 1 with *out filled, 0 at the end of the header. Each pair is looked at once, whatever the
 * number of cookies. */
static int next_pair_named(apr_pool_t *p, const char **cursor, const char *name, apr_size_t name_len,
                           int whole_name, bb_cookie_pair_t *out)
{
    const char *pair = *cursor;

    while (*pair) {
        const char *pair_end = strchr(pair, ';');
        int found;

        if (pair_end == NULL) {
            pair_end = pair + strlen(pair);
        }
        found = pair_named(p, pair, pair_end, name, name_len, whole_name, out);
        pair = *pair_end ? pair_end + 1 : pair_end;
        if (found) {
            *cursor = pair;
            return 1;
        }
    }
    *cursor = pair;
    return 0;
}

apr_array_header_t *bb_cookie_values(apr_pool_t *p, const char *cookie_header, const char *name)
{
    apr_array_header_t *values = apr_array_make(p, 1, sizeof(const char *));
    apr_size_t name_len = name ? strlen(name) : 0;
    const char *cursor = cookie_header;
    bb_cookie_pair_t found;

    while (cursor && name_len && next_pair_named(p, &cursor, name, name_len, 1, &found)) {
        APR_ARRAY_PUSH(values, const char *) = found.value;
    }
    return values;
}

apr_array_header_t *bb_cookie_pairs_with_prefix(apr_pool_t *p, const char *cookie_header, const char *prefix)
{
    apr_array_header_t *pairs = apr_array_make(p, 1, sizeof(bb_cookie_pair_t));
    apr_size_t prefix_len = prefix ? strlen(prefix) : 0;
    const char *cursor = cookie_header;
    bb_cookie_pair_t found;

    while (cursor && prefix_len && next_pair_named(p, &cursor, prefix, prefix_len, 0, &found)) {
        APR_ARRAY_PUSH(pairs, bb_cookie_pair_t) = found;
    }
    return pairs;
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

#define HOST_PREFIX   "__Host-"
#define SECURE_PREFIX "__Secure-"

static int has_prefix(const char *s, const char *prefix)
{
    return s && !strncmp(s, prefix, strlen(prefix));
}

const char *bb_cookie_prefix_problem(const char *name, const char *domain, const char *path, int secure)
{
    if (has_prefix(name, HOST_PREFIX)) {
        if (domain) {
            return "a __Host- cookie cannot have a Domain (BBAuthCookieDomain)";
        }
        if (!path || strcmp(path, "/")) {
            return "a __Host- cookie must have Path=/ (BBAuthCookiePath /)";
        }
    }
    if ((has_prefix(name, HOST_PREFIX) || has_prefix(name, SECURE_PREFIX)) && !secure) {
        return "a __Host- or __Secure- cookie must be Secure, which needs an https BBAuthRedirectURI";
    }
    return NULL;
}

/* A domain name that may take a Domain attribute: not an IP address. */
static int is_domain_name(const char *host)
{
    const char *c;

    if (!host || !*host || *host == '[' || strchr(host, ':')) {
        return 0;
    }
    for (c = host; *c; c++) {
        if (!((*c >= '0' && *c <= '9') || *c == '.')) {
            return 1;
        }
    }
    return 0;
}

static void add_scope(apr_array_header_t *scopes, const char *domain, const char *path)
{
    bb_cookie_attrs_t *scope;

    if (scopes->nelts >= BB_COOKIE_MAX_SCOPES) {
        return;
    }
    scope = (bb_cookie_attrs_t *)apr_array_push(scopes);
    memset(scope, 0, sizeof(*scope));
    scope->domain = domain;
    scope->path = path;
}

/* "/" and each directory prefix of path without its trailing '/': an array of const char *. */
static apr_array_header_t *path_prefixes(apr_pool_t *p, const char *path)
{
    apr_array_header_t *prefixes = apr_array_make(p, 4, sizeof(const char *));
    const char *slash;

    APR_ARRAY_PUSH(prefixes, const char *) = "/";
    for (slash = path && *path == '/' ? strchr(path + 1, '/') : NULL; slash; slash = strchr(slash + 1, '/')) {
        if (slash[-1] != '/') {
            APR_ARRAY_PUSH(prefixes, const char *) = apr_pstrmemdup(p, path, (apr_size_t)(slash - path));
        }
    }
    return prefixes;
}

apr_array_header_t *bb_cookie_scopes(apr_pool_t *p, const char *name, const char *host, const char *path)
{
    apr_array_header_t *scopes = apr_array_make(p, 8, sizeof(bb_cookie_attrs_t));
    apr_array_header_t *paths = path_prefixes(p, path);
    const char *domain;
    int i;

    if (has_prefix(name, HOST_PREFIX)) {
        add_scope(scopes, NULL, "/");
        return scopes;
    }
    for (i = 0; i < paths->nelts; i++) {
        add_scope(scopes, NULL, APR_ARRAY_IDX(paths, i, const char *));
    }
    for (domain = is_domain_name(host) ? host : NULL; domain && strchr(domain, '.'); domain = strchr(domain, '.') + 1) {
        for (i = 0; i < paths->nelts; i++) {
            add_scope(scopes, domain, APR_ARRAY_IDX(paths, i, const char *));
        }
    }
    return scopes;
}
