/* bb_session: the session cookie's claims: made at login, encoded as a JWS, and decoded with every expiry rule checked. */
#ifndef BB_SESSION_H
#define BB_SESSION_H

#include <apr_pools.h>
#include <apr_tables.h>
#include "bb_keys.h"
#include "bb_memo.h"

typedef struct {
    const char *sub;        /* Bitbucket username (the user's `name`) */
    apr_int64_t uid;        /* Bitbucket numeric user id */
    const char *name;       /* display name */
    const char *email;      /* e-mail address, may be "" */
    const char *sid;        /* random session id (128 bits, base64url) */
    apr_int64_t auth_time;  /* when the user logged in at Bitbucket: MaxAge counts from here */
    apr_int64_t iat;        /* when this cookie was issued: the idle timeout counts from here */
    apr_int64_t exp;        /* min(auth_time + max_age, iat + idle_timeout) */
    int grant;              /* claim "grant": true: the login kept an OAuth grant for the session (OAuth 2), so a
                             * revalidation that finds none fails closed; absent (OAuth 1 logins) when false */
    const char *slug;       /* the user's slug in Bitbucket URLs (may differ from sub); NULL in cookies made before
                             * it was kept (claim "slug", optional) */
} bb_session_t;

typedef struct {
    const char *issuer;         /* the `iss` claim: this site's origin, e.g. https://mirror.example.com */
    apr_int64_t max_age;        /* seconds from login after which the session ends, whatever exp says */
    apr_int64_t idle_timeout;   /* seconds without a request after which it ends; 0 = off */
} bb_session_policy_t;

typedef enum {
    BB_SESSION_VALID = 0,
    BB_SESSION_INVALID,     /* malformed, tampered, wrong alg/kid/issuer, missing or mistyped claims */
    BB_SESSION_EXPIRED      /* exp, max_age or idle timeout passed, or issued in the future */
} bb_session_status_t;

/* A fresh session for a user who has just logged in at `now`: new sid, auth_time = iat = now. name and email
 * may be NULL (stored as ""). NULL when sub is NULL or empty, or there is no randomness for the sid. */
bb_session_t *bb_session_new(apr_pool_t *p, const char *sub, apr_int64_t uid, const char *name,
                             const char *email, apr_int64_t now);

/* Sets s->iat = now and s->exp from the policy, then signs the claims with the ring's first key.
 * NULL only when the claims cannot be encoded. */
char *bb_session_encode(apr_pool_t *p, const bb_keyring_t *ring, const bb_session_policy_t *policy,
                        bb_session_t *s, apr_int64_t now);

/* Verifies the cookie value and every rule: signature, typ "JWT", iss (exact), claim types (sub and sid non-empty
 * strings, name and email strings, grant absent or a boolean, slug absent or a non-empty string, uid a non-negative
 * integer, auth_time <= iat and exp JSON integers in [0, 9999-12-31]; a real such as 1.7e9 is refused), exp,
 * auth_time + max_age, iat + idle_timeout, iat not more than 60 s in the future (EXPIRED, not INVALID). *out is set
 * only for BB_SESSION_VALID, and is NULL otherwise. */
bb_session_status_t bb_session_decode(apr_pool_t *p, const bb_keyring_t *ring, const bb_session_policy_t *policy,
                                      const char *value, apr_int64_t now, bb_session_t **out);

/* bb_session_decode with a memo of the cookies it verified before in this process (memo may be NULL): a cookie
 * found there skips the signature and claim checks, which depend on nothing but the cookie, the ring and the
 * policy, and only the time rules are checked again. One memo must serve one ring and one policy (the glue keeps
 * one per server configuration, which a restart makes anew). */
bb_session_status_t bb_session_decode_memo(apr_pool_t *p, bb_memo_t *memo, const bb_keyring_t *ring,
                                           const bb_session_policy_t *policy, const char *value, apr_int64_t now,
                                           bb_session_t **out);

typedef enum {
    BB_SESSION_PICK_NONE = 0,   /* no value is a valid session */
    BB_SESSION_PICK_ONE,        /* every valid value names the same session */
    BB_SESSION_PICK_CONFLICT    /* valid values name different sessions */
} bb_session_pick_t;

/* Told each value's status by bb_session_pick (for counting, and for saying why no value counted). */
typedef void bb_session_seen_fn(void *baton, bb_session_status_t status);

/* The one session the values of the session cookie (bb_cookie_values: a browser sends several when another host
 * or path set one too) name. Every value is decoded (bb_session_decode_memo), so junk values cannot hide a good
 * one, however many; `seen` (may be NULL) is handed each value's status with `baton`. ONE sets *out to the
 * freshest copy (latest iat). CONFLICT, with *out NULL: one of the sessions was put there by someone else (a
 * sibling host's Domain cookie, "cookie tossing"), and which one cannot be told, so none counts. */
bb_session_pick_t bb_session_pick(apr_pool_t *p, bb_memo_t *memo, const bb_keyring_t *ring,
                                  const bb_session_policy_t *policy, const apr_array_header_t *values,
                                  apr_int64_t now, bb_session_seen_fn *seen, void *baton,
                                  bb_session_t **out);

/* Seconds an identity assertion is valid. */
#define BB_ASSERTION_LIFETIME 60

/* The identity assertion for an upstream app: a JWT {"iss","aud","sub","uid","name","email","iat":now,
 * "exp":now + BB_ASSERTION_LIFETIME,"auth_time"} signed like a cookie (with ring's first signer) and typ "JWT".
 * It carries no sid, so it never passes for a session cookie; a cookie carries no aud, so an app that checks aud
 * never takes a cookie for an assertion. NULL when the claims cannot be encoded. */
char *bb_session_assertion(apr_pool_t *p, const bb_keyring_t *ring, const char *issuer, const char *audience,
                           const bb_session_t *who, apr_int64_t now);

/* 1 when the cookie should be re-issued now to slide the idle window (idle timeout on, and at least
 * max(1, idle_timeout / 10) seconds since iat), so an active user is not logged out. */
int bb_session_needs_refresh(const bb_session_policy_t *policy, const bb_session_t *s, apr_int64_t now);

#endif
