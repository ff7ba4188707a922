/* bb_cookie: reading named values out of a Cookie header and writing Set-Cookie headers. */
#ifndef BB_COOKIE_H
#define BB_COOKIE_H

#include <apr_pools.h>
#include <apr_tables.h>

/* Most cookies of one name that are looked at; a header with more is treated as carrying only the first ones. */
#define BB_COOKIE_MAX_SAME_NAME 8

/* Every value of cookie `name` in a Cookie header (RFC 6265 §4.2: "a=1; b=2"), in order, at most
 * BB_COOKIE_MAX_SAME_NAME; an array of const char * (empty when none, or for a NULL header or name). Names match
 * exactly (case-sensitive); whitespace around names and values is dropped, and so are double quotes around a
 * value. Pairs without '=' are skipped. One pass over the header, however long. */
apr_array_header_t *bb_cookie_values(apr_pool_t *p, const char *cookie_header, const char *name);

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

#endif
