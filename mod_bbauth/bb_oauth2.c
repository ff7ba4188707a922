/* bb_oauth2: Bitbucket's OAuth 2 provider: the authorize URL, and the code and refresh grants at the token endpoint. */
#include <string.h>
#include <apr_strings.h>
#include <jansson.h>
#include "bb_oauth2.h"
#include "bb_url.h"

/* Longest OAuth error code shown; the standard ones have at most 25 characters. */
#define MAX_ERROR_CODE 40

/* What tells the two grants apart in messages. */
typedef struct {
    const char *what;
    const char *invalid_grant_hint;
} grant_t;

static const grant_t code_grant = {
    "token exchange",
    "the code was already used or has expired, or the PKCE verifier or redirect_uri did not match: log in again"
};
static const grant_t revocation = {
    "token revocation",
    "Bitbucket no longer knows the token"
};
static const grant_t refresh_grant = {
    "token refresh",
    "the refresh token has expired, was revoked or was already used by a concurrent refresh, or "
    "BBAuthRedirectURI is no longer registered in the application link: log in again"
};

/* What the administrator can do about the other error codes of the token endpoint. */
static const struct {
    const char *error;
    const char *hint;
} error_hints[] = {
    { "invalid_client", "check BBAuthClientID and BBAuthClientSecret against the application link, and that the "
                        "link still lists BBAuthRedirectURI" },
    { "invalid_request", "Bitbucket misses a parameter it requires: check that it is 7.21 or later" },
    { "unsupported_grant_type", "this Bitbucket does not offer the grant: check that it is 7.21 or later" },
    { "invalid_scope", "check BBAuthScope against the scopes the application link allows" },
};

char *bb_oauth2_authorize_url(apr_pool_t *p, const bb_oauth2_client_t *client, const char *state,
                              const char *code_challenge)
{
    return bb_url_with_query(p, bb_url_join(p, client->base_url, BB_OAUTH2_AUTHORIZE_PATH),
                             "response_type", "code",
                             "client_id", client->client_id,
                             "redirect_uri", client->redirect_uri,
                             "scope", client->scope,
                             "state", state,
                             "code_challenge", code_challenge,
                             /* Without the method Bitbucket silently ignores the challenge. */
                             "code_challenge_method", code_challenge ? "S256" : NULL,
                             (char *)NULL);
}

/* The member key of obj, or NULL when absent or JSON null. */
static const json_t *member(const json_t *obj, const char *key)
{
    const json_t *value = json_object_get(obj, key);
    return json_is_null(value) ? NULL : value;
}

/* Whether a token is non-empty printable ASCII without spaces: it goes into an Authorization header. */
static int is_token_text(const char *s, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) {
            return 0;
        }
    }
    return len > 0;
}

/* Reads an optional token member into *token (NULL when absent); 0 when it is there but not a usable token. */
static int read_token(apr_pool_t *p, const json_t *obj, const char *key, const char **token)
{
    const json_t *value = member(obj, key);

    *token = NULL;
    if (value == NULL) {
        return 1;
    }
    if (!json_is_string(value) || !is_token_text(json_string_value(value), json_string_length(value))) {
        return 0;
    }
    *token = apr_pstrdup(p, json_string_value(value));
    return 1;
}

/* Reads "scope", or Bitbucket's "scopes" (a string, or an array of strings joined with spaces) into *scope
 * (NULL when neither is there); 0 when of another shape. */
static int read_scope(apr_pool_t *p, const json_t *obj, const char **scope)
{
    const json_t *value = member(obj, "scope");
    apr_array_header_t *names;
    const json_t *name;
    size_t i;

    *scope = NULL;
    if (value == NULL) {
        value = member(obj, "scopes");
    }
    if (value == NULL) {
        return 1;
    }
    if (json_is_string(value)) {
        *scope = bb_strip_controls(p, json_string_value(value));
        return 1;
    }
    if (!json_is_array(value)) {
        return 0;
    }
    names = apr_array_make(p, (int)json_array_size(value), sizeof(const char *));
    json_array_foreach(value, i, name) {
        if (!json_is_string(name)) {
            return 0;
        }
        APR_ARRAY_PUSH(names, const char *) = bb_strip_controls(p, json_string_value(name));
    }
    *scope = apr_array_pstrcat(p, names, ' ');
    return 1;
}

/* Reads the optional "expires_in" into *seconds (0 when absent), within 0..BB_OAUTH2_MAX_EXPIRES_IN so that
 * adding it to a time cannot overflow; 0 when it is not an integer. */
