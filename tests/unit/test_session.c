/* test_session: session cookies: round trip, PyJWT vector, exp/MaxAge/idle against forged claims, hostile claims, refresh. */
#include "unit.h"
#include "bb_util.h"
#include "bb_keys.h"
#include "bb_jws.h"
#include "bb_session.h"
#include "bb_state.h"

#define NOW       1700000000
#define ISSUER    "https://mirror.example.com"
#define MAX_AGE   28800
#define IDLE      3600
#define K11_HEX   "1111111111111111111111111111111111111111111111111111111111111111"
#define SEQ_HEX   "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define STATE_LABEL "mod_bbauth login state v1"

/* The token test_jws checks against PyJWT: these claims under key 00..1f, as bb_session_encode must write them. */
#define PYJWT_SESSION \
    "eyJhbGciOiJIUzI1NiIsImtpZCI6IjYzMGRjZDI5NjZjNDMzNjYiLCJ0eXAiOiJKV1QifQ." \
    "eyJhdXRoX3RpbWUiOjE3MDAwMDAwMDAsImVtYWlsIjoiYWxpY2VAZXhhbXBsZS5jb20iLCJleHAiOjE3MDAwMDM2MDAsImlhdCI6MTcwMDAw" \
    "MDAwMCwiaXNzIjoiaHR0cHM6Ly9taXJyb3IuZXhhbXBsZS5jb20iLCJuYW1lIjoiQWxpY2UgTGlkZGVsbCIsInNpZCI6IkFBRUNBd1FGQmdj" \
    "SUNRb0xEQTBPRHciLCJzdWIiOiJhbGljZSIsInVpZCI6NDJ9." \
    "d4ggkVJZI4dFZRFghg6lEllobNLSS6cru9lXbXYI8lE"

static const bb_session_policy_t policy = { ISSUER, MAX_AGE, IDLE };
static const bb_session_policy_t policy_no_idle = { ISSUER, MAX_AGE, 0 };

static bb_keyring_t *ring_of(apr_pool_t *p, const char *key_file)
{
    const char *err = NULL;
    bb_keyring_t *ring = bb_keyring_parse(p, key_file, strlen(key_file), &err);

    assert_non_null(ring);
    return ring;
}

/* Valid claims for a login at NOW, with member `name` set to the JSON text `value` (removed when NULL). */
static json_t *claims_with(apr_pool_t *p, const char *name, const char *value)
{
    static const char valid[] =
        "{\"sub\":\"alice\",\"uid\":42,\"name\":\"Alice\",\"email\":\"alice@example.com\",\"sid\":\"c2lk\","
        "\"iss\":\"" ISSUER "\",\"auth_time\":1700000000,\"iat\":1700000000,\"exp\":1700003600}";
    json_t *claims = bb_json_parse(p, valid, strlen(valid));

    assert_non_null(claims);
    if (name && value) {
        json_t *json = json_loads(value, JSON_DECODE_ANY, NULL);
        assert_non_null(json);
        assert_int_equal(json_object_set_new(claims, name, json), 0);
    }
    else if (name) {
        assert_int_equal(json_object_del(claims, name), 0);
    }
    return claims;
}

/* bb_jws_sign, which must succeed: a test of refusal must not pass because there was nothing to refuse. */
static char *sign_ok(apr_pool_t *p, const bb_keyring_t *ring, const char *typ, const json_t *claims)
{
    char *token = bb_jws_sign(p, ring, typ, claims);

    assert_non_null(token);
    return token;
}

/* A cookie with exactly these claims, signed with the session key as only someone holding it could. */
static char *forge(apr_pool_t *p, const json_t *claims)
{
    return sign_ok(p, ring_of(p, K11_HEX), "JWT", claims);
}

static bb_session_status_t decode_at(apr_pool_t *p, const bb_session_policy_t *pol, const char *value,
                                     apr_int64_t now)
{
    bb_session_t *s = (bb_session_t *)1;
    bb_session_status_t status = bb_session_decode(p, ring_of(p, K11_HEX), pol, value, now, &s);

    if (status == BB_SESSION_VALID) {
        assert_non_null(s);
    }
    else {
        assert_null(s);
    }
    return status;
}

