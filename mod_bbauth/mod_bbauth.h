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
#include "mod_bbauth_metrics.h"

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
#define BBAUTH_MEMO_SLOTS       256          /* verified cookies / token verdicts each process remembers */
#define BBAUTH_SESSION_STATE_SLOTS 4096      /* sessions whose shared state each process remembers (~150 bytes each) */
#define BBAUTH_DEFAULT_PREFIX   "X-Bitbucket-"

#define BBAUTH_UNSET            -1

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
    bb_memo_t *assertion_memo;       /* identity assertions this process signed, by session or token and audience */
    bb_flights_t *token_flights;     /* token checks in progress in this process: one per token at a time */
    bb_flights_t *grant_flights;     /* grant refreshes in progress in this process: one per session at a time */
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
} bbauth_dir_conf;

/* mod_bbauth_config.c */
extern const command_rec bbauth_directives[];
void *bbauth_create_server_conf(apr_pool_t *p, server_rec *s);
void *bbauth_merge_server_conf(apr_pool_t *p, void *basev, void *addv);
void *bbauth_create_dir_conf(apr_pool_t *p, char *dir);
void *bbauth_merge_dir_conf(apr_pool_t *p, void *basev, void *addv);
/* Applies defaults and derives what requests use; conf->missing lists the directives still needed. */
void bbauth_finalize_server(apr_pool_t *p, bbauth_server_conf *conf);
/* Refuses (at startup and `apachectl -t`) any use of the module in a server that lacks its settings. */
int bbauth_check_uses(apr_pool_t *ptemp, server_rec *s);

/* mod_bbauth_cache.c */
const char *bbauth_cache_configure(apr_pool_t *pconf, apr_pool_t *ptemp, const char *spec);
void bbauth_cache_register_mutex(apr_pool_t *pconf);
apr_status_t bbauth_cache_post_config(apr_pool_t *pconf, server_rec *s);
void bbauth_cache_child_init(apr_pool_t *pchild, server_rec *s);
/* Hands every server's session state the shared cache and this host's count of ended sessions. */
void bbauth_cache_attach(server_rec *s);
/* The shared cache as the core sees it. */
const bb_cache_t *bbauth_cache(void);

/* mod_bbauth_session.c: the request's session: its cookie and its state shared with the other hosts. */
/* The request's session (any valid cookie of the configured name), checked against the shared state: OK with
 * *session set; DECLINED with *session NULL when there is none, or it was ended (logged out) or, when `revalidate`
 * and the check falls due, Bitbucket no longer accepts its grant or none is kept (the cookie is then deleted);
 * HTTP_SERVICE_UNAVAILABLE when the shared cache cannot say whether it was ended (one log line). */
int bbauth_request_session(request_rec *r, const bbauth_server_conf *conf, int revalidate, bb_session_t **session);
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
 * session (on any host); ACCEPTED when revalidation is off, the integration keeps no grants (OAuth 1), or the
 * session never had one (had_grant 0: its cookie says its login kept none). */
bbauth_grant_verdict bbauth_grant_revalidate(request_rec *r, const bbauth_server_conf *conf, const char *sid,
                                             int had_grant, const char **errmsg);

/* mod_bbauth_breaker.c */
/* Gives every server's calls to Bitbucket their limit and circuit breaker (state shared by the processes of the
 * host, in an anonymous shared memory segment of pconf; one per Bitbucket URL). */
apr_status_t bbauth_breaker_post_config(apr_pool_t *pconf, server_rec *s);
/* For a 503 because Bitbucket cannot answer: sets Retry-After (the circuit's remaining cool-down, at least 1 s). */
void bbauth_retry_after(request_rec *r, const bbauth_server_conf *conf);

/* mod_bbauth_token.c */
/* Authenticates a Bitbucket HTTP access token from the Authorization header: OK with *user set, DECLINED when
 * the request has no Authorization header, HTTP_UNAUTHORIZED for a bad or refused token, HTTP_SERVICE_UNAVAILABLE
 * when Bitbucket cannot say (one log line). */
int bbauth_token_authenticate(request_rec *r, const bbauth_server_conf *conf, const bb_user_t **user);
/* The access token in the request's Authorization header, or NULL. */
const char *bbauth_token_of(request_rec *r);
/* The token's key in the token cache (a keyed hash: never the token), or NULL. */
const char *bbauth_token_cache_key(request_rec *r, const bbauth_server_conf *conf, const char *token);

/* mod_bbauth_authz.c */
void bbauth_register_authz_providers(apr_pool_t *p);

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
/* BBAuthIdentityAssertion: sets <prefix>Assertion to a JWT of the identity `who` (a session, or a token owner with
 * sid NULL) signed with the first BBAuthSigningKey. memo_id names the credential (the session id, or the token's
 * cache key): the signed assertion is reused for it in this process while more than 30 s of validity remain. */
void bbauth_assertion_set(request_rec *r, const bbauth_server_conf *conf, const bbauth_dir_conf *dconf,
                          const bb_session_t *who, const char *memo_id);
/* The same for an access token's owner (the memo is keyed by the token's cache key, never by the token). */
void bbauth_assertion_set_for_token(request_rec *r, const bbauth_server_conf *conf, const bbauth_dir_conf *dconf,
                                    const bb_user_t *owner, const char *token);
void bbauth_register_assert_hooks(void);

/* mod_bbauth_setup.c */
void bbauth_register_setup_hooks(void);

/* mod_bbauth_page.c */
/* Answers a short HTML page with the status; title and message are escaped here, `again` (a local path or
 * NULL) becomes a "Try again" link. Returns OK, as a handler does. */
int bbauth_page(request_rec *r, int status, const char *title, const char *message, const char *again);
/* 1 when the admin set an ErrorDocument for this status where r is: the module then leaves the page to it. */
int bbauth_has_error_document(request_rec *r, int status);
/* Answers a redirect to a local path (already checked) with no-store caching. */
int bbauth_redirect(request_rec *r, const char *location);
/* Adds a Set-Cookie header that survives error responses. */
void bbauth_set_cookie(request_rec *r, const char *set_cookie);
/* Set-Cookie for the session cookie with the configured attributes (max_age 0 deletes it). */
const char *bbauth_session_cookie(request_rec *r, const bbauth_server_conf *conf, const char *value, long max_age);
/* The current time in whole seconds. */
apr_int64_t bbauth_now(void);

#endif
