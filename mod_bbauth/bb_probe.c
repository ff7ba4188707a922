/* bb_probe: live checks for the admin's setup page: Bitbucket reachable over verified TLS, its version, the OAuth endpoints there. */
#include <stdlib.h>
#include <string.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include "bb_probe.h"
#include "bb_oauth1.h"
#include "bb_oauth2.h"
#include "bb_url.h"

/* Longest product name and version shown. */
#define MAX_PRODUCT 40
#define MAX_VERSION 20

static const char *const OAUTH2_MISSING = "not found: OAuth 2 application links need Bitbucket 7.21 or later "
                                          "(use BBAuthOAuthVersion 1 before that)";
static const char *const OAUTH1_MISSING = "not found: is BBAuthBitbucketURL Bitbucket's base URL, with its "
                                          "context path?";

static bb_probe_t *probe_new(apr_pool_t *p, const char *what, const char *url)
{
    bb_probe_t *probe = apr_pcalloc(p, sizeof(*probe));

    probe->what = what;
    probe->url = bb_url_for_log(p, url);
    return probe;
}

/* s reduced to the characters in `keep`, at most max of them; NULL when nothing is left. */
static const char *reduce(apr_pool_t *p, const char *s, const char *keep, apr_size_t max)
{
    char *out = apr_palloc(p, max + 1);
    apr_size_t n = 0;

    for (; s && *s && n < max; s++) {
        if (apr_isalnum(*s) || strchr(keep, *s)) {
            out[n++] = *s;
        }
    }
    out[n] = '\0';
    return n ? out : NULL;
}

bb_probe_t *bb_probe_read_base(apr_pool_t *p, const char *url, const bb_http_response_t *resp,
                               const char **version)
{
    bb_probe_t *probe = probe_new(p, "Bitbucket base URL over verified TLS", url);
    json_t *props = NULL;
    const char *product;

    *version = NULL;
    if (resp->status == 200 && strcmp(resp->content_type, "application/json") == 0) {
        props = bb_json_parse(p, resp->body, resp->body_len);
    }
    if (!json_is_object(props)) {
        probe->detail = apr_psprintf(p, "%s instead of Bitbucket's application properties (JSON): is "
                                     "BBAuthBitbucketURL Bitbucket's base URL, with its context path?",
                                     resp->status == 200 ? "an unreadable answer" : bb_http_describe(p, resp));
        return probe;
    }
    product = reduce(p, bb_json_string(p, props, "displayName"), " -", MAX_PRODUCT);
    *version = reduce(p, bb_json_string(p, props, "version"), ".-", MAX_VERSION);
    probe->ok = 1;
    probe->detail = apr_psprintf(p, "%s %s answers", product ? product : "Bitbucket",
                                 *version ? *version : "(version not shown)");
    return probe;
}

bb_probe_t *bb_probe_read_endpoint(apr_pool_t *p, const char *what, const char *url, const bb_http_response_t *resp,
                                   const char *missing)
{
    bb_probe_t *probe = probe_new(p, what, url);

    if (resp->status == 404) {
        probe->detail = apr_psprintf(p, "HTTP 404: %s", missing);
        return probe;
    }
    if (resp->status >= 500) {
        probe->detail = apr_psprintf(p, "%s: Bitbucket failed; see its logs", bb_http_describe(p, resp));
        return probe;
    }
    probe->ok = 1;
    probe->detail = apr_psprintf(p, "present (a GET without credentials: HTTP %d)", resp->status);
    return probe;
}

/* GETs url without credentials; NULL with *probe filled when the request failed. */
static bb_http_response_t *fetch(apr_pool_t *p, const bb_http_opts_t *http, const char *url, const char *accept,
                                 bb_probe_t *probe)
{
    apr_table_t *headers = apr_table_make(p, 1);
    bb_http_response_t *resp = NULL;
    const char *errmsg = NULL;

    apr_table_setn(headers, "Accept", accept);
    if (bb_http_request(p, http, "GET", url, headers, NULL, NULL, &resp, &errmsg) != BB_OK) {
        probe->detail = errmsg;
        return NULL;
    }
    return resp;
}

bb_probe_t *bb_probe_base(apr_pool_t *p, const char *base_url, const bb_http_opts_t *http, const char **version)
{
    const char *url = bb_url_join(p, base_url, BB_PROBE_PROPERTIES_PATH);
    bb_probe_t *failed = probe_new(p, "Bitbucket base URL over verified TLS", url);
    bb_http_response_t *resp = fetch(p, http, url, "application/json", failed);

    *version = NULL;
    return resp ? bb_probe_read_base(p, url, resp, version) : failed;
}

static void probe_endpoint(apr_pool_t *p, apr_array_header_t *out, const char *base_url, const bb_http_opts_t *http,
                           const char *what, const char *path, const char *missing)
{
    const char *url = bb_url_join(p, base_url, path);
    bb_probe_t *failed = probe_new(p, what, url);
    bb_http_response_t *resp = fetch(p, http, url, "*/*", failed);

    APR_ARRAY_PUSH(out, bb_probe_t *) = resp ? bb_probe_read_endpoint(p, what, url, resp, missing) : failed;
}

apr_array_header_t *bb_probe_oauth_endpoints(apr_pool_t *p, const char *base_url, const bb_http_opts_t *http,
                                             int oauth_version)
{
    apr_array_header_t *out = apr_array_make(p, 3, sizeof(bb_probe_t *));

    if (oauth_version == 1) {
        probe_endpoint(p, out, base_url, http, "OAuth 1 request-token servlet", BB_OAUTH1_REQUEST_TOKEN_PATH,
                       OAUTH1_MISSING);
        probe_endpoint(p, out, base_url, http, "OAuth 1 authorize servlet", BB_OAUTH1_AUTHORIZE_PATH,
                       OAUTH1_MISSING);
        probe_endpoint(p, out, base_url, http, "OAuth 1 access-token servlet", BB_OAUTH1_ACCESS_TOKEN_PATH,
                       OAUTH1_MISSING);
    }
    else {
        probe_endpoint(p, out, base_url, http, "OAuth 2 authorize endpoint", BB_OAUTH2_AUTHORIZE_PATH,
                       OAUTH2_MISSING);
        probe_endpoint(p, out, base_url, http, "OAuth 2 token endpoint", BB_OAUTH2_TOKEN_PATH, OAUTH2_MISSING);
    }
    return out;
}

int bb_probe_version_at_least(const char *version, int major, int minor)
{
    char *end;
    long have_major, have_minor = 0;

    if (version == NULL || !apr_isdigit(*version)) {
        return -1;
    }
    have_major = strtol(version, &end, 10);
    if (*end == '.' && apr_isdigit(end[1])) {
        have_minor = strtol(end + 1, &end, 10);
    }
    return have_major > major || (have_major == major && have_minor >= minor);
}
