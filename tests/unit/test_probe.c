/* Unit tests of bb_probe: what the setup page's live check makes of Bitbucket's answers. */
#include "unit.h"
#include "fake_response.h"
#include "bb_probe.h"

#define PROPS_URL "https://bb.example.com/bitbucket/rest/api/1.0/application-properties"

static void test_base_answers(void **state)
{
    apr_pool_t *p = *state;
    const char *version = "unset";
    bb_probe_t *probe = bb_probe_read_base(p, PROPS_URL "?x=SECRET", response_at(p, 200, "application/json",
        "{\"version\":\"8.19.1\",\"buildNumber\":\"8019001\",\"displayName\":\"Bitbucket\"}", NULL), &version);

    assert_true(probe->ok);
    assert_string_equal(version, "8.19.1");
    assert_string_equal(probe->detail, "Bitbucket 8.19.1 answers");
    assert_string_equal(probe->url, PROPS_URL);
}

static void test_base_values_are_reduced(void **state)
{
    apr_pool_t *p = *state;
    const char *version = NULL;
    bb_probe_t *probe = bb_probe_read_base(p, PROPS_URL, response_at(p, 200, "application/json",
        "{\"version\":\"7.6<script>\",\"displayName\":\"Bit\\\"bucket\\n<b>\"}", NULL), &version);

    assert_true(probe->ok);
    assert_string_equal(version, "7.6script");
    assert_string_equal(probe->detail, "Bitbucketb 7.6script answers");

    probe = bb_probe_read_base(p, PROPS_URL, response_at(p, 200, "application/json", "{}", NULL), &version);
    assert_true(probe->ok);
    assert_null(version);
    assert_string_equal(probe->detail, "Bitbucket (version not shown) answers");
}

static void test_base_not_bitbucket(void **state)
{
    apr_pool_t *p = *state;
    const char *version = "unset";
    bb_probe_t *probe;

    probe = bb_probe_read_base(p, PROPS_URL, response_at(p, 404, "text/html", "<html>SECRET</html>", NULL), &version);
    assert_false(probe->ok);
    assert_null(version);
    assert_non_null(strstr(probe->detail, "HTTP 404 HTML page"));
    assert_non_null(strstr(probe->detail, "context path"));
    assert_null(strstr(probe->detail, "SECRET"));

    probe = bb_probe_read_base(p, PROPS_URL, response_at(p, 302, "", "", "https://sso.example/login?t=SECRET"), &version);
    assert_false(probe->ok);
    assert_non_null(strstr(probe->detail, "two-factor"));
    assert_null(strstr(probe->detail, "SECRET"));

    probe = bb_probe_read_base(p, PROPS_URL, response_at(p, 200, "application/json", "[1,2", NULL), &version);
    assert_false(probe->ok);
    assert_non_null(strstr(probe->detail, "unreadable answer"));
    probe = bb_probe_read_base(p, PROPS_URL, response_at(p, 200, "text/html", "{}", NULL), &version);
    assert_false(probe->ok);
}

static void test_endpoint_verdicts(void **state)
{
    apr_pool_t *p = *state;
    static const struct {
        int status;
        const char *type;
        int ok;
    } cases[] = {
        { 200, "", 1 }, { 303, "", 1 }, { 302, "text/html", 1 }, { 400, "text/html", 1 }, { 401, "", 1 },
        { 405, "", 1 }, { 404, "application/json", 0 }, { 404, "text/html", 0 }, { 500, "", 0 }, { 503, "", 0 },
    };
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bb_probe_t *probe = bb_probe_read_endpoint(p, "OAuth 2 token endpoint", "https://bb/rest/oauth2/latest/token",
                                                   response_at(p, cases[i].status, cases[i].type, "", NULL), "WHY");
        assert_int_equal(probe->ok, cases[i].ok);
        assert_string_equal(probe->what, "OAuth 2 token endpoint");
        if (cases[i].status == 404) {
            assert_string_equal(probe->detail, "HTTP 404: WHY");
        }
    }
}

static void test_version_at_least(void **state)
{
    assert_int_equal(bb_probe_version_at_least("7.21.0", 7, 21), 1);
    assert_int_equal(bb_probe_version_at_least("7.21", 7, 21), 1);
    assert_int_equal(bb_probe_version_at_least("8.0.1", 7, 21), 1);
    assert_int_equal(bb_probe_version_at_least("10.1", 7, 21), 1);
    assert_int_equal(bb_probe_version_at_least("7.20.3", 7, 21), 0);
    assert_int_equal(bb_probe_version_at_least("7.3", 7, 21), 0);
    assert_int_equal(bb_probe_version_at_least("6", 7, 21), 0);
    assert_int_equal(bb_probe_version_at_least("7", 7, 21), 0);
    assert_int_equal(bb_probe_version_at_least(NULL, 7, 21), -1);
    assert_int_equal(bb_probe_version_at_least("", 7, 21), -1);
    assert_int_equal(bb_probe_version_at_least("v8", 7, 21), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_base_answers),
        UNIT_TEST(test_base_values_are_reduced),
        UNIT_TEST(test_base_not_bitbucket),
        UNIT_TEST(test_endpoint_verdicts),
        UNIT_TEST(test_version_at_least),
    };

    return UNIT_RUN("probe", tests);
}
