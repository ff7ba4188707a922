/* test_oauth2: the authorize URL, and reading every kind of token-endpoint answer without leaking a token. */
#include "unit.h"
#include "fake_response.h"
#include "bb_oauth2.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Values that must never show up in a message. */
#define ACCESS_TOKEN  "eyJhbGciOiJIUzI1NiJ9.QUNDRVNTU0VDUkVU.c2ln"
#define REFRESH_TOKEN "eyJhbGciOiJIUzI1NiJ9.UkVGUkVTSFNFQ1JFVA.c2ln"
#define CODE          "c0de-SECRET-4711"
#define CLIENT_SECRET "client-SECRET-0815"
#define VERIFIER      "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

static const char *token_url = "https://bitbucket.example.com/bitbucket/rest/oauth2/latest/token";

static const bb_oauth2_client_t client = {
    "https://bitbucket.example.com/bitbucket",
    "mod-bbauth client",
    CLIENT_SECRET,
    "https://www.example.com/bbauth/callback",
    "PUBLIC_REPOS REPO_READ",
};

static void assert_contains(const char *haystack, const char *needle)
{
    if (haystack == NULL || strstr(haystack, needle) == NULL) {
        fail_msg("\"%s\" does not contain \"%s\"", haystack ? haystack : "(null)", needle);
    }
}

static void assert_no_secret(const char *message)
{
    static const char *const secrets[] = { ACCESS_TOKEN, REFRESH_TOKEN, CODE, CLIENT_SECRET, VERIFIER, "SECRET" };
    size_t i;

    for (i = 0; i < ARRAY_LEN(secrets); i++) {
        if (message && strstr(message, secrets[i])) {
            fail_msg("message \"%s\" holds a secret", message);
        }
    }
}

static void test_authorize_url(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_oauth2_authorize_url(p, &client, "st4te-_x", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
                        "https://bitbucket.example.com/bitbucket/rest/oauth2/latest/authorize"
                        "?response_type=code"
                        "&client_id=mod-bbauth%20client"
                        "&redirect_uri=https%3A%2F%2Fwww.example.com%2Fbbauth%2Fcallback"
                        "&scope=PUBLIC_REPOS%20REPO_READ"
                        "&state=st4te-_x"
                        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
                        "&code_challenge_method=S256");
}

static bb_status_t parse(apr_pool_t *p, const bb_http_response_t *resp, bb_oauth2_tokens_t **tokens,
                         const char **errmsg)
{
    bb_status_t status;

    *errmsg = NULL;
    status = bb_oauth2_parse_token_response(p, resp, token_url, tokens, errmsg);
    if (status == BB_OK) {
        assert_null(*errmsg);
        assert_non_null(*tokens);
    }
    else {
        assert_null(*tokens);
        assert_contains(*errmsg, "token exchange at https://bitbucket.example.com/bitbucket/rest/oauth2/latest/token");
        assert_no_secret(*errmsg);
    }
    return status;
}

static void test_good_answer(void **state)
{
    apr_pool_t *p = *state;
    bb_oauth2_tokens_t *tokens;
    const char *errmsg;
    bb_http_response_t *resp = response(p, 200, "application/json",
                                        "{\"access_token\":\"" ACCESS_TOKEN "\",\"token_type\":\"bearer\","
                                        "\"expires_in\":3600,\"refresh_token\":\"" REFRESH_TOKEN "\","
                                        "\"scope\":\"REPO_READ\"}");

    assert_int_equal(parse(p, resp, &tokens, &errmsg), BB_OK);
    assert_string_equal(tokens->access_token, ACCESS_TOKEN);
    assert_string_equal(tokens->refresh_token, REFRESH_TOKEN);
    assert_string_equal(tokens->scope, "REPO_READ");
    assert_int_equal(tokens->expires_in, 3600);
}

/* Bitbucket versions that say "scopes", as a string or a list; all the optional members absent or null. */
static void test_scopes_and_optional_members(void **state)
{
    apr_pool_t *p = *state;
    bb_oauth2_tokens_t *tokens;
    const char *errmsg;

    assert_int_equal(parse(p, response(p, 200, "application/json", "{\"access_token\":\"" ACCESS_TOKEN "\","
                                       "\"token_type\":\"Bearer\",\"scopes\":\"PUBLIC_REPOS REPO_READ\"}"),
                           &tokens, &errmsg), BB_OK);
    assert_string_equal(tokens->scope, "PUBLIC_REPOS REPO_READ");
    assert_null(tokens->refresh_token);
    assert_int_equal(tokens->expires_in, 0);

    assert_int_equal(parse(p, response(p, 200, "application/json", "{\"access_token\":\"" ACCESS_TOKEN "\","
                                       "\"scopes\":[\"PUBLIC_REPOS\",\"REPO_READ\"]}"),
                           &tokens, &errmsg), BB_OK);
    assert_string_equal(tokens->scope, "PUBLIC_REPOS REPO_READ");

    assert_int_equal(parse(p, response(p, 200, "application/vnd.x+json", "{\"access_token\":\"" ACCESS_TOKEN "\","
                                       "\"refresh_token\":null,\"scope\":null,\"token_type\":null,"
                                       "\"expires_in\":null}"),
                           &tokens, &errmsg), BB_OK);
    assert_null(tokens->scope);
    assert_null(tokens->refresh_token);
}

