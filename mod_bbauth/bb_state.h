/* bb_state: the short-lived signed login-state cookie that binds the OAuth state, PKCE verifier and return URL to one browser. */
#ifndef BB_STATE_H
#define BB_STATE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include "bb_keys.h"

typedef struct {
    const char *state;         /* OAuth 2 state (>= 128 random bits, base64url); for OAuth 1 the request token */
    const char *verifier;      /* PKCE code_verifier (OAuth 2), NULL for OAuth 1 */
    const char *return_to;     /* local path to go back to after login */
    apr_int64_t exp;           /* unix time after which the login attempt is void */
} bb_login_state_t;

typedef enum {
    BB_STATE_VALID = 0,
    BB_STATE_INVALID,          /* malformed, bad signature, or not bound to this state value */
    BB_STATE_EXPIRED
} bb_state_status_t;

/* A new login attempt: random state (256 bits) and PKCE verifier, exp = now + ttl; a NULL return_to is "/".
 * NULL if no randomness. */
bb_login_state_t *bb_login_state_new(apr_pool_t *p, const char *return_to, apr_int64_t now, apr_int64_t ttl);

/* Longest return path a state cookie keeps; a longer one becomes "/" (a few pending logins with long return paths
 * must not make the browser's Cookie header too large for httpd). */
#define BB_STATE_MAX_RETURN 256

/* JWS (typ "bbauth-state") under the state key ring; claims {"st","pv" (absent when verifier is NULL),"ret" ("/" when
 * the return path is longer than BB_STATE_MAX_RETURN),"exp"}. */
char *bb_login_state_encode(apr_pool_t *p, const bb_keyring_t *state_ring, const bb_login_state_t *ls);

/* Verifies the cookie value, then that its state equals expected_state (constant time) and it is unexpired
 * (now < exp). A cookie for another state is INVALID even when it has also expired. *out only for VALID. */
bb_state_status_t bb_login_state_decode(apr_pool_t *p, const bb_keyring_t *state_ring, const char *value,
                                        const char *expected_state, apr_int64_t now, bb_login_state_t **out);

/* Name of the cookie for one login attempt: "<base>_st_<first 16 characters of SHA-256(state), base64url>".
 * One cookie per attempt lets logins in parallel tabs each complete. */
char *bb_login_state_cookie_name(apr_pool_t *p, const char *base_cookie_name, const char *state);

/* Of the pending login-state cookies a browser sent (bb_cookie_pair_t, from bb_cookie_pairs_with_prefix), the names
 * of those to delete so that at most keep - 1 remain beside a new one: the oldest (by exp; one that does not
 * verify counts as oldest). An array of const char *, empty when there are fewer than keep. */
apr_array_header_t *bb_login_state_evict(apr_pool_t *p, const bb_keyring_t *state_ring, const apr_array_header_t *pairs,
                                         int keep);

#endif
