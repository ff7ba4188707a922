/* test_http: bb_http against an in-process TLS server on 127.0.0.1: trust, caps, redirects, failures, describe. */
#include "unit.h"
#include "fake_response.h"
#include "tls_server.h"
#include <signal.h>

/* One GET of `path` from a trusted test server that answers `answer` (a string literal): BB_OK expected, the
 * response returned and the URL fetched in *url. */
#define GET_ANSWER(p, answer, path, url) get_answer((p), (answer), sizeof(answer) - 1, (path), (url))
static bb_http_response_t *get_answer(apr_pool_t *p, const char *answer, apr_size_t len, const char *path,
                                      const char **url)
{
    bb_http_opts_t opts = { NULL, 2, 0, NULL, NULL, NULL, 0, NULL };
    bb_http_response_t *resp = NULL;
    const char *errmsg = NULL;
    server_t *s;

    make_pki();
    trust_test_ca(p, &opts);
    s = start_server(p, pki.good, answer, len);
    *url = url_of(p, s, path);
    assert_int_equal(bb_http_request(p, &opts, "GET", *url, NULL, NULL, NULL, &resp, &errmsg), BB_OK);
    stop_server(s);
    return resp;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (haystack == NULL || strstr(haystack, needle) == NULL) {
        fail_msg("\"%s\" does not contain \"%s\"", haystack ? haystack : "(null)", needle);
    }
}

/* ---- requests that succeed ---- */

static void test_get_with_extra_ca(void **state)
{
    apr_pool_t *p = *state;
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: Application/JSON; charset=UTF-8\r\n"
                                 "X-AUSERNAME: jane\r\nVary: X-AUSERNAME\r\nVary: X-AUSERID\r\n"
                                 "Content-Length: 11\r\nConnection: close\r\n\r\n{\"a\":\"b\"}\r\n";
    server_t *s;
    bb_http_opts_t opts = { NULL, 2, 0, NULL, NULL, NULL, 0, NULL };
    apr_table_t *headers = apr_table_make(p, 2);
    bb_http_response_t *resp = NULL;
    const char *errmsg = NULL;

    make_pki();
    trust_test_ca(p, &opts);
    s = start_server(p, pki.good, answer, sizeof(answer) - 1);
    apr_table_set(headers, "Authorization", "Bearer t0k");
    assert_int_equal(bb_http_request(p, &opts, "GET", url_of(p, s, "/rest/x?y=1"), headers, NULL, NULL, &resp,
                                     &errmsg), BB_OK);
    stop_server(s);
    assert_null(errmsg);
    assert_int_equal(resp->status, 200);
    assert_string_equal(resp->content_type, "application/json");
    assert_int_equal(resp->body_len, 11);
    assert_string_equal(resp->body, "{\"a\":\"b\"}\r\n");
    assert_string_equal(apr_table_get(resp->headers, "x-ausername"), "jane");
    assert_int_equal(apr_table_elts(resp->headers)->nelts, 6);
    assert_contains(s->request, "GET /rest/x?y=1 HTTP/1.1\r\n");
    assert_contains(s->request, "\r\nAuthorization: Bearer t0k\r\n");
    assert_contains(s->request, "\r\nUser-Agent: mod_bbauth\r\n");
}

static void test_post_form(void **state)
{
    apr_pool_t *p = *state;
    static const char answer[] = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    server_t *s;
    bb_http_opts_t opts = { NULL, 2, 0, "agent/1", NULL, NULL, 0, NULL };
    bb_http_response_t *resp = NULL;
    const char *errmsg = NULL;

    make_pki();
    trust_test_ca(p, &opts);
    s = start_server(p, pki.good, answer, sizeof(answer) - 1);
    assert_int_equal(bb_http_request(p, &opts, "POST", url_of(p, s, "/token"), NULL, "a=1&b=%20",
                                     "application/x-www-form-urlencoded", &resp, &errmsg), BB_OK);
    stop_server(s);
    assert_int_equal(resp->status, 201);
    assert_string_equal(resp->content_type, "");
    assert_string_equal(resp->body, "");
    assert_contains(s->request, "POST /token HTTP/1.1\r\n");
    assert_contains(s->request, "\r\nContent-Type: application/x-www-form-urlencoded\r\n");
    assert_contains(s->request, "\r\nUser-Agent: agent/1\r\n");
    assert_contains(s->request, "\r\n\r\na=1&b=%20");
}

