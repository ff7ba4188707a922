/* mod_bbauth_config.c: the BBAuth* directives, their checks, and the startup check that every use is configured. */
#include <errno.h>
#include <stdlib.h>
#include <ctype.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_file_io.h>
#include <http_core.h>
#include <http_main.h>
#include <util_cfgtree.h>

#include "mod_bbauth.h"
#include "bb_cookie.h"
#include "bb_url.h"
#include "bb_clientsetup.h"

#define DEFAULT_SCOPE         "REPO_READ"
#define DEFAULT_MAX_AGE       28800
#define DEFAULT_IDLE_TIMEOUT  3600
#define DEFAULT_COOKIE_NAME   "bbauth_session"
#define DEFAULT_BITBUCKET_TIMEOUT       10
#define DEFAULT_TOKEN_CACHE_TTL         300
#define DEFAULT_AUTHZ_CACHE_TTL         300
#define DEFAULT_REVALIDATE              900
#define DEFAULT_MAX_CALLS               8
#define DEFAULT_CIRCUIT_FAILURES        5
#define DEFAULT_CIRCUIT_COOLDOWN        30
#define DEFAULT_SESSION_RECHECK         5
#define DEFAULT_ANONYMOUS_CHECKS        30      /* per client address and minute: a CI fleet behind one NAT
                                                 * brings few new tokens a minute, a flood of junk many */
#define MAX_SECRET_FILE       4096

void *bbauth_create_server_conf(apr_pool_t *p, server_rec *s)
{
    bbauth_server_conf *conf = apr_pcalloc(p, sizeof(*conf));

    conf->oauth_version = BBAUTH_UNSET;
    conf->max_age = BBAUTH_UNSET;
    conf->idle_timeout = BBAUTH_UNSET;
    conf->timeout = BBAUTH_UNSET;
    conf->token_cache_ttl = BBAUTH_UNSET;
    conf->authz_cache_ttl = BBAUTH_UNSET;
    conf->revalidate = BBAUTH_UNSET;
    conf->max_calls = BBAUTH_UNSET;
    conf->circuit_failures = BBAUTH_UNSET;
    conf->circuit_cooldown = BBAUTH_UNSET;
    conf->stale_if_error = BBAUTH_UNSET;
    conf->session_recheck = BBAUTH_UNSET;
    conf->health_circuit = BBAUTH_UNSET;
    conf->anonymous_checks = BBAUTH_UNSET;
    return conf;
}

#define MERGE_PTR(field) merged->field = add->field ? add->field : base->field
#define MERGE_NUM(field) merged->field = add->field != BBAUTH_UNSET ? add->field : base->field

void *bbauth_merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    const bbauth_server_conf *base = basev, *add = addv;
    bbauth_server_conf *merged = apr_pcalloc(p, sizeof(*merged));

    MERGE_PTR(bitbucket_url);
    MERGE_NUM(oauth_version);
    MERGE_PTR(client_id);
    MERGE_PTR(client_secret);
    MERGE_PTR(oauth1_key_file);
    MERGE_PTR(oauth1_key);
    MERGE_PTR(scope);
    MERGE_PTR(session_keys);
    MERGE_PTR(signing_keys);
    MERGE_NUM(max_age);
    MERGE_NUM(idle_timeout);
    MERGE_PTR(cookie_name);
    MERGE_PTR(cookie_domain);
    MERGE_PTR(cookie_path);
    MERGE_PTR(cookie_samesite);
    MERGE_PTR(ca_file);
    MERGE_PTR(ca_pem);
    MERGE_NUM(timeout);
    MERGE_NUM(token_cache_ttl);
    MERGE_NUM(authz_cache_ttl);
    MERGE_NUM(revalidate);
    MERGE_NUM(max_calls);
    MERGE_NUM(circuit_failures);
    MERGE_NUM(circuit_cooldown);
    MERGE_NUM(stale_if_error);
    MERGE_NUM(session_recheck);
    MERGE_PTR(client_setups);
    MERGE_PTR(audit_log);
    MERGE_NUM(health_circuit);
    MERGE_NUM(anonymous_checks);
    /* The redirect URI, its origin and path belong together. */
    if (add->redirect_uri) {
        merged->redirect_uri = add->redirect_uri;
        merged->redirect_origin = add->redirect_origin;
        merged->callback_path = add->callback_path;
    }
    else {
        merged->redirect_uri = base->redirect_uri;
        merged->redirect_origin = base->redirect_origin;
        merged->callback_path = base->callback_path;
    }
    return merged;
}

void *bbauth_create_dir_conf(apr_pool_t *p, char *dir)
{
    bbauth_dir_conf *conf = apr_pcalloc(p, sizeof(*conf));

    conf->token_auth = BBAUTH_UNSET;
    conf->identity_assertion = BBAUTH_UNSET;
    conf->pass_authorization = BBAUTH_UNSET;
    return conf;
}

void *bbauth_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    const bbauth_dir_conf *base = basev, *add = addv;
    bbauth_dir_conf *merged = apr_pcalloc(p, sizeof(*merged));

    merged->unauth_action = add->unauth_action ? add->unauth_action : base->unauth_action;
    MERGE_PTR(header_prefix);
    MERGE_NUM(token_auth);
    merged->needs_grant = add->needs_grant || base->needs_grant;
    MERGE_NUM(pass_authorization);
    /* The switch and the path its audience names belong together. */
    if (add->identity_assertion != BBAUTH_UNSET) {
        merged->identity_assertion = add->identity_assertion;
        merged->assertion_path = add->assertion_path;
    }
    else {
        merged->identity_assertion = base->identity_assertion;
        merged->assertion_path = base->assertion_path;
    }
    return merged;
}