/* The status of the valid claims with one member changed, decoded just after the login. */
static bb_session_status_t status_with(apr_pool_t *p, const char *name, const char *value)
{
    return decode_at(p, &policy, forge(p, claims_with(p, name, value)), NOW + 10);
}

static void test_new(void **state)
{
    apr_pool_t *p = *state;
    bb_session_t *s = bb_session_new(p, "alice", 42, "Alice", "alice@example.com", NOW);
    bb_session_t *other = bb_session_new(p, "alice", 42, "Alice", "alice@example.com", NOW);
    bb_session_t *sparse = bb_session_new(p, "bob", 7, NULL, NULL, NOW);

    assert_non_null(s);
    assert_string_equal(s->sub, "alice");
    assert_int_equal(s->uid, 42);
    assert_string_equal(s->name, "Alice");
    assert_string_equal(s->email, "alice@example.com");
    assert_int_equal(strlen(s->sid), 22);           /* 128 bits */
    assert_string_not_equal(s->sid, other->sid);
    assert_int_equal(s->auth_time, NOW);
    assert_int_equal(s->iat, NOW);
    assert_string_equal(sparse->name, "");
    assert_string_equal(sparse->email, "");
    assert_null(bb_session_new(p, "", 1, "x", "x", NOW));
    assert_null(bb_session_new(p, NULL, 1, "x", "x", NOW));
}

static void test_roundtrip(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p, K11_HEX);
    bb_session_t *s = bb_session_new(p, "alice", 42, "Zo\xc3\xab \"Q\" O'Brien", "", NOW);
    char *value = bb_session_encode(p, ring, &policy, s, NOW);
    bb_session_t *out = NULL;

    assert_non_null(value);
    assert_int_equal(s->exp, NOW + IDLE);
    assert_int_equal(bb_session_decode(p, ring, &policy, value, NOW + 5, &out), BB_SESSION_VALID);
    assert_string_equal(out->sub, "alice");
    assert_int_equal(out->uid, 42);
    assert_string_equal(out->name, "Zo\xc3\xab \"Q\" O'Brien");
    assert_string_equal(out->email, "");
    assert_string_equal(out->sid, s->sid);
    assert_int_equal(out->auth_time, NOW);
    assert_int_equal(out->iat, NOW);
    assert_int_equal(out->exp, NOW + IDLE);
}

static void test_encode_matches_pyjwt(void **state)
{
    apr_pool_t *p = *state;
    bb_session_t s = { "alice", 42, "Alice Liddell", "alice@example.com", "AAECAwQFBgcICQoLDA0ODw", NOW, 0, 0 };
    bb_session_t *out = NULL;

    assert_string_equal(bb_session_encode(p, ring_of(p, SEQ_HEX), &policy, &s, NOW), PYJWT_SESSION);
    assert_int_equal(bb_session_decode(p, ring_of(p, SEQ_HEX), &policy, PYJWT_SESSION, NOW + 100, &out),
                     BB_SESSION_VALID);
    assert_string_equal(out->name, "Alice Liddell");
}

static void test_encoded_claims(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p, K11_HEX);
    bb_session_t *s = bb_session_new(p, "alice", 42, "Alice", "a@example.com", NOW);
    char *value = bb_session_encode(p, ring, &policy, s, NOW);
    json_t *claims = NULL;

    assert_int_equal(bb_jws_verify(p, ring, "JWT", value, strlen(value), &claims), BB_JWS_OK);
    assert_int_equal(json_object_size(claims), 9);
    assert_string_equal(json_string_value(json_object_get(claims, "iss")), ISSUER);
    assert_string_equal(json_string_value(json_object_get(claims, "sid")), s->sid);
    assert_true(json_is_integer(json_object_get(claims, "uid")));
    assert_int_equal(json_integer_value(json_object_get(claims, "auth_time")), NOW);
    assert_int_equal(json_integer_value(json_object_get(claims, "iat")), NOW);
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")), NOW + IDLE);
}

