/* mod_bbauth.h: the httpd glue's shared declarations: configuration records and the functions the glue files share. */
#ifndef MOD_BBAUTH_H
#define MOD_BBAUTH_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_time.h>

#include "bb_keys.h"
#include "bb_http.h"
#include "bb_oauth2.h"
#include "bb_oauth1.h"
#include "bb_bitbucket.h"
#include "bb_state.h"
#include "bb_session.h"
#include "bb_cache.h"
#include "bb_tokencache.h"
#include "bb_seal.h"
#include "bb_flight.h"
#include "bb_sessionstate.h"
#include "bb_ratelimit.h"
#include "bb_hostflight.h"
#include "mod_bbauth_metrics.h"
#include "bb_audit.h"
#include "bb_cutoff.h"
#include "bb_origin.h"

extern module AP_MODULE_DECLARE_DATA bbauth_module;
/* Log lines name the module ([bbauth:...]); mod_bbauth.c gets this from AP_DECLARE_MODULE instead. */
#ifndef BBAUTH_DECLARES_MODULE
APLOG_USE_MODULE(bbauth);
#endif

/* The version is written in one place, the first line of debian/changelog; the Makefile passes it to the compiler. */
#ifndef MOD_BBAUTH_VERSION
#error "MOD_BBAUTH_VERSION comes from debian/changelog through the Makefile: build with make"
#endif
#define BBAUTH_AUTH_TYPE        "Bitbucket"
#define BBAUTH_LOGIN_TTL        600          /* seconds a login attempt (state cookie) stays valid */
#define BBAUTH_MAX_PENDING_LOGINS 4          /* login-state cookies a browser keeps; a new one replaces the oldest */
#define BBAUTH_MEMO_SLOTS       4096         /* verified cookies / token verdicts / assertions each process remembers */
#define BBAUTH_SESSION_STATE_SLOTS 4096      /* sessions whose shared state each process remembers (~150 bytes each) */
#define BBAUTH_DEFAULT_PREFIX   "X-Bitbucket-"

#define BBAUTH_UNSET            -1

/* BBAuthClientSetup client url: a package client the account page shows the setup of, for this mirror URL. */
typedef struct {
    const char *client;              /* "composer", "pip", ... (bb_clientsetup) */
    const char *url;
} bbauth_client_setup;

