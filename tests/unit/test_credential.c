/* test_credential: Authorization header parsing: every accepted form, and every rejection with its reason. */
#include "unit.h"
#include <apr_base64.h>
#include <apr_hash.h>
#include "bb_credential.h"

/* "Basic " + standard padded base64 of len bytes (len may count NULs). */
static const char *basic(apr_pool_t *p, const char *decoded, apr_size_t len)
{
    char *b64 = apr_palloc(p, apr_base64_encode_len((int)len));
    apr_base64_encode(b64, decoded, (int)len);
    return apr_pstrcat(p, "Basic ", b64, NULL);
}

static const char *basic_str(apr_pool_t *p, const char *decoded)
{
    return basic(p, decoded, strlen(decoded));
}

static const char *repeat(apr_pool_t *p, char c, apr_size_t n)
{
    char *s = apr_palloc(p, n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static bb_credential_t *parse_ok(apr_pool_t *p, const char *header)
{
    bb_credential_t *cred = NULL;
    bb_cred_status_t status = bb_credential_parse(p, header, &cred);
    if (status != BB_CRED_OK) {
        fail_msg("'%s' rejected: %s", header, bb_credential_reason(status));
    }
    assert_non_null(cred);
    return cred;
}

static void assert_rejected(apr_pool_t *p, const char *header, bb_cred_status_t want)
{
    bb_credential_t sentinel, *cred = &sentinel;
    bb_cred_status_t status = bb_credential_parse(p, header, &cred);
    if (status != want) {
        fail_msg("'%.60s': got '%s', want '%s'", header ? header : "(null)", bb_credential_reason(status),
                 bb_credential_reason(want));
    }
    assert_ptr_equal(cred, &sentinel);
}

static void test_bearer_forms(void **state)
{
    apr_pool_t *p = *state;
    static const struct { const char *header, *token; } cases[] = {
        { "Bearer abc123", "abc123" },
        { "bearer abc123", "abc123" },
        { "BEARER abc123", "abc123" },
        { "bEaReR abc123", "abc123" },
        { "Bearer    abc123", "abc123" },
        { "Bearer abc123  \t ", "abc123" },
        { "Bearer BBDC-MzE2NjY5NTk4NzU5OrJl4m+Ju/w7rQ==", "BBDC-MzE2NjY5NTk4NzU5OrJl4m+Ju/w7rQ==" },
        { "Bearer AZaz09-._~+/", "AZaz09-._~+/" },
        { "Bearer a=", "a=" },
    };
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bb_credential_t *cred = parse_ok(p, cases[i].header);
        assert_string_equal(cred->token, cases[i].token);
        assert_int_equal(cred->scheme, BB_CRED_SCHEME_BEARER);
        assert_null(cred->basic_username);
    }
}

static void assert_basic(apr_pool_t *p, const char *header, const char *token, const char *username)
{
    bb_credential_t *cred = parse_ok(p, header);
    assert_string_equal(cred->token, token);
    assert_int_equal(cred->scheme, BB_CRED_SCHEME_BASIC);
    if (username) {
        assert_non_null(cred->basic_username);
        assert_string_equal(cred->basic_username, username);
    }
    else {
        assert_null(cred->basic_username);
    }
}

static void test_basic_forms(void **state)
{
    apr_pool_t *p = *state;

    /* Personal token as the password: the user is a hint only. */
    assert_basic(p, basic_str(p, "alice:TOKEN"), "TOKEN", "alice");
    assert_basic(p, "Basic YWxpY2U6VE9LRU4=", "TOKEN", "alice");
    assert_basic(p, "basic   YWxpY2U6VE9LRU4= ", "TOKEN", "alice");
    /* pip: https://TOKEN@host/ sends "TOKEN:". */
    assert_basic(p, basic_str(p, "TOKEN:"), "TOKEN", NULL);
    /* Composer http-basic with a fixed user, and an empty user. */
    assert_basic(p, basic_str(p, "x-token-auth:TOKEN"), "TOKEN", "x-token-auth");
    assert_basic(p, basic_str(p, ":TOKEN"), "TOKEN", NULL);
    /* Usernames are only checked for control characters. */
    assert_basic(p, basic_str(p, "j\xc3\xbcrgen@example.com:TOKEN=="), "TOKEN==", "j\xc3\xbcrgen@example.com");
    assert_basic(p, basic_str(p, "svc user:BBDC-abc+/"), "BBDC-abc+/", "svc user");
}

static void test_token_length_limit(void **state)
{
    apr_pool_t *p = *state;
    const char *longest = repeat(p, 'a', BB_CREDENTIAL_MAX_TOKEN);
    const char *too_long = repeat(p, 'a', BB_CREDENTIAL_MAX_TOKEN + 1);

    assert_string_equal(parse_ok(p, apr_pstrcat(p, "Bearer ", longest, NULL))->token, longest);
    assert_string_equal(parse_ok(p, basic_str(p, apr_pstrcat(p, "u:", longest, NULL)))->token, longest);
    assert_rejected(p, apr_pstrcat(p, "Bearer ", too_long, NULL), BB_CRED_TOKEN_TOO_LONG);
    assert_rejected(p, basic_str(p, apr_pstrcat(p, "u:", too_long, NULL)), BB_CRED_TOKEN_TOO_LONG);
    assert_rejected(p, basic_str(p, apr_pstrcat(p, too_long, ":", NULL)), BB_CRED_TOKEN_TOO_LONG);
}

static void test_header_length_limit(void **state)
{
    apr_pool_t *p = *state;
    const char *at_cap = apr_pstrcat(p, "Bearer ", repeat(p, ' ', BB_CREDENTIAL_MAX_HEADER - 10), "abc", NULL);

    assert_int_equal(strlen(at_cap), BB_CREDENTIAL_MAX_HEADER);
    assert_string_equal(parse_ok(p, at_cap)->token, "abc");
    assert_rejected(p, apr_pstrcat(p, at_cap, "d", NULL), BB_CRED_HEADER_TOO_LONG);
    assert_rejected(p, apr_pstrcat(p, "Bearer ", repeat(p, 'a', 1024 * 1024), NULL), BB_CRED_HEADER_TOO_LONG);
    assert_rejected(p, apr_pstrcat(p, "Basic ", repeat(p, 'A', 1024 * 1024), NULL), BB_CRED_HEADER_TOO_LONG);
}

static void test_rejected_headers(void **state)
{
    apr_pool_t *p = *state;
    static const struct { const char *header; bb_cred_status_t want; } cases[] = {
        { "", BB_CRED_MISSING },
        { "abc123", BB_CRED_UNKNOWN_SCHEME },
        { "Negotiate YIIB", BB_CRED_UNKNOWN_SCHEME },
        { "Token abc123", BB_CRED_UNKNOWN_SCHEME },
        { "Bearerabc123", BB_CRED_UNKNOWN_SCHEME },
        { "Bearer: abc123", BB_CRED_UNKNOWN_SCHEME },
        { " Bearer abc123", BB_CRED_UNKNOWN_SCHEME },
        { "   ", BB_CRED_UNKNOWN_SCHEME },
        { "Bearer", BB_CRED_NO_CREDENTIALS },
        { "Bearer    ", BB_CRED_NO_CREDENTIALS },
        { "Basic", BB_CRED_NO_CREDENTIALS },
        { "Basic ", BB_CRED_NO_CREDENTIALS },
        { "Bearer abc\r\nX-Injected: 1", BB_CRED_CONTROL_CHAR },
        { "Bearer abc\rdef", BB_CRED_CONTROL_CHAR },
        { "Bearer\tabc", BB_CRED_CONTROL_CHAR },
        { "Bearer ab\x01" "c", BB_CRED_CONTROL_CHAR },
        { "Bearer abc\x7f", BB_CRED_CONTROL_CHAR },
        { "Basic YWxp\nY2U6VE9LRU4=", BB_CRED_CONTROL_CHAR },
        { "Bearer t\xc3\xa9st", BB_CRED_NON_ASCII },
        { "Bearer \xff", BB_CRED_NON_ASCII },
        { "Bearer abc%3D", BB_CRED_PERCENT },
        { "Bearer %", BB_CRED_PERCENT },
        { "Bearer abc def", BB_CRED_BAD_TOKEN },
        { "Bearer a=b", BB_CRED_BAD_TOKEN },
        { "Bearer ===", BB_CRED_BAD_TOKEN },
        { "Bearer a,b", BB_CRED_BAD_TOKEN },
        { "Bearer \"abc\"", BB_CRED_BAD_TOKEN },
        { "Bearer abc;", BB_CRED_BAD_TOKEN },
        { "Basic YWxpY2U6VE9LRU4", BB_CRED_BAD_BASE64 },      /* unpadded */
        { "Basic YWxpY2U6VE9LRU4==", BB_CRED_BAD_BASE64 },    /* too much padding */
        { "Basic YWxp Y2U6VE9LRU4=", BB_CRED_BAD_BASE64 },
        { "Basic YWxpY2U6VE9LRU4=YQ==", BB_CRED_BAD_BASE64 },
        { "Basic P-8_", BB_CRED_BAD_BASE64 },                 /* base64url alphabet */
        { "Basic !!!!", BB_CRED_BAD_BASE64 },
        { "Basic YQ=", BB_CRED_BAD_BASE64 },
        { "Basic YR==", BB_CRED_BAD_BASE64 },                 /* non-zero trailing bits */
        { "Basic alice:TOKEN", BB_CRED_BAD_BASE64 },          /* not encoded at all */
    };
    apr_size_t i;

    assert_rejected(p, NULL, BB_CRED_MISSING);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_rejected(p, cases[i].header, cases[i].want);
    }
}

