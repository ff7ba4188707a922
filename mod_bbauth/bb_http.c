/* bb_http: HTTPS requests to Bitbucket with libcurl: TLS always verified, no redirects, caps on time and size. */
#include <string.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_uri.h>
#include <apr_file_io.h>
#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include "bb_connshare.h"
#include "bb_http.h"
#include "bb_url.h"

/* Used when opts->timeout_sec is not positive: a request never waits for ever. */
#define DEFAULT_TIMEOUT_SEC 10
/* Caps on the response headers: Bitbucket sends about 20 lines and 2 KiB. */
#define MAX_HEADER_LINES 100
#define MAX_HEADER_BYTES (64 * 1024)
/* First allocation for a body; it doubles from there up to the cap. */
#define MIN_BODY_ROOM 4096
/* Longest media type kept; anything longer is not one Bitbucket sends. */
#define MAX_MEDIA_TYPE 100
/* Longest Retry-After of a 429 that is honoured (seconds). */
#define MAX_RETRY_AFTER 3600
/* Largest BBAuthCAFile read: the whole Mozilla bundle is about 220 KiB. */
#define MAX_CA_FILE (1024 * 1024)

/* RFC 9110 token characters, plus the '/' between type and subtype. */
static const char media_type_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~/";
static const char host_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-:";

#define TWO_FACTOR_HINT " (a page or a redirect where the protocol wants data: check for a two-factor plugin that " \
                        "needs this client on its OAuth whitelist, or a proxy's login page)"

/* What one transfer collects, and which cap stopped it early. */
typedef struct {
    apr_pool_t *p;
    char *body;                 /* NUL-terminated after every append */
    apr_size_t body_len;
    apr_size_t body_room;       /* bytes body can hold before the NUL */
    apr_size_t max_body;
    apr_table_t *headers;
    apr_size_t header_lines;
    apr_size_t header_bytes;
    const char *overflow;       /* what was too large, or NULL */
} transfer_t;

static bb_http_observer_fn *observer;

void bb_http_set_observer(bb_http_observer_fn *fn)
{
    observer = fn;
}

apr_status_t bb_http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? APR_SUCCESS : APR_EGENERAL;
}

apr_status_t bb_http_child_init(apr_pool_t *p)
{
    return bb_connshare_init(p);
}

/* Connections, TLS sessions and DNS answers kept in the process's share for these options' trust store, if any. */
static CURLcode set_sharing(CURL *curl, const bb_http_opts_t *opts)
{
    CURLSH *share = bb_connshare_for(opts->ca_pem);
    CURLcode rc;

    if (share == NULL) {
        return CURLE_OK;
    }
    if ((rc = curl_easy_setopt(curl, CURLOPT_SHARE, share)) != CURLE_OK
        /* Only a reused connection is retried by libcurl: none for a request that must not be sent twice. */
        || (rc = curl_easy_setopt(curl, CURLOPT_FRESH_CONNECT, (long)opts->fresh_connection)) != CURLE_OK
        /* Bounds the shared connection cache: the oldest idle connection is closed beyond it. */
        || (rc = curl_easy_setopt(curl, CURLOPT_MAXCONNECTS, (long)BB_HTTP_MAX_CONNECTIONS)) != CURLE_OK
        /* Below the keep-alive timeouts of Tomcat (20 s) and common proxies: a kept connection is rarely dead. */
        || (rc = curl_easy_setopt(curl, CURLOPT_MAXAGE_CONN, (long)BB_HTTP_MAX_IDLE_SEC)) != CURLE_OK) {
        return rc;
    }
    return CURLE_OK;
}