/* Server (virtual host) configuration. Unset values (NULL / BBAUTH_UNSET) inherit from the main server. */
typedef struct {
    const char *bitbucket_url;       /* checked, no trailing '/' */
    int oauth_version;               /* 1 or 2 */
    const char *client_id;
    const char *client_secret;       /* the secret itself, after file: / env: */
    const char *oauth1_key_file;     /* BBAuthOAuth1PrivateKey, as resolved */
    bb_oauth1_key_t *oauth1_key;     /* loaded (and checked) when the directive is read */
    const char *redirect_uri;        /* exactly as registered in Bitbucket */
    const char *redirect_origin;     /* scheme://host[:port] of redirect_uri: the session's iss */
    const char *callback_path;       /* path of redirect_uri, answered by the module itself */
    const char *scope;
    bb_keyring_t *session_keys;      /* from BBAuthSessionKey: the first signs, all verify; once finalized it also
                                      * carries signing_keys (bb_keyring_with_signers), which then sign */
    apr_array_header_t *signing_keys; /* of bb_signkey_t *, from BBAuthSigningKey: the first signs, all are
                                      * published (bbauth-jwks) and verify; NULL: HS256 sessions, no assertions */
    bb_keyring_t *state_keys;        /* derived from session_keys for login-state cookies */
    apr_int64_t max_age;
    apr_int64_t idle_timeout;
    const char *cookie_name;
    const char *cookie_domain;
    const char *cookie_path;
    const char *cookie_samesite;
    const char *ca_file;
    const char *ca_pem;              /* ca_file's certificates, read at startup (the file may be root's alone) */
    int timeout;
    apr_int64_t token_cache_ttl;     /* seconds Bitbucket's "yes" for an access token is trusted */
    apr_int64_t authz_cache_ttl;     /* seconds a bitbucket-repo/-project/-group decision is reused */
    apr_int64_t revalidate;          /* seconds after which a session is checked at Bitbucket again; 0 = never */
    apr_int64_t max_calls;           /* BBAuthBitbucketMaxCalls: calls in flight per process; 0 = no limit */
    apr_int64_t circuit_failures;    /* BBAuthCircuitFailures: consecutive failures that open it; 0 = off */
    apr_int64_t circuit_cooldown;    /* BBAuthCircuitCooldown: seconds it stays open */
    apr_int64_t stale_if_error;      /* BBAuthStaleIfError: seconds a confirmed token is used past its TTL while
                                      * Bitbucket cannot answer; 0 = off */
    apr_int64_t session_recheck;     /* BBAuthSessionRecheck: seconds a process believes "not logged out" */
    int session_recheck_default;     /* 1 when BBAuthSessionRecheck was not set: with a host-local cache, its
                                      * sessions are believed longer (bbauth_cache_attach) */
    apr_array_header_t *client_setups; /* of bbauth_client_setup, from BBAuthClientSetup in order; NULL: none */
    const char *account_path;        /* the <Location> of SetHandler bbauth-account (found at startup), or NULL */
    apr_int64_t anonymous_checks;    /* BBAuthAnonymousChecksPerMinute: checks of tokens nobody confirmed one client
                                      * address may cause per minute; 0 = no limit */

    /* Filled by bbauth_finalize_server() once the configuration is read. */
    const char *missing;             /* directives this server still needs before it can log anyone in */
    int cookie_secure;
    bb_session_policy_t policy;
    bb_http_opts_t http;
    bb_oauth2_client_t oauth2;
    bb_oauth1_client_t oauth1;
    /* Derived from session_keys with this integration's Bitbucket URL and client id (integration_keys()): */
    bb_keyring_t *cache_keys;        /* keys[0] names every shared-cache entry and authenticates its records */
    bb_sealer_t *grant_sealer;       /* seals sessions' OAuth tokens in the cache */
    bb_sessionstate_t session_state; /* sessions' ended/checked marks and grants; cache attached at post_config */
    bb_memo_t *session_memo;         /* cookies this process verified already (bb_session_decode_memo) */
    bb_memo_t *token_memo;           /* token verdicts this process read or stored (bb_tokencache_t.memo) */
    bb_memo_t *user_memo;            /* token owners' details this process asked Bitbucket for (bb_tokencache_t.users) */
    const unsigned char *token_memo_secret; /* random, made at startup: keys token_memo (bb_tokencache_t.memo_secret) */
    bb_memo_t *assertion_memo;       /* identity assertions this process signed, by session or token and audience */
    bb_flights_t *token_flights;     /* token checks in progress in this process: one per token at a time */
    bb_flights_t *grant_flights;     /* grant refreshes in progress in this process: one per session at a time */

    /* Security operations (mod_bbauth_audit.c, mod_bbauth_admin.c, mod_bbauth_health.c): */
    const char *audit_log;           /* BBAuthAuditLog: a file (ServerRoot-relative) or "|program"; NULL: none */
    apr_file_t *audit_file;          /* opened in open_logs, shared by the servers that name the same log */
    int health_circuit;              /* BBAuthHealthCircuit: BBAUTH_UNSET (on), 0 or 1: an open circuit is unready */
    bb_cutoff_t cutoff;              /* users cut off by an admin (bbauth-admin); cache attached at post_config */
} bbauth_server_conf;

typedef enum {
    BBAUTH_UNAUTH_UNSET = 0,
    BBAUTH_UNAUTH_AUTO,              /* browser navigations are redirected, everything else gets 401 */
    BBAUTH_UNAUTH_REDIRECT,
    BBAUTH_UNAUTH_401,
    BBAUTH_UNAUTH_PASS               /* anonymous allowed; identity set when a valid session is there */
} bbauth_unauth_action;

/* Directory / location configuration. */
typedef struct {
    bbauth_unauth_action unauth_action;
    const char *header_prefix;
    int token_auth;                  /* BBAuthTokenAuth: BBAUTH_UNSET (off), 0 or 1 */
    int needs_grant;                 /* a Require line here asks Bitbucket with a session's OAuth grant */
    int identity_assertion;          /* BBAuthIdentityAssertion: BBAUTH_UNSET (off), 0 or 1 */
    const char *assertion_path;      /* the <Location> path where it was set ("/" at server level): the aud's path */
    int pass_authorization;          /* BBAuthPassAuthorization: BBAUTH_UNSET (off: removed upstream), 0 or 1 */
} bbauth_dir_conf;

