/* bb_url: URL checks and building: local return paths, percent-encoding, query parsing and base-URL validation. */
#ifndef BB_URL_H
#define BB_URL_H

#include <apr_pools.h>
#include <apr_tables.h>

/* Longest return URL that is honoured. */
#define BB_URL_MAX_RETURN 2048

/* The candidate itself when it is a safe path on this site, else NULL (the caller then uses "/").
 * Safe: starts with exactly one '/', second character neither '/' nor '\', no '\' anywhere, no byte < 0x21
 * or == 0x7f or >= 0x80 (no controls, spaces or raw non-ASCII), no %-escaped control or '\\' anywhere, no "/%2F"
 * start, at most BB_URL_MAX_RETURN bytes. */
const char *bb_url_safe_return(const char *candidate);

/* RFC 3986 percent-encoding: unreserved characters (ALPHA DIGIT - . _ ~) kept, every other byte as %XX
 * (upper-case hex). This is also exactly the encoding OAuth 1 (RFC 5849 §3.6) requires. */
char *bb_url_encode(apr_pool_t *p, const char *s);

/* Decodes %XX and, when plus_is_space, '+' as space (form encoding). NULL on a malformed % sequence or %00. */
char *bb_url_decode(apr_pool_t *p, const char *s, apr_size_t len, int plus_is_space);

/* Parses "a=1&b=2" (query string or form body) into a table, keys and values decoded ('+' is space); repeated
 * keys are all kept (apr_table_add). Pieces that do not decode are skipped. NULL input gives an empty table. */
apr_table_t *bb_url_parse_query(apr_pool_t *p, const char *query);

/* The single value of `key` in a parsed query; NULL when absent or present more than once (ambiguous). Keys
 * compare case-insensitively (apr tables), so "State" counts as another "state". */
const char *bb_url_query_single(const apr_table_t *query, const char *key);

/* Appends "key=value" pairs, both percent-encoded, to url with '?' or '&' as fits. The varargs are
 * key, value, ..., NULL; a pair whose value is NULL is left out. */
char *bb_url_with_query(apr_pool_t *p, const char *url, ...);

/* "key=value&..." form body (application/x-www-form-urlencoded) from the same key, value, ..., NULL list, both
 * percent-encoded as bb_url_encode does (a space as %20, which every form decoder reads as a space). */
char *bb_url_form(apr_pool_t *p, ...);

/* Checks a Bitbucket base URL: https scheme, a host, optional port and context path (e.g. /bitbucket), no
 * userinfo, query or fragment, only characters that belong in a URL. Returns it without trailing '/', or NULL
 * with *err saying what is wrong (a phrase such as "must not contain user:password@", for "Directive: <err>"). */
const char *bb_url_check_base(apr_pool_t *p, const char *url, const char **err);

/* Checks an absolute redirect URI: http or https, a host, a path, no userinfo, query or fragment, at most 450
 * characters (Bitbucket's limit). On success returns url unchanged (Bitbucket compares it byte for byte) and sets
 * *origin to "scheme://host[:port]" in lower case as browsers send it in Origin (the port only when written and
 * not the scheme's default) and *path to the path as written (still percent-encoded); else NULL + *err. */
const char *bb_url_check_redirect(apr_pool_t *p, const char *url, const char **origin, const char **path,
                                  const char **err);

/* base (no trailing '/') + path (starting with '/'). */
char *bb_url_join(apr_pool_t *p, const char *base, const char *path);

/* The URL without its query string and fragment: what log lines may show. */
char *bb_url_for_log(apr_pool_t *p, const char *url);

#endif