static size_t collect_body(char *data, size_t size, size_t nmemb, void *baton)
{
    transfer_t *t = baton;
    apr_size_t len = size * nmemb;

    if (len > t->max_body - t->body_len) {
        t->overflow = apr_psprintf(t->p, "answer larger than %" APR_SIZE_T_FMT " bytes" BB_HTTP_NOT_BITBUCKET,
                                   t->max_body);
        return 0;   /* anything but len aborts the transfer */
    }
    if (t->body_len + len > t->body_room) {
        apr_size_t room = t->body_room * 2 > t->body_len + len ? t->body_room * 2 : t->body_len + len;
        char *bigger;

        room = room > MIN_BODY_ROOM ? room : MIN_BODY_ROOM;
        room = room < t->max_body ? room : t->max_body;
        bigger = apr_palloc(t->p, room + 1);
        memcpy(bigger, t->body, t->body_len);
        t->body = bigger;
        t->body_room = room;
    }
    memcpy(t->body + t->body_len, data, len);
    t->body_len += len;
    t->body[t->body_len] = '\0';
    return len;
}

/* Adds a "Name: value" line to the table; the blank end line and malformed lines are ignored. */
static void add_header_line(transfer_t *t, const char *line, apr_size_t len)
{
    const char *colon = memchr(line, ':', len);
    const char *value, *end = line + len;
    apr_size_t name_len = colon ? (apr_size_t)(colon - line) : 0;

    if (name_len == 0 || memchr(line, ' ', name_len) || memchr(line, '\t', name_len)) {
        return;
    }
    for (value = colon + 1; value < end && (*value == ' ' || *value == '\t'); value++) {
    }
    while (end > value && apr_isspace(end[-1])) {
        end--;
    }
    apr_table_addn(t->headers, apr_pstrmemdup(t->p, line, name_len),
                   apr_pstrmemdup(t->p, value, (apr_size_t)(end - value)));
}

static size_t collect_header(char *line, size_t size, size_t nitems, void *baton)
{
    transfer_t *t = baton;
    apr_size_t len = size * nitems;

    t->header_bytes += len;
    if (++t->header_lines > MAX_HEADER_LINES || t->header_bytes > MAX_HEADER_BYTES) {
        t->overflow = apr_psprintf(t->p, "answer with more than %d header lines or %d bytes of headers",
                                   MAX_HEADER_LINES, MAX_HEADER_BYTES);
        return 0;
    }
    /* A status line starts another response (after a 100 Continue): only the final one's headers count. */
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        apr_table_clear(t->headers);
    }
    else {
        add_header_line(t, line, len);
    }
    return len;
}

/* Adds every certificate of the PEM text to the store (NULL: only counts them); returns how many there were. */
static int add_pem_certificates(const char *pem, X509_STORE *store)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    STACK_OF(X509_INFO) *infos = bio ? PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL) : NULL;
    int i, count = 0;

    for (i = 0; infos && i < sk_X509_INFO_num(infos); i++) {
        X509 *cert = sk_X509_INFO_value(infos, i)->x509;
        if (cert && (store == NULL || X509_STORE_add_cert(store, cert) == 1)) {
            count++;
        }
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(bio);
    ERR_clear_error();
    return count;
}

/* Reads the whole file (at most MAX_CA_FILE bytes) into a NUL-terminated string of `scratch`, or NULL with *err. */
static char *read_ca_text(apr_pool_t *p, apr_pool_t *scratch, const char *path, apr_size_t *len, const char **err)
{
    char *text = apr_palloc(scratch, MAX_CA_FILE + 1);
    apr_file_t *file;
    apr_status_t rv = apr_file_open(&file, path, APR_FOPEN_READ | APR_FOPEN_BINARY, APR_OS_DEFAULT, scratch);
    char errbuf[120];

    if (rv == APR_SUCCESS) {
        /* One byte more than allowed, to tell a file of exactly the limit from a bigger one. */
        rv = apr_file_read_full(file, text, MAX_CA_FILE + 1, len);
        apr_file_close(file);
        rv = rv == APR_EOF ? APR_SUCCESS : rv;
    }
    if (rv != APR_SUCCESS) {
        *err = apr_psprintf(p, "cannot read %s (%s)", path, apr_strerror(rv, errbuf, sizeof(errbuf)));
        return NULL;
    }
    if (*len > MAX_CA_FILE) {
        *err = apr_psprintf(p, "%s is larger than %d KiB, not a CA file", path, MAX_CA_FILE / 1024);
        return NULL;
    }
    text[*len] = '\0';
    return text;
}

