/* bb_oauth1: OAuth 1.0a RSA-SHA1 for pre-7.21 application links: consumer key, signing, the three legs, signed REST. */
#ifndef BB_OAUTH1_H
#define BB_OAUTH1_H

#include <apr_pools.h>
#include <apr_tables.h>
#include "bb_util.h"
#include "bb_http.h"

/* The application-link servlets, under the base URL. */
#define BB_OAUTH1_REQUEST_TOKEN_PATH "/plugins/servlet/oauth/request-token"
#define BB_OAUTH1_AUTHORIZE_PATH     "/plugins/servlet/oauth/authorize"
#define BB_OAUTH1_ACCESS_TOKEN_PATH  "/plugins/servlet/oauth/access-token"

/* Smallest RSA key bb_oauth1_load_key accepts. */
#define BB_OAUTH1_MIN_KEY_BITS 2048

/* The consumer's RSA private key (an EVP_PKEY freed with the pool it was loaded into). Read-only once loaded,
 * so one key may sign in several threads at once. */
typedef struct bb_oauth1_key bb_oauth1_key_t;

typedef struct {
    const char *base_url;          /* Bitbucket base URL, no trailing '/' */
    const char *consumer_key;      /* the application link's Incoming Authentication "Consumer Key" */
    const bb_oauth1_key_t *key;    /* whose public half is the link's "Public Key" */
    const char *callback_uri;      /* where Bitbucket sends the browser back with oauth_token and oauth_verifier */
} bb_oauth1_client_t;

/* What Bitbucket named as the reason for a refusal. */
typedef struct {
    const char *name;              /* oauth_problem lower-cased, reduced to [a-z_] and capped, e.g.
                                    * "signature_invalid"; NULL when none */
    const char *parameters;        /* oauth_parameters_absent / _rejected as "a, b" (also reduced), or NULL */
} bb_oauth1_problem_t;

/* A token-endpoint answer. */
typedef struct {
    const char *token;             /* oauth_token, or NULL */
    const char *token_secret;      /* oauth_token_secret, or NULL; unused by RSA-SHA1, never logged */
    int callback_confirmed;        /* oauth_callback_confirmed=true (OAuth 1.0a mode) */
    apr_int64_t expires_in;        /* oauth_expires_in in seconds; 0 when not given */
    bb_oauth1_problem_t problem;   /* from an error answer's body */
} bb_oauth1_token_t;

/* The oauth_* parameters that depend on the step; NULL members are not sent. */
typedef struct {
    const char *token;             /* oauth_token: the request token (access step) or the access token (REST) */
    const char *callback;          /* oauth_callback: request-token step only */
    const char *verifier;          /* oauth_verifier: access-token step only */
} bb_oauth1_step_t;

/* Signs REST calls as the access token's user: the baton of bb_oauth1_authorizer. */
typedef struct {
    const bb_oauth1_client_t *client;
    const char *access_token;
} bb_oauth1_baton_t;

/* Reads the consumer's private key: PEM, PKCS#1 ("BEGIN RSA PRIVATE KEY") or PKCS#8 ("BEGIN PRIVATE KEY"), RSA,
 * at least BB_OAUTH1_MIN_KEY_BITS. Never prompts for a passphrase: an encrypted key is refused. On failure
 * returns NULL and sets *err to a message naming the file and the fix (never any key material). */
bb_oauth1_key_t *bb_oauth1_load_key(apr_pool_t *p, const char *path, const char **err);

/* bb_oauth1_load_key from PEM text with a chosen minimum size (the unit tests' vectors use a 1024-bit key).
 * `name` (a file name, "the key", ...) starts *err. */
bb_oauth1_key_t *bb_oauth1_key_from_pem(apr_pool_t *p, const char *pem, apr_size_t len, const char *name,
                                        int min_bits, const char **err);

/* The key's public half as a SubjectPublicKeyInfo PEM block ("-----BEGIN PUBLIC KEY-----" ... END line and
 * '\n'): the whole block is what the application link's "Public Key" field takes. */
char *bb_oauth1_public_key_pem(apr_pool_t *p, const bb_oauth1_key_t *key);

/* RFC 5849 §3.4.1.2 base string URI: scheme and host lower-case, default port (80/443) left out, path as given
 * ("/" when empty), no query or fragment. NULL when url is not an absolute http(s) URL. */
char *bb_oauth1_base_string_uri(apr_pool_t *p, const char *url);