/* mod_bbauth_config.c */
extern const command_rec bbauth_directives[];
void *bbauth_create_server_conf(apr_pool_t *p, server_rec *s);
void *bbauth_merge_server_conf(apr_pool_t *p, void *basev, void *addv);
void *bbauth_create_dir_conf(apr_pool_t *p, char *dir);
void *bbauth_merge_dir_conf(apr_pool_t *p, void *basev, void *addv);
/* Applies defaults and derives what requests use; conf->missing lists the directives still needed. */
void bbauth_finalize_server(apr_pool_t *p, bbauth_server_conf *conf);
/* Refuses (at startup and `apachectl -t`) any use of the module in a server that lacks its settings; notes where
 * each server's account page is (account_path). */
int bbauth_check_uses(apr_pool_t *ptemp, server_rec *s);

/* mod_bbauth_cache.c */
const char *bbauth_cache_configure(apr_pool_t *pconf, apr_pool_t *ptemp, const char *spec);
void bbauth_cache_register_mutex(apr_pool_t *pconf);
apr_status_t bbauth_cache_post_config(apr_pool_t *pconf, server_rec *s);
/* Attaches the child to the cache's mutex, and writes every server's canary (bb_sessionstate_epoch) into a cache
 * that has none: in the child, since a connection opened in the parent would be shared by all children. */
void bbauth_cache_child_init(apr_pool_t *pchild, server_rec *s);
/* Hands every server's session state the shared cache and this host's count of ended sessions. */
void bbauth_cache_attach(server_rec *s);
/* Refuses (at startup and `apachectl -t`, one log line) a BBAuthSessionMaxAge the cache cannot keep entries for:
 * memcache's 30 days. */
int bbauth_cache_check_ttls(server_rec *s);
/* The shared cache as the core sees it. */
const bb_cache_t *bbauth_cache(void);

/* mod_bbauth_session.c: the request's session: its cookie and its state shared with the other hosts. */
/* The request's session (any valid cookie of the configured name), checked against the shared state: OK with
 * *session set; DECLINED with *session NULL when there is none, or it was ended (logged out) or, when `revalidate`
 * and the check falls due, Bitbucket no longer accepts its grant or none is kept (the cookie is then deleted);
 * HTTP_SERVICE_UNAVAILABLE when the shared cache cannot say whether it was ended (one log line). */
int bbauth_request_session(request_rec *r, const bbauth_server_conf *conf, int revalidate, bb_session_t **session);
/* Just before a login makes a session: the shared cache's epoch is read (or begun, in a cache emptied since it was
 * last read), so that the new session begins after it. */
void bbauth_session_before_new(request_rec *r, const bbauth_server_conf *conf);
/* Ends a session on every server sharing the cache: its id is marked until the session's own end, its grant
 * dropped. Takes effect at once on this host, within BBAuthSessionRecheck on the others. */
void bbauth_session_end(request_rec *r, const bbauth_server_conf *conf, const bb_session_t *session);

/* mod_bbauth_authn.c */
void bbauth_register_authn_hooks(void);

/* What a request was authenticated with, for the Require lines that ask Bitbucket. */
typedef struct {
    const char *token;               /* an HTTP access token (BBAuthTokenAuth), or NULL */
    const char *sid;                 /* a browser session's id, or NULL */
} bbauth_credential;
void bbauth_note_credential(request_rec *r, const char *token, const char *sid);
/* The request's credential; both fields NULL when it has none. */
const bbauth_credential *bbauth_request_credential(request_rec *r);
/* 1 when this module identified the request's user (a session or an access token): the response is personal. */
int bbauth_authenticated_here(request_rec *r);

/* mod_bbauth_grant.c */
/* Keeps a session's OAuth 2 tokens server-side (sealed, in the shared cache) for as long as the session may live. */
void bbauth_grant_save(request_rec *r, const bbauth_server_conf *conf, const char *sid,
                       const bb_oauth2_tokens_t *tokens);
/* The session's current access token, refreshed at Bitbucket when it is about to expire (or force_refresh: when
 * Bitbucket no longer knows it). NULL with *errmsg when there is none (*unavailable 0: log in again) or Bitbucket
 * cannot refresh it now (*unavailable 1). */
const char *bbauth_grant_access_token(request_rec *r, const bbauth_server_conf *conf, const char *sid,
                                      int force_refresh, const char **errmsg, int *unavailable);
/* Logout: revokes the session's grant at Bitbucket (its refresh token, which ends the whole grant), so that the
 * tokens are worthless even to whoever copied them; a failure is logged and the logout goes on. */