/* A redirect is an answer like any other: returned, never followed (a two-factor page hides behind them). */
static void test_redirect_not_followed(void **state)
{
    apr_pool_t *p = *state;
    static const char answer[] = "HTTP/1.1 302 Found\r\nLocation: https://127.0.0.1:1/twofactor?t=x\r\n"
                                 "Content-Length: 0\r\nConnection: close\r\n\r\n";
    const char *url;
    bb_http_response_t *resp = GET_ANSWER(p, answer, "/token", &url);

    assert_int_equal(resp->status, 302);
    assert_string_equal(apr_table_get(resp->headers, "Location"), "https://127.0.0.1:1/twofactor?t=x");
}

/* Only the final response's headers are kept. */
static void test_headers_of_final_response(void **state)
{
    apr_pool_t *p = *state;
    static const char answer[] = "HTTP/1.1 100 Continue\r\nX-Early: 1\r\n\r\n"
                                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n"
                                 "Connection: close\r\n\r\njane";
    server_t *s;
    bb_http_opts_t opts = { NULL, 2, 0, NULL, NULL, NULL, 0, NULL };
    bb_http_response_t *resp = NULL;
    const char *errmsg = NULL;

    make_pki();
    trust_test_ca(p, &opts);
    s = start_server(p, pki.good, answer, sizeof(answer) - 1);
    assert_int_equal(bb_http_request(p, &opts, "GET", url_of(p, s, "/"), NULL, NULL, NULL, &resp, &errmsg), BB_OK);
    stop_server(s);
    assert_int_equal(resp->status, 200);
    assert_null(apr_table_get(resp->headers, "X-Early"));
    assert_string_equal(apr_table_get(resp->headers, "Content-Type"), "text/plain");
    assert_string_equal(resp->body, "jane");
}

/* ---- TLS failures ---- */

static bb_status_t request_to(apr_pool_t *p, X509 *cert, int trust_ca, const char *host, const char **errmsg)
{
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    server_t *s = start_server(p, cert, answer, sizeof(answer) - 1);
    bb_http_opts_t opts = { NULL, 2, 0, NULL, NULL, NULL, 0, NULL };
    bb_http_response_t *resp = NULL;
    bb_status_t status;

    if (trust_ca) {
        trust_test_ca(p, &opts);
    }
    *errmsg = NULL;
    status = bb_http_request(p, &opts, "GET", apr_psprintf(p, "https://%s:%d/w?code=SECRET", host, s->port), NULL,
                             NULL, NULL, &resp, errmsg);
    stop_server(s);
    if (status != BB_OK) {
        assert_null(resp);
        assert_null(strstr(*errmsg, "SECRET"));
    }
    return status;
}

static void test_untrusted_certificate(void **state)
{
    apr_pool_t *p = *state;
    const char *errmsg;

    make_pki();
    /* The system's CAs alone do not know the test CA. */
    assert_int_equal(request_to(p, pki.good, 0, "127.0.0.1", &errmsg), BB_UNAVAILABLE);
    assert_contains(errmsg, "TLS certificate not trusted (unable to get local issuer certificate): set BBAuthCAFile "
                            "to the CA that signed Bitbucket's certificate");
    assert_contains(errmsg, apr_psprintf(p, "GET https://127.0.0.1:"));
    /* BBAuthCAFile adds trust in its CA, not in anyone else. */
    assert_int_equal(request_to(p, pki.stranger, 1, "127.0.0.1", &errmsg), BB_UNAVAILABLE);
    assert_contains(errmsg, "TLS certificate not trusted (self-signed certificate)");
}

static void test_expired_certificate(void **state)
{
    apr_pool_t *p = *state;
    const char *errmsg;

    make_pki();
    assert_int_equal(request_to(p, pki.expired, 1, "127.0.0.1", &errmsg), BB_UNAVAILABLE);
    assert_contains(errmsg, "TLS certificate not valid now (certificate has expired)");
}

