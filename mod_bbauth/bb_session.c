/* bb_session: the session cookie: claims made at login, signed as a JWT, and decoded with every expiry rule checked. */
#include <string.h>
#include <apr_strings.h>
#include "bb_util.h"
#include "bb_jws.h"
#include "bb_session.h"

#define SESSION_TYP        "JWT"
#define SESSION_SID_BYTES  16           /* 128-bit session id */
#define MAX_FUTURE_IAT     60           /* seconds a cookie's iat may lie ahead of our clock (clock skew in a farm) */
#define MAX_UID            APR_INT64_MAX

bb_session_t *bb_session_new(apr_pool_t *p, const char *sub, apr_int64_t uid, const char *name,
                             const char *email, apr_int64_t now)
{
    bb_session_t *s;
    const char *sid;

    if (sub == NULL || *sub == '\0') {
        return NULL;
    }
    sid = bb_random_token(p, SESSION_SID_BYTES);
    if (sid == NULL) {
        return NULL;
    }
    s = apr_pcalloc(p, sizeof(*s));
    s->sub = apr_pstrdup(p, sub);
    s->uid = uid;
    s->name = apr_pstrdup(p, name ? name : "");
    s->email = apr_pstrdup(p, email ? email : "");
    s->sid = sid;
    s->auth_time = now;
    s->iat = now;
    return s;
}

/* The earlier of the two ends: MaxAge after the login, and the idle timeout (when on) after this cookie. */
static apr_int64_t session_end(const bb_session_policy_t *policy, apr_int64_t auth_time, apr_int64_t iat)
{
    apr_int64_t end = auth_time + policy->max_age;

    if (policy->idle_timeout > 0 && iat + policy->idle_timeout < end) {
        end = iat + policy->idle_timeout;
    }
    return end;
}

char *bb_session_encode(apr_pool_t *p, const bb_keyring_t *ring, const bb_session_policy_t *policy,
                        bb_session_t *s, apr_int64_t now)
{
    json_t *claims;

    s->iat = now;
    s->exp = session_end(policy, s->auth_time, s->iat);
    /* json_pack fails (NULL) on a NULL string or one that is not UTF-8. */
    claims = bb_json_pool_own(p, json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:I}",
                                           "sub", s->sub, "uid", (json_int_t)s->uid, "name", s->name,
                                           "email", s->email, "sid", s->sid, "iss", policy->issuer,
                                           "auth_time", (json_int_t)s->auth_time, "iat", (json_int_t)s->iat,
                                           "exp", (json_int_t)s->exp));
    if (claims && s->grant && json_object_set_new(claims, "grant", json_true()) != 0) {
        return NULL;
    }
    if (claims && s->slug && json_object_set_new(claims, "slug", json_string(s->slug)) != 0) {
        return NULL;
    }
    return claims ? bb_jws_sign(p, ring, SESSION_TYP, claims) : NULL;
}

char *bb_session_assertion(apr_pool_t *p, const bb_keyring_t *ring, const char *issuer, const char *audience,
                           const bb_session_t *who, apr_int64_t now)
{
    json_t *claims = bb_json_pool_own(p, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:I}",
                                                   "iss", issuer, "aud", audience, "sub", who->sub,
                                                   "uid", (json_int_t)who->uid, "name", who->name,
                                                   "email", who->email, "iat", (json_int_t)now,
                                                   "exp", (json_int_t)(now + BB_ASSERTION_LIFETIME),
                                                   "auth_time", (json_int_t)who->auth_time));

    return claims ? bb_jws_sign(p, ring, SESSION_TYP, claims) : NULL;
}

/* A non-empty string claim, or NULL. */
static const char *required_string(const json_t *claims, const char *name)
{
    const char *value = bb_jws_claim_string(claims, name);
    return value && *value ? value : NULL;
}

/* The session the verified claims describe, or NULL when a claim is missing, mistyped, out of range, or the
 * issuer is not this site. */
static bb_session_t *session_from_claims(apr_pool_t *p, const json_t *claims, const bb_session_policy_t *policy)
{
    bb_session_t *s = apr_pcalloc(p, sizeof(*s));
    const char *iss = bb_jws_claim_string(claims, "iss");
    const json_t *grant;

    s->sub = required_string(claims, "sub");
    s->sid = required_string(claims, "sid");
    s->name = bb_jws_claim_string(claims, "name");
    s->email = bb_jws_claim_string(claims, "email");
    s->slug = required_string(claims, "slug");
    grant = json_object_get(claims, "grant");
    s->grant = json_is_true(grant);
    if (s->sub == NULL || (grant && !json_is_boolean(grant)) || s->sid == NULL || s->name == NULL || s->email == NULL
        || (json_object_get(claims, "slug") && s->slug == NULL)
        || iss == NULL || policy->issuer == NULL || strcmp(iss, policy->issuer) != 0
        || !bb_jws_claim_int(claims, "uid", MAX_UID, &s->uid)
        || !bb_jws_claim_int(claims, "auth_time", BB_JWS_MAX_TIME, &s->auth_time)
        || !bb_jws_claim_int(claims, "iat", BB_JWS_MAX_TIME, &s->iat)
        || !bb_jws_claim_int(claims, "exp", BB_JWS_MAX_TIME, &s->exp)) {
        return NULL;
    }
    /* This module never issues a cookie before the login it belongs to. */
    return s->auth_time <= s->iat ? s : NULL;
}

