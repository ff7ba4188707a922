/* test_clientsetup: the package clients' snippets for a mirror URL and user, the checks of BBAuthClientSetup and the token page link. */
#include "unit.h"
#include "bb_clientsetup.h"

static const char *lines(apr_pool_t *p, const char *client, const char *url, const char *user)
{
    const bb_clientsetup_t *setup = bb_clientsetup_make(p, client, url, user);

    assert_non_null(setup);
    assert_string_equal(setup->client, client);
    assert_non_null(setup->where);
    return setup->text;
}

static void test_composer_keys_credentials_by_host_and_port(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(lines(p, "composer", "https://mirror.example.com:8443/packages/composer/", "alice"),
                        "composer config --global repositories.mirror composer "
                        "'https://mirror.example.com:8443/packages/composer/'\n"
                        "composer config --global http-basic.mirror.example.com:8443 'alice' '<token>'\n");
    /* Plain http: composer refuses it unless told. */
    assert_string_equal(lines(p, "composer", "http://127.0.0.1:8080/c/", "alice"),
                        "composer config --global secure-http false\n"
                        "composer config --global repositories.mirror composer 'http://127.0.0.1:8080/c/'\n"
                        "composer config --global http-basic.127.0.0.1:8080 'alice' '<token>'\n");
}

static void test_shell_values_are_single_quoted(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(lines(p, "poetry", "https://m.example/simple/", "o'brien; rm -rf /"),
                        "poetry source add --priority=primary mirror 'https://m.example/simple/'\n"
                        "poetry config http-basic.mirror 'o'\\''brien; rm -rf /' '<token>'\n");
}

static void test_pip_and_uv_percent_encode_the_username(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(lines(p, "pip", "https://m.example/simple/", "jane@example.com"),
                        "[global]\nindex-url = https://jane%40example.com:<token>@m.example/simple/\n");
    assert_string_equal(lines(p, "pip", "http://m.example:81/simple/", "bob"),
                        "[global]\nindex-url = http://bob:<token>@m.example:81/simple/\ntrusted-host = m.example\n");
    assert_string_equal(lines(p, "uv", "https://m.example/simple/", "jane@example.com"),
                        "export UV_DEFAULT_INDEX='https://jane%40example.com:<token>@m.example/simple/'\n");
}

static void test_npm_and_pnpm_send_the_token_to_that_path_only(void **state)
{
    apr_pool_t *p = *state;
    const char *expected = "registry=https://m.example/packages/npm/\n"
                           "//m.example/packages/npm/:_authToken=<token>\n";

    assert_string_equal(lines(p, "npm", "https://m.example/packages/npm/", "alice"), expected);
    assert_string_equal(lines(p, "pnpm", "https://m.example/packages/npm/", "alice"), expected);
    assert_string_equal(lines(p, "npm", "https://[::1]:8443", "alice"),
                        "registry=https://[::1]:8443\n//[::1]:8443/:_authToken=<token>\n");
}

static void test_yarn_whitelists_plain_http(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(lines(p, "yarn", "https://m.example/npm/", "alice"),
                        "npmRegistryServer: \"https://m.example/npm/\"\nnpmAuthToken: \"<token>\"\nnpmAlwaysAuth: true\n");
    assert_string_equal(lines(p, "yarn", "http://m.example/npm/", "alice"),
                        "npmRegistryServer: \"http://m.example/npm/\"\nnpmAuthToken: \"<token>\"\nnpmAlwaysAuth: true\n"
                        "unsafeHttpWhitelist:\n  - \"m.example\"\n");
}

static void test_check_refuses_bad_clients_and_urls(void **state)
{
    apr_pool_t *p = *state;
    static const char *const bad_urls[] = {
        "/packages/", "mirror.example.com/x", "ftp://m.example/", "https://user:pw@m.example/",
        "https://m.example/?a=b",
        "https://m.example/#x", "https://m.example/a b", "https://m.example/\"x", "https://m.example/<x>",
        "https://m.example/caf\xc3\xa9", "https://m.example/\n", "https:///path", "",
    };
    size_t i;

    assert_null(bb_clientsetup_check(p, "composer", "https://m.example/packages/composer/"));
    assert_null(bb_clientsetup_check(p, "pnpm", "http://127.0.0.1:8080"));
    assert_non_null(strstr(bb_clientsetup_check(p, "maven", "https://m.example/"), "unknown client 'maven'"));
    assert_non_null(bb_clientsetup_check(p, NULL, "https://m.example/"));
    assert_non_null(bb_clientsetup_check(p, "npm", NULL));
    for (i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        if (bb_clientsetup_check(p, "npm", bad_urls[i]) == NULL) {
            fail_msg("accepted bad URL #%zu", i);
        }
        assert_null(bb_clientsetup_make(p, "npm", bad_urls[i], "alice"));
    }
    assert_null(bb_clientsetup_make(p, "maven", "https://m.example/", "alice"));
    assert_null(bb_clientsetup_make(p, "npm", "https://m.example/", NULL));
}

static void test_token_page_uses_the_slug(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_clientsetup_token_page(p, "https://bb.example.com/bitbucket", "jane_example.com"),
                        "https://bb.example.com/bitbucket/plugins/servlet/access-tokens/users/jane_example.com/manage");
    assert_string_equal(bb_clientsetup_token_page(p, "https://bb.example.com", "a/b"),
                        "https://bb.example.com/plugins/servlet/access-tokens/users/a%2Fb/manage");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_composer_keys_credentials_by_host_and_port),
        UNIT_TEST(test_shell_values_are_single_quoted),
        UNIT_TEST(test_pip_and_uv_percent_encode_the_username),
        UNIT_TEST(test_npm_and_pnpm_send_the_token_to_that_path_only),
        UNIT_TEST(test_yarn_whitelists_plain_http),
        UNIT_TEST(test_check_refuses_bad_clients_and_urls),
        UNIT_TEST(test_token_page_uses_the_slug),
    };
    return UNIT_RUN("clientsetup", tests);
}