const char *bb_http_read_ca_file(apr_pool_t *p, const char *path, const char **err)
{
    apr_pool_t *scratch;
    apr_size_t len = 0;
    const char *text, *pem = NULL;

    if (apr_pool_create(&scratch, p) != APR_SUCCESS) {
        *err = apr_psprintf(p, "cannot read %s (out of memory)", path);
        return NULL;
    }
    text = read_ca_text(p, scratch, path, &len, err);
    if (text && add_pem_certificates(text, NULL) == 0) {
        *err = apr_psprintf(p, "%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path);
    }
    else if (text) {
        pem = apr_pstrmemdup(p, text, len);
    }
    apr_pool_destroy(scratch);
    return pem;
}

/* BBAuthCAFile is trusted in addition to the system's CAs: its certificates join the store curl has loaded. */
static CURLcode add_extra_ca(CURL *curl, void *ssl_ctx, void *ca_pem)
{
    return add_pem_certificates(ca_pem, SSL_CTX_get_cert_store(ssl_ctx)) > 0 ? CURLE_OK : CURLE_SSL_CACERT_BADFILE;
}

static apr_status_t cleanup_curl(void *curl)
{
    curl_easy_cleanup(curl);
    return APR_SUCCESS;
}

static apr_status_t cleanup_slist(void *list)
{
    curl_slist_free_all(list);
    return APR_SUCCESS;
}

/* Appends "name: value" to the list, or returns NULL when either holds a control character (header injection). */
static struct curl_slist *append_header(apr_pool_t *p, struct curl_slist *list, const char *name, const char *value)
{
    const char *line = apr_pstrcat(p, name, ": ", value, NULL);
    struct curl_slist *longer;

    if (strcmp(bb_strip_controls(p, line), line) != 0) {
        return NULL;
    }
    longer = curl_slist_append(list, line);
    if (longer == NULL) {
        return NULL;
    }
    if (list == NULL) {
        apr_pool_cleanup_register(p, longer, cleanup_slist, apr_pool_cleanup_null);
    }
    return longer;
}

/* The request headers as a curl list (freed with the pool), or NULL when one of them is unusable. */
static struct curl_slist *request_headers(apr_pool_t *p, const apr_table_t *headers, const char *body_type)
{
    /* "Expect:" stops curl from waiting for a 100 Continue before sending a body. */
    struct curl_slist *list = append_header(p, NULL, "Expect", "");
    const apr_array_header_t *entries = headers ? apr_table_elts(headers) : NULL;
    const apr_table_entry_t *entry = entries ? (const apr_table_entry_t *)entries->elts : NULL;
    int i;

    if (list && body_type) {
        list = append_header(p, list, "Content-Type", body_type);
    }
    for (i = 0; list && entries && i < entries->nelts; i++) {
        list = append_header(p, list, entry[i].key, entry[i].val);
    }
    return list;
}

/* The options that make every request safe: https only, verified TLS 1.2+, no redirects, bounded in time. */
static CURLcode set_safety(CURL *curl, const bb_http_opts_t *opts, long timeout_sec)
{
    CURLcode rc;

    if ((rc = curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https")) != CURLE_OK
        || (rc = curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L)) != CURLE_OK
        || (rc = curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L)) != CURLE_OK
        || (rc = curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2)) != CURLE_OK
        || (rc = curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L)) != CURLE_OK
        /* Signals are the MPM's: libcurl must not use SIGALRM for DNS timeouts in a threaded server. */
        || (rc = curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L)) != CURLE_OK
        || (rc = curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, timeout_sec)) != CURLE_OK
        || (rc = curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_sec)) != CURLE_OK) {
        return rc;
    }
    if (opts->ca_pem) {
        if ((rc = curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, add_extra_ca)) != CURLE_OK
            || (rc = curl_easy_setopt(curl, CURLOPT_SSL_CTX_DATA, (void *)opts->ca_pem)) != CURLE_OK) {
            return rc;
        }
    }
    return CURLE_OK;
}

