/* bb_http: HTTPS requests to Bitbucket with libcurl: TLS always verified, timeouts, size caps, no redirects followed. */
#ifndef BB_HTTP_H
#define BB_HTTP_H

#include <apr_pools.h>
#include <apr_tables.h>
#include "bb_util.h"

/* Largest response body accepted from Bitbucket. */
#define BB_HTTP_MAX_BODY (256 * 1024)

typedef struct {
    const char *ca_file;        /* extra CA certificates (PEM) trusted besides the system store, or NULL */
    long timeout_sec;           /* whole-request timeout; the connect timeout is the same or less */
    apr_size_t max_body;        /* 0: BB_HTTP_MAX_BODY */
    const char *user_agent;     /* NULL: "mod_bbauth" */
} bb_http_opts_t;

typedef struct {
    int status;                 /* HTTP status */
    const char *content_type;   /* media type without parameters, lower-case, or "" */
    const char *body;           /* NUL-terminated */
    apr_size_t body_len;
    apr_table_t *headers;       /* response headers (names as sent; apr tables compare case-insensitively) */
} bb_http_response_t;

/* Once per process, before any request (curl_global_init). */
apr_status_t bb_http_global_init(void);

/* Sends one request. headers: extra request headers (may be NULL). body: request body or NULL; with a body,
 * body_type is its Content-Type. Only https URLs are fetched, always with certificate and host-name verification.
 * Returns BB_OK with *resp for any HTTP status; on
 * transport failure BB_UNAVAILABLE, on an oversized body BB_BAD_RESPONSE, each with *errmsg naming the URL
 * (without its query) and the cause. */
bb_status_t bb_http_request(apr_pool_t *p, const bb_http_opts_t *opts, const char *method, const char *url,
                            const apr_table_t *headers, const char *body, const char *body_type,
                            bb_http_response_t **resp, const char **errmsg);

/* A one-line description of an answer that is not what the caller expected, for errmsg: "HTTP 302 redirect to
 * <host> (an HTML page or a redirect where the protocol wants data: a two-factor plugin?)", "HTTP 500",
 * "text/html instead of JSON", ... Never includes the body. */
const char *bb_http_describe(apr_pool_t *p, const bb_http_response_t *resp);

#endif
