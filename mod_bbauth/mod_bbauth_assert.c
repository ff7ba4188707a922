/* mod_bbauth_assert.c: public-key identity for upstream apps: BBAuthIdentityAssertion's signed header and SetHandler bbauth-jwks. */
#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>

#include "mod_bbauth.h"
#include "bb_jwk.h"

#define JWKS_HANDLER      "bbauth-jwks"
/* Seconds upstream apps (and caches between) may keep the JWK Set: short, so that a key added for a rotation is
 * fetched soon; PyJWKClient and jose also refetch on an unknown kid. Documented in the README. */
#define JWKS_MAX_AGE      300
/* An assertion is reused while more than this many of its seconds remain, so the upstream always gets one that
 * is valid for at least that long. */
#define ASSERTION_REUSE_MARGIN 30

static const bbauth_server_conf *server_conf(request_rec *r)
{
    return ap_get_module_config(r->server->module_config, &bbauth_module);
}

/* The assertion for who at this location: from the memo while it has margin left, else signed now and kept. The memo
 * belongs to this server's configuration, whose origin is fixed: the location's path tells its audiences apart, and
 * the audience is only spelled out for a signature. */
static const char *assertion_for(request_rec *r, const bbauth_server_conf *conf, const bbauth_dir_conf *dconf,
                                 const bb_session_t *who, const char *memo_id)
{
    const char *memo_key = apr_pstrcat(r->pool, memo_id, "\n", dconf->assertion_path, NULL);
    apr_int64_t now = bbauth_now();
    bb_memo_value_t value;
    char *assertion;

    if (bb_memo_get(conf->assertion_memo, r->pool, memo_key, strlen(memo_key), now, &value)) {
        return value.s[0];
    }
    assertion = bb_session_assertion(r->pool, conf->session_keys, conf->redirect_origin,
                                     apr_pstrcat(r->pool, conf->redirect_origin, dconf->assertion_path, NULL),
                                     who, now);
    if (assertion) {
        memset(&value, 0, sizeof(value));
        value.s[0] = assertion;
        bb_memo_put(conf->assertion_memo, memo_key, strlen(memo_key),
                    now + BB_ASSERTION_LIFETIME - ASSERTION_REUSE_MARGIN, &value);
    }
    return assertion;
}

const char *bbauth_assertion(request_rec *r, const bbauth_server_conf *conf, const bbauth_dir_conf *dconf,
                             const bb_session_t *who, const char *memo_id)
{
    const char *assertion;

    if (dconf->identity_assertion != 1 || !conf->signing_keys || !memo_id) {
        return NULL;
    }
    assertion = assertion_for(r, conf, dconf, who, memo_id);
    if (!assertion) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_bbauth: cannot sign the identity assertion for %s (the "
                      "name or e-mail address Bitbucket gave is not UTF-8?): the header is not sent",
                      bb_strip_controls(r->pool, who->sub));
    }
    return assertion;
}

const char *bbauth_assertion_for_token(request_rec *r, const bbauth_server_conf *conf, const bbauth_dir_conf *dconf,
                                       const bb_user_t *owner, const char *token)
{
    bb_session_t who;

    if (dconf->identity_assertion != 1 || !conf->signing_keys) {
        return NULL;
    }
    memset(&who, 0, sizeof(who));
    who.sub = owner->name;
    who.uid = owner->id;
    who.name = owner->display_name ? owner->display_name : "";
    who.email = owner->email ? owner->email : "";
    /* A token has no login: it was "authenticated" when Bitbucket last vouched for it, here and now. */
    who.auth_time = bbauth_now();
    return bbauth_assertion(r, conf, dconf, &who, bbauth_token_cache_key(r, conf, token));
}

/* SetHandler bbauth-jwks: the public signing keys as a JWK Set (RFC 7517), for upstream apps to verify with. */
static int jwks_handler(request_rec *r)
{
    const bbauth_server_conf *conf;
    const char *body;

    if (!r->handler || strcmp(r->handler, JWKS_HANDLER)) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    conf = server_conf(r);
    body = conf->signing_keys ? bb_jwk_set(r->pool, conf->signing_keys) : NULL;
    if (!body) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_bbauth: SetHandler bbauth-jwks but this server has no "
                      "BBAuthSigningKey");
        return HTTP_NOT_FOUND;
    }
    ap_set_content_type(r, "application/jwk-set+json");
    apr_table_setn(r->headers_out, "Cache-Control", apr_psprintf(r->pool, "public, max-age=%d", JWKS_MAX_AGE));
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only) {
        ap_rputs(body, r);
    }
    return OK;
}

void bbauth_register_assert_hooks(void)
{
    ap_hook_handler(jwks_handler, NULL, NULL, APR_HOOK_MIDDLE);
}
