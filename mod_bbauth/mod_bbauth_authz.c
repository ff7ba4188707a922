/* mod_bbauth_authz.c: Require providers that follow Bitbucket: "Require bitbucket-user NAME ...". */
#include <apr_strings.h>
#include <ap_provider.h>
#include <http_request.h>
#include <mod_auth.h>

#include "mod_bbauth.h"

/* The names of a "Require bitbucket-user" line, split once at startup. */
static const char *parse_user_list(cmd_parms *cmd, const char *require_line, const void **parsed)
{
    apr_array_header_t *names = apr_array_make(cmd->pool, 4, sizeof(const char *));
    const char *line = require_line;
    const char *word;

    while (*(word = ap_getword_conf(cmd->pool, &line))) {
        APR_ARRAY_PUSH(names, const char *) = word;
    }
    if (names->nelts == 0) {
        return "Require bitbucket-user needs at least one Bitbucket username";
    }
    *parsed = names;
    return NULL;
}

static authz_status check_user_list(request_rec *r, const char *require_line, const void *parsed)
{
    const apr_array_header_t *names = parsed;
    int i;

    if (!r->user) {
        return AUTHZ_DENIED_NO_USER;
    }
    for (i = 0; i < names->nelts; i++) {
        /* Bitbucket usernames are case-insensitive: Alice and alice are one account. */
        if (!strcasecmp(r->user, APR_ARRAY_IDX(names, i, const char *))) {
            return AUTHZ_GRANTED;
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "mod_bbauth: %s is not in Require bitbucket-user", r->user);
    return AUTHZ_DENIED;
}

static const authz_provider user_list_provider = { check_user_list, parse_user_list };

void bbauth_register_authz_providers(apr_pool_t *p)
{
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "bitbucket-user", AUTHZ_PROVIDER_VERSION,
                              &user_list_provider, AP_AUTH_INTERNAL_PER_CONF);
}