/* The method, URL, headers, body and where the answer goes. */
static CURLcode set_request(CURL *curl, const bb_http_opts_t *opts, const char *method, const char *url,
                            struct curl_slist *headers, const char *body, transfer_t *transfer)
{
    /* With a body curl's own method is POST, without one GET; anything else is named explicitly. */
    int sends_body = body != NULL;
    CURLcode rc;

    if ((rc = curl_easy_setopt(curl, CURLOPT_URL, url)) != CURLE_OK
        || (rc = curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers)) != CURLE_OK
        || (rc = curl_easy_setopt(curl, CURLOPT_USERAGENT, opts->user_agent ? opts->user_agent : "mod_bbauth"))
           != CURLE_OK
        || (rc = curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_body)) != CURLE_OK
        || (rc = curl_easy_setopt(curl, CURLOPT_WRITEDATA, transfer)) != CURLE_OK
        || (rc = curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect_header)) != CURLE_OK
        || (rc = curl_easy_setopt(curl, CURLOPT_HEADERDATA, transfer)) != CURLE_OK) {
        return rc;
    }
    if (sends_body) {
        if ((rc = curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body))) != CURLE_OK
            || (rc = curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body)) != CURLE_OK) {
            return rc;
        }
    }
    if (strcmp(method, sends_body ? "POST" : "GET") != 0) {
        rc = curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }
    return rc;
}

/* Why the TLS peer was refused, with what to do about it. */
static const char *certificate_failure(apr_pool_t *p, CURL *curl)
{
    long verify = X509_V_OK;

    curl_easy_getinfo(curl, CURLINFO_SSL_VERIFYRESULT, &verify);
    /* curl checks the name itself before it reads OpenSSL's verdict on the chain, so a name mismatch leaves its
     * initial "unspecified" (7.88), or OK or HOSTNAME_MISMATCH in other versions. */
    if (verify == X509_V_ERR_UNSPECIFIED || verify == X509_V_OK || verify == X509_V_ERR_HOSTNAME_MISMATCH) {
        return "the TLS certificate is not for this host name: BBAuthBitbucketURL must use a name the "
               "certificate was issued for";
    }
    if (verify == X509_V_ERR_CERT_HAS_EXPIRED || verify == X509_V_ERR_CERT_NOT_YET_VALID) {
        return apr_psprintf(p, "TLS certificate not valid now (%s): renew Bitbucket's certificate or check this "
                            "server's clock", X509_verify_cert_error_string(verify));
    }
    return apr_psprintf(p, "TLS certificate not trusted (%s): set BBAuthCAFile to the CA that signed Bitbucket's "
                        "certificate", X509_verify_cert_error_string(verify));
}

/* The cause of a failed transfer for *errmsg, and the status it means. */
static bb_status_t transfer_failure(apr_pool_t *p, CURL *curl, CURLcode code, const bb_http_opts_t *opts,
                                    long timeout_sec, const transfer_t *transfer, const char **cause)
{
    if (transfer->overflow) {
        *cause = transfer->overflow;
        return BB_BAD_RESPONSE;
    }
    switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
        *cause = "cannot resolve the host name: check BBAuthBitbucketURL and this server's DNS";
        break;
    case CURLE_COULDNT_CONNECT:
        *cause = "could not connect: check BBAuthBitbucketURL (host and port) and that Bitbucket is running";
        break;
    case CURLE_OPERATION_TIMEDOUT:
        *cause = apr_psprintf(p, "timed out after %ld s: check BBAuthTimeout and that Bitbucket answers",
                              timeout_sec);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
        *cause = certificate_failure(p, curl);
        break;
    case CURLE_SSL_CACERT_BADFILE:
        *cause = opts->ca_pem ? apr_psprintf(p, "cannot use the CA certificates of BBAuthCAFile %s: it must hold "
                                             "PEM certificates", opts->ca_file ? opts->ca_file : "")
                              : "cannot load the system's CA certificates";
        break;
    case CURLE_SSL_CONNECT_ERROR:
        *cause = "TLS handshake failed: check that BBAuthBitbucketURL is Bitbucket's https address";
        break;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        *cause = "the connection broke before a complete answer: check that Bitbucket (and any proxy in front "
                 "of it) is healthy";
        break;
    default:
        *cause = apr_psprintf(p, "request failed (libcurl: %s)", curl_easy_strerror(code));
    }
    return BB_UNAVAILABLE;
}