static int read_expires_in(const json_t *obj, apr_int64_t *seconds)
{
    const json_t *value = member(obj, "expires_in");
    json_int_t given = json_integer_value(value);

    *seconds = 0;
    if (value == NULL) {
        return 1;
    }
    if (!json_is_integer(value)) {
        return 0;
    }
    if (given > 0) {
        *seconds = given < BB_OAUTH2_MAX_EXPIRES_IN ? (apr_int64_t)given : BB_OAUTH2_MAX_EXPIRES_IN;
    }
    return 1;
}

/* Only bearer tokens can be presented; a missing token_type is taken as bearer. */
static int is_bearer(const json_t *obj)
{
    const json_t *value = member(obj, "token_type");
    return value == NULL || (json_is_string(value) && strcasecmp(json_string_value(value), "bearer") == 0);
}

/* Reads a successful answer's object into tokens; returns what is wrong with it, or NULL. */
static const char *read_tokens(apr_pool_t *p, const json_t *obj, bb_oauth2_tokens_t *tokens)
{
    if (obj == NULL) {
        return "HTTP 200 with a body that is not valid JSON";
    }
    if (!json_is_object(obj)) {
        return "HTTP 200 without a JSON object";
    }
    if (!read_token(p, obj, "access_token", &tokens->access_token)) {
        return "access_token is not a string of printable characters";
    }
    if (tokens->access_token == NULL) {
        return "HTTP 200 without an access_token";
    }
    if (!read_token(p, obj, "refresh_token", &tokens->refresh_token)) {
        return "refresh_token is not a string of printable characters";
    }
    if (!is_bearer(obj)) {
        return "token_type is not bearer, the only kind this module can present";
    }
    if (!read_scope(p, obj, &tokens->scope)) {
        return "scope is neither a string nor an array of strings";
    }
    if (!read_expires_in(obj, &tokens->expires_in)) {
        return "expires_in is not an integer";
    }
    return NULL;
}

static int is_json(const bb_http_response_t *resp)
{
    apr_size_t len = strlen(resp->content_type);
    return strcmp(resp->content_type, "application/json") == 0
        || (len > 5 && strcmp(resp->content_type + len - 5, "+json") == 0);
}

/* The "error" of an OAuth error answer reduced to [A-Za-z0-9_.-] and capped, or NULL when there is none. */
static const char *error_code(apr_pool_t *p, const json_t *obj)
{
    static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
    const char *error = bb_json_string(p, obj, "error");
    char *code, *o;
    const char *c;

    if (error == NULL) {
        return NULL;
    }
    code = o = apr_pstrndup(p, error, MAX_ERROR_CODE);
    for (c = code; *c; c++) {
        if (strchr(allowed, *c)) {
            *o++ = *c;
        }
    }
    *o = '\0';
    return *code ? code : "an unreadable error code";
}

/* "<what> at <url> refused: <code> (<hint>)". error_description is left out: it could echo what was sent. */
static const char *refusal(apr_pool_t *p, const char *where, const grant_t *grant, const char *code)
{
    const char *hint = strcmp(code, "invalid_grant") == 0 ? grant->invalid_grant_hint : NULL;
    size_t i;

    for (i = 0; hint == NULL && i < sizeof(error_hints) / sizeof(error_hints[0]); i++) {
        if (strcmp(code, error_hints[i].error) == 0) {
            hint = error_hints[i].hint;
        }
    }
    return hint ? apr_psprintf(p, "%s refused: %s (%s)", where, code, hint)
                : apr_psprintf(p, "%s refused: %s", where, code);
}

static bb_status_t read_answer(apr_pool_t *p, const bb_http_response_t *resp, const char *url,
                               const grant_t *grant, bb_oauth2_tokens_t **tokens, const char **errmsg)
{
    const char *where = apr_psprintf(p, "%s at %s", grant->what, bb_url_for_log(p, url));
    const json_t *json = is_json(resp) ? bb_json_parse(p, resp->body, resp->body_len) : NULL;
    /* Only a 4xx is a refusal; a 5xx is Bitbucket failing, whatever its body says. */
    const char *code = resp->status >= 400 && resp->status < 500 ? error_code(p, json) : NULL;
    bb_oauth2_tokens_t *answer;
    const char *problem;

    *tokens = NULL;
    if (code) {
        *errmsg = refusal(p, where, grant, code);
        return BB_DENIED;
    }
    if (resp->status != 200 || !is_json(resp)) {
        *errmsg = apr_psprintf(p, "%s: unusable answer: %s", where, bb_http_describe(p, resp));
        return BB_BAD_RESPONSE;
    }
    answer = apr_pcalloc(p, sizeof(*answer));
    problem = read_tokens(p, json, answer);
    if (problem) {
        *errmsg = apr_psprintf(p, "%s: unusable answer: %s" BB_HTTP_NOT_BITBUCKET, where, problem);
        return BB_BAD_RESPONSE;
    }
    *tokens = answer;
    return BB_OK;
}

