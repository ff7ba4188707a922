/* test_state: login-state cookies: round trip, binding to the state value, expiry, hostile claims, key separation, cookie names. */
#include "unit.h"
#include "bb_util.h"
#include "bb_keys.h"
#include "bb_jws.h"
#include "bb_pkce.h"
#include "bb_session.h"
#include "bb_cookie.h"
#include "bb_state.h"

#define NOW         1700000000
#define TTL         600
#define K11_HEX     "1111111111111111111111111111111111111111111111111111111111111111"
#define STATE_LABEL "mod_bbauth login state v1"

typedef struct {
    apr_pool_t *p;
    bb_keyring_t *session_ring;
    bb_keyring_t *state_ring;
} fixture_t;

static fixture_t fixture(apr_pool_t *p)
{
    fixture_t f;
    const char *err = NULL;

    f.p = p;
    f.session_ring = bb_keyring_parse(p, K11_HEX, strlen(K11_HEX), &err);
    assert_non_null(f.session_ring);
    f.state_ring = bb_keyring_derive(p, f.session_ring, STATE_LABEL);
    assert_non_null(f.state_ring);
    return f;
}

static bb_state_status_t decode_at(const fixture_t *f, const char *value, const char *expected_state,
                                   apr_int64_t now)
{
    bb_login_state_t *out = (bb_login_state_t *)1;
    bb_state_status_t status = bb_login_state_decode(f->p, f->state_ring, value, expected_state, now, &out);

    if (status == BB_STATE_VALID) {
        assert_non_null(out);
    }
    else {
        assert_null(out);
    }
    return status;
}

/* bb_jws_sign, which must succeed: a test of refusal must not pass because there was nothing to refuse. */
static char *sign_ok(apr_pool_t *p, const bb_keyring_t *ring, const char *typ, const json_t *claims)
{
    char *token = bb_jws_sign(p, ring, typ, claims);

    assert_non_null(token);
    return token;
}

/* A state cookie with exactly these claims (JSON text), signed with the state key. */
static char *forge(const fixture_t *f, const char *claims_json)
{
    json_t *claims = bb_json_parse(f->p, claims_json, strlen(claims_json));

    assert_non_null(claims);
    return sign_ok(f->p, f->state_ring, "bbauth-state", claims);
}

static void test_new(void **state)
{
    apr_pool_t *p = *state;
    bb_login_state_t *ls = bb_login_state_new(p, "/repo/x?y=1", NOW, TTL);
    bb_login_state_t *other = bb_login_state_new(p, "/repo/x?y=1", NOW, TTL);
    apr_size_t len = 0;

    assert_non_null(ls);
    assert_int_equal(strlen(ls->state), 43);        /* 256 bits */
    assert_non_null(bb_base64url_decode(p, ls->state, strlen(ls->state), &len));
    assert_int_equal(len, 32);
    assert_int_equal(strlen(ls->verifier), 43);
    assert_string_not_equal(ls->state, other->state);
    assert_string_not_equal(ls->verifier, other->verifier);
    assert_string_not_equal(ls->state, ls->verifier);
    assert_string_equal(ls->return_to, "/repo/x?y=1");
    assert_int_equal(ls->exp, NOW + TTL);
    assert_string_equal(bb_login_state_new(p, NULL, NOW, TTL)->return_to, "/");
}

static void test_roundtrip(void **state)
{
    fixture_t f = fixture(*state);
    bb_login_state_t *ls = bb_login_state_new(f.p, "/private/file.deb", NOW, TTL);
    char *value = bb_login_state_encode(f.p, f.state_ring, ls);
    bb_login_state_t *out = NULL;

    assert_non_null(value);
    assert_int_equal(bb_login_state_decode(f.p, f.state_ring, value, ls->state, NOW + 1, &out), BB_STATE_VALID);
    assert_string_equal(out->state, ls->state);
    assert_string_equal(out->verifier, ls->verifier);
    assert_string_equal(out->return_to, "/private/file.deb");
    assert_int_equal(out->exp, NOW + TTL);
}

static void test_encoded_claims(void **state)
{
    fixture_t f = fixture(*state);
    bb_login_state_t ls = { "the-state", NULL, "/back", NOW + TTL };
    char *value = bb_login_state_encode(f.p, f.state_ring, &ls);
    json_t *claims = NULL;
    bb_login_state_t *out = NULL;

    /* OAuth 1: no verifier, and no "pv" member at all. */
    assert_int_equal(bb_jws_verify(f.p, f.state_ring, "bbauth-state", value, strlen(value), &claims), BB_JWS_OK);
    assert_int_equal(json_object_size(claims), 3);
    assert_string_equal(json_string_value(json_object_get(claims, "st")), "the-state");
    assert_string_equal(json_string_value(json_object_get(claims, "ret")), "/back");
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")), NOW + TTL);
    assert_null(json_object_get(claims, "pv"));
    assert_int_equal(bb_login_state_decode(f.p, f.state_ring, value, "the-state", NOW, &out), BB_STATE_VALID);
    assert_null(out->verifier);
}

