/* mod_bbauth_oauth1.c: the OAuth 1.0a login steps (BBAuthOAuthVersion 1): request token, authorize, callback, access token. */
#include <apr_strings.h>
#include <http_protocol.h>

#include "mod_bbauth.h"
#include "bb_url.h"

/* Bitbucket's own authorize page answers this verifier when the user clicks Deny. */
#define DENIED_VERIFIER "denied"

int bbauth_oauth1_start_login(request_rec *r, const bbauth_server_conf *conf, const char *return_to)
{
    bb_oauth1_token_t *token = NULL;
    bb_login_state_t login;
    const char *errmsg = NULL;

    /* A subrequest cannot send the browser anywhere: no request token for it. */
    if (r->main) {
        return HTTP_UNAUTHORIZED;
    }
    if (bbauth_count_login_step(bb_oauth1_request_token(r->pool, &conf->oauth1, &conf->http, &token, &errmsg),
                                &errmsg) != BB_OK) {
        bbauth_login_failed(r, HTTP_BAD_GATEWAY, errmsg, return_to);
        /* The page is written. This also runs in check_authn, where OK would mean "authenticated". */
        return DONE;
    }
    /* The request token is the login's state: the callback brings it back as oauth_token. */
    login.state = token->token;
    login.verifier = NULL;
    login.return_to = return_to;
    login.exp = bbauth_now() + BBAUTH_LOGIN_TTL;
    if (bbauth_set_login_state(r, conf, &login) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return bbauth_redirect(r, bb_oauth1_authorize_url(r->pool, &conf->oauth1, token->token));
}

int bbauth_oauth1_callback(request_rec *r, const bbauth_server_conf *conf)
{
    apr_table_t *query = bb_url_parse_query(r->pool, r->args);
    const char *request_token = bb_url_query_single(query, "oauth_token");
    const char *verifier = bb_url_query_single(query, "oauth_verifier");
    bb_oauth1_token_t *access = NULL;
    bb_oauth1_baton_t signer;
    bb_login_state_t *login;
    const char *errmsg = NULL;
    int rc;

    if (!request_token || !*request_token || !verifier || !*verifier) {
        bbauth_count(BB_M_LOGIN_FAILED_BAD_ANSWER);
        return bbauth_page(r, HTTP_BAD_REQUEST, "Bad login answer", "This is not a complete answer from "
                           "Bitbucket (one oauth_token and one oauth_verifier expected).", "/");
    }
    rc = bbauth_claim_login(r, conf, request_token, &login);
    if (!login) {
        return rc;
    }
    if (!strcmp(verifier, DENIED_VERIFIER)) {
        return bbauth_login_denied(r, login->return_to);
    }
    if (bbauth_count_login_step(bb_oauth1_access_token(r->pool, &conf->oauth1, &conf->http, request_token, verifier,
                                                       &access, &errmsg), &errmsg) != BB_OK) {
        return bbauth_login_failed(r, HTTP_BAD_GATEWAY, errmsg, login->return_to);
    }
    signer.client = &conf->oauth1;
    signer.access_token = access->token;
    return bbauth_login_identified(r, conf, login, bb_oauth1_authorizer, &signer, NULL);
}