static void test_expires_in_bounds(void **state)
{
    apr_pool_t *p = *state;
    bb_oauth2_tokens_t *tokens;
    const char *errmsg;

    assert_int_equal(parse(p, response(p, 200, "application/json", "{\"access_token\":\"" ACCESS_TOKEN "\","
                                       "\"expires_in\":9223372036854775807}"), &tokens, &errmsg), BB_OK);
    assert_int_equal(tokens->expires_in, BB_OAUTH2_MAX_EXPIRES_IN);
    assert_int_equal(parse(p, response(p, 200, "application/json", "{\"access_token\":\"" ACCESS_TOKEN "\","
                                       "\"expires_in\":-5}"), &tokens, &errmsg), BB_OK);
    assert_int_equal(tokens->expires_in, 0);
}

/* Answers that are not usable: each must be refused with the expected words, and never show a token. */
static void test_unusable_answers(void **state)
{
    apr_pool_t *p = *state;
    static const struct {
        int status;
        const char *content_type, *body, *location;
        bb_status_t expected;
        const char *says;
    } table[] = {
        { 200, "application/json", "{\"token_type\":\"bearer\",\"refresh_token\":\"" REFRESH_TOKEN "\"}", NULL,
          BB_BAD_RESPONSE, "without an access_token" },
        { 200, "application/json", "{\"access_token\":null}", NULL, BB_BAD_RESPONSE, "without an access_token" },
        { 200, "application/json", "{\"access_token\":12345}", NULL, BB_BAD_RESPONSE, "access_token is not" },
        { 200, "application/json", "{\"access_token\":\"\"}", NULL, BB_BAD_RESPONSE, "access_token is not" },
        { 200, "application/json", "{\"access_token\":\"" ACCESS_TOKEN "\\r\\nX: y\"}", NULL, BB_BAD_RESPONSE,
          "access_token is not" },
        { 200, "application/json", "[\"" ACCESS_TOKEN "\"]", NULL, BB_BAD_RESPONSE, "without a JSON object" },
        { 200, "application/json", "{\"access_token\": \"" ACCESS_TOKEN "\",,}", NULL, BB_BAD_RESPONSE,
          "not valid JSON" },
        { 200, "application/json", "{\"access_token\":\"a\",\"access_token\":\"" ACCESS_TOKEN "\"}", NULL,
          BB_BAD_RESPONSE, "not valid JSON" },
        { 200, "text/plain", "{\"access_token\":\"" ACCESS_TOKEN "\"}", NULL, BB_BAD_RESPONSE, "(text/plain)" },
        { 200, "text/html", "<html><form>Two-step verification " ACCESS_TOKEN "</form></html>", NULL,
          BB_BAD_RESPONSE, "two-factor" },
        { 302, "text/html", "", "https://bb.example.com/plugins/servlet/twofactor?t=" ACCESS_TOKEN,
          BB_BAD_RESPONSE, "HTTP 302 redirect to bb.example.com" },
        { 500, "application/json", "{\"error\":\"server_error\",\"error_description\":\"" ACCESS_TOKEN "\"}", NULL,
          BB_BAD_RESPONSE, "HTTP 500" },
        { 503, "", "", NULL, BB_BAD_RESPONSE, "HTTP 503" },
        { 400, "text/html", "<html>error</html>", NULL, BB_BAD_RESPONSE, "HTTP 400 HTML page" },
        { 400, "application/json", "{\"errors\":[]}", NULL, BB_BAD_RESPONSE, "HTTP 400" },
        { 400, "application/json", "{\"error\":\"invalid_grant\",\"error_description\":\"code " CODE " used\"}",
          NULL, BB_DENIED, "refused: invalid_grant (the code was already used" },
        { 401, "application/json", "{\"error\":\"invalid_client\",\"error_description\":\"" CLIENT_SECRET "\"}",
          NULL, BB_DENIED, "refused: invalid_client (check BBAuthClientID and BBAuthClientSecret" },
        { 400, "application/json", "{\"error\":\"unsupported_grant_type\"}", NULL, BB_DENIED, "7.21 or later" },
        { 400, "application/json", "{\"error\":\"weird\\r\\n<b>code\"}", NULL, BB_DENIED, "refused: weirdbcode" },
        { 400, "application/json", "{\"error\":\"<>\"}", NULL, BB_DENIED, "refused: an unreadable error code" },
        { 200, "application/json", "{\"access_token\":\"" ACCESS_TOKEN "\",\"token_type\":\"mac\"}", NULL,
          BB_BAD_RESPONSE, "token_type is not bearer" },
        { 200, "application/json", "{\"access_token\":\"" ACCESS_TOKEN "\",\"token_type\":[\"bearer\"]}", NULL,
          BB_BAD_RESPONSE, "token_type is not bearer" },
        { 200, "application/json", "{\"access_token\":\"" ACCESS_TOKEN "\",\"refresh_token\":5}", NULL,
          BB_BAD_RESPONSE, "refresh_token is not" },
        { 200, "application/json", "{\"access_token\":\"" ACCESS_TOKEN "\",\"scopes\":[\"A\",1]}", NULL,
          BB_BAD_RESPONSE, "scope is neither" },
        { 200, "application/json", "{\"access_token\":\"" ACCESS_TOKEN "\",\"expires_in\":\"soon\"}", NULL,
          BB_BAD_RESPONSE, "expires_in is not an integer" },
        { 200, "application/json", "{\"access_token\":\"" ACCESS_TOKEN "\",\"expires_in\":1e300}", NULL,
          BB_BAD_RESPONSE, "expires_in is not an integer" },
        /* Beyond 64 bits jansson refuses the whole document. */
        { 200, "application/json", "{\"access_token\":\"" ACCESS_TOKEN "\",\"expires_in\":99999999999999999999}",
          NULL, BB_BAD_RESPONSE, "not valid JSON" },
    };
    size_t i;

    for (i = 0; i < ARRAY_LEN(table); i++) {
        bb_http_response_t *resp = response(p, table[i].status, table[i].content_type, table[i].body);
        bb_oauth2_tokens_t *tokens = NULL;
        const char *errmsg = NULL;
        bb_status_t status;

        if (table[i].location) {
            apr_table_set(resp->headers, "Location", table[i].location);
        }
        status = parse(p, resp, &tokens, &errmsg);
        if (status != table[i].expected) {
            fail_msg("case %zu: %s instead of %s (%s)", i, bb_status_name(status), bb_status_name(table[i].expected),
                     errmsg ? errmsg : "");
        }
        assert_contains(errmsg, table[i].says);
        if (status == BB_BAD_RESPONSE) {
            assert_contains(errmsg, "check ");   /* every unusable answer says what to look at */
        }
    }
}

