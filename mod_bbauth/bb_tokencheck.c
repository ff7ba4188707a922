/* bb_tokencheck: the token check's policy: what a check's result is, what it answers, stale use, renew ahead. */
#include "bb_tokencheck.h"
#include "bb_http.h"

bb_check_result_t bb_tokencheck_result(bb_status_t status, const char *errmsg)
{
    if (status == BB_OK || status == BB_DENIED) {
        return status == BB_OK ? BB_CHECK_VALID : BB_CHECK_REFUSED;
    }
    if (bb_http_rate_limited(errmsg)) {
        return BB_CHECK_RATE_LIMITED;
    }
    return bb_http_held_here(errmsg) ? BB_CHECK_HELD_HERE : BB_CHECK_FAILED;
}

int bb_tokencheck_http_status(bb_check_result_t result)
{
    switch (result) {
    case BB_CHECK_VALID:
        return 200;
    case BB_CHECK_REFUSED:
        return 401;
    case BB_CHECK_RATE_LIMITED:
    case BB_CHECK_ADDRESS_LIMITED:
        return 429;
    default:
        return 503;
    }
}

int bb_tokencheck_may_use_stale(bb_check_result_t result)
{
    return result == BB_CHECK_FAILED;
}

int bb_tokencheck_renew_due(apr_int64_t validated_at, apr_int64_t expires, apr_int64_t now)
{
    apr_int64_t life = expires - validated_at;

    return life > 0 && now < expires && (expires - now) * 10 <= life;
}

const char *bb_tokencheck_holder(const bb_user_t *earlier)
{
    return earlier ? earlier->name : BB_HOLDER_ANONYMOUS;
}
