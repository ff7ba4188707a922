/* bb_oauth2: Bitbucket's OAuth 2 provider: the authorize URL, the authorization-code exchange, the refresh grant and revocation. */
#ifndef BB_OAUTH2_H
#define BB_OAUTH2_H

#include <apr_pools.h>
#include "bb_util.h"
#include "bb_http.h"

/* The provider's endpoints, under the base URL. */
#define BB_OAUTH2_AUTHORIZE_PATH "/rest/oauth2/latest/authorize"
#define BB_OAUTH2_TOKEN_PATH     "/rest/oauth2/latest/token"
#define BB_OAUTH2_REVOKE_PATH    "/rest/oauth2/latest/revoke"

typedef struct {
    const char *base_url;        /* Bitbucket base URL, no trailing '/' */
    const char *client_id;
    const char *client_secret;
    const char *redirect_uri;    /* exactly as registered in the application link */
    const char *scope;           /* space-separated, e.g. "REPO_READ" */
} bb_oauth2_client_t;

/* Largest expires_in passed on (one year); longer lifetimes are cut to it. */
#define BB_OAUTH2_MAX_EXPIRES_IN 31536000

typedef struct {
    const char *access_token;    /* printable ASCII, no spaces */
    const char *refresh_token;   /* may be NULL */
    const char *scope;           /* from "scope" or Bitbucket's "scopes"; may be NULL */
    apr_int64_t expires_in;      /* seconds, 0..BB_OAUTH2_MAX_EXPIRES_IN; 0 when not given or not positive */
} bb_oauth2_tokens_t;

/* <base>/rest/oauth2/latest/authorize?response_type=code&client_id&redirect_uri&scope&state
 * &code_challenge&code_challenge_method=S256 */
char *bb_oauth2_authorize_url(apr_pool_t *p, const bb_oauth2_client_t *client, const char *state,
                              const char *code_challenge);

/* POST <base>/rest/oauth2/latest/token, grant_type=authorization_code, client_secret_post, with the verifier. */
bb_status_t bb_oauth2_exchange_code(apr_pool_t *p, const bb_oauth2_client_t *client, const bb_http_opts_t *http,
                                    const char *code, const char *verifier, bb_oauth2_tokens_t **tokens,
                                    const char **errmsg);

/* POST <base>/rest/oauth2/latest/token, grant_type=refresh_token (redirect_uri sent too, as some versions want). */
bb_status_t bb_oauth2_refresh(apr_pool_t *p, const bb_oauth2_client_t *client, const bb_http_opts_t *http,
                              const char *refresh_token, bb_oauth2_tokens_t **tokens, const char **errmsg);

/* POST <base>/rest/oauth2/latest/revoke with token, token_type_hint ("refresh_token" or "access_token"),
 * client_id and client_secret. BB_OK for a 200 (also when Bitbucket no longer knew the token); a 4xx with a JSON
 * "error" → BB_DENIED; anything else as the token endpoint ("token revocation at <url>: ..."). */
bb_status_t bb_oauth2_revoke(apr_pool_t *p, const bb_oauth2_client_t *client, const bb_http_opts_t *http,
                             const char *token, const char *token_type_hint, const char **errmsg);

/* Reads a token-endpoint answer (its messages are worded for the code exchange; the refresh has its own):
 *   BB_OK            200 JSON object with a string access_token; token_type, if given, is bearer in any case;
 *                    refresh_token, scope/scopes and expires_in, if given, of the right type (null = absent)
 *   BB_DENIED        a 4xx with a JSON "error": "token exchange at <url> refused: invalid_grant
 *                    (<hint>)"; the code is reduced to [A-Za-z0-9_.-], error_description is never shown
 *   BB_BAD_RESPONSE  anything else: 5xx, redirects, HTML (bb_http_describe), bad JSON, members of a wrong type:
 *                    "token exchange at <url>: unusable answer: <what> (<what to check>)"
 * No message ever holds a token, the code, the secret or the body. url is for the message only. The two calls
 * below return these too, and bb_http_request's failures prefixed "token exchange: " / "token refresh: ". */
bb_status_t bb_oauth2_parse_token_response(apr_pool_t *p, const bb_http_response_t *resp, const char *url,
                                           bb_oauth2_tokens_t **tokens, const char **errmsg);

#endif
