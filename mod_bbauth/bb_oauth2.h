/* bb_oauth2: Bitbucket's OAuth 2 provider: the authorize URL, the authorization-code exchange and the refresh grant. */
#ifndef BB_OAUTH2_H
#define BB_OAUTH2_H

#include <apr_pools.h>
#include "bb_util.h"
#include "bb_http.h"

typedef struct {
    const char *base_url;        /* Bitbucket base URL, no trailing '/' */
    const char *client_id;
    const char *client_secret;
    const char *redirect_uri;    /* exactly as registered in the application link */
    const char *scope;           /* space-separated, e.g. "REPO_READ" */
} bb_oauth2_client_t;

typedef struct {
    const char *access_token;
    const char *refresh_token;   /* may be NULL */
    const char *scope;           /* from "scope" or Bitbucket's "scopes"; may be NULL */
    apr_int64_t expires_in;      /* seconds; 0 when not given */
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

/* Reads a token-endpoint answer: 200 JSON with access_token → BB_OK; a JSON OAuth error (invalid_grant,
 * invalid_client, ...) → BB_DENIED with the error code (never the description's secrets) and a hint in *errmsg;
 * 5xx, HTML, redirects, bad JSON → BB_BAD_RESPONSE. url is for the message only. */
bb_status_t bb_oauth2_parse_token_response(apr_pool_t *p, const bb_http_response_t *resp, const char *url,
                                           bb_oauth2_tokens_t **tokens, const char **errmsg);

#endif
