/* test_tokencheck: the token check's policy as a table: each kind of answer (or none) from Bitbucket, what the
 * request gets, whether a stale verdict may stand in; renew ahead; whose calls a check makes. */
#include "unit.h"
#include "bb_tokencheck.h"
#include "bb_breaker.h"

#define NOW 1700000000

typedef struct {
    const char *name;
    bb_status_t status;
    const char *errmsg;                   /* as bb_http and bb_bitbucket write them */
    bb_check_result_t result;
    int http_status;
    int stale;
} check_case_t;

static const check_case_t cases[] = {
    { "hit or miss, Bitbucket says yes", BB_OK, NULL, BB_CHECK_VALID, 200, 0 },
    { "Bitbucket says no", BB_DENIED, "whoami: HTTP 401", BB_CHECK_REFUSED, 401, 0 },
    { "Bitbucket down", BB_UNAVAILABLE, "GET https://bb/whoami: connection refused: check ...",
      BB_CHECK_FAILED, 503, 1 },
    { "Bitbucket slow", BB_UNAVAILABLE, "GET https://bb/whoami: timed out after 3 s: check BBAuthTimeout",
      BB_CHECK_FAILED, 503, 1 },
    { "Bitbucket 5xx", BB_BAD_RESPONSE, "whoami: unusable answer: HTTP 502 (Bitbucket failed: check its log)",
      BB_CHECK_FAILED, 503, 1 },
    { "circuit open", BB_UNAVAILABLE, "GET https://bb/whoami: not sent (held back): circuit open after repeated "
      "failures", BB_CHECK_FAILED, 503, 1 },
    { "slot full", BB_UNAVAILABLE, "GET https://bb/whoami: not sent (held back here, Bitbucket did not fail): 8 "
      "calls to Bitbucket are already in flight", BB_CHECK_HELD_HERE, 503, 0 },
    { "429 for this user", BB_BAD_RESPONSE, "whoami: unusable answer: HTTP 429: rate-limited by Bitbucket, "
      "retrying after 900 s (its rate limits ...)", BB_CHECK_RATE_LIMITED, 429, 0 },
    { "held after a 429 for this user", BB_UNAVAILABLE, "GET https://bb/whoami: not sent (held back here, "
      "Bitbucket did not fail): Bitbucket rate-limited this user's calls (429): retry after 899 s",
      BB_CHECK_RATE_LIMITED, 429, 0 },
    { "held after a 429 for anonymous checks", BB_UNAVAILABLE, "GET https://bb/whoami: not sent (held back here, "
      "Bitbucket did not fail): Bitbucket rate-limited checks of credentials nobody confirmed (429): retry after "
      "60 s", BB_CHECK_RATE_LIMITED, 429, 0 },
};

static void test_each_kind_of_answer(void **state)
{
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const check_case_t *c = &cases[i];
        bb_check_result_t result = bb_tokencheck_result(c->status, c->errmsg);

        if (result != c->result || bb_tokencheck_http_status(result) != c->http_status
            || bb_tokencheck_may_use_stale(result) != c->stale) {
            fail_msg("%s: result %d, status %d, stale %d", c->name, result, bb_tokencheck_http_status(result),
                     bb_tokencheck_may_use_stale(result));
        }
    }
}

/* What never asks Bitbucket: a wait for a concurrent check that ran out, the client's address over its limit. */
static void test_results_of_this_server(void **state)
{
    assert_int_equal(bb_tokencheck_http_status(BB_CHECK_HELD_HERE), 503);
    assert_false(bb_tokencheck_may_use_stale(BB_CHECK_HELD_HERE));
    assert_int_equal(bb_tokencheck_http_status(BB_CHECK_ADDRESS_LIMITED), 429);
    assert_false(bb_tokencheck_may_use_stale(BB_CHECK_ADDRESS_LIMITED));
}

static void test_renew_ahead_in_the_last_tenth(void **state)
{
    assert_false(bb_tokencheck_renew_due(NOW, NOW + 300, NOW));
    assert_false(bb_tokencheck_renew_due(NOW, NOW + 300, NOW + 269));
    assert_true(bb_tokencheck_renew_due(NOW, NOW + 300, NOW + 270));
    assert_true(bb_tokencheck_renew_due(NOW, NOW + 300, NOW + 299));
    assert_false(bb_tokencheck_renew_due(NOW, NOW + 300, NOW + 300));        /* expired: a miss, not a renewal */
    assert_false(bb_tokencheck_renew_due(NOW, NOW, NOW));
}

static void test_whose_calls_a_check_makes(void **state)
{
    bb_user_t bob = { "bob", "bob", "Bob", "", "NORMAL", 2, 1 };

    assert_string_equal(bb_tokencheck_holder(&bob), "bob");
    assert_string_equal(bb_tokencheck_holder(NULL), BB_HOLDER_ANONYMOUS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_each_kind_of_answer),
        UNIT_TEST(test_results_of_this_server),
        UNIT_TEST(test_renew_ahead_in_the_last_tenth),
        UNIT_TEST(test_whose_calls_a_check_makes),
    };

    return UNIT_RUN("tokencheck", tests);
}
