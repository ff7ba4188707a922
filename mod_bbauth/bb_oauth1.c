/* bb_oauth1: OAuth 1.0a RSA-SHA1 for pre-7.21 application links: consumer key, signing, the three legs, signed REST. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <apr_file_io.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_uri.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "bb_oauth1.h"
#include "bb_pkey.h"
#include "bb_url.h"

/* Bytes of randomness in a nonce (base64url: 22 characters, all unreserved). */
#define NONCE_BYTES 16
/* Caps on what Bitbucket's problem names may put into a log line. */
#define PROBLEM_NAME_MAX 40
#define PROBLEM_PARAMETERS_MAX 120

struct bb_oauth1_key {
    EVP_PKEY *pkey;
};

/* ---- OpenSSL objects owned by pools ---- */

static apr_status_t md_ctx_cleanup(void *ctx)
{
    EVP_MD_CTX_free(ctx);
    return APR_SUCCESS;
}

/* ---- the consumer's private key ---- */

/* Why pkey cannot be the consumer key, or NULL when it can. */
static const char *key_unusable(apr_pool_t *p, EVP_PKEY *pkey, const char *name, int min_bits)
{
    if (!EVP_PKEY_is_a(pkey, "RSA")) {
        return apr_psprintf(p, "%s: not an RSA key (%s); OAuth 1 application links take RSA keys only "
                            "(build/bbauth-keygen makes one)", name, EVP_PKEY_get0_type_name(pkey));
    }
    if (EVP_PKEY_get_bits(pkey) < min_bits) {
        return apr_psprintf(p, "%s: the RSA key has %d bits; at least %d are needed "
                            "(build/bbauth-keygen makes a 3072-bit key)", name, EVP_PKEY_get_bits(pkey), min_bits);
    }
    return NULL;
}

/* pkey as the consumer key, or NULL with *err when it cannot be one. */
static bb_oauth1_key_t *consumer_key(apr_pool_t *p, EVP_PKEY *pkey, const char *name, int min_bits,
                                     const char **err)
{
    bb_oauth1_key_t *key;

    *err = key_unusable(p, pkey, name, min_bits);
    if (*err) {
        return NULL;
    }
    key = apr_palloc(p, sizeof(*key));
    key->pkey = pkey;
    return key;
}

bb_oauth1_key_t *bb_oauth1_key_from_pem(apr_pool_t *p, const char *pem, apr_size_t len, const char *name,
                                        int min_bits, const char **err)
{
    EVP_PKEY *pkey = bb_pkey_from_pem(p, pem, len, name, err);

    return pkey ? consumer_key(p, pkey, name, min_bits, err) : NULL;
}

bb_oauth1_key_t *bb_oauth1_load_key(apr_pool_t *p, const char *path, const char **err)
{
    EVP_PKEY *pkey = bb_pkey_load(p, path, err);

    return pkey ? consumer_key(p, pkey, path, BB_OAUTH1_MIN_KEY_BITS, err) : NULL;
}

char *bb_oauth1_public_key_pem(apr_pool_t *p, const bb_oauth1_key_t *key)
{
    BIO *bio = bb_pool_bio(p, NULL, 0);
    char *data;
    long len;

    if (bio == NULL || PEM_write_bio_PUBKEY(bio, key->pkey) != 1) {
        ERR_clear_error();
        return NULL;
    }
    len = BIO_get_mem_data(bio, &data);
    return apr_pstrmemdup(p, data, (apr_size_t)len);
}

/* ---- RFC 5849 §3.4: the signature base string ---- */

/* A copy of s in ASCII upper or lower case. */
static char *ascii_case(apr_pool_t *p, const char *s, int upper)
{
    char *out = apr_pstrdup(p, s);
    char *c;

    for (c = out; *c; c++) {
        *c = (char)(upper ? apr_toupper(*c) : apr_tolower(*c));
    }
    return out;
}

