/* bb_state: the signed login-state cookie that binds one login attempt (state, PKCE verifier, return URL) to one browser. */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <openssl/sha.h>
#include "bb_util.h"
#include "bb_jws.h"
#include "bb_pkce.h"
#include "bb_cookie.h"
#include "bb_state.h"

#define STATE_TYP               "bbauth-state"
#define STATE_BYTES             32      /* 256-bit OAuth state */
#define STATE_COOKIE_HASH_CHARS 16      /* 96 bits of SHA-256(state): a cookie name per attempt, not a secret */

bb_login_state_t *bb_login_state_new(apr_pool_t *p, const char *return_to, apr_int64_t now, apr_int64_t ttl)
{
    bb_login_state_t *ls = apr_pcalloc(p, sizeof(*ls));

    ls->state = bb_random_token(p, STATE_BYTES);
    ls->verifier = bb_pkce_verifier(p);
    if (ls->state == NULL || ls->verifier == NULL) {
        return NULL;
    }
    ls->return_to = apr_pstrdup(p, return_to ? return_to : "/");
    ls->exp = now + ttl;
    return ls;
}

char *bb_login_state_encode(apr_pool_t *p, const bb_keyring_t *state_ring, const bb_login_state_t *ls)
{
    const char *return_to = strlen(ls->return_to) > BB_STATE_MAX_RETURN ? "/" : ls->return_to;
    json_t *claims = bb_json_pool_own(p, json_pack("{s:s, s:s, s:I}", "st", ls->state, "ret", return_to,
                                                   "exp", (json_int_t)ls->exp));

    if (claims && ls->verifier && json_object_set_new(claims, "pv", json_string(ls->verifier)) != 0) {
        return NULL;
    }
    return claims ? bb_jws_sign(p, state_ring, STATE_TYP, claims) : NULL;
}

/* The login state the verified claims describe, or NULL when a claim is missing or mistyped. */
static bb_login_state_t *login_state_from_claims(apr_pool_t *p, const json_t *claims)
{
    bb_login_state_t *ls = apr_pcalloc(p, sizeof(*ls));

    ls->state = bb_jws_claim_string(claims, "st");
    ls->return_to = bb_jws_claim_string(claims, "ret");
    ls->verifier = bb_jws_claim_string(claims, "pv");
    if (ls->state == NULL || ls->return_to == NULL
        || (ls->verifier == NULL && json_object_get(claims, "pv") != NULL)
        || !bb_jws_claim_int(claims, "exp", BB_JWS_MAX_TIME, &ls->exp)) {
        return NULL;
    }
    return ls;
}

bb_state_status_t bb_login_state_decode(apr_pool_t *p, const bb_keyring_t *state_ring, const char *value,
                                        const char *expected_state, apr_int64_t now, bb_login_state_t **out)
{
    json_t *claims = NULL;
    bb_login_state_t *ls;

    *out = NULL;
    if (value == NULL || bb_jws_verify(p, state_ring, STATE_TYP, value, strnlen(value, BB_JWS_MAX_LEN + 1),
                                       &claims) != BB_JWS_OK) {
        return BB_STATE_INVALID;
    }
    ls = login_state_from_claims(p, claims);
    /* The state in the callback URL must be the one this browser's cookie was made for. */
    if (ls == NULL || !bb_secure_streq(ls->state, expected_state)) {
        return BB_STATE_INVALID;
    }
    if (now >= ls->exp) {
        return BB_STATE_EXPIRED;
    }
    *out = ls;
    return BB_STATE_VALID;
}

char *bb_login_state_cookie_name(apr_pool_t *p, const char *base_cookie_name, const char *state)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char *hash;

    if (base_cookie_name == NULL || state == NULL) {
        return NULL;
    }
    SHA256((const unsigned char *)state, strlen(state), digest);
    hash = bb_base64url_encode(p, digest, sizeof(digest));
    hash[STATE_COOKIE_HASH_CHARS] = '\0';
    return apr_pstrcat(p, base_cookie_name, "_st_", hash, NULL);
}

/* The exp of a state cookie that verifies, for whichever state; 0 when it does not verify. */
static apr_int64_t expiry_of(apr_pool_t *p, const bb_keyring_t *state_ring, const char *value)
{
    json_t *claims = NULL;
    apr_int64_t exp = 0;

    if (value == NULL || bb_jws_verify(p, state_ring, STATE_TYP, value, strnlen(value, BB_JWS_MAX_LEN + 1),
                                       &claims) != BB_JWS_OK
        || !bb_jws_claim_int(claims, "exp", BB_JWS_MAX_TIME, &exp)) {
        return 0;
    }
    return exp;
}

typedef struct {
    const char *name;
    apr_int64_t exp;
    int order;                 /* in the Cookie header: ties keep it */
} pending_t;

static int older_first(const void *a, const void *b)
{
    const pending_t *x = a, *y = b;

    if (x->exp != y->exp) {
        return x->exp < y->exp ? -1 : 1;
    }
    return x->order - y->order;
}

apr_array_header_t *bb_login_state_evict(apr_pool_t *p, const bb_keyring_t *state_ring, const apr_array_header_t *pairs,
                                         int keep)
{
    apr_array_header_t *evicted = apr_array_make(p, 1, sizeof(const char *));
    pending_t *pending;
    int i;

    if (pairs == NULL || keep < 1 || pairs->nelts < keep) {
        return evicted;
    }
    pending = apr_pcalloc(p, sizeof(*pending) * (apr_size_t)pairs->nelts);
    for (i = 0; i < pairs->nelts; i++) {
        const bb_cookie_pair_t *pair = &APR_ARRAY_IDX(pairs, i, bb_cookie_pair_t);
        pending[i].name = pair->name;
        pending[i].exp = expiry_of(p, state_ring, pair->value);
        pending[i].order = i;
    }
    qsort(pending, (size_t)pairs->nelts, sizeof(*pending), older_first);
    for (i = 0; i <= pairs->nelts - keep; i++) {
        APR_ARRAY_PUSH(evicted, const char *) = pending[i].name;
    }
    return evicted;
}