static void test_bound_to_the_state(void **state)
{
    fixture_t f = fixture(*state);
    bb_login_state_t *ls = bb_login_state_new(f.p, "/", NOW, TTL);
    bb_login_state_t *other = bb_login_state_new(f.p, "/", NOW, TTL);
    char *value = bb_login_state_encode(f.p, f.state_ring, ls);

    assert_int_equal(decode_at(&f, value, ls->state, NOW), BB_STATE_VALID);
    assert_int_equal(decode_at(&f, value, other->state, NOW), BB_STATE_INVALID);
    assert_int_equal(decode_at(&f, value, apr_pstrndup(f.p, ls->state, 42), NOW), BB_STATE_INVALID);
    assert_int_equal(decode_at(&f, value, apr_pstrcat(f.p, ls->state, "x", NULL), NOW), BB_STATE_INVALID);
    assert_int_equal(decode_at(&f, value, "", NOW), BB_STATE_INVALID);
    assert_int_equal(decode_at(&f, value, NULL, NOW), BB_STATE_INVALID);
}

static void test_expiry(void **state)
{
    fixture_t f = fixture(*state);
    bb_login_state_t *ls = bb_login_state_new(f.p, "/", NOW, TTL);
    char *value = bb_login_state_encode(f.p, f.state_ring, ls);

    assert_int_equal(decode_at(&f, value, ls->state, NOW + TTL - 1), BB_STATE_VALID);
    assert_int_equal(decode_at(&f, value, ls->state, NOW + TTL), BB_STATE_EXPIRED);
    assert_int_equal(decode_at(&f, value, ls->state, NOW + 100 * TTL), BB_STATE_EXPIRED);
    /* A wrong state is invalid, expired or not: nothing is said about other people's logins. */
    assert_int_equal(decode_at(&f, value, "other", NOW + TTL), BB_STATE_INVALID);
}

static void test_hostile_claims(void **state)
{
    fixture_t f = fixture(*state);
    static const char *const invalid[] = {
        "{\"ret\":\"/\",\"exp\":1700000600}",                           /* no st */
        "{\"st\":42,\"ret\":\"/\",\"exp\":1700000600}",
        "{\"st\":\"s\",\"exp\":1700000600}",                            /* no ret */
        "{\"st\":\"s\",\"ret\":null,\"exp\":1700000600}",
        "{\"st\":\"s\",\"ret\":\"/\"}",                                 /* no exp */
        "{\"st\":\"s\",\"ret\":\"/\",\"exp\":1700000600.0}",
        "{\"st\":\"s\",\"ret\":\"/\",\"exp\":-1}",
        "{\"st\":\"s\",\"ret\":\"/\",\"exp\":253402300800}",
        "{\"st\":\"s\",\"ret\":\"/\",\"exp\":\"1700000600\"}",
        "{\"st\":\"s\",\"ret\":\"/\",\"exp\":1700000600,\"pv\":7}",     /* a verifier that is not a string */
        "{\"st\":\"s\",\"ret\":\"/\",\"exp\":1700000600,\"pv\":null}",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        if (decode_at(&f, forge(&f, invalid[i]), "s", NOW) != BB_STATE_INVALID) {
            fail_msg("accepted %s", invalid[i]);
        }
    }
    assert_int_equal(decode_at(&f, forge(&f, "{\"st\":\"s\",\"ret\":\"/\",\"exp\":1700000600,\"pv\":\"v\"}"), "s",
                               NOW), BB_STATE_VALID);
}

static void test_not_a_session_and_vice_versa(void **state)
{
    fixture_t f = fixture(*state);
    bb_session_policy_t policy = { "https://mirror.example.com", 28800, 3600 };
    bb_session_t *s = bb_session_new(f.p, "alice", 42, "Alice", "", NOW);
    char *session_value = bb_session_encode(f.p, f.session_ring, &policy, s, NOW);
    const char *state_json = "{\"st\":\"s\",\"ret\":\"/\",\"exp\":1700000600}";
    json_t *state_claims = bb_json_parse(f.p, state_json, strlen(state_json));

    assert_non_null(session_value);
    assert_non_null(state_claims);
    assert_int_equal(decode_at(&f, session_value, "s", NOW), BB_STATE_INVALID);
    /* State claims signed under the session key, with either typ: refused under the state key. */
    assert_int_equal(decode_at(&f, sign_ok(f.p, f.session_ring, "bbauth-state", state_claims), "s", NOW),
                     BB_STATE_INVALID);
    assert_int_equal(decode_at(&f, sign_ok(f.p, f.state_ring, "JWT", state_claims), "s", NOW),
                     BB_STATE_INVALID);
    assert_int_equal(decode_at(&f, sign_ok(f.p, f.state_ring, "bbauth-state", state_claims), "s", NOW),
                     BB_STATE_VALID);
}

static void test_garbage(void **state)
{
    fixture_t f = fixture(*state);
    bb_login_state_t *ls = bb_login_state_new(f.p, "/", NOW, TTL);
    char *value = bb_login_state_encode(f.p, f.state_ring, ls);

    assert_non_null(value);
    value[strlen(value) - 10] ^= 1;
    assert_int_equal(decode_at(&f, value, ls->state, NOW), BB_STATE_INVALID);
    assert_int_equal(decode_at(&f, "", ls->state, NOW), BB_STATE_INVALID);
    assert_int_equal(decode_at(&f, NULL, ls->state, NOW), BB_STATE_INVALID);
}