/* The base string URI of url (§3.4.1.2) and its query (NULL when none); NULL when url is not absolute http(s). */
static char *split_url(apr_pool_t *p, const char *url, const char **query)
{
    apr_uri_t uri;
    const char *scheme, *host, *port = "";

    if (apr_uri_parse(p, url, &uri) != APR_SUCCESS || uri.scheme == NULL || uri.hostname == NULL
        || *uri.hostname == '\0') {
        return NULL;
    }
    scheme = ascii_case(p, uri.scheme, 0);
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        return NULL;
    }
    host = ascii_case(p, uri.hostname, 0);
    /* apr_uri_parse drops an IPv6 literal's brackets; the URI needs them back. */
    if (strchr(host, ':')) {
        host = apr_pstrcat(p, "[", host, "]", NULL);
    }
    if (uri.port_str && *uri.port_str && uri.port != apr_uri_port_of_scheme(scheme)) {
        port = apr_psprintf(p, ":%u", (unsigned)uri.port);
    }
    *query = uri.query;
    return apr_pstrcat(p, scheme, "://", host, port, uri.path && *uri.path ? uri.path : "/", NULL);
}

char *bb_oauth1_base_string_uri(apr_pool_t *p, const char *url)
{
    const char *query;
    return split_url(p, url, &query);
}

typedef struct {
    const char *name;   /* percent-encoded */
    const char *value;  /* percent-encoded */
} encoded_param_t;

/* Appends params, each name and value percent-encoded (§3.6); realm and oauth_signature are left out when
 * they come from the Authorization header (§3.4.1.3.1). */
static void add_encoded(apr_pool_t *p, apr_array_header_t *out, const apr_table_t *params, int from_header)
{
    const apr_array_header_t *elts = apr_table_elts(params);
    const apr_table_entry_t *entry = (const apr_table_entry_t *)elts->elts;
    int i;

    for (i = 0; i < elts->nelts; i++) {
        encoded_param_t *param;
        if (from_header && (strcmp(entry[i].key, "realm") == 0 || strcmp(entry[i].key, "oauth_signature") == 0)) {
            continue;
        }
        param = apr_array_push(out);
        param->name = bb_url_encode(p, entry[i].key);
        param->value = bb_url_encode(p, entry[i].val ? entry[i].val : "");
    }
}

/* §3.4.1.3.2: by encoded name, then encoded value, in byte order. */
static int compare_params(const void *a, const void *b)
{
    const encoded_param_t *pa = a, *pb = b;
    int by_name = strcmp(pa->name, pb->name);
    return by_name ? by_name : strcmp(pa->value, pb->value);
}

/* "name=value&..." of the sorted parameters. */
static char *normalize_params(apr_pool_t *p, apr_array_header_t *params)
{
    apr_array_header_t *pairs = apr_array_make(p, params->nelts, sizeof(char *));
    const encoded_param_t *param = (const encoded_param_t *)params->elts;
    int i;

    qsort(params->elts, (size_t)params->nelts, sizeof(encoded_param_t), compare_params);
    for (i = 0; i < params->nelts; i++) {
        *(char **)apr_array_push(pairs) = apr_pstrcat(p, param[i].name, "=", param[i].value, NULL);
    }
    return apr_array_pstrcat(p, pairs, '&');
}

char *bb_oauth1_base_string(apr_pool_t *p, const char *method, const char *url, const char *form_body,
                            const apr_table_t *oauth_params)
{
    const char *query = NULL;
    char *base_uri = split_url(p, url, &query);
    apr_array_header_t *params = apr_array_make(p, 16, sizeof(encoded_param_t));

    if (base_uri == NULL) {
        return NULL;
    }
    add_encoded(p, params, bb_url_parse_query(p, query), 0);
    add_encoded(p, params, bb_url_parse_query(p, form_body), 0);
    add_encoded(p, params, oauth_params, 1);
    return apr_pstrcat(p, ascii_case(p, method, 1), "&", bb_url_encode(p, base_uri), "&",
                      bb_url_encode(p, normalize_params(p, params)), NULL);
}

/* ---- RSA-SHA1 and the Authorization header ---- */

char *bb_oauth1_sign(apr_pool_t *p, const bb_oauth1_key_t *key, const char *base_string)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t sig_len = (size_t)EVP_PKEY_get_size(key->pkey);
    unsigned char *sig = apr_palloc(p, sig_len);
    char *b64;

    if (ctx == NULL) {
        return NULL;
    }
    apr_pool_cleanup_register(p, ctx, md_ctx_cleanup, apr_pool_cleanup_null);
    /* RSASSA-PKCS1-v1_5 is the RSA default padding. OpenSSL 3's default provider signs SHA-1 digests (security
     * levels only restrict TLS and certificates); the unit tests' vectors check that on each build machine. */
    if (EVP_DigestSignInit(ctx, NULL, EVP_sha1(), NULL, key->pkey) != 1
        || EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)base_string, strlen(base_string)) != 1) {
        ERR_clear_error();
        return NULL;
    }
    b64 = apr_palloc(p, (sig_len + 2) / 3 * 4 + 1);
    EVP_EncodeBlock((unsigned char *)b64, sig, (int)sig_len);
    return b64;
}