/* "type/subtype" in lower case without parameters, or "" when missing or not a media type. */
static const char *media_type(apr_pool_t *p, const char *content_type)
{
    const char *start = content_type ? content_type + strspn(content_type, " \t") : "";
    apr_size_t len = strcspn(start, "; \t");
    char *type = apr_pstrmemdup(p, start, len);
    apr_size_t i;

    if (len > MAX_MEDIA_TYPE) {
        return "";
    }
    for (i = 0; i < len; i++) {
        if (strchr(media_type_chars, type[i]) == NULL) {
            return "";
        }
        type[i] = (char)apr_tolower(type[i]);
    }
    return type;
}

static bb_http_response_t *response_of(apr_pool_t *p, CURL *curl, const transfer_t *transfer)
{
    bb_http_response_t *resp = apr_pcalloc(p, sizeof(*resp));
    long status = 0;
    char *content_type = NULL;

    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &content_type);
    resp->status = (int)status;
    resp->content_type = media_type(p, content_type);
    resp->body = transfer->body;
    resp->body_len = transfer->body_len;
    resp->headers = transfer->headers;
    return resp;
}

/* Sets up, runs and reads one transfer on a handle that the caller cleans up. */
static bb_status_t perform(apr_pool_t *p, CURL *curl, const bb_http_opts_t *opts, const char *method,
                           const char *url, struct curl_slist *headers, const char *body,
                           bb_http_response_t **resp, const char **cause)
{
    long timeout_sec = opts->timeout_sec > 0 ? opts->timeout_sec : DEFAULT_TIMEOUT_SEC;
    transfer_t transfer;
    CURLcode code;

    memset(&transfer, 0, sizeof(transfer));
    transfer.p = p;
    transfer.body = apr_pcalloc(p, 1);
    transfer.max_body = opts->max_body ? opts->max_body : BB_HTTP_MAX_BODY;
    transfer.headers = apr_table_make(p, 24);
    code = set_safety(curl, opts, timeout_sec);
    if (code == CURLE_OK) {
        code = set_request(curl, opts, method, url, headers, body, &transfer);
    }
    if (code == CURLE_OK) {
        code = set_sharing(curl, opts);
    }
    if (code != CURLE_OK) {
        *cause = apr_psprintf(p, "cannot set up the request (libcurl: %s)", curl_easy_strerror(code));
        return BB_UNAVAILABLE;
    }
    code = curl_easy_perform(curl);
    if (code != CURLE_OK) {
        return transfer_failure(p, curl, code, opts, timeout_sec, &transfer, cause);
    }
    *resp = response_of(p, curl, &transfer);
    return BB_OK;
}

/* What the breaker learns from a call: Bitbucket answered, failed (unreachable, timed out, 5xx) or rate-limited. */
static bb_call_outcome_t outcome_of(bb_status_t status, const bb_http_response_t *resp)
{
    if (status == BB_UNAVAILABLE) {
        return BB_CALL_FAILED;
    }
    if (resp && resp->status == 429) {
        return BB_CALL_RATE_LIMITED;
    }
    return resp && resp->status >= 500 ? BB_CALL_FAILED : BB_CALL_ANSWERED;
}

static apr_int64_t retry_after_of(const bb_http_response_t *resp, apr_int64_t now)
{
    const char *value = resp && resp->headers ? apr_table_get(resp->headers, "Retry-After") : NULL;

    return bb_breaker_parse_retry_after(value, now, MAX_RETRY_AFTER);
}

/* Start the cause of every call the breaker held back: for Bitbucket's failures (the circuit), or by this server's
 * own budget and a 429's hold, which say nothing about Bitbucket's health. */