static void test_exp_is_the_earlier_end(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p, K11_HEX);
    bb_session_t *s = bb_session_new(p, "alice", 42, "Alice", "", NOW);

    assert_non_null(bb_session_encode(p, ring, &policy, s, NOW + 1000));
    assert_int_equal(s->iat, NOW + 1000);
    assert_int_equal(s->exp, NOW + 1000 + IDLE);
    /* Re-issued near the end of MaxAge: the idle window is cut short by it. */
    assert_non_null(bb_session_encode(p, ring, &policy, s, NOW + MAX_AGE - 100));
    assert_int_equal(s->exp, NOW + MAX_AGE);
    assert_int_equal(s->auth_time, NOW);
    /* Idle timeout off: MaxAge alone. */
    assert_non_null(bb_session_encode(p, ring, &policy_no_idle, s, NOW + 1000));
    assert_int_equal(s->exp, NOW + MAX_AGE);
}

static void test_expires_at_exp(void **state)
{
    apr_pool_t *p = *state;
    bb_session_t *s = bb_session_new(p, "alice", 42, "Alice", "", NOW);
    char *value = bb_session_encode(p, ring_of(p, K11_HEX), &policy_no_idle, s, NOW);

    assert_int_equal(decode_at(p, &policy_no_idle, value, NOW + MAX_AGE - 1), BB_SESSION_VALID);
    assert_int_equal(decode_at(p, &policy_no_idle, value, NOW + MAX_AGE), BB_SESSION_EXPIRED);
    /* A shorter exp than the policy gives is honoured too. */
    value = forge(p, claims_with(p, "exp", "1700000100"));
    assert_int_equal(decode_at(p, &policy, value, NOW + 99), BB_SESSION_VALID);
    assert_int_equal(decode_at(p, &policy, value, NOW + 100), BB_SESSION_EXPIRED);
}

static void test_max_age_beats_a_far_exp(void **state)
{
    apr_pool_t *p = *state;
    json_t *claims = claims_with(p, "exp", "253402300799");
    char *value;

    /* Re-issued (iat) late, so that the idle timeout does not end it first. */
    json_object_set_new(claims, "iat", json_integer(NOW + MAX_AGE - 60));
    value = forge(p, claims);
    assert_int_equal(decode_at(p, &policy, value, NOW + MAX_AGE - 1), BB_SESSION_VALID);
    assert_int_equal(decode_at(p, &policy, value, NOW + MAX_AGE), BB_SESSION_EXPIRED);
    assert_int_equal(decode_at(p, &policy_no_idle, value, NOW + MAX_AGE), BB_SESSION_EXPIRED);
    assert_int_equal(decode_at(p, &policy_no_idle, value, NOW + 10 * MAX_AGE), BB_SESSION_EXPIRED);
}

static void test_idle_timeout_beats_a_far_exp(void **state)
{
    apr_pool_t *p = *state;
    char *value = forge(p, claims_with(p, "exp", "253402300799"));

    assert_int_equal(decode_at(p, &policy, value, NOW + IDLE - 1), BB_SESSION_VALID);
    assert_int_equal(decode_at(p, &policy, value, NOW + IDLE), BB_SESSION_EXPIRED);
    /* With the idle timeout off, only MaxAge ends it. */
    assert_int_equal(decode_at(p, &policy_no_idle, value, NOW + IDLE), BB_SESSION_VALID);
    assert_int_equal(decode_at(p, &policy_no_idle, value, NOW + MAX_AGE), BB_SESSION_EXPIRED);
}

static void test_issued_in_the_future(void **state)
{
    apr_pool_t *p = *state;
    json_t *claims = claims_with(p, "iat", "1700000060");
    char *value;

    /* Clock skew up to 60 s is tolerated; more counts as expired. */
    json_object_set_new(claims, "auth_time", json_integer(NOW + 60));
    value = forge(p, claims);
    assert_int_equal(decode_at(p, &policy, value, NOW), BB_SESSION_VALID);
    json_object_set_new(claims, "iat", json_integer(NOW + 61));
    json_object_set_new(claims, "auth_time", json_integer(NOW + 61));
    value = forge(p, claims);
    assert_int_equal(decode_at(p, &policy, value, NOW), BB_SESSION_EXPIRED);
    assert_int_equal(decode_at(p, &policy, value, NOW + 1), BB_SESSION_VALID);
}