/* The oauth_* parameters of one request, in the order the header lists them (without the signature). */
static apr_table_t *protocol_params(apr_pool_t *p, const bb_oauth1_client_t *client, const bb_oauth1_step_t *step,
                                    const char *timestamp, const char *nonce)
{
    apr_table_t *params = apr_table_make(p, 9);

    apr_table_setn(params, "oauth_consumer_key", client->consumer_key);
    if (step->token) {
        apr_table_setn(params, "oauth_token", step->token);
    }
    apr_table_setn(params, "oauth_signature_method", "RSA-SHA1");
    apr_table_setn(params, "oauth_timestamp", timestamp);
    apr_table_setn(params, "oauth_nonce", nonce);
    apr_table_setn(params, "oauth_version", "1.0");
    if (step->callback) {
        apr_table_setn(params, "oauth_callback", step->callback);
    }
    if (step->verifier) {
        apr_table_setn(params, "oauth_verifier", step->verifier);
    }
    return params;
}

/* §3.5.1: OAuth name="value", ... with names and values percent-encoded. */
static char *authorization_header(apr_pool_t *p, const apr_table_t *params)
{
    const apr_array_header_t *elts = apr_table_elts(params);
    const apr_table_entry_t *entry = (const apr_table_entry_t *)elts->elts;
    apr_array_header_t *items = apr_array_make(p, elts->nelts, sizeof(char *));
    int i;

    /* Joined with ',' below; every item but the first starts with the space of the ", " separator. */
    for (i = 0; i < elts->nelts; i++) {
        *(char **)apr_array_push(items) = apr_pstrcat(p, i ? " " : "", bb_url_encode(p, entry[i].key), "=\"",
                                                      bb_url_encode(p, entry[i].val), "\"", NULL);
    }
    return apr_pstrcat(p, "OAuth ", apr_array_pstrcat(p, items, ','), NULL);
}

char *bb_oauth1_authorization_at(apr_pool_t *p, const bb_oauth1_client_t *client, const char *method,
                                 const char *url, const bb_oauth1_step_t *step, const char *timestamp,
                                 const char *nonce)
{
    apr_table_t *params = protocol_params(p, client, step, timestamp, nonce);
    const char *base_string = bb_oauth1_base_string(p, method, url, NULL, params);
    const char *signature = base_string ? bb_oauth1_sign(p, client->key, base_string) : NULL;

    if (signature == NULL) {
        return NULL;
    }
    apr_table_setn(params, "oauth_signature", signature);
    return authorization_header(p, params);
}

char *bb_oauth1_authorization(apr_pool_t *p, const bb_oauth1_client_t *client, const char *method,
                              const char *url, const bb_oauth1_step_t *step)
{
    const char *nonce = bb_random_token(p, NONCE_BYTES);
    const char *timestamp = apr_psprintf(p, "%" APR_TIME_T_FMT, apr_time_sec(apr_time_now()));

    return nonce ? bb_oauth1_authorization_at(p, client, method, url, step, timestamp, nonce) : NULL;
}

const char *bb_oauth1_authorizer(apr_pool_t *p, void *baton, const char *method, const char *url)
{
    const bb_oauth1_baton_t *signer = baton;
    bb_oauth1_step_t step = { signer->access_token, NULL, NULL };

    return bb_oauth1_authorization(p, signer->client, method, url, &step);
}

/* ---- Bitbucket's answers ---- */

/* s lower-cased and reduced to [a-z_], at most max characters. With a separator, each run of other characters
 * between kept ones becomes the separator (for lists of names); without one they are dropped. */
static const char *reduce_name(apr_pool_t *p, const char *s, apr_size_t max, const char *separator)
{
    apr_size_t sep_len = separator ? strlen(separator) : 0;
    char *out = apr_palloc(p, max + 1);
    apr_size_t n = 0;
    int pending_separator = 0;

    for (; *s && n < max; s++) {
        char c = (char)apr_tolower(*s);
        if (!((c >= 'a' && c <= 'z') || c == '_')) {
            pending_separator = n > 0;
            continue;
        }
        if (pending_separator && sep_len) {
            if (n + sep_len >= max) {
                break;
            }
            memcpy(out + n, separator, sep_len);
            n += sep_len;
        }
        pending_separator = 0;
        out[n++] = c;
    }
    out[n] = '\0';
    return out;
}