/* A key for one purpose of this integration: the label names the purpose, the Bitbucket URL and the client id, so
 * that two integrations sharing a key file (staging and production Bitbucket) never accept each other's login
 * states, cached verdicts, decisions, grants or marks. */
static bb_keyring_t *integration_keys(apr_pool_t *p, const bbauth_server_conf *conf, const char *purpose)
{
    return bb_keyring_derive(p, conf->session_keys,
                             apr_pstrcat(p, "mod_bbauth ", purpose, " v2\n",
                                         conf->bitbucket_url ? conf->bitbucket_url : "", "\n",
                                         conf->client_id ? conf->client_id : "", NULL));
}

/* Random bytes that key the token memo in this server's processes, or NULL (the memo is then keyed by the HMAC). */
static const unsigned char *memo_secret(apr_pool_t *p)
{
    unsigned char *secret = apr_palloc(p, BB_TOKENCACHE_MEMO_SECRET);

    return bb_random_bytes(secret, BB_TOKENCACHE_MEMO_SECRET) == APR_SUCCESS ? secret : NULL;
}

static void derive_integration_keys(apr_pool_t *p, bbauth_server_conf *conf)
{
    conf->state_keys = integration_keys(p, conf, "login state");
    conf->cache_keys = integration_keys(p, conf, "shared cache");
    conf->grant_sealer = bb_sealer_create(p, integration_keys(p, conf, "grant"));
    conf->session_memo = bb_memo_create(p, BBAUTH_MEMO_SLOTS);
    conf->token_memo = bb_memo_create(p, BBAUTH_MEMO_SLOTS);
    conf->user_memo = bb_memo_create(p, BBAUTH_MEMO_SLOTS);
    conf->token_memo_secret = memo_secret(p);
    conf->token_flights = bb_flights_create(p);
    conf->grant_flights = bb_flights_create(p);
    conf->session_state.space = apr_pstrcat(p, conf->bitbucket_url ? conf->bitbucket_url : "", "\n",
                                            conf->client_id ? conf->client_id : "", NULL);
    conf->session_state.key = &APR_ARRAY_IDX(conf->cache_keys->keys, 0, bb_key_t);
    conf->session_state.sealer = conf->grant_sealer;
    conf->session_state.memo = bb_memo_create(p, BBAUTH_SESSION_STATE_SLOTS);
    conf->session_state.recheck = conf->session_recheck;
}

/* Applies the defaults of everything left unset and builds the records the core uses per request. */
void bbauth_finalize_server(apr_pool_t *p, bbauth_server_conf *conf)
{
    const char *missing = NULL;

    if (conf->oauth_version == BBAUTH_UNSET) conf->oauth_version = 2;
    if (!conf->scope) conf->scope = DEFAULT_SCOPE;
    if (conf->max_age == BBAUTH_UNSET) conf->max_age = DEFAULT_MAX_AGE;
    if (conf->idle_timeout == BBAUTH_UNSET) conf->idle_timeout = DEFAULT_IDLE_TIMEOUT;
    if (!conf->cookie_name) conf->cookie_name = DEFAULT_COOKIE_NAME;
    if (!conf->cookie_path) conf->cookie_path = "/";
    if (!conf->cookie_samesite) conf->cookie_samesite = "Lax";
    if (conf->timeout == BBAUTH_UNSET) conf->timeout = DEFAULT_BITBUCKET_TIMEOUT;
    if (conf->token_cache_ttl == BBAUTH_UNSET) conf->token_cache_ttl = DEFAULT_TOKEN_CACHE_TTL;
    if (conf->authz_cache_ttl == BBAUTH_UNSET) conf->authz_cache_ttl = DEFAULT_AUTHZ_CACHE_TTL;
    if (conf->revalidate == BBAUTH_UNSET) conf->revalidate = DEFAULT_REVALIDATE;
    if (conf->max_calls == BBAUTH_UNSET) conf->max_calls = DEFAULT_MAX_CALLS;
    if (conf->circuit_failures == BBAUTH_UNSET) conf->circuit_failures = DEFAULT_CIRCUIT_FAILURES;
    if (conf->circuit_cooldown == BBAUTH_UNSET) conf->circuit_cooldown = DEFAULT_CIRCUIT_COOLDOWN;
    if (conf->stale_if_error == BBAUTH_UNSET) conf->stale_if_error = 0;
    conf->session_recheck_default = conf->session_recheck == BBAUTH_UNSET;
    if (conf->session_recheck == BBAUTH_UNSET) conf->session_recheck = DEFAULT_SESSION_RECHECK;
    if (conf->anonymous_checks == BBAUTH_UNSET) conf->anonymous_checks = DEFAULT_ANONYMOUS_CHECKS;
    if (conf->session_keys && !conf->cache_keys) {
        derive_integration_keys(p, conf);
    }
    /* Session cookies are signed with the first signing key from now on; the HMAC keys still verify the cookies
     * they signed, and still derive the other keys above. */
    conf->session_keys = bb_keyring_with_signers(p, conf->session_keys, conf->signing_keys);
    if (conf->signing_keys && !conf->assertion_memo) {
        conf->assertion_memo = bb_memo_create(p, BBAUTH_MEMO_SLOTS);
    }

    /* Secure whenever the public URL is https, even when TLS ends at a proxy in front of this server. */
    conf->cookie_secure = conf->redirect_uri && !strncasecmp(conf->redirect_uri, "https:", 6);

    conf->policy.issuer = conf->redirect_origin;
    conf->policy.max_age = conf->max_age;
    conf->policy.idle_timeout = conf->idle_timeout;

    conf->http.ca_file = conf->ca_file;
    conf->http.ca_pem = conf->ca_pem;
    conf->http.timeout_sec = conf->timeout;
    conf->http.max_body = BB_HTTP_MAX_BODY;
    conf->http.user_agent = "mod_bbauth";

    conf->oauth2.base_url = conf->bitbucket_url;
    conf->oauth2.client_id = conf->client_id;
    conf->oauth2.client_secret = conf->client_secret;
    conf->oauth2.redirect_uri = conf->redirect_uri;
    conf->oauth2.scope = conf->scope;

    conf->oauth1.base_url = conf->bitbucket_url;
    conf->oauth1.consumer_key = conf->client_id;
    conf->oauth1.key = conf->oauth1_key;
    conf->oauth1.callback_uri = conf->redirect_uri;

#define REQUIRE(field, directive) \
    if (!conf->field) missing = missing ? apr_pstrcat(p, missing, ", " directive, NULL) : directive
    REQUIRE(bitbucket_url, "BBAuthBitbucketURL");
    REQUIRE(client_id, "BBAuthClientID");
    if (conf->oauth_version == 2) {
        REQUIRE(client_secret, "BBAuthClientSecret");
    }
    else {
        REQUIRE(oauth1_key, "BBAuthOAuth1PrivateKey");
    }
    REQUIRE(redirect_uri, "BBAuthRedirectURI");
    REQUIRE(session_keys, "BBAuthSessionKey");
#undef REQUIRE
    conf->missing = missing;
}