static void test_cookie_name(void **state)
{
    apr_pool_t *p = *state;
    char *a = bb_login_state_cookie_name(p, "bbauth_session", "state-a");
    char *b = bb_login_state_cookie_name(p, "bbauth_session", "state-b");

    /* base64url(SHA-256("abc")) = ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0 (FIPS 180-2 vector). */
    assert_string_equal(bb_login_state_cookie_name(p, "bbauth_session", "abc"), "bbauth_session_st_ungWv48Bz-pBQUDe");
    assert_int_equal(strlen(a), strlen("bbauth_session_st_") + 16);
    assert_string_not_equal(a, b);
    assert_string_equal(a, bb_login_state_cookie_name(p, "bbauth_session", "state-a"));
    /* Whatever the callback's state parameter holds, the name stays a cookie token. */
    assert_int_equal(strcspn(bb_login_state_cookie_name(p, "x", "; Path=/\r\n\"evil\""), ";=\r\n \"\t,"),
                     strlen("x_st_") + 16);
    assert_null(bb_login_state_cookie_name(p, "x", NULL));
    assert_null(bb_login_state_cookie_name(p, NULL, "abc"));
}

/* The return path kept is capped: a longer one goes back to "/". */
static void test_return_path_capped(void **state)
{
    fixture_t f = fixture(*state);
    char longest[BB_STATE_MAX_RETURN + 2];
    bb_login_state_t *ls, *out = NULL;

    memset(longest, 'a', sizeof(longest));
    longest[0] = '/';
    longest[BB_STATE_MAX_RETURN] = '\0';
    ls = bb_login_state_new(f.p, longest, NOW, TTL);
    assert_int_equal(bb_login_state_decode(f.p, f.state_ring, bb_login_state_encode(f.p, f.state_ring, ls),
                                           ls->state, NOW, &out), BB_STATE_VALID);
    assert_string_equal(out->return_to, longest);
    longest[BB_STATE_MAX_RETURN] = 'a';
    longest[BB_STATE_MAX_RETURN + 1] = '\0';
    ls = bb_login_state_new(f.p, longest, NOW, TTL);
    assert_int_equal(bb_login_state_decode(f.p, f.state_ring, bb_login_state_encode(f.p, f.state_ring, ls),
                                           ls->state, NOW, &out), BB_STATE_VALID);
    assert_string_equal(out->return_to, "/");
}

static void push_pair(apr_array_header_t *pairs, const char *name, const char *value)
{
    bb_cookie_pair_t *pair = (bb_cookie_pair_t *)apr_array_push(pairs);
    pair->name = name;
    pair->value = value;
}

static const char *joined(apr_pool_t *p, const apr_array_header_t *names)
{
    const char *s = "";
    int i;

    for (i = 0; i < names->nelts; i++) {
        s = apr_pstrcat(p, s, i ? "|" : "", APR_ARRAY_IDX(names, i, const char *), NULL);
    }
    return s;
}

static void test_evict_oldest(void **state)
{
    fixture_t f = fixture(*state);
    apr_array_header_t *pairs = apr_array_make(f.p, 6, sizeof(bb_cookie_pair_t));
    int i;

    for (i = 0; i < 3; i++) {
        bb_login_state_t *ls = bb_login_state_new(f.p, "/", NOW + 10 * (3 - i), TTL);
        push_pair(pairs, apr_psprintf(f.p, "s_st_%d", i), bb_login_state_encode(f.p, f.state_ring, ls));
    }
    /* Fewer than `keep`: nothing to evict. */
    assert_string_equal(joined(f.p, bb_login_state_evict(f.p, f.state_ring, pairs, 4)), "");
    /* At `keep` already: the oldest one makes room. */
    assert_string_equal(joined(f.p, bb_login_state_evict(f.p, f.state_ring, pairs, 3)), "s_st_2");
    /* Ones that do not verify go first. */
    push_pair(pairs, "s_st_junk", "junk");
    push_pair(pairs, "s_st_forged", forge(&f, "{\"st\":\"x\",\"ret\":\"/\"}"));
    assert_string_equal(joined(f.p, bb_login_state_evict(f.p, f.state_ring, pairs, 3)),
                        "s_st_junk|s_st_forged|s_st_2");
    assert_string_equal(joined(f.p, bb_login_state_evict(f.p, f.state_ring, NULL, 3)), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_return_path_capped),
        UNIT_TEST(test_evict_oldest),
        UNIT_TEST(test_new),
        UNIT_TEST(test_roundtrip),
        UNIT_TEST(test_encoded_claims),
        UNIT_TEST(test_bound_to_the_state),
        UNIT_TEST(test_expiry),
        UNIT_TEST(test_hostile_claims),
        UNIT_TEST(test_not_a_session_and_vice_versa),
        UNIT_TEST(test_garbage),
        UNIT_TEST(test_cookie_name),
    };
    return UNIT_RUN("state", tests);
}
