/* tls_server.h: for the unit tests that make real HTTPS calls: a throw-away PKI and an in-process TLS server on
 * 127.0.0.1 that answers each connection with the next canned answer and records what it was asked. */
#ifndef BB_TLS_SERVER_H
#define BB_TLS_SERVER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <apr_file_io.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "bb_http.h"

/* ---- a throw-away PKI: a CA, a certificate for 127.0.0.1 it signed, an expired one, a self-signed one ---- */

typedef struct {
    EVP_PKEY *key;
    X509 *ca;
    X509 *good;        /* for IP 127.0.0.1, signed by ca */
    X509 *expired;     /* the same, but its validity ended an hour ago */
    X509 *stranger;    /* for IP 127.0.0.1, self-signed */
} pki_t;

static pki_t pki;

static inline void add_extension(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for pki.key named cn; issuer NULL makes it self-signed. Valid from..until, in seconds from now. */
static inline X509 *make_cert(const char *cn, X509 *issuer, int is_ca, long from, long until)
{
    static long serial = 1;
    X509 *cert = X509_new();

    assert_non_null(cert);
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
    X509_gmtime_adj(X509_getm_notBefore(cert), from);
    X509_gmtime_adj(X509_getm_notAfter(cert), until);
    X509_set_pubkey(cert, pki.key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(issuer ? issuer : cert));
    add_extension(cert, issuer ? issuer : cert, NID_subject_key_identifier, "hash");
    if (is_ca) {
        add_extension(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
        add_extension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
    }
    else {
        add_extension(cert, issuer ? issuer : cert, NID_authority_key_identifier, "keyid:always");
        add_extension(cert, cert, NID_subject_alt_name, "IP:127.0.0.1");
    }
    assert_true(X509_sign(cert, pki.key, EVP_sha256()) > 0);
    return cert;
}

/* One key for everything keeps the set-up fast; only the names and signatures matter here. */
static inline void make_pki(void)
{
    if (pki.key) {
        return;
    }
    pki.key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(pki.key);
    pki.ca = make_cert("bb_http test CA", NULL, 1, -3600, 3600);
    pki.good = make_cert("bitbucket", pki.ca, 0, -3600, 3600);
    pki.expired = make_cert("bitbucket", pki.ca, 0, -7200, -3600);
    pki.stranger = make_cert("bitbucket", NULL, 0, -3600, 3600);
}

/* The CA certificate as a PEM file, deleted with the pool. */
static inline const char *ca_file(apr_pool_t *p)
{
    const char *dir;
    char *path;
    apr_file_t *file;
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem;
    long len;

    assert_int_equal(PEM_write_bio_X509(bio, pki.ca), 1);
    len = BIO_get_mem_data(bio, &pem);
    assert_int_equal(apr_temp_dir_get(&dir, p), APR_SUCCESS);
    path = apr_pstrcat(p, dir, "/test_http_XXXXXX", NULL);
    assert_int_equal(apr_file_mktemp(&file, path, APR_FOPEN_CREATE | APR_FOPEN_WRITE | APR_FOPEN_EXCL |
                                     APR_FOPEN_DELONCLOSE, p), APR_SUCCESS);
    assert_int_equal(apr_file_write_full(file, pem, (apr_size_t)len, NULL), APR_SUCCESS);
    BIO_free(bio);
    return path;
}

/* opts trust the test CA, as BBAuthCAFile does. */
static inline void trust_test_ca(apr_pool_t *p, bb_http_opts_t *opts)
{
    const char *err = NULL;

    opts->ca_file = ca_file(p);
    opts->ca_pem = bb_http_read_ca_file(p, opts->ca_file, &err);
    assert_non_null(opts->ca_pem);
}

/* ---- a TLS server that answers one connection with a canned answer ---- */

/* Most connections one server answers. */
#define MAX_ANSWERS 16

typedef struct {
    int listener;
    int port;
    SSL_CTX *ctx;
    const char *answers[MAX_ANSWERS];
    apr_size_t answer_lens[MAX_ANSWERS];
    int answer_count;
    char request[16384];      /* what the client sent on the last connection: head and body */
    apr_size_t request_len;
    char targets[MAX_ANSWERS][2048];    /* the request line of each connection, in order */
    int served;               /* connections answered */
    pthread_t thread;
} server_t;

/* Reads until the request's head and Content-Length body are in. */
static inline void read_request(server_t *s, SSL *ssl)
{
    const char *head_end = NULL;
    int n;

    while ((n = SSL_read(ssl, s->request + s->request_len, (int)(sizeof(s->request) - 1 - s->request_len))) > 0) {
        const char *length;

        s->request_len += (apr_size_t)n;
        s->request[s->request_len] = '\0';
        head_end = strstr(s->request, "\r\n\r\n");
        if (head_end == NULL) {
            continue;
        }
        length = strcasestr(s->request, "\r\nContent-Length:");
        if (length == NULL || length > head_end
            || s->request_len >= (apr_size_t)(head_end + 4 - s->request) + (apr_size_t)atol(length + 17)) {
            return;
        }
    }
}

/* Answers one connection with the next answer, then closes it; 0 when no client came (accept timed out). */
static inline int serve_one(server_t *s)
{
    int fd = accept(s->listener, NULL, NULL);
    SSL *ssl = fd >= 0 ? SSL_new(s->ctx) : NULL;
    int i = s->served;

    if (ssl && SSL_set_fd(ssl, fd) == 1 && SSL_accept(ssl) == 1) {
        s->request_len = 0;
        s->request[0] = '\0';
        read_request(s, ssl);
        memcpy(s->targets[i], s->request, strcspn(s->request, "\r") < sizeof(s->targets[i]) - 1
               ? strcspn(s->request, "\r") : sizeof(s->targets[i]) - 1);
        if (s->answer_lens[i]) {
            SSL_write(ssl, s->answers[i], (int)s->answer_lens[i]);
        }
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    if (fd >= 0) {
        close(fd);
    }
    s->served += fd >= 0;
    return fd >= 0;
}

/* Answers one connection per answer, in order, until a client no longer comes. */
static inline void *serve_all(void *data)
{
    server_t *s = data;

    while (s->served < s->answer_count && serve_one(s)) {
    }
    return NULL;
}

static inline int listen_on_loopback(int *port)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof(addr);
    /* On Linux this bounds accept() too: a test whose client never connects cannot hang. */
    struct timeval wait = { 5, 0 };
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait)), 0);
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    *port = ntohs(addr.sin_port);
    return fd;
}