/* ---- directive handlers ---- */

static bbauth_server_conf *server_conf_of(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &bbauth_module);
}

/* "Directive: message" for errors, so that httpd's "Syntax error on line N of FILE" names everything. */
static const char *directive_error(cmd_parms *cmd, const char *message)
{
    return apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", message, NULL);
}

static const char *set_bitbucket_url(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = NULL;
    const char *url = bb_url_check_base(cmd->pool, arg, &err);

    if (!url) {
        return directive_error(cmd, err);
    }
    server_conf_of(cmd)->bitbucket_url = url;
    return NULL;
}

static const char *set_oauth_version(cmd_parms *cmd, void *dummy, const char *arg)
{
    if (strcmp(arg, "1") && strcmp(arg, "2")) {
        return directive_error(cmd, "must be 2 (OAuth 2, Bitbucket 7.21 and later) or 1 (OAuth 1.0a)");
    }
    server_conf_of(cmd)->oauth_version = atoi(arg);
    return NULL;
}

static const char *set_client_id(cmd_parms *cmd, void *dummy, const char *arg)
{
    if (!*arg) {
        return directive_error(cmd, "must not be empty");
    }
    server_conf_of(cmd)->client_id = arg;
    return NULL;
}

/* The first line of a file, without the line end, or NULL with *err. */
static const char *read_secret_file(cmd_parms *cmd, const char *path, const char **err)
{
    apr_file_t *file;
    char buf[MAX_SECRET_FILE];
    apr_size_t len = sizeof(buf) - 1;
    apr_status_t rv = apr_file_open(&file, path, APR_FOPEN_READ, APR_OS_DEFAULT, cmd->temp_pool);

    if (rv == APR_SUCCESS) {
        rv = apr_file_read(file, buf, &len);
        apr_file_close(file);
    }
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        *err = apr_psprintf(cmd->pool, "cannot read %s (%pm)", path, &rv);
        return NULL;
    }
    buf[rv == APR_EOF ? 0 : len] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    return apr_pstrdup(cmd->pool, buf);
}

static const char *set_client_secret(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = NULL;
    const char *secret = arg;

    if (!strncmp(arg, "file:", 5)) {
        const char *path = ap_server_root_relative(cmd->temp_pool, arg + 5);
        secret = path ? read_secret_file(cmd, path, &err) : NULL;
        if (!secret) {
            return directive_error(cmd, err ? err : "invalid file path");
        }
    }
    else if (!strncmp(arg, "env:", 4)) {
        secret = getenv(arg + 4);
        if (!secret) {
            return directive_error(cmd, apr_psprintf(cmd->pool, "environment variable %s is not set", arg + 4));
        }
        secret = apr_pstrdup(cmd->pool, secret);
    }
    if (!*secret) {
        return directive_error(cmd, "the client secret is empty");
    }
    server_conf_of(cmd)->client_secret = secret;
    return NULL;
}

/* The key is read and checked here, as root and before anything starts: Apache's children never need to
 * read the file, so it may stay readable by root only. */
static const char *set_oauth1_private_key(cmd_parms *cmd, void *dummy, const char *arg)
{
    bbauth_server_conf *conf = server_conf_of(cmd);
    const char *err = NULL;
    const char *path = ap_server_root_relative(cmd->pool, arg);
    bb_oauth1_key_t *key = path ? bb_oauth1_load_key(cmd->pool, path, &err) : NULL;

    if (!key) {
        return directive_error(cmd, err ? err : "invalid file path");
    }
    conf->oauth1_key_file = path;
    conf->oauth1_key = key;
    return NULL;
}