static void test_issued_before_login(void **state)
{
    assert_int_equal(status_with(*state, "auth_time", "1700000001"), BB_SESSION_INVALID);
}

static void test_hostile_times(void **state)
{
    apr_pool_t *p = *state;
    static const char *const names[] = { "exp", "iat", "auth_time" };
    static const char *const values[] = {
        "-1", "-1700000000", "1700003600.0", "1.7000036e9", "1700000000.5", "253402300800", "9223372036854775807",
        "\"1700003600\"", "null", "true", "[1700003600]", "{}",
    };
    apr_size_t n, v;

    for (n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
        for (v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
            if (status_with(p, names[n], values[v]) != BB_SESSION_INVALID) {
                fail_msg("%s = %s was not refused", names[n], values[v]);
            }
        }
        assert_int_equal(status_with(p, names[n], NULL), BB_SESSION_INVALID);
    }
    assert_int_equal(status_with(p, NULL, NULL), BB_SESSION_VALID);
}

static void test_hostile_identity_claims(void **state)
{
    apr_pool_t *p = *state;

    assert_int_equal(status_with(p, "sub", NULL), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "sub", "\"\""), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "sub", "42"), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "sub", "[\"alice\"]"), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "sid", NULL), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "sid", "\"\""), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "uid", NULL), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "uid", "\"42\""), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "uid", "-42"), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "uid", "42.0"), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "uid", "9007199254740993"), BB_SESSION_VALID);     /* ids are not times */
    assert_int_equal(status_with(p, "name", NULL), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "name", "null"), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "email", NULL), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "email", "\"\""), BB_SESSION_VALID);
    assert_int_equal(status_with(p, "name", "\"\""), BB_SESSION_VALID);
    assert_int_equal(status_with(p, "grant", "true"), BB_SESSION_VALID);
    assert_int_equal(status_with(p, "grant", "false"), BB_SESSION_VALID);
    assert_int_equal(status_with(p, "grant", "1"), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "grant", "\"true\""), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "slug", "\"jane_example.com\""), BB_SESSION_VALID);
    assert_int_equal(status_with(p, "slug", "\"\""), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "slug", "7"), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "slug", "null"), BB_SESSION_INVALID);
}

/* The optional claims, kept through the idle refresh and the memo of verified cookies: "grant" (true) only for a
 * session whose login kept an OAuth grant, "slug" (for the account page's links) absent in older cookies. */
static void test_grant_claim(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p, K11_HEX);
    bb_session_t *s = bb_session_new(p, "alice", 42, "Alice", "", NOW);
    bb_memo_t *memo = bb_memo_create(p, 4);
    bb_session_t *out = NULL;
    char *value = bb_session_encode(p, ring, &policy, s, NOW);

    assert_int_equal(bb_session_decode(p, ring, &policy, value, NOW, &out), BB_SESSION_VALID);
    assert_false(out->grant);
    assert_null(out->slug);
    s->grant = 1;
    s->slug = "jane_example.com";
    value = bb_session_encode(p, ring, &policy, s, NOW + 400);
    assert_int_equal(bb_session_decode(p, ring, &policy, value, NOW + 400, &out), BB_SESSION_VALID);
    assert_true(out->grant);
    assert_string_equal(out->slug, "jane_example.com");
    value = bb_session_encode(p, ring, &policy, out, NOW + 800);
    assert_int_equal(bb_session_decode_memo(p, memo, ring, &policy, value, NOW + 800, &out), BB_SESSION_VALID);
    assert_int_equal(bb_session_decode_memo(p, memo, ring, &policy, value, NOW + 801, &out), BB_SESSION_VALID);
    assert_true(out->grant);
    assert_string_equal(out->slug, "jane_example.com");
}

