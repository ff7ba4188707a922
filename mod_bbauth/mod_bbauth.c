/* mod_bbauth.c: the module record and its lifecycle: configuration checks at startup, the shared cache, the hooks. */
#define BBAUTH_DECLARES_MODULE
#include <apr_strings.h>
#include <http_core.h>
#include <http_main.h>
#include <http_request.h>

#include "mod_bbauth.h"

/* Every server gets its defaults and derived records; then every use of the module is checked against them.
 * Runs for `apachectl -t` too, so a bad configuration is refused before it is ever started. */
static int bbauth_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    server_rec *vhost;

    for (vhost = s; vhost; vhost = vhost->next) {
        bbauth_finalize_server(pconf, ap_get_module_config(vhost->module_config, &bbauth_module));
    }
    return bbauth_cache_check_ttls(s) != OK ? HTTP_INTERNAL_SERVER_ERROR : bbauth_check_uses(ptemp, s);
}

static int bbauth_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    bbauth_cache_register_mutex(pconf);
    return OK;
}

static int bbauth_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    /* httpd reads the configuration twice at start; the shared memory is made once, on the real run. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (bb_http_global_init() != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "mod_bbauth: libcurl failed to initialise");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (bbauth_metrics_post_config(s) != APR_SUCCESS || bbauth_cache_post_config(pconf, s) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    bbauth_cache_attach(s);
    bbauth_cutoff_attach(pconf, s);
    bbauth_breaker_post_config(pconf, s);
    ap_add_version_component(pconf, "mod_bbauth/" MOD_BBAUTH_VERSION);
    return OK;
}

static void bbauth_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    bbauth_cache_child_init(pchild, s);
    rv = bb_http_child_init(pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, "mod_bbauth: cannot share connections to Bitbucket between "
                     "the threads of this process: every call opens a connection of its own");
    }
}

static void bbauth_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(bbauth_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(bbauth_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(bbauth_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(bbauth_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    bbauth_register_authn_hooks();
    bbauth_register_login_hooks();
    bbauth_register_setup_hooks();
    bbauth_register_account_hooks();
    bbauth_register_private_hooks();
    bbauth_register_assert_hooks();
    bbauth_register_metrics_hooks();
    bbauth_register_audit_hooks();
    bbauth_register_admin_hooks();
    bbauth_register_health_hooks();
    bbauth_register_authz_providers(p);
    bbauth_register_denial_hooks();
}

AP_DECLARE_MODULE(bbauth) = {
    STANDARD20_MODULE_STUFF,
    bbauth_create_dir_conf,
    bbauth_merge_dir_conf,
    bbauth_create_server_conf,
    bbauth_merge_server_conf,
    bbauth_directives,
    bbauth_register_hooks,
    AP_MODULE_FLAG_NONE
};