bb_status_t bb_oauth2_parse_token_response(apr_pool_t *p, const bb_http_response_t *resp, const char *url,
                                           bb_oauth2_tokens_t **tokens, const char **errmsg)
{
    return read_answer(p, resp, url, &code_grant, tokens, errmsg);
}

/* POSTs the form to url (one of Bitbucket's OAuth 2 endpoints); a failure's *errmsg begins with the step. */
static bb_status_t post_form(apr_pool_t *p, const bb_http_opts_t *http, const char *url, const grant_t *step,
                             const char *form, bb_http_response_t **resp, const char **errmsg)
{
    apr_table_t *headers = apr_table_make(p, 1);
    bb_status_t status;

    apr_table_setn(headers, "Accept", "application/json");
    status = bb_http_request(p, http, "POST", url, headers, form, "application/x-www-form-urlencoded", resp,
                             errmsg);
    if (status != BB_OK) {
        *errmsg = apr_psprintf(p, "%s: %s", step->what, *errmsg);
    }
    return status;
}

/* POSTs the form, which carries a code or a refresh token that Bitbucket accepts once, to the token endpoint
 * (never twice: bb_http_once) and reads the answer. */
static bb_status_t token_request(apr_pool_t *p, const bb_oauth2_client_t *client, const bb_http_opts_t *http,
                                 const grant_t *grant, const char *form, bb_oauth2_tokens_t **tokens,
                                 const char **errmsg)
{
    const char *url = bb_url_join(p, client->base_url, BB_OAUTH2_TOKEN_PATH);
    bb_http_response_t *resp;
    bb_status_t status;

    *tokens = NULL;
    status = post_form(p, bb_http_once(p, http), url, grant, form, &resp, errmsg);
    if (status != BB_OK) {
        return status;
    }
    return read_answer(p, resp, url, grant, tokens, errmsg);
}

bb_status_t bb_oauth2_exchange_code(apr_pool_t *p, const bb_oauth2_client_t *client, const bb_http_opts_t *http,
                                    const char *code, const char *verifier, bb_oauth2_tokens_t **tokens,
                                    const char **errmsg)
{
    const char *form = bb_url_form(p, "grant_type", "authorization_code",
                                   "code", code,
                                   "redirect_uri", client->redirect_uri,
                                   "client_id", client->client_id,
                                   "client_secret", client->client_secret,
                                   "code_verifier", verifier,
                                   (char *)NULL);

    return token_request(p, client, http, &code_grant, form, tokens, errmsg);
}

bb_status_t bb_oauth2_refresh(apr_pool_t *p, const bb_oauth2_client_t *client, const bb_http_opts_t *http,
                              const char *refresh_token, bb_oauth2_tokens_t **tokens, const char **errmsg)
{
    const char *form = bb_url_form(p, "grant_type", "refresh_token",
                                   "refresh_token", refresh_token,
                                   "client_id", client->client_id,
                                   "client_secret", client->client_secret,
                                   /* Some provider versions check it on refresh too (a bare invalid_grant). */
                                   "redirect_uri", client->redirect_uri,
                                   (char *)NULL);

    return token_request(p, client, http, &refresh_grant, form, tokens, errmsg);
}

bb_status_t bb_oauth2_revoke(apr_pool_t *p, const bb_oauth2_client_t *client, const bb_http_opts_t *http,
                             const char *token, const char *token_type_hint, const char **errmsg)
{
    const char *url = bb_url_join(p, client->base_url, BB_OAUTH2_REVOKE_PATH);
    const char *form = bb_url_form(p, "token", token,
                                   "token_type_hint", token_type_hint,
                                   "client_id", client->client_id,
                                   "client_secret", client->client_secret,
                                   (char *)NULL);
    bb_http_response_t *resp;
    bb_oauth2_tokens_t *ignored;
    bb_status_t status = post_form(p, http, url, &revocation, form, &resp, errmsg);

    if (status != BB_OK) {
        return status;
    }
    if (resp->status == 200) {
        return BB_OK;
    }
    /* Not a 200: read_answer words the refusal (a 4xx with an error code) or the unusable answer. */
    return read_answer(p, resp, url, &revocation, &ignored, errmsg);
}