/* The certificate names IP 127.0.0.1 only: "localhost" reaches the same server under another name. */
static void test_host_name_mismatch(void **state)
{
    apr_pool_t *p = *state;
    const char *errmsg;

    make_pki();
    assert_int_equal(request_to(p, pki.good, 1, "localhost", &errmsg), BB_UNAVAILABLE);
    assert_contains(errmsg, "/w: the TLS certificate is not for this host name: BBAuthBitbucketURL must use");
    /* The same certificate is fine under its own name. */
    assert_int_equal(request_to(p, pki.good, 1, "127.0.0.1", &errmsg), BB_OK);
}

/* BBAuthCAFile is read at startup: a file without certificates is refused then; requests only use the PEM. */
static void test_ca_file(void **state)
{
    apr_pool_t *p = *state;
    bb_http_opts_t opts = { "/etc/x/ca.pem", 2, 0, NULL, "no certificate here", NULL, 0, NULL };
    server_t *s;
    bb_http_response_t *resp = NULL;
    const char *errmsg = NULL, *err = NULL;
    const char *dir;

    assert_null(bb_http_read_ca_file(p, "/nonexistent/ca.pem", &err));
    assert_contains(err, "cannot read /nonexistent/ca.pem (No such file or directory)");
    assert_int_equal(apr_temp_dir_get(&dir, p), APR_SUCCESS);
    assert_null(bb_http_read_ca_file(p, dir, &err));
    assert_contains(err, apr_pstrcat(p, "cannot read ", dir, " (", NULL));
    assert_null(bb_http_read_ca_file(p, "/etc/hostname", &err));
    assert_contains(err, "/etc/hostname holds no PEM certificate");

    make_pki();
    s = start_server(p, pki.good, "", 0);
    assert_int_equal(bb_http_request(p, &opts, "GET", url_of(p, s, "/"), NULL, NULL, NULL, &resp, &errmsg),
                     BB_UNAVAILABLE);
    stop_server(s);
    assert_contains(errmsg, "cannot use the CA certificates of BBAuthCAFile /etc/x/ca.pem");
}

/* ---- caps ---- */

static bb_status_t capped_request(apr_pool_t *p, const char *answer, apr_size_t len, apr_size_t max_body,
                                  const char **errmsg)
{
    server_t *s;
    bb_http_opts_t opts = { NULL, 2, max_body, NULL, NULL, NULL, 0, NULL };
    bb_http_response_t *resp = NULL;
    bb_status_t status;

    make_pki();
    trust_test_ca(p, &opts);
    s = start_server(p, pki.good, answer, len);
    *errmsg = NULL;
    status = bb_http_request(p, &opts, "GET", url_of(p, s, "/big"), NULL, NULL, NULL, &resp, errmsg);
    stop_server(s);
    return status;
}

static void test_body_cap(void **state)
{
    apr_pool_t *p = *state;
    const char *head_with_length = "HTTP/1.1 200 OK\r\nContent-Length: 3000\r\nConnection: close\r\n\r\n";
    const char *head_without_length = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
    char *body = apr_palloc(p, 3001);
    const char *answer;
    const char *errmsg;

    memset(body, 'a', 3000);
    body[3000] = '\0';
    /* Announced in Content-Length: */
    answer = apr_pstrcat(p, head_with_length, body, NULL);
    assert_int_equal(capped_request(p, answer, strlen(answer), 1000, &errmsg), BB_BAD_RESPONSE);
    assert_contains(errmsg, "/big: answer larger than 1000 bytes (not an answer Bitbucket gives: check");
    /* Not announced: */
    answer = apr_pstrcat(p, head_without_length, body, NULL);
    assert_int_equal(capped_request(p, answer, strlen(answer), 1000, &errmsg), BB_BAD_RESPONSE);
    assert_contains(errmsg, "/big: answer larger than 1000 bytes (not an answer Bitbucket gives: check");
    /* Exactly at the cap is fine. */
    body[1000] = '\0';
    answer = apr_pstrcat(p, head_without_length, body, NULL);
    assert_int_equal(capped_request(p, answer, strlen(answer), 1000, &errmsg), BB_OK);
}