/* Every time rule. exp is checked, and so are the rules it was computed from: a cookie signed with a far-away
 * exp still ends MaxAge after its login and an idle timeout after it was issued. A cookie issued in the future
 * (beyond clock skew) counts as expired: it was made by a server with a wrong clock, whose cookies cannot be
 * timed. */
static bb_session_status_t check_times(const bb_session_policy_t *policy, const bb_session_t *s, apr_int64_t now)
{
    if (s->iat > now + MAX_FUTURE_IAT
        || now >= s->exp
        || now >= s->auth_time + policy->max_age
        || (policy->idle_timeout > 0 && now >= s->iat + policy->idle_timeout)) {
        return BB_SESSION_EXPIRED;
    }
    return BB_SESSION_VALID;
}

bb_session_status_t bb_session_decode(apr_pool_t *p, const bb_keyring_t *ring, const bb_session_policy_t *policy,
                                      const char *value, apr_int64_t now, bb_session_t **out)
{
    json_t *claims = NULL;
    bb_session_t *s;
    bb_session_status_t status;

    *out = NULL;
    /* strnlen: a value longer than any token is refused without being scanned to its end. */
    if (value == NULL || bb_jws_verify(p, ring, SESSION_TYP, value, strnlen(value, BB_JWS_MAX_LEN + 1), &claims)
                         != BB_JWS_OK) {
        return BB_SESSION_INVALID;
    }
    s = session_from_claims(p, claims, policy);
    if (s == NULL) {
        return BB_SESSION_INVALID;
    }
    status = check_times(policy, s, now);
    if (status == BB_SESSION_VALID) {
        *out = s;
    }
    return status;
}

/* A verified session as a memo value, and back. */
static void session_to_memo(const bb_session_t *s, bb_memo_value_t *v)
{
    memset(v, 0, sizeof(*v));
    v->s[0] = s->sub;
    v->s[1] = s->name;
    v->s[2] = s->email;
    v->s[3] = s->sid;
    v->s[4] = s->slug;
    v->n[0] = s->uid;
    v->n[1] = s->auth_time;
    v->n[2] = s->iat;
    v->n[3] = s->exp;
    v->n[4] = s->grant;
}

static bb_session_t *session_from_memo(apr_pool_t *p, const bb_memo_value_t *v)
{
    bb_session_t *s = apr_pcalloc(p, sizeof(*s));

    s->sub = v->s[0];
    s->name = v->s[1];
    s->email = v->s[2];
    s->sid = v->s[3];
    s->slug = v->s[4];
    s->uid = v->n[0];
    s->auth_time = v->n[1];
    s->iat = v->n[2];
    s->exp = v->n[3];
    s->grant = (int)v->n[4];
    return s;
}

bb_session_status_t bb_session_decode_memo(apr_pool_t *p, bb_memo_t *memo, const bb_keyring_t *ring,
                                           const bb_session_policy_t *policy, const char *value, apr_int64_t now,
                                           bb_session_t **out)
{
    apr_size_t len = value ? strnlen(value, BB_JWS_MAX_LEN + 1) : 0;
    bb_memo_value_t remembered;
    bb_session_status_t status;
    bb_session_t *s;

    *out = NULL;
    if (len > 0 && len <= BB_JWS_MAX_LEN && bb_memo_get(memo, p, value, len, now, &remembered)) {
        s = session_from_memo(p, &remembered);
        status = check_times(policy, s, now);
        *out = status == BB_SESSION_VALID ? s : NULL;
        return status;
    }
    status = bb_session_decode(p, ring, policy, value, now, out);
    if (status == BB_SESSION_VALID) {
        session_to_memo(*out, &remembered);
        bb_memo_put(memo, value, len, (*out)->exp, &remembered);
    }
    return status;
}

bb_session_pick_t bb_session_pick(apr_pool_t *p, bb_memo_t *memo, const bb_keyring_t *ring,
                                  const bb_session_policy_t *policy, const apr_array_header_t *values,
                                  apr_int64_t now, bb_session_seen_fn *seen, void *baton,
                                  bb_session_t **out)
{
    bb_session_pick_t pick = BB_SESSION_PICK_NONE;
    int i;

    *out = NULL;
    for (i = 0; values && i < values->nelts; i++) {
        bb_session_t *found = NULL;
        bb_session_status_t status = bb_session_decode_memo(p, memo, ring, policy,
                                                            APR_ARRAY_IDX(values, i, const char *), now, &found);

        if (seen) {
            seen(baton, status);
        }
        if (status != BB_SESSION_VALID || pick == BB_SESSION_PICK_CONFLICT) {
            continue;   /* the rest is still decoded, so that every value is counted */
        }
        if (*out && strcmp((*out)->sid, found->sid)) {
            pick = BB_SESSION_PICK_CONFLICT;
        }
        else if (!*out || found->iat > (*out)->iat) {
            *out = found;
            pick = BB_SESSION_PICK_ONE;
        }
    }
    if (pick == BB_SESSION_PICK_CONFLICT) {
        *out = NULL;
    }
    return pick;
}

int bb_session_needs_refresh(const bb_session_policy_t *policy, const bb_session_t *s, apr_int64_t now)
{
    apr_int64_t interval;

    if (policy->idle_timeout <= 0) {
        return 0;
    }
    interval = policy->idle_timeout / 10 > 1 ? policy->idle_timeout / 10 : 1;
    return now - s->iat >= interval;
}
