/* test_pkce: PKCE S256: the RFC 7636 Appendix B vector, verifier length and alphabet, freshness. */
#include "unit.h"
#include "bb_util.h"
#include "bb_pkce.h"

static void test_rfc7636_appendix_b(void **state)
{
    assert_string_equal(bb_pkce_challenge_s256(*state, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
                        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

static void test_verifier(void **state)
{
    apr_pool_t *p = *state;
    char *verifier = bb_pkce_verifier(p);
    char *other = bb_pkce_verifier(p);
    apr_size_t len = 0;

    assert_non_null(verifier);
    /* RFC 7636 §4.1: 43..128 characters of [A-Z a-z 0-9 - . _ ~]; base64url of 32 bytes is 43. */
    assert_int_equal(strlen(verifier), 43);
    assert_int_equal(strspn(verifier, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
    assert_non_null(bb_base64url_decode(p, verifier, strlen(verifier), &len));
    assert_int_equal(len, 32);
    assert_string_not_equal(verifier, other);
}

static void test_challenge_of_fresh_verifier(void **state)
{
    apr_pool_t *p = *state;
    char *verifier = bb_pkce_verifier(p);
    char *challenge = bb_pkce_challenge_s256(p, verifier);

    assert_int_equal(strlen(challenge), 43);        /* SHA-256, base64url, no padding */
    assert_null(strchr(challenge, '='));
    assert_string_not_equal(challenge, verifier);
    assert_string_equal(challenge, bb_pkce_challenge_s256(p, verifier));
    assert_null(bb_pkce_challenge_s256(p, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_rfc7636_appendix_b),
        UNIT_TEST(test_verifier),
        UNIT_TEST(test_challenge_of_fresh_verifier),
    };
    return UNIT_RUN("pkce", tests);
}
