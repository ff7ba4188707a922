/* mod_bbauth_metrics.c: the metrics table in shared memory, SetHandler bbauth-metrics (Prometheus text) and the mod_status section. */
#include <apr_shm.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_status.h>
#include <unixd.h>

#include "mod_bbauth.h"

#define METRICS_HANDLER   "bbauth-metrics"
/* The segment is kept in the process pool under this name: httpd's parent keeps that pool across restarts, and
 * children inherit the mapping when they are forked. */
#define SHM_USERDATA_KEY  "mod_bbauth-metrics-shm"

static bb_metrics_t *metrics;

static void observe_call(const char *url, bb_status_t status, int http_status, apr_interval_time_t elapsed)
{
    if (metrics) {
        bb_metrics_observe_call(metrics, bb_metrics_call_kind(url), bb_metrics_call_outcome(status, http_status),
                                elapsed);
    }
}

apr_status_t bbauth_metrics_post_config(server_rec *s)
{
    apr_pool_t *keep = s->process->pool;
    apr_shm_t *shm = NULL;
    apr_status_t rv;

    apr_pool_userdata_get((void **)&shm, SHM_USERDATA_KEY, keep);
    metrics = shm ? bb_metrics_attach(apr_shm_baseaddr_get(shm), apr_shm_size_get(shm)) : NULL;
    /* Like the scoreboard: a graceful restart keeps the counts, a full one (SIGHUP) starts again at zero. */
    if (metrics && !ap_unixd_mpm_get_retained_data()->was_graceful) {
        metrics = bb_metrics_init(apr_shm_baseaddr_get(shm), apr_shm_size_get(shm));
    }
    if (!metrics) {
        if (shm) {
            apr_shm_destroy(shm);   /* laid out by another version of the module: start again */
        }
        rv = apr_shm_create(&shm, bb_metrics_size(), NULL, keep);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_bbauth: cannot create the anonymous shared memory "
                         "segment (%" APR_SIZE_T_FMT " bytes) of the metrics", bb_metrics_size());
            return rv;
        }
        metrics = bb_metrics_init(apr_shm_baseaddr_get(shm), apr_shm_size_get(shm));
        /* userdata_set copies the key: the module's own strings go when httpd unloads it at a restart. */
        apr_pool_userdata_set(shm, SHM_USERDATA_KEY, apr_pool_cleanup_null, keep);
    }
    bb_http_set_observer(observe_call);
    return APR_SUCCESS;
}

void bbauth_count(bb_metric_id id)
{
    if (metrics) {
        bb_metrics_inc(metrics, id);
    }
}

bb_status_t bbauth_count_login_step(bb_status_t status, const char *const *errmsg)
{
    if (status != BB_OK) {
        bbauth_count(bb_metrics_login_failure(status, errmsg ? *errmsg : NULL));
    }
    return status;
}

bb_session_status_t bbauth_count_session(bb_session_status_t status)
{
    if (status != BB_SESSION_VALID) {
        bbauth_count(bb_metrics_session_refusal(status));
    }
    return status;
}

apr_status_t bbauth_count_cache(bb_cache_op op, apr_status_t rv)
{
    bbauth_count(bb_metrics_cache_result(op, rv));
    return rv;
}

/* SetHandler bbauth-metrics: the Prometheus text format. Protect it like any admin page (Require ip ...). */
static int metrics_handler(request_rec *r)
{
    if (!r->handler || strcmp(r->handler, METRICS_HANDLER)) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL);   /* httpd's 405 answer lists it (and HEAD) in Allow */
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (!metrics) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (!r->header_only) {
        ap_rputs(bb_metrics_prometheus(r->pool, metrics), r);
        ap_rputs(bb_metrics_build_info(r->pool, MOD_BBAUTH_VERSION), r);
    }
    return OK;
}

/* mod_status: "key: value" lines for ?auto, else a table (or plain lines when tables are off). */
static int status_section(request_rec *r, int flags)
{
    const apr_array_header_t *lines;
    int i, table = !(flags & AP_STATUS_NOTABLE);

    if (!metrics) {
        return OK;
    }
    lines = bb_metrics_status_lines(r->pool, metrics);
    if (!(flags & AP_STATUS_SHORT)) {
        ap_rputs("<hr>\n<h2>mod_bbauth</h2>\n", r);
        ap_rputs(table ? "<table border=\"0\">\n" : "<p>\n", r);
    }
    for (i = 0; i < lines->nelts; i++) {
        const bb_metrics_line_t *line = &APR_ARRAY_IDX(lines, i, bb_metrics_line_t);
        if (flags & AP_STATUS_SHORT) {
            ap_rprintf(r, "%s: %s\n", line->key, line->value);
        }
        else {
            ap_rprintf(r, table ? "<tr><td>%s</td><td>%s</td></tr>\n" : "%s: %s<br>\n",
                       ap_escape_html(r->pool, line->key), line->value);
        }
    }
    if (!(flags & AP_STATUS_SHORT)) {
        ap_rputs(table ? "</table>\n" : "</p>\n", r);
    }
    return OK;
}

void bbauth_register_metrics_hooks(void)
{
    ap_hook_handler(metrics_handler, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, status_section, NULL, NULL, APR_HOOK_MIDDLE);
}