/* Fills problem from decoded oauth_problem / oauth_parameters_* parameters; 1 when there is a problem. */
static int problem_from_params(apr_pool_t *p, const apr_table_t *params, bb_oauth1_problem_t *problem)
{
    const char *name = apr_table_get(params, "oauth_problem");
    const char *absent = apr_table_get(params, "oauth_parameters_absent");
    const char *rejected = apr_table_get(params, "oauth_parameters_rejected");
    const char *parameters = absent ? absent : rejected;

    if (name == NULL) {
        return 0;
    }
    problem->name = reduce_name(p, name, PROBLEM_NAME_MAX, NULL);
    if (*problem->name == '\0') {
        problem->name = "unreadable";
    }
    problem->parameters = parameters ? reduce_name(p, parameters, PROBLEM_PARAMETERS_MAX, ", ") : NULL;
    return 1;
}

/* The value of name as a string, NULL when absent, empty or repeated. */
static const char *form_value(const apr_table_t *form, const char *name)
{
    const char *value = bb_url_query_single(form, name);
    return value && *value ? value : NULL;
}

bb_oauth1_token_t *bb_oauth1_parse_token_body(apr_pool_t *p, const char *body)
{
    apr_table_t *form = bb_url_parse_query(p, body);
    bb_oauth1_token_t *token = apr_pcalloc(p, sizeof(*token));
    const char *confirmed = form_value(form, "oauth_callback_confirmed");
    const char *expires_in = form_value(form, "oauth_expires_in");
    char *end;

    token->token = form_value(form, "oauth_token");
    token->token_secret = form_value(form, "oauth_token_secret");
    token->callback_confirmed = confirmed && strcmp(confirmed, "true") == 0;
    if (expires_in) {
        apr_int64_t seconds = apr_strtoi64(expires_in, &end, 10);
        token->expires_in = *end == '\0' && seconds > 0 ? seconds : 0;
    }
    problem_from_params(p, form, &token->problem);
    return token;
}

/* Skips spaces, tabs and commas. */
static const char *skip_separators(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == ',') {
        s++;
    }
    return s;
}

/* The decoded name="value" parameters of an "OAuth" challenge (RFC 5849 §3.5.1 syntax, which Bitbucket's
 * WWW-Authenticate uses too), or NULL for another scheme. Stops at the first malformed parameter. */
static apr_table_t *parse_challenge(apr_pool_t *p, const char *header)
{
    apr_table_t *params;
    const char *s = skip_separators(header);

    if (strncasecmp(s, "OAuth", 5) != 0 || (s[5] != '\0' && s[5] != ' ' && s[5] != '\t')) {
        return NULL;
    }
    params = apr_table_make(p, 4);
    for (s = skip_separators(s + 5); *s; s = skip_separators(s)) {
        const char *name = s;
        apr_size_t name_len = strcspn(name, "= \t,");
        const char *value;
        apr_size_t value_len;
        int quoted;
        char *decoded;

        if (name[name_len] != '=') {
            break;
        }
        value = name + name_len + 1;
        quoted = *value == '"';
        value += quoted;
        value_len = strcspn(value, quoted ? "\"" : " \t,");
        if (quoted && value[value_len] != '"') {
            break;
        }
        s = value + value_len + quoted;
        decoded = bb_url_decode(p, value, value_len, 0);
        if (decoded) {
            apr_table_setn(params, apr_pstrmemdup(p, name, name_len), decoded);
        }
    }
    return params;
}

int bb_oauth1_parse_www_authenticate(apr_pool_t *p, const char *header, bb_oauth1_problem_t *problem)
{
    apr_table_t *params = parse_challenge(p, header);
    return params != NULL && problem_from_params(p, params, problem);
}

