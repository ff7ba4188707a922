/* bb_probe: live checks for the admin's setup page: Bitbucket reachable over verified TLS, its version, the OAuth endpoints there. */
#ifndef BB_PROBE_H
#define BB_PROBE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include "bb_http.h"

/* The application-properties resource: no login needed, names the product and its version. */
#define BB_PROBE_PROPERTIES_PATH "/rest/api/1.0/application-properties"

/* One check's outcome, for a table on the setup page. */
typedef struct {
    const char *what;       /* "Bitbucket base URL", "OAuth 2 token endpoint", ... */
    const char *url;        /* what was asked, without query */
    int ok;
    const char *detail;     /* one line: what answered, or what failed and what to check (never a body) */
} bb_probe_t;

/* GET <base>/rest/api/1.0/application-properties: reachable over verified TLS (opts as for every call), and
 * which product and version answer. *version is the version ("8.19.1") or NULL when not known. */
bb_probe_t *bb_probe_base(apr_pool_t *p, const char *base_url, const bb_http_opts_t *http, const char **version);

/* A GET without credentials on each endpoint of OAuth `oauth_version` (1 or 2), as bb_probe_endpoint sees it:
 * an array of bb_probe_t. */
apr_array_header_t *bb_probe_oauth_endpoints(apr_pool_t *p, const char *base_url, const bb_http_opts_t *http,
                                             int oauth_version);

/* 1 when version ("7.21.3", "8.0") is at least major.minor, 0 when lower, -1 when it cannot be read. */
int bb_probe_version_at_least(const char *version, int major, int minor);

/* Pure readers, for the unit tests. */

/* application-properties: ok for 200 JSON; detail "Bitbucket 8.19.1 answers" (displayName and version reduced
 * to safe characters); else what answered instead (bb_http_describe) and what to check. */
bb_probe_t *bb_probe_read_base(apr_pool_t *p, const char *url, const bb_http_response_t *resp,
                               const char **version);

/* An endpoint exists unless it answers 404 or a 5xx: the OAuth servlets answer a bare GET with 200, a redirect to
 * the login page, 400 or 405, but never 404. `missing` says what a 404 means. */
bb_probe_t *bb_probe_read_endpoint(apr_pool_t *p, const char *what, const char *url, const bb_http_response_t *resp,
                                   const char *missing);

#endif