static const char *set_redirect_uri(cmd_parms *cmd, void *dummy, const char *arg)
{
    bbauth_server_conf *conf = server_conf_of(cmd);
    const char *err = NULL, *origin = NULL, *path = NULL;

    if (!bb_url_check_redirect(cmd->pool, arg, &origin, &path, &err)) {
        return directive_error(cmd, err);
    }
    conf->redirect_uri = arg;
    conf->redirect_origin = origin;
    conf->callback_path = path;
    return NULL;
}

static const char *const known_scopes[] = {
    "PUBLIC_REPOS", "REPO_READ", "REPO_WRITE", "REPO_ADMIN", "PROJECT_ADMIN",
    "ACCOUNT_WRITE", "ADMIN_WRITE", "SYSTEM_ADMIN", NULL
};

static const char *add_scope(cmd_parms *cmd, void *dummy, const char *arg)
{
    bbauth_server_conf *conf = server_conf_of(cmd);
    int i;

    for (i = 0; known_scopes[i] && strcmp(known_scopes[i], arg); i++) {
    }
    if (!known_scopes[i]) {
        return directive_error(cmd, apr_psprintf(cmd->pool, "unknown scope '%s' (e.g. REPO_READ, PUBLIC_REPOS)",
                                                 ap_escape_logitem(cmd->pool, arg)));
    }
    /* Several scopes, on one line or several: Bitbucket wants them space-separated. A vhost starts afresh. */
    conf->scope = conf->scope ? apr_pstrcat(cmd->pool, conf->scope, " ", arg, NULL) : arg;
    return NULL;
}

static const char *set_session_key(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = NULL;
    const char *path = ap_server_root_relative(cmd->temp_pool, arg);
    bb_keyring_t *ring = path ? bb_keyring_load(cmd->pool, path, &err) : NULL;

    if (!ring) {
        return directive_error(cmd, err ? err : "invalid file path");
    }
    server_conf_of(cmd)->session_keys = ring;
    return NULL;
}

/* Repeatable: the first key signs, every one is published and verifies. Read now, as root, like the others. */
static const char *add_signing_key(cmd_parms *cmd, void *dummy, const char *arg)
{
    bbauth_server_conf *conf = server_conf_of(cmd);
    const char *err = NULL;
    const char *path = ap_server_root_relative(cmd->pool, arg);
    bb_signkey_t *key = path ? bb_signkey_load(cmd->pool, path, &err) : NULL;

    if (!key) {
        return directive_error(cmd, err ? err : "invalid file path");
    }
    if (!conf->signing_keys) {
        conf->signing_keys = apr_array_make(cmd->pool, 2, sizeof(bb_signkey_t *));
    }
    if (bb_signkeys_find(conf->signing_keys, key->kid)) {
        return directive_error(cmd, apr_psprintf(cmd->pool, "%s: the same key is given twice", path));
    }
    APR_ARRAY_PUSH(conf->signing_keys, bb_signkey_t *) = key;
    return NULL;
}

/* A whole number of `unit` within [min, max]. */
static const char *parse_number(cmd_parms *cmd, const char *arg, apr_int64_t min, apr_int64_t max,
                                const char *unit, apr_int64_t *out)
{
    char *end;
    apr_int64_t value;

    errno = 0;
    value = apr_strtoi64(arg, &end, 10);

    if (!*arg || *end || errno == ERANGE || value < min || value > max) {
        return directive_error(cmd, apr_psprintf(cmd->pool, "must be a number of %s from %" APR_INT64_T_FMT
                                                 " to %" APR_INT64_T_FMT, unit, min, max));
    }
    *out = value;
    return NULL;
}

/* A whole number of seconds within [min, max]. */
static const char *parse_seconds(cmd_parms *cmd, const char *arg, apr_int64_t min, apr_int64_t max,
                                 apr_int64_t *out)
{
    return parse_number(cmd, arg, min, max, "seconds", out);
}

static const char *set_max_age(cmd_parms *cmd, void *dummy, const char *arg)
{
    return parse_seconds(cmd, arg, 60, 31536000, &server_conf_of(cmd)->max_age);
}

static const char *set_idle_timeout(cmd_parms *cmd, void *dummy, const char *arg)
{
    return parse_seconds(cmd, arg, 0, 31536000, &server_conf_of(cmd)->idle_timeout);
}

static const char *set_timeout(cmd_parms *cmd, void *dummy, const char *arg)
{
    apr_int64_t seconds;
    const char *err = parse_seconds(cmd, arg, 1, 300, &seconds);

    if (!err) {
        server_conf_of(cmd)->timeout = (int)seconds;
    }
    return err;
}

static const char *set_max_calls(cmd_parms *cmd, void *dummy, const char *arg)
{
    return parse_number(cmd, arg, 0, 100000, "calls", &server_conf_of(cmd)->max_calls);
}

static const char *set_circuit_failures(cmd_parms *cmd, void *dummy, const char *arg)
{
    return parse_number(cmd, arg, 0, 1000, "failures", &server_conf_of(cmd)->circuit_failures);
}