void bbauth_grant_revoke(request_rec *r, const bbauth_server_conf *conf, const char *sid);
/* 1 when the session's grant is kept (or the integration has none to keep: OAuth 1). */
int bbauth_grant_kept(request_rec *r, const bbauth_server_conf *conf, const char *sid);
typedef enum {
    BBAUTH_GRANT_ACCEPTED,           /* Bitbucket takes it (or took it less than BBAuthSessionRevalidate ago) */
    BBAUTH_GRANT_REFUSED,            /* user deactivated or grant revoked */
    BBAUTH_GRANT_GONE,               /* no grant is kept for the session (evicted, or the cache was emptied) */
    BBAUTH_GRANT_UNAVAILABLE         /* Bitbucket cannot say now */
} bbauth_grant_verdict;
/* BBAuthSessionRevalidate: whether Bitbucket still accepts the session's grant, asked at most once per period per
 * session (on any host); ACCEPTED when revalidation is off or the integration keeps no grants (OAuth 1). A session
 * whose login kept no grant (no "grant" claim) is ACCEPTED for one period from its login, then GONE. known_checked:
 * the session is already known to be checked (bb_sessionstate_liveness said so): no second lookup. */
bbauth_grant_verdict bbauth_grant_revalidate(request_rec *r, const bbauth_server_conf *conf,
                                             const bb_session_t *session, int known_checked, const char **errmsg);

/* mod_bbauth_breaker.c */
/* Gives every server's calls to Bitbucket their limit and circuit breaker (state shared by the processes of the
 * host, in an anonymous shared memory segment of pconf; one per Bitbucket URL). */
apr_status_t bbauth_breaker_post_config(apr_pool_t *pconf, server_rec *s);
/* For a 503 because Bitbucket cannot answer: sets Retry-After (the circuit's remaining cool-down, or the hold of the
 * request's holder when longer; at least 1 s). */
void bbauth_retry_after(request_rec *r, const bbauth_server_conf *conf);
/* The options for calls made with the credential of `user` (a name Bitbucket confirmed), or of nobody confirmed yet
 * (BB_HOLDER_ANONYMOUS): conf->http with the holder a 429 holds back (a keyed hash of the name, never a token),
 * remembered in the request for bbauth_retry_after. */
const bb_http_opts_t *bbauth_http_for(request_rec *r, const bbauth_server_conf *conf, const char *user);
/* BBAuthAnonymousChecksPerMinute: counts a check at Bitbucket of a token nobody confirmed for the request's client
 * address, host-wide: 1 when it may be made, else 0 with *retry_after (the seconds until the address's minute
 * ends). */
int bbauth_anonymous_check_allowed(request_rec *r, const bbauth_server_conf *conf, apr_int64_t *retry_after);
/* The host's access token checks in progress (shared by its processes), or NULL. */
bb_hostflights_t *bbauth_token_hostflights(void);

/* mod_bbauth_token.c */
/* Authenticates a Bitbucket HTTP access token from the Authorization header: OK with *user and *token set (parsed
 * once here, for the credential note and the assertion), DECLINED when
 * the request has no Authorization header, HTTP_UNAUTHORIZED for a bad or refused token, HTTP_SERVICE_UNAVAILABLE
 * when Bitbucket cannot say, HTTP_TOO_MANY_REQUESTS when Bitbucket rate-limited the caller (both with Retry-After
 * and one log line). */
int bbauth_token_authenticate(request_rec *r, const bbauth_server_conf *conf, const bb_user_t **user,
                              const char **token);
/* The access token in the request's Authorization header, or NULL (for the account page and the audit log: the
 * authentication itself gets it from bbauth_token_authenticate). */
const char *bbauth_token_of(request_rec *r);
/* The token's key in the token cache (a keyed hash: never the token), or NULL. */
const char *bbauth_token_cache_key(request_rec *r, const bbauth_server_conf *conf, const char *token);

/* mod_bbauth_authz.c */
void bbauth_register_authz_providers(apr_pool_t *p);
/* r->notes entry: the question of the Require line that refused the request ("bitbucket-repo PROJ/alpha"). */
#define BBAUTH_DENIED_NOTE "bbauth-denied"
/* "Check again" for a user's browser session: drops the remembered answer to `question` (as the denial page names
 * it, e.g. "bitbucket-repo PROJ/alpha"). APR_SUCCESS, APR_EBUSY (once per minute), APR_EINVAL for a question that
 * no Require line asks, or the cache's error. */