static void test_issuer(void **state)
{
    apr_pool_t *p = *state;
    bb_session_policy_t other_site = policy;

    assert_int_equal(status_with(p, "iss", "\"https://evil.example.com\""), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "iss", "\"" ISSUER "/\""), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "iss", "\"HTTPS://MIRROR.EXAMPLE.COM\""), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "iss", "1"), BB_SESSION_INVALID);
    assert_int_equal(status_with(p, "iss", NULL), BB_SESSION_INVALID);
    /* A cookie of one site is no good on another that shares the key file. */
    other_site.issuer = "https://other.example.com";
    assert_int_equal(decode_at(p, &other_site, forge(p, claims_with(p, NULL, NULL)), NOW + 10), BB_SESSION_INVALID);
}

static void test_state_cookie_is_not_a_session(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p, K11_HEX);
    bb_keyring_t *state_ring = bb_keyring_derive(p, ring, STATE_LABEL);
    bb_login_state_t *login = bb_login_state_new(p, "/", NOW, 600);
    const json_t *session_claims = claims_with(p, NULL, NULL);
    char *state_value = bb_login_state_encode(p, state_ring, login);

    assert_non_null(state_value);
    assert_int_equal(decode_at(p, &policy, state_value, NOW), BB_SESSION_INVALID);
    /* Even session claims signed under the state key are refused, whatever typ they carry... */
    assert_int_equal(decode_at(p, &policy, sign_ok(p, state_ring, "JWT", session_claims), NOW), BB_SESSION_INVALID);
    /* ...and so are session claims under the session key with the state typ. */
    assert_int_equal(decode_at(p, &policy, sign_ok(p, ring, "bbauth-state", session_claims), NOW),
                     BB_SESSION_INVALID);
    assert_int_equal(decode_at(p, &policy, sign_ok(p, ring, "JWT", session_claims), NOW), BB_SESSION_VALID);
}

static void test_garbage(void **state)
{
    apr_pool_t *p = *state;
    char *value = forge(p, claims_with(p, NULL, NULL));
    char *tampered = apr_pstrdup(p, value);

    tampered[strchr(tampered, '.') - tampered + 5] ^= 1;
    assert_int_equal(decode_at(p, &policy, tampered, NOW), BB_SESSION_INVALID);
    assert_int_equal(decode_at(p, &policy, "", NOW), BB_SESSION_INVALID);
    assert_int_equal(decode_at(p, &policy, NULL, NOW), BB_SESSION_INVALID);
    assert_int_equal(decode_at(p, &policy, "deleted", NOW), BB_SESSION_INVALID);
    assert_int_equal(decode_at(p, &policy, value, NOW), BB_SESSION_VALID);
}

static void test_needs_refresh(void **state)
{
    bb_session_t s = { "alice", 42, "Alice", "", "sid", NOW, NOW, NOW + IDLE };
    bb_session_policy_t tiny_idle = { ISSUER, MAX_AGE, 5 };

    (void)state;
    /* A tenth of the idle timeout. */
    assert_false(bb_session_needs_refresh(&policy, &s, NOW));
    assert_false(bb_session_needs_refresh(&policy, &s, NOW + IDLE / 10 - 1));
    assert_true(bb_session_needs_refresh(&policy, &s, NOW + IDLE / 10));
    assert_true(bb_session_needs_refresh(&policy, &s, NOW + IDLE - 1));
    /* At least a second, however short the timeout. */
    assert_false(bb_session_needs_refresh(&tiny_idle, &s, NOW));
    assert_true(bb_session_needs_refresh(&tiny_idle, &s, NOW + 1));
    /* Idle timeout off: nothing to slide. */
    assert_false(bb_session_needs_refresh(&policy_no_idle, &s, NOW + MAX_AGE - 1));
}

static int statuses_seen;

static void count_seen(void *baton, bb_session_status_t status)
{
    (void)baton;
    (void)status;
    statuses_seen++;
}

static apr_array_header_t *values_of(apr_pool_t *p, const char *const *values, int n)
{
    apr_array_header_t *array = apr_array_make(p, n, sizeof(const char *));
    int i;

    for (i = 0; i < n; i++) {
        APR_ARRAY_PUSH(array, const char *) = values[i];
    }
    return array;
}