static void test_header_cap(void **state)
{
    apr_pool_t *p = *state;
    const char *answer = "HTTP/1.1 200 OK\r\n";
    const char *errmsg;
    char *filler;
    int i;

    for (i = 0; i < 150; i++) {
        answer = apr_psprintf(p, "%sX-Filler-%d: x\r\n", answer, i);
    }
    answer = apr_pstrcat(p, answer, "Content-Length: 0\r\nConnection: close\r\n\r\n", NULL);
    assert_int_equal(capped_request(p, answer, strlen(answer), 0, &errmsg), BB_BAD_RESPONSE);
    assert_contains(errmsg, "more than 100 header lines or 65536 bytes of headers");

    /* Few lines, but too many bytes. */
    filler = apr_palloc(p, 30001);
    memset(filler, 'x', 30000);
    filler[30000] = '\0';
    answer = apr_pstrcat(p, "HTTP/1.1 200 OK\r\nX-A: ", filler, "\r\nX-B: ", filler, "\r\nX-C: ", filler,
                         "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", NULL);
    assert_int_equal(capped_request(p, answer, strlen(answer), 0, &errmsg), BB_BAD_RESPONSE);
    assert_contains(errmsg, "65536 bytes of headers");
    /* Two such lines are within the cap. */
    answer = apr_pstrcat(p, "HTTP/1.1 200 OK\r\nX-A: ", filler, "\r\nX-B: ", filler,
                         "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", NULL);
    assert_int_equal(capped_request(p, answer, strlen(answer), 0, &errmsg), BB_OK);
}

/* ---- failures before any answer ---- */

static void test_closed_port(void **state)
{
    apr_pool_t *p = *state;
    bb_http_opts_t opts = { NULL, 2, 0, NULL, NULL, NULL, 0, NULL };
    bb_http_response_t stale;
    bb_http_response_t *resp = &stale;
    const char *errmsg = NULL;

    assert_int_equal(bb_http_request(p, &opts, "GET", "https://127.0.0.1:1/rest/x?code=SECRET#frag", NULL, NULL,
                                     NULL, &resp, &errmsg), BB_UNAVAILABLE);
    assert_null(resp);
    assert_string_equal(errmsg, "GET https://127.0.0.1:1/rest/x: could not connect: check BBAuthBitbucketURL "
                                "(host and port) and that Bitbucket is running");
}

/* The observer (metrics) hears of every request sent: its URL, outcome, HTTP status and a duration. */
typedef struct {
    int calls;
    const char *url;
    bb_status_t status;
    int http_status;
    apr_interval_time_t elapsed;
} observed_t;
static observed_t observed;

static void observe(const char *url, bb_status_t status, int http_status, apr_interval_time_t elapsed)
{
    observed.calls++;
    observed.url = url;
    observed.status = status;
    observed.http_status = http_status;
    observed.elapsed = elapsed;
}