/* What each known oauth_problem means for the administrator (net.oauth's problem names, which Bitbucket uses). */
static const struct {
    const char *name;
    const char *advice;
} problem_advice[] = {
    { "consumer_key_unknown", "BBAuthClientID does not match the Consumer Key of the application link" },
    { "consumer_key_rejected", "Bitbucket rejects this consumer: check the application link's Incoming "
                               "Authentication" },
    { "consumer_key_refused", "Bitbucket refuses this consumer for now: check the application link, then try "
                              "again" },
    { "signature_invalid", "the Public Key in the application link does not match BBAuthOAuth1PrivateKey "
                           "(or a proxy changes the URL: BBAuthBitbucketURL must be the URL Bitbucket sees)" },
    { "signature_method_rejected", "Bitbucket does not accept RSA-SHA1 from this consumer: give the application "
                                   "link's Incoming Authentication the Public Key of BBAuthOAuth1PrivateKey" },
    { "timestamp_refused", "this server's time is too far from Bitbucket's: check this server's clock (NTP)" },
    { "nonce_used", "Bitbucket saw this nonce before: check this server's clock (NTP), or a proxy replays requests" },
    { "token_rejected", "the login took too long or was replayed; start again" },
    { "token_expired", "the login took too long or was replayed; start again" },
    { "token_used", "the login took too long or was replayed; start again" },
    { "token_revoked", "the access was revoked in Bitbucket; log in again" },
    { "permission_denied", "the user did not approve, or the link does not allow 3-legged OAuth" },
    { "permission_unknown", "the user did not approve, or the link does not allow 3-legged OAuth" },
    { "additional_authorization_required", "the access token does not allow this call; log in again" },
    { "parameter_absent", "Bitbucket misses OAuth parameters: does a proxy drop the Authorization header?" },
    { "parameter_rejected", "Bitbucket rejects OAuth parameters (for oauth_callback: BBAuthRedirectURI must be an "
                            "absolute http(s) URL)" },
    { "version_rejected", "Bitbucket does not accept OAuth version 1.0 from this consumer" },
    { "user_refused", "Bitbucket refuses this user for now; try again later" },
};

static const char *advice_for(const char *problem_name)
{
    apr_size_t i;

    for (i = 0; i < sizeof(problem_advice) / sizeof(problem_advice[0]); i++) {
        if (strcmp(problem_advice[i].name, problem_name) == 0) {
            return problem_advice[i].advice;
        }
    }
    return "a problem this module does not know";
}

static const char *problem_message(apr_pool_t *p, const char *where, const bb_oauth1_problem_t *problem)
{
    const char *parameters = problem->parameters ? apr_psprintf(p, " (parameters: %s)", problem->parameters) : "";

    return apr_psprintf(p, "%s: Bitbucket refused with oauth_problem=%s%s: %s", where, problem->name, parameters,
                        advice_for(problem->name));
}

/* apr_table_do callback: the first WWW-Authenticate OAuth challenge that names a problem fills the baton. */
typedef struct {
    apr_pool_t *p;
    bb_oauth1_problem_t problem;
} challenge_search_t;

static int find_challenge_problem(void *baton, const char *key, const char *value)
{
    challenge_search_t *search = baton;
    return !bb_oauth1_parse_www_authenticate(search->p, value, &search->problem);
}

const char *bb_oauth1_challenge_problem(apr_pool_t *p, const bb_http_response_t *resp)
{
    challenge_search_t search = { p, { NULL, NULL } };

    if (resp->headers) {
        apr_table_do(find_challenge_problem, &search, resp->headers, "WWW-Authenticate", NULL);
    }
    return search.problem.name
        ? apr_psprintf(p, "oauth_problem=%s: %s", search.problem.name, advice_for(search.problem.name)) : NULL;
}

/* Whether the answer's body is form data, as the token endpoints send (text/plain, or the form type). */
static int is_form_answer(const bb_http_response_t *resp)
{
    return strcmp(resp->content_type, "text/plain") == 0
        || strcmp(resp->content_type, "application/x-www-form-urlencoded") == 0;
}