static const char *set_circuit_cooldown(cmd_parms *cmd, void *dummy, const char *arg)
{
    return parse_seconds(cmd, arg, 1, 3600, &server_conf_of(cmd)->circuit_cooldown);
}

static const char *set_stale_if_error(cmd_parms *cmd, void *dummy, const char *arg)
{
    return parse_seconds(cmd, arg, 0, 86400, &server_conf_of(cmd)->stale_if_error);
}

static const char *set_anonymous_checks(cmd_parms *cmd, void *dummy, const char *arg)
{
    return parse_number(cmd, arg, 0, 100000, "checks", &server_conf_of(cmd)->anonymous_checks);
}

static const char *set_token_cache_ttl(cmd_parms *cmd, void *dummy, const char *arg)
{
    return parse_seconds(cmd, arg, 1, 86400, &server_conf_of(cmd)->token_cache_ttl);
}

static const char *set_authz_cache_ttl(cmd_parms *cmd, void *dummy, const char *arg)
{
    return parse_seconds(cmd, arg, 1, 86400, &server_conf_of(cmd)->authz_cache_ttl);
}

static const char *set_revalidate(cmd_parms *cmd, void *dummy, const char *arg)
{
    return parse_seconds(cmd, arg, 0, 86400, &server_conf_of(cmd)->revalidate);
}

static const char *set_session_recheck(cmd_parms *cmd, void *dummy, const char *arg)
{
    return parse_seconds(cmd, arg, 0, 300, &server_conf_of(cmd)->session_recheck);
}

static const char *set_token_auth(cmd_parms *cmd, void *dconf, int on)
{
    ((bbauth_dir_conf *)dconf)->token_auth = on;
    return NULL;
}

static const char *set_pass_authorization(cmd_parms *cmd, void *dconf, int on)
{
    ((bbauth_dir_conf *)dconf)->pass_authorization = on;
    return NULL;
}

/* Cookie names are RFC 6265 tokens; our login-state cookies append "_st_..." to it. */
static const char *set_cookie_name(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *c;

    for (c = arg; *c; c++) {
        if (!apr_isalnum(*c) && !strchr("-_.", *c)) {
            return directive_error(cmd, "may only hold letters, digits, '-', '_' and '.'");
        }
    }
    if (!*arg) {
        return directive_error(cmd, "must not be empty");
    }
    server_conf_of(cmd)->cookie_name = arg;
    return NULL;
}

static const char *set_cookie_domain(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *c;

    for (c = arg; *c; c++) {
        if (!apr_isalnum(*c) && !strchr("-.", *c)) {
            return directive_error(cmd, "must be a domain name such as example.com");
        }
    }
    if (!*arg) {
        return directive_error(cmd, "must not be empty");
    }
    server_conf_of(cmd)->cookie_domain = arg;
    return NULL;
}

static const char *set_cookie_path(cmd_parms *cmd, void *dummy, const char *arg)
{
    if (arg[0] != '/' || strpbrk(arg, ";, \t\r\n\"\\")) {
        return directive_error(cmd, "must be a URL path starting with '/'");
    }
    server_conf_of(cmd)->cookie_path = arg;
    return NULL;
}

static const char *set_cookie_samesite(cmd_parms *cmd, void *dummy, const char *arg)
{
    static const char *const values[] = { "Lax", "Strict", "None", NULL };
    int i;

    for (i = 0; values[i]; i++) {
        if (!strcasecmp(arg, values[i])) {
            server_conf_of(cmd)->cookie_samesite = values[i];
            return NULL;
        }
    }
    return directive_error(cmd, "must be Lax, Strict or None");
}

/* Read now, as root, like the key file: requests only use the certificates. */
static const char *set_ca_file(cmd_parms *cmd, void *dummy, const char *arg)
{
    bbauth_server_conf *conf = server_conf_of(cmd);
    const char *err = NULL;
    const char *path = ap_server_root_relative(cmd->pool, arg);
    const char *pem = path ? bb_http_read_ca_file(cmd->pool, path, &err) : NULL;

    if (!pem) {
        return directive_error(cmd, err ? err : "invalid file path");
    }
    conf->ca_file = path;
    conf->ca_pem = pem;
    return NULL;
}

static const char *set_cache(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return err;
    }
    /* Process-wide, like SSLSessionCache: one cache shared by every virtual host. */
    err = bbauth_cache_configure(cmd->pool, cmd->temp_pool, arg);
    return err ? directive_error(cmd, err) : NULL;
}

static const char *set_unauth_action(cmd_parms *cmd, void *dconf, const char *arg)
{
    bbauth_dir_conf *conf = dconf;

    if (!strcasecmp(arg, "auto")) conf->unauth_action = BBAUTH_UNAUTH_AUTO;
    else if (!strcasecmp(arg, "redirect")) conf->unauth_action = BBAUTH_UNAUTH_REDIRECT;
    else if (!strcmp(arg, "401")) conf->unauth_action = BBAUTH_UNAUTH_401;
    else if (!strcasecmp(arg, "pass")) conf->unauth_action = BBAUTH_UNAUTH_PASS;
    else return directive_error(cmd, "must be auto, redirect, 401 or pass");
    return NULL;
}