#define HELD_BACK "not sent (held back"
#define HELD_BACK_FAILING HELD_BACK "): "
#define HELD_BACK_HERE HELD_BACK " here, Bitbucket did not fail): "
#define RATE_HELD "Bitbucket rate-limited "
/* Starts bb_http_describe's line for a 429. */
#define RATE_LIMITED "HTTP 429: rate-limited by Bitbucket"

int bb_http_held_back(const char *errmsg)
{
    return errmsg != NULL && strstr(errmsg, HELD_BACK) != NULL;
}

int bb_http_held_here(const char *errmsg)
{
    return errmsg != NULL && strstr(errmsg, HELD_BACK_HERE) != NULL;
}

int bb_http_rate_limited(const char *errmsg)
{
    return errmsg != NULL && (strstr(errmsg, HELD_BACK_HERE RATE_HELD) != NULL || strstr(errmsg, RATE_LIMITED));
}

/* Why the breaker let no call through, for *errmsg. */
static const char *not_admitted(apr_pool_t *p, const bb_breaker_t *breaker, const char *holder,
                                bb_breaker_admit_t admit, apr_int64_t retry_after)
{
    int anonymous = holder && !strcmp(holder, BB_HOLDER_ANONYMOUS);

    if (admit == BB_BREAKER_HELD) {
        return apr_psprintf(p, HELD_BACK_HERE RATE_HELD "%s (429): retry after %" APR_INT64_T_FMT " s",
                            anonymous ? "checks of credentials nobody confirmed" : holder ? "this user's calls"
                            : "this server's own calls", retry_after);
    }
    if (admit == BB_BREAKER_FULL && anonymous) {
        return apr_psprintf(p, HELD_BACK_HERE "%u checks of credentials nobody confirmed are already in flight in this "
                            "process (a quarter of BBAuthBitbucketMaxCalls): junk credentials, or a slow Bitbucket",
                            breaker->anonymous_calls);
    }
    if (admit == BB_BREAKER_FULL) {
        return apr_psprintf(p, HELD_BACK_HERE "%u calls to Bitbucket are already in flight in this process "
                            "(BBAuthBitbucketMaxCalls): Bitbucket is slow, or the limit is too low for the load",
                            breaker->max_calls);
    }
    return apr_psprintf(p, HELD_BACK_FAILING "circuit open after repeated failures or 429s for many users (see the "
                        "\"circuit open\" line before): retry after %" APR_INT64_T_FMT " s", retry_after);
}

/* One transfer on a handle of its own (its connection kept in the process's share, if any). */
static bb_status_t transfer(apr_pool_t *p, const bb_http_opts_t *opts, const char *method, const char *url,
                            struct curl_slist *header_list, const char *body, bb_http_response_t **resp,
                            const char **cause)
{
    CURL *curl = curl_easy_init();
    bb_status_t status;

    if (curl == NULL) {
        *cause = "not sent: libcurl cannot create a handle (out of memory?)";
        return BB_UNAVAILABLE;
    }
    apr_pool_cleanup_register(p, curl, cleanup_curl, apr_pool_cleanup_null);
    status = perform(p, curl, opts, method, url, header_list, body, resp, cause);
    /* Everything needed was copied into the pool: give the connection back (to the share, or closed) now. */
    apr_pool_cleanup_run(p, curl, cleanup_curl);
    return status;
}

bb_http_opts_t *bb_http_once(apr_pool_t *p, const bb_http_opts_t *opts)
{
    bb_http_opts_t *once = apr_pmemdup(p, opts, sizeof(*opts));

    once->fresh_connection = 1;
    return once;
}