/* Transport failures of both grants name the grant and the URL, and nothing that was sent. */
static void test_grants_unreachable(void **state)
{
    apr_pool_t *p = *state;
    bb_http_opts_t http = { NULL, 2, 0, NULL, NULL, NULL, 0, NULL };
    bb_oauth2_client_t closed = client;
    bb_oauth2_tokens_t stale;
    bb_oauth2_tokens_t *tokens = &stale;
    const char *errmsg = NULL;

    closed.base_url = "https://127.0.0.1:1/bitbucket";
    assert_int_equal(bb_oauth2_exchange_code(p, &closed, &http, CODE, VERIFIER, &tokens, &errmsg), BB_UNAVAILABLE);
    assert_null(tokens);
    assert_contains(errmsg, "token exchange: POST https://127.0.0.1:1/bitbucket/rest/oauth2/latest/token: ");
    assert_no_secret(errmsg);

    errmsg = NULL;
    assert_int_equal(bb_oauth2_refresh(p, &closed, &http, REFRESH_TOKEN, &tokens, &errmsg), BB_UNAVAILABLE);
    assert_contains(errmsg, "token refresh: POST https://127.0.0.1:1/bitbucket/rest/oauth2/latest/token: ");
    assert_no_secret(errmsg);

    errmsg = NULL;
    assert_int_equal(bb_oauth2_revoke(p, &closed, &http, REFRESH_TOKEN, "refresh_token", &errmsg), BB_UNAVAILABLE);
    assert_contains(errmsg, "token revocation: POST https://127.0.0.1:1/bitbucket/rest/oauth2/latest/revoke: ");
    assert_no_secret(errmsg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_authorize_url),
        UNIT_TEST(test_good_answer),
        UNIT_TEST(test_scopes_and_optional_members),
        UNIT_TEST(test_expires_in_bounds),
        UNIT_TEST(test_unusable_answers),
        UNIT_TEST(test_grants_unreachable),
    };
    return UNIT_RUN("oauth2", tests);
}
