/* bb_url: local return paths, RFC 3986 percent-encoding, query parsing and the checks of configured URLs. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_uri.h>
#include "bb_url.h"
#include "bb_util.h"

/* Bitbucket refuses to save a redirect URL longer than this. */
#define REDIRECT_URI_MAX 450

/* Characters that may appear in a URI at all (RFC 3986 unreserved, reserved and '%'). */
static const char uri_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%";

/* The byte a "%XX" at c stands for, or -1 when c is not a complete percent escape. */
static int percent_escape_at(const unsigned char *c)
{
    static const char hex[] = "0123456789abcdef";
    const char *hi, *lo;

    if (c[0] != '%' || !c[1] || !c[2]) {
        return -1;
    }
    hi = strchr(hex, apr_tolower(c[1]));
    lo = strchr(hex, apr_tolower(c[2]));
    return hi && lo ? (int)((hi - hex) << 4 | (lo - hex)) : -1;
}

/* What a decoding proxy or a lenient browser would turn into a separator or a control character. */
static int is_hostile_escape(int byte, int right_after_leading_slash)
{
    return byte >= 0 && (byte < 0x20 || byte == 0x7f || byte == '\\' || (right_after_leading_slash && byte == '/'));
}

const char *bb_url_safe_return(const char *candidate)
{
    const unsigned char *c;

    /* "//host" is protocol-relative: another site. */
    if (candidate == NULL || candidate[0] != '/' || candidate[1] == '/') {
        return NULL;
    }
    for (c = (const unsigned char *)candidate; *c; c++) {
        /* Browsers treat '\' as '/' ("/\host" is another site) and may map raw non-ASCII look-alikes such as
         * U+FF0F to '/': neither is allowed anywhere. Escaped controls, backslashes, and an escaped '/' that
         * would make "//host" once decoded are refused too. */
        if (*c < 0x21 || *c >= 0x7f || *c == '\\'
            || is_hostile_escape(percent_escape_at(c), c == (const unsigned char *)candidate + 1)) {
            return NULL;
        }
    }
    return (const char *)c - candidate <= BB_URL_MAX_RETURN ? candidate : NULL;
}

static int is_unreserved(unsigned char c)
{
    return apr_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

char *bb_url_encode(apr_pool_t *p, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, strlen(s) * 3 + 1);
    char *o = out;
    const unsigned char *c;

    for (c = (const unsigned char *)s; *c; c++) {
        if (is_unreserved(*c)) {
            *o++ = (char)*c;
        }
        else {
            *o++ = '%';
            *o++ = hex[*c >> 4];
            *o++ = hex[*c & 0x0f];
        }
    }
    *o = '\0';
    return out;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

char *bb_url_decode(apr_pool_t *p, const char *s, apr_size_t len, int plus_is_space)
{
    char *out = apr_palloc(p, len + 1);
    char *o = out;
    apr_size_t i;

    for (i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int high = i + 2 < len ? hex_value(s[i + 1]) : -1;
            int low = high >= 0 ? hex_value(s[i + 2]) : -1;
            if (low < 0) {
                return NULL;
            }
            c = (char)(high << 4 | low);
            i += 2;
        }
        else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        /* A NUL, decoded or raw, would silently cut the value short. */
        if (c == '\0') {
            return NULL;
        }
        *o++ = c;
    }
    *o = '\0';
    return out;
}

/* Adds one "key=value" piece to the table; pieces with an empty key or that do not decode are skipped. */
static void add_query_piece(apr_pool_t *p, apr_table_t *table, const char *piece, apr_size_t len)
{
    const char *equals = memchr(piece, '=', len);
    apr_size_t key_len = equals ? (apr_size_t)(equals - piece) : len;
    char *key, *value;

    if (key_len == 0) {
        return;
    }
    key = bb_url_decode(p, piece, key_len, 1);
    value = equals ? bb_url_decode(p, equals + 1, len - key_len - 1, 1) : apr_pstrdup(p, "");
    if (key && value) {
        apr_table_addn(table, key, value);
    }
}

apr_table_t *bb_url_parse_query(apr_pool_t *p, const char *query)
{
    apr_table_t *table = apr_table_make(p, 8);
    const char *piece = query;

    while (piece && *piece) {
        apr_size_t len = strcspn(piece, "&");
        add_query_piece(p, table, piece, len);
        piece += len + (piece[len] == '&');
    }
    return table;
}

static int count_value(void *count, const char *key, const char *value)
{
    ++*(int *)count;
    return 1;
}

const char *bb_url_query_single(const apr_table_t *query, const char *key)
{
    int count = 0;

    apr_table_do(count_value, &count, query, key, NULL);
    return count == 1 ? apr_table_get(query, key) : NULL;
}

/* "k1=v1&k2=v2" from the key, value, ..., NULL list, both percent-encoded; pairs with a NULL value left out. */
static char *encode_pairs(apr_pool_t *p, va_list pairs)
{
    apr_array_header_t *parts = apr_array_make(p, 8, sizeof(const char *));
    const char *key;

    while ((key = va_arg(pairs, const char *)) != NULL) {
        const char *value = va_arg(pairs, const char *);
        if (value) {
            APR_ARRAY_PUSH(parts, const char *) = apr_pstrcat(p, bb_url_encode(p, key), "=",
                                                              bb_url_encode(p, value), NULL);
        }
    }
    return apr_array_pstrcat(p, parts, '&');
}