bb_status_t bb_http_request(apr_pool_t *p, const bb_http_opts_t *opts, const char *method, const char *url,
                            const apr_table_t *headers, const char *body, const char *body_type,
                            bb_http_response_t **resp, const char **errmsg)
{
    const char *where = apr_psprintf(p, "%s %s", method, bb_url_for_log(p, url));
    const char *cause = NULL;
    struct curl_slist *header_list;
    apr_int64_t retry_after;
    bb_breaker_admit_t admit;
    bb_status_t status;
    apr_time_t started;

    *resp = NULL;
    if (strncasecmp(url, "https://", 8) != 0) {
        *errmsg = apr_psprintf(p, "%s: not fetched: only https URLs are used (check BBAuthBitbucketURL)", where);
        return BB_UNAVAILABLE;
    }
    header_list = request_headers(p, headers, body ? body_type : NULL);
    if (header_list == NULL) {
        *errmsg = apr_psprintf(p, "%s: not sent: a request header holds a control character", where);
        return BB_UNAVAILABLE;
    }
    admit = bb_breaker_enter(opts->breaker, opts->holder, apr_time_sec(apr_time_now()), &retry_after);
    if (admit != BB_BREAKER_GO && admit != BB_BREAKER_PROBE) {
        *errmsg = apr_psprintf(p, "%s: %s", where, not_admitted(p, opts->breaker, opts->holder, admit, retry_after));
        return BB_UNAVAILABLE;
    }
    started = apr_time_now();
    status = transfer(p, opts, method, url, header_list, body, resp, &cause);
    if (observer) {
        observer(url, status, *resp ? (*resp)->status : 0, apr_time_now() - started);
    }
    bb_breaker_leave(opts->breaker, opts->holder, admit, outcome_of(status, *resp), apr_time_sec(apr_time_now()),
                     retry_after_of(*resp, apr_time_sec(apr_time_now())));
    if (status != BB_OK) {
        *errmsg = apr_psprintf(p, "%s: %s", where, cause);
    }
    return status;
}

/* " to <host>" for a redirect's Location, " within the same server" for a relative one, "" without one. */
static const char *redirect_target(apr_pool_t *p, const bb_http_response_t *resp)
{
    const char *location = resp->headers ? apr_table_get(resp->headers, "Location") : NULL;
    apr_uri_t uri;

    if (location == NULL || *location == '\0') {
        return "";
    }
    if (apr_uri_parse(p, location, &uri) != APR_SUCCESS || uri.hostname == NULL) {
        return " within the same server";
    }
    if (strlen(uri.hostname) > 253 || uri.hostname[strspn(uri.hostname, host_chars)] != '\0') {
        return " to another host";
    }
    return apr_pstrcat(p, " to ", uri.hostname, NULL);
}

/* What to check after an unexpected answer with this status. */
static const char *status_hint(int status)
{
    if (status >= 500) {
        return " (Bitbucket failed: check its log, atlassian-bitbucket.log, and any proxy in front of it)";
    }
    if (status == 401 || status == 403) {
        return " (refused without saying why: check that no proxy in front of Bitbucket asks for a login of its own)";
    }
    if (status >= 300 && status < 400) {
        return TWO_FACTOR_HINT;
    }
    return BB_HTTP_NOT_BITBUCKET;   /* another 4xx, or a success of the wrong kind */
}

const char *bb_http_describe(apr_pool_t *p, const bb_http_response_t *resp)
{
    int success = resp->status >= 200 && resp->status < 300;
    const char *hint = status_hint(resp->status);

    if (resp->status >= 300 && resp->status < 400) {
        return apr_psprintf(p, "HTTP %d redirect%s%s", resp->status, redirect_target(p, resp), hint);
    }
    if (resp->status == 429) {
        apr_int64_t seconds = retry_after_of(resp, apr_time_sec(apr_time_now()));

        return apr_psprintf(p, RATE_LIMITED "%s (its rate limits for REST calls, or a proxy "
                            "in front of it)", seconds > 0 ? apr_psprintf(p, ", retrying after %" APR_INT64_T_FMT
                                                                          " s", seconds) : "");
    }
    if (strcmp(resp->content_type, "text/html") == 0) {
        return apr_psprintf(p, "HTTP %d HTML page%s", resp->status, success ? TWO_FACTOR_HINT : hint);
    }
    if (*resp->content_type == '\0') {
        return apr_psprintf(p, "HTTP %d%s", resp->status, hint);
    }
    return apr_psprintf(p, "HTTP %d (%s)%s", resp->status, resp->content_type, hint);
}

int bb_http_is_foreign_page(const char *errmsg)
{
    return errmsg != NULL && strstr(errmsg, TWO_FACTOR_HINT) != NULL;
}