static void test_observer(void **state)
{
    apr_pool_t *p = *state;
    static const char answer[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    bb_http_opts_t opts = { NULL, 2, 0, NULL, NULL, NULL, 0, NULL };
    bb_http_response_t *resp = NULL;
    const char *errmsg = NULL, *url;
    apr_time_t before, after;

    memset(&observed, 0, sizeof(observed));
    bb_http_set_observer(observe);
    before = apr_time_now();
    assert_int_equal(GET_ANSWER(p, answer, "/rest/x", &url)->status, 404);
    after = apr_time_now();
    assert_int_equal(observed.calls, 1);
    assert_string_equal(observed.url, url);
    assert_int_equal(observed.status, BB_OK);
    assert_int_equal(observed.http_status, 404);
    /* The call's own time: a TLS round trip takes some, and no more than the whole GET_ANSWER around it. */
    assert_true(observed.elapsed > 0 && observed.elapsed <= after - before);
    assert_int_equal(bb_http_request(p, &opts, "GET", "https://127.0.0.1:1/y", NULL, NULL, NULL, &resp, &errmsg),
                     BB_UNAVAILABLE);
    assert_int_equal(observed.calls, 2);
    assert_int_equal(observed.status, BB_UNAVAILABLE);
    assert_int_equal(observed.http_status, 0);
    /* A request never sent (not https) is no call. */
    assert_int_equal(bb_http_request(p, &opts, "GET", "http://127.0.0.1:1/z", NULL, NULL, NULL, &resp, &errmsg),
                     BB_UNAVAILABLE);
    assert_int_equal(observed.calls, 2);
    bb_http_set_observer(NULL);
}

/* The breaker every request passes: a failure opens it (threshold 1), then nothing is sent until the cool-down
 * ends; the limit of calls in flight refuses without connecting either. */
static void test_breaker_holds_calls_back(void **state)
{
    apr_pool_t *p = *state;
    bb_breaker_state_t shared;
    bb_http_opts_t opts = { NULL, 2, 0, NULL, NULL, NULL, 0, NULL };
    bb_http_response_t *resp = NULL;
    const char *errmsg = NULL;
    apr_int64_t retry;

    memset(&shared, 0, sizeof(shared));
    opts.breaker = bb_breaker_create(p, &shared, "https://127.0.0.1:1", 1, 60, 4);
    assert_int_equal(bb_http_request(p, &opts, "GET", "https://127.0.0.1:1/a", NULL, NULL, NULL, &resp, &errmsg),
                     BB_UNAVAILABLE);
    assert_false(bb_http_held_back(errmsg));                 /* this one was sent, and failed */
    assert_int_equal(bb_http_request(p, &opts, "GET", "https://127.0.0.1:1/b", NULL, NULL, NULL, &resp, &errmsg),
                     BB_UNAVAILABLE);
    assert_true(bb_http_held_back(errmsg));
    assert_contains(errmsg, "GET https://127.0.0.1:1/b: not sent (held back): circuit open after repeated failures");
    assert_contains(errmsg, "retry after 60 s");
    assert_false(bb_http_held_here(errmsg));                 /* Bitbucket failed: stale verdicts may be served */
    assert_int_equal(opts.breaker->in_flight, 0);
    /* A fresh breaker whose process has its 4 calls out. */
    memset(&shared, 0, sizeof(shared));
    opts.breaker = bb_breaker_create(p, &shared, "https://127.0.0.1:1", 1, 60, 4);
    opts.breaker->in_flight = 4;
    assert_int_equal(bb_http_request(p, &opts, "GET", "https://127.0.0.1:1/c", NULL, NULL, NULL, &resp, &errmsg),
                     BB_UNAVAILABLE);
    assert_contains(errmsg, "not sent (held back here, Bitbucket did not fail): 4 calls to Bitbucket are already in "
                            "flight in this process (BBAuthBitbucketMaxCalls)");
    assert_true(bb_http_held_back(errmsg) && bb_http_held_here(errmsg) && !bb_http_rate_limited(errmsg));
    /* A holder a 429 held back: only its calls, said so. */
    opts.breaker->in_flight = 0;
    bb_breaker_leave(opts.breaker, "bob", BB_BREAKER_GO, BB_CALL_RATE_LIMITED, apr_time_sec(apr_time_now()), 600);
    opts.holder = "bob";
    assert_int_equal(bb_http_request(p, &opts, "GET", "https://127.0.0.1:1/d", NULL, NULL, NULL, &resp, &errmsg),
                     BB_UNAVAILABLE);
    assert_contains(errmsg, "not sent (held back here, Bitbucket did not fail): Bitbucket rate-limited this user's "
                            "calls (429): retry after ");
    assert_true(bb_http_held_here(errmsg) && bb_http_rate_limited(errmsg));
    assert_int_equal(bb_breaker_enter(opts.breaker, NULL, apr_time_sec(apr_time_now()), &retry), BB_BREAKER_FULL);
    assert_false(bb_http_held_back(NULL));
}

/* A server that accepts the connection but never says a word. */
static void test_timeout(void **state)
{
    apr_pool_t *p = *state;
    int port;
    int listener = listen_on_loopback(&port);
    bb_http_opts_t opts = { NULL, 1, 0, NULL, NULL, NULL, 0, NULL };
    bb_http_response_t *resp = NULL;
    const char *errmsg = NULL;
    apr_time_t start = apr_time_now();

    assert_int_equal(bb_http_request(p, &opts, "GET", apr_psprintf(p, "https://127.0.0.1:%d/slow", port), NULL, NULL,
                                     NULL, &resp, &errmsg), BB_UNAVAILABLE);
    close(listener);
    assert_contains(errmsg, "/slow: timed out after 1 s: check BBAuthTimeout and that Bitbucket answers");
    assert_true(apr_time_now() - start < apr_time_from_sec(3));
}

/* The copy for a single-use POST asks for a new connection; the options it came from are left as they were. */
static void test_once_asks_for_a_fresh_connection(void **state)
{
    apr_pool_t *p = *state;
    bb_http_opts_t opts = { NULL, 2, 0, "agent/1", NULL, NULL, 0 };
    bb_http_opts_t *once = bb_http_once(p, &opts);

    assert_ptr_not_equal(once, &opts);
    assert_int_equal(once->fresh_connection, 1);
    assert_int_equal(opts.fresh_connection, 0);
    assert_int_equal(once->timeout_sec, 2);
    assert_string_equal(once->user_agent, "agent/1");
}

static void test_only_https_fetched(void **state)
{
    apr_pool_t *p = *state;
    bb_http_opts_t opts = { NULL, 2, 0, NULL, NULL, NULL, 0, NULL };
    bb_http_response_t *resp = NULL;
    const char *errmsg = NULL;
    static const char *const urls[] = { "http://127.0.0.1:1/x", "ftp://127.0.0.1:1/x", "file:///etc/passwd",
                                        "//127.0.0.1:1/x", "127.0.0.1:1" };
    size_t i;

    for (i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        errmsg = NULL;
        assert_int_equal(bb_http_request(p, &opts, "GET", urls[i], NULL, NULL, NULL, &resp, &errmsg), BB_UNAVAILABLE);
        assert_contains(errmsg, "not fetched: only https URLs are used");
        assert_null(resp);
    }
}

static void test_header_injection_refused(void **state)
{
    apr_pool_t *p = *state;
    bb_http_opts_t opts = { NULL, 2, 0, NULL, NULL, NULL, 0, NULL };
    apr_table_t *headers = apr_table_make(p, 1);
    bb_http_response_t *resp = NULL;
    const char *errmsg = NULL;

    apr_table_set(headers, "Authorization", "Bearer x\r\nX-Injected: 1");
    assert_int_equal(bb_http_request(p, &opts, "GET", "https://127.0.0.1:1/x", headers, NULL, NULL, &resp, &errmsg),
                     BB_UNAVAILABLE);
    assert_contains(errmsg, "not sent: a request header holds a control character");
    assert_null(strstr(errmsg, "Bearer"));
}

/* ---- bb_http_describe ---- */

#define SECRET_BODY "<html>SECRET-BODY</html>"

/* An answer whose body must never show in a description. */
static bb_http_response_t *answer(apr_pool_t *p, int status, const char *content_type, const char *location)
{
    return response_at(p, status, content_type, SECRET_BODY, location);
}

static void test_describe(void **state)
{
    apr_pool_t *p = *state;
    bb_http_response_t *no_headers = answer(p, 307, "", NULL);
    const char *text;

    text = bb_http_describe(p, answer(p, 302, "text/html", "https://evil.example/2fa?code=SECRET"));
    assert_contains(text, "HTTP 302 redirect to evil.example (");
    assert_contains(text, "two-factor");
    assert_null(strstr(text, "SECRET"));
    assert_null(strstr(text, "/2fa"));
    assert_contains(bb_http_describe(p, answer(p, 303, "", "/login?next=SECRET")), "HTTP 303 redirect within the "
                                                                                      "same server (");
    assert_contains(bb_http_describe(p, answer(p, 302, "", "https://ev\"il<b>/x")), "HTTP 302 redirect to another "
                                                                                      "host (");
    assert_contains(bb_http_describe(p, answer(p, 301, "", NULL)), "HTTP 301 redirect (");
    no_headers->headers = NULL;
    assert_contains(bb_http_describe(p, no_headers), "HTTP 307 redirect (");

    text = bb_http_describe(p, answer(p, 200, "text/html", NULL));
    assert_contains(text, "HTTP 200 HTML page (");
    assert_contains(text, "two-factor");
    assert_null(strstr(text, "SECRET"));
    assert_string_equal(bb_http_describe(p, answer(p, 404, "text/html", NULL)), "HTTP 404 HTML page"
                        BB_HTTP_NOT_BITBUCKET);
    assert_contains(bb_http_describe(p, answer(p, 500, "", NULL)), "HTTP 500 (Bitbucket failed: check its log");
    assert_contains(bb_http_describe(p, answer(p, 502, "application/json", NULL)), "HTTP 502 (application/json) "
                                                                                      "(Bitbucket failed: check");
    assert_contains(bb_http_describe(p, answer(p, 401, "application/json", NULL)), "HTTP 401 (application/json) "
                                                                                      "(refused without saying why: "
                                                                                      "check that no proxy");
    assert_contains(bb_http_describe(p, answer(p, 403, "text/html", NULL)), "HTTP 403 HTML page (refused");
    assert_string_equal(bb_http_describe(p, answer(p, 200, "application/json", NULL)), "HTTP 200 (application/json)"
                        BB_HTTP_NOT_BITBUCKET);
}

/* The glue names the two-factor cause on the user's page exactly when the message carries the hint. */
/* A 429 says it is a rate limit, and for how long when Bitbucket said (seconds or a date). */
static void test_describe_429(void **state)
{
    apr_pool_t *p = *state;
    bb_http_response_t *resp = answer(p, 429, "application/json", NULL);

    assert_string_equal(bb_http_describe(p, resp), "HTTP 429: rate-limited by Bitbucket (its rate limits for REST "
                                                   "calls, or a proxy in front of it)");
    apr_table_set(resp->headers, "Retry-After", "120");
    assert_contains(bb_http_describe(p, resp), "HTTP 429: rate-limited by Bitbucket, retrying after 120 s (");
    assert_true(bb_http_rate_limited(bb_http_describe(p, resp)));
    assert_false(bb_http_held_here(bb_http_describe(p, resp)));
}

static void test_is_foreign_page(void **state)
{
    apr_pool_t *p = *state;

    assert_true(bb_http_is_foreign_page(apr_pstrcat(p, "token exchange at https://bb/x: unusable answer: ",
                                                    bb_http_describe(p, answer(p, 302, "", "https://e/")), NULL)));
    assert_true(bb_http_is_foreign_page(bb_http_describe(p, answer(p, 200, "text/html", NULL))));
    assert_false(bb_http_is_foreign_page(bb_http_describe(p, answer(p, 404, "text/html", NULL))));
    assert_false(bb_http_is_foreign_page(bb_http_describe(p, answer(p, 500, "application/json", NULL))));
    assert_false(bb_http_is_foreign_page("whoami at https://bb/x: HTTP 401: Bitbucket refused the credential"));
    assert_false(bb_http_is_foreign_page(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_get_with_extra_ca),
        UNIT_TEST(test_post_form),
        UNIT_TEST(test_redirect_not_followed),
        UNIT_TEST(test_headers_of_final_response),
        UNIT_TEST(test_untrusted_certificate),
        UNIT_TEST(test_expired_certificate),
        UNIT_TEST(test_host_name_mismatch),
        UNIT_TEST(test_ca_file),
        UNIT_TEST(test_body_cap),
        UNIT_TEST(test_header_cap),
        UNIT_TEST(test_closed_port),
        UNIT_TEST(test_observer),
        UNIT_TEST(test_breaker_holds_calls_back),
        UNIT_TEST(test_timeout),
        UNIT_TEST(test_once_asks_for_a_fresh_connection),
        UNIT_TEST(test_only_https_fetched),
        UNIT_TEST(test_header_injection_refused),
        UNIT_TEST(test_describe),
        UNIT_TEST(test_describe_429),
        UNIT_TEST(test_is_foreign_page),
    };

    /* The server's writes to a client that gave up must not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    bb_http_global_init();
    return UNIT_RUN("http", tests);
}