/* RFC 5849 §3.4.1 signature base string: METHOD&uri&params, where params are the URL's query parameters, the
 * form_body's (pass it only for an application/x-www-form-urlencoded body, else NULL) and oauth_params (decoded
 * name → value; "realm" and "oauth_signature" are left out), each percent-encoded, sorted by name then value.
 * NULL when the URL is unusable. */
char *bb_oauth1_base_string(apr_pool_t *p, const char *method, const char *url, const char *form_body,
                            const apr_table_t *oauth_params);

/* RSASSA-PKCS1-v1_5 over SHA-1 of the base string, standard base64 with padding; NULL if signing fails. */
char *bb_oauth1_sign(apr_pool_t *p, const bb_oauth1_key_t *key, const char *base_string);

/* The Authorization header value ("OAuth oauth_consumer_key=\"...\", ...") for one request without a body:
 * fresh nonce and timestamp, the step's parameters, the URL's query parameters signed too. NULL when no
 * randomness is available, the URL is unusable or signing fails. */
char *bb_oauth1_authorization(apr_pool_t *p, const bb_oauth1_client_t *client, const char *method,
                              const char *url, const bb_oauth1_step_t *step);

/* For tests: bb_oauth1_authorization with a fixed timestamp and nonce. */
char *bb_oauth1_authorization_at(apr_pool_t *p, const bb_oauth1_client_t *client, const char *method,
                                 const char *url, const bb_oauth1_step_t *step, const char *timestamp,
                                 const char *nonce);

/* bb_authorizer_fn (bb_bitbucket.h) for REST calls signed with the access token; baton is a
 * bb_oauth1_baton_t. NULL when signing fails. */
const char *bb_oauth1_authorizer(apr_pool_t *p, void *baton, const char *method, const char *url);

/* Leg 1: POST <base>/plugins/servlet/oauth/request-token, empty body, oauth_callback = client->callback_uri
 * signed among the oauth_* parameters of the Authorization header. BB_OK only when Bitbucket confirmed the
 * callback (oauth_callback_confirmed=true: OAuth 1.0a, so a verifier will come back). */
bb_status_t bb_oauth1_request_token(apr_pool_t *p, const bb_oauth1_client_t *client, const bb_http_opts_t *http,
                                    bb_oauth1_token_t **token, const char **errmsg);

/* Leg 2: <base>/plugins/servlet/oauth/authorize?oauth_token=<request token>, where the browser goes. */
char *bb_oauth1_authorize_url(apr_pool_t *p, const bb_oauth1_client_t *client, const char *request_token);

/* Leg 3: POST <base>/plugins/servlet/oauth/access-token, empty body, oauth_token and oauth_verifier signed in
 * the Authorization header. A missing verifier, or Bitbucket's "denied" (the user clicked Deny), is BB_DENIED
 * without asking Bitbucket. */
bb_status_t bb_oauth1_access_token(apr_pool_t *p, const bb_oauth1_client_t *client, const bb_http_opts_t *http,
                                   const char *request_token, const char *verifier, bb_oauth1_token_t **token,
                                   const char **errmsg);

/* Pure parsers, for the unit tests. */

/* A form-encoded token-endpoint body ("oauth_token=...&oauth_token_secret=...&..."); never NULL. */
bb_oauth1_token_t *bb_oauth1_parse_token_body(apr_pool_t *p, const char *body);

/* A `WWW-Authenticate: OAuth realm="...", oauth_problem="..."` value: 1 with *problem filled when it is an OAuth
 * challenge naming a problem, else 0. */
int bb_oauth1_parse_www_authenticate(apr_pool_t *p, const char *header, bb_oauth1_problem_t *problem);

/* For messages about signed REST calls: "oauth_problem=<name>: <the fix>" when a WWW-Authenticate OAuth
 * challenge of the answer names a problem, else NULL. */
const char *bb_oauth1_challenge_problem(apr_pool_t *p, const bb_http_response_t *resp);

/* Reads a token-endpoint answer: an oauth_problem (WWW-Authenticate or body, any status) → BB_DENIED with the
 * problem and the fix in *errmsg; 200 form data with oauth_token and oauth_token_secret (and, when
 * require_confirmed, oauth_callback_confirmed=true) → BB_OK; anything else (HTML, a redirect, 5xx, garbage) →
 * BB_BAD_RESPONSE. *token is NULL unless BB_OK. `what` ("request token", ...) and url are for the message only. */
bb_status_t bb_oauth1_parse_token_response(apr_pool_t *p, const bb_http_response_t *resp, const char *what,
                                           const char *url, int require_confirmed, bb_oauth1_token_t **token,
                                           const char **errmsg);

#endif
