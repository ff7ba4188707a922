/* bb_http: HTTPS requests to Bitbucket with libcurl: TLS always verified, timeouts, size caps, no redirects followed. */
#ifndef BB_HTTP_H
#define BB_HTTP_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include "bb_util.h"
#include "bb_breaker.h"

/* Largest response body accepted from Bitbucket. */
#define BB_HTTP_MAX_BODY (256 * 1024)

typedef struct {
    const char *ca_file;        /* where ca_pem came from, for messages, or NULL */
    long timeout_sec;           /* whole-request timeout, also the connect timeout; <= 0: 10 s */
    apr_size_t max_body;        /* 0: BB_HTTP_MAX_BODY */
    const char *user_agent;     /* NULL: "mod_bbauth" */
    const char *ca_pem;         /* extra CA certificates (PEM text, see bb_http_read_ca_file) trusted besides the
                                 * system store, or NULL */
    bb_breaker_t *breaker;      /* the limit of calls in flight and the circuit breaker every request passes, or
                                 * NULL */
    int fresh_connection;       /* 1: on a new connection, never a kept one (see bb_http_once) */
    const char *holder;         /* whose credential the request carries, for the breaker's 429 holds (see
                                 * BB_HOLDER_ANONYMOUS); NULL: the module's own calls */
} bb_http_opts_t;

typedef struct {
    int status;                 /* HTTP status */
    const char *content_type;   /* media type without parameters, lower-case, or "" */
    const char *body;           /* NUL-terminated */
    apr_size_t body_len;
    apr_table_t *headers;       /* response headers (names as sent; apr tables compare case-insensitively) */
} bb_http_response_t;

/* Told of every request bb_http_request sends: its URL, how it ended (for BB_OK, the answer's HTTP status; else
 * 0) and how long it took. Runs in the requesting thread; must not block. For metrics. */
typedef void bb_http_observer_fn(const char *url, bb_status_t status, int http_status, apr_interval_time_t elapsed);
/* Sets the observer of every request of this process (NULL: none). At startup, before any request. */
void bb_http_set_observer(bb_http_observer_fn *observer);

/* Once per process, before any request (curl_global_init). */
apr_status_t bb_http_global_init(void);

/* Idle connections each process keeps to Bitbucket, and how long (seconds) an idle one may be reused. */
#define BB_HTTP_MAX_CONNECTIONS 16
#define BB_HTTP_MAX_IDLE_SEC    15

/* Once per (child) process, after fork: from then on the requests of all its threads share libcurl's connection
 * cache, TLS sessions and DNS cache (one curl share per set of extra CA certificates, so that a connection
 * verified against one BBAuthCAFile is never reused for a server trusting another), with at most
 * BB_HTTP_MAX_CONNECTIONS connections kept and none reused after BB_HTTP_MAX_IDLE_SEC idle. Everything is
 * released with pool p. Without it (or when it fails) every request opens a connection of its own. */
apr_status_t bb_http_child_init(apr_pool_t *p);

/* The PEM text of a CA file (at most 1 MiB, at least one certificate), for opts->ca_pem: read once at startup, so
 * the file may be readable by root alone. NULL with *err ("cannot read <path> (<why>)", "... holds no PEM
 * certificate ...") otherwise. */
const char *bb_http_read_ca_file(apr_pool_t *p, const char *path, const char **err);

/* Sends one request. headers: extra request headers (may be NULL). body: request body or NULL; with a body,
 * body_type is its Content-Type. Only https URLs are fetched, always with certificate and host-name verification
 * (the system's CAs plus opts->ca_pem), TLS 1.2 or later; redirects are returned, not followed.
 * Returns BB_OK with *resp for any HTTP status. Otherwise *resp is NULL and *errmsg is one line,
 * "<METHOD> <url without query>: <cause>: <what to check>", with:
 *   BB_UNAVAILABLE   DNS, connect, TLS (untrusted certificate, wrong host name), timeout, broken connection, and
 *                    requests not sent at all (a non-https URL, a header with a control character; opts->breaker
 *                    open: "... not sent (held back): circuit open ..."; "... not sent (held back here, ...": its
 *                    limits of calls in flight reached, or the holder held back by a 429);
 *   BB_BAD_RESPONSE  a body over max_body or headers over 100 lines / 64 KiB ("answer larger than N bytes (not an
 *                    answer Bitbucket gives: check ...)"). */
bb_status_t bb_http_request(apr_pool_t *p, const bb_http_opts_t *opts, const char *method, const char *url,
                            const apr_table_t *headers, const char *body, const char *body_type,
                            bb_http_response_t **resp, const char **errmsg);

/* A copy of opts for a request that must reach Bitbucket at most once: one that carries a single-use
 * authorization code or a refresh token that Bitbucket rotates. Such a request goes on a new connection: libcurl
 * sends a request again when a kept connection turns out to have died before the first byte of the answer, which
 * also happens when the server closed it after processing the request (Tomcat's keep-alive limits), and Bitbucket
 * refuses a code or refresh token it has seen (and may end the grant). The new connection is kept afterwards. */
bb_http_opts_t *bb_http_once(apr_pool_t *p, const bb_http_opts_t *opts);

/* What to check when an answer cannot be Bitbucket's (not JSON, the wrong shape, too large, no such endpoint);
 * callers end their own "unusable answer" messages with it. */
#define BB_HTTP_NOT_BITBUCKET " (not an answer Bitbucket gives: check that BBAuthBitbucketURL is Bitbucket's base " \
                              "URL, context path included, and not a proxy or another server)"

/* A one-line description of an answer that is not what the caller expected, for errmsg, ending with what to check:
 *   3xx        "HTTP 302 redirect to <Location's host only> (... check for a two-factor plugin ...)"
 *   429        "HTTP 429: rate-limited by Bitbucket, retrying after N s (...)" (N from Retry-After, when given)
 *   text/html  "HTTP 200 HTML page (... check for a two-factor plugin ...)"; for an error status its hint (below)
 *   otherwise  "HTTP 500 (application/json)", or "HTTP 500" without a content type, then what to check: 5xx
 *              "(Bitbucket failed: check its log ...)", 401/403 "(refused without saying why: check ... proxy ...)",
 *              any other status BB_HTTP_NOT_BITBUCKET.
 * Never includes the body, nor the Location's path or query. resp->headers may be NULL. */
const char *bb_http_describe(apr_pool_t *p, const bb_http_response_t *resp);

/* Whether an error message is bb_http_request's for a call its breaker held back (circuit open, or the limit of
 * calls in flight reached): the state was logged once already, so callers may log each such refusal at a lower
 * level. NULL is 0. */
int bb_http_held_back(const char *errmsg);

/* Whether an error message is for a call held back by this server itself (its limits of calls in flight, or a 429's
 * hold of the holder), not because Bitbucket failed: no reason to serve a stale verdict. NULL is 0. */
int bb_http_held_here(const char *errmsg);

/* Whether it is for a call Bitbucket answered 429 (bb_http_describe's line), or one held back because it answered
 * 429 for the same holder before: the caller is over its own rate limit, Bitbucket did not fail. NULL is 0. */
int bb_http_rate_limited(const char *errmsg);

/* Whether an error message carries bb_http_describe's two-factor hint: Bitbucket answered a page or a redirect
 * where the protocol wants data, so the user's page can name the likely cause too. NULL is 0. */
int bb_http_is_foreign_page(const char *errmsg);

#endif
