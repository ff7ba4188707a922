/* test_requirement: Require questions read back from their text, and what a refused user is told (words, link). */
#include "unit.h"
#include "bb_requirement.h"

#define BASE "https://bb.example.com/bitbucket"

static void test_parse_each_kind(void **state)
{
    apr_pool_t *p = *state;
    bb_requirement_t *req = bb_requirement_parse(p, "bitbucket-repo PLATFORM/internal-packages");

    assert_non_null(req);
    assert_int_equal(req->kind, BB_REQ_REPO);
    assert_string_equal(req->what, "PLATFORM/internal-packages");
    assert_string_equal(req->project, "PLATFORM");
    assert_string_equal(req->repo, "internal-packages");
    req = bb_requirement_parse(p, "bitbucket-project SEC");
    assert_int_equal(req->kind, BB_REQ_PROJECT);
    assert_string_equal(req->project, "SEC");
    assert_null(req->repo);
    req = bb_requirement_parse(p, "bitbucket-group release-managers");
    assert_int_equal(req->kind, BB_REQ_GROUP);
    assert_string_equal(req->what, "release-managers");
    assert_null(req->project);
    assert_string_equal(bb_requirement_parse(p, "bitbucket-group Release Managers")->what, "Release Managers");
}

static void test_parse_refuses_what_no_require_line_asks(void **state)
{
    apr_pool_t *p = *state;
    char *too_long = apr_palloc(p, BB_REQUIREMENT_MAX_QUESTION + 2);
    static const char *const bad[] = {
        "", "bitbucket-repo", "bitbucket-repo ", "bitbucket-repo PROJ", "bitbucket-repo /repo", "bitbucket-repo PROJ/",
        "bitbucket-repo A/b/c", "bitbucket-project A/b", "bitbucket-user alice", "bitbucket-admin x",
        "bitbucket-repo  PROJ/a", "bitbucket-group a\tb", "bitbucket-group a\r\nX: y",
        "bitbucket-group a\x7f", "Bitbucket-Repo PROJ/a", "bitbucket-repos PROJ/a", "bitbucket-rep PROJ/a",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bb_requirement_parse(p, bad[i]) != NULL) {
            fail_msg("accepted bad question #%zu", i);
        }
    }
    assert_null(bb_requirement_parse(p, NULL));
    memcpy(too_long, "bitbucket-group ", 16);
    memset(too_long + 16, 'g', BB_REQUIREMENT_MAX_QUESTION - 15);
    too_long[BB_REQUIREMENT_MAX_QUESTION + 1] = '\0';
    assert_null(bb_requirement_parse(p, too_long));
    too_long[BB_REQUIREMENT_MAX_QUESTION] = '\0';
    assert_non_null(bb_requirement_parse(p, too_long));
}

static void test_missing_in_words(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_requirement_missing(p, bb_requirement_parse(p, "bitbucket-repo PLATFORM/internal-packages")),
                        "read access to repository PLATFORM/internal-packages in Bitbucket");
    assert_string_equal(bb_requirement_missing(p, bb_requirement_parse(p, "bitbucket-project SEC")),
                        "access to project SEC in Bitbucket");
    assert_string_equal(bb_requirement_missing(p, bb_requirement_parse(p, "bitbucket-group qa")),
                        "membership of the Bitbucket group qa");
}

static void test_link_to_bitbucket(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_requirement_link(p, BASE, bb_requirement_parse(p, "bitbucket-repo PROJ/alpha")),
                        BASE "/projects/PROJ/repos/alpha");
    assert_string_equal(bb_requirement_link(p, BASE, bb_requirement_parse(p, "bitbucket-project ~ALICE")),
                        BASE "/projects/~ALICE");
    assert_string_equal(bb_requirement_link(p, BASE, bb_requirement_parse(p, "bitbucket-repo P\"<x>/a?b#c")),
                        BASE "/projects/P%22%3Cx%3E/repos/a%3Fb%23c");
    assert_null(bb_requirement_link(p, BASE, bb_requirement_parse(p, "bitbucket-group qa")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_parse_each_kind),
        UNIT_TEST(test_parse_refuses_what_no_require_line_asks),
        UNIT_TEST(test_missing_in_words),
        UNIT_TEST(test_link_to_bitbucket),
    };
    return UNIT_RUN("requirement", tests);
}
