/* bb_cookie: reading named values out of a Cookie header and writing Set-Cookie headers. */
#ifndef BB_COOKIE_H
#define BB_COOKIE_H

#include <apr_pools.h>
#include <apr_tables.h>

/* Every value of cookie `name` in a Cookie header (RFC 6265 §4.2: "a=1; b=2"), in order, however many (junk
 * values of the name must not hide a good one; httpd's LimitRequestFieldSize bounds the header); an array of
 * const char * (empty when none, or for a NULL header or name). Names match exactly (case-sensitive); whitespace
 * around names and values is dropped, and so are double quotes around a value. Pairs without '=' are skipped.
 * One pass over the header, however long. */
apr_array_header_t *bb_cookie_values(apr_pool_t *p, const char *cookie_header, const char *name);

typedef struct {
    const char *name;
    const char *value;
} bb_cookie_pair_t;

/* Every cookie whose name starts with `prefix` (and is longer), in order, as bb_cookie_values reads them: an
 * array of bb_cookie_pair_t. */
apr_array_header_t *bb_cookie_pairs_with_prefix(apr_pool_t *p, const char *cookie_header, const char *prefix);

typedef struct {
    const char *path;          /* NULL: no Path */
    const char *domain;        /* NULL: host-only */
    const char *same_site;     /* "Lax", "Strict", "None" or NULL */
    long max_age;              /* seconds; < 0: session cookie (no Max-Age); 0: delete */
    int secure;
    int http_only;
} bb_cookie_attrs_t;

/* "name=value; Path=...; Domain=...; Max-Age=...; Expires=...(only when max_age == 0); Secure; HttpOnly; SameSite=..."
 * (attrs NULL: "name=value" alone). Nothing can be smuggled into the header: NULL when name is not an RFC 7230
 * token, when value (which may be "") holds anything but RFC 6265 cookie-octets (no controls, space, '"', ',',
 * ';', '\' or non-ASCII: base64url and JWS values pass), or when path, domain or same_site holds a control
 * character, a ';' or non-ASCII. */
char *bb_cookie_make(apr_pool_t *p, const char *name, const char *value, const bb_cookie_attrs_t *attrs);

/* Most (domain, path) scopes bb_cookie_scopes returns. */
#define BB_COOKIE_MAX_SCOPES 24

/* The scopes under which a cookie that a request for `host` and `path` carries may have been set, to delete them
 * all: host-only, then Domain= the host and each parent domain that still has a dot (none for an IP address or a
 * bracketed IPv6 host), each with Path= "/" and each directory prefix of path ("/a", "/a/b" for "/a/b/c");
 * at most BB_COOKIE_MAX_SCOPES. An array of bb_cookie_attrs_t with only domain and path set. A name with the
 * __Host- prefix can only have been set host-only with Path=/: that one scope alone. */
apr_array_header_t *bb_cookie_scopes(apr_pool_t *p, const char *name, const char *host, const char *path);

/* Why browsers would refuse the cookie name with these attributes (RFC 6265bis prefixes): "__Host-" needs Secure,
 * no Domain and Path=/; "__Secure-" needs Secure. NULL when they accept it. */
const char *bb_cookie_prefix_problem(const char *name, const char *domain, const char *path, int secure);

#endif