bb_status_t bb_oauth1_parse_token_response(apr_pool_t *p, const bb_http_response_t *resp, const char *what,
                                           const char *url, int require_confirmed, bb_oauth1_token_t **token,
                                           const char **errmsg)
{
    const char *where = apr_psprintf(p, "OAuth 1 %s at %s", what, bb_url_for_log(p, url));
    int form = is_form_answer(resp);
    bb_oauth1_token_t *answer = bb_oauth1_parse_token_body(p, form ? resp->body : NULL);
    challenge_search_t search = { p, { NULL, NULL } };

    *token = NULL;
    /* The header names the problem on every error; the token endpoints' body repeats it, there with the names
     * of absent or rejected parameters, so the body is preferred. */
    apr_table_do(find_challenge_problem, &search, resp->headers, "WWW-Authenticate", NULL);
    if (answer->problem.name || search.problem.name) {
        *errmsg = problem_message(p, where, answer->problem.name ? &answer->problem : &search.problem);
        return BB_DENIED;
    }
    if (resp->status != 200 || !form) {
        *errmsg = apr_psprintf(p, "%s: %s", where, bb_http_describe(p, resp));
        return BB_BAD_RESPONSE;
    }
    if (answer->token == NULL || answer->token_secret == NULL) {
        *errmsg = apr_psprintf(p, "%s: HTTP 200 without oauth_token and oauth_token_secret", where);
        return BB_BAD_RESPONSE;
    }
    if (require_confirmed && !answer->callback_confirmed) {
        *errmsg = apr_psprintf(p, "%s: Bitbucket did not answer oauth_callback_confirmed=true (OAuth 1.0 instead "
                               "of 1.0a), so no oauth_verifier would come back", where);
        return BB_BAD_RESPONSE;
    }
    *token = answer;
    return BB_OK;
}

/* ---- the three legs ---- */

/* POSTs a signed, empty form to a token endpoint and reads the answer. */
static bb_status_t token_leg(apr_pool_t *p, const bb_oauth1_client_t *client, const bb_http_opts_t *http,
                             const char *what, const char *path, const bb_oauth1_step_t *step,
                             int require_confirmed, bb_oauth1_token_t **token, const char **errmsg)
{
    const char *url = bb_url_join(p, client->base_url, path);
    const char *authorization = bb_oauth1_authorization(p, client, "POST", url, step);
    apr_table_t *headers = apr_table_make(p, 1);
    bb_http_response_t *resp;
    bb_status_t status;

    *token = NULL;
    if (authorization == NULL) {
        /* Not Bitbucket's fault, but the call cannot be made: the closest outcome is "unavailable". */
        *errmsg = apr_psprintf(p, "OAuth 1 %s: cannot sign the request (no randomness, or OpenSSL refuses "
                               "RSA-SHA1 signatures)", what);
        return BB_UNAVAILABLE;
    }
    apr_table_setn(headers, "Authorization", authorization);
    /* An empty form body: no body parameters to sign, and a Content-Length that every server accepts. */
    status = bb_http_request(p, http, "POST", url, headers, "", "application/x-www-form-urlencoded", &resp, errmsg);
    if (status != BB_OK) {
        return status;
    }
    return bb_oauth1_parse_token_response(p, resp, what, url, require_confirmed, token, errmsg);
}

bb_status_t bb_oauth1_request_token(apr_pool_t *p, const bb_oauth1_client_t *client, const bb_http_opts_t *http,
                                    bb_oauth1_token_t **token, const char **errmsg)
{
    bb_oauth1_step_t step = { NULL, client->callback_uri, NULL };

    return token_leg(p, client, http, "request token", BB_OAUTH1_REQUEST_TOKEN_PATH, &step, 1, token, errmsg);
}

char *bb_oauth1_authorize_url(apr_pool_t *p, const bb_oauth1_client_t *client, const char *request_token)
{
    return bb_url_with_query(p, bb_url_join(p, client->base_url, BB_OAUTH1_AUTHORIZE_PATH), "oauth_token", request_token,
                             (char *)NULL);
}

bb_status_t bb_oauth1_access_token(apr_pool_t *p, const bb_oauth1_client_t *client, const bb_http_opts_t *http,
                                   const char *request_token, const char *verifier, bb_oauth1_token_t **token,
                                   const char **errmsg)
{
    bb_oauth1_step_t step = { request_token, NULL, verifier };

    *token = NULL;
    if (verifier == NULL || *verifier == '\0') {
        *errmsg = "OAuth 1 access token: the callback came without oauth_verifier";
        return BB_DENIED;
    }
    /* What Bitbucket's authorize page sends back when the user clicks Deny. */
    if (strcmp(verifier, "denied") == 0) {
        *errmsg = "OAuth 1 access token: the user did not approve the access in Bitbucket";
        return BB_DENIED;
    }
    /* The request token and verifier are good for one exchange: never sent twice (bb_http_once). */
    return token_leg(p, client, bb_http_once(p, http), "access token", BB_OAUTH1_ACCESS_TOKEN_PATH, &step, 0, token,
                     errmsg);
}