/* Starts a server presenting cert that sends answers[i] (a NUL-terminated HTTP response) to its i-th connection.
 * The client must not keep connections (no bb_http_child_init): every request is a connection. */
static inline server_t *start_server_answers(apr_pool_t *p, X509 *cert, const char *const *answers, int count)
{
    server_t *s = apr_pcalloc(p, sizeof(*s));
    int i;

    assert_true(count <= MAX_ANSWERS);
    make_pki();
    s->ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(s->ctx);
    assert_int_equal(SSL_CTX_use_certificate(s->ctx, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(s->ctx, pki.key), 1);
    for (i = 0; i < count; i++) {
        s->answers[i] = answers[i];
        s->answer_lens[i] = strlen(answers[i]);
    }
    s->answer_count = count;
    s->listener = listen_on_loopback(&s->port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve_all, s), 0);
    return s;
}

/* Starts a server presenting cert that will send answer (len bytes) to the first connection. */
static inline server_t *start_server(apr_pool_t *p, X509 *cert, const char *answer, apr_size_t len)
{
    server_t *s = start_server_answers(p, cert, &answer, 1);

    s->answer_lens[0] = len;
    return s;
}

static inline void stop_server(server_t *s)
{
    pthread_join(s->thread, NULL);
    close(s->listener);
    SSL_CTX_free(s->ctx);
}

static inline const char *url_of(apr_pool_t *p, const server_t *s, const char *path)
{
    return apr_psprintf(p, "https://127.0.0.1:%d%s", s->port, path);
}

#endif