apr_status_t bbauth_authz_recheck(request_rec *r, const bbauth_server_conf *conf, const char *user,
                                  const char *question);

/* mod_bbauth_login.c */
void bbauth_register_login_hooks(void);
/* Starts a login: sets the login-state cookie and answers 302 to Bitbucket's authorize page. May answer a
 * page itself (OAuth 1 asks Bitbucket first) and then returns DONE, never OK: it also runs in check_authn. */
int bbauth_start_login(request_rec *r, const bbauth_server_conf *conf, const char *return_to);
/* The steps both OAuth versions share. Sets the login-state cookie bound to login->state: OK, or (logged)
 * HTTP_INTERNAL_SERVER_ERROR when it cannot be made. */
int bbauth_set_login_state(request_rec *r, const bbauth_server_conf *conf, const bb_login_state_t *login);
/* On the callback: the login this browser started for `state` (state cookie, constant-time match, unexpired),
 * marked used in the cache. OK with *login set; otherwise *login is NULL, a page was answered, and the return
 * value is what the handler returns. */
int bbauth_claim_login(request_rec *r, const bbauth_server_conf *conf, const char *state, bb_login_state_t **login);
/* The 403 page for a user who clicked Deny in Bitbucket. */
int bbauth_login_denied(request_rec *r, const char *again);
/* One log line and a short page for a login that failed while talking to Bitbucket; a page or a redirect where
 * data was expected is named as the likely work of a two-factor plugin, on the page too. */
int bbauth_login_failed(request_rec *r, int status, const char *errmsg, const char *again);
/* The shared tail: identifies the user with REST calls that `authorize` signs, sets the session cookie, keeps
 * `grant` (OAuth 2's tokens, for the Require lines that ask Bitbucket; NULL: none, as with OAuth 1) and sends the
 * browser back to login->return_to. */
int bbauth_login_identified(request_rec *r, const bbauth_server_conf *conf, const bb_login_state_t *login,
                            bb_authorizer_fn *authorize, void *baton, const bb_oauth2_tokens_t *grant);

/* mod_bbauth_oauth1.c: the OAuth 1.0a steps (BBAuthOAuthVersion 1). */
/* Asks Bitbucket for a request token, binds it to this browser and answers 302 to the authorize page. */
int bbauth_oauth1_start_login(request_rec *r, const bbauth_server_conf *conf, const char *return_to);
/* Bitbucket's answer on the callback path: ?oauth_token&oauth_verifier. */
int bbauth_oauth1_callback(request_rec *r, const bbauth_server_conf *conf);

/* mod_bbauth_assert.c */
/* BBAuthIdentityAssertion: the value of <prefix>Assertion, a JWT of the identity `who` (a session, or a token owner
 * with sid NULL) signed with the first BBAuthSigningKey; NULL when the location sends none, or it cannot be signed
 * (logged). memo_id names the credential (the session id, or the token's cache key): the signed assertion is reused
 * for it in this process while more than 30 s of validity remain. */
const char *bbauth_assertion(request_rec *r, const bbauth_server_conf *conf, const bbauth_dir_conf *dconf,
                             const bb_session_t *who, const char *memo_id);
/* The same for an access token's owner (the memo is keyed by the token's cache key, never by the token). */
const char *bbauth_assertion_for_token(request_rec *r, const bbauth_server_conf *conf, const bbauth_dir_conf *dconf,
                                       const bb_user_t *owner, const char *token);
void bbauth_register_assert_hooks(void);

/* mod_bbauth_audit.c: BBAuthAuditLog, one JSON line per authentication decision (bb_audit_line). */
const char *bbauth_set_audit_log(cmd_parms *cmd, void *dummy, const char *arg);
void bbauth_register_audit_hooks(void);
/* Writes one event about r (client, method, path, vhost, location, request id filled in from r) when the server has
 * an audit log, and notes the decision for LogFormat (%{BBAUTH_DECISION}e). user may be NULL (r->user is taken). */
void bbauth_audit(request_rec *r, const char *event, const char *outcome, const char *reason, const char *user);
/* The same for an access token's verdict: its owner and the token's audit id (never the token). */
void bbauth_audit_token(request_rec *r, const char *outcome, const char *reason, const char *owner);
/* A Require bitbucket-* line's decision. */
void bbauth_audit_require(request_rec *r, int decision, const char *rule);
/* A line of the circuit breaker about Bitbucket (opened, closed, rate-limited), for server s. */
void bbauth_audit_circuit(server_rec *s, const char *line);