static void test_rejected_basic_contents(void **state)
{
    apr_pool_t *p = *state;
    static const struct { const char *decoded; apr_size_t len; bb_cred_status_t want; } cases[] = {
        { "aliceTOKEN", 10, BB_CRED_NO_COLON },
        { ":", 1, BB_CRED_EMPTY },
        { "alice:TO\rKEN", 12, BB_CRED_CONTROL_CHAR },
        { "alice:TOKEN\r\n", 13, BB_CRED_CONTROL_CHAR },
        { "al\nice:TOKEN", 12, BB_CRED_CONTROL_CHAR },
        { "alice:TOK\0EN", 12, BB_CRED_CONTROL_CHAR },
        { "alice\0:TOKEN", 12, BB_CRED_CONTROL_CHAR },
        { "alice:\x7fTOKEN", 12, BB_CRED_CONTROL_CHAR },
        { "alice:T\tOKEN", 12, BB_CRED_CONTROL_CHAR },
        { "alice:T\xc3\xa9KEN", 12, BB_CRED_NON_ASCII },
        { "T\xc3\xa9KEN:", 7, BB_CRED_NON_ASCII },
        { "alice:TOK%45N", 13, BB_CRED_PERCENT },
        { "TOK%45N:", 8, BB_CRED_PERCENT },
        { "alice:TOK:EN", 12, BB_CRED_BAD_TOKEN },
        { "alice:TOK EN", 12, BB_CRED_BAD_TOKEN },
        { "TOK EN:", 7, BB_CRED_BAD_TOKEN },
        { "alice:=", 7, BB_CRED_BAD_TOKEN },
    };
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_rejected(p, basic(p, cases[i].decoded, cases[i].len), cases[i].want);
    }
}

static void test_reasons_are_distinct_texts(void **state)
{
    apr_pool_t *p = *state;
    apr_hash_t *seen = apr_hash_make(p);
    int s;

    for (s = BB_CRED_OK; s <= BB_CRED_BAD_TOKEN; s++) {
        const char *reason = bb_credential_reason((bb_cred_status_t)s);
        assert_string_not_equal(reason, "unknown");
        assert_null(apr_hash_get(seen, reason, APR_HASH_KEY_STRING));
        apr_hash_set(seen, reason, APR_HASH_KEY_STRING, reason);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_bearer_forms),
        UNIT_TEST(test_basic_forms),
        UNIT_TEST(test_token_length_limit),
        UNIT_TEST(test_header_length_limit),
        UNIT_TEST(test_rejected_headers),
        UNIT_TEST(test_rejected_basic_contents),
        UNIT_TEST(test_reasons_are_distinct_texts),
    };
    return UNIT_RUN("credential", tests);
}