static void test_pick(void **state)
{
    apr_pool_t *p = *state;
    bb_keyring_t *ring = ring_of(p, K11_HEX);
    bb_session_t *alice = bb_session_new(p, "alice", 1, "Alice", "", NOW);
    bb_session_t *bob = bb_session_new(p, "bob", 2, "Bob", "", NOW);
    const char *alice_old = bb_session_encode(p, ring, &policy, alice, NOW);
    const char *alice_new = bb_session_encode(p, ring, &policy, alice, NOW + 400);
    const char *bob_value = bb_session_encode(p, ring, &policy, bob, NOW);
    const char *junk[40];
    bb_session_t *out = NULL;
    int i;

    for (i = 0; i < 39; i++) {
        junk[i] = i % 2 ? "junk" : "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.d4ggkVJZI4dFZRFghg6lEllobNLSS6cru9lXbXYI8lE";
    }
    junk[39] = alice_old;
    /* Any number of junk values cannot hide a good one. */
    statuses_seen = 0;
    assert_int_equal(bb_session_pick(p, NULL, ring, &policy, values_of(p, junk, 40), NOW + 500, count_seen, NULL,
                                     &out), BB_SESSION_PICK_ONE);
    assert_string_equal(out->sub, "alice");
    assert_int_equal(statuses_seen, 40);
    /* Copies of one session: the freshest, in either order. */
    {
        const char *both[] = { alice_old, alice_new };
        const char *reversed[] = { alice_new, alice_old };
        assert_int_equal(bb_session_pick(p, NULL, ring, &policy, values_of(p, both, 2), NOW + 500, NULL, NULL,
                                         &out), BB_SESSION_PICK_ONE);
        assert_int_equal(out->iat, NOW + 400);
        assert_int_equal(bb_session_pick(p, NULL, ring, &policy, values_of(p, reversed, 2), NOW + 500, NULL,
                                         NULL, &out), BB_SESSION_PICK_ONE);
        assert_int_equal(out->iat, NOW + 400);
    }
    /* Two sessions, in either order, with copies and junk around: none. */
    {
        const char *tossed[] = { bob_value, "junk", alice_old, alice_new };
        const char *tossed_after[] = { alice_old, bob_value, alice_new };
        statuses_seen = 0;
        assert_int_equal(bb_session_pick(p, NULL, ring, &policy, values_of(p, tossed, 4), NOW + 500, count_seen, NULL,
                                         &out), BB_SESSION_PICK_CONFLICT);
        assert_null(out);
        assert_int_equal(statuses_seen, 4);
        assert_int_equal(bb_session_pick(p, NULL, ring, &policy, values_of(p, tossed_after, 3), NOW + 500, NULL, NULL,
                                         &out), BB_SESSION_PICK_CONFLICT);
        assert_null(out);
    }
    /* Nothing valid, or nothing at all. */
    assert_int_equal(bb_session_pick(p, NULL, ring, &policy, values_of(p, junk, 39), NOW, NULL, NULL, &out),
                     BB_SESSION_PICK_NONE);
    assert_null(out);
    assert_int_equal(bb_session_pick(p, NULL, ring, &policy, values_of(p, junk, 0), NOW, NULL, NULL, &out),
                     BB_SESSION_PICK_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_new),
        UNIT_TEST(test_roundtrip),
        UNIT_TEST(test_encode_matches_pyjwt),
        UNIT_TEST(test_encoded_claims),
        UNIT_TEST(test_exp_is_the_earlier_end),
        UNIT_TEST(test_expires_at_exp),
        UNIT_TEST(test_max_age_beats_a_far_exp),
        UNIT_TEST(test_idle_timeout_beats_a_far_exp),
        UNIT_TEST(test_issued_in_the_future),
        UNIT_TEST(test_issued_before_login),
        UNIT_TEST(test_hostile_times),
        UNIT_TEST(test_hostile_identity_claims),
        UNIT_TEST(test_grant_claim),
        UNIT_TEST(test_issuer),
        UNIT_TEST(test_state_cookie_is_not_a_session),
        UNIT_TEST(test_garbage),
        UNIT_TEST(test_needs_refresh),
        UNIT_TEST(test_pick),
    };
    return UNIT_RUN("session", tests);
}