/* The audience names the <Location> the switch is in; a path that is a pattern or a directory names none. */
static const char *set_identity_assertion(cmd_parms *cmd, void *dconf, int on)
{
    bbauth_dir_conf *conf = dconf;
    const ap_directive_t *section = cmd->directive ? cmd->directive->parent : NULL;
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIRECTORY | NOT_IN_FILES);

    if (err) {
        return err;
    }
    if (section && strcasecmp(section->directive, "<VirtualHost")
        && (strcasecmp(section->directive, "<Location") || section->args == NULL || section->args[0] == '~'
            || cmd->path == NULL || cmd->path[0] != '/')) {
        return directive_error(cmd, "belongs in a <Location /path> (whose path becomes the assertion's audience), "
                               "a <VirtualHost> or the server");
    }
    conf->identity_assertion = on;
    conf->assertion_path = section && cmd->path ? cmd->path : "/";
    return NULL;
}

static const char *set_header_prefix(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *c;

    for (c = arg; *c; c++) {
        if (!apr_isalnum(*c) && *c != '-') {
            return directive_error(cmd, "may only hold letters, digits and '-'");
        }
    }
    if (!*arg) {
        return directive_error(cmd, "must not be empty");
    }
    ((bbauth_dir_conf *)dconf)->header_prefix = arg;
    return NULL;
}

/* BBAuthClientSetup client url (repeatable): the account page shows, in this order, how to set each client up. */
static const char *add_client_setup(cmd_parms *cmd, void *dummy, const char *client, const char *url)
{
    bbauth_server_conf *conf = server_conf_of(cmd);
    const char *err = bb_clientsetup_check(cmd->pool, client, url);
    bbauth_client_setup *setup;

    if (err) {
        return directive_error(cmd, err);
    }
    if (!conf->client_setups) {
        conf->client_setups = apr_array_make(cmd->pool, 4, sizeof(bbauth_client_setup));
    }
    setup = apr_array_push(conf->client_setups);
    setup->client = client;
    setup->url = url;
    return NULL;
}

