/* mod_bbauth_health.c: SetHandler bbauth-health: whether this host can do its job (shared cache round trip, keys loaded, circuit to Bitbucket), as 200 or 503 with a short JSON body. */
#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <jansson.h>

#include "mod_bbauth.h"

#define HEALTH_HANDLER "bbauth-health"
#define PROBE_NS       "health"
#define PROBE_LIFE     10            /* seconds a probe entry lives if its removal fails */

const char *bbauth_set_health_circuit(cmd_parms *cmd, void *dummy, int on)
{
    ((bbauth_server_conf *)ap_get_module_config(cmd->server->module_config, &bbauth_module))->health_circuit = on;
    return NULL;
}

/* Writes a fresh random value under a fresh name, reads it back and removes it: NULL when the shared cache answers
 * the round trip, else what failed. A fresh name per check: concurrent checks never see each other's value. */
static const char *cache_round_trip(request_rec *r, const bbauth_server_conf *conf)
{
    const bb_cache_t *cache = bbauth_cache();
    const char *nonce = bb_random_token(r->pool, 16);
    const char *key = nonce ? bb_cache_name(r->pool, conf->session_state.space, PROBE_NS, nonce) : NULL;
    unsigned char back[64];
    unsigned int back_len = sizeof(back);
    apr_status_t rv;

    if (cache == NULL) {
        return "no shared cache (BBAuthCache)";
    }
    if (key == NULL) {
        return "no random numbers from OpenSSL";
    }
    rv = cache->store(cache->baton, (const unsigned char *)key, (unsigned int)strlen(key),
                      apr_time_now() + apr_time_from_sec(PROBE_LIFE), (const unsigned char *)nonce,
                      (unsigned int)strlen(nonce), r->pool);
    if (rv != APR_SUCCESS) {
        return "the shared cache (BBAuthCache) refused a write";
    }
    rv = cache->retrieve(cache->baton, (const unsigned char *)key, (unsigned int)strlen(key), back, &back_len,
                         r->pool);
    cache->remove(cache->baton, (const unsigned char *)key, (unsigned int)strlen(key), r->pool);
    if (rv != APR_SUCCESS || back_len != strlen(nonce) || memcmp(back, nonce, back_len)) {
        return "the shared cache (BBAuthCache) did not give back what was written";
    }
    return NULL;
}

static const char *keys_problem(request_rec *r, const bbauth_server_conf *conf)
{
    if (conf->missing) {
        return apr_pstrcat(r->pool, "configuration incomplete: lacks ", conf->missing, NULL);
    }
    return bb_cache_secret_usable(conf->session_state.key) ? NULL : "no usable BBAuthSessionKey";
}

static int health_handler(request_rec *r)
{
    const bbauth_server_conf *conf;
    const char *cache_problem, *keys_missing, *reason;
    apr_int64_t open_for;
    json_t *body;
    char *text;
    int ready;

    if (!r->handler || strcmp(r->handler, HEALTH_HANDLER)) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    conf = ap_get_module_config(r->server->module_config, &bbauth_module);
    keys_missing = keys_problem(r, conf);
    cache_problem = keys_missing ? "not checked" : cache_round_trip(r, conf);
    open_for = bb_breaker_retry_after(conf->http.breaker, NULL, bbauth_now());    /* the circuit, no one user's hold */
    reason = keys_missing ? keys_missing : cache_problem ? cache_problem
             : open_for > 0 && conf->health_circuit != 0 ? "the circuit to Bitbucket is open" : NULL;
    ready = reason == NULL;
    body = json_pack("{s:s, s:s?, s:s, s:s, s:s}", "status", ready ? "ready" : "unready", "reason", reason,
                     "cache", cache_problem ? cache_problem : "ok", "keys", keys_missing ? "missing" : "loaded",
                     "circuit", open_for > 0 ? "open" : "closed");
    if (ready) {
        json_object_del(body, "reason");
    }
    text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (!ready) {
        /* info: a load balancer asks every second; what failed has its own line where it failed. */
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "mod_bbauth: bbauth-health: unready: %s", reason);
    }
    r->status = ready ? HTTP_OK : HTTP_SERVICE_UNAVAILABLE;
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (text) {
        ap_rprintf(r, "%s\n", text);
        free(text);
    }
    return OK;
}

void bbauth_register_health_hooks(void)
{
    ap_hook_handler(health_handler, NULL, NULL, APR_HOOK_MIDDLE);
}
