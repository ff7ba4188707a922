/* mod_bbauth_private.c: keeps what the module authenticated out of shared caches (mod_cache, proxies): Cache-Control private on every such response, no-store and r->no_cache on one that carries a cookie of the module. */
#include <apr_strings.h>
#include <http_request.h>
#include <http_protocol.h>
#include <util_filter.h>

#include "mod_bbauth.h"
#include "bb_cachecontrol.h"

#define PRIVATE_FILTER  "BBAUTH_PRIVATE"
#define NO_STORE_NOTE   "bbauth-no-store"

void bbauth_no_store(request_rec *r)
{
    /* mod_cache checks r->no_cache before it stores anything, whatever the headers say. The header is for the
     * caches after this server, and for an answer mod_cache serves from its store (then without this filter). */
    r->no_cache = 1;
    apr_table_setn(r->notes, NO_STORE_NOTE, "1");
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
}

/* Registered once at start-up: added by handle, without a lookup by name on every request. */
static ap_filter_rec_t *private_filter_handle;

static const char *joined(apr_pool_t *p, const char *a, const char *b)
{
    return a && b ? apr_pstrcat(p, a, ", ", b, NULL) : a ? a : b;
}

/* The Cache-Control values in t, joined; NULL when there is none (most responses: found without getm's merge). */
static const char *cache_control_in(apr_pool_t *p, apr_table_t *t)
{
    return apr_table_get(t, "Cache-Control") ? apr_table_getm(p, t, "Cache-Control") : NULL;
}

/* Runs once, before the headers go out (and before mod_cache's CACHE_SAVE, a later filter type): the app's
 * Cache-Control, wherever it put it, becomes one private value in headers_out, which mod_cache stores with the
 * response (an error response's headers_out is made from err_headers_out before this runs). */
static apr_status_t private_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    const char *in_err_headers = cache_control_in(r->pool, r->err_headers_out);
    const char *current = joined(r->pool, cache_control_in(r->pool, r->headers_out), in_err_headers);
    int no_store = !apr_is_empty_table(r->notes) && apr_table_get(r->notes, NO_STORE_NOTE) != NULL;

    if (in_err_headers) {
        apr_table_unset(r->err_headers_out, "Cache-Control");
    }
    apr_table_setn(r->headers_out, "Cache-Control", bb_cache_control_private(r->pool, current, no_store));
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

/* Anonymous answers are left as they are: the module's own say no-store already (bbauth_no_store, pages). */
static void insert_private_filter(request_rec *r)
{
    if (bbauth_authenticated_here(r)) {
        ap_add_output_filter_handle(private_filter_handle, NULL, r, r->connection);
    }
}

void bbauth_register_private_hooks(void)
{
    /* AP_FTYPE_CONTENT_SET: after the app's content filters, before CACHE_SAVE (AP_FTYPE_CONTENT_SET + 1). */
    private_filter_handle = ap_register_output_filter(PRIVATE_FILTER, private_filter, NULL, AP_FTYPE_CONTENT_SET);
    ap_hook_insert_filter(insert_private_filter, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_insert_error_filter(insert_private_filter, NULL, NULL, APR_HOOK_MIDDLE);
}