const command_rec bbauth_directives[] = {
    AP_INIT_TAKE1("BBAuthBitbucketURL", set_bitbucket_url, NULL, RSRC_CONF,
                  "Bitbucket Data Center base URL, e.g. https://bitbucket.example.com"),
    AP_INIT_TAKE1("BBAuthOAuthVersion", set_oauth_version, NULL, RSRC_CONF,
                  "2 (default) or 1 for Bitbucket before 7.21"),
    AP_INIT_TAKE1("BBAuthClientID", set_client_id, NULL, RSRC_CONF,
                  "Client ID of the application link (OAuth 1: the consumer key)"),
    AP_INIT_TAKE1("BBAuthClientSecret", set_client_secret, NULL, RSRC_CONF,
                  "Client secret of the application link, or file:/path or env:NAME"),
    AP_INIT_TAKE1("BBAuthOAuth1PrivateKey", set_oauth1_private_key, NULL, RSRC_CONF,
                  "OAuth 1: the consumer's RSA private key (PEM, 2048 bits or more; build/bbauth-keygen)"),
    AP_INIT_TAKE1("BBAuthRedirectURI", set_redirect_uri, NULL, RSRC_CONF,
                  "The exact redirect URL registered in the application link"),
    AP_INIT_ITERATE("BBAuthScope", add_scope, NULL, RSRC_CONF,
                    "OAuth 2 scopes to ask for (default REPO_READ)"),
    AP_INIT_TAKE1("BBAuthSessionKey", set_session_key, NULL, RSRC_CONF,
                  "File with the session signing keys, one per line; the first signs"),
    AP_INIT_ITERATE("BBAuthSigningKey", add_signing_key, NULL, RSRC_CONF,
                    "EC P-256 (ES256) or Ed25519 (EdDSA) private key (PEM) that signs session cookies and identity "
                    "assertions; repeatable: the first signs, all are published (bbauth-jwks) and verify"),
    AP_INIT_TAKE1("BBAuthSessionMaxAge", set_max_age, NULL, RSRC_CONF,
                  "Seconds a session lasts from login (default 28800)"),
    AP_INIT_TAKE1("BBAuthSessionIdleTimeout", set_idle_timeout, NULL, RSRC_CONF,
                  "Seconds without a request before a session ends (default 3600, 0 = off)"),
    AP_INIT_TAKE1("BBAuthCookieName", set_cookie_name, NULL, RSRC_CONF,
                  "Name of the session cookie (default bbauth_session)"),
    AP_INIT_TAKE1("BBAuthCookieDomain", set_cookie_domain, NULL, RSRC_CONF,
                  "Domain attribute of the session cookie (default: host only)"),
    AP_INIT_TAKE1("BBAuthCookiePath", set_cookie_path, NULL, RSRC_CONF,
                  "Path attribute of the session cookie (default /)"),
    AP_INIT_TAKE1("BBAuthCookieSameSite", set_cookie_samesite, NULL, RSRC_CONF,
                  "SameSite attribute of the session cookie: Lax (default), Strict or None"),
    AP_INIT_TAKE1("BBAuthCache", set_cache, NULL, RSRC_CONF,
                  "socache provider for shared state: shmcb (default), memcache:host:port, redis:host:port"),
    AP_INIT_TAKE1("BBAuthCAFile", set_ca_file, NULL, RSRC_CONF,
                  "Extra CA certificates (PEM) to trust for Bitbucket's certificate"),
    AP_INIT_TAKE1("BBAuthTimeout", set_timeout, NULL, RSRC_CONF,
                  "Seconds to wait for Bitbucket (default 10)"),
    AP_INIT_TAKE1("BBAuthBitbucketMaxCalls", set_max_calls, NULL, RSRC_CONF,
                  "Calls to Bitbucket in flight at once per process; beyond, 503 at once (default 8, 0 = no limit)"),
    AP_INIT_TAKE1("BBAuthCircuitFailures", set_circuit_failures, NULL, RSRC_CONF,
                  "Consecutive failed calls to Bitbucket that open the circuit breaker (default 5, 0 = off)"),
    AP_INIT_TAKE1("BBAuthCircuitCooldown", set_circuit_cooldown, NULL, RSRC_CONF,
                  "Seconds the circuit breaker stays open before one probe call (default 30)"),
    AP_INIT_TAKE1("BBAuthAnonymousChecksPerMinute", set_anonymous_checks, NULL, RSRC_CONF,
                  "Checks at Bitbucket of tokens nobody confirmed that one client address may cause per minute; "
                  "beyond, 429 at once (default 30, 0 = no limit)"),
    AP_INIT_TAKE1("BBAuthStaleIfError", set_stale_if_error, NULL, RSRC_CONF,
                  "Seconds past its TTL a token Bitbucket accepted is still accepted while Bitbucket cannot "
                  "answer (default 0 = off)"),
    AP_INIT_TAKE1("BBAuthTokenCacheTTL", set_token_cache_ttl, NULL, RSRC_CONF,
                  "Seconds Bitbucket's acceptance of an access token is cached (default 300)"),
    AP_INIT_TAKE1("BBAuthAuthzCacheTTL", set_authz_cache_ttl, NULL, RSRC_CONF,
                  "Seconds a Require bitbucket-repo/-project/-group decision is reused (default 300)"),
    AP_INIT_TAKE1("BBAuthSessionRevalidate", set_revalidate, NULL, RSRC_CONF,
                  "Seconds after which a session is checked at Bitbucket again (default 900, 0 = never)"),
    AP_INIT_TAKE1("BBAuthSessionRecheck", set_session_recheck, NULL, RSRC_CONF,
                  "Seconds a process trusts that a session was not logged out before asking the shared cache "
                  "again: a logout on another host takes effect here within this time (default 5, 0 = always ask)"),
    AP_INIT_TAKE2("BBAuthClientSetup", add_client_setup, NULL, RSRC_CONF,
                  "A package client and the mirror URL it uses (" BB_CLIENTSETUP_CLIENTS "): the account page "
                  "(SetHandler bbauth-account) shows the lines that set it up"),
    AP_INIT_FLAG("BBAuthTokenAuth", set_token_auth, NULL, OR_AUTHCFG,
                 "On: accept Bitbucket HTTP access tokens (Basic or Bearer) from command-line clients"),
    AP_INIT_TAKE1("BBAuthUnauthAction", set_unauth_action, NULL, OR_AUTHCFG,
                  "What an unauthenticated request gets: auto (default), redirect, 401 or pass"),
    AP_INIT_FLAG("BBAuthIdentityAssertion", set_identity_assertion, NULL, ACCESS_CONF | RSRC_CONF,
                 "On: send the upstream app <prefix>Assertion, a JWT of the identity signed with BBAuthSigningKey"),
    AP_INIT_TAKE1("BBAuthHeaderPrefix", set_header_prefix, NULL, OR_AUTHCFG,
                  "Prefix of the identity headers for the upstream app (default X-Bitbucket-)"),
    AP_INIT_TAKE1("BBAuthAuditLog", bbauth_set_audit_log, NULL, RSRC_CONF,
                  "File (relative to ServerRoot) or |program for the audit log: one JSON line per authentication "
                  "decision (default: none)"),
    AP_INIT_FLAG("BBAuthHealthCircuit", bbauth_set_health_circuit, NULL, RSRC_CONF,
                 "On (default): bbauth-health answers 503 while the circuit to Bitbucket is open; Off: it only "
                 "reports it"),
    AP_INIT_FLAG("BBAuthPassAuthorization", set_pass_authorization, NULL, OR_AUTHCFG,
                 "On: the upstream app still receives the client's Authorization header once the module has "
                 "authenticated the request (default Off: it is removed)"),
    { NULL }
};

/* ---- the startup check of every place that uses the module ---- */

/* The argument of a directive node without surrounding quotes. */
static const char *first_arg(apr_pool_t *p, const ap_directive_t *node)
{
    const char *args = node->args;
    return ap_getword_conf(p, &args);
}

/* What, if anything, a configuration node asks of the module: a description of the use, or NULL. */
static const char *node_use(apr_pool_t *p, const ap_directive_t *node)
{
    const char *arg;

    if (!node->args) {
        return NULL;
    }
    arg = first_arg(p, node);
    if (!strcasecmp(node->directive, "AuthType") && !strcasecmp(arg, BBAUTH_AUTH_TYPE)) {
        return "AuthType Bitbucket";
    }
    if (!strcasecmp(node->directive, "SetHandler") && !strncasecmp(arg, "bbauth-", 7)) {
        return apr_pstrcat(p, "SetHandler ", arg, NULL);
    }
    if (!strcasecmp(node->directive, "Require") && !strncasecmp(arg, "bitbucket-", 10)) {
        return apr_pstrcat(p, "Require ", arg, NULL);
    }
    return NULL;
}

