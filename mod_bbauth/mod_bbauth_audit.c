/* mod_bbauth_audit.c: BBAuthAuditLog: opens the audit log (a file or a piped program), writes one JSON line per authentication decision, and hands user, method and decision to LogFormat. */
#include <apr_strings.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_auth.h>

#include "mod_bbauth.h"
#include "bb_table.h"

/* The request's last audit event, for BBAUTH_DECISION. */
#define DECISION_NOTE "bbauth-decision"

const char *bbauth_set_audit_log(cmd_parms *cmd, void *dummy, const char *arg)
{
    bbauth_server_conf *conf = ap_get_module_config(cmd->server->module_config, &bbauth_module);

    if (!*arg || !strcmp(arg, "|")) {
        return "BBAuthAuditLog: give a file (relative to ServerRoot) or |program";
    }
    conf->audit_log = arg;
    return NULL;
}

/* Opens a log as CustomLog does: "|program" (or "||program", without a shell) through httpd's piped logs, which
 * restart the program if it dies (rotatelogs, logger); else a file, appended to. */
static apr_status_t open_audit_log(apr_pool_t *pconf, server_rec *s, const char *spec, apr_file_t **file)
{
    const char *path;
    piped_log *pipe;

    if (*spec == '|') {
        pipe = ap_open_piped_log(pconf, spec + 1);
        if (pipe == NULL) {
            return APR_EGENERAL;
        }
        *file = ap_piped_log_write_fd(pipe);
        return APR_SUCCESS;
    }
    path = ap_server_root_relative(pconf, spec);
    if (path == NULL) {
        return APR_EBADPATH;
    }
    return apr_file_open(file, path, APR_FOPEN_WRITE | APR_FOPEN_APPEND | APR_FOPEN_CREATE | APR_FOPEN_LARGEFILE,
                         APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD, pconf);
}

/* In the parent, before the children: each log once, however many servers name it. */
static int audit_open_logs(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    apr_hash_t *opened = apr_hash_make(ptemp);
    server_rec *v;

    for (v = s; v; v = v->next) {
        bbauth_server_conf *conf = ap_get_module_config(v->module_config, &bbauth_module);
        apr_status_t rv;

        if (conf->audit_log == NULL) {
            continue;
        }
        conf->audit_file = apr_hash_get(opened, conf->audit_log, APR_HASH_KEY_STRING);
        if (conf->audit_file) {
            continue;
        }
        rv = open_audit_log(pconf, v, conf->audit_log, &conf->audit_file);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, rv, v, "mod_bbauth: BBAuthAuditLog %s: cannot "
                         "open it (check the directory exists and is writable by root, or the program runs)",
                         conf->audit_log);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        apr_hash_set(opened, conf->audit_log, APR_HASH_KEY_STRING, conf->audit_file);
    }
    return OK;
}

static const bbauth_server_conf *server_conf(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &bbauth_module);
}

/* One line, in one write: lines are shorter than PIPE_BUF (bb_audit.h), so processes never interleave them. */
static void write_event(apr_pool_t *p, const server_rec *s, const bb_audit_event_t *event)
{
    apr_file_t *file = server_conf(s)->audit_file;
    const char *line;
    apr_size_t len;
    apr_status_t rv;

    if (file == NULL || (line = bb_audit_line(p, apr_time_now(), event)) == NULL) {
        return;
    }
    len = strlen(line);
    rv = apr_file_write(file, line, &len);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, "mod_bbauth: cannot write to BBAuthAuditLog %s (disk full, or "
                     "its program ended?): an audit event is lost", server_conf(s)->audit_log);
    }
}

/* The request the client sent (its method and path), before internal redirects and subrequests. */
static request_rec *client_request(request_rec *r)
{
    while (r->prev || r->main) {
        r = r->prev ? r->prev : r->main;
    }
    return r;
}

/* The event's fields that come from the request. */
static void describe_request(request_rec *r, bb_audit_event_t *event)
{
    /* The <Location>/<Directory> section whose configuration the request got (the last one merged). */
    const core_dir_config *core = ap_get_core_module_config(r->per_dir_config);
    request_rec *first = client_request(r);

    event->client = r->useragent_ip;
    event->method = first->method;
    event->path = first->uri;
    event->vhost = r->server->server_hostname;
    event->location = core ? core->d : NULL;
    event->request_id = apr_table_get(first->subprocess_env, "UNIQUE_ID");
}