char *bb_url_with_query(apr_pool_t *p, const char *url, ...)
{
    va_list pairs;
    char *query;

    va_start(pairs, url);
    query = encode_pairs(p, pairs);
    va_end(pairs);
    if (*query == '\0') {
        return apr_pstrdup(p, url);
    }
    return apr_pstrcat(p, url, strchr(url, '?') ? "&" : "?", query, NULL);
}

char *bb_url_form(apr_pool_t *p, ...)
{
    va_list pairs;
    char *form;

    va_start(pairs, p);
    form = encode_pairs(p, pairs);
    va_end(pairs);
    return form;
}

/* A port as written after ':' is 1 to 5 digits worth 1..65535 (apr_uri_parse accepts "-1" and wraps 99999). */
static int port_is_valid(const char *port_str)
{
    apr_size_t len = strlen(port_str);
    long port = strtol(port_str, NULL, 10);

    return len >= 1 && len <= 5 && strspn(port_str, "0123456789") == len && port >= 1 && port <= 65535;
}

/* The checks that base and redirect URLs share: an absolute http(s) URL with a host, no userinfo, no fragment,
 * no query. Returns the parsed URI or NULL with *err. */
static apr_uri_t *parse_absolute(apr_pool_t *p, const char *url, int allow_http, const char **err)
{
    apr_uri_t *uri = apr_pcalloc(p, sizeof(*uri));

    if (url == NULL || *url == '\0') {
        *err = "is empty";
        return NULL;
    }
    if (url[strspn(url, uri_chars)] != '\0') {
        *err = "contains a character that does not belong in a URL (space, control character, non-ASCII, "
               "backslash, quote, ...): percent-encode it, or use the punycode form of the host name";
        return NULL;
    }
    if (apr_uri_parse(p, url, uri) != APR_SUCCESS || uri->scheme == NULL || uri->hostinfo == NULL) {
        *err = "is not an absolute URL (scheme://host/path)";
        return NULL;
    }
    if (strcasecmp(uri->scheme, "https") != 0 && !(allow_http && strcasecmp(uri->scheme, "http") == 0)) {
        *err = allow_http ? "must be an http or https URL"
                          : "must be an https URL: Bitbucket switches its OAuth 2 provider off on http";
        return NULL;
    }
    if (uri->user || uri->password) {
        *err = "must not contain user:password@";
        return NULL;
    }
    if (uri->hostname == NULL || *uri->hostname == '\0') {
        *err = "has no host name";
        return NULL;
    }
    if (uri->port_str && !port_is_valid(uri->port_str)) {
        *err = "has an invalid port: a number from 1 to 65535 expected";
        return NULL;
    }
    if (uri->query || uri->fragment) {
        *err = "must not have a query string ('?') or a fragment ('#')";
        return NULL;
    }
    return uri;
}

const char *bb_url_check_base(apr_pool_t *p, const char *url, const char **err)
{
    char *base;
    apr_size_t len;

    if (parse_absolute(p, url, 0, err) == NULL) {
        return NULL;
    }
    base = apr_pstrdup(p, url);
    len = strlen(base);
    while (len > 0 && base[len - 1] == '/') {
        base[--len] = '\0';
    }
    return base;
}

static void lower_case(char *s)
{
    for (; *s; s++) {
        *s = (char)apr_tolower(*s);
    }
}

/* "scheme://host[:port]" in lower case, as a browser's Origin header has it: the port only when written and not
 * the scheme's default. */
static const char *origin_of(apr_pool_t *p, const apr_uri_t *uri)
{
    const char *host = strchr(uri->hostname, ':') ? apr_pstrcat(p, "[", uri->hostname, "]", NULL) : uri->hostname;
    int show_port = uri->port_str && uri->port != apr_uri_port_of_scheme(uri->scheme);
    char *origin = apr_pstrcat(p, uri->scheme, "://", host, show_port ? ":" : "", show_port ? uri->port_str : "",
                               NULL);

    lower_case(origin);
    return origin;
}

const char *bb_url_check_redirect(apr_pool_t *p, const char *url, const char **origin, const char **path,
                                  const char **err)
{
    apr_uri_t *uri = parse_absolute(p, url, 1, err);

    if (uri == NULL) {
        return NULL;
    }
    if (uri->path == NULL || *uri->path == '\0') {
        *err = "has no path: the module answers the callback at that path (e.g. https://www.example.com/bbauth/cb)";
        return NULL;
    }
    if (strlen(url) > REDIRECT_URI_MAX) {
        *err = apr_psprintf(p, "is longer than %d characters, which Bitbucket does not accept", REDIRECT_URI_MAX);
        return NULL;
    }
    *origin = origin_of(p, uri);
    *path = uri->path;
    return url;
}

char *bb_url_join(apr_pool_t *p, const char *base, const char *path)
{
    return apr_pstrcat(p, base, path, NULL);
}

char *bb_url_for_log(apr_pool_t *p, const char *url)
{
    const char *shown = url ? url : "";
    return bb_strip_controls(p, apr_pstrmemdup(p, shown, strcspn(shown, "?#")));
}