/* The server record a <VirtualHost> section made: httpd remembers where each was defined. */
static server_rec *server_of_section(server_rec *main_server, const ap_directive_t *node)
{
    server_rec *s;

    for (s = main_server->next; s; s = s->next) {
        if (s->defn_name && !strcmp(s->defn_name, node->filename)
            && s->defn_line_number == (unsigned int)node->line_num) {
            return s;
        }
    }
    return main_server;
}

/* Whether a node needs a BBAuthSigningKey: the JWK Set handler, and identity assertions turned on. */
static int needs_signing_key(apr_pool_t *p, const ap_directive_t *node)
{
    const char *arg = node->args ? first_arg(p, node) : "";

    return (!strcasecmp(node->directive, "SetHandler") && !strcasecmp(arg, "bbauth-jwks"))
        || (!strcasecmp(node->directive, "BBAuthIdentityAssertion") && !strcasecmp(arg, "on"));
}

/* Whether a use is a Require line that asks Bitbucket with the credential (not bitbucket-user). */
static int asks_bitbucket(const char *use)
{
    return !strncasecmp(use, "Require bitbucket-", 18) && strcasecmp(use, "Require bitbucket-user");
}

/* SetHandler bbauth-account in a <Location /path> (not a pattern): the path that denial pages link to, for this
 * server. p is pconf: the path outlives the check. */
static void note_account_page(apr_pool_t *p, server_rec *s, const ap_directive_t *node)
{
    const ap_directive_t *section = node->parent;
    bbauth_server_conf *conf = ap_get_module_config(s->module_config, &bbauth_module);
    char *path;

    if (strcasecmp(node->directive, "SetHandler") || !node->args || strcasecmp(first_arg(p, node), "bbauth-account")
        || !section || strcasecmp(section->directive, "<Location") || !section->args || conf->account_path) {
        return;
    }
    path = apr_pstrdup(p, first_arg(p, section));
    if (*path && path[strlen(path) - 1] == '>') {
        path[strlen(path) - 1] = '\0';
    }
    if (path[0] == '/' && !strpbrk(path, "*?[\"'<>")) {
        conf->account_path = path;
    }
}

/* A virtual host without an account page of its own links to the main server's (its <Location>s apply there). */
static void share_account_page(server_rec *main_server)
{
    const bbauth_server_conf *main_conf = ap_get_module_config(main_server->module_config, &bbauth_module);
    server_rec *s;

    for (s = main_server->next; s; s = s->next) {
        bbauth_server_conf *conf = ap_get_module_config(s->module_config, &bbauth_module);
        if (!conf->account_path) {
            conf->account_path = main_conf->account_path;
        }
    }
}

static int check_tree(apr_pool_t *ptemp, server_rec *main_server, server_rec *s, const ap_directive_t *node)
{
    for (; node; node = node->next) {
        server_rec *section_server = s;
        const char *use = node_use(ptemp, node);

        note_account_page(main_server->process->pconf, s, node);

        if (use) {
            const bbauth_server_conf *conf = ap_get_module_config(s->module_config, &bbauth_module);
            if (conf->missing) {
                ap_log_error(APLOG_MARK, APLOG_EMERG, 0, main_server,
                             "mod_bbauth: %s on line %d of %s needs %s set for %s",
                             use, node->line_num, node->filename, conf->missing,
                             s == main_server ? "the main server" : "its virtual host");
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            if (conf->oauth_version == 1 && asks_bitbucket(use)) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, main_server,
                             "mod_bbauth: %s on line %d of %s: logins with BBAuthOAuthVersion 1 keep no Bitbucket "
                             "grant to ask with, so only access tokens (BBAuthTokenAuth) can pass it, never a browser "
                             "session; use OAuth 2 for those", use, node->line_num, node->filename);
            }
        }
        if (needs_signing_key(ptemp, node)) {
            const bbauth_server_conf *conf = ap_get_module_config(s->module_config, &bbauth_module);
            if (!conf->signing_keys) {
                ap_log_error(APLOG_MARK, APLOG_EMERG, 0, main_server,
                             "mod_bbauth: %s %s on line %d of %s needs BBAuthSigningKey set for %s",
                             node->directive, node->args, node->line_num, node->filename,
                             s == main_server ? "the main server" : "its virtual host");
                return HTTP_INTERNAL_SERVER_ERROR;
            }
        }
        if (!strcasecmp(node->directive, "<VirtualHost")) {
            section_server = server_of_section(main_server, node);
        }
        if (node->first_child && check_tree(ptemp, main_server, section_server, node->first_child) != OK) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

/* Refuses a cookie name browsers would refuse with the configured attributes (a __Host- name with a domain, ...). */
static int check_cookie_names(server_rec *main_server)
{
    server_rec *s;

    for (s = main_server; s; s = s->next) {
        const bbauth_server_conf *conf = ap_get_module_config(s->module_config, &bbauth_module);
        const char *problem = bb_cookie_prefix_problem(conf->cookie_name, conf->cookie_domain, conf->cookie_path,
                                                       conf->cookie_secure);
        if (problem) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, main_server, "mod_bbauth: BBAuthCookieName %s in %s: %s",
                         conf->cookie_name, s == main_server ? "the main server" : "a virtual host", problem);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

int bbauth_check_uses(apr_pool_t *ptemp, server_rec *s)
{
    int rc;

    if (check_cookie_names(s) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    rc = check_tree(ptemp, s, s, ap_conftree);
    share_account_page(s);
    return rc;
}