static void note_decision(request_rec *r, const char *event)
{
    apr_table_setn(r->notes, DECISION_NOTE, event);
}

static void audit_event(request_rec *r, bb_audit_event_t *event)
{
    note_decision(r, event->event);
    if (server_conf(r->server)->audit_file == NULL) {
        return;
    }
    describe_request(r, event);
    write_event(r->pool, r->server, event);
}

void bbauth_audit(request_rec *r, const char *event, const char *outcome, const char *reason, const char *user)
{
    bb_audit_event_t e = { 0 };

    e.event = event;
    e.outcome = outcome;
    e.reason = reason;
    e.user = user ? user : r->user;
    audit_event(r, &e);
}

void bbauth_audit_token(request_rec *r, const char *outcome, const char *reason, const char *owner)
{
    bb_audit_event_t e = { 0 };
    const bbauth_server_conf *conf = server_conf(r->server);

    e.event = !strcmp(outcome, "accepted") ? "token.accepted" : "token.refused";
    e.outcome = outcome;
    e.reason = reason;
    e.user = owner;
    e.auth = "token";
    if (conf->audit_file) {
        e.token = bb_audit_token_id(r->pool, conf->session_state.key, bbauth_token_of(r));
    }
    audit_event(r, &e);
}

void bbauth_audit_require(request_rec *r, int decision, const char *rule)
{
    bb_audit_event_t e = { 0 };

    if (decision == AUTHZ_DENIED_NO_USER) {
        return;   /* httpd's first pass, before authentication: no decision yet */
    }
    e.event = decision == AUTHZ_GRANTED ? "require.granted" : "require.denied";
    e.outcome = decision == AUTHZ_GRANTED ? "granted" : decision == AUTHZ_GENERAL_ERROR ? "error" : "denied";
    e.reason = decision == AUTHZ_GENERAL_ERROR ? "Bitbucket cannot say (fails closed)" : NULL;
    e.user = r->user;
    e.rule = rule;
    e.auth = bbauth_request_credential(r)->token ? "token" : bbauth_request_credential(r)->sid ? "session" : NULL;
    audit_event(r, &e);
}

void bbauth_audit_circuit(server_rec *s, const char *line)
{
    bb_audit_event_t e = { 0 };
    apr_pool_t *p;

    if (server_conf(s)->audit_file == NULL || apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return;
    }
    e.event = !strncmp(line, "circuit closed", 14) ? "circuit.closed"
              : !strncmp(line, "circuit open", 12) ? "circuit.opened" : "circuit.limited";
    e.outcome = e.event + 8;
    e.reason = line;
    e.vhost = s->server_hostname;
    write_event(p, s, &e);
    apr_pool_destroy(p);
}

/* For LogFormat: BBAUTH_USER, BBAUTH_METHOD (session or token) and BBAUTH_DECISION (the last audit event of the
 * request, e.g. "require.denied", or "session.accepted" / "token.accepted"), set as the request is logged: nothing
 * on the hot path. */
static int set_log_env(request_rec *r)
{
    const bbauth_credential *cred = bbauth_request_credential(r);
    const char *decision = apr_is_empty_table(r->notes) ? NULL : apr_table_get(r->notes, DECISION_NOTE);
    const char *names[3], *values[3];
    int n = 0;

    if (cred->token || cred->sid) {
        names[n] = "BBAUTH_METHOD";
        values[n++] = cred->token ? "token" : "session";
        names[n] = "BBAUTH_USER";
        values[n++] = r->user ? r->user : "-";
        if (decision == NULL) {
            decision = cred->token ? "token.accepted" : "session.accepted";
        }
    }
    if (decision) {
        names[n] = "BBAUTH_DECISION";
        values[n++] = decision;
    }
    bb_table_setn_prefixed(r->subprocess_env, "BBAUTH_", n, names, values);
    return DECLINED;
}

void bbauth_register_audit_hooks(void)
{
    ap_hook_open_logs(audit_open_logs, NULL, NULL, APR_HOOK_MIDDLE);
    /* Before mod_log_config writes the access log. */
    ap_hook_log_transaction(set_log_env, NULL, NULL, APR_HOOK_REALLY_FIRST);
}