/* mod_bbauth_admin.c: SetHandler bbauth-admin (cut a user off) and the cut-off check on the request paths. */
void bbauth_register_admin_hooks(void);
/* Gives every server's cut-off records the shared cache and a per-process memo (post_config). */
void bbauth_cutoff_attach(apr_pool_t *pconf, server_rec *s);
/* 1 (audited) when something issued to user at unix time issued_at is void because an admin cut the user off. */
int bbauth_cut_off(request_rec *r, const bbauth_server_conf *conf, const char *user, apr_int64_t issued_at);

/* mod_bbauth_health.c: SetHandler bbauth-health, the readiness check. */
const char *bbauth_set_health_circuit(cmd_parms *cmd, void *dummy, int on);
void bbauth_register_health_hooks(void);

/* mod_bbauth_setup.c */
void bbauth_register_setup_hooks(void);

/* mod_bbauth_account.c */
void bbauth_register_account_hooks(void);
/* The token the account page's forms carry (the denial page's "check again" too): a MAC of the session id under
 * the integration's key. NULL when it cannot be made. */
const char *bbauth_account_form_token(request_rec *r, const bbauth_server_conf *conf, const char *sid);

/* mod_bbauth_denial.c */
void bbauth_register_denial_hooks(void);

/* mod_bbauth_page.c */
/* Answers a short HTML page with the status; title and message are escaped here, `again` (a local path or
 * NULL) becomes a "Try again" link. Returns OK, as a handler does. */
int bbauth_page(request_rec *r, int status, const char *title, const char *message, const char *again);
/* A 200 page with a form that POSTs to `action` (a local URL) with one button; everything is escaped here. */
int bbauth_form_page(request_rec *r, const char *title, const char *message, const char *action,
                     const char *button);
/* The start of a handler of the module's own pages that answer GET and POST: 1 with *conf set when the request is
 * for `handler` and may go on; 0 when the handler must return *rc (DECLINED for another handler, OK after a 405
 * page, or 500, logged, where this server lacks the directives a login needs). */
int bbauth_page_handler_begin(request_rec *r, const char *handler, const bbauth_server_conf **conf, int *rc);
/* Where the request came from (bb_origin_of: Sec-Fetch-Site, else Origin against BBAuthRedirectURI's origin and this
 * server's own): SAME for this site's pages, CROSS for another site (a sibling host too), UNKNOWN for a client that
 * sent neither (no browser). Forms that change something accept SAME only. */
bb_origin_t bbauth_request_origin(request_rec *r, const bbauth_server_conf *conf);
/* 0 when a browser says another site made it send this request; 1 otherwise, clients that are no browser too. */
int bbauth_from_this_site(request_rec *r, const bbauth_server_conf *conf);
/* 1 when the admin set an ErrorDocument for this status where r is: the module then leaves the page to it. */
int bbauth_has_error_document(request_rec *r, int status);
/* Answers a redirect to a local path (already checked) with no-store caching. */
int bbauth_redirect(request_rec *r, const char *location);
/* Adds a Set-Cookie header that survives error responses; the response is then kept out of caches. */
void bbauth_set_cookie(request_rec *r, const char *set_cookie);
/* Set-Cookie for the session cookie with the configured attributes (max_age 0 deletes it). */
const char *bbauth_session_cookie(request_rec *r, const bbauth_server_conf *conf, const char *value, long max_age);
/* Several cookies of the session name arrived: deletes them in every scope this host can reach (bb_cookie_scopes)
 * but its own, and its own too on a conflict (they named different sessions; logged). */
void bbauth_clear_other_cookies(request_rec *r, const bbauth_server_conf *conf, int conflict);
/* 1 when bbauth_clear_other_cookies ran: the session cookie is not re-issued on this response, as the one taken
 * may not be the one of this host and path (the next request, with one cookie, re-issues it). */
int bbauth_other_cookies_cleared(request_rec *r);
/* The current time in whole seconds. */
apr_int64_t bbauth_now(void);

/* mod_bbauth_private.c */
/* Responses the module authenticated get Cache-Control private (merged with the app's, never weaker). */
void bbauth_register_private_hooks(void);
/* This response carries a cookie of the module: no-store, and mod_cache does not keep it (r->no_cache). */
void bbauth_no_store(request_rec *r);

#endif
