/* mod_bbauth_metrics.h: counting what the module does into the shared metrics table, one call per place that counts. */
#ifndef MOD_BBAUTH_METRICS_H
#define MOD_BBAUTH_METRICS_H

#include <httpd.h>
#include "bb_metrics.h"

/* post_config (the real pass): finds the table a previous generation of the configuration made (a graceful restart:
 * counts go on; a full restart zeroes them) or makes it in an anonymous shared segment the children inherit, and
 * has bb_http report every Bitbucket call to it. Logged and not APR_SUCCESS when the segment cannot be made. */
apr_status_t bbauth_metrics_post_config(server_rec *s);
/* SetHandler bbauth-metrics and the mod_status section. */
void bbauth_register_metrics_hooks(void);

/* Counts one event (nothing before post_config made the table). */
void bbauth_count(bb_metric_id id);
/* Counts a failed login step by its cause (bb_metrics_login_failure of status and *errmsg, read after the step
 * ran); returns status, so that the step's call can be wrapped where it stands. */
bb_status_t bbauth_count_login_step(bb_status_t status, const char *const *errmsg);
/* Counts a session cookie refused by its signature or times; returns status. */
bb_session_status_t bbauth_count_session(bb_session_status_t status);
/* Counts a shared-cache operation by its result; returns rv. */
apr_status_t bbauth_count_cache(bb_cache_op op, apr_status_t rv);

#endif
